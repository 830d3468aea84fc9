//! The WireGuard data plane: kernel WireGuard through defguard_wireguard_rs
//! where the module exists, otherwise [`crate::userspace`] (BoringTun's
//! protocol core, from defguard's fork, the only WireGuard implementation in
//! the dependency tree) behind the same calls.
//!
//! Every call here is blocking (netlink, or locks shared with the packet
//! threads); the agent runs them off the async runtime.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer as WgPeer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};
use hearth_control::wire::WireGuardKey;
use ipnet::IpNet;
use zeroize::Zeroizing;

use crate::userspace::Device;

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

fn wireguard<E: std::fmt::Display>(error: E) -> DataPlaneError {
    DataPlaneError::WireGuard(error.to_string())
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

enum Api {
    Kernel(WGApi<Kernel>),
    Userspace(Device),
}

/// A WireGuard interface and its peers.
pub struct DataPlane {
    interface: String,
    backend: Backend,
    api: Api,
    listen_port: u16,
}

/// Whether the kernel has WireGuard (built in or as a loaded module).
pub fn kernel_available() -> bool {
    std::path::Path::new("/sys/module/wireguard").exists()
}

fn key(key: &WireGuardKey) -> Key {
    Key::new(key.0)
}

impl DataPlane {
    /// Creates the interface with the node's private key (base64) and port.
    pub fn create(
        interface: &str,
        choice: BackendChoice,
        private_key: &Zeroizing<String>,
        listen_port: u16,
    ) -> Result<DataPlane, DataPlaneError> {
        let use_kernel = match choice {
            BackendChoice::Kernel => true,
            BackendChoice::Userspace => false,
            BackendChoice::Auto => kernel_available(),
        };
        if !use_kernel {
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(private_key.as_bytes())
                    .map_err(|_| DataPlaneError::Device("the private key is not base64".into()))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| DataPlaneError::Device("the private key is not 32 bytes".into()))?;
            let device = Device::start(interface, key, listen_port)?;
            return Ok(DataPlane {
                interface: interface.to_owned(),
                backend: Backend::Userspace,
                listen_port: device.listen_port(),
                api: Api::Userspace(device),
            });
        }
        let mut api = WGApi::<Kernel>::new(interface).map_err(wireguard)?;
        api.create_interface().map_err(wireguard)?;
        let config = InterfaceConfiguration {
            name: interface.to_owned(),
            prvkey: private_key.to_string(),
            addresses: Vec::new(),
            port: listen_port,
            peers: Vec::new(),
            mtu: None,
            fwmark: None,
        };
        api.configure_interface(&config).map_err(wireguard)?;
        Ok(DataPlane {
            interface: interface.to_owned(),
            backend: Backend::Kernel,
            api: Api::Kernel(api),
            listen_port,
        })
    }

    /// Which implementation runs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For the userspace data plane, the kernel offloads it uses ("none"
    /// on the fallback path); the kernel module has its own.
    pub fn offloads(&self) -> Option<String> {
        match &self.api {
            Api::Userspace(device) => Some(device.offloads().describe()),
            Api::Kernel(_) => None,
        }
    }

    /// This device's peer relay, when it is one.
    pub fn peer_relay(&self) -> Option<PeerRelayStatus> {
        match &self.api {
            Api::Userspace(device) => device.peer_relay_status(),
            Api::Kernel(_) => None,
        }
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The UDP port WireGuard listens on.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Adds or updates a peer (its allowed IPs are replaced).
    pub fn set_peer(&self, peer: &PeerConfig) -> Result<(), DataPlaneError> {
        match &self.api {
            Api::Userspace(device) => device.set_peer(peer),
            Api::Kernel(api) => {
                // The kernel keeps no retiring session: the old key goes,
                // and the peer handshakes again under the new one.
                if let Some(old) = peer.replaces.filter(|old| *old != peer.key) {
                    api.remove_peer(&key(&old)).map_err(wireguard)?;
                }
                let mut config = WgPeer::new(key(&peer.key));
                config.endpoint = peer.endpoint;
                config.persistent_keepalive_interval = peer.keepalive;
                config.allowed_ips = peer
                    .allowed_ips
                    .iter()
                    .map(|prefix| IpAddrMask::new(prefix.addr(), prefix.prefix_len()))
                    .collect();
                api.configure_peer(&config).map_err(wireguard)
            }
        }
    }

    /// Replaces the interface's private key (base64), after a rotation.
    /// Userspace keeps the old sessions until the new handshakes; kernel
    /// WireGuard (`wg set ... private-key`, the key on stdin) starts new
    /// handshakes at once.
    pub fn set_private_key(&self, private_key: &Zeroizing<String>) -> Result<(), DataPlaneError> {
        match &self.api {
            Api::Userspace(device) => {
                let bytes = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(private_key.as_bytes())
                        .map_err(|_| {
                            DataPlaneError::Device("the private key is not base64".into())
                        })?,
                );
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    DataPlaneError::Device("the private key is not 32 bytes".into())
                })?;
                device.set_private_key(key);
                Ok(())
            }
            Api::Kernel(_) => {
                use std::io::Write as _;
                let mut child = std::process::Command::new("wg")
                    .args(["set", &self.interface, "private-key", "/dev/stdin"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|error| DataPlaneError::Device(format!("cannot run wg: {error}")))?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin
                        .write_all(private_key.as_bytes())
                        .map_err(|error| DataPlaneError::Device(error.to_string()))?;
                }
                let status = child
                    .wait()
                    .map_err(|error| DataPlaneError::Device(error.to_string()))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(DataPlaneError::Device(format!(
                        "wg set private-key: {status}"
                    )))
                }
            }
        }
    }

    /// Removes a peer.
    pub fn remove_peer(&self, peer: &WireGuardKey) -> Result<(), DataPlaneError> {
        match &self.api {
            Api::Userspace(device) => device.remove_peer(peer),
            Api::Kernel(api) => api.remove_peer(&key(peer)).map_err(wireguard),
        }
    }

    /// Every peer's counters.
    pub fn stats(&self) -> Result<Vec<PeerStats>, DataPlaneError> {
        let host = match &self.api {
            Api::Userspace(device) => return Ok(device.stats()),
            Api::Kernel(api) => api.read_interface_data().map_err(wireguard)?,
        };
        Ok(host
            .peers
            .into_values()
            .map(|peer| PeerStats {
                key: WireGuardKey(peer.public_key.as_array()),
                endpoint: peer.endpoint,
                path: peer.endpoint.map(|endpoint| PathStatus::Direct {
                    endpoint,
                    rtt_us: None,
                }),
                last_handshake: peer
                    .last_handshake
                    .filter(|time| *time > SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
                rx_bytes: peer.rx_bytes,
                tx_bytes: peer.tx_bytes,
            })
            .collect())
    }

    /// The path to `peer` now (kernel WireGuard: its endpoint).
    pub fn path_of(&self, peer: &WireGuardKey) -> Option<PathStatus> {
        match &self.api {
            Api::Userspace(device) => device.path_of(peer),
            Api::Kernel(_) => {
                self.stats()
                    .ok()?
                    .into_iter()
                    .find(|stats| stats.key == *peer)?
                    .path
            }
        }
    }

    /// The interface's MTU is `mtu` (the userspace data plane probes paths
    /// with packets as large as it makes; the kernel module needs nothing).
    pub fn set_mtu(&self, mtu: u32) {
        if let Api::Userspace(device) = &self.api {
            device.set_mtu(mtu);
        }
    }

    /// This node's disco key, when the data plane speaks disco (userspace).
    pub fn disco_public(&self) -> Option<WireGuardKey> {
        match &self.api {
            Api::Userspace(device) => Some(device.disco_public()),
            Api::Kernel(_) => None,
        }
    }

    /// The userspace device, for the relay client and disco (`None` on
    /// kernel WireGuard, which reaches peers only at their endpoints).
    pub fn device(&self) -> Option<&Device> {
        match &self.api {
            Api::Userspace(device) => Some(device),
            Api::Kernel(_) => None,
        }
    }

    /// Removes the interface (for userspace: stops the device, which closes the TUN device).
    pub fn destroy(self) -> Result<(), DataPlaneError> {
        match self.api {
            Api::Kernel(api) => api.remove_interface().map_err(wireguard),
            Api::Userspace(device) => {
                drop(device);
                Ok(())
            }
        }
    }
}
