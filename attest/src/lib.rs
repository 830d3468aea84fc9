//! Attestation evidence, verified before a prompt leaves the device.
//!
//! A compute node publishes an [`EvidenceBundle`]: its request encryption
//! key (REK) and evidence binding it, today an AWS Nitro Enclaves attestation
//! document ([`verify::verify_nitro`]) or, outside an enclave, Hearth dev
//! evidence ([`verify::verify_dev`], refused by default). Verification checks
//! the COSE_Sign1 signature ([`cose`]), the certificate chain to the pinned
//! AWS root ([`chain`]), and the document's claims against a [`Policy`]
//! (measurements, age, debug mode, nonce, the REK), and returns a [`Report`]
//! a person can read. Everything here is pure: the time is an argument.
//! docs/private-compute.md specifies the formats.

mod bytes;
pub mod cache;
pub mod chain;
pub mod claims;
pub mod cose;
#[cfg(feature = "dev-signer")]
pub mod dev;
pub mod document;
pub mod evidence;
pub mod policy;
pub mod report;
pub mod snp;
pub mod tdx;
pub mod tee;
pub mod verify;

pub use cache::{Judgement, VerifiedKeys};
pub use claims::Expected;
pub use document::Document;
pub use evidence::{EvidenceBundle, Input, read_input, rek_binding};
pub use policy::{Image, Policy, PolicyError};
pub use report::{CheckName, Outcome, Report};
pub use verify::{BundleReport, verify_bundle, verify_nitro, verify_typed};
