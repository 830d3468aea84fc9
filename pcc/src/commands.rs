//! What `hearth-pcc`'s verbs do, apart from parsing arguments: pure
//! functions from inputs to the text printed and the verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_attest::document::Document;
use hearth_attest::evidence::{AWS_NITRO, Input};
use hearth_attest::policy::{Image, Policy};
use hearth_attest::{Expected, Judgement, cose, read_input, verify_bundle, verify_typed};
use serde_json::json;

use crate::client::JudgedNode;

/// Why `verify` or `policy` cannot read what it was given.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Neither a bundle nor a document (raw or base64).
    #[error(transparent)]
    Input(#[from] hearth_attest::evidence::BundleError),
    /// A bundle's document is not base64.
    #[error("the bundle's document is not base64: {0}")]
    NotBase64(base64::DecodeError),
    /// Not a COSE_Sign1 structure.
    #[error(transparent)]
    Cose(#[from] hearth_attest::cose::CoseError),
    /// Not a Nitro attestation document.
    #[error(transparent)]
    Document(#[from] hearth_attest::document::DocumentError),
    /// A bare SEV-SNP report given where a Nitro document goes.
    #[error(
        "this is a bare AMD SEV-SNP attestation report, not a Nitro document. SEV-SNP evidence \
         is verified as an amd-sev-snp document: the report with its VCEK, ASK and ARK (and \
         AMD's CRL), as a node sends it with `--evidence tsm` in an evidence bundle; see \
         docs/private-compute.md, \"What a client checks\""
    )]
    BareSevSnpReport,
    /// A bare TDX quote given where a Nitro document goes.
    #[error(
        "this is a bare Intel TDX quote, not a Nitro document. TDX evidence is verified as an \
         intel-tdx document: the quote with its PCCS collateral, as a node sends it with \
         `--evidence tsm` in an evidence bundle; see docs/private-compute.md, \"What a client \
         checks\""
    )]
    BareTdxQuote,
    /// A bundle without evidence.
    #[error("the bundle holds no evidence")]
    EmptyBundle,
    /// nitro-cli's output, but not whole or not usable.
    #[error("{0}")]
    NitroCli(String),
    /// The measurements found make no usable policy.
    #[error("the measurements do not make a usable policy: {0}")]
    Unusable(hearth_attest::PolicyError),
}

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// `hearth-pcc verify`: the report on `bytes` (a raw Nitro document, its
/// base64, or a Hearth bundle) at `at`, and whether it passed.
///
/// Refused input is an [`InputError`]; evidence that is read but fails a
/// check is a report that did not pass.
pub fn verify(
    bytes: &[u8],
    at: Duration,
    policy: Option<&Policy>,
    nonce: Option<&[u8]>,
    output: Output,
) -> Result<(bool, String), InputError> {
    match read_input(bytes)? {
        Input::Document(document) => {
            match hearth_attest::evidence::raw_kind(&document) {
                hearth_attest::evidence::RawEvidence::SevSnpReport => {
                    return Err(InputError::BareSevSnpReport);
                }
                hearth_attest::evidence::RawEvidence::TdxQuote => {
                    return Err(InputError::BareTdxQuote);
                }
                _ => {}
            }
            let report = verify_typed(
                AWS_NITRO,
                &document,
                policy,
                Expected {
                    now: at,
                    nonce,
                    rek: None,
                },
            );
            let text = match output {
                Output::Text => report.to_string(),
                Output::Json => to_json(&report),
            };
            Ok((report.passed, text))
        }
        Input::Bundle(bundle) => {
            let report = verify_bundle(&bundle, policy, at, nonce);
            let text = match output {
                Output::Json => to_json(&report),
                Output::Text => {
                    let mut text =
                        format!("node:       {}\nrek:        {}\n", report.node, report.rek);
                    for item in &report.reports {
                        text.push_str(&item.to_string());
                        text.push('\n');
                    }
                    text.push_str(if report.passed {
                        "bundle: VERIFIED"
                    } else {
                        "bundle: REFUSED"
                    });
                    text
                }
            };
            Ok((report.passed, text))
        }
    }
}

/// `hearth-pcc policy`: a policy trusting exactly one image, for an admin to
/// review and keep. `bytes` is either what `nitro-cli build-enclave` or
/// `nitro-cli describe-eif` printed for the enclave image file (its
/// `Measurements`: PCR0, 1, 2, and 8 when the image is signed), or a Nitro
/// document or bundle from an enclave the admin trusts (its PCR0, 1, 2 and
/// 8). A document is not verified here: run `verify` on it first.
pub fn policy_from(bytes: &[u8], name: &str) -> Result<String, InputError> {
    let pcrs = match nitro_cli_measurements(bytes)? {
        Some(pcrs) => pcrs,
        None => document_pcrs(bytes)?,
    };
    let policy = Policy {
        images: vec![Image {
            name: name.to_owned(),
            pcrs,
        }],
        ..Policy::default()
    };
    policy.check().map_err(InputError::Unusable)?;
    Ok(serde_json::to_string_pretty(&policy).expect("policies serialize"))
}

