//! The node's view of the mesh, kept from the coordinator's map stream.
//!
//! Pure: [`Mesh::apply`] takes one map message and says what changed, so the
//! data plane and the firewall can be brought in step. Nothing here touches
//! an interface.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hearth_acl::Filter;
use hearth_control::agent_api::WhoIs;
use hearth_control::wire::{
    MapChange, MapMessage, MeshDns, NodeId, NodeInfo, Peer, RelayRegion, WireGuardKey,
};

/// What one message changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshChanges {
    /// Peers that are new or whose details changed (current values in the mesh).
    pub upserted: Vec<NodeId>,
    /// Peers that left, as they were.
    pub removed: Vec<Peer>,
    /// The filter changed.
    pub filter_changed: bool,
    /// The node's own record changed.
    pub self_changed: bool,
    /// The relay regions changed.
    pub relays_changed: bool,
    /// Upserted peers whose WireGuard key changed (they rotated), with the
    /// key the data plane knows them by.
    pub rekeyed: BTreeMap<NodeId, WireGuardKey>,
    /// Some peer connected to the coordinator or left it (nothing for the
    /// data plane; services that follow the mesh look again).
    pub presence_changed: bool,
}

impl MeshChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty()
            && self.removed.is_empty()
            && !self.filter_changed
            && !self.self_changed
            && !self.relays_changed
    }

    /// Folds `later` into `self` (for batches of messages).
    pub fn merge(&mut self, later: MeshChanges) {
        // The first old key is the one the data plane knows.
        for (id, key) in later.rekeyed {
            self.rekeyed.entry(id).or_insert(key);
        }
        for mut peer in later.removed {
            self.upserted.retain(|id| *id != peer.id);
            if let Some(key) = self.rekeyed.remove(&peer.id) {
                peer.wireguard_key = key;
            }
            self.removed.push(peer);
        }
        for id in later.upserted {
            self.removed.retain(|peer| peer.id != id);
            if !self.upserted.contains(&id) {
                self.upserted.push(id);
            }
        }
        self.filter_changed |= later.filter_changed;
        self.self_changed |= later.self_changed;
        self.relays_changed |= later.relays_changed;
        self.presence_changed |= later.presence_changed;
    }
}

/// The outcome of applying one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The view changed (possibly not at all).
    Changed(MeshChanges),
    /// The node lost its admission: every peer was dropped.
    Revoked {
        /// The coordinator's reason.
        reason: String,
        /// What dropping the peers changed.
        changes: MeshChanges,
    },
}

/// The current view.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    /// The node itself, once a map arrived.
    pub node: Option<NodeInfo>,
    /// Peers by id.
    pub peers: BTreeMap<NodeId, Peer>,
    /// The inbound filter.
    pub filter: Filter,
    /// The relay regions, the coordinator's own first.
    pub relays: Vec<RelayRegion>,
    /// What this node's resolver answers, as the coordinator configured it.
    pub dns: Option<MeshDns>,
    /// Peers by mesh address, for `whois`.
    by_address: BTreeMap<IpAddr, NodeId>,
    /// Whether each peer is connected to the coordinator, as it last said.
    online: BTreeMap<NodeId, bool>,
}

