//! Real AWS Nitro attestation documents from five public projects, read
//! from `../shared/research/attestation-fixtures` (override with
//! `HEARTH_ATTESTATION_FIXTURES`), verified at their own time, and each
//! kind of forgery or misfit refused with the check that caught it named.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::Duration;

use hearth_attest::cose;
use hearth_attest::document::Document;
use hearth_attest::policy::{Image, Policy};
use hearth_attest::{CheckName, Expected, Input, Outcome, Report, read_input, verify_nitro};

const HOUR: Duration = Duration::from_secs(3600);

/// Real documents that verify: (file, how it is stored).
const REAL: &[(&str, Stored)] = &[
    (
        "evervault-attestation-doc-validation/debug-mode-attestation-doc-bytes",
        Stored::Plain,
    ),
    (
        "evervault-attestation-doc-validation/valid-attestation-doc-bytes",
        Stored::Plain,
    ),
    (
        "evervault-attestation-doc-validation/debug-mode-cert-containing-attestation-doc-18-1-23.pem",
        Stored::InCertificate,
    ),
    (
        "evervault-attestation-doc-validation/non-debug-cert-containing-attestation-document-18-1-23.pem",
        Stored::InCertificate,
    ),
    (
        "evervault-attestation-doc-validation/non-debug-cert-containing-attestation-document-18-1-23-der.crt",
        Stored::InCertificate,
    ),
    (
        "evervault-attestation-doc-validation/valid-attestation-doc-base64",
        Stored::Plain,
    ),
    (
        "EternisAI-remote-attestation-verifier/example_attestation",
        Stored::Plain,
    ),
    (
        "EternisAI-remote-attestation-verifier/src_lib_rs_test_verify.b64",
        Stored::Plain,
    ),
    ("blocky-nitrite/nitro_attestation.b64", Stored::Plain),
    ("blocky-nitrite/nitro_attestation_debug.b64", Stored::Plain),
    (
        "sparsity-xyz-aws-nitro-enclave-attestation/attestation_1.report",
        Stored::Plain,
    ),
    (
        "sparsity-xyz-aws-nitro-enclave-attestation/attestation_2.report",
        Stored::Plain,
    ),
    (
        "base-nitro-validator/real_attestation_repaired.cbor",
        Stored::Plain,
    ),
];

#[derive(Clone, Copy)]
enum Stored {
    /// Raw CBOR or base64 of it.
    Plain,
    /// Hex inside the SAN dNSName labels of an X.509 certificate (evervault's
    /// attestation-in-TLS scheme), PEM or DER.
    InCertificate,
}

fn fixtures() -> Option<PathBuf> {
    hearth_testdata::attestation_fixture("")
}

fn load(dir: &std::path::Path, file: &str, stored: Stored) -> Vec<u8> {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    match stored {
        Stored::Plain => match read_input(&bytes).unwrap() {
            Input::Document(document) => document,
            Input::Bundle(_) => panic!("{file} is not a bundle"),
        },
        Stored::InCertificate => from_certificate(&bytes),
    }
}

fn from_certificate(bytes: &[u8]) -> Vec<u8> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        x509_parser::pem::parse_x509_pem(bytes).unwrap().1.contents
    } else {
        bytes.to_vec()
    };
    let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();
    let names = certificate.subject_alternative_name().unwrap().unwrap();
    let hex_text = names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(name) => Some(
                name.split('.')
                    .filter(|label| label.bytes().all(|byte| byte.is_ascii_hexdigit()))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .max_by_key(String::len)
        .unwrap();
    let decoded = hex::decode(&hex_text[..hex_text.len() / 2 * 2]).unwrap();
    // The labels may carry bytes after the document: keep exactly one item.
    let mut rest = decoded.as_slice();
    let _: ciborium::Value = ciborium::de::from_reader(&mut rest).unwrap();
    decoded[..decoded.len() - rest.len()].to_vec()
}

fn issued(document: &[u8]) -> Duration {
    let signed = cose::parse(document).unwrap();
    Duration::from_millis(Document::parse(&signed.payload).unwrap().timestamp_ms)
}

