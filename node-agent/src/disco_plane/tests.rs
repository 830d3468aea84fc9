//! The whole plane in simulated time: nodes whose transmits a small
//! network delivers (UDP between addresses that can reach each other,
//! DERP between any two, a peer relay's socket), with WireGuard traffic
//! counted the way the data plane counts it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use hearth_control::geneve::{self, Geneve};
use hearth_control::wire::WireGuardKey;

use super::*;

const REGION: u16 = 1;
const TICK: Duration = Duration::from_millis(100);
const FULL_PACKET: usize = 1452;

struct Node {
    name: &'static str,
    key: [u8; 32],
    address: SocketAddr,
    plane: Plane,
    routes: HashMap<[u8; 32], Target>,
    seen: HashMap<[u8; 32], DataSeen>,
}

/// A datagram on its way, from an address.
enum Datagram {
    Udp {
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    Derp {
        from: [u8; 32],
        to: [u8; 32],
        bytes: Vec<u8>,
    },
}

struct World {
    nodes: Vec<Node>,
    now: Duration,
    /// Address pairs whose UDP is dropped (either way).
    cut: HashSet<(SocketAddr, SocketAddr)>,
    /// The peer relay's socket, and the node that serves it.
    relay: Option<(SocketAddr, usize)>,
    /// Pairs of nodes (by index) exchanging data.
    talking: Vec<(usize, usize)>,
}

fn address(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], port))
}

