//! wg-quick configuration for devices without an agent (the official
//! WireGuard apps import it from a file or a QR code).

use std::fmt::Write as _;

use zeroize::Zeroizing;

use crate::netmap::NodeRecord;

/// The configuration of `device` (holding `private_key`) with `peers`.
/// Peers without a known endpoint are listed too: they reach the device once
/// it has reached them.
pub fn render(private_key: &str, device: &NodeRecord, peers: &[NodeRecord]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::new());
    let _ = writeln!(
        text,
        "# Hearth: {} (node {}, user {})",
        device.name, device.id, device.user
    );
    let _ = writeln!(text, "[Interface]");
    let _ = writeln!(text, "PrivateKey = {private_key}");
    let _ = writeln!(text, "Address = {}/32, {}/128", device.ipv4, device.ipv6);
    let _ = writeln!(text, "MTU = 1280");
    for peer in peers {
        let view = peer.as_peer();
        let allowed: Vec<String> = view
            .allowed_ips
            .iter()
            .filter(|prefix| prefix.prefix_len() != 0)
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(text);
        let _ = writeln!(text, "# {} (node {})", peer.name, peer.id);
        let _ = writeln!(text, "[Peer]");
        let _ = writeln!(text, "PublicKey = {}", peer.wireguard_key);
        let _ = writeln!(text, "AllowedIPs = {}", allowed.join(", "));
        if let Some(endpoint) = peer.endpoints.first() {
            let _ = writeln!(text, "Endpoint = {endpoint}");
        }
        let _ = writeln!(text, "PersistentKeepalive = 25");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_control::wire::{NodeState, WireGuardKey};
    use std::collections::BTreeSet;

    fn record(id: u64, name: &str) -> NodeRecord {
        let ipv4 = std::net::Ipv4Addr::new(100, 64, 0, id as u8);
        NodeRecord {
            id,
            user_id: 1,
            user: "alice".into(),
            name: name.into(),
            hostname: name.into(),
            os: "linux".into(),
            wireguard_key: WireGuardKey([id as u8; 32]),
            state: NodeState::Approved,
            ipv4,
            ipv6: crate::ipam::ipv6_for(ipv4),
            tags: BTreeSet::new(),
            ephemeral: false,
            static_device: false,
            cert_fingerprint: None,
            machine_key: None,
            disco_key: None,
            home_relay: None,
            client: String::new(),
            capability_version: 0,
            endpoints: vec!["192.0.2.1:41641".parse().unwrap()],
            advertised_routes: Vec::new(),
            approved_routes: vec![
                "192.168.1.0/24".parse().unwrap(),
                "0.0.0.0/0".parse().unwrap(),
            ],
            created_at: 0,
            last_seen: None,
            key_expiry: None,
            key_lifetime: None,
            services: Vec::new(),
            ssh_host_keys: Vec::new(),
            service_ads: Default::default(),
            hosted: Vec::new(),
        }
    }

    #[test]
    fn the_config_lists_the_device_and_each_peer() {
        let text = render("cHJpdmF0ZQ==", &record(5, "phone"), &[record(1, "laptop")]);
        assert!(text.contains(
            "PrivateKey = cHJpdmF0ZQ==\nAddress = 100.64.0.5/32, fd7a:115c:a1e0::6440:5/128"
        ));
        assert!(
            text.contains("[Peer]\nPublicKey = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
            "{}",
            *text
        );
        assert!(
            text.contains(
                "AllowedIPs = 100.64.0.1/32, fd7a:115c:a1e0::6440:1/128, 192.168.1.0/24\n"
            ),
            "exit routes are not taken"
        );
        assert!(text.contains("Endpoint = 192.0.2.1:41641"));
    }
}
