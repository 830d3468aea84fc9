//! Hearth's transparency log for private compute: what a device trusts
//! (the compute images' measurements, the OHTTP key configurations it
//! seals to) is appended to a public, append-only log, and clients accept
//! it only with a proof that it is in the log.
//!
//! - [`merkle`]: RFC 9162's Merkle tree: roots, inclusion and consistency
//!   proofs and their verification.
//! - [`note`]: checkpoints (the log's size and root) signed in the C2SP
//!   signed-note format, with Ed25519.
//! - [`entry`]: what an entry holds.
//! - [`witness`]: a client's last checkpoint, which each new one must
//!   extend (a forked log is caught).
//! - [`proofs`]: the proofs the config server hands clients with its
//!   document.
//! - [`store`]: the log on disk (the one module with IO).

pub mod entry;
pub mod merkle;
pub mod note;
pub mod proofs;
pub mod store;
pub mod witness;

pub use entry::Entry;
pub use merkle::Hash;
pub use note::{Checkpoint, Signer, Verifier};
pub use witness::{ForkError, Witness};