impl Mesh {
    /// Applies one map message.
    pub fn apply(&mut self, message: MapMessage) -> Applied {
        match message {
            MapMessage::KeepAlive => Applied::Changed(MeshChanges::default()),
            MapMessage::Full { map } => {
                let mut changes = MeshChanges::default();
                let incoming: BTreeMap<NodeId, Peer> =
                    map.peers.into_iter().map(|peer| (peer.id, peer)).collect();
                let gone: Vec<NodeId> = self
                    .peers
                    .keys()
                    .filter(|id| !incoming.contains_key(id))
                    .copied()
                    .collect();
                for id in gone {
                    if let Some(peer) = self.remove_peer(id) {
                        changes.removed.push(peer);
                    }
                }
                for (id, peer) in incoming {
                    if self.peers.get(&id) != Some(&peer) {
                        if let Some(old) = self.insert_peer(peer) {
                            changes.rekeyed.insert(id, old);
                        }
                        changes.upserted.push(id);
                    }
                }
                changes.filter_changed = self.filter != map.filter;
                self.filter = map.filter;
                changes.self_changed = self.node.as_ref() != Some(&map.node);
                self.node = Some(map.node);
                changes.relays_changed = self.relays != map.relays;
                self.relays = map.relays;
                self.dns = map.dns;
                Applied::Changed(changes)
            }
            MapMessage::Delta { changes: list } => {
                let mut changes = MeshChanges::default();
                for change in list {
                    let mut one = MeshChanges::default();
                    match change {
                        MapChange::PeerAdded { peer } | MapChange::PeerChanged { peer } => {
                            one.upserted.push(peer.id);
                            let id = peer.id;
                            if let Some(old) = self.insert_peer(peer) {
                                one.rekeyed.insert(id, old);
                            }
                        }
                        MapChange::PeerRemoved { id } => {
                            if let Some(peer) = self.remove_peer(id) {
                                one.removed.push(peer);
                            }
                        }
                        MapChange::FilterChanged { filter } => {
                            one.filter_changed = self.filter != filter;
                            self.filter = filter;
                        }
                        MapChange::SelfChanged { node } => {
                            one.self_changed = true;
                            self.node = Some(node);
                        }
                        MapChange::RelaysChanged { relays } => {
                            one.relays_changed = self.relays != relays;
                            self.relays = relays;
                        }
                        MapChange::Presence { online, offline } => {
                            let said = online
                                .into_iter()
                                .map(|id| (id, true))
                                .chain(offline.into_iter().map(|id| (id, false)));
                            for (id, now) in said {
                                one.presence_changed |= self.online.insert(id, now) != Some(now);
                            }
                        }
                    }
                    changes.merge(one);
                }
                Applied::Changed(changes)
            }
            MapMessage::Revoked { reason } => {
                let mut changes = MeshChanges::default();
                let ids: Vec<NodeId> = self.peers.keys().copied().collect();
                for id in ids {
                    if let Some(peer) = self.remove_peer(id) {
                        changes.removed.push(peer);
                    }
                }
                changes.filter_changed = !self.filter.rules.is_empty();
                self.filter = Filter::default();
                Applied::Revoked { reason, changes }
            }
        }
    }

    /// Inserts or replaces `peer`; its previous WireGuard key when that
    /// changed.
    fn insert_peer(&mut self, peer: Peer) -> Option<WireGuardKey> {
        let mut rekeyed = None;
        if let Some(old) = self.peers.get(&peer.id) {
            for address in &old.addresses {
                self.by_address.remove(address);
            }
            rekeyed = (old.wireguard_key != peer.wireguard_key).then_some(old.wireguard_key);
        }
        for address in &peer.addresses {
            self.by_address.insert(*address, peer.id);
        }
        self.peers.insert(peer.id, peer);
        rekeyed
    }

    fn remove_peer(&mut self, id: NodeId) -> Option<Peer> {
        self.online.remove(&id);
        let peer = self.peers.remove(&id)?;
        for address in &peer.addresses {
            self.by_address.remove(address);
        }
        Some(peer)
    }

