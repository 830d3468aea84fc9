//! Userspace WireGuard: BoringTun's protocol core (`noise::Tunn`, from
//! defguard's fork, the one WireGuard implementation in the dependency tree)
//! driven by our own TUN and UDP loops.
//!
//! Three threads: TUN → encrypt → UDP, UDP → decrypt → TUN, and the protocol
//! timers (handshakes, keep-alives, re-keying). Peers can be changed in place
//! (endpoint, allowed IPs, keep-alive) without losing their session, and
//! removed or added at any time. Cryptokey routing is enforced both ways: a
//! packet goes to the peer whose allowed IPs hold its destination, and a
//! decrypted packet is delivered only if the sender is the peer whose allowed
//! IPs hold its source most specifically (longest prefix), as kernel
//! WireGuard does: a peer with a wide route cannot send as another member.
//!
//! Handshakes cost an X25519 each, so nothing of a handshake is computed
//! before its MAC1 (a keyed BLAKE2s only holders of our public key can make)
//! is checked: random packets cost a hash. Past a device-wide rate, initiators
//! must also echo a cookie bound to their address (WireGuard's cookie reply,
//! which the kernel and wireguard-go implement), and each source address has
//! its own handshake budget ([`crate::handshakes`]).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use defguard_boringtun::device::allowed_ips::AllowedIps;
use defguard_boringtun::device::tun::TunSocket;
use defguard_boringtun::noise::handshake::parse_handshake_anon;
use defguard_boringtun::noise::rate_limiter::RateLimiter;
use defguard_boringtun::noise::{Packet, Tunn, TunnResult};
use defguard_boringtun::x25519::{PublicKey, StaticSecret};
use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};

use crate::dataplane::{DataPlaneError, PeerConfig, PeerStats};
use crate::handshakes::SourceBudget;
use hearth_control::wire::WireGuardKey;

/// Largest datagram or packet handled.
const BUFFER: usize = 65_536;
/// How often the protocol timers run.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// How long the UDP loop blocks before checking for shutdown.
const UDP_POLL: Duration = Duration::from_millis(200);
/// Handshake messages per second (with a valid MAC1) the device takes before
/// it asks initiators for cookies (boringtun's and wireguard-go's choice).
const HANDSHAKES_BEFORE_COOKIES: u64 = 100;

struct PeerState {
    index: u32,
    tunnel: Mutex<Tunn>,
    endpoint: RwLock<Option<SocketAddr>>,
    allowed: RwLock<Vec<IpNet>>,
}

struct PeerTable {
    by_key: HashMap<[u8; 32], Arc<PeerState>>,
    by_index: HashMap<u32, Arc<PeerState>>,
    by_address: AllowedIps<Arc<PeerState>>,
    next_index: u32,
}

impl PeerTable {
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

/// What the device's three threads share: sockets, keys, peers, limiters.
struct DeviceState {
    tun: TunSocket,
    udp: UdpSocket,
    /// Whether `udp` is a dual-stack IPv6 socket (IPv4 peers are then
    /// addressed as IPv4-mapped IPv6).
    dual_stack: bool,
    private: StaticSecret,
    public: PublicKey,
    peers: RwLock<PeerTable>,
    /// MAC1 and cookie checks of every handshake message, before any DH.
    handshakes: RateLimiter,
    /// Handshake initiations per source address.
    budget: Mutex<SourceBudget>,
    stop: AtomicBool,
}

impl DeviceState {
    fn peers(&self) -> std::sync::RwLockReadGuard<'_, PeerTable> {
        hearth_runtime::read(&self.peers)
    }

