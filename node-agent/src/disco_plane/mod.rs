//! The disco plane: one owner of every peer's disco state (its key, the
//! messages it sent lately, [`Paths`] with its peer relay paths), of the
//! peer relays the policy offers and the peers that may use ours, of the
//! binds to other relays, and of our own relay [`Server`]. It does no IO
//! and reads no clock, the way firezone's connlib keeps its tunnel: it is
//! fed what arrived ([`Plane::handle_disco`], [`Plane::handle_challenge`],
//! [`Plane::handle_relay_datagram`]) and the time
//! ([`Plane::handle_timeout`]), and drained of what to send
//! ([`Plane::poll_transmit`]) and of each peer's new route
//! ([`Plane::poll_route`]). Randomness (disco nonces, transaction ids, the
//! relay's keys) comes from the seed it is made with.
//!
//! The userspace device drives it from one loop (`userspace::disco`); the
//! packet threads only read the route each peer's packets take, which that
//! loop publishes.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hearth_control::disco::{self, Bind, Boxer, Message, RelayEndpoint, Replays};
use hearth_control::wire::WireGuardKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zeroize::Zeroizing;

use crate::paths::{Action, Paths, Route, WireguardCounts};
use crate::peer_relay::client::RelayAction;
use crate::peer_relay::server::{Server, Verdict};
use crate::plane::PeerConfig;

/// Peer relay endpoints bound at once, at most (each is one peer's with
/// one relay).
const MAX_RELAY_BINDS: usize = 8192;
/// How often our relay's endpoints are checked for expiry.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// Where a datagram came from, or where one goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A UDP address.
    Udp(SocketAddr),
    /// A peer relay's endpoint `vni` at `address`.
    PeerRelay {
        /// The relay's address.
        address: SocketAddr,
        /// The endpoint.
        vni: u32,
    },
    /// A relay region, from (or to) the node with this key.
    Relay {
        /// The region.
        region: u16,
        /// The node key.
        key: [u8; 32],
    },
}

/// Where a peer's packets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Straight to this address.
    Udp(SocketAddr),
    /// Through a peer relay's endpoint.
    PeerRelay {
        /// The relay's address.
        address: SocketAddr,
        /// The endpoint.
        vni: u32,
    },
    /// Through this relay region.
    Relay {
        /// The region.
        region: u16,
    },
    /// Nowhere yet.
    Nowhere,
}

/// A disco message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Over UDP from the WireGuard socket.
    Udp {
        /// Where.
        to: SocketAddr,
        /// The sealed message.
        packet: Vec<u8>,
        /// A ping padded to a full WireGuard packet: sent only if this
        /// machine's route to `to` carries one whole.
        probe: bool,
    },
    /// Through a peer relay's endpoint, after a Geneve header (disco).
    Geneve {
        /// The relay's address.
        to: SocketAddr,
        /// The endpoint.
        vni: u32,
        /// For the relay itself (our bind handshake), not the peer.
        control: bool,
        /// The sealed message.
        packet: Vec<u8>,
        /// As for [`Transmit::Udp`].
        probe: bool,
    },
    /// Through relay `region` to the node with key `to`.
    Relay {
        /// The region.
        region: u16,
        /// The node key.
        to: [u8; 32],
        /// The sealed message.
        packet: Vec<u8>,
    },
}

/// A peer's route changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteChange {
    /// The peer's node key.
    pub peer: [u8; 32],
    /// Where its packets go now.
    pub target: Target,
    /// The route just became direct: a handshake begun on the old path is
    /// worth sending again on this one at once.
    pub became_direct: bool,
}

/// A peer the policy offers us as a peer relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayCandidate {
    /// Its node key.
    pub key: [u8; 32],
    /// Its disco key, which allocation requests are sealed to.
    pub disco: [u8; 32],
    /// Its home relay, through which they go.
    pub region: u16,
}

