//! Real Intel TDX quotes with their collateral from Phala's dcap-qvl
//! (`../shared/research/attestation-fixtures/tdx`, never copied into the
//! project): each verifies at its own time (the last second all its
//! collateral holds),
//! and each kind of forgery or misfit is refused with the check that
//! caught it named.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use hearth_attest::policy::Policy;
use hearth_attest::tdx::{self, TdxDocument, TdxImage};
use hearth_attest::{CheckName, Expected, Outcome, Report};

const HOUR: Duration = Duration::from_secs(3600);

/// The collateral's own time: a second before the first of its parts
/// (TCB information, QE identity, the two CRLs) is due for an update.
fn own_time(collateral: &str) -> Duration {
    use x509_parser::prelude::FromDer as _;
    let collateral: serde_json::Value = serde_json::from_str(collateral).unwrap();
    let mut next_updates = Vec::new();
    for signed in ["tcb_info", "qe_identity"] {
        let body: serde_json::Value =
            serde_json::from_str(collateral[signed].as_str().unwrap()).unwrap();
        next_updates.push(
            hearth_attest::report::parse_rfc3339(body["nextUpdate"].as_str().unwrap()).unwrap(),
        );
    }
    for crl in ["root_ca_crl", "pck_crl"] {
        let der = hex::decode(collateral[crl].as_str().unwrap()).unwrap();
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
        let next = crl.next_update().unwrap().timestamp();
        next_updates.push(Duration::from_secs(u64::try_from(next).unwrap()));
    }
    next_updates.into_iter().min().unwrap() - Duration::from_secs(1)
}

struct Sample {
    document: TdxDocument,
    at: Duration,
}

fn sample(name: &str) -> Option<Sample> {
    let dir = hearth_testdata::attestation_fixture("tdx/Phala-Network-dcap-qvl")?;
    let quote = std::fs::read(dir.join(name)).unwrap();
    let collateral = std::fs::read_to_string(dir.join(format!("{name}_collateral.json"))).unwrap();
    let at = own_time(&collateral);
    Some(Sample {
        document: TdxDocument {
            quote,
            collateral,
            issued_at: at.as_secs(),
        },
        at,
    })
}

/// A policy trusting exactly the sample's TD, and `statuses`.
fn policy_for(document: &TdxDocument, statuses: &[&str]) -> Policy {
    let report = tdx::verify(&document.to_bytes(), None, Expected::at(Duration::ZERO));
    let value = |name: &str| report.measurements[name].clone();
    let mut policy = Policy::default();
    policy.tdx.images = vec![TdxImage {
        name: "the sample's TD".into(),
        mrtd: value("mrtd"),
        rtmr0: value("rtmr0"),
        rtmr1: value("rtmr1"),
        rtmr2: value("rtmr2"),
        rtmr3: Some(value("rtmr3")),
    }];
    policy.tdx.accepted_tcb_status = statuses.iter().map(|status| (*status).to_owned()).collect();
    policy
}

fn verify(document: &TdxDocument, policy: &Policy, at: Duration) -> Report {
    tdx::verify(&document.to_bytes(), Some(policy), Expected::at(at))
}

fn failed(report: &Report) -> Vec<CheckName> {
    report.failures().map(|check| check.check).collect()
}

#[test]
fn a_real_quote_verifies_at_its_own_time() {
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let policy = policy_for(&sample.document, &["UpToDate"]);
    let report = verify(&sample.document, &policy, sample.at);
    assert!(report.passed, "{report}");
    for check in [
        CheckName::Root,
        CheckName::Chain,
        CheckName::Revocation,
        CheckName::Collateral,
        CheckName::Signature,
        CheckName::Tcb,
        CheckName::Freshness,
        CheckName::DebugMode,
        CheckName::Measurements,
    ] {
        assert!(
            matches!(report.outcome(check), Some(Outcome::Passed(_))),
            "{check:?}\n{report}"
        );
    }
    assert!(report.to_string().contains("mrtd"), "{report}");
}

#[test]
fn four_hours_later_the_collateral_and_the_quote_are_stale() {
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let policy = policy_for(&sample.document, &["UpToDate"]);
    let report = verify(&sample.document, &policy, sample.at + 4 * HOUR);
    let failures = failed(&report);
    assert!(failures.contains(&CheckName::Collateral), "{report}");
    assert!(failures.contains(&CheckName::Freshness), "{report}");
}

