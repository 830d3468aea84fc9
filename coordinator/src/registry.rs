//! The coordinator's nodes in memory, with one owner: the network (maps,
//! policy, relays) and every index into it (by credential, by WireGuard
//! key, names, addresses, the next id), kept in step by [`Registry::upsert`]
//! and [`Registry::remove`] alone. Nothing else can change a field, so a
//! rename, a key rotation or a deletion cannot leave an index pointing at
//! the wrong node. Pure: no IO, no clock (callers pass `now`).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hearth_acl::{CompiledPolicy, HostedService};
use hearth_control::wire::{NodeId, RelayRegion, WireGuardKey};

use crate::error::{Error, Result};
use crate::ipam::{AddressPool, Exhausted};
use crate::names::NameIndex;
use crate::netmap::Credential;
use crate::netmap::{Delivery, Network, NodeRecord};

/// Every node and the indexes into them.
#[derive(Debug)]
pub(crate) struct Registry {
    network: Network,
    addresses: AddressPool,
    names: NameIndex,
    next_node_id: NodeId,
    by_credential: HashMap<Credential, NodeId>,
    by_wireguard_key: HashMap<WireGuardKey, NodeId>,
    /// The services each node hosts ([`crate::services::placement`]): a
    /// record coming in takes its node's, whatever it carried.
    hosting: BTreeMap<NodeId, Vec<HostedService>>,
}

impl Registry {
    /// The registry of `records` (as stored) under `policy`; `released`
    /// are addresses freed earlier and when, and ids continue above
    /// `highest_stored_id` (ids of deleted nodes are not reused).
    pub(crate) fn load(
        policy: Arc<CompiledPolicy>,
        records: Vec<NodeRecord>,
        released: impl IntoIterator<Item = (Ipv4Addr, i64)>,
        highest_stored_id: NodeId,
    ) -> Registry {
        let mut addresses = AddressPool::new();
        for (address, when) in released {
            addresses.mark_released(address, when);
        }
        let mut registry = Registry {
            network: Network::new(policy.clone()),
            addresses,
            names: NameIndex::default(),
            next_node_id: highest_stored_id + 1,
            by_credential: HashMap::new(),
            by_wireguard_key: HashMap::new(),
            hosting: BTreeMap::new(),
        };
        for record in &records {
            registry.index(record);
        }
        registry.network = Network::with_nodes(policy, records);
        registry
    }

    /// The network: maps, policy engine, relays.
    pub(crate) fn network(&self) -> &Network {
        &self.network
    }

    /// Node `id`.
    pub(crate) fn node(&self, id: NodeId) -> Option<&NodeRecord> {
        self.network.node(id)
    }

    /// The node presenting `credential`.
    pub(crate) fn presenting(&self, credential: Option<Credential>) -> Result<&NodeRecord> {
        let credential = credential.ok_or(Error::Unauthenticated)?;
        self.by_credential
            .get(&credential)
            .and_then(|id| self.network.node(*id))
            .ok_or(Error::UnknownNode)
    }

    /// The node whose WireGuard key is `key`.
    pub(crate) fn holder_of(&self, key: &WireGuardKey) -> Option<NodeId> {
        self.by_wireguard_key.get(key).copied()
    }

