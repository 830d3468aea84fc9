//! The TDX evidence document: the quote and its collateral. Parsing only;
//! the checks are in [`super::verify`].

use serde::{Deserialize, Serialize};

/// SHA-256 of the DER of Intel's SGX Root CA (CN=Intel SGX Root CA, valid
/// 2018 to 2049), which signs every PCK chain and the TCB signing key.
pub const INTEL_SGX_ROOT_SHA256: &str =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";
/// Largest document accepted.
pub const MAX_DOCUMENT: usize = 128 * 1024;

/// The evidence document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxDocument {
    /// The DCAP quote.
    #[serde(with = "crate::bytes::cbor_bytes")]
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