    /// The node's own mesh addresses.
    pub fn own_addresses(&self) -> Vec<IpAddr> {
        self.node
            .as_ref()
            .map(|node| vec![IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)])
            .unwrap_or_default()
    }

    /// Who holds mesh address `address` (a peer or this node).
    pub fn whois(&self, address: IpAddr) -> Option<WhoIs> {
        if let Some(node) = &self.node
            && (IpAddr::V4(node.ipv4) == address || IpAddr::V6(node.ipv6) == address)
        {
            return Some(WhoIs {
                id: node.id,
                name: node.name.clone(),
                user: node.user.clone(),
                tags: node.tags.clone(),
                addresses: self.own_addresses(),
                is_self: true,
                capabilities: Default::default(),
                online: Some(true),
            });
        }
        let peer = self.peers.get(self.by_address.get(&address)?)?;
        Some(self.named(peer, address))
    }

    fn named(&self, peer: &Peer, from: IpAddr) -> WhoIs {
        WhoIs {
            id: peer.id,
            name: peer.name.clone(),
            user: peer.user.clone(),
            tags: peer.tags.iter().cloned().collect(),
            addresses: peer.addresses.clone(),
            is_self: false,
            capabilities: self.capabilities_of(peer, from),
            online: self.online.get(&peer.id).copied(),
        }
    }

    /// The peers tagged `tag`, as `whois` names them, by id.
    pub fn tagged(&self, tag: &str) -> Vec<WhoIs> {
        self.peers
            .values()
            .filter(|peer| peer.tags.contains(tag))
            .filter_map(|peer| Some(self.named(peer, *peer.addresses.first()?)))
            .collect()
    }

    /// The application capabilities `peer`, sending from `from`, has at
    /// this node (what the policy's grants name in `app`).
    fn capabilities_of(&self, peer: &Peer, from: IpAddr) -> hearth_acl::Capabilities {
        let own = self.own_addresses();
        let Some(at) = own.first() else {
            return Default::default();
        };
        let identity = hearth_acl::PeerIdentity {
            user: &peer.user,
            tags: &peer.tags,
        };
        self.filter.capabilities_of(&identity, from, *at, &own)
    }

    /// Whether `peer` has capability `name` at this node.
    fn peer_has(&self, peer: &Peer, name: &str) -> bool {
        peer.addresses
            .first()
            .is_some_and(|from| self.capabilities_of(peer, *from).contains_key(name))
    }

    /// The peers the policy offers this node as peer relays (a
    /// `tailscale.com/cap/relay` grant from us to them gives them
    /// `relay-target` here), reached through DERP with disco: agents, and
    /// official clients at a capability version that relays (121 on).
    pub fn relay_candidates(&self) -> Vec<&Peer> {
        self.peers
            .values()
            .filter(|peer| peer.disco_key.is_some() && peer.home_relay.is_some())
            .filter(|peer| peer.capability_version == 0 || peer.capability_version >= 121)
            .filter(|peer| self.peer_has(peer, crate::peer_relay::CAP_RELAY_TARGET))
            .collect()
    }

    /// The peers the policy lets use this node as their peer relay.
    pub fn relay_clients(&self) -> Vec<&Peer> {
        self.peers
            .values()
            .filter(|peer| self.peer_has(peer, crate::peer_relay::CAP_RELAY))
            .collect()
    }

    /// A peer named `name` or holding address `name`.
    pub fn find_peer(&self, name: &str) -> Option<&Peer> {
        if let Ok(address) = name.parse::<IpAddr>() {
            return self
                .by_address
                .get(&address)
                .and_then(|id| self.peers.get(id));
        }
        self.peers.values().find(|peer| peer.name == name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hearth_control::wire::{NetworkMap, NodeState, WireGuardKey};
    use std::collections::BTreeSet;

    /// Alice's laptop, node 1 (100.64.0.1).
    pub(crate) fn node() -> NodeInfo {
        NodeInfo {
            id: 1,
            name: "laptop".into(),
            user: "alice".into(),
            tags: Vec::new(),
            state: NodeState::Approved,
            ipv4: "100.64.0.1".parse().unwrap(),
            ipv6: "fd7a:115c:a1e0::6440:1".parse().unwrap(),
            ephemeral: false,
            user_id: 1,
            key_expiry: None,
            key_lifetime: None,
            attrs: Default::default(),
            hosted: Vec::new(),
            ssh: Vec::new(),
        }
    }

    /// Bob's node `id` named `name` (100.64.0.ID).
    pub(crate) fn peer(id: NodeId, name: &str) -> Peer {
        Peer {
            id,
            name: name.into(),
            user: "bob".into(),
            tags: BTreeSet::new(),
            wireguard_key: WireGuardKey([id as u8; 32]),
            addresses: vec![format!("100.64.0.{id}").parse().unwrap()],
            allowed_ips: vec![format!("100.64.0.{id}/32").parse().unwrap()],
            endpoints: Vec::new(),
            user_id: 2,
            os: String::new(),
            disco_key: None,
            home_relay: None,
            capability_version: 0,
            key_expiry: None,
            services: Vec::new(),
            ssh_host_keys: Vec::new(),
            hosted: Vec::new(),
        }
    }

    fn full(peers: Vec<Peer>) -> MapMessage {
        MapMessage::Full {
            map: Box::new(NetworkMap {
                relays: Vec::new(),
                dns: None,
                node: node(),
                peers,
                filter: Filter::default(),
            }),
        }
    }

    #[test]
    fn presence_is_kept_per_peer_and_tagged_peers_are_listed_with_it() {
        let mut mesh = Mesh::default();
        let mut gpu = peer(2, "gaming-pc");
        gpu.tags.insert("tag:models".into());
        mesh.apply(full(vec![gpu, peer(3, "tv")]));
        let tagged = mesh.tagged("tag:models");
        assert_eq!(tagged.len(), 1);
        assert_eq!(
            (tagged[0].name.as_str(), tagged[0].online),
            ("gaming-pc", None)
        );
        let presence = |online: Vec<NodeId>, offline: Vec<NodeId>| MapMessage::Delta {
            changes: vec![MapChange::Presence { online, offline }],
        };
        let Applied::Changed(changes) = mesh.apply(presence(vec![2, 3], vec![])) else {
            panic!()
        };
        assert!(changes.presence_changed, "new presence is a change");
        assert!(changes.is_empty(), "but nothing for the data plane");
        assert_eq!(mesh.tagged("tag:models")[0].online, Some(true));
        let Applied::Changed(again) = mesh.apply(presence(vec![2], vec![])) else {
            panic!()
        };
        assert!(
            !again.presence_changed,
            "the same presence again is no change"
        );
        mesh.apply(presence(vec![], vec![2]));
        assert_eq!(mesh.tagged("tag:models")[0].online, Some(false));
        assert_eq!(
            mesh.whois("100.64.0.2".parse().unwrap()).unwrap().online,
            Some(false)
        );
        assert!(mesh.tagged("tag:other").is_empty());
        // A peer that leaves takes its presence with it.
        mesh.apply(MapMessage::Delta {
            changes: vec![MapChange::PeerRemoved { id: 2 }],
        });
        let mut back = peer(2, "gaming-pc");
        back.tags.insert("tag:models".into());
        mesh.apply(MapMessage::Delta {
            changes: vec![MapChange::PeerAdded { peer: back }],
        });
        assert_eq!(mesh.tagged("tag:models")[0].online, None);
    }

    #[test]
    fn a_full_map_after_a_reconnect_is_diffed_against_the_old_view() {
        let mut mesh = Mesh::default();
        let Applied::Changed(first) = mesh.apply(full(vec![peer(2, "tv"), peer(3, "nas")])) else {
            panic!()
        };
        assert_eq!(first.upserted, vec![2, 3]);
        assert!(first.self_changed);
        let mut moved = peer(3, "nas");
        moved.endpoints = vec!["192.0.2.3:41641".parse().unwrap()];
        let Applied::Changed(second) = mesh.apply(full(vec![moved, peer(4, "phone")])) else {
            panic!()
        };
        assert_eq!(second.upserted, vec![3, 4]);
        assert_eq!(
            second
                .removed
                .iter()
                .map(|peer| peer.id)
                .collect::<Vec<_>>(),
            vec![2]
        );
        assert!(!second.self_changed && !second.filter_changed);
        assert_eq!(mesh.whois("100.64.0.2".parse().unwrap()), None);
        assert_eq!(
            mesh.whois("100.64.0.4".parse().unwrap()).unwrap().name,
            "phone"
        );
    }

    #[test]
    fn deltas_add_change_and_remove_peers() {
        let mut mesh = Mesh::default();
        mesh.apply(full(vec![peer(2, "tv")]));
        let message = MapMessage::Delta {
            changes: vec![
                MapChange::PeerAdded {
                    peer: peer(3, "nas"),
                },
                MapChange::PeerRemoved { id: 2 },
                MapChange::PeerRemoved { id: 99 },
            ],
        };
        let Applied::Changed(changes) = mesh.apply(message) else {
            panic!()
        };
        assert_eq!(changes.upserted, vec![3]);
        assert_eq!(changes.removed.len(), 1);
        assert_eq!(mesh.peers.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(mesh.find_peer("nas").unwrap().id, 3);
        assert_eq!(mesh.find_peer("100.64.0.3").unwrap().id, 3);
    }

    #[test]
    fn whois_answers_for_peers_and_for_the_node_itself() {
        let mut mesh = Mesh::default();
        mesh.apply(full(vec![peer(2, "tv")]));
        let me = mesh
            .whois("fd7a:115c:a1e0::6440:1".parse().unwrap())
            .unwrap();
        assert!(me.is_self && me.name == "laptop" && me.user == "alice");
        let tv = mesh.whois("100.64.0.2".parse().unwrap()).unwrap();
        assert_eq!((tv.id, tv.user.as_str(), tv.is_self), (2, "bob", false));
        assert_eq!(mesh.whois("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn peer_relays_are_the_peers_the_policy_names_that_can_be_reached_with_disco() {
        let with_disco = |id: NodeId, name: &str, tags: &[&str], version: u16| Peer {
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            disco_key: Some(WireGuardKey([id as u8 + 100; 32])),
            home_relay: Some(1),
            capability_version: version,
            ..peer(id, name)
        };
        let mut mesh = Mesh::default();
        mesh.apply(full(vec![
            with_disco(2, "hub", &["tag:relay"], 0),
            with_disco(3, "old-phone", &["tag:relay"], 120),
            with_disco(4, "new-phone", &["tag:relay"], 131),
            Peer {
                disco_key: None,
                ..with_disco(5, "kernel-agent", &["tag:relay"], 0)
            },
            with_disco(6, "tv", &[], 0),
        ]));
        let capability = |name: &str, source: hearth_acl::Source| hearth_acl::CapabilityRule {
            src: vec![source],
            dst: vec![hearth_acl::Target::SelfAddresses],
            capabilities: [(name.to_owned(), serde_json::json!([]))].into(),
        };
        mesh.filter.capabilities = vec![
            capability(
                crate::peer_relay::CAP_RELAY_TARGET,
                hearth_acl::Source::Tag("tag:relay".into()),
            ),
            capability(
                crate::peer_relay::CAP_RELAY,
                hearth_acl::Source::User("bob".into()),
            ),
        ];
        let names = |peers: Vec<&Peer>| {
            peers
                .iter()
                .map(|peer| peer.name.clone())
                .collect::<Vec<_>>()
        };
        // Too old a Tailscale client, and a peer without disco, are not
        // offered; an untagged one is not named.
        assert_eq!(names(mesh.relay_candidates()), ["hub", "new-phone"]);
        // Bob's untagged device may use our relay; tagged ones are not his.
        assert_eq!(names(mesh.relay_clients()), ["tv"]);
        mesh.filter.capabilities.clear();
        assert!(mesh.relay_candidates().is_empty() && mesh.relay_clients().is_empty());
    }

    #[test]
    fn whois_names_the_capabilities_a_peer_has_here() {
        let mut mesh = Mesh::default();
        mesh.apply(full(vec![peer(2, "tv"), peer(3, "nas")]));
        let granted = serde_json::json!([{"models": ["*"]}]);
        mesh.filter.capabilities = vec![hearth_acl::CapabilityRule {
            src: vec![hearth_acl::Source::User("bob".into())],
            dst: vec![hearth_acl::Target::SelfAddresses],
            capabilities: [("hearth.example/cap/assistant".to_owned(), granted.clone())].into(),
        }];
        let tv = mesh.whois("100.64.0.2".parse().unwrap()).unwrap();
        assert_eq!(tv.capabilities["hearth.example/cap/assistant"], granted);
        let json = serde_json::to_value(&tv).unwrap();
        assert_eq!(
            json["capabilities"]["hearth.example/cap/assistant"],
            granted
        );
        mesh.filter.capabilities[0].src = vec![hearth_acl::Source::Tag("tag:x".into())];
        let tv = mesh.whois("100.64.0.2".parse().unwrap()).unwrap();
        assert!(tv.capabilities.is_empty(), "not granted to bob any more");
        assert!(!serde_json::to_string(&tv).unwrap().contains("capabilities"));
    }

    #[test]
    fn revocation_drops_every_peer_and_the_filter() {
        let mut mesh = Mesh::default();
        mesh.apply(full(vec![peer(2, "tv"), peer(3, "nas")]));
        let Applied::Revoked { changes, .. } = mesh.apply(MapMessage::Revoked {
            reason: "expired".into(),
        }) else {
            panic!()
        };
        assert_eq!(changes.removed.len(), 2);
        assert!(mesh.peers.is_empty());
    }

    #[test]
    fn merged_changes_keep_the_last_word_per_peer() {
        let mut batch = MeshChanges {
            upserted: vec![2],
            ..MeshChanges::default()
        };
        batch.merge(MeshChanges {
            removed: vec![peer(2, "tv")],
            ..MeshChanges::default()
        });
        assert!(batch.upserted.is_empty() && batch.removed.len() == 1);
        batch.merge(MeshChanges {
            upserted: vec![2],
            filter_changed: true,
            ..MeshChanges::default()
        });
        assert_eq!(batch.upserted, vec![2]);
        assert!(batch.removed.is_empty() && batch.filter_changed);
    }

    #[test]
    fn a_rotated_key_is_told_with_the_key_the_data_plane_knows() {
        let mut mesh = Mesh::default();
        mesh.apply(full(vec![peer(2, "desk")]));
        let original = mesh.peers[&2].wireguard_key;
        let rotated = |byte: u8| {
            let mut peer = peer(2, "desk");
            peer.wireguard_key = WireGuardKey([byte; 32]);
            MapMessage::Delta {
                changes: vec![MapChange::PeerChanged { peer }],
            }
        };
        let mut batch = MeshChanges::default();
        for message in [rotated(0x21), rotated(0x22)] {
            let Applied::Changed(changes) = mesh.apply(message) else {
                panic!("not revoked")
            };
            batch.merge(changes);
        }
        assert_eq!(batch.upserted, [2]);
        assert_eq!(batch.rekeyed[&2], original, "the first old key");
        // Removed in the same batch: the data plane's key goes.
        let Applied::Changed(removal) = mesh.apply(MapMessage::Delta {
            changes: vec![MapChange::PeerRemoved { id: 2 }],
        }) else {
            panic!("not revoked")
        };
        batch.merge(removal);
        assert!(batch.upserted.is_empty());
        assert_eq!(batch.removed[0].wireguard_key, original);
    }
}