    /// Whether a node is called `name`.
    pub(crate) fn name_taken(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Whether `name` is a service's label (no node may have it).
    pub(crate) fn is_service_label(&self, name: &str) -> bool {
        self.names.is_service_label(name)
    }

    /// The services' labels from now on; the nodes called so now, which
    /// are to be renamed away.
    pub(crate) fn set_service_labels(&mut self, labels: Vec<String>) -> Vec<NodeId> {
        self.names.set_service_labels(labels);
        self.network
            .nodes()
            .filter(|record| self.names.is_service_label(&record.name))
            .map(|record| record.id)
            .collect()
    }

    /// Keeps `names` from every node (see [`NameIndex::reserve`]).
    pub(crate) fn reserve_names(&mut self, names: &[String]) {
        for name in names {
            self.names.reserve(name);
        }
    }

    /// A name no node has, made from `hostname` (see [`NameIndex::unique`]).
    pub(crate) fn unique_name(&mut self, hostname: &str) -> String {
        self.names.unique(hostname)
    }

    /// The id the next new node gets.
    pub(crate) fn next_id(&self) -> NodeId {
        self.next_node_id
    }

    /// Addresses for a new node at `now`, held until [`Registry::upsert`]
    /// stores it or [`Registry::unallocate`] gives them back.
    pub(crate) fn allocate(
        &mut self,
        now: i64,
    ) -> std::result::Result<(Ipv4Addr, Ipv6Addr), Exhausted> {
        self.addresses.allocate(now)
    }

    /// Gives back an address a registration allocated but never stored.
    pub(crate) fn unallocate(&mut self, address: Ipv4Addr) {
        self.addresses.unallocate(address);
    }

    /// Stores `record` (a new node or a change to one: renamed, rekeyed,
    /// approved, moved) with every index moved along, and returns what
    /// each affected node must hear. An unchanged record changes nothing.
    pub(crate) fn upsert(&mut self, mut record: NodeRecord) -> Vec<Delivery> {
        record.hosted = self.hosting.get(&record.id).cloned().unwrap_or_default();
        match self.network.node(record.id) {
            Some(old) if *old == record => return Vec::new(),
            Some(old) => {
                let old = old.clone();
                self.unindex(&old);
            }
            None => {}
        }
        self.index(&record);
        self.network.upsert(record)
    }

    /// Forgets node `id` at `now`: its address rests before reuse and its
    /// name, key and credential are free. Returns its record and what its
    /// peers must hear.
    pub(crate) fn remove(&mut self, id: NodeId, now: i64) -> Option<(NodeRecord, Vec<Delivery>)> {
        let record = self.network.node(id)?.clone();
        let deliveries = self.network.remove(id);
        self.unindex(&record);
        self.addresses.release(record.ipv4, now);
        Some((record, deliveries))
    }

    /// Whether any node hosts a service.
    pub(crate) fn hosts_any(&self) -> bool {
        !self.hosting.is_empty()
    }

    /// Puts services where `hosting` says (node -> the services it hosts);
    /// returns what changes for each node.
    pub(crate) fn set_hosting(
        &mut self,
        hosting: BTreeMap<NodeId, Vec<HostedService>>,
    ) -> Vec<Delivery> {
        let moved: Vec<NodeRecord> = self
            .network
            .nodes()
            .filter(|record| {
                record.hosted.as_slice()
                    != hosting
                        .get(&record.id)
                        .map_or(&[][..], |hosted| hosted.as_slice())
            })
            .cloned()
            .collect();
        self.hosting = hosting;
        moved
            .into_iter()
            .flat_map(|record| self.upsert(record))
            .collect()
    }

    /// Replaces the policy; returns each node's changes.
    pub(crate) fn set_policy(&mut self, policy: Arc<CompiledPolicy>) -> Vec<Delivery> {
        self.network.set_policy(policy)
    }

    /// Sets what nodes' own resolvers answer (at start).
    pub(crate) fn set_dns(&mut self, dns: Option<hearth_control::wire::MeshDns>) {
        self.network.set_dns(dns);
    }

    /// Replaces the relay regions; returns each node's changes.
    pub(crate) fn set_relays(&mut self, relays: Vec<RelayRegion>) -> Vec<Delivery> {
        self.network.set_relays(relays)
    }

    fn index(&mut self, record: &NodeRecord) {
        self.addresses.mark_used(record.ipv4);
        self.names.insert(&record.name);
        self.next_node_id = self.next_node_id.max(record.id + 1);
        self.by_wireguard_key
            .insert(record.wireguard_key, record.id);
        if let Some(credential) = record.credential() {
            self.by_credential.insert(credential, record.id);
        }
    }

    /// Drops `record`'s entries, leaving its address used (a change keeps
    /// it; [`Registry::remove`] releases it).
    fn unindex(&mut self, record: &NodeRecord) {
        self.names.remove(&record.name);
        if self.by_wireguard_key.get(&record.wireguard_key) == Some(&record.id) {
            self.by_wireguard_key.remove(&record.wireguard_key);
        }
        if let Some(credential) = record.credential()
            && self.by_credential.get(&credential) == Some(&record.id)
        {
            self.by_credential.remove(&credential);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The registry as a state machine against a reference model: random
    //! sequences of registrations, approvals, expiries, retags, renames,
    //! key rotations, deletions and policy changes (shrunk to the shortest
    //! failing sequence), checked after every step:
    //! - every index answers what a plain list of the nodes answers;
    //! - each connected node's map, built from its first full map and every
    //!   delta delivered since, is the map the registry would send it now
    //!   (streams never drift);
    //! - that map is the one a network built from scratch from the same
    //!   nodes sends (the incremental policy engine never drifts);
    //! - its peers are the ones the policy's words name, as the model
    //!   reads them;
    //! - an official Tailscale client fed the same stream through
    //!   [`crate::tsmap::TsMapView`] (full map, then `PeersChanged`,
    //!   `PeersRemoved`, `PeersChangedPatch`, filters), applying responses as
    //!   tailscaled's map session does, holds what a client that connected
    //!   now would be sent.

    use std::collections::{BTreeMap, BTreeSet};

    use hearth_acl::{Filter, Policy};
    use hearth_control::Fingerprint;
    use hearth_control::tailcfg::{DERP_MAGIC_IP, DiscoKey, FilterRule, MapResponse, Node};
    use hearth_control::wire::{MapChange, MapMessage, NodeInfo, NodeState, Peer};

    use crate::netmap::tests::unzstd;
    use crate::streams::encode_line;
    use crate::tsmap::{SelfKeys, TsMapView};
    use hearth_control::compression::Encoding;
    use proptest::prelude::*;

    use super::*;

    /// Whether every index of `registry` says what its nodes say.
    fn consistent(registry: &Registry) -> std::result::Result<(), String> {
        let nodes: Vec<&NodeRecord> = registry.network.nodes().collect();
        let keys: HashMap<WireGuardKey, NodeId> = nodes
            .iter()
            .map(|record| (record.wireguard_key, record.id))
            .collect();
        if keys != registry.by_wireguard_key {
            return Err(format!(
                "keys {:?} != {:?}",
                registry.by_wireguard_key, keys
            ));
        }
        let credentials: HashMap<Credential, NodeId> = nodes
            .iter()
            .filter_map(|record| Some((record.credential()?, record.id)))
            .collect();
        if credentials != registry.by_credential {
            return Err("credentials differ".into());
        }
        for record in &nodes {
            if !registry.names.contains(&record.name) {
                return Err(format!("name {} not taken", record.name));
            }
            if record.id >= registry.next_node_id {
                return Err(format!("id {} not below the next", record.id));
            }
        }
        Ok(())
    }

    const ALICE: &str = "alice@example.com";
    const BOB: &str = "bob@example.com";

    /// Alice's own devices reach servers; servers reach databases.
    const LAYERED: &str = r#"{
        "tagOwners": {"tag:server": ["alice@example.com"], "tag:db": ["alice@example.com"]},
        "acls": [
            {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:*"]},
            {"action": "accept", "src": ["tag:server"], "dst": ["tag:db:5432"]}
        ]
    }"#;
    const OPEN: &str = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;

    /// Whether, under the policy `open` or not, `from` may reach `to`, read
    /// from the policy's words alone.
    fn reaches(open: bool, from: &NodeRecord, to: &NodeRecord) -> bool {
        if open {
            return true;
        }
        let own_device_of_alice = from.tags.is_empty() && from.user == ALICE;
        (own_device_of_alice && to.tags.contains("tag:server"))
            || (from.tags.contains("tag:server") && to.tags.contains("tag:db"))
    }

    #[derive(Clone, Debug)]
    enum Op {
        Register {
            bob: bool,
            tags: u8,
            approved: bool,
        },
        Approve(usize),
        Expire(usize),
        Retag(usize, u8),
        Rename(usize),
        Rekey(usize),
        /// New endpoints, disco key and home relay (what a client reports).
        Move(usize, u8),
        Remove(usize),
        Policy {
            open: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<bool>(), 0u8..4, any::<bool>())
                .prop_map(|(bob, tags, approved)| Op::Register { bob, tags, approved }),
            2 => any::<usize>().prop_map(Op::Approve),
            1 => any::<usize>().prop_map(Op::Expire),
            2 => (any::<usize>(), 0u8..4).prop_map(|(at, tags)| Op::Retag(at, tags)),
            1 => any::<usize>().prop_map(Op::Rename),
            1 => any::<usize>().prop_map(Op::Rekey),
            2 => (any::<usize>(), 1u8..5).prop_map(|(at, to)| Op::Move(at, to)),
            1 => any::<usize>().prop_map(Op::Remove),
            1 => any::<bool>().prop_map(|open| Op::Policy { open }),
        ]
    }

    fn tags(bits: u8) -> BTreeSet<String> {
        [(1, "tag:server"), (2, "tag:db")]
            .into_iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, tag)| tag.to_owned())
            .collect()
    }

