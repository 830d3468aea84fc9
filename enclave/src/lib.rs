//! The private-compute node (`hearth-enclave`).
//!
//! At start it makes its request encryption key (REK), which never leaves
//! its memory, and evidence binding that key: an AWS Nitro attestation
//! document from `/dev/nsm` inside an enclave, or dev evidence elsewhere
//! ([`evidence`]). It heartbeats the evidence to the router, opens the
//! requests sealed to its REK, asks its model server (llama-server inside
//! the same trust boundary) and seals the reply chunk by chunk with the
//! gateway's framing ([`node`], [`server`]). It keeps no state on disk.

pub mod evidence;
pub mod model;
pub mod node;
pub mod server;
pub mod tsm;
pub mod vectors;
pub mod vsock;
