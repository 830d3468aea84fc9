//! The network map core: every node's record, the policy engine over the
//! admitted ones, and what each change means for each connected node.
//!
//! Pure: it takes changes and returns [`Delivery`]s (a message and the nodes
//! that must receive it); sending them is the caller's job. A change to one
//! node costs work proportional to the nodes that see it, never to all pairs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use hearth_acl::{CompiledPolicy, Engine, NodeIdentity, NodeUpdate};
use hearth_control::Fingerprint;
use hearth_control::compression::{self, Encoding};
use hearth_control::tailcfg::{DiscoKey, MachineKey};
use hearth_control::wire::{
    MapChange, MapMessage, MeshDns, NetworkMap, NodeId, NodeInfo, NodeState, Peer, PeerService,
    RelayRegion, WireGuardKey,
};
use ipnet::IpNet;

/// How a node proves who it is on each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A `hearth-agent`: the client certificate issued at registration.
    Certificate(Fingerprint),
    /// An official Tailscale client: the machine key of its ts2021 session.
    Machine(MachineKey),
}

/// Everything the coordinator knows about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// Node id.
    pub id: NodeId,
    /// Owning user's id.
    pub user_id: i64,
    /// Owning user's name (the login the policy refers to).
    pub user: String,
    /// Unique name.
    pub name: String,
    /// The hostname the device reported.
    pub hostname: String,
    /// Operating system it reported.
    pub os: String,
    /// WireGuard public key.
    pub wireguard_key: WireGuardKey,
    /// Admission state.
    pub state: NodeState,
    /// Mesh IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Mesh IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Removed after a period offline.
    pub ephemeral: bool,
    /// A device without an agent (configured from a wg-quick file).
    pub static_device: bool,
    /// Fingerprint of its control-plane client certificate (`hearth-agent`).
    pub cert_fingerprint: Option<Fingerprint>,
    /// Machine key of an official Tailscale client.
    pub machine_key: Option<MachineKey>,
    /// Its current disco key (a Tailscale client's from its last map
    /// request, an agent's from its last endpoint report); `None` for nodes
    /// that speak plain WireGuard.
    pub disco_key: Option<DiscoKey>,
    /// The relay region it is connected to, as it last reported.
    pub home_relay: Option<u16>,
    /// The client software and version (`tailscale 1.96.4`); empty for
    /// `hearth-agent` nodes and static devices.
    pub client: String,
    /// A Tailscale client's capability version (its map request's
    /// `Version`), which its peers are told; 0 for agents and static
    /// devices.
    pub capability_version: u16,
    /// Where it can be reached.
    pub endpoints: Vec<SocketAddr>,
    /// Routes it advertises.
    pub advertised_routes: Vec<IpNet>,
    /// Routes approved for it.
    pub approved_routes: Vec<IpNet>,
    /// Registration time (Unix seconds).
    pub created_at: i64,
    /// Last time it was connected (Unix seconds).
    pub last_seen: Option<i64>,
    /// When its keys stop being accepted (Unix seconds); `None`: never.
    pub key_expiry: Option<i64>,
    /// How long a fresh key lives (seconds); `None`: keys never expire.
    pub key_lifetime: Option<u64>,
    /// What a Tailscale client offers its peers (its peer API's ports).
    pub services: Vec<PeerService>,
    /// Its Tailscale SSH server's host keys.
    pub ssh_host_keys: Vec<String>,
    /// The Tailscale Services it says it serves.
    pub service_ads: ServiceAds,
    /// The services it hosts now: not stored, but placed by the
    /// coordinator ([`crate::services::placement`]) from the services, the
    /// admin's choices, the policy and what nodes advertise.
    pub hosted: Vec<hearth_acl::HostedService>,
}

/// What a Tailscale client says it serves (Tailscale Services): the hash
/// of its list it last reported in its host information, and the list as
/// it answered `GET /vip-services` (with that answer's hash). When the two
/// hashes differ, the coordinator asks again.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceAds {
    /// `Hostinfo.ServicesHash`, as last reported.
    #[serde(default)]
    pub reported: String,
    /// The hash of [`ServiceAds::names`], as the client gave it.
    #[serde(default)]
    pub fetched: String,
    /// The services (`svc:name`) it serves, active ones only.
    #[serde(default)]
    pub names: Vec<String>,
}

impl ServiceAds {
    /// Whether the list is older than what the client reported.
    pub fn stale(&self) -> bool {
        self.reported != self.fetched
    }
}

/// Where a node is to be reached, as it last reported: what endpoint reports
/// change, and the only fields they change. Reports are applied at once and
/// stored in batches ([`NodeRecord::whereabouts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whereabouts {
    /// Its candidate endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// Its disco key.
    pub disco_key: Option<DiscoKey>,
    /// Its home relay region.
    pub home_relay: Option<u16>,
}

impl NodeRecord {
    /// Where it is to be reached.
    pub fn whereabouts(&self) -> Whereabouts {
        Whereabouts {
            endpoints: self.endpoints.clone(),
            disco_key: self.disco_key,
            home_relay: self.home_relay,
        }
    }

    /// Sets where it is to be reached.
    pub fn set_whereabouts(&mut self, whereabouts: Whereabouts) {
        self.endpoints = whereabouts.endpoints;
        self.disco_key = whereabouts.disco_key;
        self.home_relay = whereabouts.home_relay;
    }

    /// Whether `other` is this record with, at most, other whereabouts.
    pub fn differs_only_in_whereabouts(&self, other: &NodeRecord) -> bool {
        let mut same = other.clone();
        same.set_whereabouts(self.whereabouts());
        same == *self
    }

    /// What the node proves itself with on each request; `None` for a
    /// static device, which never calls.
    pub fn credential(&self) -> Option<Credential> {
        self.cert_fingerprint
            .map(Credential::Certificate)
            .or(self.machine_key.map(Credential::Machine))
    }

    /// Whether the node takes part in the mesh.
    pub fn is_admitted(&self) -> bool {
        self.state == NodeState::Approved
    }

    /// Its mesh addresses.
    pub fn addresses(&self) -> Vec<IpAddr> {
        vec![IpAddr::V4(self.ipv4), IpAddr::V6(self.ipv6)]
    }