    fn compiled(open: bool) -> Arc<CompiledPolicy> {
        let text = if open { OPEN } else { LAYERED };
        Arc::new(
            Policy::parse(text)
                .expect("the test policy parses")
                .compiled,
        )
    }

    /// What a connected node knows: its first full map with every delta
    /// since applied, as a client applies them.
    #[derive(Debug, PartialEq)]
    struct View {
        node: NodeInfo,
        peers: BTreeMap<NodeId, Peer>,
        filter: Filter,
    }

    impl View {
        fn of(map: hearth_control::wire::NetworkMap) -> View {
            View {
                node: map.node,
                peers: map.peers.into_iter().map(|peer| (peer.id, peer)).collect(),
                filter: map.filter,
            }
        }

        /// False when the node was revoked (its stream ends).
        fn apply(&mut self, message: &MapMessage) -> bool {
            match message {
                MapMessage::Full { map } => *self = View::of((**map).clone()),
                MapMessage::Delta { changes } => {
                    for change in changes {
                        match change {
                            MapChange::PeerAdded { peer } | MapChange::PeerChanged { peer } => {
                                self.peers.insert(peer.id, peer.clone());
                            }
                            MapChange::PeerRemoved { id } => {
                                self.peers.remove(id);
                            }
                            MapChange::FilterChanged { filter } => self.filter = filter.clone(),
                            MapChange::SelfChanged { node } => self.node = node.clone(),
                            MapChange::RelaysChanged { .. } | MapChange::Presence { .. } => {}
                        }
                    }
                }
                MapMessage::KeepAlive => {}
                MapMessage::Revoked { .. } => return false,
            }
            true
        }
    }

