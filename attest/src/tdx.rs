//! Intel TDX evidence: a DCAP quote (version 4 or 5) and the collateral
//! Intel's provisioning service gives for it (TCB information and the
//! quoting enclave's identity, each signed by Intel's TCB signing key,
//! and the CRLs), verified offline by Phala's `dcap-qvl`: the PCK chain to
//! the pinned Intel SGX root, the QE report's signature by the PCK key and
//! its binding of the attestation key, the quote's signature by that key,
//! the collateral's signatures and validity, the platform's and the QE's
//! TCB levels. Hearth adds the root pin, the policy's TCB statuses, the
//! TD's measurements (MRTD, RTMR0-3), its debug attribute, freshness and
//! the REK binding, each a named check.
//!
//! The evidence document (type [`INTEL_TDX`](crate::evidence::INTEL_TDX))
//! is a CBOR map:
//!
//! ```text
//! { "quote": bstr, "collateral": tstr (JSON, as dcap-qvl and PCCS shape it),
//!   "issued_at": uint (Unix seconds) }
//! ```
//!
//! The TD report's 64 bytes of report data are
//! [`tee::report_data`](crate::tee::report_data) of the REK, `issued_at`
//! and the verifier's nonce, as for SEV-SNP.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::CheckName;

/// SHA-256 of the DER of Intel's SGX Root CA (CN=Intel SGX Root CA, valid
/// 2018 to 2049), which signs every PCK chain and the TCB signing key.
pub const INTEL_SGX_ROOT_SHA256: &str =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";
/// Largest document accepted.
pub const MAX_DOCUMENT: usize = 128 * 1024;
/// TD attribute bit 0: the TD runs in debug mode (its memory is readable).
const TD_DEBUG: u8 = 1;

/// The evidence document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxDocument {
    /// The DCAP quote.
    #[serde(with = "crate::tee::cbor_bytes")]
    pub quote: Vec<u8>,
    /// The collateral, JSON.
    pub collateral: String,
    /// When the node asked for the quote (Unix seconds).
    pub issued_at: u64,
}

/// Why TDX evidence, or the policy's TDX part, is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TdxError {
    /// The document is larger than [`MAX_DOCUMENT`].
    #[error("{0} bytes, more than {MAX_DOCUMENT}")]
    TooLarge(usize),
    /// The document is not the CBOR map this module writes.
    #[error("not a TDX document: {0}")]
    NotDocument(String),
    /// The quote is not a DCAP quote.
    #[error("the quote does not parse: {0}")]
    Quote(String),
    /// The collateral is not PCCS's JSON.
    #[error("the collateral is not PCCS's JSON: {0}")]
    Collateral(String),
    /// The pinned root is not 64 hex digits.
    #[error("root_sha256: 64 hex digits")]
    RootPin,
    /// A policy image's measurement is not usable.
    #[error("image `{image}`: {name} is not 48 bytes of hex")]
    Image {
        /// The image's name.
        image: String,
        /// Which measurement.
        name: &'static str,
    },
    /// The policy lists no image.
    #[error("the policy trusts no TD")]
    NoImage,
    /// The last image tried differs in this measurement.
    #[error("{name} is {found}, not image `{image}`'s")]
    Differs {
        /// Which measurement.
        name: &'static str,
        /// Its value found, shortened, or `absent`.
        found: String,
        /// The image.
        image: String,
    },
}

impl TdxDocument {
    /// Reads a document.
    pub fn parse(bytes: &[u8]) -> Result<TdxDocument, TdxError> {
        if bytes.len() > MAX_DOCUMENT {
            return Err(TdxError::TooLarge(bytes.len()));
        }
        ciborium::de::from_reader(bytes).map_err(|error| TdxError::NotDocument(error.to_string()))
    }

    /// The document's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(self, &mut out).expect("a document serializes");
        out
    }
}

/// A TD a client trusts: its build-time measurement and the runtime
/// measurements of its firmware, kernel and command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxImage {
    /// A name for people.
    pub name: String,
    /// MRTD, 96 hex digits.
    pub mrtd: String,
    /// RTMR0 to RTMR2 (firmware, kernel, command line and initrd), 96 hex
    /// digits each.
    pub rtmr0: String,
    /// See [`TdxImage::rtmr0`].
    pub rtmr1: String,
    /// See [`TdxImage::rtmr0`].
    pub rtmr2: String,
    /// RTMR3 (the application's), when pinned.
    #[serde(default)]
    pub rtmr3: Option<String>,
}