/// Who relays for us, and for whom we relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRelays {
    /// Peers offered to us as peer relays.
    pub candidates: Vec<RelayCandidate>,
    /// Node keys of peers that may ask our relay for endpoints.
    pub clients: HashSet<[u8; 32]>,
}

impl PeerRelays {
    /// Whether a relay is offered for reaching the peer with node key
    /// `peer` (one other than that peer itself).
    fn offered_for(&self, peer: &[u8; 32]) -> bool {
        self.candidates
            .iter()
            .any(|candidate| candidate.key != *peer)
    }
}

/// A disco peer as the plane knows it.
struct Peer {
    /// Its key before a rotation, while its old session lasts (relays and
    /// disco may still name it).
    previous_key: Option<[u8; 32]>,
    disco: [u8; 32],
    boxer: Boxer,
    home_relay: Option<u16>,
    replays: Replays,
    paths: Paths,
    route: Target,
}

impl Peer {
    fn knows_key(&self, own: &[u8; 32], key: &[u8; 32]) -> bool {
        key == own || self.previous_key.as_ref() == Some(key)
    }
}

/// What the data plane saw of a peer's WireGuard since the device started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataSeen {
    /// The counts [`Paths`] weighs a direct or peer relay path by.
    pub counts: WireguardCounts,
    /// When data last went to or came from the peer.
    pub last_traffic: Option<Duration>,
}

/// The disco plane (see the module's documentation).
pub struct Plane {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    /// Our node key, named in pings.
    node_key: [u8; 32],
    rng: StdRng,
    peers: HashMap<[u8; 32], Peer>,
    /// Node key by disco key.
    by_disco: HashMap<[u8; 32], [u8; 32]>,
    own_endpoints: Vec<SocketAddr>,
    /// The size of the largest WireGuard packet the device sends: pings
    /// are padded to it.
    probe_size: usize,
    relay_attached: bool,
    relays: PeerRelays,
    /// Which peer a peer relay's endpoint (relay key, VNI) is for: where
    /// its challenges go.
    binds: HashMap<([u8; 32], u32), [u8; 32]>,
    server: Option<Server>,
    last_expiry: Duration,
    transmits: VecDeque<Transmit>,
    routes: VecDeque<RouteChange>,
}

/// The address a pong names for a ping that came through relay `region`
/// (Tailscale's convention).
fn relay_address(region: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 3, 3, 40)), region)
}

impl Plane {
    /// A plane for the node with key `node_key`, whose packets are at most
    /// `probe_size` bytes; its disco key and every random value come from
    /// `seed`.
    pub fn new(node_key: [u8; 32], probe_size: usize, seed: [u8; 32]) -> Plane {
        let mut rng = StdRng::from_seed(seed);
        let secret = Zeroizing::new(rng.random::<[u8; 32]>());
        Plane {
            public: disco::public_key(&secret),
            secret,
            node_key,
            rng,
            peers: HashMap::new(),
            by_disco: HashMap::new(),
            own_endpoints: Vec::new(),
            probe_size,
            relay_attached: false,
            relays: PeerRelays::default(),
            binds: HashMap::new(),
            server: None,
            last_expiry: Duration::ZERO,
            transmits: VecDeque::new(),
            routes: VecDeque::new(),
        }
    }

    /// Our disco key.
    pub fn disco_public(&self) -> [u8; 32] {
        self.public
    }

    /// Our node key is now `key` (a rotation).
    pub fn set_node_key(&mut self, key: [u8; 32]) {
        self.node_key = key;
    }

    /// The device's interface MTU changed: pings are padded to `size`.
    pub fn set_probe_size(&mut self, size: usize) {
        self.probe_size = size;
    }

    /// Our endpoints, told to peers asked to call back.
    pub fn set_own_endpoints(&mut self, endpoints: Vec<SocketAddr>) {
        self.own_endpoints = endpoints;
    }

    /// A relay client is attached: peers may be routed through DERP.
    pub fn set_relay_attached(&mut self, attached: bool) {
        self.relay_attached = attached;
    }

