//! What the data plane, routes and addresses must become after the mesh view
//! changed, or after a second of counters: a pure plan that the agent's
//! shell (`agent::Sync`) carries out. Also the one place a peer's WireGuard
//! settings are made from its map entry ([`peer_config`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hearth_control::wire::{NodeId, NodeInfo, Peer, WireGuardKey};
use ipnet::IpNet;

use crate::dataplane::PeerConfig;
use crate::endpoint::EndpointChoice;
use crate::mesh::MeshChanges;

/// Keep-alive interval set on every peer, seconds.
pub const PEER_KEEPALIVE: u16 = 25;

/// A peer's WireGuard settings: its key, `endpoint`, and the prefixes it may
/// send from and is routed (exit routes `/0` excluded: they are never taken
/// automatically).
pub fn peer_config(peer: &Peer, endpoint: Option<std::net::SocketAddr>) -> PeerConfig {
    PeerConfig {
        key: peer.wireguard_key,
        endpoint,
        allowed_ips: peer
            .allowed_ips
            .iter()
            .copied()
            .filter(|prefix| prefix.prefix_len() != 0)
            .collect(),
        keepalive: Some(PEER_KEEPALIVE),
    }
}

/// The subnet routes the interface must carry: every peer's allowed prefix
/// that is not one of its own addresses and not an exit route.
pub fn subnet_routes(peers: &BTreeMap<NodeId, Peer>) -> BTreeSet<IpNet> {
    peers
        .values()
        .flat_map(|peer| {
            peer.allowed_ips.iter().copied().filter(|prefix| {
                prefix.prefix_len() != 0 && !peer.addresses.contains(&prefix.addr())
            })
        })
        .collect()
}

/// What to do after a change of the mesh view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// New addresses for the interface, when they changed.
    pub addresses: Option<(Ipv4Addr, Ipv6Addr)>,
    /// Peers to remove from the data plane.
    pub remove: Vec<WireGuardKey>,
    /// Peers to add or change (their sessions survive).
    pub set: Vec<PeerConfig>,
    /// Subnet routes to add to the interface.
    pub add_routes: Vec<IpNet>,
    /// Subnet routes to take away.
    pub remove_routes: Vec<IpNet>,
    /// Whether the packet filter must be rewritten.
    pub filter: bool,
}

/// The plan for `changes`, given what the mesh view holds now (`node`,
/// `peers`), what the interface carries (`addresses`, `routes`), and each
/// peer's endpoint choice (updated here) at `now` (since the epoch).
pub fn plan(
    changes: &MeshChanges,
    node: Option<&NodeInfo>,
    peers: &BTreeMap<NodeId, Peer>,
    addresses: Option<(Ipv4Addr, Ipv6Addr)>,
    routes: &BTreeSet<IpNet>,
    choices: &mut HashMap<NodeId, EndpointChoice>,
    now: Duration,
) -> Plan {
    let wanted_addresses = node.map(|node| (node.ipv4, node.ipv6));
    let remove = changes
        .removed
        .iter()
        .map(|peer| {
            choices.remove(&peer.id);
            peer.wireguard_key
        })
        .collect();
    let set = changes
        .upserted
        .iter()
        .filter_map(|id| {
            let peer = peers.get(id)?;
            let choice = choices
                .entry(*id)
                .or_insert_with(|| EndpointChoice::new(Vec::new()));
            choice.update(peer.endpoints.clone());
            Some(peer_config(peer, choice.next(now, None)))
        })
        .collect();
    let wanted_routes = subnet_routes(peers);
    Plan {
        addresses: wanted_addresses.filter(|wanted| Some(*wanted) != addresses),
        remove,
        set,
        add_routes: wanted_routes.difference(routes).copied().collect(),
        remove_routes: routes.difference(&wanted_routes).copied().collect(),
        // Any change can move what the filter resolves (peers' addresses, the
        // node's own): it is rewritten whenever the view changed.
        filter: !changes.is_empty(),
    }
}

/// The peers to move to another endpoint after a second of counters: each
/// choice sees when its peer last completed a handshake (`handshakes`, since
/// the epoch) and may pick the next candidate.
pub fn endpoint_moves(
    peers: &BTreeMap<NodeId, Peer>,
    choices: &mut HashMap<NodeId, EndpointChoice>,
    handshakes: &HashMap<WireGuardKey, Duration>,
    now: Duration,
) -> Vec<PeerConfig> {
    choices
        .iter_mut()
        .filter_map(|(id, choice)| {
            let peer = peers.get(id)?;
            let handshake = handshakes.get(&peer.wireguard_key).copied();
            let endpoint = choice.next(now, handshake)?;
            tracing::debug!(peer = %peer.name, %endpoint, "trying another endpoint");
            Some(peer_config(peer, Some(endpoint)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: NodeId, address: &str, routes: &[&str], endpoint: &str) -> Peer {
        let address: std::net::IpAddr = address.parse().unwrap();
        let mut allowed: Vec<IpNet> = vec![IpNet::from(address)];
        allowed.extend(routes.iter().map(|route| route.parse::<IpNet>().unwrap()));
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("peer{id}"), "user": "ada", "tags": [],
            "wireguard_key": WireGuardKey([id as u8; 32]).to_string(),
            "addresses": [address], "allowed_ips": allowed, "endpoints": [endpoint],
        }))
        .unwrap()
    }

    #[test]
    fn a_change_becomes_peers_routes_and_addresses_to_set() {
        let mut peers = BTreeMap::new();
        peers.insert(
            2,
            peer(
                2,
                "100.64.0.2",
                &["192.168.1.0/24", "0.0.0.0/0"],
                "10.0.0.2:41641",
            ),
        );
        peers.insert(3, peer(3, "100.64.0.3", &[], "10.0.0.3:41641"));
        let gone = peer(4, "100.64.0.4", &[], "10.0.0.4:41641");
        let changes = MeshChanges {
            upserted: vec![2, 3],
            removed: vec![gone.clone()],
            filter_changed: false,
            self_changed: false,
        };
        let mut choices = HashMap::new();
        choices.insert(4, EndpointChoice::new(Vec::new()));
        let routes: BTreeSet<IpNet> = ["10.9.0.0/16".parse().unwrap()].into();
        let planned = plan(
            &changes,
            None,
            &peers,
            None,
            &routes,
            &mut choices,
            Duration::ZERO,
        );
        assert_eq!(planned.remove, [gone.wireguard_key]);
        assert!(
            !choices.contains_key(&4),
            "a gone peer's choice goes with it"
        );
        assert_eq!(planned.set.len(), 2);
        assert_eq!(
            planned.set[0].allowed_ips,
            [
                "100.64.0.2/32".parse::<IpNet>().unwrap(),
                "192.168.1.0/24".parse().unwrap()
            ],
            "exit routes are never taken automatically"
        );
        assert_eq!(
            planned.set[0].endpoint,
            Some("10.0.0.2:41641".parse().unwrap())
        );
        assert_eq!(
            planned.add_routes,
            ["192.168.1.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            planned.remove_routes,
            ["10.9.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert!(planned.filter);
        assert_eq!(planned.addresses, None);
    }
}
