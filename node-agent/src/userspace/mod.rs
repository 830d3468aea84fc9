//! Userspace WireGuard: BoringTun's protocol core (`noise::Tunn`, from
//! defguard's fork, the one WireGuard implementation in the dependency tree)
//! driven by our own TUN and UDP loops, with relays and disco for peers
//! behind NATs ([`paths`]).
//!
//! Threads: one per TUN queue (TUN → cut super-packets → encrypt → UDP
//! batches or relay), one for UDP → decrypt → coalesce → TUN, the
//! WireGuard timers (handshakes, keep-alives, re-keying), and the disco
//! plane's ([`crate::disco_plane`], driven by [`disco`]: disco, paths,
//! peer relays, our own relay's socket), which alone decides each peer's
//! route; the packet threads only read it. The kernel
//! offloads that make this fast (virtio-net headers and TSO on the TUN,
//! UDP GSO and GRO, `sendmmsg`/`recvmmsg`) are probed at start and each
//! falls back on its own ([`io`], [`offload`]). Packets
//! relayed to us arrive through [`Device::receive_relayed`] from the agent's
//! relay client, and packets for the relay leave through the channel given
//! to [`Device::attach_relay`]. Peers can be changed in place (endpoint,
//! allowed IPs, keep-alive, candidates) without losing their session, and
//! removed or added at any time. Cryptokey routing is enforced both ways: a
//! packet goes to the peer whose allowed IPs hold its destination, and a
//! decrypted packet is delivered only if the sender is the peer whose
//! allowed IPs hold its source most specifically (longest prefix), as
//! kernel WireGuard does: a peer with a wide route cannot send as another
//! member.
//!
//! Handshakes cost an X25519 each, so nothing of a handshake is computed
//! before its MAC1 (a keyed BLAKE2s only holders of our public key can make)
//! is checked: random packets cost a hash. Past a device-wide rate, initiators
//! must also echo a cookie bound to their address (WireGuard's cookie reply,
//! which the kernel and wireguard-go implement), and each source address has
//! its own handshake budget ([`crate::handshakes`]). Relayed packets come
//! from keys the relay admitted; they get the MAC1 check and no cookies.
//!
//! [`paths`]: crate::paths

mod disco;
mod io;
pub mod offload;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use defguard_boringtun::device::allowed_ips::AllowedIps;
use defguard_boringtun::noise::handshake::parse_handshake_anon;
use defguard_boringtun::noise::rate_limiter::RateLimiter;
use defguard_boringtun::noise::{Packet, Tunn, TunnResult};
use defguard_boringtun::x25519::{PublicKey, StaticSecret};
use hearth_control::geneve::{self, Geneve};
use hearth_control::stun;
use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};
use zeroize::Zeroizing;

use crate::disco_plane::{Plane, Target, Via as Source};
use crate::handshakes::SourceBudget;
use crate::plane::{DataPlaneError, PathStatus, PeerConfig, PeerStats};
use hearth_control::wire::WireGuardKey;

pub use crate::disco_plane::{PeerRelays, RelayCandidate};
pub use disco::RelayPacket;
use disco::{Input, PlaneHandle, RelaySocket};
pub use io::Offloads;
use io::{ReceiveBatch, SendBatch, Tun};
use offload::{GroPlan, MAX_PACKET, OffloadError, VNET_HDR_LEN, VnetHeader, Write};

/// Largest datagram or packet handled.
const BUFFER: usize = 65_536;
/// TUN queues (reader threads): one per core, at most four, unless
/// `HEARTH_TUN_QUEUES` says otherwise.
fn tun_queues() -> usize {
    std::env::var("HEARTH_TUN_QUEUES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, 4)
}

/// Bytes of encrypted datagrams gathered before a send (room for a whole
/// cut-up super-packet and more).
const SEND_ARENA: usize = 512 * 1024;
/// Packets read from the TUN device before the batch is sent.
const TUN_READS_PER_FLUSH: usize = 32;
/// Messages per `recvmmsg` (each up to [`BUFFER`] bytes with UDP GRO).
const RECEIVE_MESSAGES: usize = 32;
/// Bytes of decrypted packets gathered before they are written.
const DELIVER_ARENA: usize = 1024 * 1024;
/// How often the protocol timers run.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// How long the UDP loop blocks before checking for shutdown.
const UDP_POLL: Duration = Duration::from_millis(200);
/// Handshake messages per second (with a valid MAC1) the device takes before
/// it asks initiators for cookies (boringtun's and wireguard-go's choice).
const HANDSHAKES_BEFORE_COOKIES: u64 = 100;

struct PeerState {
    key: [u8; 32],
    /// The receiver index of `tunnel` (a new one after a key change).
    index: AtomicU32,
    tunnel: Mutex<Tunn>,
    /// The tunnel before a key change (ours or the peer's), whose session
    /// carries traffic until `tunnel` has one; lock after `tunnel`.
    retiring: Mutex<Option<Retiring>>,
    keepalive: Option<u16>,
    /// For a plain WireGuard peer: where to send (set, or roamed to).
    endpoint: RwLock<Option<SocketAddr>>,
    allowed: RwLock<Vec<IpNet>>,
    /// Whether it speaks disco (its path is then the disco plane's).
    disco: AtomicBool,
    /// For a disco peer: where packets go now (published by the disco
    /// plane's thread).
    route: RwLock<Target>,
    /// For a disco peer: the round trip of its path, in microseconds
    /// (`u64::MAX`: unknown), published with the route.
    rtt_us: AtomicU64,
    /// When data last went to or came from the peer (ms since the device
    /// started, 0: never): disco keeps paths of peers in use.
    last_traffic: AtomicU64,
    /// For a disco peer: data sent on a direct path, and authenticated
    /// WireGuard packets received from the direct path's address (a path is
    /// trusted only while both move: [`crate::paths`]).
    direct_sent: AtomicU64,
    direct_heard: AtomicU64,
    /// For a disco peer: authenticated WireGuard packets through the relay
    /// (DERP or a peer relay).
    relayed_heard: AtomicU64,
    /// For a disco peer: data sent through a peer relay, and authenticated
    /// WireGuard packets received through one.
    peer_relay_sent: AtomicU64,
    peer_relay_heard: AtomicU64,
}

/// A peer's previous tunnel after a key change. Sessions do not depend on
/// the static keys once made, so the old one keeps carrying packets both
/// ways until the new keys' handshake completes; its timers do not run (it
/// never re-keys), and it goes when the new session exists or after
/// WireGuard's session lifetime.
struct Retiring {
    tunnel: Tunn,
    /// Its receiver index.
    index: u32,
    /// The peer's key on it (its relay login may still be the old one).
    key: [u8; 32],
    since: Instant,
}

/// How long a retiring session may carry traffic (WireGuard's
/// REJECT_AFTER_TIME: no session outlives it).
const RETIRING_FOR: Duration = Duration::from_secs(180);

/// Whether `tunnel` has a session to encrypt with.
fn has_session(tunnel: &Tunn) -> bool {
    tunnel
        .time_since_last_handshake()
        .is_some_and(|since| since < RETIRING_FOR)
}

/// This device's static keys and what is derived from them (replaced
/// together when the node rotates its key).
struct StaticKeys {
    private: StaticSecret,
    public: PublicKey,
    /// MAC1 and cookie checks of every handshake message, before any DH.
    handshakes: RateLimiter,
    /// MAC1 checks of handshakes that came through a relay.
    relayed_handshakes: RateLimiter,
}

impl StaticKeys {
    fn new(private: StaticSecret) -> StaticKeys {
        let public = PublicKey::from(&private);
        StaticKeys {
            handshakes: RateLimiter::new(&public, HANDSHAKES_BEFORE_COOKIES),
            relayed_handshakes: RateLimiter::new(&public, u64::MAX),
            private,
            public,
        }
    }
}

impl PeerState {
    /// Whether `key` is this peer's: its key, or the one its retiring
    /// session was made with (it rotated a moment ago; relays and disco
    /// may still see the old one).
    fn knows_key(&self, key: &[u8; 32]) -> bool {
        *key == self.key
            || hearth_runtime::lock(&self.retiring)
                .as_ref()
                .is_some_and(|old| old.key == *key)
    }

    /// Where a packet for this peer goes now.
    fn target(&self) -> Target {
        if self.disco.load(Ordering::Relaxed) {
            return *hearth_runtime::read(&self.route);
        }
        match *hearth_runtime::read(&self.endpoint) {
            Some(endpoint) => Target::Udp(endpoint),
            None => Target::Nowhere,
        }
    }
}

struct PeerTable {
    by_key: HashMap<[u8; 32], Arc<PeerState>>,
    by_index: HashMap<u32, Arc<PeerState>>,
    by_address: AllowedIps<Arc<PeerState>>,
    next_index: u32,
}

impl PeerTable {
    fn allocate_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index = (index + 1) & 0x00ff_ffff;
        index
    }

    fn rebuild_routes(&mut self) {
        self.by_address.clear();
        for peer in self.by_key.values() {
            for prefix in hearth_runtime::read(&peer.allowed).clone() {
                self.by_address.insert(
                    prefix.addr(),
                    u32::from(prefix.prefix_len()),
                    Arc::clone(peer),
                );
            }
        }
    }
}