    /// Adds a peer or changes it (`config`). A peer without a disco key
    /// is not the plane's; one whose disco key changed restarted, and its
    /// paths start over. A peer whose node key changed (`replaces`) keeps
    /// being known by the old key until [`Plane::retire_key`].
    pub fn set_peer(&mut self, config: &PeerConfig, now: Duration) {
        let key = config.key.0;
        let Some(disco_key) = config.disco.map(|disco| disco.0) else {
            self.remove_peer(&key);
            return;
        };
        let previous_key = match config.replaces {
            Some(old) if old != config.key && !self.peers.contains_key(&key) => {
                self.remove_peer(&old.0).then_some(old.0)
            }
            _ => None,
        };
        let restarted = self
            .peers
            .get(&key)
            .is_none_or(|peer| peer.disco != disco_key);
        if restarted {
            if let Some(old) = self.peers.get(&key) {
                self.by_disco.remove(&old.disco);
            }
            let previous_key =
                previous_key.or_else(|| self.peers.get(&key).and_then(|peer| peer.previous_key));
            self.by_disco.insert(disco_key, key);
            self.peers.insert(
                key,
                Peer {
                    previous_key,
                    disco: disco_key,
                    boxer: Boxer::new(&self.secret, &disco_key),
                    home_relay: config.home_relay,
                    replays: Replays::default(),
                    paths: Paths::default(),
                    route: Target::Nowhere,
                },
            );
        }
        let offered = self.relays.offered_for(&key);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.home_relay = config.home_relay;
        peer.paths.set_candidates(&config.candidates);
        peer.paths.set_relays_offered(offered);
        self.update_route(&key, now);
    }

    /// Forgets a peer; true if it was the plane's.
    pub fn remove_peer(&mut self, key: &[u8; 32]) -> bool {
        let Some(peer) = self.peers.remove(key) else {
            return false;
        };
        self.by_disco.remove(&peer.disco);
        self.binds.retain(|_, bound| bound != key);
        true
    }

    /// `peer`'s old session is gone: its old key is no longer its own.
    pub fn retire_key(&mut self, peer: &[u8; 32]) {
        if let Some(peer) = self.peers.get_mut(peer) {
            peer.previous_key = None;
        }
    }

    /// The peer relays the policy offers us, and the peers that may use
    /// ours (endpoints of any other go at once).
    pub fn set_peer_relays(&mut self, relays: PeerRelays) {
        let mut allowed = HashSet::new();
        for (key, peer) in &mut self.peers {
            peer.paths.set_relays_offered(relays.offered_for(key));
            if relays.clients.contains(key) {
                allowed.insert(peer.disco);
            }
        }
        if let Some(server) = &mut self.server {
            server.forget_unless(|key| allowed.contains(key));
        }
        self.relays = relays;
    }

    /// What the data plane saw of `peer`'s WireGuard (its paths are
    /// trusted only while WireGuard moves on them).
    pub fn note_data(&mut self, peer: &[u8; 32], seen: DataSeen, now: Duration) {
        let Some(peer) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(last) = seen.last_traffic {
            peer.paths.note_traffic(last);
        }
        peer.paths.note_wireguard(seen.counts, now);
    }

    /// The node keys of the plane's peers.
    pub fn peer_keys(&self) -> Vec<[u8; 32]> {
        self.peers.keys().copied().collect()
    }

    /// Whether `peer` is a disco peer.
    pub fn has_peer(&self, peer: &[u8; 32]) -> bool {
        self.peers.contains_key(peer)
    }

    /// The route of `peer` and the round trip of the path it takes (for
    /// a direct or peer relay path).
    pub fn path_of(&self, peer: &[u8; 32], now: Duration) -> Option<(Target, Option<Duration>)> {
        let peer = self.peers.get(peer)?;
        let rtt = match peer.route {
            Target::Udp(_) => peer.paths.direct_rtt(now),
            Target::PeerRelay { .. } => peer.paths.peer_relay_rtt(now),
            Target::Relay { .. } | Target::Nowhere => None,
        };
        Some((peer.route, rtt))
    }