fn failed(report: &Report, check: CheckName) -> String {
    match report.outcome(check) {
        Some(Outcome::Failed(detail)) => detail.clone(),
        other => panic!("{check:?} did not fail but {other:?}:\n{report}"),
    }
}

/// The policy that trusts exactly this document's image.
fn policy_for(document: &[u8]) -> Policy {
    let signed = cose::parse(document).unwrap();
    let parsed = Document::parse(&signed.payload).unwrap();
    Policy {
        images: vec![Image {
            name: "under test".into(),
            pcrs: [0u8, 1, 2, 8]
                .iter()
                .filter_map(|index| {
                    parsed
                        .pcrs
                        .get(index)
                        .map(|value| (*index, hex::encode(value)))
                })
                .collect(),
        }],
        allow_debug: parsed.debug_mode(),
        ..Policy::default()
    }
}

#[test]
fn every_real_document_verifies_at_its_own_time_and_fails_four_hours_later() {
    let Some(dir) = fixtures() else { return };
    for (file, stored) in REAL {
        let document = load(&dir, file, *stored);
        let at = issued(&document);
        let report = verify_nitro(&document, None, Expected::at(at));
        assert!(report.passed, "{file}:\n{report}");
        let policy = policy_for(&document);
        let pinned = verify_nitro(&document, Some(&policy), Expected::at(at));
        assert!(pinned.passed, "{file} with its own image pinned:\n{pinned}");

        let later = verify_nitro(&document, None, Expected::at(at + 4 * HOUR));
        assert!(!later.passed, "{file} four hours later:\n{later}");
        assert!(
            failed(&later, CheckName::Chain).contains("not valid at"),
            "{later}"
        );
    }
}

#[test]
fn a_bad_signature_is_refused_as_such() {
    let Some(dir) = fixtures() else { return };
    let document = load(
        &dir,
        "EternisAI-remote-attestation-verifier/invalid_attestation",
        Stored::Plain,
    );
    let report = verify_nitro(&document, None, Expected::at(issued(&document)));
    assert!(!report.passed);
    assert_eq!(
        report.first_failure(),
        Some(CheckName::Signature),
        "{report}"
    );
    // Its chain is AWS's own: only the signature is wrong.
    assert!(matches!(
        report.outcome(CheckName::Chain),
        Some(Outcome::Passed(_))
    ));
}

#[test]
fn a_self_signed_document_is_refused() {
    let Some(dir) = fixtures() else { return };
    let document = load(
        &dir,
        "blocky-nitrite/selfsigned_attestation.b64",
        Stored::Plain,
    );
    let report = verify_nitro(
        &document,
        None,
        Expected::at(Duration::from_secs(1_713_379_906)),
    );
    assert!(!report.passed);
    assert_eq!(report.first_failure(), Some(CheckName::Format), "{report}");
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let Some(dir) = fixtures() else { return };
    let document = load(&dir, "blocky-nitrite/nitro_attestation.b64", Stored::Plain);
    let at = issued(&document);
    let policy = policy_for(&document);
    // Every 13th byte, and the first and last 64: headers, every field of
    // the payload, the certificates, the signature.
    let positions = (0..document.len()).filter(|position| {
        position % 13 == 0 || *position < 64 || *position >= document.len() - 64
    });
    let mut tried = 0;
    for position in positions {
        let mut altered = document.clone();
        altered[position] ^= 0x01;
        let report = verify_nitro(&altered, Some(&policy), Expected::at(at));
        assert!(
            !report.passed,
            "a flip at byte {position} passed:\n{report}"
        );
        tried += 1;
    }
    assert!(tried > 400, "{tried}");
}

#[test]
fn a_root_other_than_the_pinned_one_is_refused() {
    let Some(dir) = fixtures() else { return };
    let document = load(&dir, "blocky-nitrite/nitro_attestation.b64", Stored::Plain);
    let policy = Policy {
        root_sha256: "00".repeat(32),
        ..policy_for(&document)
    };
    let report = verify_nitro(&document, Some(&policy), Expected::at(issued(&document)));
    assert!(
        failed(&report, CheckName::Root).contains("641a0321"),
        "{report}"
    );

    // A chain that ends at another root, however well formed, is refused
    // even when the policy pins AWS's.
    let signed = cose::parse(&document).unwrap();
    let mut parsed = Document::parse(&signed.payload).unwrap();
    parsed.cabundle[0] = parsed.cabundle[1].clone();
    let forged = cose::CoseSign1 {
        payload: parsed.to_cbor(),
        ..signed
    }
    .to_bytes();
    let report = verify_nitro(&forged, None, Expected::at(issued(&document)));
    failed(&report, CheckName::Root);
}

