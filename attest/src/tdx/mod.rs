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

pub(crate) mod format;
pub(crate) mod policy;
pub(crate) mod verify;

pub use format::*;
pub use policy::{TdxImage, TdxPolicy};
pub use verify::verify;