    /// Time passed: every peer's paths send what they ask for and its
    /// route is brought up to date; our relay's endpoints expire.
    pub fn handle_timeout(&mut self, now: Duration) {
        let keys = self.peer_keys();
        for key in keys {
            let rng = &mut self.rng;
            let actions = match self.peers.get_mut(&key) {
                Some(peer) => peer.paths.tick(now, || rng.random()),
                None => continue,
            };
            self.update_route(&key, now);
            self.perform(&key, actions);
        }
        if let Some(server) = &mut self.server
            && now.saturating_sub(self.last_expiry) >= EXPIRE_EVERY
        {
            self.last_expiry = now;
            server.expire(now);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next peer whose route changed.
    pub fn poll_route(&mut self) -> Option<RouteChange> {
        self.routes.pop_front()
    }

    fn nonce(&mut self) -> [u8; disco::NONCE_LEN] {
        self.rng.random()
    }

    /// Where a disco peer's packets go: a proven direct path, else a
    /// proven peer relay path, else its home relay, else (no relay) the
    /// best guess at a direct one.
    fn route_of(&self, peer: &Peer, now: Duration) -> Target {
        match peer.paths.route(now) {
            Route::Direct(address) => Target::Udp(address),
            Route::PeerRelay { address, vni } => Target::PeerRelay { address, vni },
            Route::Relay => match peer.home_relay {
                Some(region) if self.relay_attached => Target::Relay { region },
                _ => peer
                    .paths
                    .best_guess()
                    .map(Target::Udp)
                    .unwrap_or(Target::Nowhere),
            },
        }
    }

    /// Brings `key`'s route up to date, telling [`Plane::poll_route`] if
    /// it changed.
    fn update_route(&mut self, key: &[u8; 32], now: Duration) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let route = self.route_of(peer, now);
        if route == peer.route {
            return;
        }
        let became_direct =
            matches!(route, Target::Udp(_)) && !matches!(peer.route, Target::Udp(_));
        let shown = WireGuardKey(*key);
        match route {
            Target::Udp(address) => tracing::info!(peer = %shown, path = %address, "direct path"),
            Target::PeerRelay { address, vni } => {
                tracing::info!(peer = %shown, relay = %address, vni, "path through a peer relay")
            }
            Target::Relay { region } => {
                tracing::info!(peer = %shown, region, "path through the relay")
            }
            Target::Nowhere => tracing::info!(peer = %shown, "no path"),
        }
        if let Some(peer) = self.peers.get_mut(key) {
            peer.route = route;
        }
        self.routes.push_back(RouteChange {
            peer: *key,
            target: route,
            became_direct,
        });
    }

    /// Seals `message` for `peer` and queues it over `via`. A ping goes
    /// padded to the size of the largest WireGuard packet: its pong then
    /// proves the path carries packets that large our way (a path inside
    /// another tunnel, or with a smaller MTU, passes small packets and
    /// loses full ones).
    fn send(&mut self, key: &[u8; 32], message: &Message, via: Via) {
        let nonce = self.nonce();
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let probe = matches!(message, Message::Ping { .. });
        let packet = if probe {
            peer.boxer.seal_padded(&nonce, message, self.probe_size)
        } else {
            peer.boxer.seal(&nonce, message)
        };
        tracing::trace!(peer = %WireGuardKey(*key), ?message, ?via, "disco sent");
        self.transmits.push_back(match via {
            Via::Udp(to) => Transmit::Udp { to, packet, probe },
            Via::PeerRelay { address, vni } => Transmit::Geneve {
                to: address,
                vni,
                control: false,
                packet,
                probe,
            },
            Via::Relay { region, .. } => Transmit::Relay {
                region,
                to: *key,
                packet,
            },
        });
    }

    /// Queues `message` to a peer relay's server `server` (our bind
    /// handshake) at `to`, for endpoint `vni`.
    fn send_to_relay_server(
        &mut self,
        server: [u8; 32],
        to: SocketAddr,
        vni: u32,
        message: &Message,
    ) {
        let nonce = self.nonce();
        let packet = Boxer::new(&self.secret, &server).seal(&nonce, message);
        self.transmits.push_back(Transmit::Geneve {
            to,
            vni,
            control: true,
            packet,
            probe: false,
        });
    }

    /// A ping naming our node key.
    fn ping(&self, tx: disco::TxId) -> Message {
        Message::Ping {
            tx,
            node_key: Some(self.node_key),
        }
    }

    /// The peer's home relay, when a relay client is attached.
    fn home_of(&self, key: &[u8; 32]) -> Option<u16> {
        self.peers
            .get(key)
            .and_then(|peer| peer.home_relay)
            .filter(|_| self.relay_attached)
    }

    /// Carries out what [`Paths`] asked for.
    fn perform(&mut self, key: &[u8; 32], actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Ping { to, tx } => {
                    let ping = self.ping(tx);
                    self.send(key, &ping, Via::Udp(to));
                }
                Action::CallMeMaybe => {
                    let Some(region) = self.home_of(key) else {
                        continue;
                    };
                    if self.own_endpoints.is_empty() {
                        continue;
                    }
                    let message = Message::CallMeMaybe {
                        endpoints: self.own_endpoints.clone(),
                    };
                    self.send(key, &message, Via::Relay { region, key: *key });
                }
                Action::PeerRelay(action) => self.perform_relay(key, action),
            }
        }
    }

    /// Carries out one peer relay action for the peer `key`.
    fn perform_relay(&mut self, key: &[u8; 32], action: RelayAction) {
        let Some(peer_disco) = self.peers.get(key).map(|peer| peer.disco) else {
            return;
        };
        match action {
            RelayAction::Allocate { generation } => {
                let request = Message::AllocateRelay {
                    clients: [self.public, peer_disco],
                    generation,
                };
                let candidates: Vec<RelayCandidate> = self
                    .relays
                    .candidates
                    .iter()
                    .filter(|candidate| candidate.key != *key)
                    .copied()
                    .collect();
                for candidate in candidates {
                    let nonce = self.nonce();
                    let packet = Boxer::new(&self.secret, &candidate.disco).seal(&nonce, &request);
                    self.transmits.push_back(Transmit::Relay {
                        region: candidate.region,
                        to: candidate.key,
                        packet,
                    });
                }
            }
            RelayAction::CallMeMaybeVia(endpoint) => {
                if let Some(region) = self.home_of(key) {
                    let message = Message::CallMeMaybeVia(endpoint);
                    self.send(key, &message, Via::Relay { region, key: *key });
                }
            }
            RelayAction::Bind {
                server,
                to,
                vni,
                generation,
            } => {
                let bind = Bind {
                    vni,
                    generation,
                    remote: peer_disco,
                    challenge: [0; 32],
                };
                // One endpoint per relay and peer is bound at a time.
                self.binds
                    .retain(|(relay, _), bound| !(*relay == server && bound == key));
                if self.binds.len() < MAX_RELAY_BINDS {
                    self.binds.insert((server, vni), *key);
                }
                self.send_to_relay_server(server, to, vni, &Message::BindRelay(bind));
            }
            RelayAction::Answer { server, to, bind } => {
                self.send_to_relay_server(server, to, bind.vni, &Message::BindRelayAnswer(bind));
            }
            RelayAction::Ping { to, vni, tx } => {
                let ping = self.ping(tx);
                self.send(key, &ping, Via::PeerRelay { address: to, vni });
            }
        }
    }

    fn perform_all_relay(&mut self, key: &[u8; 32], actions: Vec<RelayAction>) {
        for action in actions {
            self.perform_relay(key, action);
        }
    }

    /// A disco packet that arrived from `via`.
    pub fn handle_disco(&mut self, via: Via, packet: &[u8], now: Duration) {
        let Some(sender) = disco::sender(packet) else {
            return;
        };
        let Some(key) = self.by_disco.get(&sender).copied() else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Ok((message, nonce)) = peer.boxer.open_with_nonce(packet) else {
            return;
        };
        // A copy of a message seen before (a captured ping sent again from
        // another address, say) is not a message from the peer now.
        if !peer.replays.fresh(nonce, now) {
            tracing::debug!(peer = %WireGuardKey(key), ?via, "a disco message seen before was dropped");
            return;
        }
        tracing::trace!(peer = %WireGuardKey(key), ?message, ?via, "disco received");
        // Through a relay, the relay vouches for the sender's node key; a
        // ping names it too.
        let vouched = match via {
            Via::Relay { key: vouched, .. } => Some(vouched),
            Via::Udp(_) | Via::PeerRelay { .. } => None,
        };
        let claimed = match &message {
            Message::Ping { node_key, .. } => *node_key,
            _ => None,
        };
        if [vouched, claimed]
            .iter()
            .flatten()
            .any(|named| !peer.knows_key(&key, named))
        {
            return;
        }
        match message {
            Message::Ping { tx, .. } => {
                let seen = match via {
                    Via::Udp(address) | Via::PeerRelay { address, .. } => address,
                    Via::Relay { region, .. } => relay_address(region),
                };
                self.send(&key, &Message::Pong { tx, source: seen }, via);
                let Some(peer) = self.peers.get_mut(&key) else {
                    return;
                };
                let rng = &mut self.rng;
                match via {
                    Via::Udp(address) => {
                        let actions = peer.paths.on_ping(address, now, || rng.random());
                        self.perform(&key, actions);
                    }
                    Via::PeerRelay { address, vni } => {
                        let actions = peer
                            .paths
                            .relays()
                            .on_ping(address, vni, now, || rng.random());
                        self.perform_all_relay(&key, actions);
                    }
                    Via::Relay { .. } => {}
                }
            }
            Message::Pong { tx, .. } => {
                let changed = match via {
                    Via::Udp(address) => peer.paths.on_pong(tx, address, now),
                    Via::PeerRelay { address, vni } => {
                        peer.paths.on_relay_pong(tx, address, vni, now)
                    }
                    Via::Relay { .. } => false,
                };
                if changed {
                    self.update_route(&key, now);
                }
            }
            Message::CallMeMaybe { endpoints } => {
                if !matches!(via, Via::Relay { .. }) {
                    return; // only ever sent through a relay
                }
                let rng = &mut self.rng;
                let actions = peer
                    .paths
                    .on_call_me_maybe(&endpoints, now, || rng.random());
                self.perform(&key, actions);
            }
            Message::CallMeMaybeVia(endpoint) => {
                // Only ever sent through DERP, and only for the two of us.
                if !matches!(via, Via::Relay { .. }) || !self.for_us_and(&endpoint, sender) {
                    return;
                }
                let Some(peer) = self.peers.get_mut(&key) else {
                    return;
                };
                let actions = peer.paths.relays().on_endpoint(endpoint, now);
                self.perform_all_relay(&key, actions);
            }
            Message::AllocateRelay {
                clients,
                generation,
            } => {
                let Via::Relay { region, key: from } = via else {
                    return;
                };
                self.allocate(&key, (region, from), sender, clients, generation, now);
            }
            Message::AllocateRelayAnswer {
                generation,
                endpoint,
            } => {
                if matches!(via, Via::Relay { .. }) {
                    self.allocated(&key, generation, endpoint, now);
                }
            }
            Message::BindRelay(_)
            | Message::BindRelayChallenge(_)
            | Message::BindRelayAnswer(_) => {}
        }
    }

    /// Whether `endpoint` is for this node and the peer with disco key `peer`.
    fn for_us_and(&self, endpoint: &RelayEndpoint, peer: [u8; 32]) -> bool {
        let mut wanted = [self.public, peer];
        wanted.sort();
        let mut named = endpoint.clients;
        named.sort();
        named == wanted
    }

    /// The peer `key` (its disco key `sender`), through DERP region
    /// `region` with node key `from`, asks our relay for an endpoint for
    /// `clients`: made if the policy lets the peer use our relay and it is
    /// one of the two.
    fn allocate(
        &mut self,
        key: &[u8; 32],
        (region, from): (u16, [u8; 32]),
        sender: [u8; 32],
        clients: [[u8; 32]; 2],
        generation: u32,
        now: Duration,
    ) {
        let Some(server) = &mut self.server else {
            return;
        };
        if !self.relays.clients.contains(key) {
            tracing::debug!(peer = %WireGuardKey(*key), "a peer the policy does not let use our relay asked for an endpoint");
            return;
        }
        if !clients.contains(&sender) {
            return;
        }
        match server.allocate(clients[0], clients[1], now) {
            Ok(endpoint) => {
                let answer = Message::AllocateRelayAnswer {
                    generation,
                    endpoint,
                };
                self.send(key, &answer, Via::Relay { region, key: from });
            }
            Err(error) => tracing::debug!(%error, "no peer relay endpoint"),
        }
    }

    /// Peer relay `relay` answered our request `generation` with
    /// `endpoint`: it goes to the paths of the peer it is for.
    fn allocated(
        &mut self,
        relay: &[u8; 32],
        generation: u32,
        endpoint: RelayEndpoint,
        now: Duration,
    ) {
        let offered = self
            .relays
            .candidates
            .iter()
            .any(|candidate| candidate.key == *relay);
        if !offered {
            return;
        }
        let Some(other) = endpoint
            .clients
            .iter()
            .find(|client| **client != self.public)
            .copied()
        else {
            return;
        };
        if !self.for_us_and(&endpoint, other) {
            return;
        }
        let Some(key) = self.by_disco.get(&other).copied() else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let actions = peer.paths.relays().on_allocated(generation, endpoint, now);
        self.perform_all_relay(&key, actions);
    }

    /// A control message from a peer relay's server (the challenge to our
    /// bind) for endpoint `vni`, from `from`.
    pub fn handle_challenge(&mut self, from: SocketAddr, vni: u32, packet: &[u8], now: Duration) {
        let Some(server) = disco::sender(packet) else {
            return;
        };
        let Some(key) = self.binds.get(&(server, vni)).copied() else {
            return;
        };
        let Ok(Message::BindRelayChallenge(bind)) = Boxer::new(&self.secret, &server).open(packet)
        else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if bind.vni != vni || bind.remote != peer.disco {
            return;
        }
        let rng = &mut self.rng;
        let actions = peer
            .paths
            .relays()
            .on_challenge(server, from, bind, now, || rng.random());
        self.perform_all_relay(&key, actions);
    }

    /// Makes this node a peer relay (its keys drawn from the plane's
    /// randomness). Which peers may use it is [`Plane::set_peer_relays`]'s.
    pub fn serve_relay(&mut self) {
        if self.server.is_none() {
            self.server = Some(Server::new(self.rng.random(), self.rng.random()));
        }
    }

    /// Where our relay is reached (told to clients in each endpoint).
    pub fn set_relay_addresses(&mut self, addresses: Vec<SocketAddr>) {
        if let Some(server) = &mut self.server {
            server.set_addresses(addresses);
        }
    }

    /// Our relay's endpoints and how many peers may use it, when we are one.
    pub fn relay_status(&self) -> Option<(usize, usize)> {
        let server = self.server.as_ref()?;
        Some((server.endpoints(), self.relays.clients.len()))
    }

    /// A datagram for our relay's endpoints, from `from`.
    pub fn handle_relay_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Duration,
    ) -> Verdict {
        match &mut self.server {
            Some(server) => server.handle(from, datagram, now),
            None => Verdict::Drop,
        }
    }
}
