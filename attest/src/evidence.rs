//! The evidence bundle a compute node publishes: its request encryption key
//! (REK) and a typed list of evidence that binds it.
//!
//! ```json
//! {"v": 1, "node": "n1", "rek": "<b64url X25519 key>",
//!  "evidence": [{"type": "aws-nitro", "document": "<b64url COSE_Sign1>"}]}
//! ```
//!
//! Each document's `public_key` is [`rek_binding`] of the REK. Types a
//! verifier does not know are reported and skipped, so SEV-SNP or TDX
//! evidence can be added without a new bundle version.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// Bundle format version.
pub const BUNDLE_VERSION: u8 = 1;

/// What precedes the REK in a document's `public_key`, so that a key bound
/// for another purpose is never taken for a REK.
pub const REK_BINDING_PREFIX: &[u8] = b"hearth-rek-x25519-v1:";

/// Largest bundle accepted, in bytes of JSON.
pub const MAX_BUNDLE: usize = 256 * 1024;

/// Evidence from AWS Nitro Enclaves: an NSM attestation document.
pub const AWS_NITRO: &str = "aws-nitro";
/// Hearth dev evidence: the same document shape, signed by a key the node
/// made at start; no hardware stands behind it.
pub const HEARTH_DEV: &str = "hearth-dev";
/// Evidence from AMD SEV-SNP: an attestation report with its VCEK and
/// AMD's chain ([`crate::snp`]).
pub const AMD_SEV_SNP: &str = "amd-sev-snp";
/// Evidence from Intel TDX: a DCAP quote with its collateral
/// ([`crate::tdx`]).
pub const INTEL_TDX: &str = "intel-tdx";

/// What a dev document states as its measurements: PCR0 the SHA-384 of the
/// node's executable, PCR1 a fixed marker (no kernel is measured), PCR2 the
/// SHA-384 of an image label the operator chose.
pub fn dev_pcrs(executable: &[u8], image_label: &str) -> std::collections::BTreeMap<u8, Vec<u8>> {
    use sha2::{Digest as _, Sha384};

    std::collections::BTreeMap::from([
        (0, Sha384::digest(executable).to_vec()),
        (
            1,
            Sha384::digest(b"hearth-dev: no kernel is measured").to_vec(),
        ),
        (2, Sha384::digest(image_label.as_bytes()).to_vec()),
    ])
}

/// The bytes a document's `public_key` holds for `rek`.
pub fn rek_binding(rek: &[u8; 32]) -> Vec<u8> {
    [REK_BINDING_PREFIX, rek.as_slice()].concat()
}

/// One piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Its type: [`AWS_NITRO`], [`HEARTH_DEV`], or one added later.
    #[serde(rename = "type")]
    pub kind: String,
    /// The document, unpadded base64url.
    pub document: String,
}

/// A node's key and the evidence binding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBundle {
    /// [`BUNDLE_VERSION`].
    pub v: u8,
    /// The node's id at the router.
    pub node: String,
    /// The request encryption key, unpadded base64url of 32 bytes.
    pub rek: String,
    /// Evidence binding `rek`, at least one.
    pub evidence: Vec<Evidence>,
}

/// Why bytes are not a usable bundle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// Too large.
    #[error("the bundle is {0} bytes, more than {MAX_BUNDLE}")]
    TooLarge(usize),
    /// Not the JSON shape.
    #[error("not an evidence bundle: {0}")]
    Syntax(String),
    /// A field is out of its rules.
    #[error("evidence bundle: {0}")]
    Invalid(&'static str),
}

impl EvidenceBundle {
    /// Parses and checks a bundle.
    pub fn parse(bytes: &[u8]) -> Result<EvidenceBundle, BundleError> {
        if bytes.len() > MAX_BUNDLE {
            return Err(BundleError::TooLarge(bytes.len()));
        }
        let bundle: EvidenceBundle = serde_json::from_slice(bytes)
            .map_err(|error| BundleError::Syntax(error.to_string()))?;
        bundle.check()?;
        Ok(bundle)
    }

