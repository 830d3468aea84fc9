//! Prints the test vectors of docs/e2ee-protocol.md:
//! `cargo run -p hearth-e2ee --example vectors > docs/e2ee-test-vectors.json`.

fn main() {
    let vectors = hearth_e2ee::vectors::generate();
    println!(
        "{}",
        serde_json::to_string_pretty(&vectors).unwrap_or_default()
    );
}
