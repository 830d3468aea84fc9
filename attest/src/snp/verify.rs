//! The checks of an SEV-SNP evidence document, each a named line of the
//! [`Report`](crate::Report).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::claims::{Expected, check_debug, check_freshness};
use crate::policy::Policy;
use crate::report::{Report, rfc3339, short, start};

use super::format::*;
use super::policy::SnpPolicy;

/// Measurements as a report shows them.
pub fn shown(report: &SnpReport) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("measurement".to_owned(), hex::encode(report.measurement)),
        ("host_data".to_owned(), hex::encode(report.host_data)),
        ("report_data".to_owned(), hex::encode(report.report_data)),
        ("chip_id".to_owned(), hex::encode(report.chip_id)),
    ])
}

/// Verifies an SEV-SNP evidence document.
pub fn verify(bytes: &[u8], policy: Option<&Policy>, expected: Expected<'_>) -> Report {
    use crate::report::CheckName;
    let now = expected.now;
    let mut report = start(crate::evidence::AMD_SEV_SNP, now);
    let document = match SnpDocument::parse(bytes) {
        Ok(document) => document,
        Err(error) => {
            report.fail(CheckName::Format, error);
            return report.conclude();
        }
    };
    let parts = parse_report(&document.report).and_then(|snp| {
        let vcek = Certificate::parse(&document.vcek, "VCEK")?;
        let ask = Certificate::parse(&document.ask, "ASK")?;
        let ark = Certificate::parse(&document.ark, "ARK")?;
        Ok((snp, vcek, ask, ark))
    });
    let (snp, vcek, ask, ark) = match parts {
        Ok(parts) => parts,
        Err(error) => {
            report.fail(CheckName::Format, error);
            return report.conclude();
        }
    };
    report.pass(
        CheckName::Format,
        format!(
            "an SEV-SNP report (version {}) with its VCEK, ASK and ARK",
            snp.version
        ),
    );
    report.timestamp = Some(rfc3339(Duration::from_secs(document.issued_at)));
    report.measurements = shown(&snp);
    report.tcb = Some(snp.reported_tcb.to_string());
    report.pass(CheckName::EvidenceType, "AMD SEV-SNP attestation report");
    let snp_policy = policy.map(|policy| &policy.sev_snp);
    let default_policy = SnpPolicy::default();

    // Root: the ARK is AMD's (or the policy's), and signs itself.
    let ark_sha256 = fingerprint(&document.ark);
    let trusted = snp_policy
        .unwrap_or(&default_policy)
        .trusts_ark(&ark_sha256);
    let root_ok = trusted && ark.signed_by(&ark).is_ok();
    if !trusted {
        report.fail(
            CheckName::Root,
            format!(
                "the ARK (SHA-256 {}) is not a root the policy trusts",
                short(&ark_sha256)
            ),
        );
        report.skip(CheckName::Chain, "no trusted root to chain to");
    } else if let Err(why) = ark.signed_by(&ark) {
        report.fail(
            CheckName::Root,
            format!("the ARK does not sign itself: {why}"),
        );
        report.skip(CheckName::Chain, "no trusted root to chain to");
    } else {
        let product = amd_product(&ark_sha256).unwrap_or("pinned by the policy");
        report.pass(
            CheckName::Root,
            format!("{} ({product})", ark.common_name()),
        );
        let chain = ask
            .signed_by(&ark)
            .and_then(|()| vcek.signed_by(&ask))
            .and_then(|()| {
                [(&ark, "ARK"), (&ask, "ASK"), (&vcek, "VCEK")]
                    .into_iter()
                    .find(|(certificate, _)| !certificate.valid_at(now))
                    .map_or(Ok(()), |(_, what)| {
                        Err(SnpError::Expired {
                            what,
                            at: rfc3339(now),
                        })
                    })
            });
        match chain {
            Ok(()) => report.pass(
                CheckName::Chain,
                format!("ARK signs ASK signs VCEK, valid at {}", rfc3339(now)),
            ),
            Err(why) => report.fail(CheckName::Chain, why),
        }
    }

    // Revocation: AMD's CRL, when the evidence carries one.
    match (&document.crl, root_ok) {
        (None, _) if snp_policy.is_some_and(|policy| policy.require_crl) => report.fail(
            CheckName::Revocation,
            "the policy requires AMD's CRL; the evidence carries none",
        ),
        (None, _) => report.skip(CheckName::Revocation, "the evidence carries no CRL"),
        (Some(_), false) => report.skip(
            CheckName::Revocation,
            "no trusted root to check the CRL with",
        ),
        (Some(crl), true) => match read_crl(crl, &ark, now) {
            Ok(revocations) => {
                let revoked =
                    [(&ask, "ASK"), (&vcek, "VCEK")]
                        .into_iter()
                        .find(|(certificate, _)| {
                            revocations
                                .serials
                                .iter()
                                .any(|serial| serial == certificate.serial())
                        });
                match revoked {
                    Some((_, name)) => report.fail(
                        CheckName::Revocation,
                        format!("AMD's CRL revokes the {name}"),
                    ),
                    None => report.pass(
                        CheckName::Revocation,
                        "neither ASK nor VCEK is on AMD's current CRL",
                    ),
                }
            }
            Err(why) => report.fail(CheckName::Revocation, why),
        },
    }

    match snp.verify_signature(vcek.public_key()) {
        Ok(()) => report.pass(CheckName::Signature, "signed by the VCEK (ECDSA P-384)"),
        Err(why) => report.fail(CheckName::Signature, why),
    }

    // TCB: what the report states is what the VCEK was made for, on that
    // chip, and no older than the policy's least.
    let tcb = vcek.vcek_tcb().and_then(|certified| {
        if certified != snp.reported_tcb {
            return Err(SnpError::TcbMismatch {
                reported: snp.reported_tcb,
                certified,
            });
        }
        if snp.chip_id.iter().any(|byte| *byte != 0)
            && vcek.vcek_chip_id().is_some_and(|hwid| hwid != snp.chip_id)
        {
            return Err(SnpError::OtherChip);
        }
        match snp_policy.and_then(|policy| policy.min_tcb.as_ref()) {
            Some(minimum) if !snp.reported_tcb.at_least(minimum) => Err(SnpError::TcbTooOld {
                reported: snp.reported_tcb,
                minimum: *minimum,
            }),
            _ => Ok(()),
        }
    });
    match tcb {
        Ok(()) => report.pass(CheckName::Tcb, snp.reported_tcb.to_string()),
        Err(why) => report.fail(CheckName::Tcb, why),
    }

    check_freshness(
        Duration::from_secs(document.issued_at),
        policy,
        now,
        &mut report,
    );

    check_debug(
        policy,
        snp.debug_allowed(),
        "the guest policy lets the hypervisor debug the guest",
        &mut report,
    );

    match snp_policy {
        None => report.skip(
            CheckName::Measurements,
            "no policy: the measurement is printed below",
        ),
        Some(snp_policy) => match snp_policy.matching_image(&snp) {
            Ok(image) => report.pass(CheckName::Measurements, format!("image `{}`", image.name)),
            Err(why) => report.fail(CheckName::Measurements, why),
        },
    }

    crate::tee::check_binding(&snp.report_data, document.issued_at, expected, &mut report);
    report.conclude()
}
