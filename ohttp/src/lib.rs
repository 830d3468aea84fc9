//! Oblivious HTTP (RFC 9458), its chunked variant
//! (draft-ietf-ohai-chunked-ohttp) and Binary HTTP (RFC 9292), for the
//! private-compute path: a device encapsulates a request to the OHTTP
//! gateway's key, a relay that sees the device forwards what it cannot
//! read, and the gateway that can read it never sees the device.
//!
//! Pure: no IO and no clock (times are inputs). The HPKE it needs is
//! written out in [`hpke`] so that published vectors can be reproduced
//! byte for byte (the sender's ephemeral key can be given).

pub mod bhttp;
pub mod encap;
pub mod hpke;
pub mod keys;
pub mod varint;

pub use encap::{
    ChunkedResponse, Mode, Opened, ResponseKeys, ResponseSealer, decapsulate, encapsulate,
    encapsulate_with,
};
pub use keys::{KeyConfig, Seed, decode_keys, encode_keys, parse_seeds};

/// What can go wrong with OHTTP or BHTTP input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input ended early.
    #[error("the message ends early")]
    Truncated,
    /// A length or count beyond the limits.
    #[error("the message is larger than allowed")]
    TooLarge,
    /// A field that cannot be what it says.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// Something valid that this implementation does not do.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// No key configuration with this id is accepted now.
    #[error("no key configuration {0} is accepted now")]
    UnknownKey(u8),
    /// Decryption failed: tampered, truncated or not for this key.
    #[error("the encapsulation did not open")]
    Crypto,
    /// The seeds JSON is not usable.
    #[error("OHTTP seeds: {0}")]
    Seeds(String),
}
