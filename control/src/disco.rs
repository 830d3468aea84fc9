//! Disco, the path-discovery messages Tailscale's clients exchange (and
//! `hearth-agent` speaks the same way): pings, pongs and call-me-maybe,
//! sent over the WireGuard UDP socket or through a relay, each sealed in a
//! NaCl box between the two nodes' disco keys.
//!
//! On the wire: the magic `TS💬` (6 bytes), the sender's disco public key
//! (32), a nonce (24), then the box of `type (1) | version (1) | body`.
//! - ping: a 12-byte transaction id, then (optionally) the sender's node key;
//! - pong: the transaction id, then the address the ping came from as 16
//!   bytes (IPv4 mapped into IPv6) and a big-endian port;
//! - call-me-maybe: the sender's candidate endpoints, 18 bytes each.
//!
//! Readers ignore bytes past what they know (newer versions may add some)
//! and unknown message types are reported, not fatal. A captured message
//! sent again is refused by its box's nonce ([`Replays`]). Pure: keys,
//! nonces and times are inputs.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crypto_box::aead::Aead as _;
use crypto_box::{PublicKey, SalsaBox, SecretKey};

/// The first six bytes of every disco packet: `TS` and a speech balloon.
pub const MAGIC: &[u8; 6] = b"TS\xf0\x9f\x92\xac";
/// A NaCl box nonce.
pub const NONCE_LEN: usize = 24;
/// Magic, sender key and nonce.
pub const HEADER_LEN: usize = MAGIC.len() + 32 + NONCE_LEN;
/// The box's authentication tag after the sealed message.
const TAG_LEN: usize = 16;
/// A ping's transaction id.
pub const TX_LEN: usize = 12;
/// One endpoint in a pong or call-me-maybe.
const ENDPOINT_LEN: usize = 18;
/// Endpoints read from one call-me-maybe, at most (more are ignored).
pub const MAX_ENDPOINTS: usize = 64;

/// Message types.
pub mod kind {
    /// Are you there, at this address?
    pub const PING: u8 = 0x01;
    /// Yes, and this is where your ping came from.
    pub const PONG: u8 = 0x02;
    /// Please ping me at these addresses (sent through a relay).
    pub const CALL_ME_MAYBE: u8 = 0x03;
    /// A client asks a peer relay's endpoint to bind it at this address.
    pub const BIND_RELAY: u8 = 0x04;
    /// The peer relay's challenge to a bind.
    pub const BIND_RELAY_CHALLENGE: u8 = 0x05;
    /// The client's answer to the challenge: the bind holds.
    pub const BIND_RELAY_ANSWER: u8 = 0x06;
    /// Meet me through this peer relay's endpoint (sent through DERP).
    pub const CALL_ME_MAYBE_VIA: u8 = 0x07;
    /// Please make an endpoint for these two clients (to a peer relay,
    /// through DERP).
    pub const ALLOCATE_RELAY: u8 = 0x08;
    /// The endpoint made (from a peer relay, through DERP).
    pub const ALLOCATE_RELAY_ANSWER: u8 = 0x09;
}

/// The body the three bind messages share (Tailscale's
/// `BindUDPRelayEndpointCommon`, 72 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The endpoint's virtual network id (what the Geneve header carries).
    pub vni: u32,
    /// The client's handshake generation: new and nonzero at each bind.
    pub generation: u32,
    /// The disco key of the other client on the endpoint.
    pub remote: [u8; 32],
    /// The relay's challenge (zeros in a bind), echoed in the answer.
    pub challenge: [u8; 32],
}

/// An endpoint on a peer relay for two clients (Tailscale's
/// `UDPRelayEndpoint`), as the relay allocated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayEndpoint {
    /// The relay server's own disco key (binds are sealed to it).
    pub server: [u8; 32],
    /// The two clients' disco keys.
    pub clients: [[u8; 32]; 2],
    /// Orders allocations of one relay: a higher one is newer.
    pub lamport: u64,
    /// The endpoint's virtual network id.
    pub vni: u32,
    /// How long the relay waits for both clients to bind.
    pub bind_lifetime: Duration,
    /// How long a bound endpoint lives without traffic.
    pub steady_lifetime: Duration,
    /// Where the relay listens.
    pub addresses: Vec<SocketAddr>,
}