    /// An official client's state, from the responses it was sent, applied
    /// as tailscaled's map session applies them.
    #[derive(Debug, PartialEq)]
    struct TsClient {
        node: Option<Node>,
        peers: BTreeMap<i64, Node>,
        filter: Vec<FilterRule>,
    }

    impl TsClient {
        fn of(response: MapResponse) -> TsClient {
            let mut client = TsClient {
                node: None,
                peers: BTreeMap::new(),
                filter: Vec::new(),
            };
            client.apply(response);
            client
        }

        fn apply(&mut self, response: MapResponse) {
            if let Some(node) = response.node {
                self.node = Some(node);
            }
            if let Some(peers) = response.peers {
                self.peers = peers.into_iter().map(|node| (node.id, node)).collect();
            }
            for node in response.peers_changed {
                self.peers.insert(node.id, node);
            }
            for id in response.peers_removed {
                self.peers.remove(&id);
            }
            for patch in response.peers_changed_patch {
                let node = self
                    .peers
                    .get_mut(&patch.node_id)
                    .expect("a patch names a known peer");
                if !patch.endpoints.is_empty() {
                    node.endpoints = patch.endpoints;
                }
                if let Some(disco) = patch.disco_key {
                    node.disco_key = disco;
                }
                if patch.derp_region != 0 {
                    node.home_derp = patch.derp_region;
                    node.legacy_derp = format!("{DERP_MAGIC_IP}:{}", patch.derp_region);
                }
            }
            if let Some(filter) = response.packet_filter {
                self.filter = filter;
            }
        }
    }

    fn ts_view() -> TsMapView {
        TsMapView::new("hearth.test", Vec::new(), SelfKeys::default())
    }

    /// A client's state after its first full map.
    fn ts_connect(map: &hearth_control::wire::NetworkMap) -> (TsMapView, TsClient) {
        let mut view = ts_view();
        let response = view
            .apply(MapMessage::Full {
                map: Box::new(map.clone()),
            })
            .expect("a full map is sent");
        (view, TsClient::of(response))
    }

    struct Machine {
        registry: Registry,
        open: bool,
        /// The model: the nodes as a plain map.
        nodes: BTreeMap<NodeId, NodeRecord>,
        views: BTreeMap<NodeId, View>,
        /// The same streams as official clients see them.
        tailscale: BTreeMap<NodeId, (TsMapView, TsClient)>,
        generation: u8,
        now: i64,
    }

    impl Machine {
        fn new() -> Machine {
            Machine {
                registry: Registry::load(compiled(false), Vec::new(), Vec::new(), 0),
                open: false,
                nodes: BTreeMap::new(),
                views: BTreeMap::new(),
                tailscale: BTreeMap::new(),
                generation: 0,
                now: 1_000,
            }
        }