    /// What the coordinator tells about the node itself.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            name: self.name.clone(),
            user: self.user.clone(),
            tags: self.tags.iter().cloned().collect(),
            state: self.state,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            ephemeral: self.ephemeral,
            user_id: self.user_id,
            key_expiry: self.key_expiry,
            key_lifetime: self.key_lifetime,
            attrs: BTreeSet::new(),
            ssh: Vec::new(),
            hosted: self.hosted.clone(),
        }
    }

    /// The node as its peers see it.
    pub fn as_peer(&self) -> Peer {
        let mut allowed_ips = vec![
            IpNet::from(IpAddr::V4(self.ipv4)),
            IpNet::from(IpAddr::V6(self.ipv6)),
        ];
        allowed_ips.extend(self.approved_routes.iter().copied());
        allowed_ips.extend(
            self.hosted
                .iter()
                .flat_map(|service| &service.addresses)
                .map(|address| IpNet::from(*address)),
        );
        Peer {
            id: self.id,
            name: self.name.clone(),
            user: self.user.clone(),
            tags: self.tags.clone(),
            wireguard_key: self.wireguard_key,
            addresses: self.addresses(),
            allowed_ips,
            endpoints: self.endpoints.clone(),
            user_id: self.user_id,
            os: self.os.clone(),
            // A Tailscale client is told apart from a plain WireGuard peer
            // by having a disco key, zero until its first map request; an
            // agent has one when it speaks disco.
            disco_key: match self.machine_key {
                Some(_) => Some(WireGuardKey(self.disco_key.unwrap_or_default().0)),
                None => self.disco_key.map(|key| WireGuardKey(key.0)),
            },
            home_relay: self.home_relay,
            capability_version: self.capability_version,
            key_expiry: self.key_expiry,
            services: self.services.clone(),
            ssh_host_keys: self.ssh_host_keys.clone(),
            hosted: self.hosted.clone(),
        }
    }

    /// The node as the policy sees it.
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            id: self.id,
            user: self.user.clone(),
            tags: self.tags.clone(),
            addresses: self.addresses(),
            advertised_routes: self.advertised_routes.clone(),
            approved_routes: self.approved_routes.clone(),
            services: self.hosted.clone(),
        }
    }
}

/// One message and the nodes that must receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Receiving nodes.
    pub recipients: Vec<NodeId>,
    /// The message.
    pub message: MapMessage,
}

/// All nodes and the policy evaluated over the admitted ones.
#[derive(Debug)]
pub struct Network {
    nodes: HashMap<NodeId, NodeRecord>,
    /// Each node's JSON as a peer (`as_peer`), kept with `nodes`: a full map
    /// of thousands of peers is assembled from these instead of serialized
    /// anew for every node that connects.
    peer_json: HashMap<NodeId, Bytes>,
    engine: Engine,
    relays: Vec<RelayRegion>,
    /// What nodes' own resolvers answer (set once, at start).
    dns: Option<MeshDns>,
    /// When each admitted node's keys expire, soonest first, kept in step
    /// with `nodes`: what the expiry task sleeps until, instead of looking
    /// at every node.
    key_deadlines: BTreeSet<(i64, NodeId)>,
    /// Each policy class's part of its members' full maps, made when the
    /// first of them connects and dropped at any change (see [`ClassMap`]).
    class_maps: Mutex<ClassMaps>,
}

/// What the members of one policy class share in their full maps: the same
/// peers (each member's own entry cut out when it is sent) and the same
/// filter. In a reconnect storm each class's map is assembled once and every
/// member is sent the same bytes (slices of one buffer), instead of a copy
/// assembled per node; a member whose stream is zstd-compressed is sent the
/// same compressed frames, all but the one its own entry was in.
#[derive(Debug)]
struct ClassMap {
    /// The JSON of every node the class sees, comma-separated, in id order.
    peers: Bytes,
    /// Each of those nodes' id and where its JSON starts and ends in `peers`.
    spans: Vec<(NodeId, usize, usize)>,
    /// The line after the peers: the filter, the relays, the closing braces.
    tail: Bytes,
    /// The same in zstd frames, made when a member first asks for them.
    zstd: OnceLock<ZstdParts>,
}

/// A class map in zstd frames: `peers` cut into blocks at entries' ends,
/// each its own frame, so that a member's map needs only the block holding
/// its own entry compressed again without it.
#[derive(Debug)]
struct ZstdParts {
    /// Each block's start and end in `peers`, and its frame.
    blocks: Vec<(usize, usize, Bytes)>,
    tail: Bytes,
}

/// About how much of `peers` one frame holds: a member's connect
/// recompresses one block, and a smaller block compresses less well.
const ZSTD_BLOCK: usize = 32 * 1024;

/// Class maps kept, within a budget: a policy that makes thousands of
/// small classes shares little, and must not keep a map per node.
#[derive(Debug, Default)]
struct ClassMaps {
    maps: HashMap<usize, Arc<ClassMap>>,
    bytes: usize,
}

/// The most class-map bytes kept at once (about a hundred maps of 10,000
/// peers), counted uncompressed: a map's zstd frames, when made, add less
/// than half again.
const CLASS_MAP_BUDGET: usize = 256 * 1024 * 1024;

impl ClassMap {
    /// Where in `peers` the entry of `node` is, with the comma that
    /// separates it from the rest: what its own map leaves out.
    fn cut(&self, node: NodeId) -> Option<(usize, usize)> {
        let index = self
            .spans
            .binary_search_by_key(&node, |(id, _, _)| *id)
            .ok()?;
        let (_, start, end) = self.spans[index];
        Some(if self.spans.len() == 1 {
            (start, end)
        } else if index == 0 {
            // The first entry and the comma after it.
            (start, end + 1)
        } else {
            // The comma before the entry, and the entry.
            (start - 1, end)
        })
    }

    /// `peers` minus the entry of `node` (if it is among them), as at most
    /// two slices of the shared buffer.
    fn peers_without(&self, node: NodeId) -> Vec<Bytes> {
        let (start, end) = self
            .cut(node)
            .unwrap_or((self.peers.len(), self.peers.len()));
        [self.peers.slice(..start), self.peers.slice(end..)]
            .into_iter()
            .filter(|piece| !piece.is_empty())
            .collect()
    }