/// A relay endpoint's fixed part: server and client keys, Lamport id,
/// VNI and two lifetimes.
const RELAY_ENDPOINT_FIXED: usize = 32 * 3 + 8 + 4 + 8 + 8;

/// A ping's transaction id.
pub type TxId = [u8; TX_LEN];

/// One disco message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A ping.
    Ping {
        /// Echoed in the pong.
        tx: TxId,
        /// The sender's node (WireGuard) key, as it claims.
        node_key: Option<[u8; 32]>,
    },
    /// The answer to a ping.
    Pong {
        /// The ping's transaction id.
        tx: TxId,
        /// Where the ping came from, as its receiver saw it.
        source: SocketAddr,
    },
    /// The sender's endpoints: ping me there.
    CallMeMaybe {
        /// Candidate endpoints.
        endpoints: Vec<SocketAddr>,
    },
    /// A client to a peer relay: bind me on this endpoint.
    BindRelay(Bind),
    /// The peer relay's challenge.
    BindRelayChallenge(Bind),
    /// The client's answer.
    BindRelayAnswer(Bind),
    /// Meet me through this endpoint.
    CallMeMaybeVia(RelayEndpoint),
    /// To a peer relay: an endpoint for these two clients, please.
    AllocateRelay {
        /// The two clients' disco keys (the sender's among them).
        clients: [[u8; 32]; 2],
        /// Echoed in the answer.
        generation: u32,
    },
    /// The peer relay's endpoint.
    AllocateRelayAnswer {
        /// The request's generation.
        generation: u32,
        /// The endpoint.
        endpoint: RelayEndpoint,
    },
}

/// What is wrong with a disco packet.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoError {
    /// Not a disco packet (no magic, or too short for its header).
    #[error("not a disco packet")]
    NotDisco,
    /// The box did not open with the keys at hand.
    #[error("the disco box did not open")]
    BadBox,
    /// The message is shorter than its type needs.
    #[error("a disco message is too short")]
    Short,
    /// A message type this version does not know.
    #[error("unknown disco message type {0:#04x}")]
    Unknown(u8),
    /// A version of a message this version does not read.
    #[error("disco message type {0:#04x} of version {1}")]
    Version(u8, u8),
}

/// Whether `packet` starts like a disco packet (the magic, and room for the
/// header). WireGuard messages start with a type byte 1 to 4 and three zero
/// bytes, so the two never mix.
pub fn looks_like_disco(packet: &[u8]) -> bool {
    packet.len() >= HEADER_LEN && packet.starts_with(MAGIC)
}

/// The sender's disco key of a packet that looks like disco.
pub fn sender(packet: &[u8]) -> Option<[u8; 32]> {
    if !looks_like_disco(packet) {
        return None;
    }
    packet[MAGIC.len()..MAGIC.len() + 32].try_into().ok()
}

fn put_endpoint(out: &mut Vec<u8>, endpoint: &SocketAddr) {
    let ip = match endpoint.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&endpoint.port().to_be_bytes());
}

fn endpoint_at(bytes: &[u8]) -> Option<SocketAddr> {
    let ip: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
    let port = u16::from_be_bytes(bytes.get(16..18)?.try_into().ok()?);
    Some(SocketAddr::new(Ipv6Addr::from(ip).to_canonical(), port))
}

/// A fixed-size piece of a body being read.
fn take<const N: usize>(body: &mut &[u8]) -> Result<[u8; N], DiscoError> {
    let (head, rest) = body.split_first_chunk::<N>().ok_or(DiscoError::Short)?;
    *body = rest;
    Ok(*head)
}

impl Bind {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.vni.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.remote);
        out.extend_from_slice(&self.challenge);
    }

    fn read(mut body: &[u8]) -> Result<Bind, DiscoError> {
        Ok(Bind {
            vni: u32::from_be_bytes(take(&mut body)?),
            generation: u32::from_be_bytes(take(&mut body)?),
            remote: take(&mut body)?,
            challenge: take(&mut body)?,
        })
    }
}