/// The PCRs in nitro-cli's output (a line of text, then JSON with
/// `Measurements`), or `None` when `bytes` is not that.
fn nitro_cli_measurements(bytes: &[u8]) -> Result<Option<BTreeMap<u8, String>>, InputError> {
    let nitro_cli = |why: String| InputError::NitroCli(why);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    let Some(start) = text.find('{').filter(|_| text.contains("\"Measurements\"")) else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(text[start..].trim()).map_err(|error| {
        nitro_cli(format!(
            "nitro-cli's output is not whole JSON after its first line: {error}"
        ))
    })?;
    let measurements = value
        .get("Measurements")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| nitro_cli("nitro-cli's output has no Measurements object".into()))?;
    if let Some(algorithm) = measurements
        .get("HashAlgorithm")
        .and_then(serde_json::Value::as_str)
        && !algorithm.starts_with("Sha384")
    {
        return Err(nitro_cli(format!(
            "the measurements use {algorithm}; Nitro documents use SHA-384"
        )));
    }
    let mut pcrs = BTreeMap::new();
    for index in [0u8, 1, 2, 8] {
        if let Some(value) = measurements.get(&format!("PCR{index}")) {
            let hex = value
                .as_str()
                .filter(|hex| hex.len() == 96 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
                .ok_or_else(|| nitro_cli(format!("PCR{index} is not 48 bytes of hex")))?;
            pcrs.insert(index, hex.to_ascii_lowercase());
        }
    }
    if !(0..=2).all(|index| pcrs.contains_key(&index)) {
        return Err(nitro_cli(
            "nitro-cli's output lacks PCR0, PCR1 or PCR2".into(),
        ));
    }
    Ok(Some(pcrs))
}

/// PCR0, 1, 2 and 8 of the Nitro document in `bytes` (raw, base64 or the
/// first evidence of a bundle).
fn document_pcrs(bytes: &[u8]) -> Result<BTreeMap<u8, String>, InputError> {
    let document = match read_input(bytes)? {
        Input::Document(document) => document,
        Input::Bundle(bundle) => {
            let first = bundle.evidence.first().ok_or(InputError::EmptyBundle)?;
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                &first.document,
            )
            .map_err(InputError::NotBase64)?
        }
    };
    let signed = cose::parse(&document)?;
    let parsed = Document::parse(&signed.payload)?;
    Ok([0u8, 1, 2, 8]
        .iter()
        .filter_map(|index| {
            parsed
                .pcrs
                .get(index)
                .map(|value| (*index, hex::encode(value)))
        })
        .collect())
}

/// `hearth-pcc nodes`: each node with its verdict (and why, when refused).
pub fn nodes(judged: &[JudgedNode], output: Output) -> String {
    match output {
        Output::Json => {
            let nodes: Vec<_> = judged
                .iter()
                .map(|node| {
                    let report = match &node.judgement {
                        Judgement::Verified(report) | Judgement::Refused(report) => {
                            serde_json::to_value(report).unwrap_or_default()
                        }
                        Judgement::Cached => json!(null),
                    };
                    json!({
                        "node": node.entry.node,
                        "models": node.entry.models,
                        "load": node.entry.load,
                        "verified": node.judgement.trusted(),
                        "report": report,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&json!({ "nodes": nodes })).expect("values serialize")
        }
        Output::Text => {
            let mut text = String::new();
            for node in judged {
                text.push_str(&format!(
                    "{} ({}; {}/{} busy): {}\n",
                    node.entry.node,
                    node.entry.models.join(", "),
                    node.entry.load.active,
                    node.entry.load.capacity,
                    if node.judgement.trusted() {
                        "VERIFIED"
                    } else {
                        "REFUSED"
                    }
                ));
                if let Judgement::Verified(report) | Judgement::Refused(report) = &node.judgement {
                    for item in &report.reports {
                        for line in item.to_string().lines() {
                            text.push_str("    ");
                            text.push_str(line);
                            text.push('\n');
                        }
                    }
                }
            }
            if judged.is_empty() {
                text.push_str("no nodes in rotation\n");
            }
            text
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("reports serialize")
}
