//! The relay side: endpoints allocated for pairs of clients, the bind
//! handshake that ties each client to the address its packets come from,
//! and forwarding between the two bound addresses. Pure: the IO shell
//! hands it datagrams with the time and sends what it answers.
//!
//! Wire-compatible with Tailscale's peer relay server (its
//! `net/udprelay`): a client proves, by answering a challenge the relay
//! sealed to its disco key, that it holds the key and receives at the
//! address; only then are packets from that address forwarded, and only to
//! the other client's bound address. The relay reads nothing it forwards:
//! what it carries is WireGuard or disco sealed between the two clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use blake2::Digest as _;
use hearth_control::disco::{self, Bind, Boxer, Message, RelayEndpoint};
use hearth_control::geneve::{self, Geneve};
use zeroize::Zeroizing;

/// How long an endpoint waits for both clients to bind.
pub const BIND_LIFETIME: Duration = Duration::from_secs(30);
/// How long a bound endpoint lives once either client goes quiet.
pub const STEADY_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Endpoints held at once, at most: a client that asks for more is
/// refused until some expire.
pub const MAX_ENDPOINTS: usize = 4096;
/// Endpoints one client may be in at once: a client asking for endpoints
/// with made-up partners cannot take the relay from everyone else.
pub const MAX_ENDPOINTS_PER_CLIENT: usize = 128;
/// Bind messages of one handshake (one generation) a client may send: a
/// client resends its bind to each of the relay's addresses until it is
/// challenged (4 addresses, every second, for 30 s, is 120).
const MAX_BINDS_PER_GENERATION: usize = 128;
/// How often the key that makes challenges changes (the previous one
/// still answers, so a challenge is good for 10 to 20 s).
const MAC_ROTATE_EVERY: Duration = Duration::from_secs(10);

/// Why an endpoint was not allocated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    /// The relay does not know yet where it can be reached.
    #[error("the relay has no address to offer yet")]
    NoAddress,
    /// One of the clients is the relay's own key, or both are one.
    #[error("an endpoint is for two clients other than the relay")]
    BadClients,
    /// Too many endpoints are held.
    #[error("the relay holds {MAX_ENDPOINTS} endpoints already")]
    Full,
    /// One of the clients is in too many endpoints already.
    #[error("a client may hold {MAX_ENDPOINTS_PER_CLIENT} endpoints at once")]
    ClientFull,
}

/// What to do with a datagram that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send these bytes back to this address (a challenge).
    Reply(Vec<u8>, SocketAddr),
    /// Send the datagram, as it is, to this address (the other client).
    Forward(SocketAddr),
    /// Nothing: not for an endpoint we hold, or not from a bound client.
    Drop,
}

struct Endpoint {
    clients: [[u8; 32]; 2],
    boxes: [Boxer; 2],
    lamport: u64,
    allocated: Duration,
    /// Each client's bind in progress (0: none).
    generation: [u32; 2],
    /// Each client's binds seen: replays are refused.
    binds: [BindsSeen; 2],
    bound: [Option<SocketAddr>; 2],
    last_seen: [Duration; 2],
}

impl Endpoint {
    fn bound(&self) -> bool {
        self.bound.iter().all(Option::is_some)
    }

    fn expired(&self, now: Duration) -> bool {
        if self.bound() {
            self.last_seen
                .iter()
                .any(|seen| now.saturating_sub(*seen) > STEADY_LIFETIME)
        } else {
            now.saturating_sub(self.allocated) > BIND_LIFETIME
        }
    }
}

/// The bind messages one client of an endpoint sent: the newest
/// generation, and the nonces of its messages. A bind copied off the wire
/// and sent again from another address (spoofed) would otherwise make the
/// relay send a challenge there each time: a reflector. Generations only
/// grow (Tailscale's clients count them up per handshake), and within one
/// each message has a fresh random nonce.
#[derive(Default)]
struct BindsSeen {
    newest: u32,
    nonces: Vec<[u8; disco::NONCE_LEN]>,
}