impl World {
    fn new(names: &[&'static str]) -> World {
        let nodes = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let number = index as u8 + 1;
                let mut plane = Plane::new([number; 32], FULL_PACKET, [number + 100; 32]);
                plane.set_relay_attached(true);
                plane.set_own_endpoints(vec![address(number, 41641)]);
                Node {
                    name,
                    key: [number; 32],
                    address: address(number, 41641),
                    plane,
                    routes: HashMap::new(),
                    seen: HashMap::new(),
                }
            })
            .collect();
        World {
            nodes,
            now: Duration::ZERO,
            cut: HashSet::new(),
            relay: None,
            talking: Vec::new(),
        }
    }

    /// Every node knows every other as a disco peer listing its address.
    fn introduce(&mut self) {
        let all: Vec<([u8; 32], [u8; 32], SocketAddr)> = self
            .nodes
            .iter()
            .map(|node| (node.key, node.plane.disco_public(), node.address))
            .collect();
        for node in &mut self.nodes {
            for (key, disco, address) in &all {
                if *key == node.key {
                    continue;
                }
                node.plane.set_peer(
                    &PeerConfig {
                        key: WireGuardKey(*key),
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        keepalive: None,
                        disco: Some(WireGuardKey(*disco)),
                        home_relay: Some(REGION),
                        candidates: vec![*address],
                        replaces: None,
                    },
                    self.now,
                );
            }
        }
    }

    fn cut_udp(&mut self, a: SocketAddr, b: SocketAddr) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    fn reaches(&self, from: SocketAddr, to: SocketAddr) -> bool {
        !self.cut.contains(&(from, to))
    }

    fn index_of_key(&self, key: &[u8; 32]) -> Option<usize> {
        self.nodes.iter().position(|node| node.key == *key)
    }

    fn index_at(&self, address: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|node| node.address == address)
    }

    /// What `node` asked to send, as datagrams.
    fn drain(&mut self, node: usize) -> Vec<Datagram> {
        let (key, from) = (self.nodes[node].key, self.nodes[node].address);
        let mut out = Vec::new();
        while let Some(transmit) = self.nodes[node].plane.poll_transmit() {
            out.push(match transmit {
                Transmit::Udp { to, packet, .. } => Datagram::Udp {
                    from,
                    to,
                    bytes: packet,
                },
                Transmit::Geneve {
                    to,
                    vni,
                    control,
                    packet,
                    ..
                } => {
                    let mut bytes = Geneve {
                        control,
                        protocol: geneve::PROTOCOL_DISCO,
                        vni,
                    }
                    .encode()
                    .to_vec();
                    bytes.extend(packet);
                    Datagram::Udp { from, to, bytes }
                }
                Transmit::Relay { to, packet, .. } => Datagram::Derp {
                    from: key,
                    to,
                    bytes: packet,
                },
            });
        }
        while let Some(change) = self.nodes[node].plane.poll_route() {
            self.nodes[node].routes.insert(change.peer, change.target);
        }
        out
    }

    /// Delivers `datagram` the way the device's threads would.
    fn deliver(&mut self, datagram: Datagram) {
        let now = self.now;
        match datagram {
            Datagram::Derp { from, to, bytes } => {
                if let Some(index) = self.index_of_key(&to) {
                    let via = Via::Relay {
                        region: REGION,
                        key: from,
                    };
                    self.nodes[index].plane.handle_disco(via, &bytes, now);
                }
            }
            Datagram::Udp { from, to, bytes } => {
                if !self.reaches(from, to) {
                    return;
                }
                if let Some((relay_address, server)) = self.relay
                    && to == relay_address
                {
                    let verdict = self.nodes[server]
                        .plane
                        .handle_relay_datagram(from, &bytes, now);
                    match verdict {
                        Verdict::Forward(next) => self.deliver(Datagram::Udp {
                            from: relay_address,
                            to: next,
                            bytes,
                        }),
                        Verdict::Reply(reply, next) => self.deliver(Datagram::Udp {
                            from: relay_address,
                            to: next,
                            bytes: reply,
                        }),
                        Verdict::Drop => {}
                    }
                    return;
                }
                let Some(index) = self.index_at(to) else {
                    return;
                };
                let plane = &mut self.nodes[index].plane;
                match geneve::classify(&bytes) {
                    (geneve::Carried::Disco, Some(header)) if header.control => {
                        plane.handle_challenge(from, header.vni, &bytes[geneve::HEADER_LEN..], now)
                    }
                    (geneve::Carried::Disco, Some(header)) => plane.handle_disco(
                        Via::PeerRelay {
                            address: from,
                            vni: header.vni,
                        },
                        &bytes[geneve::HEADER_LEN..],
                        now,
                    ),
                    (geneve::Carried::Disco, None) => {
                        plane.handle_disco(Via::Udp(from), &bytes, now)
                    }
                    _ => {}
                }
            }
        }
    }

    /// WireGuard between the nodes that talk, counted as the data plane
    /// counts it: what each sends on its route, and what arrives.
    fn exchange(&mut self) {
        for (a, b) in self.talking.clone() {
            self.send_data(a, b);
            self.send_data(b, a);
        }
    }

    fn send_data(&mut self, from: usize, to: usize) {
        let (key_from, key_to) = (self.nodes[from].key, self.nodes[to].key);
        let route = self.route(from, to);
        let arrives = match route {
            Target::Udp(address) => self.reaches(self.nodes[from].address, address),
            Target::PeerRelay { address, .. } => {
                self.reaches(self.nodes[from].address, address)
                    && self.reaches(address, self.nodes[to].address)
            }
            Target::Relay { .. } => true,
            Target::Nowhere => false,
        };
        let now = self.now;
        let sender = self.nodes[from].seen.entry(key_to).or_default();
        sender.last_traffic = Some(now);
        match route {
            Target::Udp(_) => sender.counts.sent += 1,
            Target::PeerRelay { .. } => sender.counts.peer_relay_sent += 1,
            Target::Relay { .. } | Target::Nowhere => {}
        }
        if arrives {
            let receiver = self.nodes[to].seen.entry(key_from).or_default();
            receiver.last_traffic = Some(now);
            match route {
                Target::Udp(_) => receiver.counts.heard += 1,
                Target::PeerRelay { .. } => {
                    receiver.counts.relayed += 1;
                    receiver.counts.peer_relay_heard += 1;
                }
                Target::Relay { .. } => receiver.counts.relayed += 1,
                Target::Nowhere => {}
            }
        }
    }

    /// One tick of simulated time: data, timers, and every message until
    /// the network is quiet.
    fn step(&mut self) {
        self.now += TICK;
        self.exchange();
        let now = self.now;
        for node in &mut self.nodes {
            for (peer, seen) in &node.seen {
                node.plane.note_data(peer, *seen, now);
            }
            node.plane.handle_timeout(now);
        }
        for _ in 0..16 {
            let mut quiet = true;
            for index in 0..self.nodes.len() {
                for datagram in self.drain(index) {
                    quiet = false;
                    self.deliver(datagram);
                }
            }
            if quiet {
                break;
            }
        }
    }

    fn route(&self, from: usize, to: usize) -> Target {
        self.nodes[from]
            .routes
            .get(&self.nodes[to].key)
            .copied()
            .unwrap_or(Target::Nowhere)
    }

    /// Steps until `done` holds, at most `limit` of simulated time; how
    /// long it took.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            self.step();
            if done(self) {
                return Some(self.now - start);
            }
        }
        None
    }

    fn describe(&self, from: usize, to: usize) -> String {
        format!(
            "{} -> {}: {:?}",
            self.nodes[from].name,
            self.nodes[to].name,
            self.route(from, to)
        )
    }
}