        fn pick(&self, at: usize) -> Option<NodeRecord> {
            let ids: Vec<&NodeId> = self.nodes.keys().collect();
            (!ids.is_empty()).then(|| self.nodes[ids[at % ids.len()]].clone())
        }

        fn fresh_key(&mut self, id: NodeId) -> (WireGuardKey, Fingerprint) {
            self.generation = self.generation.wrapping_add(1);
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&id.to_le_bytes());
            key[8] = self.generation;
            let mut fingerprint = key;
            fingerprint[31] = 0xf0;
            (WireGuardKey(key), Fingerprint(fingerprint))
        }

        fn deliver(&mut self, deliveries: Vec<Delivery>) {
            for delivery in deliveries {
                for recipient in &delivery.recipients {
                    if let Some(view) = self.views.get_mut(recipient)
                        && !view.apply(&delivery.message)
                    {
                        self.views.remove(recipient);
                    }
                    if let Some((view, client)) = self.tailscale.get_mut(recipient) {
                        match view.apply(delivery.message.clone()) {
                            Some(response) => client.apply(response),
                            None => {
                                self.tailscale.remove(recipient);
                            }
                        }
                    }
                }
            }
        }

        fn upsert(&mut self, record: NodeRecord) {
            self.nodes.insert(record.id, record.clone());
            let deliveries = self.registry.upsert(record);
            self.deliver(deliveries);
        }

        fn step(&mut self, op: Op) {
            self.now += 1;
            match op {
                Op::Register {
                    bob,
                    tags: bits,
                    approved,
                } => {
                    let id = self.registry.next_id();
                    let name = self.registry.unique_name("laptop");
                    let (ipv4, ipv6) = self.registry.allocate(self.now).expect("addresses");
                    let (key, fingerprint) = self.fresh_key(id);
                    let user = if bob { BOB } else { ALICE };
                    let state = if approved {
                        NodeState::Approved
                    } else {
                        NodeState::Pending
                    };
                    let record = NodeRecord {
                        user_id: i64::from(bob),
                        name: name.clone(),
                        hostname: name,
                        wireguard_key: key,
                        ipv4,
                        ipv6,
                        tags: tags(bits),
                        cert_fingerprint: Some(fingerprint),
                        created_at: self.now,
                        ..crate::netmap::tests::record(id, user, state)
                    };
                    self.upsert(record);
                }
                Op::Approve(at)
                | Op::Expire(at)
                | Op::Retag(at, _)
                | Op::Rename(at)
                | Op::Rekey(at)
                | Op::Move(at, _)
                | Op::Remove(at) => {
                    let Some(mut record) = self.pick(at) else {
                        return;
                    };
                    match op {
                        Op::Approve(_) => record.state = NodeState::Approved,
                        Op::Expire(_) => record.state = NodeState::Expired,
                        Op::Retag(_, bits) => record.tags = tags(bits),
                        Op::Rename(_) => record.name = self.registry.unique_name(&record.name),
                        Op::Rekey(_) => {
                            let (key, fingerprint) = self.fresh_key(record.id);
                            record.wireguard_key = key;
                            record.cert_fingerprint = Some(fingerprint);
                        }
                        Op::Move(_, to) => {
                            record.endpoints =
                                vec![std::net::SocketAddr::from(([10, 0, 0, to], 41641))];
                            record.disco_key = Some(DiscoKey([to; 32]));
                            record.home_relay = (to % 3 != 0).then_some(900 + u16::from(to % 2));
                        }
                        Op::Remove(_) => {
                            self.nodes.remove(&record.id);
                            let (removed, deliveries) = self
                                .registry
                                .remove(record.id, self.now)
                                .expect("a known node is removed");
                            assert_eq!(removed, record);
                            self.deliver(deliveries);
                            self.views.remove(&record.id);
                            self.tailscale.remove(&record.id);
                            return;
                        }
                        _ => unreachable!(),
                    }
                    self.upsert(record);
                }
                Op::Policy { open } => {
                    self.open = open;
                    let deliveries = self.registry.set_policy(compiled(open));
                    self.deliver(deliveries);
                }
            }
            // Admitted nodes without a stream connect and get a full map,
            // as the stream sends it (its class's shared parts included).
            for record in self.nodes.values() {
                if record.is_admitted() && !self.views.contains_key(&record.id) {
                    let line = self
                        .registry
                        .network()
                        .full_map_line(record.id, Encoding::Identity)
                        .expect("admitted")
                        .concat();
                    let Ok(MapMessage::Full { map }) = serde_json::from_slice(&line) else {
                        panic!("node {}'s first line is not a full map", record.id);
                    };
                    let map = *map;
                    self.tailscale.insert(record.id, ts_connect(&map));
                    self.views.insert(record.id, View::of(map));
                }
            }
        }