    fn zstd_parts(&self) -> &ZstdParts {
        self.zstd.get_or_init(|| {
            let mut blocks = Vec::new();
            let mut start = 0;
            for (_, _, end) in &self.spans {
                if end - start >= ZSTD_BLOCK {
                    blocks.push((start, *end, compression::frames(&self.peers[start..*end])));
                    start = *end;
                }
            }
            if start < self.peers.len() {
                let end = self.peers.len();
                blocks.push((start, end, compression::frames(&self.peers[start..end])));
            }
            ZstdParts {
                blocks,
                tail: compression::frames(&self.tail),
            }
        })
    }

    /// [`ClassMap::peers_without`] as zstd frames: the class's frames, but
    /// the blocks the cut touches compressed again without it.
    fn zstd_peers_without(&self, node: NodeId) -> Vec<Bytes> {
        let blocks = &self.zstd_parts().blocks;
        let frames = blocks.iter().map(|(_, _, frame)| frame.clone());
        let Some((cut_start, cut_end)) = self.cut(node) else {
            return frames.collect();
        };
        // The blocks overlapping the cut: blocks are contiguous and in order.
        let first = blocks.partition_point(|(_, end, _)| *end <= cut_start);
        let last = blocks.partition_point(|(start, _, _)| *start < cut_end);
        let (redo_start, redo_end) = (blocks[first].0, blocks[last - 1].1);
        let mut redone = Vec::with_capacity(redo_end - redo_start);
        redone.extend_from_slice(&self.peers[redo_start..cut_start]);
        redone.extend_from_slice(&self.peers[cut_end..redo_end]);
        let mut line: Vec<Bytes> = frames.clone().take(first).collect();
        if !redone.is_empty() {
            line.push(compression::frames(&redone));
        }
        line.extend(frames.skip(last));
        line
    }

    /// The pieces after a member's own part of its line: `peers_without`
    /// and the tail, in `encoding`.
    fn rest_of_line(&self, node: NodeId, encoding: Encoding) -> Vec<Bytes> {
        let (mut line, tail) = match encoding {
            Encoding::Identity => (self.peers_without(node), self.tail.clone()),
            Encoding::Zstd => (
                self.zstd_peers_without(node),
                self.zstd_parts().tail.clone(),
            ),
        };
        line.push(tail);
        line
    }
}

/// When `record`'s keys take it out of the mesh, if they ever do: only an
/// approved node's expiry matters (a pending, rejected or expired one is
/// out already).
fn key_deadline(record: &NodeRecord) -> Option<(i64, NodeId)> {
    (record.state == NodeState::Approved)
        .then_some(record.key_expiry)
        .flatten()
        .map(|expiry| (expiry, record.id))
}

impl Network {
    /// An empty network under `policy`.
    pub fn new(policy: Arc<CompiledPolicy>) -> Network {
        Network {
            nodes: HashMap::new(),
            peer_json: HashMap::new(),
            engine: Engine::new(policy),
            relays: Vec::new(),
            dns: None,
            key_deadlines: BTreeSet::new(),
            class_maps: Mutex::default(),
        }
    }

    /// Drops every class map: called by everything that changes the
    /// network, before it changes it.
    fn forget_class_maps(&mut self) {
        let maps = self
            .class_maps
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        *maps = ClassMaps::default();
    }

    /// The soonest time (Unix seconds) an admitted node's keys expire.
    pub fn next_key_expiry(&self) -> Option<i64> {
        self.key_deadlines.first().map(|(expiry, _)| *expiry)
    }

    /// The approved nodes whose keys have expired at `now`.
    pub fn keys_expired_at(&self, now: i64) -> Vec<NodeId> {
        self.key_deadlines
            .range(..=(now, NodeId::MAX))
            .map(|(_, node)| *node)
            .collect()
    }

    /// The relay regions every map names.
    pub fn relays(&self) -> &[RelayRegion] {
        &self.relays
    }

    /// Sets what nodes' own resolvers answer; maps sent from now on carry
    /// it (called at start, before any node connects).
    pub fn set_dns(&mut self, dns: Option<MeshDns>) {
        self.forget_class_maps();
        self.dns = dns;
    }