#[test]
fn a_direct_path_is_won_then_lost_to_the_relay_and_won_back() {
    let mut world = World::new(&["alpha", "beta"]);
    world.introduce();
    world.talking.push((0, 1));
    let (alpha, beta) = (world.nodes[0].address, world.nodes[1].address);
    let direct = |world: &World| {
        world.route(0, 1) == Target::Udp(beta) && world.route(1, 0) == Target::Udp(alpha)
    };
    let relayed = |world: &World| {
        world.route(0, 1) == Target::Relay { region: REGION }
            && world.route(1, 0) == Target::Relay { region: REGION }
    };
    let won = world.run_until(Duration::from_secs(10), direct);
    assert!(won.is_some(), "{}", world.describe(0, 1));

    // The path between them goes: WireGuard on it stops, and both fall
    // back to the relay.
    world.cut_udp(alpha, beta);
    let lost = world.run_until(Duration::from_secs(60), relayed);
    assert!(lost.is_some(), "{}", world.describe(0, 1));

    // It comes back: the pings that go on through the relay find it again.
    world.cut.clear();
    let again = world.run_until(Duration::from_secs(120), direct);
    assert!(again.is_some(), "{}", world.describe(0, 1));
}

/// Three nodes: alpha and beta cannot reach each other over UDP; the hub
/// serves a peer relay both reach, and lets `clients` use it.
fn around_a_relay(clients: &[usize]) -> World {
    let mut world = World::new(&["alpha", "beta", "hub"]);
    let relay = address(3, 7000);
    world.relay = Some((relay, 2));
    world.nodes[2].plane.serve_relay();
    world.nodes[2].plane.set_relay_addresses(vec![relay]);
    world.introduce();
    let hub = world.nodes[2].key;
    let hub_disco = world.nodes[2].plane.disco_public();
    let clients: HashSet<[u8; 32]> = clients
        .iter()
        .map(|index| world.nodes[*index].key)
        .collect();
    world.nodes[2].plane.set_peer_relays(PeerRelays {
        candidates: Vec::new(),
        clients,
    });
    for node in &mut world.nodes[..2] {
        node.plane.set_peer_relays(PeerRelays {
            candidates: vec![RelayCandidate {
                key: hub,
                disco: hub_disco,
                region: REGION,
            }],
            clients: HashSet::new(),
        });
    }
    let (alpha, beta) = (world.nodes[0].address, world.nodes[1].address);
    world.cut_udp(alpha, beta);
    world.talking.push((0, 1));
    world
}

#[test]
fn with_no_direct_path_a_peer_relay_carries_the_pair_until_it_goes() {
    let mut world = around_a_relay(&[0, 1]);
    let relay = address(3, 7000);
    let through_relay = |world: &World| {
        matches!(world.route(0, 1), Target::PeerRelay { address, .. } if address == relay)
            && matches!(world.route(1, 0), Target::PeerRelay { address, .. } if address == relay)
    };
    let won = world.run_until(Duration::from_secs(60), through_relay);
    assert!(won.is_some(), "{}", world.describe(0, 1));
    let (Target::PeerRelay { vni: a, .. }, Target::PeerRelay { vni: b, .. }) =
        (world.route(0, 1), world.route(1, 0))
    else {
        unreachable!()
    };
    assert_eq!(a, b, "both ends use the one endpoint");
    assert_eq!(world.nodes[2].plane.relay_status(), Some((1, 2)));

    // The relay's host goes: both fall back to DERP.
    let (alpha, beta) = (world.nodes[0].address, world.nodes[1].address);
    world.cut_udp(alpha, relay);
    world.cut_udp(beta, relay);
    let lost = world.run_until(Duration::from_secs(60), |world| {
        world.route(0, 1) == Target::Relay { region: REGION }
            && world.route(1, 0) == Target::Relay { region: REGION }
    });
    assert!(lost.is_some(), "{}", world.describe(0, 1));
}

