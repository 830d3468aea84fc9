//! The WireGuard data plane: kernel WireGuard through defguard_wireguard_rs
//! where the module exists, otherwise [`crate::userspace`] (BoringTun's
//! protocol core, from defguard's fork, the only WireGuard implementation in
//! the dependency tree) behind the same calls.
//!
//! Every call here is blocking (netlink, or locks shared with the packet
//! threads); the agent runs them off the async runtime.

use std::time::{Duration, SystemTime};

use base64::Engine as _;

use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer as WgPeer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};
use hearth_control::wire::WireGuardKey;
use zeroize::Zeroizing;

pub use crate::plane::{
    Backend, BackendChoice, DataPlaneError, PathStatus, PeerConfig, PeerRelayStatus, PeerStats,
};
use crate::userspace::Device;
fn wireguard<E: std::fmt::Display>(error: E) -> DataPlaneError {
    DataPlaneError::WireGuard(error.to_string())
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