    /// Replaces the relay regions; every admitted node hears of it.
    pub fn set_relays(&mut self, relays: Vec<RelayRegion>) -> Vec<Delivery> {
        if relays == self.relays {
            return Vec::new();
        }
        self.forget_class_maps();
        self.relays = relays.clone();
        let recipients: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|record| record.is_admitted())
            .map(|record| record.id)
            .collect();
        if recipients.is_empty() {
            return Vec::new();
        }
        vec![Delivery {
            recipients,
            message: MapMessage::Delta {
                changes: vec![MapChange::RelaysChanged { relays }],
            },
        }]
    }

    /// A network holding `records` (as loaded at start-up).
    pub fn with_nodes(policy: Arc<CompiledPolicy>, records: Vec<NodeRecord>) -> Network {
        let mut network = Network::new(policy);
        network.engine.load(
            records
                .iter()
                .filter(|record| record.is_admitted())
                .map(NodeRecord::identity),
        );
        network.peer_json = records
            .iter()
            .map(|record| (record.id, peer_json(&record.as_peer())))
            .collect();
        network.nodes = records
            .into_iter()
            .map(|record| (record.id, record))
            .collect();
        network
    }

    /// The record of `node`.
    pub fn node(&self, node: NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&node)
    }

    /// Every record, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    /// The policy engine (for diagnostics and previews).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `record` as `viewer` sees it: a subnet router's routes are the ones
    /// the policy's `via` lets the viewer use through it.
    fn peer_for(&self, viewer: NodeId, record: &NodeRecord) -> Peer {
        let mut peer = record.as_peer();
        if !self.steers(record) {
            return peer;
        }
        if let Some(allowed) = self.engine.steered_routes(viewer, &record.identity()) {
            peer.allowed_ips.retain(|prefix| {
                (peer.addresses.contains(&prefix.addr())
                    && prefix.max_prefix_len() == prefix.prefix_len())
                    || prefix.prefix_len() == 0
                    || allowed.contains(prefix)
            });
        }
        peer
    }

    /// Whether `via` may show `record` differently to different viewers:
    /// the policy steers routes and it is a subnet router.
    fn steers(&self, record: &NodeRecord) -> bool {
        self.engine.has_via()
            && record
                .approved_routes
                .iter()
                .any(|route| route.prefix_len() != 0)
    }

    /// One delivery per distinct view of `record` among `recipients` (one
    /// in all unless `via` steers its routes differently for some).
    fn peer_deliveries(
        &self,
        record: &NodeRecord,
        recipients: Vec<NodeId>,
        change: impl Fn(Peer) -> MapChange,
    ) -> Vec<Delivery> {
        if !self.steers(record) {
            return vec![Delivery {
                recipients,
                message: MapMessage::Delta {
                    changes: vec![change(record.as_peer())],
                },
            }];
        }
        let mut groups: Vec<(Peer, Vec<NodeId>)> = Vec::new();
        for recipient in recipients {
            let peer = self.peer_for(recipient, record);
            match groups.iter_mut().find(|(view, _)| *view == peer) {
                Some((_, members)) => members.push(recipient),
                None => groups.push((peer, vec![recipient])),
            }
        }
        groups
            .into_iter()
            .map(|(peer, recipients)| Delivery {
                recipients,
                message: MapMessage::Delta {
                    changes: vec![change(peer)],
                },
            })
            .collect()
    }

    /// Every subnet router's view for each of its peers again, after
    /// something that can change how `via` steers (a policy change, or a
    /// viewer's identity): only when the policy (`had_via`, before) steers.
    fn steering_deliveries(&self, had_via: bool, viewers: Option<&[NodeId]>) -> Vec<Delivery> {
        if !had_via && !self.engine.has_via() {
            return Vec::new();
        }
        let mut deliveries = Vec::new();
        for router in self.nodes.values().filter(|record| {
            record.is_admitted()
                && record
                    .approved_routes
                    .iter()
                    .any(|route| route.prefix_len() != 0)
        }) {
            let recipients: Vec<NodeId> = self
                .engine
                .peers_of(router.id)
                .into_iter()
                .filter(|peer| viewers.is_none_or(|viewers| viewers.contains(peer)))
                .collect();
            if !recipients.is_empty() {
                deliveries.extend(
                    self.peer_deliveries(router, recipients, |peer| MapChange::PeerChanged {
                        peer,
                    }),
                );
            }
        }
        deliveries
    }

    /// The ids of `node`'s peers.
    pub fn peers_of(&self, node: NodeId) -> Vec<NodeId> {
        self.engine.peers_of(node)
    }

    /// The whole map of an admitted node; `None` for unknown or unadmitted nodes.
    pub fn full_map(&self, node: NodeId) -> Option<NetworkMap> {
        let record = self
            .nodes
            .get(&node)
            .filter(|record| record.is_admitted())?;
        let peers = self
            .engine
            .peers_of(node)
            .into_iter()
            .filter_map(|peer| self.nodes.get(&peer))
            .map(|peer| self.peer_for(node, peer))
            .collect();
        Some(NetworkMap {
            node: self.node_info(record),
            peers,
            filter: self
                .engine
                .filter_of(node)
                .as_deref()
                .cloned()
                .unwrap_or_default(),
            relays: self.relays.clone(),
            dns: self.dns.clone(),
        })
    }

    /// [`Network::full_map`] as the stream line that carries it (a
    /// `MapMessage::Full`, newline-terminated) in `encoding`: the same
    /// bytes, in pieces to be sent one after another. Only the first piece
    /// (the node itself) is made for this node, and in zstd the frame its
    /// own peer entry was in; the rest are its class's [`ClassMap`], shared
    /// with every member of the class until the network changes.
    pub fn full_map_line(&self, node: NodeId, encoding: Encoding) -> Option<Vec<Bytes>> {
        let record = self
            .nodes
            .get(&node)
            .filter(|record| record.is_admitted())?;
        let (class, members) = self.engine.class_of(node)?;
        let cached = self.class_maps().maps.get(&class).cloned();
        let map = match cached {
            Some(map) => map,
            None => {
                let map = Arc::new(self.class_map(node, class));
                self.keep_class_map(class, members, &map);
                map
            }
        };
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(br#"{"type":"full","map":{"node":"#);
        serde_json::to_writer(&mut head, &self.node_info(record)).expect("nodes serialize");
        head.extend_from_slice(br#","peers":["#);
        let mut line = vec![match encoding {
            Encoding::Identity => Bytes::from(head),
            Encoding::Zstd => compression::frames(&head),
        }];
        line.extend(map.rest_of_line(node, encoding));
        Some(line)
    }

    fn class_maps(&self) -> MutexGuard<'_, ClassMaps> {
        hearth_runtime::lock(&self.class_maps)
    }

    /// The map shared by `class`, of which `viewer` is a member.
    fn class_map(&self, viewer: NodeId, class: usize) -> ClassMap {
        let entries: Vec<(NodeId, Bytes)> = self
            .engine
            .seen_by_class(class)
            .into_iter()
            .filter_map(|id| self.nodes.get(&id))
            .map(|peer| {
                // What `via` shows of a router depends on the viewer's
                // class only, so any member's view is the class's.
                let json = match self.peer_json.get(&peer.id) {
                    Some(json) if !self.steers(peer) => json.clone(),
                    _ => peer_json(&self.peer_for(viewer, peer)),
                };
                (peer.id, json)
            })
            .collect();
        let length: usize = entries.iter().map(|(_, json)| json.len() + 1).sum();
        let mut peers = Vec::with_capacity(length);
        let mut spans = Vec::with_capacity(entries.len());
        for (index, (id, json)) in entries.iter().enumerate() {
            if index > 0 {
                peers.push(b',');
            }
            let start = peers.len();
            peers.extend_from_slice(json);
            spans.push((*id, start, peers.len()));
        }
        let filter = self.engine.filter_of(viewer);
        let empty = hearth_acl::Filter::default();
        ClassMap {
            peers: Bytes::from(peers),
            spans,
            tail: full_map_tail(
                filter.as_deref().unwrap_or(&empty),
                &self.relays,
                self.dns.as_ref(),
            ),
            zstd: OnceLock::new(),
        }
    }

    /// Keeps `map` for the other members of `class` (of `members` nodes),
    /// if it has others and the budget allows.
    fn keep_class_map(&self, class: usize, members: usize, map: &Arc<ClassMap>) {
        let size = map.peers.len() + map.tail.len();
        let mut maps = self.class_maps();
        if members > 1 && maps.bytes + size <= CLASS_MAP_BUDGET {
            maps.bytes += size;
            maps.maps.insert(class, Arc::clone(map));
        }
    }

    /// What the node is told about itself: its record and its attributes
    /// under the policy.
    pub fn node_info(&self, record: &NodeRecord) -> NodeInfo {
        let policy = self.engine.policy();
        let addresses = record.addresses();
        NodeInfo {
            attrs: policy.attrs_of(&record.user, &record.tags, &addresses),
            ssh: policy.ssh_rules_for(&record.user, &record.tags, &addresses),
            ..record.info()
        }
    }

    /// Stores `record` (new or changed) and returns what each affected node must hear.
    pub fn upsert(&mut self, record: NodeRecord) -> Vec<Delivery> {
        self.forget_class_maps();
        let node = record.id;
        let previous = self.nodes.insert(node, record.clone());
        self.peer_json.insert(node, peer_json(&record.as_peer()));
        if let Some(deadline) = previous.as_ref().and_then(key_deadline) {
            self.key_deadlines.remove(&deadline);
        }
        if let Some(deadline) = key_deadline(&record) {
            self.key_deadlines.insert(deadline);
        }
        let was_admitted = previous.as_ref().is_some_and(NodeRecord::is_admitted);

        if !record.is_admitted() {
            if !was_admitted {
                return Vec::new();
            }
            let mut deliveries = self.removal_deliveries(node);
            deliveries.push(Delivery {
                recipients: vec![node],
                message: MapMessage::Revoked {
                    reason: format!("this node is now {}", record.state),
                },
            });
            return deliveries;
        }

        let change = self.engine.upsert(record.identity());
        let mut deliveries = Vec::new();
        let peer = record.as_peer();
        if !change.peers_added.is_empty() {
            deliveries.extend(
                self.peer_deliveries(&record, change.peers_added.clone(), |peer| {
                    MapChange::PeerAdded { peer }
                }),
            );
        }
        if !change.peers_removed.is_empty() {
            deliveries.push(Delivery {
                recipients: change.peers_removed.clone(),
                message: MapMessage::Delta {
                    changes: vec![MapChange::PeerRemoved { id: node }],
                },
            });
        }
        // A node that was not admitted has no open stream: it fetches a full map on connect.
        let Some(previous) = previous.filter(|_| was_admitted) else {
            return deliveries;
        };

        if previous.as_peer() != peer {
            let still: Vec<NodeId> = if change.peers_added.is_empty() {
                self.engine.peers_of(node)
            } else {
                let added: BTreeSet<NodeId> = change.peers_added.iter().copied().collect();
                self.engine
                    .peers_of(node)
                    .into_iter()
                    .filter(|peer| !added.contains(peer))
                    .collect()
            };
            if !still.is_empty() {
                deliveries.extend(
                    self.peer_deliveries(&record, still, |peer| MapChange::PeerChanged { peer }),
                );
            }
        }
        // Its own identity may steer its routes differently now.
        if !change.is_empty() {
            deliveries.extend(self.steering_deliveries(false, Some(&[node])));
        }
        let mut own = self.changes_for(NodeUpdate {
            node,
            peers_added: change.peers_added,
            peers_removed: change.peers_removed,
            filter: change.filter,
        });
        let (before, now) = (self.node_info(&previous), self.node_info(&record));
        if before != now {
            own.push(MapChange::SelfChanged { node: now });
        }
        if !own.is_empty() {
            deliveries.push(Delivery {
                recipients: vec![node],
                message: MapMessage::Delta { changes: own },
            });
        }
        deliveries
    }

    /// Forgets `node` and returns what each affected node must hear.
    pub fn remove(&mut self, node: NodeId) -> Vec<Delivery> {
        self.forget_class_maps();
        let Some(record) = self.nodes.get(&node) else {
            return Vec::new();
        };
        let admitted = record.is_admitted();
        if let Some(deadline) = key_deadline(record) {
            self.key_deadlines.remove(&deadline);
        }
        let deliveries = if admitted {
            let mut deliveries = self.removal_deliveries(node);
            deliveries.push(Delivery {
                recipients: vec![node],
                message: MapMessage::Revoked {
                    reason: "this node was deleted".into(),
                },
            });
            deliveries
        } else {
            Vec::new()
        };
        self.nodes.remove(&node);
        self.peer_json.remove(&node);
        deliveries
    }

    /// Replaces the policy and returns each node's resulting changes.
    pub fn set_policy(&mut self, policy: Arc<CompiledPolicy>) -> Vec<Delivery> {
        self.forget_class_maps();
        let had_via = self.engine.has_via();
        let told_before: HashMap<NodeId, NodeInfo> = self
            .nodes
            .values()
            .filter(|record| record.is_admitted())
            .map(|record| (record.id, self.node_info(record)))
            .collect();
        let updates = self.engine.set_policy(policy);
        let mut changes: BTreeMap<NodeId, Vec<MapChange>> = updates
            .into_iter()
            .map(|update| (update.node, self.changes_for(update)))
            .collect();
        // Nodes whose attributes or SSH rules the new policy changes hear
        // it about themselves.
        for (node, before) in told_before {
            let now = self.node_info(&self.nodes[&node]);
            if now != before {
                changes
                    .entry(node)
                    .or_default()
                    .push(MapChange::SelfChanged { node: now });
            }
        }
        let mut deliveries: Vec<Delivery> = changes
            .into_iter()
            .filter(|(_, changes)| !changes.is_empty())
            .map(|(node, changes)| Delivery {
                recipients: vec![node],
                message: MapMessage::Delta { changes },
            })
            .collect();
        deliveries.extend(self.steering_deliveries(had_via, None));
        deliveries
    }

    fn removal_deliveries(&mut self, node: NodeId) -> Vec<Delivery> {
        let peers = self.engine.remove(node);
        if peers.is_empty() {
            return Vec::new();
        }
        vec![Delivery {
            recipients: peers,
            message: MapMessage::Delta {
                changes: vec![MapChange::PeerRemoved { id: node }],
            },
        }]
    }

    fn changes_for(&self, update: NodeUpdate) -> Vec<MapChange> {
        let mut changes: Vec<MapChange> = update
            .peers_removed
            .into_iter()
            .map(|id| MapChange::PeerRemoved { id })
            .collect();
        changes.extend(
            update
                .peers_added
                .into_iter()
                .filter_map(|id| self.nodes.get(&id))
                .map(|record| MapChange::PeerAdded {
                    peer: self.peer_for(update.node, record),
                }),
        );
        if let Some(filter) = update.filter {
            changes.push(MapChange::FilterChanged {
                filter: (*filter).clone(),
            });
        }
        changes
    }
}

