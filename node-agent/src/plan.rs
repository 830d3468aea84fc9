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
/// automatically). With `disco` (the data plane speaks disco and so does
/// the peer) the data plane finds the path itself among the candidates,
/// through the peer's home relay until a direct one is proven.
pub fn peer_config(peer: &Peer, endpoint: Option<std::net::SocketAddr>, disco: bool) -> PeerConfig {
    let disco = disco.then_some(peer.disco_key).flatten();
    PeerConfig {
        key: peer.wireguard_key,
        endpoint: if disco.is_some() { None } else { endpoint },
        allowed_ips: peer
            .allowed_ips
            .iter()
            .copied()
            .filter(|prefix| prefix.prefix_len() != 0)
            .collect(),
        keepalive: Some(PEER_KEEPALIVE),
        disco,
        home_relay: peer.home_relay,
        candidates: peer.endpoints.clone(),
        replaces: None,
    }
}

/// Whether the agent chooses `peer`'s endpoint itself ([`EndpointChoice`]):
/// for plain WireGuard peers, or when the data plane has no disco.
fn chooses_endpoint(peer: &Peer, disco: bool) -> bool {
    !disco || peer.disco_key.is_none()
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
/// peer's endpoint choice (updated here) at `now` (since the epoch);
/// `disco`: whether the data plane finds paths with disco.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    changes: &MeshChanges,
    node: Option<&NodeInfo>,
    peers: &BTreeMap<NodeId, Peer>,
    addresses: Option<(Ipv4Addr, Ipv6Addr)>,
    routes: &BTreeSet<IpNet>,
    choices: &mut HashMap<NodeId, EndpointChoice>,
    now: Duration,
    disco: bool,
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
            let mut config = if chooses_endpoint(peer, disco) {
                let choice = choices
                    .entry(*id)
                    .or_insert_with(|| EndpointChoice::new(Vec::new()));
                choice.update(peer.endpoints.clone());
                peer_config(peer, choice.next(now, None), disco)
            } else {
                choices.remove(id);
                peer_config(peer, None, disco)
            };
            // A rotated key replaces the old one (whose session carries on
            // until the new handshake), rather than adding a second peer.
            config.replaces = changes.rekeyed.get(id).copied();
            Some(config)
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
            // Only plain WireGuard peers have a choice (see `plan`).
            Some(peer_config(peer, Some(endpoint), false))
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
            relays_changed: false,
            rekeyed: BTreeMap::new(),
            presence_changed: false,
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
            false,
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

    #[test]
    fn a_disco_peer_s_path_is_left_to_the_data_plane_and_a_plain_one_is_chosen_here() {
        let mut peers = BTreeMap::new();
        let mut disco_peer = peer(2, "100.64.0.2", &[], "198.18.0.2:41641");
        disco_peer.disco_key = Some(WireGuardKey([0xd2; 32]));
        disco_peer.home_relay = Some(900);
        peers.insert(2, disco_peer);
        peers.insert(3, peer(3, "100.64.0.3", &[], "10.0.0.3:41641"));
        let changes = MeshChanges {
            upserted: vec![2, 3],
            ..MeshChanges::default()
        };
        let mut choices = HashMap::new();
        let planned = plan(
            &changes,
            None,
            &peers,
            None,
            &BTreeSet::new(),
            &mut choices,
            Duration::ZERO,
            true,
        );
        let (disco, plain) = (&planned.set[0], &planned.set[1]);
        assert_eq!(disco.disco, Some(WireGuardKey([0xd2; 32])));
        assert_eq!(disco.home_relay, Some(900));
        assert_eq!(disco.endpoint, None, "disco finds the path");
        assert_eq!(disco.candidates, ["198.18.0.2:41641".parse().unwrap()]);
        assert_eq!(plain.disco, None);
        assert_eq!(plain.endpoint, Some("10.0.0.3:41641".parse().unwrap()));
        assert_eq!(choices.keys().copied().collect::<Vec<_>>(), [3]);

        // Without disco on this node (kernel WireGuard) every peer is plain.
        let mut choices = HashMap::new();
        let planned = plan(
            &changes,
            None,
            &peers,
            None,
            &BTreeSet::new(),
            &mut choices,
            Duration::ZERO,
            false,
        );
        assert_eq!(planned.set[0].disco, None);
        assert_eq!(
            planned.set[0].endpoint,
            Some("198.18.0.2:41641".parse().unwrap())
        );
    }

    #[test]
    fn a_rotated_peer_replaces_its_old_key_instead_of_being_removed() {
        let mut peers = BTreeMap::new();
        let mut rotated = peer(2, "100.64.0.2", &[], "10.0.0.2:41641");
        rotated.wireguard_key = WireGuardKey([0x22; 32]);
        peers.insert(2, rotated);
        let changes = MeshChanges {
            upserted: vec![2],
            rekeyed: [(2, WireGuardKey([2; 32]))].into(),
            ..MeshChanges::default()
        };
        let planned = plan(
            &changes,
            None,
            &peers,
            None,
            &BTreeSet::new(),
            &mut HashMap::new(),
            Duration::ZERO,
            true,
        );
        assert!(planned.remove.is_empty(), "the old session must not be cut");
        assert_eq!(planned.set[0].key, WireGuardKey([0x22; 32]));
        assert_eq!(planned.set[0].replaces, Some(WireGuardKey([2; 32])));
    }
}
