//! `hearth-pcc verify` and `hearth-pcc policy` as an admin or auditor runs
//! them on a real Nitro document (from `../shared/research`), offline: the
//! exit code says the verdict, the report names the failing check, and a
//! policy written from a trusted document admits exactly that image.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Output};

use hearth_testdata::attestation_fixture as fixture;
use serde_json::Value;

/// A real, non-debug document issued at 2024-09-07T14:37:39.545Z.
const DOCUMENT: &str = "blocky-nitrite/nitro_attestation.b64";
const ISSUED: &str = "2024-09-07T14:40:00Z";
const FOUR_HOURS_LATER: &str = "2024-09-07T18:40:00Z";

fn pcc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth-pcc"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn failed_checks(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["outcome"] == "failed")
        .map(|check| check["check"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_real_document_passes_at_its_time_and_fails_four_hours_later() {
    let Some(document) = fixture(DOCUMENT) else {
        return;
    };
    let document = document.to_str().unwrap();

    let passed = pcc(&["verify", document, "--at", ISSUED]);
    assert_eq!(passed.status.code(), Some(0), "{}", text(&passed));
    let said = text(&passed);
    assert!(said.contains("result: VERIFIED"), "{said}");
    // Without a policy the measurements are printed for the admin.
    assert!(said.contains("PCR0  e72a46ca80a260fb"), "{said}");
    assert!(said.contains("no policy"), "{said}");

    let late = pcc(&[
        "verify",
        document,
        "--at",
        FOUR_HOURS_LATER,
        "--output",
        "json",
    ]);
    assert_eq!(late.status.code(), Some(1), "{}", text(&late));
    let report: Value = serde_json::from_slice(&late.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert!(
        failed_checks(&report).contains(&"chain".to_owned()),
        "{report}"
    );
}

#[test]
fn a_policy_written_from_a_trusted_document_admits_that_image_and_no_other() {
    let Some(document) = fixture(DOCUMENT) else {
        return;
    };
    let Some(other) = fixture("evervault-attestation-doc-validation/valid-attestation-doc-bytes")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let document = document.to_str().unwrap();

    let written = pcc(&["policy", document, "--name", "our image"]);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let policy: Value = serde_json::from_slice(&written.stdout).unwrap();
    assert_eq!(policy["images"][0]["name"], "our image");
    assert_eq!(policy["allow_debug"], false);
    assert_eq!(policy["allow_dev_evidence"], false);
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, &written.stdout).unwrap();
    let policy_file = policy_file.to_str().unwrap();

    let admitted = pcc(&[
        "verify",
        document,
        "--at",
        ISSUED,
        "--policy",
        policy_file,
        "--output",
        "json",
    ]);
    assert_eq!(admitted.status.code(), Some(0), "{}", text(&admitted));
    let report: Value = serde_json::from_slice(&admitted.stdout).unwrap();
    let measured = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"] == "measurements")
        .unwrap();
    assert_eq!(measured["outcome"], "passed", "{report}");

    // Another project's real, valid, non-debug document at its own time:
    // its image is not ours, and the report says which PCR differs.
    let refused = pcc(&[
        "verify",
        other.to_str().unwrap(),
        "--at",
        "2022-10-13T08:59:00Z",
        "--policy",
        policy_file,
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(said.contains("FAIL  measurements"), "{said}");
    assert!(said.contains("PCR0"), "{said}");
    assert!(said.contains("result: REFUSED (measurements)"), "{said}");

    // A nonce the document does not carry.
    let wrong_nonce = pcc(&[
        "verify",
        document,
        "--at",
        ISSUED,
        "--policy",
        policy_file,
        "--nonce",
        "00112233",
    ]);
    assert_eq!(wrong_nonce.status.code(), Some(1));
    assert!(
        text(&wrong_nonce).contains("FAIL  nonce"),
        "{}",
        text(&wrong_nonce)
    );
}

#[test]
fn forgeries_are_refused_and_bad_input_is_an_error_not_a_verdict() {
    let Some(bad_signature) = fixture("EternisAI-remote-attestation-verifier/invalid_attestation")
    else {
        return;
    };
    let Some(self_signed) = fixture("blocky-nitrite/selfsigned_attestation.b64") else {
        return;
    };

    let refused = pcc(&[
        "verify",
        bad_signature.to_str().unwrap(),
        "--at",
        "2024-07-23T21:30:00Z",
        "--output",
        "json",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert!(
        failed_checks(&report).contains(&"signature".to_owned()),
        "{report}"
    );

    let refused = pcc(&[
        "verify",
        self_signed.to_str().unwrap(),
        "--at",
        "1970-01-20T19:57:00Z",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("REFUSED"), "{}", text(&refused));

    // Errors exit 2 with a sentence, not a report.
    let dir = tempfile::tempdir().unwrap();
    let missing = pcc(&["verify", dir.path().join("absent").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("cannot read"), "{}", text(&missing));
    let bad_time = pcc(&[
        "verify",
        bad_signature.to_str().unwrap(),
        "--at",
        "yesterday",
    ]);
    assert_eq!(bad_time.status.code(), Some(2));
    assert!(
        text(&bad_time).contains("not an RFC 3339 time"),
        "{}",
        text(&bad_time)
    );
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"not evidence at all").unwrap();
    let unreadable = pcc(&["verify", garbage.to_str().unwrap()]);
    assert_ne!(unreadable.status.code(), Some(0), "{}", text(&unreadable));
    let lax = dir.path().join("lax.json");
    std::fs::write(&lax, r#"{"images": [], "allow_everything": true}"#).unwrap();
    let refused_policy = pcc(&[
        "verify",
        bad_signature.to_str().unwrap(),
        "--policy",
        lax.to_str().unwrap(),
    ]);
    assert_eq!(
        refused_policy.status.code(),
        Some(2),
        "{}",
        text(&refused_policy)
    );
    assert!(
        text(&refused_policy).contains("not a usable policy"),
        "{}",
        text(&refused_policy)
    );
}

/// What `nitro-cli build-enclave` prints for an enclave image file: a line,
/// then its measurements as JSON.
fn nitro_cli_output(pcrs: &Value) -> String {
    format!(
        "Enclave Image successfully created.\n{}\n",
        serde_json::to_string_pretty(&serde_json::json!({"Measurements": {
            "HashAlgorithm": "Sha384 { ... }",
            "PCR0": pcrs["0"], "PCR1": pcrs["1"], "PCR2": pcrs["2"],
        }}))
        .unwrap()
    )
}

#[test]
fn a_policy_from_nitro_cli_measurements_admits_the_image_built_from_that_file() {
    let Some(document) = fixture(DOCUMENT) else {
        return;
    };
    let document = document.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The measurements an EIF of this document's image would have.
    let report: Value = serde_json::from_slice(
        &pcc(&["verify", document, "--at", ISSUED, "--output", "json"]).stdout,
    )
    .unwrap();
    let measurements = dir.path().join("measurements.txt");
    std::fs::write(&measurements, nitro_cli_output(&report["pcrs"])).unwrap();

    let written = pcc(&[
        "policy",
        measurements.to_str().unwrap(),
        "--name",
        "hearth-compute 0.1.0",
    ]);
    assert_eq!(written.status.code(), Some(0), "{}", text(&written));
    let policy: Value = serde_json::from_slice(&written.stdout).unwrap();
    assert_eq!(policy["images"][0]["pcrs"]["2"], report["pcrs"]["2"]);
    assert!(
        policy["images"][0]["pcrs"].get("8").is_none(),
        "an unsigned image pins no PCR8"
    );
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, &written.stdout).unwrap();
    let admitted = pcc(&[
        "verify",
        document,
        "--at",
        ISSUED,
        "--policy",
        policy_file.to_str().unwrap(),
    ]);
    assert_eq!(admitted.status.code(), Some(0), "{}", text(&admitted));

    // Output that lost a PCR, or a PCR that is not SHA-384: an error, no policy.
    let mut short = report["pcrs"].clone();
    short["2"] = Value::String("00ff".into());
    std::fs::write(&measurements, nitro_cli_output(&short)).unwrap();
    let refused = pcc(&["policy", measurements.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused).contains("PCR2 is not 48 bytes of hex"),
        "{}",
        text(&refused)
    );
    assert!(refused.stdout.is_empty());
}

/// Issue 41's review: a bare SEV-SNP report given to `hearth-pcc verify`
/// was labelled and judged as an AWS Nitro document. It is named for what
/// it is, with how to verify it.
#[test]
fn a_bare_sev_snp_report_is_named_for_what_it_is() {
    let Some(hex_file) =
        hearth_testdata::research_file("attestation-fixtures/sev-snp/virtee-sev/report_milan.hex")
    else {
        return;
    };
    let text = std::fs::read_to_string(hex_file).unwrap();
    let report = hex::decode(text.split_whitespace().collect::<String>()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.bin");
    std::fs::write(&file, &report).unwrap();
    let said = pcc(&["verify", file.to_str().unwrap()]);
    let all = format!("{}{}", text_of(&said.stdout), text_of(&said.stderr));
    assert!(!said.status.success());
    assert!(all.contains("bare AMD SEV-SNP attestation report"), "{all}");
    assert!(!all.contains("aws-nitro"), "{all}");
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