/// A STUN question asked from the WireGuard socket, waiting for its answer.
type StunWaiter = (stun::TransactionId, std::sync::mpsc::SyncSender<SocketAddr>);

/// The MTU a device assumes until told (the agent's default).
const DEFAULT_MTU: u32 = 1420;

/// The size of the largest WireGuard data packet for an interface of
/// `mtu`: the packet, its 16-byte header and 16-byte tag.
fn full_size(mtu: u32) -> usize {
    usize::try_from(mtu).unwrap_or(1420).min(65_000) + 32
}

/// What the device's threads share: sockets, keys, peers, limiters.
struct DeviceState {
    /// The TUN device's queues: one reader thread each (the kernel keeps
    /// each flow on one queue, so a flow's packets stay in order).
    tuns: Vec<Tun>,
    /// What the kernel offered at start (and the user allowed).
    offloads: Offloads,
    udp: UdpSocket,
    /// Whether `udp` is a dual-stack IPv6 socket (IPv4 peers are then
    /// addressed as IPv4-mapped IPv6).
    dual_stack: bool,
    keys: RwLock<Arc<StaticKeys>>,
    peers: RwLock<PeerTable>,
    /// Handshake initiations per source address.
    budget: Mutex<SourceBudget>,
    stop: AtomicBool,
    /// When the device started: disco's clock.
    origin: Instant,
    /// This node's disco key, new at each start.
    disco_public: [u8; 32],
    /// The disco plane's queue.
    plane: PlaneHandle,
    /// Where packets for a relay go (the agent's relay client), once attached.
    relay: RwLock<Option<tokio::sync::mpsc::Sender<RelayPacket>>>,
    /// Packets for the relay dropped because its queue was full.
    relay_drops: AtomicU64,
    /// A STUN question waiting for its answer on the WireGuard socket.
    stun: Mutex<Option<StunWaiter>>,
    /// The port of our own peer relay, when this device is one.
    relay_port: Mutex<Option<u16>>,
}

impl DeviceState {
    /// The queue to write `packet` through: always the same one for a
    /// flow, so that the kernel, which remembers the queue a flow last
    /// came in on, sends the flow's replies to that queue's reader.
    fn tun_for(&self, packet: &[u8]) -> &Tun {
        &self.tuns[offload::flow_hash(packet) as usize % self.tuns.len()]
    }

