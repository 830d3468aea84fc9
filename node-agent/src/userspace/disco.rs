//! The device's side of disco: peers' disco keys, the messages that arrive
//! (over UDP or through a relay) and those [`Paths`] asks to send, and the
//! route each disco peer's packets take. What to do is [`Paths`]'s
//! decision; this module seals, sends and keeps the route in step.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_control::disco::{self, Bind, Boxer, Message, RelayEndpoint, Replays};
use hearth_control::geneve;

use super::{DeviceState, PeerState, PeerTable, Source};
use crate::paths::{Action, Paths, Route, WireguardCounts};
use crate::peer_relay::client::RelayAction;
use crate::plane::PeerConfig;

/// Peer relay endpoints bound at once, at most (each is one peer's with
/// one relay).
const MAX_RELAY_BINDS: usize = 8192;

/// A packet for a relay: which region, which node, what.
#[derive(Debug)]
pub struct RelayPacket {
    /// The relay region.
    pub region: u16,
    /// The receiving node's key.
    pub to: [u8; 32],
    /// The packet (WireGuard or disco).
    pub packet: Vec<u8>,
}

/// Where a packet for a peer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Udp(SocketAddr),
    PeerRelay { address: SocketAddr, vni: u32 },
    Relay { region: u16 },
    Nowhere,
}

/// A disco peer's key and home relay, and the messages it sent lately.
pub(super) struct DiscoPeer {
    pub(super) key: [u8; 32],
    boxer: Arc<Boxer>,
    home_relay: Option<u16>,
    replays: std::sync::Mutex<Replays>,
}

/// The address a pong names for a ping that came through relay `region`
/// (Tailscale's convention).
fn relay_address(region: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 3, 3, 40)), region)
}

fn tx_id() -> disco::TxId {
    rand::random()
}

/// Applies a peer's disco settings from `config` (under the table's lock).
pub(super) fn configure(
    shared: &DeviceState,
    table: &mut PeerTable,
    peer: &Arc<PeerState>,
    config: &PeerConfig,
) {
    let mut current = hearth_runtime::write(&peer.disco);
    let old_key = current.as_ref().map(|disco| disco.key);
    match config.disco {
        Some(key) => {
            if old_key != Some(key.0) {
                if let Some(old) = old_key {
                    table.by_disco.remove(&old);
                }
                table.by_disco.insert(key.0, Arc::clone(peer));
                *current = Some(DiscoPeer {
                    key: key.0,
                    boxer: Arc::new(Boxer::new(&shared.disco_secret, &key.0)),
                    home_relay: config.home_relay,
                    replays: std::sync::Mutex::default(),
                });
                // A new disco key is a restarted peer: paths start over.
                *hearth_runtime::lock(&peer.paths) = Paths::default();
            } else if let Some(disco) = current.as_mut() {
                disco.home_relay = config.home_relay;
            }
            let mut paths = hearth_runtime::lock(&peer.paths);
            paths.set_candidates(&config.candidates);
            paths.set_relays_offered(
                hearth_runtime::read(&shared.peer_relays).offered_for(&peer.key),
            );
            let route = route_of(shared, current.as_ref(), &paths, shared.now());
            *hearth_runtime::write(&peer.route) = route;
        }
        None => {
            if let Some(old) = old_key {
                table.by_disco.remove(&old);
            }
            *current = None;
        }
    }
}

/// Where a disco peer's packets go: a proven direct path, else its home
/// relay, else (no relay) the best guess at a direct one.
fn route_of(
    shared: &DeviceState,
    disco: Option<&DiscoPeer>,
    paths: &Paths,
    now: Duration,
) -> Target {
    match paths.route(now) {
        Route::Direct(address) => Target::Udp(address),
        Route::PeerRelay { address, vni } => Target::PeerRelay { address, vni },
        Route::Relay => match disco.and_then(|disco| disco.home_relay) {
            Some(region) if shared.relay_attached() => Target::Relay { region },
            _ => paths
                .best_guess()
                .map(Target::Udp)
                .unwrap_or(Target::Nowhere),
        },
    }
}

