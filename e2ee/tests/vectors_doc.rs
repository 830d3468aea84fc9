//! docs/e2ee-test-vectors.json is what the code generates: the published
//! vectors never drift from the implementation.
#![allow(clippy::unwrap_used)]

#[test]
fn the_published_vectors_are_the_generated_ones() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/e2ee-test-vectors.json"
    );
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        published,
        hearth_e2ee::vectors::generate(),
        "regenerate with `cargo run -p hearth-e2ee --example vectors > docs/e2ee-test-vectors.json`"
    );
}