#[test]
fn a_pcr_not_in_the_policy_is_named() {
    let Some(dir) = fixtures() else { return };
    let document = load(&dir, "blocky-nitrite/nitro_attestation.b64", Stored::Plain);
    let mut policy = policy_for(&document);
    policy.images[0].pcrs.insert(2, "ab".repeat(48));
    let report = verify_nitro(&document, Some(&policy), Expected::at(issued(&document)));
    assert!(!report.passed);
    assert_eq!(
        report.first_failure(),
        Some(CheckName::Measurements),
        "{report}"
    );
    assert!(
        failed(&report, CheckName::Measurements).starts_with("PCR2 is "),
        "{report}"
    );
    assert!(
        report.to_string().contains("FAIL  measurements"),
        "{report}"
    );
    assert!(
        report
            .to_string()
            .ends_with("result: REFUSED (measurements)")
    );
}

#[test]
fn a_debug_mode_document_is_refused_by_the_default_policy() {
    let Some(dir) = fixtures() else { return };
    let document = load(
        &dir,
        "blocky-nitrite/nitro_attestation_debug.b64",
        Stored::Plain,
    );
    let at = issued(&document);
    let report = verify_nitro(&document, Some(&Policy::default()), Expected::at(at));
    assert!(
        failed(&report, CheckName::DebugMode).contains("debug mode"),
        "{report}"
    );
    // Pinning its (zero) PCRs is not enough: debug mode must be allowed.
    let mut policy = policy_for(&document);
    policy.allow_debug = false;
    let report = verify_nitro(&document, Some(&policy), Expected::at(at));
    assert_eq!(report.failures().count(), 1, "{report}");
    failed(&report, CheckName::DebugMode);
}

#[test]
fn a_stale_or_wrong_nonce_is_refused() {
    let Some(dir) = fixtures() else { return };
    let document = load(&dir, "blocky-nitrite/nitro_attestation.b64", Stored::Plain);
    let at = issued(&document);
    let signed = cose::parse(&document).unwrap();
    let nonce = Document::parse(&signed.payload).unwrap().nonce.unwrap();
    let policy = policy_for(&document);
    let expect = |now, nonce| Expected {
        now,
        nonce: Some(nonce),
        rek: None,
    };

    let report = verify_nitro(&document, Some(&policy), expect(at, &nonce));
    assert!(report.passed, "{report}");
    let mut other = nonce.clone();
    other[0] ^= 1;
    let report = verify_nitro(&document, Some(&policy), expect(at, &other));
    assert!(
        failed(&report, CheckName::Nonce).contains("another nonce"),
        "{report}"
    );

    // Stale: the right nonce, but older than the policy allows.
    let strict = Policy {
        max_age_seconds: 60,
        ..policy
    };
    let report = verify_nitro(
        &document,
        Some(&strict),
        expect(at + Duration::from_secs(120), &nonce),
    );
    assert!(
        failed(&report, CheckName::Freshness).contains("120 s old"),
        "{report}"
    );
    assert_eq!(report.failures().count(), 1, "{report}");
}

#[test]
fn the_report_is_json_for_tools() {
    let Some(dir) = fixtures() else { return };
    let document = load(
        &dir,
        "base-nitro-validator/real_attestation_repaired.cbor",
        Stored::Plain,
    );
    let report = verify_nitro(&document, None, Expected::at(issued(&document)));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["evidence_type"], "aws-nitro");
    assert_eq!(json["timestamp"], "2026-01-03T20:41:07.402Z");
    assert_eq!(json["pcrs"]["0"].as_str().unwrap().len(), 96);
    let skipped: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["outcome"] == "skipped")
        .map(|check| check["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "debug_mode",
            "measurements",
            "module_id",
            "nonce",
            "key_binding"
        ]
    );
}
