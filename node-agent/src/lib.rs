//! Hearth's node agent.
//!
//! `hearth-agent up` registers the device with a join token (once), waits for
//! an admin's approval, then follows the coordinator's streamed map and keeps
//! the WireGuard interface ([`dataplane`]), its addresses and routes
//! ([`netcfg`]) and the ACL firewall ([`firewall`]) in step. The view itself
//! ([`mesh`]) and endpoint selection ([`endpoint`]) are pure. A local API
//! ([`local_api`]) answers `status`, `ping`, `whois` and `cert`. Keys are
//! rotated before they expire ([`rotation`]); the node's TLS certificate for
//! its MagicDNS name is renewed before it does ([`certs`]).

pub mod agent;
pub mod backoff;
pub mod certs;
pub mod control;
pub mod dataplane;
pub mod dial;
pub mod disco_plane;
pub mod discovery;
pub mod dns;
pub mod endpoint;
pub mod error;
pub mod firewall;
pub mod handshakes;
pub mod local_api;
pub mod mesh;
pub mod netcfg;
pub mod paths;
pub mod peer_relay;
pub mod ping;
pub mod plan;
pub mod plane;
pub mod relay;
pub mod rotation;
pub mod state;
pub mod userspace;

pub use agent::{UpOptions, up};
pub use error::AgentError;
