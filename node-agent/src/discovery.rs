//! Where this node can be reached: its local addresses, and the address a
//! STUN server sees.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hearth_control::stun;
use ipnet::IpNet;

fn is_mesh(address: &IpAddr) -> bool {
    let mesh: [IpNet; 2] = [
        "100.64.0.0/10".parse().expect("constant"),
        "fd7a:115c:a1e0::/48".parse().expect("constant"),
    ];
    mesh.iter().any(|prefix| prefix.contains(address))
}

/// What the kernel says of a network interface (`/sys/class/net/NAME`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceKind {
    /// Its hardware type (`type`: an `ARPHRD_*` number).
    pub hardware: Option<u32>,
    /// Its flags (`flags`).
    pub flags: Option<u32>,
    /// Whether it is a TUN or TAP device (`tun_flags` exists).
    pub tun: bool,
}

/// `IFF_POINTOPOINT`.
const POINT_TO_POINT: u32 = 0x10;

/// Whether an interface of `kind` is a tunnel (another VPN's: WireGuard,
/// OpenVPN, IPsec, PPP, GRE, SIT, any TUN or TAP device, any point-to-point
/// link). Its addresses are not endpoints: Hearth's WireGuard inside
/// another tunnel loses every full-size packet (an MTU inside the same
/// MTU) while small ones pass, and a laptop's work VPN is not a path to
/// the household.
pub fn is_tunnel(kind: InterfaceKind) -> bool {
    const PPP: u32 = 512;
    const TUNNEL: u32 = 768;
    const TUNNEL6: u32 = 769;
    const SIT: u32 = 776;
    const IPGRE: u32 = 778;
    const IP6GRE: u32 = 823;
    const NONE: u32 = 0xFFFE; // WireGuard, TUN
    const VOID: u32 = 0xFFFF;
    kind.tun
        || kind.flags.is_some_and(|flags| flags & POINT_TO_POINT != 0)
        || kind.hardware.is_some_and(|hardware| {
            matches!(
                hardware,
                PPP | TUNNEL | TUNNEL6 | SIT | IPGRE | IP6GRE | NONE | VOID
            )
        })
}

/// What `/sys/class/net/NAME` says of interface `name`.
fn interface_kind(name: &str) -> InterfaceKind {
    let dir = std::path::Path::new("/sys/class/net").join(name);
    let number = |file: &str| {
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        let text = text.trim();
        match text.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        }
    };
    InterfaceKind {
        hardware: number("type"),
        flags: number("flags"),
        tun: dir.join("tun_flags").exists(),
    }
}

/// Candidate endpoints from local interface addresses (not loopback, not
/// link-local, not the mesh itself, not `skip_interface`, not on another
/// tunnel: [`is_tunnel`]), with `port`.
pub fn local_endpoints(port: u16, skip_interface: &str) -> Vec<SocketAddr> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut endpoints: Vec<SocketAddr> = interfaces
        .into_iter()
        .filter(|interface| interface.name != skip_interface && !interface.is_loopback())
        .filter(|interface| !is_tunnel(interface_kind(&interface.name)))
        .map(|interface| interface.ip())
        .filter(|address| !is_mesh(address))
        .filter(|address| match address {
            IpAddr::V4(v4) => !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .map(|address| SocketAddr::new(address, port))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// Asks the STUN server at `server` which address it sees us at.
pub async fn stun_query(server: SocketAddr, timeout: Duration) -> Option<SocketAddr> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
    let transaction: stun::TransactionId = rand::random();
    socket
        .send_to(&stun::binding_request(transaction), server)
        .await
        .ok()?;
    let mut buffer = [0u8; 512];
    let receive = async {
        loop {
            let (length, from) = socket.recv_from(&mut buffer).await.ok()?;
            if from != server {
                continue;
            }
            if let Some(observed) = stun::parse_binding_response(&buffer[..length], transaction) {
                return Some(observed);
            }
        }
    };
    tokio::time::timeout(timeout, receive).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnels_are_told_from_links() {
        let ethernet = InterfaceKind {
            hardware: Some(1),
            flags: Some(0x1003),
            tun: false,
        };
        assert!(!is_tunnel(ethernet));
        let wireguard = InterfaceKind {
            hardware: Some(0xFFFE),
            flags: Some(0x91),
            tun: false,
        };
        assert!(is_tunnel(wireguard));
        assert!(
            is_tunnel(InterfaceKind {
                tun: true,
                ..ethernet
            }),
            "a TAP device"
        );
        assert!(
            is_tunnel(InterfaceKind {
                flags: Some(0x1011),
                ..ethernet
            }),
            "point-to-point"
        );
        assert!(
            is_tunnel(InterfaceKind {
                hardware: Some(512),
                ..ethernet
            }),
            "PPP"
        );
        assert!(
            !is_tunnel(InterfaceKind::default()),
            "nothing known: an ordinary link"
        );
    }

    #[test]
    fn mesh_addresses_are_not_endpoints() {
        assert!(is_mesh(&"100.64.0.9".parse().unwrap()));
        assert!(is_mesh(&"fd7a:115c:a1e0::9".parse().unwrap()));
        assert!(!is_mesh(&"192.168.1.9".parse().unwrap()));
        let endpoints = local_endpoints(41641, "none");
        assert!(
            endpoints
                .iter()
                .all(|endpoint| endpoint.port() == 41641 && !endpoint.ip().is_loopback())
        );
    }
}
