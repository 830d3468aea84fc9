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

/// Candidate endpoints from local interface addresses (not loopback, not
/// link-local, not the mesh itself, not `skip_interface`), with `port`.
pub fn local_endpoints(port: u16, skip_interface: &str) -> Vec<SocketAddr> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut endpoints: Vec<SocketAddr> = interfaces
        .into_iter()
        .filter(|interface| interface.name != skip_interface && !interface.is_loopback())
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