    fn peers(&self) -> std::sync::RwLockReadGuard<'_, PeerTable> {
        hearth_runtime::read(&self.peers)
    }

    fn keys(&self) -> Arc<StaticKeys> {
        Arc::clone(&hearth_runtime::read(&self.keys))
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn send(&self, datagram: &[u8], to: SocketAddr) {
        let to = io::socket_address_for(to, self.dual_stack);
        if let Err(error) = self.udp.send_to(datagram, to) {
            tracing::trace!(%error, %to, "UDP send failed");
        }
    }

    /// Sends `packet` to the node with `key` through relay `region`.
    fn send_relayed(&self, region: u16, key: [u8; 32], packet: &[u8]) {
        let relay = hearth_runtime::read(&self.relay);
        let Some(relay) = relay.as_ref() else {
            return;
        };
        let queued = relay.try_send(RelayPacket {
            region,
            to: key,
            packet: packet.to_vec(),
        });
        if queued.is_err() {
            self.relay_drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends a WireGuard datagram for `peer` where its path leads.
    fn send_to_peer(&self, peer: &PeerState, datagram: &[u8]) {
        self.send_to_target(peer, peer.target(), datagram);
    }

    /// Sends a WireGuard datagram for `peer` to `target`.
    fn send_to_target(&self, peer: &PeerState, target: Target, datagram: &[u8]) {
        match target {
            Target::Udp(endpoint) => self.send(datagram, endpoint),
            Target::PeerRelay { address, vni } => {
                self.send_geneve(address, vni, geneve::PROTOCOL_WIREGUARD, false, datagram)
            }
            Target::Relay { region } => self.send_relayed(region, peer.key, datagram),
            Target::Nowhere => {}
        }
    }

    /// Sends `payload` through a peer relay's endpoint `vni` at `to`.
    fn send_geneve(&self, to: SocketAddr, vni: u32, protocol: u16, control: bool, payload: &[u8]) {
        let mut packet = Vec::with_capacity(geneve::HEADER_LEN + payload.len());
        packet.extend_from_slice(
            &Geneve {
                control,
                protocol,
                vni,
            }
            .encode(),
        );
        packet.extend_from_slice(payload);
        self.send(&packet, to);
    }

    fn note_traffic(&self, peer: &PeerState) {
        // +1 so that traffic in the first millisecond is not "never".
        let now = self.now().as_millis() as u64 + 1;
        peer.last_traffic.store(now, Ordering::Relaxed);
    }
}

/// A running userspace WireGuard device.
pub struct Device {
    shared: Arc<DeviceState>,
    threads: Vec<JoinHandle<()>>,
    listen_port: u16,
}

fn bind_udp(port: u16) -> std::io::Result<UdpSocket> {
    let dual = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|socket| {
        socket.set_only_v6(false)?;
        socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
        Ok(socket)
    });
    let socket = match dual {
        Ok(socket) => socket,
        Err(_) => {
            let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            socket.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            socket
        }
    };
    // Room for bursts at high throughput; the kernel caps these at rmem_max/wmem_max.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(UDP_POLL))?;
    Ok(socket)
}

fn device_error(error: impl std::fmt::Display) -> DataPlaneError {
    DataPlaneError::Device(error.to_string())
}

impl Device {
    /// Creates TUN interface `name` and starts the device with `private_key` on `port`.
    pub fn start(name: &str, private_key: [u8; 32], port: u16) -> Result<Device, DataPlaneError> {
        let wanted = !Offloads::disabled_by_environment();
        let open = |offloads: bool| {
            Tun::open(name, offloads)
                .map_err(|error| device_error(format!("cannot create TUN device {name}: {error}")))
        };
        // A kernel without virtio-net headers on TUN: plain packets.
        let (tun, tun_tso, tun_uso) = match open(wanted) {
            Ok(opened) => opened,
            Err(error) if wanted => {
                tracing::warn!(%error, "TUN offloads unavailable; packets go one by one");
                open(false)?
            }
            Err(error) => return Err(error),
        };
        let vnet = tun.vnet();
        let mut tuns = vec![tun];
        // Queues spread the work of cutting and encrypting super-packets;
        // without TSO the packets come one by one and batching them on one
        // queue saves more.
        let queues = if tun_tso { tun_queues() } else { 1 };
        for _ in 1..queues {
            match Tun::open_queue(name, vnet) {
                Ok(queue) => tuns.push(queue),
                Err(error) => {
                    tracing::debug!(%error, "no further TUN queue");
                    break;
                }
            }
        }
        let udp = bind_udp(port)
            .map_err(|error| device_error(format!("cannot bind UDP port {port}: {error}")))?;
        let (udp_gso, udp_gro) = io::udp_offloads(&udp, wanted);
        let offloads = Offloads {
            tun_tso,
            tun_uso,
            udp_gso,
            udp_gro,
        };
        tracing::info!(offloads = %offloads.describe(), tun_queues = tuns.len(), "userspace data plane");
        let local = udp.local_addr().map_err(device_error)?;
        let (listen_port, dual_stack) = (local.port(), local.is_ipv6());
        let keys = StaticKeys::new(StaticSecret::from(private_key));
        // The plane's randomness, drawn here at its edge.
        let seed = Zeroizing::new(rand::random::<[u8; 32]>());
        let plane = Plane::new(keys.public.to_bytes(), full_size(DEFAULT_MTU), *seed);
        let disco_public = plane.disco_public();
        let (handle, inbox) = disco::channel().map_err(device_error)?;
        let shared = Arc::new(DeviceState {
            tuns,
            offloads,
            udp,
            dual_stack,
            keys: RwLock::new(Arc::new(keys)),
            peers: RwLock::new(PeerTable {
                by_key: HashMap::new(),
                by_index: HashMap::new(),
                by_address: AllowedIps::new(),
                next_index: rand::random::<u32>() & 0x00ff_ffff,
            }),
            budget: Mutex::new(SourceBudget::default()),
            stop: AtomicBool::new(false),
            origin: Instant::now(),
            disco_public,
            plane: handle,
            relay: RwLock::new(None),
            relay_drops: AtomicU64::new(0),
            stun: Mutex::new(None),
            relay_port: Mutex::new(None),
        });
        let mut threads = Vec::new();
        for queue in 0..shared.tuns.len() {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("wg-tun-{queue}"))
                    .spawn(move || run_tun(shared, queue))
                    .map_err(device_error)?,
            );
        }
        for (label, body) in [
            ("wg-udp", run_udp as fn(Arc<DeviceState>)),
            ("wg-timers", run_timers as fn(Arc<DeviceState>)),
        ] {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(label.into())
                    .spawn(move || body(shared))
                    .map_err(device_error)?,
            );
        }
        let plane_shared = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("wg-disco".into())
                .spawn(move || disco::run(plane_shared, plane, inbox))
                .map_err(device_error)?,
        );
        Ok(Device {
            shared,
            threads,
            listen_port,
        })
    }

    /// The kernel offloads in use.
    pub fn offloads(&self) -> Offloads {
        self.shared.offloads
    }

    /// The UDP port in use.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Adds a peer or changes it in place (its session survives).
    pub fn set_peer(&self, config: &PeerConfig) -> Result<(), DataPlaneError> {
        let replaced = self.take_replaced(config);
        let mut table = hearth_runtime::write(&self.shared.peers);
        let peer = match table.by_key.get(&config.key.0).cloned() {
            Some(peer) => {
                if let Some(endpoint) = config.endpoint {
                    *hearth_runtime::write(&peer.endpoint) = Some(endpoint);
                }
                if hearth_runtime::read(&peer.allowed).clone() != config.allowed_ips {
                    *hearth_runtime::write(&peer.allowed) = config.allowed_ips.clone();
                    table.rebuild_routes();
                }
                // The keep-alive interval is fixed when a peer is added (BoringTun has no setter).
                peer
            }
            None => {
                let index = table.allocate_index();
                let keys = self.shared.keys();
                let tunnel = Tunn::new(
                    keys.private.clone(),
                    PublicKey::from(config.key.0),
                    None,
                    config.keepalive,
                    index,
                    None,
                );
                // A peer whose key changed: its old session carries on
                // until the new key's handshake.
                let mut endpoint = config.endpoint;
                let retiring = replaced.map(|(old, retiring)| {
                    table.by_key.remove(&old.key);
                    if endpoint.is_none() {
                        endpoint = *hearth_runtime::read(&old.endpoint);
                    }
                    retiring
                });
                let peer = Arc::new(PeerState {
                    key: config.key.0,
                    index: AtomicU32::new(index),
                    tunnel: Mutex::new(tunnel),
                    retiring: Mutex::new(None),
                    keepalive: config.keepalive,
                    endpoint: RwLock::new(endpoint),
                    allowed: RwLock::new(config.allowed_ips.clone()),
                    disco: AtomicBool::new(false),
                    route: RwLock::new(Target::Nowhere),
                    rtt_us: AtomicU64::new(u64::MAX),
                    last_traffic: AtomicU64::new(0),
                    direct_sent: AtomicU64::new(0),
                    direct_heard: AtomicU64::new(0),
                    relayed_heard: AtomicU64::new(0),
                    peer_relay_sent: AtomicU64::new(0),
                    peer_relay_heard: AtomicU64::new(0),
                });
                for prefix in &config.allowed_ips {
                    table.by_address.insert(
                        prefix.addr(),
                        u32::from(prefix.prefix_len()),
                        Arc::clone(&peer),
                    );
                }
                table.by_index.insert(index, Arc::clone(&peer));
                table.by_key.insert(config.key.0, Arc::clone(&peer));
                if let Some(retiring) = retiring {
                    table.by_index.insert(retiring.index, Arc::clone(&peer));
                    *hearth_runtime::lock(&peer.retiring) = Some(retiring);
                    // The old peer's routes go; the new one's stay.
                    table.rebuild_routes();
                }
                peer
            }
        };
        drop(table);
        // The plane publishes the peer's route before this returns (the
        // device's locks are not held while it does).
        self.shared
            .plane
            .tell(Input::SetPeer(Box::new(config.clone())));
        self.shared.plane.settle();
        peer.disco.store(config.disco.is_some(), Ordering::Relaxed);
        Ok(())
    }

    /// For a peer whose key changed (`config.replaces`), the peer under
    /// its old key and that one's tunnel, taken out to retire. Done before
    /// the table's lock is taken: the packet path takes a tunnel, then the
    /// table.
    fn take_replaced(&self, config: &PeerConfig) -> Option<(Arc<PeerState>, Retiring)> {
        let old = config.replaces.filter(|old| *old != config.key)?;
        let old = {
            let table = self.shared.peers();
            if table.by_key.contains_key(&config.key.0) {
                return None;
            }
            table.by_key.get(&old.0).cloned()?
        };
        let dead = Tunn::new(
            StaticSecret::random(),
            PublicKey::from(old.key),
            None,
            None,
            0,
            None,
        );
        let tunnel = std::mem::replace(&mut *hearth_runtime::lock(&old.tunnel), dead);
        let retiring = Retiring {
            tunnel,
            index: old.index.load(Ordering::Relaxed),
            key: old.key,
            since: Instant::now(),
        };
        Some((old, retiring))
    }

    /// Removes a peer.
    pub fn remove_peer(&self, key: &WireGuardKey) -> Result<(), DataPlaneError> {
        let mut table = hearth_runtime::write(&self.shared.peers);
        if let Some(peer) = table.by_key.remove(&key.0) {
            table.by_index.remove(&peer.index.load(Ordering::Relaxed));
            if let Some(retiring) = hearth_runtime::lock(&peer.retiring).take() {
                table.by_index.remove(&retiring.index);
            }
            table.rebuild_routes();
        }
        drop(table);
        self.shared.plane.tell(Input::RemovePeer(key.0));
        Ok(())
    }

    /// The path to the peer with `key` now.
    pub fn path_of(&self, key: &WireGuardKey) -> Option<PathStatus> {
        let peer = self.shared.peers().by_key.get(&key.0).cloned()?;
        path_status(&peer)
    }

    /// Every peer's counters.
    pub fn stats(&self) -> Vec<PeerStats> {
        let now = SystemTime::now();
        self.shared
            .peers()
            .by_key
            .iter()
            .map(|(key, peer)| {
                let (since_handshake, tx_bytes, rx_bytes, _, _) =
                    hearth_runtime::lock(&peer.tunnel).stats();
                let path = path_status(peer);
                PeerStats {
                    key: WireGuardKey(*key),
                    endpoint: match path {
                        Some(PathStatus::Direct { endpoint, .. }) => Some(endpoint),
                        _ => None,
                    },
                    path,
                    last_handshake: since_handshake.and_then(|since| now.checked_sub(since)),
                    rx_bytes: rx_bytes as u64,
                    tx_bytes: tx_bytes as u64,
                }
            })
            .collect()
    }

    /// This device's public key.
    pub fn public_key(&self) -> WireGuardKey {
        WireGuardKey(self.shared.keys().public.to_bytes())
    }

    /// Replaces this device's private key (a rotation). Every peer gets a
    /// tunnel under the new key and starts its handshake at once; until it
    /// completes, the session made under the old key carries the traffic.
    pub fn set_private_key(&self, private_key: [u8; 32]) {
        let keys = Arc::new(StaticKeys::new(StaticSecret::from(private_key)));
        *hearth_runtime::write(&self.shared.keys) = Arc::clone(&keys);
        self.shared
            .plane
            .tell(Input::NodeKey(keys.public.to_bytes()));
        // New receiver indexes first (under the table's lock), tunnels
        // after (without it: the packet path takes a tunnel, then the table).
        let peers: Vec<(Arc<PeerState>, u32)> = {
            let mut table = hearth_runtime::write(&self.shared.peers);
            let peers: Vec<Arc<PeerState>> = table.by_key.values().cloned().collect();
            peers
                .into_iter()
                .map(|peer| {
                    let index = table.allocate_index();
                    table.by_index.insert(index, Arc::clone(&peer));
                    (peer, index)
                })
                .collect()
        };
        let mut out = [0u8; 256];
        let mut stale = Vec::new();
        for (peer, index) in peers {
            let fresh = Tunn::new(
                keys.private.clone(),
                PublicKey::from(peer.key),
                None,
                peer.keepalive,
                index,
                None,
            );
            let mut tunnel = hearth_runtime::lock(&peer.tunnel);
            let old = std::mem::replace(&mut *tunnel, fresh);
            let old_index = peer.index.swap(index, Ordering::Relaxed);
            let previous = hearth_runtime::lock(&peer.retiring).replace(Retiring {
                tunnel: old,
                index: old_index,
                key: peer.key,
                since: Instant::now(),
            });
            if let Some(previous) = previous {
                stale.push(previous.index);
            }
            if let TunnResult::WriteToNetwork(initiation) =
                tunnel.format_handshake_initiation(&mut out, false)
            {
                self.shared.send_to_peer(&peer, initiation);
            }
        }
        let mut table = hearth_runtime::write(&self.shared.peers);
        for index in stale {
            table.by_index.remove(&index);
        }
    }

    /// The interface's MTU is `mtu`: paths are probed with packets as
    /// large as the WireGuard packets it makes.
    pub fn set_mtu(&self, mtu: u32) {
        self.shared.plane.tell(Input::ProbeSize(full_size(mtu)));
    }

    /// This device's disco key (new at each start).
    pub fn disco_public(&self) -> WireGuardKey {
        WireGuardKey(self.shared.disco_public)
    }

    /// Sends packets for relays into `relay` from now on.
    pub fn attach_relay(&self, relay: tokio::sync::mpsc::Sender<RelayPacket>) {
        *hearth_runtime::write(&self.shared.relay) = Some(relay);
        self.shared.plane.tell(Input::RelayAttached);
    }

    /// Packets for the relay dropped because its queue was full.
    pub fn relay_drops(&self) -> u64 {
        self.shared.relay_drops.load(Ordering::Relaxed)
    }

    /// A packet the node with `key` sent us through relay `region`.
    pub fn receive_relayed(&self, region: u16, key: [u8; 32], packet: &[u8]) {
        thread_local! {
            static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUFFER]);
        }
        let source = Source::Relay { region, key };
        if hearth_control::disco::looks_like_disco(packet) {
            self.shared.plane.offer(Input::Disco {
                via: source,
                packet: packet.to_vec(),
            });
            return;
        }
        SCRATCH.with(|scratch| {
            let mut out = scratch.borrow_mut();
            if let Some(length) = decrypt(&self.shared, packet, source, &mut out)
                && let Err(error) = self
                    .shared
                    .tun_for(&out[..length])
                    .write_packet(&out[..length])
            {
                tracing::trace!(%error, "TUN write failed");
            }
        });
    }

    /// Makes this device a peer relay on UDP `port` (0: any); returns the
    /// port. Which peers may use it is [`Device::set_peer_relays`]'s.
    pub fn serve_peer_relay(&self, port: u16) -> Result<u16, DataPlaneError> {
        let socket = RelaySocket::bind(port).map_err(|error| {
            device_error(format!(
                "cannot bind the peer relay's UDP port {port}: {error}"
            ))
        })?;
        let port = socket.port;
        *hearth_runtime::lock(&self.shared.relay_port) = Some(port);
        self.shared.plane.tell(Input::ServeRelay(socket));
        tracing::info!(port, "peer relay listening");
        Ok(port)
    }

    /// The addresses our peer relay is reached at (its port at each of this
    /// node's addresses), told to clients in each endpoint.
    pub fn set_peer_relay_addresses(&self, addresses: Vec<SocketAddr>) {
        self.shared.plane.tell(Input::RelayAddresses(addresses));
    }

    /// The port of our peer relay, when this device is one.
    pub fn peer_relay_port(&self) -> Option<u16> {
        *hearth_runtime::lock(&self.shared.relay_port)
    }

    /// Our peer relay, when this device is one: its port, the endpoints it
    /// holds and how many peers may use it.
    pub fn peer_relay_status(&self) -> Option<crate::plane::PeerRelayStatus> {
        let port = self.peer_relay_port()?;
        let (endpoints, clients) = self.shared.plane.relay_status()?;
        Some(crate::plane::PeerRelayStatus {
            port,
            endpoints,
            clients,
        })
    }

    /// The peer relays the policy offers us, and the peers that may use
    /// ours.
    pub fn set_peer_relays(&self, relays: PeerRelays) {
        self.shared.plane.tell(Input::PeerRelays(relays));
    }

    /// This node's endpoints, told to peers asked to call back.
    pub fn set_own_endpoints(&self, endpoints: Vec<SocketAddr>) {
        self.shared.plane.tell(Input::OwnEndpoints(endpoints));
    }

    /// Asks the STUN server at `server` from the WireGuard socket itself,
    /// so the answer is the mapping peers' packets will meet. Blocking.
    pub fn stun(&self, server: SocketAddr, timeout: Duration) -> Option<SocketAddr> {
        let transaction: stun::TransactionId = rand::random();
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        *hearth_runtime::lock(&self.shared.stun) = Some((transaction, sender));
        self.shared
            .send(&stun::binding_request(transaction), server);
        let answer = receiver.recv_timeout(timeout).ok();
        *hearth_runtime::lock(&self.shared.stun) = None;
        answer
    }
}

