//! Private compute, the client's side and the shared protocol.
//!
//! A household's gateway (or a device, with `hearth-pcc chat`) asks a
//! router for compute nodes, verifies each node's attestation evidence
//! against a policy ([`hearth_attest`]) before any prompt leaves, seals the
//! request to verified nodes' request keys ([`client`]), and opens the
//! reply chunk by chunk. The router forwards without being able to read;
//! the node decrypts inside its enclave. [`protocol`] holds the wire types
//! shared with `hearth-router` and `hearth-enclave`; docs/private-compute.md
//! specifies them. [`transparency`] decides what a client takes from the
//! transparency log: only logged keys and images, only a log that extends
//! what it saw before.

pub mod choice;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod oblivious;
pub mod protocol;
pub mod transparency;

pub use client::{ComputeClient, JudgedNode, PccError, Reply, key_id};
pub use protocol::{ComputeMessage, ComputeRequest, NodeEntry};
