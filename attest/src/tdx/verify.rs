//! The checks of a TDX evidence document, each a named line of the
//! [`Report`](crate::Report).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::report::CheckName;

use crate::claims::{Expected, check_debug, check_freshness};
use crate::policy::Policy;
use crate::report::{Report, rfc3339, short, start};

use super::format::*;
use super::policy::TdxPolicy;

/// TD attribute bit 0: the TD runs in debug mode (its memory is readable).
const TD_DEBUG: u8 = 1;

/// Which check a `dcap-qvl` refusal is about, from what it says.
fn classify(error: &str) -> CheckName {
    let lower = error.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|word| lower.contains(word));
    if has(&[
        "decode quote",
        "unsupported dcap",
        "unknown qe vendor",
        "must have version",
    ]) {
        CheckName::Format
    } else if has(&["root ca", "trust anchor", "unknownissuer", "unknown issuer"]) {
        CheckName::Chain
    } else if has(&["crl", "revoked"]) {
        if has(&["tcb status is invalid"]) {
            CheckName::Tcb
        } else {
            CheckName::Revocation
        }
    } else if has(&[
        "tcbinfo",
        "tcb info",
        "tcb_info",
        "qe identity",
        "qeidentity",
        "qe_identity",
        "fmspc",
    ]) {
        CheckName::Collateral
    } else if has(&["pck", "certificate"]) {
        CheckName::Chain
    } else if has(&["signature", "hash mismatch", "qe report"]) {
        CheckName::Signature
    } else if has(&["tcb", "tdx module"]) {
        CheckName::Tcb
    } else if has(&[
        "debug",
        "td attributes",
        "profiling",
        "migration",
        "sept_ve",
        "servtd",
    ]) {
        CheckName::DebugMode
    } else {
        CheckName::Signature
    }
}