impl BindsSeen {
    /// Whether a bind of `generation` sealed under `nonce` is new; records
    /// it if so.
    fn fresh(&mut self, generation: u32, nonce: [u8; disco::NONCE_LEN]) -> bool {
        if generation < self.newest {
            return false;
        }
        if generation > self.newest {
            self.newest = generation;
            self.nonces.clear();
        }
        if self.nonces.contains(&nonce) || self.nonces.len() >= MAX_BINDS_PER_GENERATION {
            return false;
        }
        self.nonces.push(nonce);
        true
    }
}

/// A peer relay's endpoints.
pub struct Server {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    /// The key challenges are made with now, and the one before.
    macs: [Zeroizing<[u8; 32]>; 2],
    mac_since: Duration,
    endpoints: HashMap<u32, Endpoint>,
    by_pair: HashMap<[[u8; 32]; 2], u32>,
    /// How many endpoints each client is in.
    per_client: HashMap<[u8; 32], usize>,
    next_vni: u32,
    lamport: u64,
    addresses: Vec<SocketAddr>,
    /// The nonces of the messages it seals: a prefix of its own and a
    /// count, so none repeats under its key (the server draws no
    /// randomness: its keys are given).
    nonce_prefix: [u8; 16],
    sealed: u64,
}

/// The nonce after `sealed` messages under the prefix `prefix`: never one
/// used before under the server's key.
fn next_nonce(prefix: &[u8; 16], sealed: &mut u64) -> [u8; disco::NONCE_LEN] {
    *sealed += 1;
    let mut nonce = [0; disco::NONCE_LEN];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..].copy_from_slice(&sealed.to_be_bytes());
    nonce
}

/// The two keys in a fixed order: one endpoint per pair.
fn sorted(mut pair: [[u8; 32]; 2]) -> [[u8; 32]; 2] {
    pair.sort();
    pair
}

impl Server {
    /// A relay with disco key `secret` (its own, not the node's) and a
    /// first challenge key `mac`, both drawn by the caller.
    pub fn new(secret: [u8; 32], mac: [u8; 32]) -> Server {
        let prefix: [u8; 32] = blake2::Blake2s256::new()
            .chain_update(b"hearth peer relay: nonces")
            .chain_update(mac)
            .chain_update(secret)
            .finalize()
            .into();
        let mut nonce_prefix = [0; 16];
        nonce_prefix.copy_from_slice(&prefix[..16]);
        Server {
            public: disco::public_key(&secret),
            secret: Zeroizing::new(secret),
            macs: [Zeroizing::new(mac), Zeroizing::new(mac)],
            mac_since: Duration::ZERO,
            endpoints: HashMap::new(),
            by_pair: HashMap::new(),
            per_client: HashMap::new(),
            next_vni: 1,
            lamport: 0,
            addresses: Vec::new(),
            nonce_prefix,
            sealed: 0,
        }
    }

    /// The relay's disco key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Where the relay's socket is reached (told to clients).
    pub fn set_addresses(&mut self, addresses: Vec<SocketAddr>) {
        self.addresses = addresses;
    }

