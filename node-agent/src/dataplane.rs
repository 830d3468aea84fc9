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
    /// Where to send to; `None` waits for the peer to reach us.
    pub endpoint: Option<SocketAddr>,
    /// What it may send from and what is routed to it.
    pub allowed_ips: Vec<IpNet>,
    /// Keep-alive interval, seconds.
    pub keepalive: Option<u16>,
}

/// Live counters of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// Its public key.
    pub key: WireGuardKey,
    /// The endpoint in use (set, or learned from the peer's packets).
    pub endpoint: Option<SocketAddr>,
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
                last_handshake: peer
                    .last_handshake
                    .filter(|time| *time > SystemTime::UNIX_EPOCH + Duration::from_secs(1)),
                rx_bytes: peer.rx_bytes,
                tx_bytes: peer.tx_bytes,
            })
            .collect())
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
