//! Verification: evidence, a policy and the time in, a [`Report`] out.
//! Pure: no clock, no network, no files.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::chain::{self, AWS_NITRO_ROOT_SHA256};
use crate::claims::{Expected, check_freshness};
use crate::cose::{self, CoseSign1};
use crate::document::Document;
use crate::evidence::{AMD_SEV_SNP, AWS_NITRO, EvidenceBundle, HEARTH_DEV, INTEL_TDX, rek_binding};
use crate::policy::Policy;
use crate::report::{CheckName, Report, rfc3339, short, start};

/// The outcome for a whole bundle: one report per piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BundleReport {
    /// The node.
    pub node: String,
    /// The REK, unpadded base64url.
    pub rek: String,
    /// One report per evidence item, in the bundle's order.
    pub reports: Vec<Report>,
    /// Whether some item of evidence passed every check.
    pub passed: bool,
}

/// Verifies every piece of evidence in `bundle`; it passes when one does.
/// Each must bind the bundle's REK.
pub fn verify_bundle(
    bundle: &EvidenceBundle,
    policy: Option<&Policy>,
    now: Duration,
    nonce: Option<&[u8]>,
) -> BundleReport {
    let rek = bundle.rek_bytes().ok();
    let reports: Vec<Report> = bundle
        .evidence
        .iter()
        .map(|item| {
            let expected = Expected {
                now,
                nonce,
                rek: rek.as_ref(),
            };
            match URL_SAFE_NO_PAD.decode(&item.document) {
                Ok(document) => verify_typed(&item.kind, &document, policy, expected),
                Err(_) => {
                    let mut report = start(&item.kind, now);
                    report.fail(CheckName::Format, "the document is not unpadded base64url");
                    report.conclude()
                }
            }
        })
        .collect();
    let passed = rek.is_some() && reports.iter().any(|report| report.passed);
    BundleReport {
        node: bundle.node.clone(),
        rek: bundle.rek.clone(),
        reports,
        passed,
    }
}

/// Verifies one document of evidence type `kind`.
pub fn verify_typed(
    kind: &str,
    document: &[u8],
    policy: Option<&Policy>,
    expected: Expected<'_>,
) -> Report {
    match kind {
        AWS_NITRO => verify_nitro(document, policy, expected),
        HEARTH_DEV => verify_dev(document, policy, expected),
        AMD_SEV_SNP => crate::snp::verify(document, policy, expected),
        INTEL_TDX => crate::tdx::verify(document, policy, expected),
        other => {
            let mut report = start(other, expected.now);
            report.fail(
                CheckName::EvidenceType,
                format!("`{other}` is not a kind of evidence this verifier knows"),
            );
            report.conclude()
        }
    }
}

/// Parses the COSE structure and the document, recording the `format` check.
fn parse(bytes: &[u8], report: &mut Report) -> Option<(CoseSign1, Document)> {
    let parsed = cose::parse(bytes)
        .map_err(|error| error.to_string())
        .and_then(|signed| {
            Document::parse(&signed.payload)
                .map(|document| (signed, document))
                .map_err(|error| error.to_string())
        });
    match parsed {
        Ok((signed, document)) => {
            report.pass(
                CheckName::Format,
                "COSE_Sign1 (ES384) over an attestation document",
            );
            report.module_id = Some(document.module_id.clone());
            report.timestamp = Some(rfc3339(Duration::from_millis(document.timestamp_ms)));
            report.pcrs = document
                .pcrs
                .iter()
                .map(|(index, value)| (*index, hex::encode(value)))
                .collect();
            report.public_key = document.public_key.as_ref().map(hex::encode);
            Some((signed, document))
        }
        Err(error) => {
            report.fail(CheckName::Format, error);
            None
        }
    }
}

/// Verifies an AWS Nitro attestation document.
pub fn verify_nitro(bytes: &[u8], policy: Option<&Policy>, expected: Expected<'_>) -> Report {
    let mut report = start(AWS_NITRO, expected.now);
    let Some((signed, document)) = parse(bytes, &mut report) else {
        return report.conclude();
    };
    report.pass(CheckName::EvidenceType, "AWS Nitro Enclaves attestation");
    let root = policy.map_or(AWS_NITRO_ROOT_SHA256, |policy| policy.root_sha256.as_str());
    match chain::verify(
        &document.certificate,
        &document.cabundle,
        root,
        expected.now,
    ) {
        Ok(()) => {
            report.pass(
                CheckName::Root,
                format!("the pinned root (SHA-256 {})", short(root)),
            );
            report.pass(
                CheckName::Chain,
                format!(
                    "{} certificates valid at {}",
                    document.cabundle.len() + 1,
                    rfc3339(expected.now)
                ),
            );
        }
        Err(error @ (chain::ChainError::NoBundle | chain::ChainError::RootNotPinned { .. })) => {
            report.fail(CheckName::Root, error.to_string());
            report.skip(CheckName::Chain, "no pinned root to chain to");
        }
        Err(error) => {
            report.pass(
                CheckName::Root,
                format!("the pinned root (SHA-256 {})", short(root)),
            );
            report.fail(CheckName::Chain, error.to_string());
        }
    }
    check_signature(&signed, &document, &mut report);
    check_claims(&document, policy, expected, &mut report);
    report.conclude()
}

