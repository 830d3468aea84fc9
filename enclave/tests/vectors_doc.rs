//! docs/private-compute-vectors.json is what the code generates, and its
//! dev evidence bundle verifies under its policy and binds its request key.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

#[test]
fn the_published_vectors_are_the_generated_ones_and_the_bundle_verifies() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/private-compute-vectors.json"
    );
    let mut published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let bundle = published
        .as_object_mut()
        .unwrap()
        .remove("dev_bundle")
        .unwrap();
    assert_eq!(
        published,
        hearth_enclave::vectors::generate(),
        "regenerate with `cargo run -p hearth-enclave --example vectors > docs/private-compute-vectors.json`"
    );
    let bundle: hearth_attest::EvidenceBundle = serde_json::from_value(bundle).unwrap();
    assert_eq!(bundle.rek, published["rek_public_key"].as_str().unwrap());
    let at = Duration::from_secs(hearth_enclave::vectors::TIMESTAMP as u64 + 60);
    let policy = hearth_enclave::vectors::policy();
    let report = hearth_attest::verify_bundle(&bundle, Some(&policy), at, None);
    assert!(report.passed, "{}", report.reports[0]);
    // And the default policy refuses it: it is dev evidence.
    assert!(!hearth_attest::verify_bundle(&bundle, None, at, None).passed);
}
