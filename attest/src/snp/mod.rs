//! AMD SEV-SNP evidence: an attestation report signed by the chip's VCEK,
//! the VCEK signed by AMD's ASK, the ASK by the pinned ARK (one per
//! product: Milan, Genoa, Turin), optionally AMD's CRL for that ARK.
//!
//! The evidence document (type [`AMD_SEV_SNP`](crate::evidence::AMD_SEV_SNP))
//! is a CBOR map:
//!
//! ```text
//! { "report": bstr (the 1184-byte report), "vcek": bstr (DER),
//!   "ask": bstr (DER), "ark": bstr (DER), ? "crl": bstr (DER),
//!   "issued_at": uint (Unix seconds) }
//! ```
//!
//! The report's 64 bytes of `report_data` are
//! [`tee::report_data`](crate::tee::report_data) of the node's REK,
//! `issued_at` and the verifier's nonce: the REK is bound, and the chip
//! vouches for the time the node claims (a report carries no time of its
//! own).
//!
//! Reading and checking are pure: the time is an argument. The checks
//! (root, chain, revocation, signature, TCB, measurement, debug, key)
//! each land in the [`Report`](crate::Report) by name.

pub(crate) mod format;
pub(crate) mod policy;
pub(crate) mod verify;

pub use format::*;
pub use policy::{SnpImage, SnpPolicy};
pub use verify::{shown, verify};