fn path_status(peer: &PeerState) -> Option<PathStatus> {
    let rtt_us = Some(peer.rtt_us.load(Ordering::Relaxed)).filter(|rtt| *rtt != u64::MAX);
    match peer.target() {
        Target::Udp(endpoint) => Some(PathStatus::Direct { endpoint, rtt_us }),
        Target::PeerRelay { address, vni } => Some(PathStatus::PeerRelay {
            relay: address,
            vni,
            rtt_us,
        }),
        Target::Relay { region } => Some(PathStatus::Relay { region }),
        Target::Nowhere => None,
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Reads packets from the TUN device (cutting offloaded super-packets into
/// segments), encrypts them for the peer owning their destination, and
/// sends them in batches.
fn run_tun(shared: Arc<DeviceState>, queue: usize) {
    let tun = &shared.tuns[queue];
    let mut frame = vec![0u8; VNET_HDR_LEN + MAX_PACKET];
    let mut scratch = vec![0u8; MAX_PACKET];
    let mut batch = SendBatch::new(SEND_ARENA, shared.offloads.udp_gso);
    let mut warned = false;
    while !shared.stop.load(Ordering::Relaxed) {
        match tun.wait_readable(UDP_POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::debug!(%error, "TUN poll failed");
                std::thread::sleep(UDP_POLL);
                continue;
            }
        }
        for _ in 0..TUN_READS_PER_FLUSH {
            let (header, packet) = match read_packet(tun, &mut frame) {
                Ok(Some(read)) => read,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(%error, "TUN read failed");
                    break;
                }
            };
            if let Err(error) = encrypt_and_send(&shared, &header, packet, &mut scratch, &mut batch)
                && !warned
            {
                warned = true;
                tracing::warn!(%error, "a packet from the TUN device was dropped");
            }
        }
        batch.flush(&shared.udp, shared.dual_stack);
    }
}

/// Reads one packet and its virtio-net header (a plain one when the
/// device has none); `None` when nothing is waiting.
fn read_packet<'a>(
    tun: &Tun,
    frame: &'a mut [u8],
) -> std::io::Result<Option<(VnetHeader, &'a mut [u8])>> {
    let vnet = tun.vnet();
    let into = if vnet {
        &mut frame[..]
    } else {
        &mut frame[VNET_HDR_LEN..]
    };
    let read = match tun.read(into) {
        Ok(read) => read,
        Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(None),
        Err(error) if error.kind() == ErrorKind::Interrupted => return Ok(None),
        Err(error) => return Err(error),
    };
    if !vnet {
        return Ok(Some((
            VnetHeader::default(),
            &mut frame[VNET_HDR_LEN..VNET_HDR_LEN + read],
        )));
    }
    let header = VnetHeader::parse(&frame[..read]).map_err(std::io::Error::other)?;
    Ok(Some((header, &mut frame[VNET_HDR_LEN..read])))
}

