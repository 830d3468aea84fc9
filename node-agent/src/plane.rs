//! What the data plane and its two implementations (kernel WireGuard in
//! [`crate::dataplane`], userspace in [`crate::userspace`]) speak of: the
//! backend, a peer's configuration, its path and its counters, the errors.

use std::net::SocketAddr;
use std::time::SystemTime;

use hearth_control::wire::WireGuardKey;
use ipnet::IpNet;

/// Which WireGuard implementation to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The Linux kernel module.
    Kernel,
    /// BoringTun in this process, on a TUN device.
    Userspace,
}

/// The user's choice of backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// Kernel when the module is available, else userspace.
    Auto,
    /// Kernel only.
    Kernel,
    /// Userspace only.
    Userspace,
}

/// A data-plane failure.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// defguard_wireguard_rs reported an error.
    #[error("WireGuard: {0}")]
    WireGuard(String),
    /// The userspace device could not start.
    #[error("userspace WireGuard: {0}")]
    Device(String),
}

/// What the data plane needs to know about a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its public key.
    pub key: WireGuardKey,
    /// Where to send to; `None` waits for the peer to reach us. Not used
    /// for a disco peer on the userspace data plane, which finds its own
    /// path among `candidates`.
    pub endpoint: Option<SocketAddr>,
    /// What it may send from and what is routed to it.
    pub allowed_ips: Vec<IpNet>,
    /// Keep-alive interval, seconds.
    pub keepalive: Option<u16>,
    /// Its disco key, when it speaks disco.
    pub disco: Option<WireGuardKey>,
    /// Its home relay region.
    pub home_relay: Option<u16>,
    /// The endpoints the coordinator lists for it, best first.
    pub candidates: Vec<SocketAddr>,
    /// The key this peer had before (it rotated): its session carries on
    /// until the new key's handshake.
    pub replaces: Option<WireGuardKey>,
}

/// The path packets to a peer take now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PathStatus {
    /// Straight to this UDP address.
    Direct {
        /// The address.
        endpoint: SocketAddr,
        /// The last disco round trip over it, in microseconds (disco peers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_us: Option<u64>,
    },
    /// Through a peer relay's endpoint.
    PeerRelay {
        /// The relay's address.
        relay: SocketAddr,
        /// The endpoint's id there.
        vni: u32,
        /// The last disco round trip through it, in microseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_us: Option<u64>,
    },
    /// Through the peer's home relay.
    Relay {
        /// The region.
        region: u16,
    },
}

/// This device as a peer relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerRelayStatus {
    /// Its UDP port.
    pub port: u16,
    /// Endpoints it holds for pairs of devices.
    pub endpoints: usize,
    /// Peers the policy lets use it.
    pub clients: usize,
}

/// Live counters of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// Its public key.
    pub key: WireGuardKey,
    /// The endpoint in use (set, or learned from the peer's packets).
    pub endpoint: Option<SocketAddr>,
    /// The path in use, when there is one.
    pub path: Option<PathStatus>,
    /// When the last handshake completed.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}