/// Seals `message` for `peer` and sends it over `via`. A ping goes padded
/// to the size of the largest WireGuard packet: its pong then proves the
/// path carries packets that large our way (a path inside another tunnel,
/// or with a smaller MTU, passes small packets and loses full ones).
fn send(shared: &DeviceState, peer: &PeerState, boxer: &Boxer, message: &Message, via: Source) {
    let nonce: [u8; disco::NONCE_LEN] = rand::random();
    let packet = match message {
        Message::Ping { .. } => {
            let size = shared.probe_size.load(Ordering::Relaxed);
            let (to, room) = match via {
                Source::Udp(to) => (Some(to), size),
                Source::PeerRelay { address, .. } => (Some(address), size + geneve::HEADER_LEN),
                Source::Relay { .. } => (None, size),
            };
            if let Some(to) = to
                && !fits_full_size(room, to)
            {
                tracing::debug!(peer = %hearth_control::wire::WireGuardKey(peer.key), %to, "not probed: this machine's route there is smaller than a full WireGuard packet");
                return;
            }
            boxer.seal_padded(&nonce, message, size)
        }
        _ => boxer.seal(&nonce, message),
    };
    tracing::trace!(peer = %hearth_control::wire::WireGuardKey(peer.key), ?message, ?via, "disco sent");
    match via {
        Source::Udp(address) => shared.send(&packet, address),
        Source::PeerRelay { address, vni } => {
            shared.send_geneve(address, vni, geneve::PROTOCOL_DISCO, false, &packet)
        }
        Source::Relay { region, .. } => shared.send_relayed(region, peer.key, &packet),
    }
}

/// Sends `message` to a peer relay's server `server` (our bind handshake)
/// at `to`, for endpoint `vni`.
fn send_to_relay_server(
    shared: &DeviceState,
    server: [u8; 32],
    to: SocketAddr,
    vni: u32,
    message: &Message,
) {
    let nonce: [u8; disco::NONCE_LEN] = rand::random();
    let packet = Boxer::new(&shared.disco_secret, &server).seal(&nonce, message);
    shared.send_geneve(to, vni, geneve::PROTOCOL_DISCO, true, &packet);
}

/// Carries out what [`crate::peer_relay::client::RelayPaths`] asked for.
fn perform_relay(shared: &DeviceState, peer: &Arc<PeerState>, actions: Vec<RelayAction>) {
    perform(
        shared,
        peer,
        actions.into_iter().map(Action::PeerRelay).collect(),
    );
}