/// Encrypts `packet` (cut into segments first if `header` asks) for the
/// peer owning its destination, into `batch` (or to the relay).
fn encrypt_and_send(
    shared: &DeviceState,
    header: &VnetHeader,
    packet: &mut [u8],
    scratch: &mut [u8],
    batch: &mut SendBatch,
) -> Result<(), OffloadError> {
    let Some(destination) = Tunn::dst_address(packet) else {
        return Ok(());
    };
    let Some(peer) = shared.peers().by_address.find(destination).cloned() else {
        return Ok(());
    };
    shared.note_traffic(&peer);
    let target = peer.target();
    match target {
        Target::Nowhere => return Ok(()),
        Target::Udp(_) => {
            peer.direct_sent.fetch_add(1, Ordering::Relaxed);
        }
        Target::PeerRelay { .. } => {
            peer.peer_relay_sent.fetch_add(1, Ordering::Relaxed);
        }
        Target::Relay { .. } => {}
    }
    // Through a peer relay, each datagram goes after a Geneve header.
    let (offset, geneve_header) = match target {
        Target::PeerRelay { vni, .. } => (
            geneve::HEADER_LEN,
            Geneve {
                control: false,
                protocol: geneve::PROTOCOL_WIREGUARD,
                vni,
            }
            .encode(),
        ),
        _ => (0, [0; geneve::HEADER_LEN]),
    };
    let mut tunnel = hearth_runtime::lock(&peer.tunnel);
    if !has_session(&tunnel) {
        // After a key change, the old session carries the packet while the
        // new handshake is under way (rare: sent one by one).
        let mut retiring = hearth_runtime::lock(&peer.retiring);
        if let Some(old) = retiring.as_mut().filter(|old| has_session(&old.tunnel)) {
            // Encrypted into the batch's free room and sent at once.
            batch.flush(&shared.udp, shared.dual_stack);
            offload::segment(header, packet, scratch, |segment| {
                if let TunnResult::WriteToNetwork(datagram) =
                    old.tunnel.encapsulate(segment, batch.room())
                {
                    shared.send_to_target(&peer, target, datagram);
                }
            })?;
            let mut initiation = [0u8; 256];
            if let TunnResult::WriteToNetwork(datagram) =
                tunnel.format_handshake_initiation(&mut initiation, false)
            {
                shared.send_to_target(&peer, target, datagram);
            }
            return Ok(());
        }
    }
    offload::segment(header, packet, scratch, |segment| {
        if batch.needs_flush(segment.len() + 64 + offset) {
            batch.flush(&shared.udp, shared.dual_stack);
        }
        let room = batch.room();
        room[..offset].copy_from_slice(&geneve_header[..offset]);
        if let TunnResult::WriteToNetwork(datagram) =
            tunnel.encapsulate(segment, &mut room[offset..])
        {
            match target {
                Target::Udp(endpoint) => {
                    let length = datagram.len();
                    batch.commit(length, endpoint);
                }
                Target::PeerRelay { address, .. } => {
                    let length = datagram.len();
                    batch.commit(offset + length, address);
                }
                Target::Relay { region } => shared.send_relayed(region, peer.key, datagram),
                Target::Nowhere => {}
            }
        }
    })?;
    // With several queues encrypting for the same peer, what one holds
    // back could leave after another's later counters: sending before the
    // peer's tunnel is released keeps each peer's datagrams in counter
    // order on the wire (a GSO run or two per super-packet, so little is
    // lost of the batching).
    if shared.tuns.len() > 1 {
        batch.flush(&shared.udp, shared.dual_stack);
    }
    Ok(())
}