    fn send(&self, datagram: &[u8], to: SocketAddr) {
        let to = match to {
            SocketAddr::V4(v4) if self.dual_stack => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => to,
        };
        if let Err(error) = self.udp.send_to(datagram, to) {
            tracing::trace!(%error, %to, "UDP send failed");
        }
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
        let tun = TunSocket::new(name)
            .and_then(TunSocket::set_non_blocking)
            .map_err(|error| device_error(format!("cannot create TUN device {name}: {error:?}")))?;
        let udp = bind_udp(port)
            .map_err(|error| device_error(format!("cannot bind UDP port {port}: {error}")))?;
        let local = udp.local_addr().map_err(device_error)?;
        let (listen_port, dual_stack) = (local.port(), local.is_ipv6());
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        let shared = Arc::new(DeviceState {
            tun,
            udp,
            dual_stack,
            private,
            public,
            peers: RwLock::new(PeerTable {
                by_key: HashMap::new(),
                by_index: HashMap::new(),
                by_address: AllowedIps::new(),
                next_index: rand::random::<u32>() & 0x00ff_ffff,
            }),
            handshakes: RateLimiter::new(&public, HANDSHAKES_BEFORE_COOKIES),
            budget: Mutex::new(SourceBudget::default()),
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        for (label, body) in [
            ("wg-tun", run_tun as fn(Arc<DeviceState>)),
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
        Ok(Device {
            shared,
            threads,
            listen_port,
        })
    }

    /// The UDP port in use.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Adds a peer or changes it in place (its session survives).
    pub fn set_peer(&self, config: &PeerConfig) -> Result<(), DataPlaneError> {
        let mut table = hearth_runtime::write(&self.shared.peers);
        if let Some(peer) = table.by_key.get(&config.key.0).cloned() {
            if let Some(endpoint) = config.endpoint {
                *hearth_runtime::write(&peer.endpoint) = Some(endpoint);
            }
            if hearth_runtime::read(&peer.allowed).clone() != config.allowed_ips {
                *hearth_runtime::write(&peer.allowed) = config.allowed_ips.clone();
                table.rebuild_routes();
            }
            // The keep-alive interval is fixed when a peer is added (BoringTun has no setter).
            return Ok(());
        }
        let index = table.next_index;
        table.next_index = (index + 1) & 0x00ff_ffff;
        let tunnel = Tunn::new(
            self.shared.private.clone(),
            PublicKey::from(config.key.0),
            None,
            config.keepalive,
            index,
            None,
        );
        let peer = Arc::new(PeerState {
            index,
            tunnel: Mutex::new(tunnel),
            endpoint: RwLock::new(config.endpoint),
            allowed: RwLock::new(config.allowed_ips.clone()),
        });
        for prefix in &config.allowed_ips {
            table.by_address.insert(
                prefix.addr(),
                u32::from(prefix.prefix_len()),
                Arc::clone(&peer),
            );
        }
        table.by_index.insert(index, Arc::clone(&peer));
        table.by_key.insert(config.key.0, peer);
        Ok(())
    }

    /// Removes a peer.
    pub fn remove_peer(&self, key: &WireGuardKey) -> Result<(), DataPlaneError> {
        let mut table = hearth_runtime::write(&self.shared.peers);
        if let Some(peer) = table.by_key.remove(&key.0) {
            table.by_index.remove(&peer.index);
            table.rebuild_routes();
        }
        Ok(())
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
                PeerStats {
                    key: WireGuardKey(*key),
                    endpoint: *hearth_runtime::read(&peer.endpoint),
                    last_handshake: since_handshake.and_then(|since| now.checked_sub(since)),
                    rx_bytes: rx_bytes as u64,
                    tx_bytes: tx_bytes as u64,
                }
            })
            .collect()
    }

    /// This device's public key.
    pub fn public_key(&self) -> WireGuardKey {
        WireGuardKey(self.shared.public.to_bytes())
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

/// Reads packets from the TUN device, encrypts them for the peer owning
/// their destination, sends them. The TUN fd is non-blocking; readiness
/// comes from a small tokio reactor on this thread.
fn run_tun(shared: Arc<DeviceState>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    else {
        tracing::error!("cannot start the TUN reactor");
        return;
    };
    runtime.block_on(async move {
        let descriptor = std::os::fd::AsRawFd::as_raw_fd(&shared.tun);
        // SAFETY: the descriptor belongs to `shared.tun`, which this thread
        // keeps alive (through `shared`) for as long as the registration
        // exists, and nothing closes or replaces it meanwhile. A `RawFd` has no
        // destructor, so dropping the registration leaves the descriptor open.
        #[allow(unsafe_code)]
        let registered = unsafe { tokio::io::unix::AsyncFd::register(descriptor) };
        let Ok(readiness) = registered else {
            tracing::error!("cannot watch the TUN device");
            return;
        };
        let mut packet = vec![0u8; BUFFER];
        let mut out = vec![0u8; BUFFER + 64];
        while !shared.stop.load(Ordering::Relaxed) {
            let Ok(Ok(mut guard)) = tokio::time::timeout(UDP_POLL, readiness.readable()).await
            else {
                continue;
            };
            loop {
                match shared.tun.read(&mut packet) {
                    Ok(read) => {
                        let length = read.len();
                        encrypt_and_send(&shared, &packet[..length], &mut out);
                    }
                    Err(defguard_boringtun::device::Error::IfaceRead(error))
                        if error.kind() == ErrorKind::WouldBlock =>
                    {
                        guard.clear_ready();
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(?error, "TUN read failed");
                        guard.clear_ready();
                        break;
                    }
                }
            }
        }
    });
}

fn encrypt_and_send(shared: &DeviceState, packet: &[u8], out: &mut [u8]) {
    let Some(destination) = Tunn::dst_address(packet) else {
        return;
    };
    let Some(peer) = shared.peers().by_address.find(destination).cloned() else {
        return;
    };
    let Some(endpoint) = *hearth_runtime::read(&peer.endpoint) else {
        return;
    };
    let mut tunnel = hearth_runtime::lock(&peer.tunnel);
    if let TunnResult::WriteToNetwork(datagram) = tunnel.encapsulate(packet, out) {
        shared.send(datagram, endpoint);
    }
}

/// Receives datagrams, decrypts them with the right peer's session and
/// writes allowed packets to the TUN device.
fn run_udp(shared: Arc<DeviceState>) {
    let mut datagram = vec![0u8; BUFFER];
    let mut out = vec![0u8; BUFFER];
    while !shared.stop.load(Ordering::Relaxed) {
        let (length, source) = match shared.udp.recv_from(&mut datagram) {
            Ok(received) => received,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "UDP receive failed");
                continue;
            }
        };
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        decrypt_and_deliver(&shared, &datagram[..length], source, &mut out);
    }
}

fn decrypt_and_deliver(shared: &DeviceState, datagram: &[u8], source: SocketAddr, out: &mut [u8]) {
    // MAC1 first (and a cookie under load): a forged handshake costs a hash.
    let parsed = match shared
        .handshakes
        .verify_packet(Some(source.ip()), datagram, out)
    {
        Ok(parsed) => parsed,
        Err(TunnResult::WriteToNetwork(cookie_reply)) => {
            shared.send(cookie_reply, source);
            return;
        }
        Err(_) => return,
    };
    if matches!(parsed, Packet::HandshakeInit(_))
        && !hearth_runtime::lock(&shared.budget).allow(source.ip(), std::time::Instant::now())
    {
        return;
    }
    let peer = {
        let table = shared.peers();
        match parsed {
            Packet::HandshakeInit(init) => {
                parse_handshake_anon(&shared.private, &shared.public, &init)
                    .ok()
                    .and_then(|half| table.by_key.get(&half.peer_static_public).cloned())
            }
            Packet::HandshakeResponse(response) => {
                table.by_index.get(&(response.receiver_idx >> 8)).cloned()
            }
            Packet::PacketCookieReply(cookie) => {
                table.by_index.get(&(cookie.receiver_idx >> 8)).cloned()
            }
            Packet::PacketData(data) => table.by_index.get(&(data.receiver_idx >> 8)).cloned(),
        }
    };
    let Some(peer) = peer else {
        return;
    };
    let mut tunnel = hearth_runtime::lock(&peer.tunnel);
    match tunnel.decapsulate(Some(source.ip()), datagram, out) {
        TunnResult::WriteToNetwork(reply) => {
            shared.send(reply, source);
            // Packets queued while the handshake was in flight go out now.
            let mut flush = vec![0u8; BUFFER];
            while let TunnResult::WriteToNetwork(queued) = tunnel.decapsulate(None, &[], &mut flush)
            {
                shared.send(queued, source);
            }
        }
        TunnResult::WriteToTunnelV4(packet, from) => {
            if owns_source(&shared.peers().by_address, &peer, IpAddr::V4(from)) {
                let _ = shared.tun.write4(packet);
            }
        }
        TunnResult::WriteToTunnelV6(packet, from) => {
            if owns_source(&shared.peers().by_address, &peer, IpAddr::V6(from)) {
                let _ = shared.tun.write6(packet);
            }
        }
        TunnResult::Done => {}
        TunnResult::Err(error) => {
            tracing::trace!(?error, "packet rejected");
            return;
        }
    }
    // An authenticated packet: the peer is reachable where it came from (roaming).
    if *hearth_runtime::read(&peer.endpoint) != Some(source) {
        *hearth_runtime::write(&peer.endpoint) = Some(source);
    }
}

/// Whether `peer` may send a packet from `source`: it must be the peer whose
/// allowed IPs hold `source` most specifically.
fn owns_source<T>(routes: &AllowedIps<Arc<T>>, peer: &Arc<T>, source: IpAddr) -> bool {
    routes
        .find(source)
        .is_some_and(|owner| Arc::ptr_eq(owner, peer))
}

/// Runs the protocol timers of every peer.
fn run_timers(shared: Arc<DeviceState>) {
    let mut out = vec![0u8; BUFFER];
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(TIMER_TICK);
        // Both count per second; each resets itself once a second has passed.
        shared.handshakes.reset_count();
        hearth_runtime::lock(&shared.budget).forget_idle(std::time::Instant::now());
        let peers: Vec<Arc<PeerState>> = shared.peers().by_key.values().cloned().collect();
        for peer in peers {
            let endpoint = *hearth_runtime::read(&peer.endpoint);
            let mut tunnel = hearth_runtime::lock(&peer.tunnel);
            if let TunnResult::WriteToNetwork(datagram) = tunnel.update_timers(&mut out)
                && let Some(endpoint) = endpoint
            {
                shared.send(datagram, endpoint);
            }
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
}
