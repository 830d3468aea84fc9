//! The disco plane's IO: one thread ("wg-disco") owns the [`Plane`],
//! hands it what arrives (disco from the UDP thread and the relay client,
//! what the device's API changes, our peer relay's datagrams, the time),
//! sends what it asks to send and publishes each peer's route for the
//! packet threads. Nothing else touches the plane: the other threads put
//! [`Input`]s in its queue and wake it.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use hearth_control::geneve;

use super::io::{self, ReceiveBatch, SendBatch};
use super::{BUFFER, DeviceState, PeerState, RECEIVE_MESSAGES, SEND_ARENA, TIMER_TICK};
use crate::disco_plane::{DataSeen, PeerRelays, Plane, RouteChange, Transmit, Via};
use crate::paths::WireguardCounts;
use crate::peer_relay::server::Verdict;
use crate::plane::PeerConfig;

/// Inputs waiting for the plane, at most (disco beyond it is dropped).
const QUEUE: usize = 4096;

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

/// What the plane's thread is handed.
pub(super) enum Input {
    /// A disco message from `via`.
    Disco {
        via: Via,
        packet: Vec<u8>,
    },
    /// A peer relay's challenge to our bind for endpoint `vni`.
    Challenge {
        from: SocketAddr,
        vni: u32,
        packet: Vec<u8>,
    },
    SetPeer(Box<PeerConfig>),
    RemovePeer([u8; 32]),
    /// The peer's session under its old key is gone.
    RetireKey([u8; 32]),
    PeerRelays(PeerRelays),
    OwnEndpoints(Vec<SocketAddr>),
    NodeKey([u8; 32]),
    ProbeSize(usize),
    RelayAttached,
    /// Serve as a peer relay on this socket.
    ServeRelay(RelaySocket),
    RelayAddresses(Vec<SocketAddr>),
    /// Our relay's endpoints and clients.
    RelayStatus(SyncSender<Option<(usize, usize)>>),
    /// Answered once everything queued before it is done and published.
    Barrier(SyncSender<()>),
}

/// The other threads' way to the plane.
pub(super) struct PlaneHandle {
    inputs: SyncSender<Input>,
    wake: UnixStream,
}

/// The plane's end of its queue.
pub(super) struct PlaneInbox {
    inputs: Receiver<Input>,
    wake: UnixStream,
}

/// A queue to the plane's thread and the means to wake it.
pub(super) fn channel() -> std::io::Result<(PlaneHandle, PlaneInbox)> {
    let (inputs, receiver) = std::sync::mpsc::sync_channel(QUEUE);
    let (wake, woken) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    woken.set_nonblocking(true)?;
    Ok((
        PlaneHandle { inputs, wake },
        PlaneInbox {
            inputs: receiver,
            wake: woken,
        },
    ))
}

impl PlaneHandle {
    fn wake(&self) {
        // A full socket already holds a wake-up.
        let _ = (&self.wake).write(&[1]);
    }

    /// Queues a change (waits for room: changes are never dropped).
    pub(super) fn tell(&self, input: Input) {
        if self.inputs.send(input).is_ok() {
            self.wake();
        }
    }