/// Whether `packet` is a STUN binding success (type 0x0101 and STUN's magic
/// cookie; WireGuard messages have zeros where STUN has its type's low byte).
fn looks_like_stun_answer(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[..2] == [0x01, 0x01] && packet[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// Receives datagrams in batches (runs of them when UDP GRO is on),
/// decrypts them with the right peer's session and writes allowed packets
/// to the TUN device, coalescing TCP segments when the device takes them;
/// disco messages and STUN answers that arrive on the same socket go their
/// own way.
fn run_udp(shared: Arc<DeviceState>) {
    let mut receive = ReceiveBatch::new(RECEIVE_MESSAGES, BUFFER);
    let mut deliver = Deliver::new(shared.offloads.tun_tso);
    while !shared.stop.load(Ordering::Relaxed) {
        let count = match receive.receive(&shared.udp) {
            Ok(count) => count,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "UDP receive failed");
                continue;
            }
        };
        for index in 0..count {
            let Some((datagrams, source)) = receive.datagrams(index) else {
                continue;
            };
            for datagram in datagrams {
                let (carried, header) = geneve::classify(datagram);
                // Through a peer relay's endpoint: after its Geneve header.
                let (payload, via) = match header {
                    Some(header) => (
                        &datagram[geneve::HEADER_LEN..],
                        Source::PeerRelay {
                            address: source,
                            vni: header.vni,
                        },
                    ),
                    None => (datagram, Source::Udp(source)),
                };
                match (carried, header) {
                    // A relay's challenge to our bind.
                    (geneve::Carried::Disco, Some(header)) if header.control => {
                        shared.plane.offer(Input::Challenge {
                            from: source,
                            vni: header.vni,
                            packet: payload.to_vec(),
                        });
                    }
                    (geneve::Carried::Disco, _) => shared.plane.offer(Input::Disco {
                        via,
                        packet: payload.to_vec(),
                    }),
                    // Control messages are for relays, never WireGuard.
                    (_, Some(header)) if header.control => {}
                    (_, None) if looks_like_stun_answer(datagram) => answer_stun(&shared, datagram),
                    _ => {
                        if deliver.needs_flush(payload.len()) {
                            deliver.flush(&shared);
                        }
                        if let Some(length) = decrypt(&shared, payload, via, deliver.room()) {
                            deliver.commit(length);
                        }
                    }
                }
            }
        }
        deliver.flush(&shared);
    }
}