#[test]
fn flipped_bytes_of_the_quote_are_refused() {
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let policy = policy_for(&sample.document, &["UpToDate"]);
    // The header and the TD report (everything the attestation key
    // signs), then the quote's signature and the attestation key, and
    // (after the certification data's type and size) the QE report.
    let signed = 48 + 584;
    let signature = signed + 4;
    let qe_report = signature + 64 + 64 + 2 + 4;
    let spots = (0..signed)
        .step_by(7)
        .chain(signature..signature + 128)
        .chain(qe_report..qe_report + 384);
    for at in spots {
        let mut forged = sample.document.clone();
        forged.quote[at] ^= 0x01;
        let report = verify(&forged, &policy, sample.at);
        assert!(
            !report.passed,
            "byte {at} flipped still verifies:\n{report}"
        );
    }
    // A byte of the TD's measurement: the signature no longer holds.
    let mut forged = sample.document.clone();
    forged.quote[48 + 136] ^= 0x01;
    let report = verify(&forged, &policy, sample.at);
    assert!(failed(&report).contains(&CheckName::Signature), "{report}");
}

#[test]
fn a_root_the_policy_does_not_pin_is_refused() {
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let mut policy = policy_for(&sample.document, &["UpToDate"]);
    policy.tdx.root_sha256 = "ab".repeat(32);
    let report = verify(&sample.document, &policy, sample.at);
    assert_eq!(failed(&report), [CheckName::Root], "{report}");
}

#[test]
fn a_measurement_not_in_the_policy_is_refused() {
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let mut policy = policy_for(&sample.document, &["UpToDate"]);
    policy.tdx.images[0].rtmr2 = "00".repeat(48);
    let report = verify(&sample.document, &policy, sample.at);
    assert_eq!(failed(&report), [CheckName::Measurements], "{report}");
    let report = verify(&sample.document, &Policy::default(), sample.at);
    assert!(
        failed(&report).contains(&CheckName::Measurements),
        "{report}"
    );
}

#[test]
fn only_the_tcb_statuses_the_policy_accepts_pass() {
    let (Some(sample), Some(outdated)) = (sample("tdx_quote"), sample("tdx_quote_outdated")) else {
        return;
    };
    // The sample's platform is UpToDate; a policy that accepts only
    // OutOfDate (a mistake, but a policy's to make) refuses it.
    let odd = policy_for(&sample.document, &["OutOfDate"]);
    let report = verify(&sample.document, &odd, sample.at);
    assert_eq!(failed(&report), [CheckName::Tcb], "{report}");
    // A platform whose TCB is below every level the collateral lists is
    // refused whatever the policy accepts (no status to accept).
    let lenient = policy_for(
        &outdated.document,
        &[
            "UpToDate",
            "SWHardeningNeeded",
            "ConfigurationNeeded",
            "OutOfDate",
        ],
    );
    let report = verify(&outdated.document, &lenient, outdated.at);
    assert_eq!(failed(&report), [CheckName::Tcb], "{report}");
}

#[test]
fn collateral_for_another_platform_or_forged_is_refused() {
    let (Some(sample), Some(other)) = (sample("tdx_quote"), sample("tdx_quote_outdated")) else {
        return;
    };
    let policy = policy_for(&sample.document, &["UpToDate", "OutOfDate"]);
    // The other quote's collateral, at its own time.
    let mut swapped = sample.document.clone();
    swapped.collateral = other.document.collateral.clone();
    let report = verify(&swapped, &policy, other.at);
    assert!(!report.passed, "{report}");
    // The TCB information edited (a level made UpToDate): its signature breaks.
    let mut edited = sample.document.clone();
    edited.collateral = edited.collateral.replacen("OutOfDate", "UpToDate", 1);
    assert_ne!(edited.collateral, sample.document.collateral);
    let report = verify(&edited, &policy, sample.at);
    assert!(failed(&report).contains(&CheckName::Collateral), "{report}");
}

#[test]
fn a_quote_that_binds_another_key_is_refused_for_this_one() {
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let rek = [3u8; 32];
    let report = tdx::verify(
        &sample.document.to_bytes(),
        Some(&policy_for(&sample.document, &["UpToDate"])),
        Expected {
            now: sample.at,
            nonce: None,
            rek: Some(&rek),
        },
    );
    assert_eq!(failed(&report), [CheckName::KeyBinding], "{report}");
}

#[test]
fn garbage_is_refused_as_a_format_error() {
    let report = tdx::verify(b"\xa0", None, Expected::at(HOUR));
    assert_eq!(failed(&report), [CheckName::Format], "{report}");
    let Some(sample) = sample("tdx_quote") else {
        return;
    };
    let mut cut = sample.document.clone();
    cut.quote.truncate(600);
    let report = verify(&cut, &Policy::default(), sample.at);
    assert_eq!(failed(&report), [CheckName::Format], "{report}");
}
