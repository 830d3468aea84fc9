//! Real AMD SEV-SNP reports from public projects (virtee/sev's Milan
//! report, openpcc's Azure Genoa report), with their VCEKs, AMD's chains
//! and CRLs, read from `../shared/research/attestation-fixtures/sev-snp`
//! (never copied into the project): each verifies at its own time, and
//! each kind of forgery or misfit is refused with the check that caught it
//! named.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use base64::Engine as _;
use hearth_attest::policy::Policy;
use hearth_attest::snp::{self, SnpDocument, SnpImage, Tcb};
use hearth_attest::{CheckName, Expected, Outcome, Report};

const HOUR: Duration = Duration::from_secs(3600);

/// A section of a txtar archive (`-- name --` then its text).
fn txtar_section(text: &str, name: &str) -> String {
    let marker = format!("-- {name} --\n");
    let start = text.find(&marker).unwrap() + marker.len();
    let rest = &text[start..];
    rest[..rest.find("\n-- ").unwrap_or(rest.len())].to_owned()
}

/// Every PEM block labelled `label` in `text`, as DER.
fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    text.split(&begin)
        .skip(1)
        .map(|block| {
            let body: String = block[..block.find(&end).unwrap()]
                .split_whitespace()
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        })
        .collect()
}

fn fixture(path: &str) -> Option<std::path::PathBuf> {
    hearth_testdata::attestation_fixture(&format!("sev-snp/{path}"))
}

/// A real sample: its document (issued at `at`, its own time) and that time.
struct Sample {
    name: &'static str,
    document: SnpDocument,
    at: Duration,
}

/// 2025-06-01: the Milan VCEK (2023-2030) and AMD's Milan CRL
/// (2025-05-06 to 2026-05-12) both hold.
const MILAN_AT: Duration = Duration::from_secs(1_748_736_000);
/// 2025-07-01: the Genoa VCEK (from 2025-06-11) and AMD's Genoa CRL
/// (2024-10-23 to 2025-11-03) both hold.
const GENOA_AT: Duration = Duration::from_secs(1_751_328_000);

