//! The control protocol between Hearth's coordinator and its agents.
//!
//! - [`wire`]: the JSON messages and endpoint paths,
//! - [`token`]: the one-line join token,
//! - [`client`]: the HTTPS client with certificate pinning and mutual TLS,
//! - [`compression`]: zstd frames on the map stream,
//! - [`certs`]: when a TLS certificate is renewed,
//! - [`tls`]: key generation and TLS configuration for that client,
//! - [`ts2021`], [`noise_stream`] and [`tailcfg`]: the Tailscale control
//!   protocol the coordinator also serves, for the official Tailscale
//!   clients;
//! - [`derp`] and [`disco`]: the relay's frames and the path-discovery
//!   messages nodes exchange (Tailscale's, spoken by `hearth-agent` too).

pub mod agent_api;
pub mod c2n;
pub mod certs;
pub mod client;
pub mod compression;
pub mod derp;
pub mod disco;
pub mod dns;
pub mod fingerprint;
pub mod geneve;
pub mod noise_stream;
pub mod relay_client;
pub mod secret;
pub mod stun;
pub mod tailcfg;
pub mod tls;
pub mod token;
pub mod ts2021;
pub mod wire;

pub use client::{ClientError, ControlClient, MessageStream};
pub use fingerprint::Fingerprint;
pub use secret::SecretString;
pub use token::{JoinToken, TokenError};