/// A lifetime as Go's `time.Duration` carries it: nanoseconds.
fn nanoseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl RelayEndpoint {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.server);
        out.extend_from_slice(&self.clients[0]);
        out.extend_from_slice(&self.clients[1]);
        out.extend_from_slice(&self.lamport.to_be_bytes());
        out.extend_from_slice(&self.vni.to_be_bytes());
        out.extend_from_slice(&nanoseconds(self.bind_lifetime).to_be_bytes());
        out.extend_from_slice(&nanoseconds(self.steady_lifetime).to_be_bytes());
        for address in self.addresses.iter().take(MAX_ENDPOINTS) {
            put_endpoint(out, address);
        }
    }

    /// As Tailscale reads it: at least one address, and whole ones.
    fn read(mut body: &[u8]) -> Result<RelayEndpoint, DiscoError> {
        if body.len() < RELAY_ENDPOINT_FIXED + ENDPOINT_LEN
            || !(body.len() - RELAY_ENDPOINT_FIXED).is_multiple_of(ENDPOINT_LEN)
        {
            return Err(DiscoError::Short);
        }
        Ok(RelayEndpoint {
            server: take(&mut body)?,
            clients: [take(&mut body)?, take(&mut body)?],
            lamport: u64::from_be_bytes(take(&mut body)?),
            vni: u32::from_be_bytes(take(&mut body)?),
            bind_lifetime: Duration::from_nanos(u64::from_be_bytes(take(&mut body)?)),
            steady_lifetime: Duration::from_nanos(u64::from_be_bytes(take(&mut body)?)),
            addresses: body
                .chunks_exact(ENDPOINT_LEN)
                .take(MAX_ENDPOINTS)
                .filter_map(endpoint_at)
                .collect(),
        })
    }
}

