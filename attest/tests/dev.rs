//! Dev evidence and bundles: what a compute node outside an enclave
//! publishes, what the default policy does with it, and the per-key cache.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_attest::dev::{Claims, DevSigner};
use hearth_attest::evidence::{AWS_NITRO, HEARTH_DEV};
use hearth_attest::policy::Policy;
use hearth_attest::{
    CheckName, EvidenceBundle, Expected, Judgement, Outcome, VerifiedKeys, rek_binding,
    verify_bundle, verify_typed,
};

const NOW: Duration = Duration::from_secs(1_795_000_000);

fn claims(rek: &[u8; 32], nonce: Option<&[u8]>, at: Duration) -> Claims {
    Claims {
        module_id: "hearth-dev-node-1".into(),
        pcrs: (0..3)
            .map(|index| (index, vec![index + 1; 48]))
            .collect::<BTreeMap<_, _>>(),
        public_key: Some(rek_binding(rek)),
        nonce: nonce.map(<[u8]>::to_vec),
        timestamp_ms: u64::try_from(at.as_millis()).unwrap(),
    }
}

fn dev_policy() -> Policy {
    Policy {
        allow_dev_evidence: true,
        images: vec![hearth_attest::Image {
            name: "dev".into(),
            pcrs: (0..3u8)
                .map(|index| (index, hex::encode([index + 1; 48])))
                .collect(),
        }],
        ..Policy::default()
    }
}

fn outcome(report: &hearth_attest::Report, check: CheckName) -> &Outcome {
    report.outcome(check).unwrap()
}

#[test]
fn dev_evidence_passes_only_a_policy_that_allows_it() {
    let signer = DevSigner::generate("node-1").unwrap();
    let rek = [9u8; 32];
    let document = signer.attest(&claims(&rek, Some(b"n0nce"), NOW)).unwrap();
    let expected = Expected {
        now: NOW,
        nonce: Some(b"n0nce"),
        rek: Some(&rek),
    };
    let allowed = verify_typed(HEARTH_DEV, &document, Some(&dev_policy()), expected);
    assert!(allowed.passed, "{allowed}");

    let default = verify_typed(HEARTH_DEV, &document, Some(&Policy::default()), expected);
    assert!(!default.passed);
    assert_eq!(
        default.first_failure(),
        Some(CheckName::EvidenceType),
        "{default}"
    );
    let unpoliced = verify_typed(HEARTH_DEV, &document, None, expected);
    assert!(
        !unpoliced.passed,
        "without a policy dev evidence never passes"
    );

    // Presented as Nitro evidence it has no chain to AWS's root.
    let as_nitro = verify_typed(AWS_NITRO, &document, Some(&dev_policy()), expected);
    assert_eq!(
        as_nitro.first_failure(),
        Some(CheckName::Root),
        "{as_nitro}"
    );
}

#[test]
fn a_document_binding_another_key_or_altered_is_refused() {
    let signer = DevSigner::generate("node-1").unwrap();
    let document = signer.attest(&claims(&[1; 32], None, NOW)).unwrap();
    let report = verify_typed(
        HEARTH_DEV,
        &document,
        Some(&dev_policy()),
        Expected {
            now: NOW,
            nonce: None,
            rek: Some(&[2; 32]),
        },
    );
    assert!(
        matches!(outcome(&report, CheckName::KeyBinding), Outcome::Failed(_)),
        "{report}"
    );

    // Another signer's certificate swapped in: the signature no longer holds.
    let other = DevSigner::generate("node-2").unwrap();
    let theirs = other.attest(&claims(&[1; 32], None, NOW)).unwrap();
    let mine = hearth_attest::cose::parse(&document).unwrap();
    let their_certificate =
        hearth_attest::Document::parse(&hearth_attest::cose::parse(&theirs).unwrap().payload)
            .unwrap()
            .certificate;
    let mut parsed = hearth_attest::Document::parse(&mine.payload).unwrap();
    parsed.certificate = their_certificate;
    let swapped = hearth_attest::cose::CoseSign1 {
        payload: parsed.to_cbor(),
        ..mine
    }
    .to_bytes();
    let report = verify_typed(HEARTH_DEV, &swapped, Some(&dev_policy()), Expected::at(NOW));
    assert_eq!(
        report.first_failure(),
        Some(CheckName::Signature),
        "{report}"
    );
}

#[test]
fn a_bundle_passes_when_its_evidence_binds_its_key() {
    let signer = DevSigner::generate("node-1").unwrap();
    let rek = [3u8; 32];
    let bundle = EvidenceBundle::new(
        "node-1",
        &rek,
        HEARTH_DEV,
        &signer.attest(&claims(&rek, None, NOW)).unwrap(),
    );
    assert!(verify_bundle(&bundle, Some(&dev_policy()), NOW, None).passed);

    // The router (or anyone) swaps in its own key: the evidence no longer binds it.
    let mut swapped = bundle.clone();
    swapped.rek = EvidenceBundle::new("x", &[4; 32], HEARTH_DEV, b"").rek;
    let report = verify_bundle(&swapped, Some(&dev_policy()), NOW, None);
    assert!(!report.passed);
    assert_eq!(
        report.reports[0].first_failure(),
        Some(CheckName::KeyBinding)
    );

    // An evidence type this verifier does not know is reported, not trusted.
    let mut unknown = bundle;
    unknown.evidence[0].kind = "arm-cca".into();
    let report = verify_bundle(&unknown, Some(&dev_policy()), NOW, None);
    assert!(!report.passed);
    assert_eq!(
        report.reports[0].first_failure(),
        Some(CheckName::EvidenceType)
    );
}

#[test]
fn verified_keys_are_cached_until_their_evidence_ages_and_a_new_key_is_verified() {
    let signer = DevSigner::generate("node-1").unwrap();
    let policy = Policy {
        max_age_seconds: 600,
        ..dev_policy()
    };
    let bundle_for = |rek: &[u8; 32], at| {
        EvidenceBundle::new(
            "node-1",
            rek,
            HEARTH_DEV,
            &signer.attest(&claims(rek, None, at)).unwrap(),
        )
    };
    let mut keys = VerifiedKeys::default();
    let first = bundle_for(&[1; 32], NOW);
    assert!(matches!(
        keys.judge(&first, &policy, NOW),
        Judgement::Verified(_)
    ));
    assert!(matches!(
        keys.judge(&first, &policy, NOW + Duration::from_secs(300)),
        Judgement::Cached
    ));
    // The key changed: verified again, whatever the cache holds.
    let rotated = bundle_for(&[2; 32], NOW);
    assert!(matches!(
        keys.judge(&rotated, &policy, NOW),
        Judgement::Verified(_)
    ));
    // Past the policy's age the old evidence no longer counts.
    let judged = keys.judge(&first, &policy, NOW + Duration::from_secs(601));
    assert!(matches!(judged, Judgement::Refused(_)), "{judged:?}");
    assert!(!judged.trusted());
    // A bundle that fails is never cached.
    let mut keys = VerifiedKeys::default();
    assert!(!keys.judge(&first, &Policy::default(), NOW).trusted());
    assert!(keys.is_empty());
}
