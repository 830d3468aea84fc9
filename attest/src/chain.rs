//! The certificate chain of a Nitro document: `certificate` signed by the
//! intermediates of `cabundle`, up to its first entry, which must be the
//! pinned root; every certificate valid at the time given.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyUsage};

/// SHA-256 of the DER of the AWS Nitro Enclaves root certificate
/// (CN=aws.nitro-enclaves, valid 2019-10-28 to 2049-10-28), as AWS
/// publishes it for `AWS_NitroEnclaves_Root-G1`.
pub const AWS_NITRO_ROOT_SHA256: &str =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

/// Signature algorithms a Nitro chain uses.
const ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
];

/// Nitro leaf certificates carry no extended key usage; any purpose will do
/// as long as it is absent (this is the serverAuth OID, never present).
const ANY_PURPOSE: KeyUsage = KeyUsage::required_if_present(&[43, 6, 1, 5, 5, 7, 3, 1]);

/// Why a chain does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// `cabundle` is empty.
    #[error("the document carries no certificate chain")]
    NoBundle,
    /// The first `cabundle` entry is not the pinned root.
    #[error("the chain ends at a root with SHA-256 {found}, not the pinned {pinned}")]
    RootNotPinned {
        /// What the document carries.
        found: String,
        /// What the policy pins.
        pinned: String,
    },
    /// A certificate is outside its validity at the time given.
    #[error("a certificate of the chain is not valid at {at}: {detail}")]
    NotValidAt {
        /// The time checked (RFC 3339).
        at: String,
        /// What webpki said.
        detail: String,
    },
    /// Anything else webpki refuses (a bad signature, a malformed certificate).
    #[error("the chain does not verify: {0}")]
    Invalid(String),
}

/// The SHA-256 of `der`, in lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Checks that `leaf` chains through `cabundle` (root first) to a root with
/// SHA-256 `root_sha256`, at `now` (since the Unix epoch).
pub fn verify(
    leaf: &[u8],
    cabundle: &[Vec<u8>],
    root_sha256: &str,
    now: Duration,
) -> Result<(), ChainError> {
    let Some((root, intermediates)) = cabundle.split_first() else {
        return Err(ChainError::NoBundle);
    };
    let found = fingerprint(root);
    if !found.eq_ignore_ascii_case(root_sha256) {
        return Err(ChainError::RootNotPinned {
            found,
            pinned: root_sha256.to_ascii_lowercase(),
        });
    }
    let root = CertificateDer::from(root.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|error| ChainError::Invalid(format!("the root: {error}")))?;
    let leaf = CertificateDer::from(leaf);
    let leaf = EndEntityCert::try_from(&leaf)
        .map_err(|error| ChainError::Invalid(format!("the signing certificate: {error}")))?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    leaf.verify_for_usage(
        ALGORITHMS,
        &[anchor],
        &intermediates,
        UnixTime::since_unix_epoch(now),
        ANY_PURPOSE,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|error| {
        let at = crate::report::rfc3339(now);
        let time = |unix: UnixTime| crate::report::rfc3339(Duration::from_secs(unix.as_secs()));
        match error {
            webpki::Error::CertExpired { not_after, .. } => ChainError::NotValidAt {
                at,
                detail: format!("a certificate expired at {}", time(not_after)),
            },
            webpki::Error::CertNotValidYet { not_before, .. } => ChainError::NotValidAt {
                at,
                detail: format!("a certificate is valid only from {}", time(not_before)),
            },
            other => ChainError::Invalid(format!("{other:?}")),
        }
    })
}

/// Checks `signature` (ASN.1 DER) over `message` by the key of `leaf`.
pub fn verify_signature(
    leaf: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), webpki::Error> {
    let leaf = CertificateDer::from(leaf);
    let leaf = EndEntityCert::try_from(&leaf)?;
    leaf.verify_signature(webpki::ring::ECDSA_P384_SHA384, message, signature)
}