    /// Endpoints held now.
    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }

    /// An endpoint for clients `a` and `b` (the one held for them, if
    /// any: both may ask, and both must get the same).
    pub fn allocate(
        &mut self,
        a: [u8; 32],
        b: [u8; 32],
        now: Duration,
    ) -> Result<RelayEndpoint, AllocateError> {
        if self.addresses.is_empty() {
            return Err(AllocateError::NoAddress);
        }
        if a == b || a == self.public || b == self.public {
            return Err(AllocateError::BadClients);
        }
        let clients = sorted([a, b]);
        let vni = match self.by_pair.get(&clients) {
            Some(vni) => *vni,
            None => {
                if self.endpoints.len() >= MAX_ENDPOINTS {
                    return Err(AllocateError::Full);
                }
                let held = |client| self.per_client.get(client).copied().unwrap_or(0);
                if clients
                    .iter()
                    .any(|client| held(client) >= MAX_ENDPOINTS_PER_CLIENT)
                {
                    return Err(AllocateError::ClientFull);
                }
                for client in clients {
                    *self.per_client.entry(client).or_default() += 1;
                }
                let vni = self.free_vni();
                self.lamport += 1;
                self.endpoints.insert(
                    vni,
                    Endpoint {
                        clients,
                        boxes: clients.map(|client| Boxer::new(&self.secret, &client)),
                        lamport: self.lamport,
                        allocated: now,
                        generation: [0; 2],
                        binds: Default::default(),
                        bound: [None; 2],
                        last_seen: [now; 2],
                    },
                );
                self.by_pair.insert(clients, vni);
                vni
            }
        };
        let endpoint = &self.endpoints[&vni];
        Ok(RelayEndpoint {
            server: self.public,
            clients,
            lamport: endpoint.lamport,
            vni,
            bind_lifetime: BIND_LIFETIME,
            steady_lifetime: STEADY_LIFETIME,
            addresses: self.addresses.clone(),
        })
    }

    fn free_vni(&mut self) -> u32 {
        // Fewer endpoints than VNIs are ever held, so one is free.
        loop {
            let vni = self.next_vni;
            self.next_vni = if vni >= geneve::MAX_VNI { 1 } else { vni + 1 };
            if !self.endpoints.contains_key(&vni) {
                return vni;
            }
        }
    }

    /// Forgets the endpoints of which neither client may use the relay any
    /// more (`allowed` says which disco keys may).
    pub fn forget_unless(&mut self, allowed: impl Fn(&[u8; 32]) -> bool) {
        let gone: Vec<u32> = self
            .endpoints
            .iter()
            .filter(|(_, endpoint)| !endpoint.clients.iter().any(&allowed))
            .map(|(vni, _)| *vni)
            .collect();
        self.remove(&gone);
    }

    /// Forgets the endpoints `vnis`.
    fn remove(&mut self, vnis: &[u32]) {
        for vni in vnis {
            let Some(endpoint) = self.endpoints.remove(vni) else {
                continue;
            };
            self.by_pair.remove(&endpoint.clients);
            for client in endpoint.clients {
                if let Some(count) = self.per_client.get_mut(&client) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_client.remove(&client);
                    }
                }
            }
        }
    }

    /// Forgets endpoints whose clients did not bind in time or went quiet.
    pub fn expire(&mut self, now: Duration) {
        if now.saturating_sub(self.mac_since) >= MAC_ROTATE_EVERY {
            self.mac_since = now;
            let fresh: [u8; 32] = blake2::Blake2s256::new()
                .chain_update(self.macs[0].as_slice())
                .chain_update(b"hearth peer relay: next challenge key")
                .chain_update(self.secret.as_slice())
                .finalize()
                .into();
            self.macs.swap(0, 1);
            self.macs[0] = Zeroizing::new(fresh);
        }
        let expired: Vec<u32> = self
            .endpoints
            .iter()
            .filter(|(_, endpoint)| endpoint.expired(now))
            .map(|(vni, _)| *vni)
            .collect();
        self.remove(&expired);
    }

    /// What to do with `packet`, which came from `from`.
    pub fn handle(&mut self, from: SocketAddr, packet: &[u8], now: Duration) -> Verdict {
        let Some(header) = Geneve::decode(packet) else {
            return Verdict::Drop;
        };
        if header.control {
            return match header.protocol {
                geneve::PROTOCOL_DISCO => {
                    self.control(from, header.vni, &packet[geneve::HEADER_LEN..], now)
                }
                _ => Verdict::Drop,
            };
        }
        let Some(endpoint) = self.endpoints.get_mut(&header.vni) else {
            return Verdict::Drop;
        };
        if !endpoint.bound() || endpoint.expired(now) {
            return Verdict::Drop;
        }
        for (side, other) in [(0, 1), (1, 0)] {
            if endpoint.bound[side] == Some(from) {
                endpoint.last_seen[side] = now;
                return endpoint.bound[other].map_or(Verdict::Drop, Verdict::Forward);
            }
        }
        Verdict::Drop
    }

    /// A bind message for endpoint `vni`.
    fn control(&mut self, from: SocketAddr, vni: u32, sealed: &[u8], now: Duration) -> Verdict {
        let Some(endpoint) = self.endpoints.get_mut(&vni) else {
            return Verdict::Drop;
        };
        if endpoint.expired(now) {
            return Verdict::Drop;
        }
        let Some(sender) = disco::sender(sealed) else {
            return Verdict::Drop;
        };
        let Some(side) = endpoint.clients.iter().position(|client| *client == sender) else {
            return Verdict::Drop;
        };
        let Ok((message, nonce)) = endpoint.boxes[side].open_with_nonce(sealed) else {
            return Verdict::Drop;
        };
        let other = endpoint.clients[1 - side];
        let fits = |bind: &Bind| bind.vni == vni && bind.remote == other;
        match message {
            Message::BindRelay(bind)
                if fits(&bind)
                    && bind.generation != 0
                    && endpoint.binds[side].fresh(bind.generation, nonce) =>
            {
                endpoint.generation[side] = bind.generation;
                let challenge = Bind {
                    challenge: mac(&self.macs[0], from, &bind),
                    ..bind
                };
                let nonce = next_nonce(&self.nonce_prefix, &mut self.sealed);
                let mut reply = Geneve {
                    control: true,
                    protocol: geneve::PROTOCOL_DISCO,
                    vni,
                }
                .encode()
                .to_vec();
                reply.extend(
                    endpoint.boxes[side].seal(&nonce, &Message::BindRelayChallenge(challenge)),
                );
                Verdict::Reply(reply, from)
            }
            Message::BindRelayAnswer(bind)
                if fits(&bind)
                    && bind.generation != 0
                    && bind.generation == endpoint.generation[side] =>
            {
                let answered = self
                    .macs
                    .iter()
                    .any(|key| mac(key, from, &bind) == bind.challenge);
                if answered {
                    endpoint.bound[side] = Some(from);
                    endpoint.last_seen[side] = now;
                    endpoint.generation[side] = 0;
                }
                Verdict::Drop
            }
            _ => Verdict::Drop,
        }
    }
}