#[test]
fn a_relay_whose_policy_names_neither_peer_allocates_nothing() {
    let mut world = around_a_relay(&[]);
    let never = world.run_until(Duration::from_secs(30), |world| {
        matches!(world.route(0, 1), Target::PeerRelay { .. })
            || matches!(world.route(1, 0), Target::PeerRelay { .. })
    });
    assert_eq!(never, None, "{}", world.describe(0, 1));
    assert_eq!(world.route(0, 1), Target::Relay { region: REGION });
    assert_eq!(world.nodes[2].plane.relay_status(), Some((0, 0)));
}

#[test]
fn a_peer_that_leaves_takes_its_relay_binds_and_its_route_with_it() {
    let mut world = around_a_relay(&[0, 1]);
    let won = world.run_until(Duration::from_secs(60), |world| {
        matches!(world.route(0, 1), Target::PeerRelay { .. })
    });
    assert!(won.is_some(), "{}", world.describe(0, 1));
    let beta = world.nodes[1].key;
    assert!(
        world.nodes[0]
            .plane
            .binds
            .values()
            .any(|bound| *bound == beta)
    );
    assert!(world.nodes[0].plane.remove_peer(&beta));
    assert!(
        !world.nodes[0]
            .plane
            .binds
            .values()
            .any(|bound| *bound == beta)
    );
    assert_eq!(world.nodes[0].plane.path_of(&beta, world.now), None);
    assert!(!world.nodes[0].plane.has_peer(&beta));
}

#[test]
fn the_planes_randomness_is_the_seed_it_was_given() {
    let make = || {
        let mut plane = Plane::new([1; 32], FULL_PACKET, [9; 32]);
        plane.set_peer(
            &PeerConfig {
                key: WireGuardKey([2; 32]),
                endpoint: None,
                allowed_ips: Vec::new(),
                keepalive: None,
                disco: Some(WireGuardKey([3; 32])),
                home_relay: Some(REGION),
                candidates: vec![address(2, 41641)],
                replaces: None,
            },
            Duration::ZERO,
        );
        plane.note_data(
            &[2; 32],
            DataSeen {
                last_traffic: Some(Duration::ZERO),
                ..DataSeen::default()
            },
            Duration::ZERO,
        );
        plane.handle_timeout(TICK);
        (plane.disco_public(), plane.poll_transmit())
    };
    let (first, second) = (make(), make());
    assert!(first.1.is_some(), "a peer in use is pinged");
    assert_eq!(first, second);
    assert_ne!(
        Plane::new([1; 32], FULL_PACKET, [8; 32]).disco_public(),
        first.0
    );
}

#[test]
fn a_ping_naming_another_node_key_is_not_answered() {
    let mut world = World::new(&["alpha", "beta"]);
    world.introduce();
    let beta_disco = world.nodes[1].plane.disco_public();
    // Alpha's plane seals a ping to beta as if from a node key it does not have.
    let alpha = &mut world.nodes[0];
    alpha.plane.set_node_key([7; 32]);
    let tx = [5; 12];
    let ping = alpha.plane.ping(tx);
    let sealed = Boxer::new(&alpha.plane.secret, &beta_disco).seal(&[1; disco::NONCE_LEN], &ping);
    let from = world.nodes[0].address;
    world.nodes[1]
        .plane
        .handle_disco(Via::Udp(from), &sealed, Duration::ZERO);
    assert_eq!(world.nodes[1].plane.poll_transmit(), None);

    // With its own key, the same ping (a new nonce) is answered.
    world.nodes[0].plane.set_node_key([1; 32]);
    let ping = world.nodes[0].plane.ping(tx);
    let sealed =
        Boxer::new(&world.nodes[0].plane.secret, &beta_disco).seal(&[2; disco::NONCE_LEN], &ping);
    world.nodes[1]
        .plane
        .handle_disco(Via::Udp(from), &sealed, Duration::ZERO);
    assert!(matches!(
        world.nodes[1].plane.poll_transmit(),
        Some(Transmit::Udp { to, .. }) if to == from
    ));
}