fn samples() -> Option<Vec<Sample>> {
    let certificates =
        std::fs::read_to_string(fixture("openpcc-openpcc/sev_certificates.txt")?).unwrap();
    let crl = |name: &str| pem_blocks(&txtar_section(&certificates, name), "X509 CRL").remove(0);

    let virtee = fixture("virtee-sev")?;
    let report = hex::decode(
        std::fs::read_to_string(virtee.join("report_milan.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let chain = pem_blocks(
        &std::fs::read_to_string(virtee.join("cert_chain_milan")).unwrap(),
        "CERTIFICATE",
    );
    let milan = SnpDocument {
        report,
        vcek: std::fs::read(virtee.join("vcek_milan.der")).unwrap(),
        ask: chain[0].clone(),
        ark: chain[1].clone(),
        crl: Some(crl("test_amd_milan_crl.pem")),
        issued_at: MILAN_AT.as_secs(),
    };

    // Azure's report is wrapped in its HCL report: the SNP report starts
    // 32 bytes in.
    let azure =
        std::fs::read_to_string(fixture("openpcc-openpcc/azure_sevsnp_report.txt")?).unwrap();
    let hcl = pem_blocks(&azure, "REPORT").remove(0);
    let genoa = pem_blocks(
        &txtar_section(&certificates, "test_amd_sev_genoa_root_certs.pem"),
        "CERTIFICATE",
    );
    let genoa = SnpDocument {
        report: hcl[32..32 + snp::REPORT_LEN].to_vec(),
        vcek: pem_blocks(
            &txtar_section(&certificates, "test_vcek.pem"),
            "CERTIFICATE",
        )
        .remove(0),
        ask: genoa[0].clone(),
        ark: genoa[1].clone(),
        crl: Some(crl("test_amd_genoa_crl.pem")),
        issued_at: GENOA_AT.as_secs(),
    };
    Some(vec![
        Sample {
            name: "virtee Milan",
            document: milan,
            at: MILAN_AT,
        },
        Sample {
            name: "Azure Genoa",
            document: genoa,
            at: GENOA_AT,
        },
    ])
}

/// A policy trusting exactly `document`'s measurement, requiring a CRL.
fn policy_for(document: &SnpDocument) -> Policy {
    let report = snp::parse_report(&document.report).unwrap();
    let mut policy = Policy::default();
    policy.sev_snp.images = vec![SnpImage {
        name: "the sample's guest".into(),
        measurement: hex::encode(report.measurement),
        host_data: None,
    }];
    policy.sev_snp.require_crl = true;
    policy
}

fn verify(document: &SnpDocument, policy: &Policy, at: Duration) -> Report {
    snp::verify(&document.to_bytes(), Some(policy), Expected::at(at))
}

fn failed(report: &Report) -> Vec<CheckName> {
    report.failures().map(|check| check.check).collect()
}

#[test]
fn real_reports_verify_at_their_own_time() {
    let Some(samples) = samples() else {
        return;
    };
    for sample in &samples {
        let report = verify(&sample.document, &policy_for(&sample.document), sample.at);
        assert!(report.passed, "{}:\n{report}", sample.name);
        for check in [
            CheckName::Root,
            CheckName::Chain,
            CheckName::Revocation,
            CheckName::Signature,
            CheckName::Tcb,
            CheckName::Freshness,
            CheckName::DebugMode,
            CheckName::Measurements,
        ] {
            assert!(
                matches!(report.outcome(check), Some(Outcome::Passed(_))),
                "{}: {check:?}\n{report}",
                sample.name
            );
        }
        let text = report.to_string();
        assert!(text.contains("measurement"), "{text}");
        assert!(text.ends_with("result: VERIFIED"), "{text}");
    }
}

#[test]
fn four_hours_later_a_report_is_stale() {
    let Some(samples) = samples() else {
        return;
    };
    for sample in &samples {
        let report = verify(
            &sample.document,
            &policy_for(&sample.document),
            sample.at + 4 * HOUR,
        );
        assert_eq!(
            failed(&report),
            [CheckName::Freshness],
            "{}:\n{report}",
            sample.name
        );
    }
}

#[test]
fn every_flipped_byte_of_the_report_is_refused() {
    let Some(samples) = samples() else {
        return;
    };
    for sample in &samples {
        let policy = policy_for(&sample.document);
        // Every signed byte, and the signature's r and s.
        let flips = (0..0x2A0).chain(0x2A0..0x2A0 + 48).chain(0x2E8..0x2E8 + 48);
        for at in flips {
            let mut forged = sample.document.clone();
            forged.report[at] ^= 0x01;
            let report = verify(&forged, &policy, sample.at);
            assert!(
                !report.passed,
                "{}: byte {at:#x} flipped still verifies",
                sample.name
            );
            assert!(
                failed(&report).contains(&CheckName::Signature)
                    || failed(&report).contains(&CheckName::Format),
                "{}: byte {at:#x}\n{report}",
                sample.name
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_a_certificate_breaks_the_chain() {
    let Some(samples) = samples() else {
        return;
    };
    let sample = &samples[0];
    let policy = policy_for(&sample.document);
    for part in ["vcek", "ask"] {
        let mut forged = sample.document.clone();
        let der = if part == "vcek" {
            &mut forged.vcek
        } else {
            &mut forged.ask
        };
        // A byte of the key or of the signed body, well inside.
        let at = der.len() / 2;
        der[at] ^= 0x01;
        let report = verify(&forged, &policy, sample.at);
        assert!(!report.passed, "{part}: {report}");
        let failures = failed(&report);
        assert!(
            failures.contains(&CheckName::Chain) || failures.contains(&CheckName::Format),
            "{part}:\n{report}"
        );
    }
}

#[test]
fn a_root_the_policy_does_not_trust_is_refused() {
    let Some(samples) = samples() else {
        return;
    };
    let (milan, genoa) = (&samples[0], &samples[1]);
    // The policy pins only Genoa's ARK: Milan's is not trusted.
    let mut policy = policy_for(&milan.document);
    policy.sev_snp.ark_sha256 = vec![snp::fingerprint(&genoa.document.ark)];
    let report = verify(&milan.document, &policy, milan.at);
    assert_eq!(failed(&report), [CheckName::Root], "{report}");
    // Genoa's chain under a Milan report: the VCEK is not Genoa's ASK's.
    let mut mixed = milan.document.clone();
    mixed.ask = genoa.document.ask.clone();
    mixed.ark = genoa.document.ark.clone();
    mixed.crl = genoa.document.crl.clone();
    let report = verify(&mixed, &policy_for(&milan.document), milan.at);
    assert!(failed(&report).contains(&CheckName::Chain), "{report}");
}

#[test]
fn a_measurement_not_in_the_policy_is_refused() {
    let Some(samples) = samples() else {
        return;
    };
    let (milan, genoa) = (&samples[0], &samples[1]);
    // Each policy trusts the other sample's guest.
    let report = verify(&milan.document, &policy_for(&genoa.document), milan.at);
    assert_eq!(failed(&report), [CheckName::Measurements], "{report}");
    let without = verify(&milan.document, &Policy::default(), milan.at);
    assert!(failed(&without).contains(&CheckName::Measurements));
}

#[test]
fn an_old_tcb_an_expired_crl_or_a_missing_one_is_refused() {
    let Some(samples) = samples() else {
        return;
    };
    let milan = &samples[0];
    let report = snp::parse_report(&milan.document.report).unwrap();
    let mut policy = policy_for(&milan.document);
    policy.sev_snp.min_tcb = Some(Tcb {
        snp: report.reported_tcb.snp + 1,
        ..report.reported_tcb
    });
    let old = verify(&milan.document, &policy, milan.at);
    assert_eq!(failed(&old), [CheckName::Tcb], "{old}");

    // AMD's Milan CRL holds until 2026-05-12: a day later it has expired.
    let mut late = milan.document.clone();
    let after = Duration::from_secs(1_778_630_400);
    late.issued_at = after.as_secs();
    let expired = verify(&late, &policy_for(&late), after);
    assert_eq!(failed(&expired), [CheckName::Revocation], "{expired}");

    let mut without = milan.document.clone();
    without.crl = None;
    let report = verify(&without, &policy_for(&without), milan.at);
    assert_eq!(failed(&report), [CheckName::Revocation], "{report}");
}

#[test]
fn a_report_that_binds_another_key_is_refused_for_this_one() {
    let Some(samples) = samples() else {
        return;
    };
    let milan = &samples[0];
    let rek = [7u8; 32];
    let report = snp::verify(
        &milan.document.to_bytes(),
        Some(&policy_for(&milan.document)),
        Expected {
            now: milan.at,
            nonce: None,
            rek: Some(&rek),
        },
    );
    assert_eq!(failed(&report), [CheckName::KeyBinding], "{report}");
    // What a node of ours binds: the key, the time and the nonce.
    let at = milan.document.issued_at;
    let bound = hearth_attest::tee::report_data(&rek, at, None);
    assert_ne!(bound, hearth_attest::tee::report_data(&[8; 32], at, None));
    assert_ne!(bound, hearth_attest::tee::report_data(&rek, at + 1, None));
    assert_ne!(
        bound,
        hearth_attest::tee::report_data(&rek, at, Some(b"nonce"))
    );
}

#[test]
fn garbage_is_refused_as_a_format_error() {
    let report = snp::verify(b"not cbor", None, Expected::at(MILAN_AT));
    assert_eq!(failed(&report), [CheckName::Format]);
    let Some(samples) = samples() else {
        return;
    };
    let mut short = samples[0].document.clone();
    short.report.truncate(100);
    let report = verify(&short, &Policy::default(), MILAN_AT);
    assert_eq!(failed(&report), [CheckName::Format]);
}