impl Message {
    /// The plaintext inside the box: type, version 0, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Message::Ping { tx, node_key } => {
                out.extend_from_slice(&[kind::PING, 0]);
                out.extend_from_slice(tx);
                if let Some(key) = node_key {
                    out.extend_from_slice(key);
                }
            }
            Message::Pong { tx, source } => {
                out.extend_from_slice(&[kind::PONG, 0]);
                out.extend_from_slice(tx);
                put_endpoint(&mut out, source);
            }
            Message::CallMeMaybe { endpoints } => {
                out.extend_from_slice(&[kind::CALL_ME_MAYBE, 0]);
                for endpoint in endpoints.iter().take(MAX_ENDPOINTS) {
                    put_endpoint(&mut out, endpoint);
                }
            }
            Message::BindRelay(bind) => {
                out.extend_from_slice(&[kind::BIND_RELAY, 0]);
                bind.put(&mut out);
            }
            Message::BindRelayChallenge(bind) => {
                out.extend_from_slice(&[kind::BIND_RELAY_CHALLENGE, 0]);
                bind.put(&mut out);
            }
            Message::BindRelayAnswer(bind) => {
                out.extend_from_slice(&[kind::BIND_RELAY_ANSWER, 0]);
                bind.put(&mut out);
            }
            Message::CallMeMaybeVia(endpoint) => {
                out.extend_from_slice(&[kind::CALL_ME_MAYBE_VIA, 0]);
                endpoint.put(&mut out);
            }
            Message::AllocateRelay {
                clients,
                generation,
            } => {
                out.extend_from_slice(&[kind::ALLOCATE_RELAY, 0]);
                out.extend_from_slice(&clients[0]);
                out.extend_from_slice(&clients[1]);
                out.extend_from_slice(&generation.to_be_bytes());
            }
            Message::AllocateRelayAnswer {
                generation,
                endpoint,
            } => {
                out.extend_from_slice(&[kind::ALLOCATE_RELAY_ANSWER, 0]);
                out.extend_from_slice(&generation.to_be_bytes());
                endpoint.put(&mut out);
            }
        }
        out
    }

    /// Reads a plaintext made by [`Message::encode`] (or a newer version of
    /// it: trailing bytes are ignored).
    pub fn decode(bytes: &[u8]) -> Result<Message, DiscoError> {
        let [kind, version, body @ ..] = bytes else {
            return Err(DiscoError::Short);
        };
        match *kind {
            kind::PING => {
                let tx: TxId = body
                    .get(..TX_LEN)
                    .and_then(|tx| tx.try_into().ok())
                    .ok_or(DiscoError::Short)?;
                let node_key = body
                    .get(TX_LEN..TX_LEN + 32)
                    .and_then(|key| key.try_into().ok());
                Ok(Message::Ping { tx, node_key })
            }
            kind::PONG => {
                let tx: TxId = body
                    .get(..TX_LEN)
                    .and_then(|tx| tx.try_into().ok())
                    .ok_or(DiscoError::Short)?;
                let source = endpoint_at(&body[TX_LEN..]).ok_or(DiscoError::Short)?;
                Ok(Message::Pong { tx, source })
            }
            kind::CALL_ME_MAYBE => {
                // As Tailscale reads it: a body that is not whole endpoints,
                // or of another version, is an empty list.
                let endpoints = if *version == 0 && body.len() % ENDPOINT_LEN == 0 {
                    body.chunks_exact(ENDPOINT_LEN)
                        .take(MAX_ENDPOINTS)
                        .filter_map(endpoint_at)
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(Message::CallMeMaybe { endpoints })
            }
            kind::BIND_RELAY => Ok(Message::BindRelay(Bind::read(body)?)),
            kind::BIND_RELAY_CHALLENGE => Ok(Message::BindRelayChallenge(Bind::read(body)?)),
            kind::BIND_RELAY_ANSWER => Ok(Message::BindRelayAnswer(Bind::read(body)?)),
            kind::CALL_ME_MAYBE_VIA | kind::ALLOCATE_RELAY | kind::ALLOCATE_RELAY_ANSWER
                if *version != 0 =>
            {
                Err(DiscoError::Version(*kind, *version))
            }
            kind::CALL_ME_MAYBE_VIA => Ok(Message::CallMeMaybeVia(RelayEndpoint::read(body)?)),
            kind::ALLOCATE_RELAY => {
                let mut body = body;
                Ok(Message::AllocateRelay {
                    clients: [take(&mut body)?, take(&mut body)?],
                    generation: u32::from_be_bytes(take(&mut body)?),
                })
            }
            kind::ALLOCATE_RELAY_ANSWER => {
                let mut body = body;
                let generation = u32::from_be_bytes(take(&mut body)?);
                Ok(Message::AllocateRelayAnswer {
                    generation,
                    endpoint: RelayEndpoint::read(body)?,
                })
            }
            other => Err(DiscoError::Unknown(other)),
        }
    }
}

/// The box between our disco key and one peer's (its X25519 done once).
pub struct Boxer {
    ours: [u8; 32],
    cipher: SalsaBox,
}

impl Boxer {
    /// The box from `secret` (ours) to `peer`'s public disco key.
    pub fn new(secret: &[u8; 32], peer: &[u8; 32]) -> Boxer {
        let secret = SecretKey::from(*secret);
        Boxer {
            ours: *secret.public_key().as_bytes(),
            cipher: SalsaBox::new(&PublicKey::from(*peer), &secret),
        }
    }

    /// A whole disco packet carrying `message`, sealed under `nonce`.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], message: &Message) -> Vec<u8> {
        self.seal_padded(nonce, message, 0)
    }

    /// [`Boxer::seal`], with zeros after the message inside the box so that
    /// the packet is at least `size` bytes: a ping the size of the largest
    /// WireGuard packet proves a path carries packets that large (a reader,
    /// Tailscale's too, ignores bytes after a message).
    pub fn seal_padded(&self, nonce: &[u8; NONCE_LEN], message: &Message, size: usize) -> Vec<u8> {
        let mut plain = message.encode();
        let overhead = HEADER_LEN + TAG_LEN;
        plain.resize(plain.len().max(size.saturating_sub(overhead)), 0);
        let sealed = self
            .cipher
            .encrypt(nonce.into(), plain.as_slice())
            .expect("a message of bounded size seals");
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.ours);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The message in `packet`, which the peer sealed to us.
    pub fn open(&self, packet: &[u8]) -> Result<Message, DiscoError> {
        self.open_with_nonce(packet).map(|(message, _)| message)
    }

    /// The message in `packet`, which the peer sealed to us, and the nonce
    /// it was sealed under (for [`Replays`]).
    pub fn open_with_nonce(&self, packet: &[u8]) -> Result<(Message, [u8; NONCE_LEN]), DiscoError> {
        if !looks_like_disco(packet) {
            return Err(DiscoError::NotDisco);
        }
        let nonce: [u8; NONCE_LEN] = packet[MAGIC.len() + 32..HEADER_LEN]
            .try_into()
            .map_err(|_| DiscoError::NotDisco)?;
        let plain = self
            .cipher
            .decrypt((&nonce).into(), &packet[HEADER_LEN..])
            .map_err(|_| DiscoError::BadBox)?;
        Ok((Message::decode(&plain)?, nonce))
    }
}