/// `peer` as JSON, as it appears in a map.
fn peer_json(peer: &Peer) -> Bytes {
    Bytes::from(serde_json::to_vec(peer).expect("peers serialize"))
}

/// The end of a full map's line after its peers (`filter`, `relays` and
/// `dns`), as `encode_line(&MapMessage::Full { map })` writes it.
fn full_map_tail(
    filter: &hearth_acl::Filter,
    relays: &[RelayRegion],
    dns: Option<&MeshDns>,
) -> Bytes {
    let mut tail = Vec::with_capacity(256);
    tail.extend_from_slice(br#"],"filter":"#);
    serde_json::to_writer(&mut tail, filter).expect("filters serialize");
    if !relays.is_empty() {
        tail.extend_from_slice(br#","relays":"#);
        serde_json::to_writer(&mut tail, relays).expect("relays serialize");
    }
    if let Some(dns) = dns {
        tail.extend_from_slice(br#","dns":"#);
        serde_json::to_writer(&mut tail, dns).expect("DNS settings serialize");
    }
    tail.extend_from_slice(b"}}\n");
    Bytes::from(tail)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hearth_acl::{PortRange, Principal, Rule, RuleDestination, Source};

    /// A plain node for tests: `user`'s Linux machine, its address and
    /// key made from `id`.
    pub(crate) fn record(id: NodeId, user: &str, state: NodeState) -> NodeRecord {
        let ipv4 = Ipv4Addr::new(100, 64, 0, id as u8);
        NodeRecord {
            id,
            user_id: 1,
            user: user.into(),
            name: format!("node{id}"),
            hostname: format!("node{id}"),
            os: "linux".into(),
            wireguard_key: WireGuardKey([id as u8; 32]),
            state,
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
            endpoints: Vec::new(),
            advertised_routes: Vec::new(),
            approved_routes: Vec::new(),
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

    fn allow_all() -> Arc<CompiledPolicy> {
        Arc::new(CompiledPolicy::allow_all())
    }

    fn peer_ids(network: &Network, node: NodeId) -> Vec<NodeId> {
        network
            .full_map(node)
            .map(|map| map.peers.iter().map(|peer| peer.id).collect())
            .unwrap_or_default()
    }

    #[test]
    fn key_deadlines_follow_every_change_to_a_node() {
        let mut network = Network::new(allow_all());
        let expiring = |id, state, expiry| NodeRecord {
            key_expiry: expiry,
            ..record(id, "alice", state)
        };
        network.upsert(expiring(1, NodeState::Approved, Some(500)));
        network.upsert(expiring(2, NodeState::Approved, Some(300)));
        network.upsert(expiring(3, NodeState::Pending, Some(100)));
        network.upsert(expiring(4, NodeState::Approved, None));
        assert_eq!(
            network.next_key_expiry(),
            Some(300),
            "pending nodes do not count"
        );
        assert_eq!(network.keys_expired_at(299), Vec::<NodeId>::new());
        assert_eq!(network.keys_expired_at(300), vec![2], "due at its second");
        // Rotated: a new lifetime replaces the old deadline.
        network.upsert(expiring(2, NodeState::Approved, Some(900)));
        assert_eq!(network.next_key_expiry(), Some(500));
        assert_eq!(network.keys_expired_at(600), vec![1]);
        // Expired, then deleted: no deadline is left behind.
        network.upsert(expiring(1, NodeState::Expired, Some(500)));
        assert_eq!(network.next_key_expiry(), Some(900));
        network.remove(2);
        assert_eq!(network.next_key_expiry(), None);
        // Approved later with a deadline already past: due at once.
        network.upsert(expiring(3, NodeState::Approved, Some(100)));
        assert_eq!(network.keys_expired_at(101), vec![3]);
    }

    #[test]
    fn pending_nodes_neither_see_nor_are_seen() {
        let mut network = Network::new(allow_all());
        assert!(
            network
                .upsert(record(1, "alice", NodeState::Approved))
                .is_empty()
        );
        assert!(
            network
                .upsert(record(2, "bob", NodeState::Pending))
                .is_empty()
        );
        assert_eq!(network.full_map(2), None);
        assert_eq!(peer_ids(&network, 1), Vec::<NodeId>::new());
    }

    #[test]
    fn approval_tells_every_existing_peer_with_one_shared_message() {
        let mut network = Network::new(allow_all());
        for id in 1..=3 {
            network.upsert(record(id, "alice", NodeState::Approved));
        }
        network.upsert(record(4, "bob", NodeState::Pending));
        let deliveries = network.upsert(record(4, "bob", NodeState::Approved));
        let shared = deliveries
            .iter()
            .find(|delivery| delivery.recipients.len() == 3)
            .expect("one message for the three existing nodes");
        assert_eq!(shared.recipients, vec![1, 2, 3]);
        assert!(matches!(
            &shared.message,
            MapMessage::Delta { changes } if matches!(&changes[..], [MapChange::PeerAdded { peer }] if peer.id == 4)
        ));
        assert_eq!(peer_ids(&network, 4), vec![1, 2, 3]);
        assert_eq!(peer_ids(&network, 1), vec![2, 3, 4]);
    }

    #[test]
    fn removal_and_rejection_drop_the_node_from_every_map_and_revoke_it() {
        let mut network = Network::new(allow_all());
        for id in 1..=3 {
            network.upsert(record(id, "alice", NodeState::Approved));
        }
        let deliveries = network.remove(2);
        assert_eq!(deliveries[0].recipients, vec![1, 3]);
        assert_eq!(
            deliveries[0].message,
            MapMessage::Delta {
                changes: vec![MapChange::PeerRemoved { id: 2 }]
            }
        );
        assert!(matches!(deliveries[1].message, MapMessage::Revoked { .. }));
        assert_eq!(peer_ids(&network, 1), vec![3]);

        let deliveries = network.upsert(record(3, "alice", NodeState::Rejected));
        assert_eq!(deliveries[0].recipients, vec![1]);
        assert_eq!(deliveries[1].recipients, vec![3]);
        assert_eq!(network.full_map(3), None);
    }

    #[test]
    fn an_endpoint_change_reaches_peers_as_peer_changed() {
        let mut network = Network::new(allow_all());
        network.upsert(record(1, "alice", NodeState::Approved));
        network.upsert(record(2, "alice", NodeState::Approved));
        let mut moved = record(2, "alice", NodeState::Approved);
        moved.endpoints = vec!["192.0.2.7:41641".parse().unwrap()];
        let deliveries = network.upsert(moved.clone());
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].recipients, vec![1]);
        assert_eq!(
            deliveries[0].message,
            MapMessage::Delta {
                changes: vec![MapChange::PeerChanged {
                    peer: moved.as_peer()
                }]
            }
        );
        // Writing the same record again tells nobody anything.
        assert!(network.upsert(moved).is_empty());
    }

    #[test]
    fn a_renamed_node_hears_about_itself() {
        let mut network = Network::new(allow_all());
        network.upsert(record(1, "alice", NodeState::Approved));
        let mut renamed = record(1, "alice", NodeState::Approved);
        renamed.name = "kitchen".into();
        let deliveries = network.upsert(renamed.clone());
        assert_eq!(
            deliveries,
            vec![Delivery {
                recipients: vec![1],
                message: MapMessage::Delta {
                    changes: vec![MapChange::SelfChanged {
                        node: renamed.info()
                    }]
                },
            }]
        );
    }

    #[test]
    fn a_policy_change_sends_filter_and_peer_deltas() {
        let mut network = Network::new(allow_all());
        network.upsert(record(1, "alice", NodeState::Approved));
        network.upsert(record(2, "bob", NodeState::Approved));
        // alice may reach bob's port 22 and nothing else is allowed.
        let policy = CompiledPolicy {
            rules: vec![Rule::network(
                vec![Source::User("alice".into())],
                vec![RuleDestination {
                    principal: Principal::Named(Source::User("bob".into())),
                    ports: vec![PortRange::single(22)],
                }],
                hearth_acl::filter::proto::DEFAULT.to_vec(),
            )],
            ..CompiledPolicy::default()
        };
        let deliveries = network.set_policy(Arc::new(policy));
        let for_bob = deliveries
            .iter()
            .find(|d| d.recipients == [2])
            .expect("bob's filter changed");
        assert!(
            matches!(&for_bob.message, MapMessage::Delta { changes } if matches!(changes[..], [MapChange::FilterChanged { .. }]))
        );
        assert_eq!(peer_ids(&network, 1), vec![2]);

        // Nobody may reach anybody: both lose each other.
        let deliveries = network.set_policy(Arc::new(CompiledPolicy::default()));
        assert_eq!(deliveries.len(), 2);
        assert_eq!(peer_ids(&network, 1), Vec::<NodeId>::new());
    }

    /// What zstd frames one after another decompress to.
    pub(crate) fn unzstd(frames: &[Bytes]) -> Bytes {
        let mut reader = compression::FrameReader::new().unwrap();
        let mut out = bytes::BytesMut::new();
        for frame in frames {
            reader.push(frame.clone());
            reader.read_into(&mut out, usize::MAX).unwrap();
        }
        out.freeze()
    }

    /// Every admitted node's assembled line, plain and in zstd frames,
    /// against its map serialized whole.
    fn assert_lines_match(network: &Network) {
        for record in network.nodes() {
            let expected = network
                .full_map(record.id)
                .map(|map| crate::streams::encode_line(&MapMessage::Full { map: Box::new(map) }));
            assert_eq!(
                network
                    .full_map_line(record.id, Encoding::Identity)
                    .map(|pieces| Bytes::from(pieces.concat())),
                expected,
                "node {}",
                record.id
            );
            assert_eq!(
                network
                    .full_map_line(record.id, Encoding::Zstd)
                    .map(|frames| unzstd(&frames)),
                expected,
                "node {} in zstd",
                record.id
            );
        }
    }

    #[test]
    fn a_policy_that_changes_a_nodes_attributes_tells_that_node() {
        let mut network = Network::new(allow_all());
        network.upsert(record(1, "alice", NodeState::Approved));
        network.upsert(record(2, "bob", NodeState::Approved));
        let with_attrs = hearth_acl::compile_text(
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
                "nodeAttrs": [{"target": ["alice@"], "attr": ["drive:share"]}]}"#,
        )
        .unwrap();
        let deliveries = network.set_policy(Arc::new(with_attrs));
        let told: Vec<(Vec<NodeId>, Vec<String>)> = deliveries
            .iter()
            .filter_map(|delivery| match &delivery.message {
                MapMessage::Delta { changes } => changes.iter().find_map(|change| match change {
                    MapChange::SelfChanged { node } => Some((
                        delivery.recipients.clone(),
                        node.attrs.iter().cloned().collect(),
                    )),
                    _ => None,
                }),
                _ => None,
            })
            .collect();
        assert_eq!(told, [(vec![1], vec!["drive:share".to_owned()])]);
        assert_eq!(
            network.full_map(1).unwrap().node.attrs.len(),
            1,
            "and its full map says so"
        );
        assert_lines_match(&network);
    }

    #[test]
    fn a_zstd_map_shares_every_frame_but_the_one_its_own_entry_was_in() {
        // 250 peers of about 500 bytes: several 32 KiB blocks, and members
        // whose entry is first, last, or at a block's edge.
        let mut network = Network::new(allow_all());
        for id in 1..=250 {
            network.upsert(record(id, "alice", NodeState::Approved));
        }
        assert_lines_match(&network);
        let frames = |id| network.full_map_line(id, Encoding::Zstd).unwrap();
        let (first, last) = (frames(1), frames(250));
        let plain: usize = network
            .full_map_line(250, Encoding::Identity)
            .unwrap()
            .iter()
            .map(Bytes::len)
            .sum();
        let compressed: usize = last.iter().map(Bytes::len).sum();
        assert!(first.len() >= 5, "three blocks or more: {}", first.len());
        assert!(
            compressed * 2 < plain,
            "{compressed} bytes compressed from {plain}"
        );
        // Node 1's entry is in the first block, node 250's in the last:
        // every other frame is the class's (the same buffers).
        let shared = last
            .iter()
            .filter(|frame| first.iter().any(|other| other.as_ptr() == frame.as_ptr()))
            .count();
        assert_eq!(
            shared,
            last.len() - 3,
            "all but the two heads and redone blocks"
        );
    }

    #[test]
    fn members_of_one_class_are_sent_one_shared_map_each_without_itself() {
        let mut network = Network::new(allow_all());
        network.upsert(record(1, "alice", NodeState::Approved));
        assert_lines_match(&network);
        for id in 2..=4 {
            network.upsert(record(id, "alice", NodeState::Approved));
        }
        // First, middle and last cut out of the shared peers; asked twice,
        // the second time from the kept class map.
        assert_lines_match(&network);
        assert_lines_match(&network);
        let second = network.full_map_line(2, Encoding::Identity).unwrap();
        let last = network.full_map_line(4, Encoding::Identity).unwrap();
        assert_eq!(
            second[1].as_ptr(),
            last[1].as_ptr(),
            "both start from the one buffer of the class's peers"
        );
        assert_eq!(
            second.last().unwrap().as_ptr(),
            last.last().unwrap().as_ptr(),
            "and end with the class's one filter"
        );

        // Any change drops the shared map: what follows is the new map.
        let mut moved = record(3, "alice", NodeState::Approved);
        moved.endpoints = vec!["192.0.2.9:41641".parse().unwrap()];
        network.upsert(moved);
        assert_lines_match(&network);
        network.upsert(record(5, "bob", NodeState::Approved));
        network.remove(1);
        assert_lines_match(&network);
        network.set_policy(Arc::new(
            hearth_acl::compile_text(
                r#"{"acls": [{"action": "accept", "src": ["bob@"], "dst": ["alice@:*"]}]}"#,
            )
            .unwrap(),
        ));
        assert_lines_match(&network);
    }

    #[test]
    fn the_full_map_line_is_the_full_map_serialized_through_every_change() {
        let route: IpNet = "10.99.0.0/24".parse().unwrap();
        let mut router = record(1, "ops", NodeState::Approved);
        router.tags = ["tag:a".to_owned()].into();
        router.advertised_routes = vec![route];
        router.approved_routes = vec![route];
        let steering = hearth_acl::compile_text(
            r#"{"tagOwners": {"tag:a": ["ops@"]},
                "grants": [
                  {"src": ["alice@"], "dst": ["10.99.0.0/24"], "ip": ["*"], "via": ["tag:a"]},
                  {"src": ["alice@"], "dst": ["*"], "ip": ["tcp:22"]}
                ]}"#,
        )
        .unwrap();
        let mut network = Network::with_nodes(
            Arc::new(steering),
            vec![
                router,
                record(2, "alice", NodeState::Approved),
                record(3, "bob", NodeState::Pending),
            ],
        );
        assert_lines_match(&network);
        assert_eq!(
            network.full_map_line(3, Encoding::Identity),
            None,
            "pending: no map"
        );

        network.upsert(record(3, "bob", NodeState::Approved));
        let mut moved = record(2, "alice", NodeState::Approved);
        moved.endpoints = vec!["192.0.2.7:41641".parse().unwrap()];
        moved.name = "alice \"laptop\"".into();
        network.upsert(moved);
        assert_lines_match(&network);

        network.set_relays(vec![RelayRegion {
            id: 900,
            code: "hub".into(),
            url: "https://hub:443".into(),
            fingerprint: "ab".repeat(32),
            stun_port: Some(3478),
        }]);
        network.set_policy(allow_all());
        assert_lines_match(&network);

        network.remove(2);
        assert_lines_match(&network);
        assert!(
            !network.peer_json.contains_key(&2),
            "nothing kept of a deleted node"
        );
    }

    #[test]
    fn via_steers_a_shared_route_to_the_named_router_for_the_granted_viewer() {
        let route: IpNet = "10.99.0.0/24".parse().unwrap();
        let router = |id, tag: &str| {
            let mut record = record(id, "ops", NodeState::Approved);
            record.tags = [tag.to_owned()].into();
            record.advertised_routes = vec![route];
            record.approved_routes = vec![route];
            record
        };
        let policy = hearth_acl::compile_text(
            r#"{"tagOwners": {"tag:a": ["ops@"], "tag:b": ["ops@"]},
                "grants": [
                  {"src": ["alice@"], "dst": ["10.99.0.0/24"], "ip": ["*"], "via": ["tag:a"]},
                  {"src": ["*"], "dst": ["*"], "ip": ["*"]}
                ]}"#,
        )
        .unwrap();
        let mut network = Network::new(Arc::new(policy));
        network.upsert(router(1, "tag:a"));
        network.upsert(router(2, "tag:b"));
        network.upsert(record(3, "alice", NodeState::Approved));
        network.upsert(record(4, "bob", NodeState::Approved));
        let routes_seen_by = |network: &Network, viewer: NodeId| -> Vec<(NodeId, bool)> {
            network
                .full_map(viewer)
                .unwrap()
                .peers
                .iter()
                .filter(|peer| peer.id <= 2)
                .map(|peer| (peer.id, peer.allowed_ips.contains(&route)))
                .collect()
        };
        assert_eq!(
            routes_seen_by(&network, 3),
            [(1, true), (2, false)],
            "alice's grant steers through tag:a"
        );
        assert_eq!(
            routes_seen_by(&network, 4),
            [(1, true), (2, true)],
            "bob has no via grant: both routers offer it"
        );

        // Without via, a policy change gives alice both routers again.
        let deliveries = network.set_policy(Arc::new(CompiledPolicy::allow_all()));
        let to_alice: Vec<&Peer> = deliveries
            .iter()
            .filter(|delivery| delivery.recipients.contains(&3))
            .flat_map(|delivery| match &delivery.message {
                MapMessage::Delta { changes } => changes
                    .iter()
                    .filter_map(|change| match change {
                        MapChange::PeerChanged { peer } => Some(peer),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        assert!(
            to_alice
                .iter()
                .any(|peer| peer.id == 2 && peer.allowed_ips.contains(&route)),
            "{to_alice:?}"
        );
        assert_eq!(routes_seen_by(&network, 3), [(1, true), (2, true)]);
    }
}