/// Decrypted packets of one receive batch, waiting to be written to the
/// TUN device.
struct Deliver {
    arena: Vec<u8>,
    used: usize,
    /// Where each packet starts in `arena`, and its length.
    packets: Vec<(usize, usize)>,
    /// Whether TCP segments may be written coalesced (the device takes TSO).
    coalesce: bool,
    plan: GroPlan,
    out: Vec<u8>,
}

impl Deliver {
    fn new(coalesce: bool) -> Deliver {
        Deliver {
            arena: vec![0u8; DELIVER_ARENA],
            used: 0,
            packets: Vec::with_capacity(1024),
            coalesce,
            plan: GroPlan::default(),
            out: vec![0u8; VNET_HDR_LEN + MAX_PACKET],
        }
    }

    /// Whether a datagram of `length` bytes might not fit.
    fn needs_flush(&self, length: usize) -> bool {
        self.arena.len() - self.used < length + 64
    }

    /// Room for the next packet.
    fn room(&mut self) -> &mut [u8] {
        &mut self.arena[self.used..]
    }

    /// Keeps the packet of `length` bytes written at the start of the room.
    fn commit(&mut self, length: usize) {
        self.packets.push((self.used, length));
        // Keep the next packet 8-byte aligned.
        self.used += length.next_multiple_of(8);
    }

    /// Writes every packet kept, coalesced where possible.
    fn flush(&mut self, shared: &DeviceState) {
        let Deliver {
            arena,
            packets,
            coalesce,
            plan,
            out,
            ..
        } = self;
        let packet = |index: usize| {
            let (start, length) = packets[index];
            &arena[start..start + length]
        };
        let write = |bytes: &[u8]| shared.tun_for(bytes).write_packet(bytes);
        let report = |written: std::io::Result<usize>| {
            if let Err(error) = written {
                tracing::trace!(%error, "TUN write failed");
            }
        };
        if *coalesce {
            plan.plan(packets.len(), packet);
            for next in plan.writes() {
                report(match next {
                    Write::Single(index) => write(packet(index as usize)),
                    Write::Group(group) => {
                        let length = plan.assemble(group, packet, out);
                        shared
                            .tun_for(&out[VNET_HDR_LEN..length])
                            .write(&out[..length])
                    }
                });
            }
        } else {
            for index in 0..packets.len() {
                report(write(packet(index)));
            }
        }
        packets.clear();
        self.used = 0;
    }
}

fn answer_stun(shared: &DeviceState, packet: &[u8]) {
    let waiting = hearth_runtime::lock(&shared.stun);
    if let Some((transaction, sender)) = waiting.as_ref()
        && let Some(observed) = stun::parse_binding_response(packet, *transaction)
    {
        let _ = sender.try_send(observed);
    }
}

/// Decrypts `datagram` from `source` with the right peer's session and
/// answers handshakes. A packet to deliver is left at the start of `out`
/// and its length returned.
fn decrypt(shared: &DeviceState, datagram: &[u8], source: Source, out: &mut [u8]) -> Option<usize> {
    let address = match source {
        Source::Udp(address) => Some(address.ip()),
        Source::Relay { .. } | Source::PeerRelay { .. } => None,
    };
    // MAC1 first (and a cookie under load): a forged handshake costs a hash.
    let keys = shared.keys();
    let limiter = match source {
        Source::Udp(_) => &keys.handshakes,
        Source::Relay { .. } | Source::PeerRelay { .. } => &keys.relayed_handshakes,
    };
    let parsed = match limiter.verify_packet(address, datagram, out) {
        Ok(parsed) => parsed,
        Err(TunnResult::WriteToNetwork(cookie_reply)) => {
            if let Source::Udp(address) = source {
                shared.send(cookie_reply, address);
            }
            return None;
        }
        Err(_) => return None,
    };
    if let (Packet::HandshakeInit(_), Some(ip)) = (&parsed, address)
        && !hearth_runtime::lock(&shared.budget).allow(ip, Instant::now())
    {
        return None;
    }
    // The peer, and the receiver index the packet is for (none: a new
    // handshake, always for the current tunnel).
    let (peer, index) = {
        let table = shared.peers();
        let by_index = |index: u32| {
            table
                .by_index
                .get(&(index >> 8))
                .cloned()
                .map(|peer| (peer, Some(index >> 8)))
        };
        match parsed {
            Packet::HandshakeInit(init) => parse_handshake_anon(&keys.private, &keys.public, &init)
                .ok()
                .and_then(|half| table.by_key.get(&half.peer_static_public).cloned())
                .map(|peer| (peer, None)),
            Packet::HandshakeResponse(response) => by_index(response.receiver_idx),
            Packet::PacketCookieReply(cookie) => by_index(cookie.receiver_idx),
            Packet::PacketData(data) => by_index(data.receiver_idx),
        }
        .map_or((None, None), |(peer, index)| (Some(peer), index))
    };
    let peer = peer?;
    let current = index.is_none_or(|index| index == peer.index.load(Ordering::Relaxed));
    // A relay vouches for the sender's key: it must be this peer's (or, on
    // the retiring session, its old key's).
    if let Source::Relay { key, .. } = source
        && !peer.knows_key(&key)
    {
        return None;
    }
    if !current {
        return decrypt_retiring(shared, &peer, index, datagram, address, out);
    }
    let reply_to = |datagram: &[u8]| match source {
        Source::Udp(address) => shared.send(datagram, address),
        Source::PeerRelay { address, vni } => {
            shared.send_geneve(address, vni, geneve::PROTOCOL_WIREGUARD, false, datagram)
        }
        Source::Relay { region, key } => shared.send_relayed(region, key, datagram),
    };
    let mut tunnel = hearth_runtime::lock(&peer.tunnel);
    let delivered = match tunnel.decapsulate(address, datagram, out) {
        TunnResult::WriteToNetwork(reply) => {
            reply_to(reply);
            // Packets queued while the handshake was in flight go out now,
            // on the peer's path.
            let mut flush = vec![0u8; BUFFER];
            while let TunnResult::WriteToNetwork(queued) = tunnel.decapsulate(None, &[], &mut flush)
            {
                shared.send_to_peer(&peer, queued);
            }
            None
        }
        TunnResult::WriteToTunnelV4(packet, from) => Some((packet.len(), IpAddr::V4(from))),
        TunnResult::WriteToTunnelV6(packet, from) => Some((packet.len(), IpAddr::V6(from))),
        TunnResult::Done => None,
        TunnResult::Err(error) => {
            tracing::trace!(?error, "packet rejected");
            return None;
        }
    };
    drop(tunnel);
    // An authenticated packet: a plain WireGuard peer is reachable where it
    // came from (roaming). Disco peers' paths are disco's to choose; one
    // that came over the direct path shows that path carries WireGuard.
    match source {
        Source::Udp(address) => {
            if !peer.disco.load(Ordering::Relaxed) {
                if *hearth_runtime::read(&peer.endpoint) != Some(address) {
                    *hearth_runtime::write(&peer.endpoint) = Some(address);
                }
            } else if *hearth_runtime::read(&peer.route) == Target::Udp(address) {
                peer.direct_heard.fetch_add(1, Ordering::Relaxed);
            }
        }
        Source::PeerRelay { .. } => {
            peer.relayed_heard.fetch_add(1, Ordering::Relaxed);
            peer.peer_relay_heard.fetch_add(1, Ordering::Relaxed);
        }
        Source::Relay { .. } => {
            peer.relayed_heard.fetch_add(1, Ordering::Relaxed);
        }
    }
    let (length, from) = delivered?;
    if !owns_source(&shared.peers().by_address, &peer, from) {
        return None;
    }
    shared.note_traffic(&peer);
    Some(length)
}

