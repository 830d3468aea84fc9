//! Prints docs/private-compute-vectors.json: the deterministic vectors and
//! a dev evidence bundle made now for the vectors' request key.

fn main() {
    let mut vectors = hearth_enclave::vectors::generate();
    vectors["dev_bundle"] =
        serde_json::to_value(hearth_enclave::vectors::dev_bundle()).expect("bundles serialize");
    println!(
        "{}",
        serde_json::to_string_pretty(&vectors).expect("values serialize")
    );
}