/// How long a message's nonce is remembered.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Most nonces remembered per peer (a peer sends a few messages a second).
pub const REPLAY_MEMORY: usize = 8192;

/// The nonces of one peer's messages seen recently: a message whose nonce
/// was seen is a copy someone sent again (a peer picks a fresh random
/// nonce for each message), and is dropped. Without this, one captured
/// ping replayed from an attacker's address made the receiver ping that
/// address back and, with the pongs relayed, take it as the direct path.
/// Only messages that opened are recorded, so only the peer fills it.
/// Older copies than [`REPLAY_WINDOW`] are not caught here: a path is
/// trusted only when WireGuard traffic flows over it too.
#[derive(Debug, Default)]
pub struct Replays {
    order: VecDeque<([u8; NONCE_LEN], Duration)>,
    seen: HashSet<[u8; NONCE_LEN]>,
}

impl Replays {
    /// Whether a message sealed under `nonce`, opened at `now`, is new;
    /// records it if so.
    pub fn fresh(&mut self, nonce: [u8; NONCE_LEN], now: Duration) -> bool {
        while let Some((old, at)) = self.order.front().copied() {
            if now.saturating_sub(at) < REPLAY_WINDOW && self.order.len() < REPLAY_MEMORY {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(nonce) {
            return false;
        }
        self.order.push_back((nonce, now));
        true
    }
}

/// The public disco key of `secret`.
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    *SecretKey::from(*secret).public_key().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_sent_again_is_refused_within_the_window() {
        let mut replays = Replays::default();
        let at = |seconds| Duration::from_secs(seconds);
        assert!(replays.fresh([1; NONCE_LEN], at(0)));
        assert!(replays.fresh([2; NONCE_LEN], at(1)));
        assert!(!replays.fresh([1; NONCE_LEN], at(5)), "a replay");
        assert!(!replays.fresh([2; NONCE_LEN], at(300)));
        // Long after, the memory has moved on (WireGuard proof covers it).
        assert!(replays.fresh([1; NONCE_LEN], at(700)));
        // Bounded: the oldest go first.
        for index in 0..REPLAY_MEMORY as u32 + 10 {
            let mut nonce = [0u8; NONCE_LEN];
            nonce[..4].copy_from_slice(&index.to_le_bytes());
            nonce[23] = 9;
            replays.fresh(nonce, at(800));
        }
        assert!(replays.order.len() <= REPLAY_MEMORY);
        assert_eq!(replays.order.len(), replays.seen.len());
    }

    fn bind() -> Bind {
        Bind {
            vni: 0x00ab_cdef,
            generation: 3,
            remote: [6; 32],
            challenge: [7; 32],
        }
    }

    fn relay_endpoint() -> RelayEndpoint {
        RelayEndpoint {
            server: [1; 32],
            clients: [[2; 32], [3; 32]],
            lamport: 9,
            vni: 42,
            bind_lifetime: Duration::from_secs(30),
            steady_lifetime: Duration::from_secs(300),
            addresses: vec![
                "198.18.0.3:40000".parse().unwrap(),
                "[2001:db8::3]:40000".parse().unwrap(),
            ],
        }
    }

    /// The layouts Tailscale's `disco` package writes (read from its
    /// source, tailscale de9ec7e, disco/disco.go), field by field.
    #[test]
    fn peer_relay_messages_are_laid_out_as_tailscale_reads_them() {
        let bind = Message::BindRelayAnswer(bind()).encode();
        assert_eq!(bind.len(), 2 + 72);
        assert_eq!(bind[..2], [kind::BIND_RELAY_ANSWER, 0]);
        assert_eq!(bind[2..6], 0x00ab_cdef_u32.to_be_bytes());
        assert_eq!(bind[6..10], 3u32.to_be_bytes());
        assert_eq!(bind[10..42], [6; 32]);
        assert_eq!(bind[42..74], [7; 32]);

        let request = Message::AllocateRelay {
            clients: [[4; 32], [5; 32]],
            generation: 0x0102_0304,
        }
        .encode();
        assert_eq!(request.len(), 2 + 68);
        assert_eq!(request[2..34], [4; 32]);
        assert_eq!(request[66..70], [1, 2, 3, 4]);

        let answer = Message::AllocateRelayAnswer {
            generation: 5,
            endpoint: relay_endpoint(),
        }
        .encode();
        assert_eq!(answer[..2], [kind::ALLOCATE_RELAY_ANSWER, 0]);
        assert_eq!(answer[2..6], 5u32.to_be_bytes());
        let endpoint = &answer[6..];
        assert_eq!(endpoint.len(), 96 + 8 + 4 + 8 + 8 + 2 * 18);
        assert_eq!(endpoint[..32], [1; 32], "the server's disco key");
        assert_eq!(endpoint[96..104], 9u64.to_be_bytes(), "the Lamport id");
        assert_eq!(endpoint[104..108], 42u32.to_be_bytes(), "the VNI");
        assert_eq!(
            endpoint[108..116],
            30_000_000_000u64.to_be_bytes(),
            "the bind lifetime, in nanoseconds"
        );
        assert_eq!(
            endpoint[124..140],
            "::ffff:198.18.0.3".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(endpoint[140..142], 40000u16.to_be_bytes());

        // An endpoint without an address, or with part of one, is refused.
        let mut bare = Message::CallMeMaybeVia(RelayEndpoint {
            addresses: Vec::new(),
            ..relay_endpoint()
        })
        .encode();
        assert_eq!(Message::decode(&bare), Err(DiscoError::Short));
        bare.extend_from_slice(&[0; 17]);
        assert_eq!(Message::decode(&bare), Err(DiscoError::Short));
        // A short bind, and a version not read, are refused with why.
        assert_eq!(Message::decode(&bind[..73]), Err(DiscoError::Short));
        let mut newer = request.clone();
        newer[1] = 1;
        assert_eq!(
            Message::decode(&newer),
            Err(DiscoError::Version(kind::ALLOCATE_RELAY, 1))
        );
    }

    fn pair() -> (Boxer, Boxer) {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        (
            Boxer::new(&a, &public_key(&b)),
            Boxer::new(&b, &public_key(&a)),
        )
    }

    #[test]
    fn every_message_round_trips_between_the_two_ends() {
        let (a, b) = pair();
        for message in [
            Message::Ping {
                tx: [7; TX_LEN],
                node_key: Some([9; 32]),
            },
            Message::Ping {
                tx: [8; TX_LEN],
                node_key: None,
            },
            Message::Pong {
                tx: [7; TX_LEN],
                source: "198.18.1.2:41641".parse().unwrap(),
            },
            Message::Pong {
                tx: [7; TX_LEN],
                source: "[2001:db8::1]:9".parse().unwrap(),
            },
            Message::CallMeMaybe {
                endpoints: vec![
                    "10.0.0.2:41641".parse().unwrap(),
                    "[fd00::2]:41641".parse().unwrap(),
                ],
            },
            Message::BindRelay(bind()),
            Message::BindRelayChallenge(bind()),
            Message::BindRelayAnswer(bind()),
            Message::CallMeMaybeVia(relay_endpoint()),
            Message::AllocateRelay {
                clients: [[4; 32], [5; 32]],
                generation: 77,
            },
            Message::AllocateRelayAnswer {
                generation: 77,
                endpoint: relay_endpoint(),
            },
        ] {
            let packet = a.seal(&[3; NONCE_LEN], &message);
            assert!(looks_like_disco(&packet));
            assert_eq!(sender(&packet), Some(public_key(&[1; 32])));
            assert_eq!(b.open(&packet), Ok(message));
        }
    }

    #[test]
    fn the_layout_is_tailscale_s() {
        // Type, version 0, the 12-byte id, then the node key; a pong's
        // address is IPv4 mapped into IPv6 with a big-endian port.
        let ping = Message::Ping {
            tx: [0xaa; TX_LEN],
            node_key: Some([0xbb; 32]),
        }
        .encode();
        assert_eq!(ping.len(), 2 + 12 + 32);
        assert_eq!(&ping[..3], &[1, 0, 0xaa]);
        let pong = Message::Pong {
            tx: [0; TX_LEN],
            source: "1.2.3.4:258".parse().unwrap(),
        }
        .encode();
        assert_eq!(pong.len(), 2 + 12 + 18);
        assert_eq!(
            &pong[14..],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4, 1, 2]
        );
        assert_eq!(&MAGIC[..], &[0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac]);
    }

    #[test]
    fn tampering_wrong_keys_and_short_messages_are_refused() {
        let (a, b) = pair();
        let packet = a.seal(
            &[3; NONCE_LEN],
            &Message::Ping {
                tx: [1; TX_LEN],
                node_key: None,
            },
        );
        let mut flipped = packet.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(b.open(&flipped), Err(DiscoError::BadBox));
        let stranger = Boxer::new(&[5; 32], &public_key(&[1; 32]));
        assert_eq!(stranger.open(&packet), Err(DiscoError::BadBox));
        assert_eq!(b.open(&packet[..HEADER_LEN - 1]), Err(DiscoError::NotDisco));
        assert_eq!(
            b.open(b"\x01\0\0\0 a WireGuard packet"),
            Err(DiscoError::NotDisco)
        );
        assert_eq!(
            Message::decode(&[kind::PING, 0, 1, 2]),
            Err(DiscoError::Short)
        );
        assert_eq!(Message::decode(&[kind::PONG, 0]), Err(DiscoError::Short));
        assert_eq!(Message::decode(&[0x7f, 0]), Err(DiscoError::Unknown(0x7f)));
        assert_eq!(Message::decode(&[]), Err(DiscoError::Short));
    }

    #[test]
    fn newer_versions_extra_bytes_are_ignored_and_odd_lists_read_empty() {
        let mut ping = Message::Ping {
            tx: [4; TX_LEN],
            node_key: Some([5; 32]),
        }
        .encode();
        ping.extend_from_slice(&[0; 100]); // padding, as path-MTU probes carry
        assert_eq!(
            Message::decode(&ping),
            Ok(Message::Ping {
                tx: [4; TX_LEN],
                node_key: Some([5; 32])
            })
        );
        assert_eq!(
            Message::decode(&[kind::CALL_ME_MAYBE, 0, 1, 2, 3]),
            Ok(Message::CallMeMaybe {
                endpoints: Vec::new()
            })
        );
        assert_eq!(
            Message::decode(&[kind::CALL_ME_MAYBE, 1]),
            Ok(Message::CallMeMaybe {
                endpoints: Vec::new()
            })
        );
    }

    #[test]
    fn a_padded_ping_is_the_size_asked_and_reads_as_the_ping() {
        let (ours, theirs) = ([1u8; 32], [2u8; 32]);
        let their_public = *SecretKey::from(theirs).public_key().as_bytes();
        let our_public = *SecretKey::from(ours).public_key().as_bytes();
        let sending = Boxer::new(&ours, &their_public);
        let receiving = Boxer::new(&theirs, &our_public);
        let ping = Message::Ping {
            tx: [7; TX_LEN],
            node_key: Some([9; 32]),
        };
        let packet = sending.seal_padded(&[3; NONCE_LEN], &ping, 1452);
        assert_eq!(packet.len(), 1452);
        assert_eq!(receiving.open(&packet).unwrap(), ping);
        let small = sending.seal(&[4; NONCE_LEN], &ping);
        assert!(small.len() < 200);
        assert_eq!(
            sending.seal_padded(&[4; NONCE_LEN], &ping, 10),
            small,
            "never shorter than the message"
        );
    }
}