/// The policy's TDX part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// TDs trusted.
    #[serde(default)]
    pub images: Vec<TdxImage>,
    /// SHA-256 of the Intel root trusted.
    #[serde(default = "default_root")]
    pub root_sha256: String,
    /// TCB statuses accepted (`UpToDate`, `SWHardeningNeeded`,
    /// `ConfigurationNeeded`, `OutOfDate`, ...).
    #[serde(default = "default_statuses")]
    pub accepted_tcb_status: Vec<String>,
}

fn default_root() -> String {
    INTEL_SGX_ROOT_SHA256.to_owned()
}

fn default_statuses() -> Vec<String> {
    vec!["UpToDate".into()]
}

impl Default for TdxPolicy {
    fn default() -> TdxPolicy {
        TdxPolicy {
            images: Vec::new(),
            root_sha256: default_root(),
            accepted_tcb_status: default_statuses(),
        }
    }
}

impl TdxPolicy {
    /// Checks a policy's values.
    pub fn check(&self) -> Result<(), TdxError> {
        if self.root_sha256.len() != 64 || hex::decode(&self.root_sha256).is_err() {
            return Err(TdxError::RootPin);
        }
        for image in &self.images {
            let values = [
                ("mrtd", Some(&image.mrtd)),
                ("rtmr0", Some(&image.rtmr0)),
                ("rtmr1", Some(&image.rtmr1)),
                ("rtmr2", Some(&image.rtmr2)),
                ("rtmr3", image.rtmr3.as_ref()),
            ];
            for (name, value) in values {
                if let Some(value) = value
                    && hex::decode(value).map(|bytes| bytes.len()) != Ok(48)
                {
                    return Err(TdxError::Image {
                        image: image.name.clone(),
                        name,
                    });
                }
            }
        }
        Ok(())
    }

    /// The image whose every measurement the TD has.
    fn matching_image(&self, found: &BTreeMap<String, String>) -> Result<&TdxImage, TdxError> {
        let mut why = TdxError::NoImage;
        for image in &self.images {
            let wanted = [
                ("mrtd", Some(&image.mrtd)),
                ("rtmr0", Some(&image.rtmr0)),
                ("rtmr1", Some(&image.rtmr1)),
                ("rtmr2", Some(&image.rtmr2)),
                ("rtmr3", image.rtmr3.as_ref()),
            ];
            let differs = wanted.into_iter().find(|(name, value)| {
                value.is_some_and(|value| {
                    !found
                        .get(*name)
                        .is_some_and(|found| found.eq_ignore_ascii_case(value))
                })
            });
            match differs {
                None => return Ok(image),
                Some((name, _)) => {
                    why = TdxError::Differs {
                        name,
                        found: found
                            .get(name)
                            .map_or("absent", |value| crate::policy::short(value))
                            .to_owned(),
                        image: image.name.clone(),
                    };
                }
            }
        }
        Err(why)
    }
}

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
pub fn verify(
    bytes: &[u8],
    policy: Option<&crate::Policy>,
    expected: crate::Expected<'_>,
) -> crate::Report {
    let now = expected.now;
    let mut report = crate::verify::start(crate::evidence::INTEL_TDX, now);
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
    report.timestamp = Some(crate::report::rfc3339(Duration::from_secs(
        document.issued_at,
    )));
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
                    format!(
                        "Intel SGX Root CA (SHA-256 {})",
                        crate::policy::short(&found)
                    ),
                );
                true
            } else {
                report.fail(
                    CheckName::Root,
                    format!(
                        "the PCK chain ends at a root with SHA-256 {}, not the pinned {}",
                        crate::policy::short(&found),
                        crate::policy::short(&tdx_policy.root_sha256)
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
                format!(
                    "PCK chain to the root, valid at {}",
                    crate::report::rfc3339(now)
                ),
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

    crate::verify::check_freshness(
        Duration::from_secs(document.issued_at),
        policy,
        now,
        &mut report,
    );

    crate::tee::check_debug(
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