/// Carries out one peer relay action for `peer`.
fn perform_relay_action(
    shared: &DeviceState,
    peer: &Arc<PeerState>,
    boxer: &Boxer,
    home: Option<u16>,
    action: RelayAction,
) {
    let Some(peer_disco) = hearth_runtime::read(&peer.disco)
        .as_ref()
        .map(|disco| disco.key)
    else {
        return;
    };
    match action {
        RelayAction::Allocate { generation } => {
            let request = Message::AllocateRelay {
                clients: [shared.disco_public, peer_disco],
                generation,
            };
            let candidates = hearth_runtime::read(&shared.peer_relays).candidates.clone();
            for candidate in candidates
                .iter()
                .filter(|candidate| candidate.key != peer.key)
            {
                let nonce: [u8; disco::NONCE_LEN] = rand::random();
                let packet =
                    Boxer::new(&shared.disco_secret, &candidate.disco).seal(&nonce, &request);
                shared.send_relayed(candidate.region, candidate.key, &packet);
            }
        }
        RelayAction::CallMeMaybeVia(endpoint) => {
            if let Some(region) = home.filter(|_| shared.relay_attached()) {
                let message = Message::CallMeMaybeVia(endpoint);
                send(
                    shared,
                    peer,
                    boxer,
                    &message,
                    Source::Relay {
                        region,
                        key: peer.key,
                    },
                );
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
            // One endpoint per relay and peer is bound at a time; peers
            // that are gone take theirs with them.
            let mut binds = hearth_runtime::lock(&shared.relay_binds);
            binds.retain(|(relay, _), bound| {
                Arc::strong_count(bound) > 1 && !(*relay == server && Arc::ptr_eq(bound, peer))
            });
            if binds.len() < MAX_RELAY_BINDS {
                binds.insert((server, vni), Arc::clone(peer));
            }
            drop(binds);
            send_to_relay_server(shared, server, to, vni, &Message::BindRelay(bind));
        }
        RelayAction::Answer { server, to, bind } => {
            send_to_relay_server(
                shared,
                server,
                to,
                bind.vni,
                &Message::BindRelayAnswer(bind),
            );
        }
        RelayAction::Ping { to, vni, tx } => {
            let ping = Message::Ping {
                tx,
                node_key: Some(shared.keys().public.to_bytes()),
            };
            send(
                shared,
                peer,
                boxer,
                &ping,
                Source::PeerRelay { address: to, vni },
            );
        }
    }
}

/// Whether a datagram of `size` bytes goes to `to` whole: this machine's
/// route there carries it without fragmenting (a route into another
/// tunnel, or over a link of a smaller MTU, would cut every full-size
/// WireGuard packet, and a batch of them sent at once is refused). A
/// route whose MTU is unknown is left to the probe.
fn fits_full_size(size: usize, to: std::net::SocketAddr) -> bool {
    super::io::route_mtu(to).is_none_or(|mtu| size + super::io::udp_overhead(to) <= mtu)
}

/// Carries out what [`Paths`] asked for.
fn perform(shared: &DeviceState, peer: &Arc<PeerState>, actions: Vec<Action>) {
    if actions.is_empty() {
        return;
    }
    let (boxer, home) = {
        let disco = hearth_runtime::read(&peer.disco);
        let Some(disco) = disco.as_ref() else {
            return;
        };
        (Arc::clone(&disco.boxer), disco.home_relay)
    };
    for action in actions {
        match action {
            Action::Ping { to, tx } => {
                let ping = Message::Ping {
                    tx,
                    node_key: Some(shared.keys().public.to_bytes()),
                };
                send(shared, peer, &boxer, &ping, Source::Udp(to));
            }
            Action::CallMeMaybe => {
                let Some(region) = home.filter(|_| shared.relay_attached()) else {
                    continue;
                };
                let endpoints = hearth_runtime::read(&shared.own_endpoints).clone();
                if endpoints.is_empty() {
                    continue;
                }
                let message = Message::CallMeMaybe { endpoints };
                send(
                    shared,
                    peer,
                    &boxer,
                    &message,
                    Source::Relay {
                        region,
                        key: peer.key,
                    },
                );
            }
            Action::PeerRelay(action) => perform_relay_action(shared, peer, &boxer, home, action),
        }
    }
}

/// Keeps `peer`'s route current and sends what its paths ask for; called
/// every timer tick.
pub(super) fn tick(shared: &DeviceState, peer: &Arc<PeerState>) {
    let now = shared.now();
    let actions = {
        let disco = hearth_runtime::read(&peer.disco);
        if disco.is_none() {
            return;
        }
        let mut paths = hearth_runtime::lock(&peer.paths);
        let last = peer.last_traffic.load(Ordering::Relaxed);
        if last > 0 {
            paths.note_traffic(Duration::from_millis(last - 1));
        }
        paths.note_wireguard(
            WireguardCounts {
                sent: peer.direct_sent.load(Ordering::Relaxed),
                heard: peer.direct_heard.load(Ordering::Relaxed),
                relayed: peer.relayed_heard.load(Ordering::Relaxed),
                peer_relay_sent: peer.peer_relay_sent.load(Ordering::Relaxed),
                peer_relay_heard: peer.peer_relay_heard.load(Ordering::Relaxed),
            },
            now,
        );
        let actions = paths.tick(now, tx_id);
        let direct_now = update_route(shared, peer, disco.as_ref(), &paths, now);
        (actions, direct_now)
    };
    let (actions, direct_now) = actions;
    perform(shared, peer, actions);
    if direct_now {
        resend_handshake(shared, peer);
    }
}

/// A path just became direct: a handshake started on the old path (through
/// a relay the peer may not be connected to yet) is sent again on this one
/// at once, instead of after WireGuard's 5 s retry.
fn resend_handshake(shared: &DeviceState, peer: &PeerState) {
    let mut out = [0u8; 256];
    let mut tunnel = hearth_runtime::lock(&peer.tunnel);
    if tunnel.stats().0.is_some() {
        return; // a session exists
    }
    if let defguard_boringtun::noise::TunnResult::WriteToNetwork(initiation) =
        tunnel.format_handshake_initiation(&mut out, true)
    {
        shared.send_to_peer(peer, initiation);
    }
}

/// Sets `peer`'s route; true when it just became direct.
fn update_route(
    shared: &DeviceState,
    peer: &PeerState,
    disco: Option<&DiscoPeer>,
    paths: &Paths,
    now: Duration,
) -> bool {
    let route = route_of(shared, disco, paths, now);
    let mut current = hearth_runtime::write(&peer.route);
    let became_direct = matches!(route, Target::Udp(_)) && !matches!(*current, Target::Udp(_));
    if *current != route {
        let key = hearth_control::wire::WireGuardKey(peer.key);
        match route {
            Target::Udp(address) => tracing::info!(peer = %key, path = %address, "direct path"),
            Target::PeerRelay { address, vni } => {
                tracing::info!(peer = %key, relay = %address, vni, "path through a peer relay")
            }
            Target::Relay { region } => {
                tracing::info!(peer = %key, region, "path through the relay")
            }
            Target::Nowhere => tracing::info!(peer = %key, "no path"),
        }
        *current = route;
    }
    became_direct
}

/// A disco packet that arrived from `source`.
pub(super) fn receive(shared: &DeviceState, packet: &[u8], source: Source) {
    let Some(sender) = disco::sender(packet) else {
        return;
    };
    let Some(peer) = shared.peers().by_disco.get(&sender).cloned() else {
        return;
    };
    let now = shared.now();
    let message = {
        let disco = hearth_runtime::read(&peer.disco);
        let Some(disco) = disco.as_ref() else {
            return;
        };
        let Ok((message, nonce)) = disco.boxer.open_with_nonce(packet) else {
            return;
        };
        // A copy of a message seen before (a captured ping sent again from
        // another address, say) is not a message from the peer now.
        if !hearth_runtime::lock(&disco.replays).fresh(nonce, now) {
            tracing::debug!(peer = %hearth_control::wire::WireGuardKey(peer.key), ?source, "a disco message seen before was dropped");
            return;
        }
        message
    };
    let boxer = match hearth_runtime::read(&peer.disco).as_ref() {
        Some(disco) => Arc::clone(&disco.boxer),
        None => return,
    };
    tracing::trace!(peer = %hearth_control::wire::WireGuardKey(peer.key), ?message, ?source, "disco received");
    // Through a relay, the relay vouches for the sender's node key.
    if let Source::Relay { key, .. } = source
        && !peer.knows_key(&key)
    {
        return;
    }
    match message {
        Message::Ping { tx, node_key } => {
            if node_key.is_some_and(|claimed| !peer.knows_key(&claimed)) {
                return;
            }
            let seen = match source {
                Source::Udp(address) | Source::PeerRelay { address, .. } => address,
                Source::Relay { region, .. } => relay_address(region),
            };
            send(
                shared,
                &peer,
                &boxer,
                &Message::Pong { tx, source: seen },
                source,
            );
            match source {
                Source::Udp(address) => {
                    let actions = hearth_runtime::lock(&peer.paths).on_ping(address, now, tx_id);
                    perform(shared, &peer, actions);
                }
                Source::PeerRelay { address, vni } => {
                    let actions = hearth_runtime::lock(&peer.paths)
                        .relays()
                        .on_ping(address, vni, now, tx_id);
                    perform_relay(shared, &peer, actions);
                }
                Source::Relay { .. } => {}
            }
        }
        Message::Pong { tx, .. } => {
            let direct_now = {
                let disco = hearth_runtime::read(&peer.disco);
                let mut paths = hearth_runtime::lock(&peer.paths);
                let changed = match source {
                    Source::Udp(address) => paths.on_pong(tx, address, now),
                    Source::PeerRelay { address, vni } => {
                        paths.on_relay_pong(tx, address, vni, now)
                    }
                    Source::Relay { .. } => false,
                };
                changed && update_route(shared, &peer, disco.as_ref(), &paths, now)
            };
            if direct_now {
                resend_handshake(shared, &peer);
            }
        }
        Message::CallMeMaybe { endpoints } => {
            if !matches!(source, Source::Relay { .. }) {
                return; // only ever sent through a relay
            }
            let actions =
                hearth_runtime::lock(&peer.paths).on_call_me_maybe(&endpoints, now, tx_id);
            perform(shared, &peer, actions);
        }
        Message::CallMeMaybeVia(endpoint) => {
            // Only ever sent through DERP, and only for the two of us.
            let Source::Relay { .. } = source else {
                return;
            };
            if !for_us_and(shared, &endpoint, sender) {
                return;
            }
            let actions = hearth_runtime::lock(&peer.paths)
                .relays()
                .on_endpoint(endpoint, now);
            perform_relay(shared, &peer, actions);
        }
        Message::AllocateRelay {
            clients,
            generation,
        } => {
            let Source::Relay { region, key } = source else {
                return;
            };
            allocate(
                shared,
                &peer,
                &boxer,
                (region, key),
                sender,
                clients,
                generation,
            );
        }
        Message::AllocateRelayAnswer {
            generation,
            endpoint,
        } => {
            let Source::Relay { .. } = source else {
                return;
            };
            allocated(shared, &peer, generation, endpoint, now);
        }
        Message::BindRelay(_) | Message::BindRelayChallenge(_) | Message::BindRelayAnswer(_) => {}
    }
}

/// Whether `endpoint` is for this node and the peer with disco key `peer`.
fn for_us_and(shared: &DeviceState, endpoint: &RelayEndpoint, peer: [u8; 32]) -> bool {
    let mut wanted = [shared.disco_public, peer];
    wanted.sort();
    let mut named = endpoint.clients;
    named.sort();
    named == wanted
}

/// `peer` (its disco key `sender`), through DERP region `region` with node
/// key `key`, asks our peer relay for an endpoint for `clients`: made if
/// the policy lets the peer use our relay and it is one of the two.
fn allocate(
    shared: &DeviceState,
    peer: &Arc<PeerState>,
    boxer: &Boxer,
    (region, key): (u16, [u8; 32]),
    sender: [u8; 32],
    clients: [[u8; 32]; 2],
    generation: u32,
) {
    let Some(relay) = hearth_runtime::read(&shared.relay_server).clone() else {
        return;
    };
    if !hearth_runtime::read(&shared.peer_relays)
        .clients
        .contains(&peer.key)
    {
        tracing::debug!(peer = %hearth_control::wire::WireGuardKey(peer.key), "a peer the policy does not let use our relay asked for an endpoint");
        return;
    }
    if !clients.contains(&sender) {
        return;
    }
    let allocated =
        hearth_runtime::lock(&relay.server).allocate(clients[0], clients[1], relay.now());
    match allocated {
        Ok(endpoint) => {
            let answer = Message::AllocateRelayAnswer {
                generation,
                endpoint,
            };
            send(shared, peer, boxer, &answer, Source::Relay { region, key });
        }
        Err(error) => tracing::debug!(%error, "no peer relay endpoint"),
    }
}

/// Peer relay `relay` answered our request `generation` with `endpoint`:
/// it goes to the paths of the peer it is for.
fn allocated(
    shared: &DeviceState,
    relay: &Arc<PeerState>,
    generation: u32,
    endpoint: RelayEndpoint,
    now: Duration,
) {
    let offered = hearth_runtime::read(&shared.peer_relays)
        .candidates
        .iter()
        .any(|candidate| candidate.key == relay.key);
    if !offered {
        return;
    }
    let Some(other) = endpoint
        .clients
        .iter()
        .find(|client| **client != shared.disco_public)
        .copied()
    else {
        return;
    };
    if !for_us_and(shared, &endpoint, other) {
        return;
    }
    let Some(peer) = shared.peers().by_disco.get(&other).cloned() else {
        return;
    };
    let actions = hearth_runtime::lock(&peer.paths)
        .relays()
        .on_allocated(generation, endpoint, now);
    perform_relay(shared, &peer, actions);
}

/// A control message from a peer relay's server (the challenge to our
/// bind) for endpoint `vni`, from `from`.
pub(super) fn receive_challenge(shared: &DeviceState, packet: &[u8], from: SocketAddr, vni: u32) {
    let Some(server) = disco::sender(packet) else {
        return;
    };
    let Some(peer) = hearth_runtime::lock(&shared.relay_binds)
        .get(&(server, vni))
        .cloned()
    else {
        return;
    };
    let Ok(Message::BindRelayChallenge(bind)) =
        Boxer::new(&shared.disco_secret, &server).open(packet)
    else {
        return;
    };
    let peer_disco = hearth_runtime::read(&peer.disco)
        .as_ref()
        .map(|disco| disco.key);
    if bind.vni != vni || Some(bind.remote) != peer_disco {
        return;
    }
    let now = shared.now();
    let actions = hearth_runtime::lock(&peer.paths)
        .relays()
        .on_challenge(server, from, bind, now, tx_id);
    perform_relay(shared, &peer, actions);
}