/// The challenge for a bind from `from`: a keyed hash of what the bind
/// names and where it came from, so an answer proves the client receives
/// at that address and holds its disco key (the answer is sealed with it).
fn mac(key: &[u8; 32], from: SocketAddr, bind: &Bind) -> [u8; 32] {
    let ip = match from.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    };
    blake2::Blake2s256::new()
        .chain_update(key)
        .chain_update(bind.vni.to_be_bytes())
        .chain_update(bind.generation.to_be_bytes())
        .chain_update(bind.remote)
        .chain_update(ip.octets())
        .chain_update(from.port().to_be_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    struct Client {
        secret: [u8; 32],
        public: [u8; 32],
        address: SocketAddr,
    }

    fn client(seed: u8, address: &str) -> Client {
        let secret = [seed; 32];
        Client {
            secret,
            public: disco::public_key(&secret),
            address: address.parse().unwrap(),
        }
    }

    fn server() -> Server {
        let mut server = Server::new([9; 32], [8; 32]);
        server.set_addresses(vec!["198.18.0.1:40000".parse().unwrap()]);
        server
    }

    fn control(client: &Client, server: &Server, vni: u32, message: &Message) -> Vec<u8> {
        let mut packet = Geneve {
            control: true,
            protocol: geneve::PROTOCOL_DISCO,
            vni,
        }
        .encode()
        .to_vec();
        let boxer = Boxer::new(&client.secret, &server.public());
        // A fresh nonce per message, as a client picks.
        packet.extend(boxer.seal(&rand::random(), message));
        packet
    }

    /// `client`'s bind (from its address, naming `other`), and the
    /// relay's challenge to it, opened.
    fn challenge(
        server: &mut Server,
        client: &Client,
        other: &Client,
        vni: u32,
        now: Duration,
    ) -> Bind {
        let bind = Bind {
            vni,
            generation: 5,
            remote: other.public,
            challenge: [0; 32],
        };
        let sent = control(client, server, vni, &Message::BindRelay(bind));
        let Verdict::Reply(reply, to) = server.handle(client.address, &sent, now) else {
            panic!("no challenge");
        };
        assert_eq!(to, client.address);
        assert!(Geneve::decode(&reply).unwrap().control);
        match Boxer::new(&client.secret, &server.public()).open(&reply[geneve::HEADER_LEN..]) {
            Ok(Message::BindRelayChallenge(challenge)) => challenge,
            other => panic!("not a challenge: {other:?}"),
        }
    }

    /// Runs `client`'s side of the bind handshake from its address.
    fn bind(server: &mut Server, client: &Client, other: &Client, vni: u32) {
        let answer = Message::BindRelayAnswer(challenge(server, client, other, vni, at(1)));
        assert_eq!(
            server.handle(
                client.address,
                &control(client, server, vni, &answer),
                at(1)
            ),
            Verdict::Drop
        );
    }

    fn data(vni: u32) -> Vec<u8> {
        let mut packet = Geneve {
            control: false,
            protocol: geneve::PROTOCOL_WIREGUARD,
            vni,
        }
        .encode()
        .to_vec();
        packet.extend_from_slice(&[4, 0, 0, 0, 1, 2, 3, 4]);
        packet
    }

    #[test]
    fn the_servers_nonces_never_repeat_and_take_no_randomness() {
        let mut server = server();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let nonce = next_nonce(&server.nonce_prefix, &mut server.sealed);
            assert_eq!(nonce[..16], server.nonce_prefix);
            assert!(seen.insert(nonce), "a nonce came twice");
        }
        // Another server's keys, another prefix.
        let other = Server::new([1; 32], [2; 32]);
        assert_ne!(other.nonce_prefix, server.nonce_prefix);
    }

    #[test]
    fn two_clients_that_bind_reach_each_other_and_no_one_else_does() {
        let mut server = server();
        let (a, b) = (client(1, "198.18.1.2:41641"), client(2, "198.18.2.2:41641"));
        let endpoint = server.allocate(a.public, b.public, at(0)).unwrap();
        assert_eq!(endpoint.server, server.public());
        assert_eq!(
            server.allocate(b.public, a.public, at(0)).unwrap(),
            endpoint,
            "the other client asking gets the same endpoint"
        );
        let vni = endpoint.vni;
        bind(&mut server, &a, &b, vni);
        // Only one side bound: nothing is forwarded yet.
        assert_eq!(server.handle(a.address, &data(vni), at(2)), Verdict::Drop);
        bind(&mut server, &b, &a, vni);
        assert_eq!(
            server.handle(a.address, &data(vni), at(2)),
            Verdict::Forward(b.address)
        );
        assert_eq!(
            server.handle(b.address, &data(vni), at(2)),
            Verdict::Forward(a.address)
        );
        // A stranger, or the right VNI from another address, gets nowhere.
        let stranger: SocketAddr = "203.0.113.9:1".parse().unwrap();
        assert_eq!(server.handle(stranger, &data(vni), at(2)), Verdict::Drop);
        assert_eq!(
            server.handle(a.address, &data(vni + 1), at(2)),
            Verdict::Drop
        );
        // The policy takes the relay from one of them: it still serves the
        // pair (Tailscale's relay checks the client that asks); from both:
        // the endpoint goes at once.
        server.forget_unless(|key| *key == b.public);
        assert_eq!(
            server.handle(a.address, &data(vni), at(2)),
            Verdict::Forward(b.address)
        );
        server.forget_unless(|_| false);
        assert_eq!(server.handle(a.address, &data(vni), at(2)), Verdict::Drop);
        assert_eq!(server.endpoints(), 0);
        let vni = server.allocate(a.public, b.public, at(2)).unwrap().vni;
        bind(&mut server, &a, &b, vni);
        bind(&mut server, &b, &a, vni);
        // Quiet for the steady lifetime: the endpoint goes.
        server.expire(at(2) + STEADY_LIFETIME + at(1));
        assert_eq!(server.endpoints(), 0);
        assert_eq!(server.handle(a.address, &data(vni), at(400)), Verdict::Drop);
    }

    #[test]
    fn a_bind_is_refused_without_the_clients_key_or_from_another_address_than_challenged() {
        let mut server = server();
        let (a, b) = (client(1, "198.18.1.2:41641"), client(2, "198.18.2.2:41641"));
        let vni = server.allocate(a.public, b.public, at(0)).unwrap().vni;
        // Someone else's key: no challenge at all.
        let mallory = client(3, "203.0.113.3:1");
        let bind = Bind {
            vni,
            generation: 1,
            remote: b.public,
            challenge: [0; 32],
        };
        assert_eq!(
            server.handle(
                mallory.address,
                &control(&mallory, &server, vni, &Message::BindRelay(bind)),
                at(1)
            ),
            Verdict::Drop
        );
        // A's challenge answered from another address (a replay of the
        // answer by someone on the path) binds nothing.
        let challenge = challenge(&mut server, &a, &b, vni, at(1));
        let answer = control(&a, &server, vni, &Message::BindRelayAnswer(challenge));
        server.handle(mallory.address, &answer, at(1));
        bind_b_and_check(&mut server, &a, &b, vni, None);
        // A wrong challenge binds nothing either; the right one does.
        let wrong = Bind {
            challenge: [7; 32],
            ..challenge
        };
        server.handle(
            a.address,
            &control(&a, &server, vni, &Message::BindRelayAnswer(wrong)),
            at(1),
        );
        bind_b_and_check(&mut server, &a, &b, vni, None);
        server.handle(a.address, &answer, at(1));
        bind_b_and_check(&mut server, &a, &b, vni, Some(a.address));
    }

    /// Binds `b` and checks where its data goes: to `a_bound`, or nowhere.
    fn bind_b_and_check(
        server: &mut Server,
        a: &Client,
        b: &Client,
        vni: u32,
        a_bound: Option<SocketAddr>,
    ) {
        bind(server, b, a, vni);
        let expected = a_bound.map_or(Verdict::Drop, Verdict::Forward);
        assert_eq!(server.handle(b.address, &data(vni), at(1)), expected);
    }

    #[test]
    fn unbound_endpoints_expire_and_allocation_is_refused_with_why() {
        let mut server = Server::new([9; 32], [8; 32]);
        let (a, b) = (client(1, "198.18.1.2:1"), client(2, "198.18.2.2:1"));
        assert_eq!(
            server.allocate(a.public, b.public, at(0)),
            Err(AllocateError::NoAddress)
        );
        server.set_addresses(vec!["198.18.0.1:40000".parse().unwrap()]);
        assert_eq!(
            server.allocate(a.public, server.public(), at(0)),
            Err(AllocateError::BadClients)
        );
        assert_eq!(
            server.allocate(a.public, a.public, at(0)),
            Err(AllocateError::BadClients)
        );
        let first = server.allocate(a.public, b.public, at(0)).unwrap();
        server.expire(BIND_LIFETIME + at(1));
        assert_eq!(server.endpoints(), 0, "never bound: gone");
        let second = server.allocate(a.public, b.public, at(40)).unwrap();
        assert!(second.lamport > first.lamport, "newer, and says so");
        assert_ne!(second.vni, first.vni, "VNIs are not reused at once");
    }

    #[test]
    fn a_challenge_answers_across_one_key_rotation_and_not_two() {
        let (a, b) = (client(1, "198.18.1.2:1"), client(2, "198.18.2.2:1"));
        for (rotations, binds) in [(1u32, true), (2, false)] {
            let mut server = server();
            server.expire(at(1));
            let vni = server.allocate(a.public, b.public, at(1)).unwrap().vni;
            let challenge = challenge(&mut server, &a, &b, vni, at(1));
            for turn in 1..=rotations {
                server.expire(at(1) + MAC_ROTATE_EVERY * turn);
            }
            let now = at(1) + MAC_ROTATE_EVERY * rotations;
            let answer = control(&a, &server, vni, &Message::BindRelayAnswer(challenge));
            server.handle(a.address, &answer, now);
            bind(&mut server, &b, &a, vni);
            let expected = if binds {
                Verdict::Forward(a.address)
            } else {
                Verdict::Drop
            };
            assert_eq!(
                server.handle(b.address, &data(vni), now),
                expected,
                "{rotations}"
            );
        }
    }

    /// Attack (hardening round five, finding 12): someone on the path
    /// copies a client's bind and sends it again and again with a spoofed
    /// source address; the relay used to send a challenge there for every
    /// copy, a reflector aimed at that address. A copy is refused, and so
    /// is an older generation's bind; the client's own fresh binds still
    /// work.
    #[test]
    fn a_copied_bind_sent_from_a_spoofed_address_gets_no_challenge() {
        let mut server = server();
        let (a, b) = (client(1, "198.18.1.2:41641"), client(2, "198.18.2.2:41641"));
        let vni = server.allocate(a.public, b.public, at(0)).unwrap().vni;
        let bind = |generation| Bind {
            vni,
            generation,
            remote: b.public,
            challenge: [0; 32],
        };
        let captured = control(&a, &server, vni, &Message::BindRelay(bind(5)));
        assert!(matches!(
            server.handle(a.address, &captured, at(1)),
            Verdict::Reply(_, to) if to == a.address
        ));
        let victim: SocketAddr = "203.0.113.77:53".parse().unwrap();
        let reflected = (0..50)
            .filter(|_| server.handle(victim, &captured, at(2)) != Verdict::Drop)
            .count();
        assert_eq!(reflected, 0, "challenges sent to the spoofed address");
        // The client resends its bind (a fresh nonce): answered; a newer
        // generation too, and then the older one's copies are not.
        let resent = control(&a, &server, vni, &Message::BindRelay(bind(5)));
        assert!(matches!(
            server.handle(a.address, &resent, at(3)),
            Verdict::Reply(..)
        ));
        let newer = control(&a, &server, vni, &Message::BindRelay(bind(6)));
        assert!(matches!(
            server.handle(a.address, &newer, at(3)),
            Verdict::Reply(..)
        ));
        let older = control(&a, &server, vni, &Message::BindRelay(bind(5)));
        assert_eq!(server.handle(victim, &older, at(3)), Verdict::Drop);
        // And the handshake still completes, answering the newest one.
        bind_b_and_check(&mut server, &a, &b, vni, None);
        let sent = control(&a, &server, vni, &Message::BindRelay(bind(7)));
        let Verdict::Reply(reply, _) = server.handle(a.address, &sent, at(4)) else {
            panic!("no challenge");
        };
        let Ok(Message::BindRelayChallenge(challenge)) =
            Boxer::new(&a.secret, &server.public()).open(&reply[geneve::HEADER_LEN..])
        else {
            panic!("not a challenge");
        };
        let answer = control(&a, &server, vni, &Message::BindRelayAnswer(challenge));
        server.handle(a.address, &answer, at(4));
        assert_eq!(
            server.handle(b.address, &data(vni), at(4)),
            Verdict::Forward(a.address)
        );
    }

    /// Attack (hardening round five, finding 13): one client the policy
    /// lets use the relay asked for endpoints with made-up partners until
    /// the relay held its maximum, and no one else got one. A client is
    /// held to its share; others are still served, and its share comes
    /// back as its endpoints expire.
    #[test]
    fn one_client_cannot_hold_every_endpoint() {
        let mut server = server();
        let greedy = client(1, "198.18.1.2:1");
        let made_up = |index: usize| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(index as u64 + 1000).to_le_bytes());
            key
        };
        let granted = (0..MAX_ENDPOINTS)
            .filter(|index| {
                server
                    .allocate(greedy.public, made_up(*index), at(0))
                    .is_ok()
            })
            .count();
        assert_eq!(granted, MAX_ENDPOINTS_PER_CLIENT);
        assert_eq!(
            server.allocate(greedy.public, made_up(MAX_ENDPOINTS), at(0)),
            Err(AllocateError::ClientFull)
        );
        let (a, b) = (client(2, "198.18.2.2:1"), client(3, "198.18.3.2:1"));
        assert!(server.allocate(a.public, b.public, at(0)).is_ok());
        assert_eq!(
            server.allocate(b.public, greedy.public, at(0)),
            Err(AllocateError::ClientFull),
            "the limit counts the greedy client whoever asks"
        );
        server.expire(BIND_LIFETIME + at(1));
        assert_eq!(server.endpoints(), 0);
        assert!(server.allocate(greedy.public, made_up(0), at(40)).is_ok());
        server.forget_unless(|_| false);
        assert!(server.per_client.is_empty(), "counts go with the endpoints");
    }
}