    /// Checks the rules a parsed bundle must meet.
    pub fn check(&self) -> Result<(), BundleError> {
        if self.v != BUNDLE_VERSION {
            return Err(BundleError::Invalid("unsupported version"));
        }
        if !valid_node_id(&self.node) {
            return Err(BundleError::Invalid(
                "`node` must be 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        self.rek_bytes()?;
        if self.evidence.is_empty() || self.evidence.len() > 4 {
            return Err(BundleError::Invalid("`evidence` must hold 1 to 4 items"));
        }
        for item in &self.evidence {
            if item.kind.is_empty() || item.kind.len() > 32 {
                return Err(BundleError::Invalid("an evidence `type` is empty or long"));
            }
            URL_SAFE_NO_PAD
                .decode(&item.document)
                .map_err(|_| BundleError::Invalid("a `document` is not unpadded base64url"))?;
        }
        Ok(())
    }

    /// The REK's bytes.
    pub fn rek_bytes(&self) -> Result<[u8; 32], BundleError> {
        URL_SAFE_NO_PAD
            .decode(&self.rek)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(BundleError::Invalid(
                "`rek` must be 32 bytes of unpadded base64url",
            ))
    }

    /// A bundle for `rek` with one document of `kind`.
    pub fn new(node: &str, rek: &[u8; 32], kind: &str, document: &[u8]) -> EvidenceBundle {
        EvidenceBundle {
            v: BUNDLE_VERSION,
            node: node.to_owned(),
            rek: URL_SAFE_NO_PAD.encode(rek),
            evidence: vec![Evidence {
                kind: kind.to_owned(),
                document: URL_SAFE_NO_PAD.encode(document),
            }],
        }
    }
}

/// Whether `id` is a node id: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Evidence as a person hands it to the verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A raw Nitro document.
    Document(Vec<u8>),
    /// A Hearth evidence bundle.
    Bundle(EvidenceBundle),
}

/// Reads a file's bytes as a bundle (JSON), a raw CBOR document, or a
/// document in base64 (standard or url-safe, padded or not, with line
/// breaks).
pub fn read_input(bytes: &[u8]) -> Result<Input, BundleError> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    if let Some(text) = text.filter(|text| text.starts_with('{')) {
        return EvidenceBundle::parse(text.as_bytes()).map(Input::Bundle);
    }
    if let Some(text) = text {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let unpadded = compact.trim_end_matches('=');
        let decoded = URL_SAFE_NO_PAD
            .decode(unpadded)
            .or_else(|_| STANDARD.decode(pad(unpadded)));
        if let Ok(document) = decoded {
            return Ok(Input::Document(document));
        }
    }
    Ok(Input::Document(bytes.to_vec()))
}

/// What a raw evidence file is, by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawEvidence {
    /// A COSE_Sign1 document, as AWS Nitro's NSM signs.
    NitroDocument,
    /// A bare AMD SEV-SNP attestation report (no certificates with it).
    SevSnpReport,
    /// A bare Intel TDX quote (no collateral with it).
    TdxQuote,
    /// Nothing Hearth recognises.
    Unknown,
}

/// Which kind of raw evidence `bytes` are, without verifying anything.
pub fn raw_kind(bytes: &[u8]) -> RawEvidence {
    match bytes.first() {
        // An array of four (COSE_Sign1 untagged), or CBOR tag 18.
        Some(0x84 | 0xD2) => return RawEvidence::NitroDocument,
        None => return RawEvidence::Unknown,
        _ => {}
    }
    if crate::snp::format::parse_report(bytes).is_ok() {
        return RawEvidence::SevSnpReport;
    }
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // A DCAP quote: version 4 or 5, an attestation key of type 2 or 3,
    // and TDX's TEE type (0x81).
    if matches!(u16_at(0), Some(4 | 5))
        && matches!(u16_at(2), Some(2 | 3))
        && u32_at(4) == Some(0x81)
    {
        return RawEvidence::TdxQuote;
    }
    RawEvidence::Unknown
}

fn pad(text: &str) -> String {
    let mut padded = text.to_owned();
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_round_trips_and_its_rules_hold() {
        let bundle = EvidenceBundle::new("node-1", &[7; 32], AWS_NITRO, b"doc");
        let text = serde_json::to_vec(&bundle).unwrap();
        assert_eq!(EvidenceBundle::parse(&text).unwrap(), bundle);
        assert_eq!(bundle.rek_bytes().unwrap(), [7; 32]);

        let mut bad = bundle.clone();
        bad.node = "a b".into();
        assert!(bad.check().is_err());
        let mut bad = bundle.clone();
        bad.rek = URL_SAFE_NO_PAD.encode([1; 31]);
        assert!(bad.check().is_err());
        let mut bad = bundle.clone();
        bad.evidence.clear();
        assert!(bad.check().is_err());
        let mut bad = bundle;
        bad.evidence[0].document = "not base64!".into();
        assert!(bad.check().is_err());
        assert!(matches!(
            EvidenceBundle::parse(br#"{"v":1,"node":"n","rek":"","evidence":[],"extra":1}"#),
            Err(BundleError::Syntax(_))
        ));
    }

    #[test]
    fn input_is_read_as_bundle_base64_or_raw() {
        let raw = vec![0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xff, 0xfe];
        assert_eq!(read_input(&raw).unwrap(), Input::Document(raw.clone()));
        let standard = STANDARD.encode(&raw);
        let wrapped = format!("{}\n{}\n", &standard[..4], &standard[4..]);
        assert_eq!(
            read_input(wrapped.as_bytes()).unwrap(),
            Input::Document(raw.clone())
        );
        let url = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(read_input(url.as_bytes()).unwrap(), Input::Document(raw));
        let bundle = EvidenceBundle::new("n", &[1; 32], HEARTH_DEV, b"x");
        let json = serde_json::to_vec(&bundle).unwrap();
        assert_eq!(read_input(&json).unwrap(), Input::Bundle(bundle));
    }

    #[test]
    fn the_binding_is_prefixed() {
        let binding = rek_binding(&[5; 32]);
        assert!(binding.starts_with(REK_BINDING_PREFIX));
        assert_eq!(&binding[REK_BINDING_PREFIX.len()..], &[5; 32]);
    }
}