        fn check(&self) -> std::result::Result<(), String> {
            consistent(&self.registry)?;
            for record in self.nodes.values() {
                let credential = record.credential();
                if self.registry.presenting(credential).ok() != Some(record) {
                    return Err(format!("node {} not found by its credential", record.id));
                }
                if self.registry.holder_of(&record.wireguard_key) != Some(record.id) {
                    return Err(format!("node {} not found by its key", record.id));
                }
            }
            let stored: Vec<NodeRecord> = self.nodes.values().cloned().collect();
            let scratch = Network::with_nodes(compiled(self.open), stored);
            for (id, view) in &self.views {
                let Some(record) = self.nodes.get(id).filter(|record| record.is_admitted()) else {
                    return Err(format!("node {id} streams without being admitted"));
                };
                let now = self.registry.network().full_map(*id).expect("admitted");
                let line = |encoding| {
                    self.registry
                        .network()
                        .full_map_line(*id, encoding)
                        .expect("admitted")
                };
                let whole = encode_line(&MapMessage::Full {
                    map: Box::new(now.clone()),
                });
                if line(Encoding::Identity).concat() != whole {
                    return Err(format!(
                        "node {id}'s full map line (its class's kept parts) is not its full map"
                    ));
                }
                if unzstd(&line(Encoding::Zstd)) != whole {
                    return Err(format!(
                        "node {id}'s full map line in zstd frames is not its full map"
                    ));
                }
                if *view != View::of(now.clone()) {
                    return Err(format!(
                        "node {id}'s streamed map drifted:\n{view:#?}\nvs {now:#?}"
                    ));
                }
                let rebuilt = scratch.full_map(*id).expect("admitted");
                if View::of(rebuilt) != View::of(now) {
                    return Err(format!(
                        "node {id}'s map differs from one built from scratch"
                    ));
                }
                let expected: BTreeSet<NodeId> = self
                    .nodes
                    .values()
                    .filter(|other| other.id != *id && other.is_admitted())
                    .filter(|other| {
                        reaches(self.open, record, other) || reaches(self.open, other, record)
                    })
                    .map(|other| other.id)
                    .collect();
                let peers: BTreeSet<NodeId> = view.peers.keys().copied().collect();
                if peers != expected {
                    return Err(format!(
                        "node {id} sees {peers:?}, the policy says {expected:?}"
                    ));
                }
                let Some((_, client)) = self.tailscale.get(id) else {
                    return Err(format!("node {id} has no Tailscale stream"));
                };
                let (_, fresh) =
                    ts_connect(&self.registry.network().full_map(*id).expect("admitted"));
                if *client != fresh {
                    return Err(format!(
                        "node {id}'s Tailscale client drifted:\n{client:#?}\nvs {fresh:#?}"
                    ));
                }
            }
            Ok(())
        }
    }

    proptest! {
        // Failures print their shrunk sequence; nothing is written to the tree.
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn streamed_maps_and_indexes_follow_every_change(ops in prop::collection::vec(op(), 1..40)) {
            let mut machine = Machine::new();
            for op in ops {
                machine.step(op.clone());
                if let Err(problem) = machine.check() {
                    return Err(TestCaseError::fail(format!("after {op:?}: {problem}")));
                }
            }
        }
    }

    #[test]
    fn a_removed_node_frees_its_name_key_and_credential_and_its_address_rests() {
        let mut machine = Machine::new();
        machine.step(Op::Register {
            bob: false,
            tags: 0,
            approved: true,
        });
        let record = machine.pick(0).expect("registered");
        machine.step(Op::Remove(0));
        assert!(!machine.registry.name_taken(&record.name));
        assert_eq!(machine.registry.holder_of(&record.wireguard_key), None);
        assert!(machine.registry.presenting(record.credential()).is_err());
        let (next, _) = machine.registry.allocate(machine.now).expect("addresses");
        assert_ne!(next, record.ipv4, "a freed address rests before reuse");
        assert_eq!(
            machine.registry.next_id(),
            record.id + 1,
            "ids are not reused"
        );
    }
}
