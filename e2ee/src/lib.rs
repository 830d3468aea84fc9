//! End-to-end encryption between Hearth's chat clients and its AI gateway.
//!
//! A client seals each chat request to the gateway's current public key with
//! HPKE ([`envelope`]); the gateway answers with a stream of chunks sealed
//! one by one under keys exported from the same HPKE context ([`chunks`]).
//! The gateway refuses stale and replayed requests ([`replay`]) and rotates
//! its keys with overlap ([`keyring`]). Prompts and replies exist in clear
//! only inside the gateway's memory. The wire format is specified in
//! docs/e2ee-protocol.md.

pub mod chat;
pub mod chunks;
pub mod codes;
pub mod envelope;
pub mod keyring;
pub mod receiver;
pub mod replay;
pub mod vectors;

pub use chat::{ChatPayload, ReplyEvent, ReplyUsage};
pub use chunks::{ChunkError, ChunkOpener, ChunkSealer, SealedChunk};
pub use codes::ErrorCode;
pub use envelope::{
    ChatEnvelope, EnvelopeError, KeyPair, OpenedRequest, open_request, seal_request,
};
pub use keyring::{KeyRing, PublishedKey, StoredKey};
pub use replay::{DEFAULT_CAPACITY as REPLAY_CAPACITY, Rejection, ReplayWindow};