    /// Queues a packet, or drops it if the queue is full.
    pub(super) fn offer(&self, input: Input) {
        match self.inputs.try_send(input) {
            Ok(()) => self.wake(),
            Err(TrySendError::Full(_)) => tracing::trace!("disco queue full: a packet dropped"),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Returns once everything told before is done and published.
    pub(super) fn settle(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.tell(Input::Barrier(done));
        let _ = wait.recv();
    }

    /// Our relay's endpoints and the peers that may use it.
    pub(super) fn relay_status(&self) -> Option<(usize, usize)> {
        let (reply, wait) = std::sync::mpsc::sync_channel(1);
        self.tell(Input::RelayStatus(reply));
        wait.recv().ok().flatten()
    }
}

/// Our peer relay's socket (the relay port, like `tailscale set
/// --relay-server-port`).
pub(super) struct RelaySocket {
    socket: UdpSocket,
    dual_stack: bool,
    gso: bool,
    /// Its port.
    pub(super) port: u16,
}

impl RelaySocket {
    /// Binds the relay's socket on `port` (0: any).
    pub(super) fn bind(port: u16) -> std::io::Result<RelaySocket> {
        let socket = super::bind_udp(port)?;
        let (gso, _gro) = io::udp_offloads(&socket, !super::Offloads::disabled_by_environment());
        let local = socket.local_addr()?;
        Ok(RelaySocket {
            socket,
            dual_stack: local.is_ipv6(),
            gso,
            port: local.port(),
        })
    }

    fn send(&self, datagram: &[u8], to: SocketAddr) {
        let to = io::socket_address_for(to, self.dual_stack);
        if let Err(error) = self.socket.send_to(datagram, to) {
            tracing::trace!(%error, %to, "peer relay send failed");
        }
    }
}

/// Waits up to `timeout` for a wake-up or a datagram for our relay;
/// which came.
fn wait(wake: &UnixStream, relay: Option<&RelaySocket>, timeout: Duration) -> (bool, bool) {
    let relay = relay.map_or(-1, |relay| relay.socket.as_raw_fd());
    let [woken, relay] = io::wait_either([wake.as_raw_fd(), relay], timeout);
    (woken, relay)
}

/// The plane's thread: runs until the device stops.
pub(super) fn run(shared: Arc<DeviceState>, mut plane: Plane, inbox: PlaneInbox) {
    let mut relay: Option<RelaySocket> = None;
    let mut receive = ReceiveBatch::new(RECEIVE_MESSAGES, BUFFER);
    let mut forward = SendBatch::new(SEND_ARENA, false);
    let mut next_tick = shared.now() + TIMER_TICK;
    while !shared.stop.load(Ordering::Relaxed) {
        let (woken, relay_ready) = wait(
            &inbox.wake,
            relay.as_ref(),
            next_tick.saturating_sub(shared.now()),
        );
        if woken {
            let mut drained = [0u8; 64];
            while matches!((&inbox.wake).read(&mut drained), Ok(read) if read > 0) {}
        }
        while let Ok(input) = inbox.inputs.try_recv() {
            if let Input::ServeRelay(socket) = input {
                forward = SendBatch::new(SEND_ARENA, socket.gso);
                relay = Some(socket);
                plane.serve_relay();
                continue;
            }
            handle(&shared, &mut plane, input);
            flush(&shared, &mut plane);
        }
        if relay_ready && let Some(relay) = &relay {
            forward_relayed(&shared, &mut plane, relay, &mut receive, &mut forward);
        }
        let now = shared.now();
        if now >= next_tick {
            next_tick = now + TIMER_TICK;
            tick(&shared, &mut plane, now);
        }
    }
}

/// Hands `input` to the plane.
fn handle(shared: &DeviceState, plane: &mut Plane, input: Input) {
    let now = shared.now();
    match input {
        Input::Disco { via, packet } => plane.handle_disco(via, &packet, now),
        Input::Challenge { from, vni, packet } => plane.handle_challenge(from, vni, &packet, now),
        Input::SetPeer(config) => plane.set_peer(&config, now),
        Input::RemovePeer(key) => {
            plane.remove_peer(&key);
        }
        Input::RetireKey(key) => plane.retire_key(&key),
        Input::PeerRelays(relays) => plane.set_peer_relays(relays),
        Input::OwnEndpoints(endpoints) => plane.set_own_endpoints(endpoints),
        Input::NodeKey(key) => plane.set_node_key(key),
        Input::ProbeSize(size) => plane.set_probe_size(size),
        Input::RelayAttached => plane.set_relay_attached(true),
        Input::ServeRelay(_) => {}
        Input::RelayAddresses(addresses) => plane.set_relay_addresses(addresses),
        Input::RelayStatus(reply) => {
            let _ = reply.try_send(plane.relay_status());
        }
        Input::Barrier(done) => {
            flush(shared, plane);
            let _ = done.try_send(());
        }
    }
}

/// Tells the plane what the data plane saw of each peer, lets time pass,
/// and publishes each peer's round trip.
fn tick(shared: &DeviceState, plane: &mut Plane, now: Duration) {
    let peers: Vec<Arc<PeerState>> = {
        let table = shared.peers();
        plane
            .peer_keys()
            .iter()
            .filter_map(|key| table.by_key.get(key).cloned())
            .collect()
    };
    for peer in &peers {
        plane.note_data(&peer.key, seen(peer), now);
    }
    plane.handle_timeout(now);
    flush(shared, plane);
    for peer in &peers {
        publish_rtt(plane, peer, now);
    }
}

/// What the packet threads counted of `peer`.
fn seen(peer: &PeerState) -> DataSeen {
    let last = peer.last_traffic.load(Ordering::Relaxed);
    DataSeen {
        counts: WireguardCounts {
            sent: peer.direct_sent.load(Ordering::Relaxed),
            heard: peer.direct_heard.load(Ordering::Relaxed),
            relayed: peer.relayed_heard.load(Ordering::Relaxed),
            peer_relay_sent: peer.peer_relay_sent.load(Ordering::Relaxed),
            peer_relay_heard: peer.peer_relay_heard.load(Ordering::Relaxed),
        },
        last_traffic: (last > 0).then(|| Duration::from_millis(last - 1)),
    }
}

fn publish_rtt(plane: &Plane, peer: &PeerState, now: Duration) {
    let rtt = plane
        .path_of(&peer.key, now)
        .and_then(|(_, rtt)| rtt)
        .map_or(u64::MAX, |rtt| rtt.as_micros() as u64);
    peer.rtt_us.store(rtt, Ordering::Relaxed);
}

/// Sends what the plane asks to send and publishes the routes it changed.
fn flush(shared: &DeviceState, plane: &mut Plane) {
    while let Some(transmit) = plane.poll_transmit() {
        send(shared, transmit);
    }
    let now = shared.now();
    while let Some(RouteChange {
        peer,
        target,
        became_direct,
    }) = plane.poll_route()
    {
        let Some(peer) = shared.peers().by_key.get(&peer).cloned() else {
            continue;
        };
        *hearth_runtime::write(&peer.route) = target;
        publish_rtt(plane, &peer, now);
        if became_direct {
            resend_handshake(shared, &peer);
        }
    }
}

/// Sends one disco message. A ping padded to a full WireGuard packet goes
/// only where this machine's route carries one whole.
fn send(shared: &DeviceState, transmit: Transmit) {
    match transmit {
        Transmit::Udp { to, packet, probe } => {
            if !probe || fits_full_size(packet.len(), to) {
                shared.send(&packet, to);
            }
        }
        Transmit::Geneve {
            to,
            vni,
            control,
            packet,
            probe,
        } => {
            if !probe || fits_full_size(packet.len() + geneve::HEADER_LEN, to) {
                shared.send_geneve(to, vni, geneve::PROTOCOL_DISCO, control, &packet);
            }
        }
        Transmit::Relay { region, to, packet } => shared.send_relayed(region, to, &packet),
    }
}

/// Whether a datagram of `size` bytes goes to `to` whole: this machine's
/// route there carries it without fragmenting (a route into another
/// tunnel, or over a link of a smaller MTU, would cut every full-size
/// WireGuard packet, and a batch of them sent at once is refused). A
/// route whose MTU is unknown is left to the probe.
fn fits_full_size(size: usize, to: SocketAddr) -> bool {
    let fits = io::route_mtu(to).is_none_or(|mtu| size + io::udp_overhead(to) <= mtu);
    if !fits {
        tracing::debug!(%to, "not probed: this machine's route there is smaller than a full WireGuard packet");
    }
    fits
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

/// Receives what waits on our relay's socket and forwards it in batches
/// (GSO runs when the kernel offers them).
fn forward_relayed(
    shared: &DeviceState,
    plane: &mut Plane,
    relay: &RelaySocket,
    receive: &mut ReceiveBatch,
    send: &mut SendBatch,
) {
    let Ok(count) = receive.receive(&relay.socket) else {
        return; // a transient error
    };
    let now = shared.now();
    for index in 0..count {
        let Some((datagrams, source)) = receive.datagrams(index) else {
            continue;
        };
        for datagram in datagrams {
            match plane.handle_relay_datagram(source, datagram, now) {
                Verdict::Forward(to) => {
                    if send.needs_flush(datagram.len()) {
                        send.flush(&relay.socket, relay.dual_stack);
                    }
                    send.room()[..datagram.len()].copy_from_slice(datagram);
                    send.commit(datagram.len(), to);
                }
                Verdict::Reply(reply, to) => relay.send(&reply, to),
                Verdict::Drop => {}
            }
        }
    }
    send.flush(&relay.socket, relay.dual_stack);
}