/// Verifies Hearth dev evidence: a document of the same shape signed by the
/// certificate it carries, with no chain. Refused unless the policy allows
/// dev evidence.
pub fn verify_dev(bytes: &[u8], policy: Option<&Policy>, expected: Expected<'_>) -> Report {
    let mut report = start(HEARTH_DEV, expected.now);
    let Some((signed, document)) = parse(bytes, &mut report) else {
        return report.conclude();
    };
    if policy.is_some_and(|policy| policy.allow_dev_evidence) {
        report.pass(
            CheckName::EvidenceType,
            "dev evidence, allowed by the policy (no hardware stands behind it)",
        );
    } else {
        report.fail(
            CheckName::EvidenceType,
            "dev evidence is signed by a key the node made itself; only a policy with `allow_dev_evidence` accepts it",
        );
    }
    if document.cabundle.is_empty() {
        report.skip(CheckName::Root, "dev evidence has no root of trust");
        report.skip(CheckName::Chain, "dev evidence has no chain");
    } else {
        report.fail(CheckName::Root, "dev evidence must not carry a chain");
    }
    check_signature(&signed, &document, &mut report);
    check_claims(&document, policy, expected, &mut report);
    report.conclude()
}

fn check_signature(signed: &CoseSign1, document: &Document, report: &mut Report) {
    match chain::verify_signature(
        &document.certificate,
        &signed.signed_bytes(),
        &signed.der_signature(),
    ) {
        Ok(()) => report.pass(CheckName::Signature, "signed by the document's certificate"),
        Err(error) => report.fail(
            CheckName::Signature,
            format!("the signature does not verify with the document's certificate ({error:?})"),
        ),
    }
}

/// The checks on what the document says: age, debug mode, measurements,
/// module, nonce, key.
fn check_claims(
    document: &Document,
    policy: Option<&Policy>,
    expected: Expected<'_>,
    report: &mut Report,
) {
    check_freshness(
        Duration::from_millis(document.timestamp_ms),
        policy,
        expected.now,
        report,
    );

    let debug = document.debug_mode();
    match policy {
        None if debug => report.skip(
            CheckName::DebugMode,
            "no policy: the enclave ran in debug mode (PCR0-2 zero)",
        ),
        None => report.skip(
            CheckName::DebugMode,
            "no policy: the enclave did not run in debug mode",
        ),
        Some(policy) if debug && policy.allow_debug => {
            report.pass(CheckName::DebugMode, "debug mode, allowed by the policy")
        }
        Some(_) if debug => report.fail(
            CheckName::DebugMode,
            "the enclave ran in debug mode (PCR0-2 zero): its memory can be read from outside",
        ),
        Some(_) => report.pass(CheckName::DebugMode, "not in debug mode"),
    }

    match policy {
        None => report.skip(
            CheckName::Measurements,
            "no policy: measurements printed below",
        ),
        Some(policy) => match policy.matching_image(&document.pcrs) {
            Ok(image) => report.pass(CheckName::Measurements, format!("image `{}`", image.name)),
            Err(why) => report.fail(CheckName::Measurements, why),
        },
    }

    match policy.and_then(|policy| policy.module_id.as_deref()) {
        None => report.skip(CheckName::ModuleId, "any module"),
        Some(wanted) if wanted == document.module_id => report.pass(CheckName::ModuleId, wanted),
        Some(wanted) => report.fail(
            CheckName::ModuleId,
            format!("`{}`, the policy wants `{wanted}`", document.module_id),
        ),
    }

    match (expected.nonce, document.nonce.as_deref()) {
        (None, _) => report.skip(CheckName::Nonce, "no nonce expected"),
        (Some(wanted), Some(found)) if wanted == found => {
            report.pass(CheckName::Nonce, "the nonce sent")
        }
        (Some(_), Some(found)) => report.fail(
            CheckName::Nonce,
            format!(
                "the document carries another nonce ({})",
                short(&hex::encode(found))
            ),
        ),
        (Some(_), None) => report.fail(CheckName::Nonce, "the document carries no nonce"),
    }

    match (expected.rek, document.public_key.as_deref()) {
        (None, _) => report.skip(CheckName::KeyBinding, "no key expected"),
        (Some(rek), Some(found)) if found == rek_binding(rek) => report.pass(
            CheckName::KeyBinding,
            "the document binds the node's request key",
        ),
        (Some(_), _) => report.fail(
            CheckName::KeyBinding,
            "the document's public_key is not the bundle's request key",
        ),
    }
}