/// Decrypts a packet for `peer`'s retiring session (receiver `index`) into
/// `out`; returns its length if it is to be delivered.
fn decrypt_retiring(
    shared: &DeviceState,
    peer: &Arc<PeerState>,
    index: Option<u32>,
    datagram: &[u8],
    address: Option<IpAddr>,
    out: &mut [u8],
) -> Option<usize> {
    let mut retiring = hearth_runtime::lock(&peer.retiring);
    let old = retiring.as_mut().filter(|old| Some(old.index) == index)?;
    let (length, from) = match old.tunnel.decapsulate(address, datagram, out) {
        TunnResult::WriteToTunnelV4(packet, from) => (packet.len(), IpAddr::V4(from)),
        TunnResult::WriteToTunnelV6(packet, from) => (packet.len(), IpAddr::V6(from)),
        _ => return None,
    };
    drop(retiring);
    if !owns_source(&shared.peers().by_address, peer, from) {
        return None;
    }
    shared.note_traffic(peer);
    Some(length)
}

/// Whether `peer` may send a packet from `source`: it must be the peer whose
/// allowed IPs hold `source` most specifically.
fn owns_source<T>(routes: &AllowedIps<Arc<T>>, peer: &Arc<T>, source: IpAddr) -> bool {
    routes
        .find(source)
        .is_some_and(|owner| Arc::ptr_eq(owner, peer))
}

/// Runs every peer's WireGuard timers (disco's are the plane's).
fn run_timers(shared: Arc<DeviceState>) {
    let mut out = vec![0u8; BUFFER];
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(TIMER_TICK);
        // Both count per second; each resets itself once a second has passed.
        shared.keys().handshakes.reset_count();
        hearth_runtime::lock(&shared.budget).forget_idle(Instant::now());
        let peers: Vec<Arc<PeerState>> = shared.peers().by_key.values().cloned().collect();
        let mut retired = Vec::new();
        for peer in peers {
            let mut tunnel = hearth_runtime::lock(&peer.tunnel);
            if let TunnResult::WriteToNetwork(datagram) = tunnel.update_timers(&mut out) {
                shared.send_to_peer(&peer, datagram);
            }
            // A retiring session goes once the new one exists.
            let mut retiring = hearth_runtime::lock(&peer.retiring);
            if retiring
                .as_ref()
                .is_some_and(|old| has_session(&tunnel) || old.since.elapsed() > RETIRING_FOR)
                && let Some(old) = retiring.take()
            {
                retired.push((old.index, peer.key));
            }
        }
        if !retired.is_empty() {
            let mut table = hearth_runtime::write(&shared.peers);
            for (index, _) in &retired {
                table.by_index.remove(index);
            }
        }
        for (_, key) in retired {
            shared.plane.tell(Input::RetireKey(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_route_cannot_send_as_the_owner_of_a_narrower_one() {
        let router = Arc::new("router");
        let member = Arc::new("member");
        let mut routes = AllowedIps::new();
        // The router claims the whole mesh /24; the member owns one /32 in it.
        routes.insert("100.64.0.0".parse().unwrap(), 24, Arc::clone(&router));
        routes.insert("100.64.0.2".parse().unwrap(), 32, Arc::clone(&member));
        let spoofed: IpAddr = "100.64.0.2".parse().unwrap();
        assert!(
            !owns_source(&routes, &router, spoofed),
            "the member's address is the member's"
        );
        assert!(owns_source(&routes, &member, spoofed));
        assert!(owns_source(&routes, &router, "100.64.0.9".parse().unwrap()));
        assert!(!owns_source(&routes, &member, "10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn stun_answers_and_wireguard_messages_are_told_apart() {
        let answer = stun::binding_response([7; 12], "198.18.0.1:41641".parse().unwrap());
        assert!(looks_like_stun_answer(&answer));
        let mut wireguard = [0u8; 148];
        wireguard[0] = 1;
        assert!(!looks_like_stun_answer(&wireguard));
        assert!(!looks_like_stun_answer(&stun::binding_request([7; 12])));
    }
}