/// The last certificate of the PEM chain in `pem`, as DER.
fn chain_root(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let last = text.rsplit("-----BEGIN CERTIFICATE-----").next()?;
    let body: String = last
        .split("-----END CERTIFICATE-----")
        .next()?
        .split_whitespace()
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Verifies a TDX evidence document.
pub fn verify(bytes: &[u8], policy: Option<&Policy>, expected: Expected<'_>) -> Report {
    let now = expected.now;
    let mut report = start(crate::evidence::INTEL_TDX, now);
    let parsed = TdxDocument::parse(bytes).and_then(|document| {
        let quote = dcap_qvl::quote::Quote::parse(&document.quote)
            .map_err(|error| TdxError::Quote(error.to_string()))?;
        let collateral: dcap_qvl::QuoteCollateralV3 = serde_json::from_str(&document.collateral)
            .map_err(|error| TdxError::Collateral(error.to_string()))?;
        Ok((document, quote, collateral))
    });
    let (document, quote, collateral) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            report.fail(CheckName::Format, error);
            return report.conclude();
        }
    };
    let Some(td) = quote.report.as_td10() else {
        report.fail(
            CheckName::Format,
            "the quote is not a TD's (an SGX enclave's?)",
        );
        return report.conclude();
    };
    report.pass(
        CheckName::Format,
        format!(
            "a TDX quote (version {}) with its collateral",
            quote.header.version
        ),
    );
    report.timestamp = Some(rfc3339(Duration::from_secs(document.issued_at)));
    report.measurements = BTreeMap::from([
        ("mrtd".to_owned(), hex::encode(td.mr_td)),
        ("rtmr0".to_owned(), hex::encode(td.rt_mr0)),
        ("rtmr1".to_owned(), hex::encode(td.rt_mr1)),
        ("rtmr2".to_owned(), hex::encode(td.rt_mr2)),
        ("rtmr3".to_owned(), hex::encode(td.rt_mr3)),
        ("report_data".to_owned(), hex::encode(td.report_data)),
    ]);
    report.tcb = Some(format!("tee_tcb_svn {}", hex::encode(td.tee_tcb_svn)));
    report.pass(CheckName::EvidenceType, "Intel TDX quote (DCAP)");

    let default_policy = TdxPolicy::default();
    let tdx_policy = policy.map_or(&default_policy, |policy| &policy.tdx);
    // Root: the quote's PCK chain ends at the pinned Intel root.
    let root = quote.raw_cert_chain().ok().and_then(chain_root);
    let root_ok = match &root {
        None => {
            report.fail(
                CheckName::Root,
                "the quote carries no PCK certificate chain",
            );
            false
        }
        Some(root) => {
            let found = crate::chain::fingerprint(root);
            if found.eq_ignore_ascii_case(&tdx_policy.root_sha256) {
                report.pass(
                    CheckName::Root,
                    format!("Intel SGX Root CA (SHA-256 {})", short(&found)),
                );
                true
            } else {
                report.fail(
                    CheckName::Root,
                    format!(
                        "the PCK chain ends at a root with SHA-256 {}, not the pinned {}",
                        short(&found),
                        short(&tdx_policy.root_sha256)
                    ),
                );
                false
            }
        }
    };

    // Everything dcap-qvl checks, in one pass: the first refusal is
    // named by the check it is about.
    let verified = match (root_ok, root) {
        (true, Some(root)) => {
            let verifier = dcap_qvl::verify::QuoteVerifier::new(root).allow_debug(true);
            Some(verifier.verify(&document.quote, &collateral, now.as_secs()))
        }
        _ => None,
    };
    let sub_checks = [
        CheckName::Chain,
        CheckName::Revocation,
        CheckName::Collateral,
        CheckName::Signature,
        CheckName::Tcb,
    ];
    match verified {
        None => {
            for check in sub_checks {
                report.skip(check, "no trusted root to verify against");
            }
        }
        Some(Err(error)) => {
            let text = format!("{error:#}");
            let failed = classify(&text);
            for check in sub_checks {
                if check == failed {
                    report.fail(check, text.clone());
                } else {
                    report.skip(check, format!("not reached: {}", failed.as_str()));
                }
            }
            if !sub_checks.contains(&failed) {
                report.fail(failed, text);
            }
        }
        Some(Ok(verified)) => {
            report.pass(
                CheckName::Chain,
                format!("PCK chain to the root, valid at {}", rfc3339(now)),
            );
            report.pass(
                CheckName::Revocation,
                "no certificate on Intel's current CRLs",
            );
            report.pass(
                CheckName::Collateral,
                "TCB info and QE identity signed by Intel and current",
            );
            report.pass(
                CheckName::Signature,
                "the QE vouches for the attestation key, which signed the quote",
            );
            let advisories = if verified.advisory_ids.is_empty() {
                String::new()
            } else {
                format!(" (advisories {})", verified.advisory_ids.join(", "))
            };
            report.tcb = Some(format!("{}{advisories}", verified.status));
            if tdx_policy
                .accepted_tcb_status
                .iter()
                .any(|status| status == &verified.status)
            {
                report.pass(CheckName::Tcb, format!("{}{advisories}", verified.status));
            } else {
                report.fail(
                    CheckName::Tcb,
                    format!(
                        "TCB status {}{advisories}; the policy accepts {}",
                        verified.status,
                        tdx_policy.accepted_tcb_status.join(", ")
                    ),
                );
            }
        }
    }

    check_freshness(
        Duration::from_secs(document.issued_at),
        policy,
        now,
        &mut report,
    );

    check_debug(
        policy,
        td.td_attributes[0] & TD_DEBUG != 0,
        "the TD runs in debug mode",
        &mut report,
    );

    match policy {
        None => report.skip(
            CheckName::Measurements,
            "no policy: measurements printed below",
        ),
        Some(_) => match tdx_policy.matching_image(&report.measurements) {
            Ok(image) => report.pass(CheckName::Measurements, format!("image `{}`", image.name)),
            Err(why) => report.fail(CheckName::Measurements, why),
        },
    }

    crate::tee::check_binding(&td.report_data, document.issued_at, expected, &mut report);
    report.conclude()
}
