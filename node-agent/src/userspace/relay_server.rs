//! This device as a peer relay: its own UDP socket (the relay port, like
//! `tailscale set --relay-server-port`), a thread that hands each datagram
//! to [`Server`] and forwards in batches (GSO runs when the kernel offers
//! them), and the allocation requests that arrive as disco through DERP
//! ([`super::disco`]).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::peer_relay::server::{Server, Verdict};

use super::io::{self, ReceiveBatch, SendBatch};
use super::{BUFFER, DeviceState, RECEIVE_MESSAGES, SEND_ARENA};

/// How often endpoints are checked for expiry.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// A running peer relay.
pub(super) struct RelayServer {
    pub(super) server: Mutex<Server>,
    socket: UdpSocket,
    dual_stack: bool,
    gso: bool,
    pub(super) port: u16,
    origin: Instant,
}

impl RelayServer {
    /// Binds the relay's socket on `port` (0: any) with a fresh disco key.
    pub(super) fn bind(port: u16) -> std::io::Result<RelayServer> {
        let socket = super::bind_udp(port)?;
        let (gso, _gro) = io::udp_offloads(&socket, !super::Offloads::disabled_by_environment());
        let local = socket.local_addr()?;
        Ok(RelayServer {
            server: Mutex::new(Server::new(rand::random(), rand::random())),
            socket,
            dual_stack: local.is_ipv6(),
            gso,
            port: local.port(),
            origin: Instant::now(),
        })
    }

    pub(super) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn send(&self, datagram: &[u8], to: SocketAddr) {
        let to = io::socket_address_for(to, self.dual_stack);
        if let Err(error) = self.socket.send_to(datagram, to) {
            tracing::trace!(%error, %to, "peer relay send failed");
        }
    }
}

/// Receives datagrams for the relay's endpoints and forwards them, until
/// the device stops.
pub(super) fn run(shared: Arc<DeviceState>, relay: Arc<RelayServer>) {
    let mut receive = ReceiveBatch::new(RECEIVE_MESSAGES, BUFFER);
    let mut send = SendBatch::new(SEND_ARENA, relay.gso);
    let mut last_expiry = Duration::ZERO;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = relay.now();
        if now.saturating_sub(last_expiry) >= EXPIRE_EVERY {
            last_expiry = now;
            hearth_runtime::lock(&relay.server).expire(now);
        }
        let count = match receive.receive(&relay.socket) {
            Ok(count) => count,
            Err(_) => continue, // the poll timeout, or a transient error
        };
        let mut server = hearth_runtime::lock(&relay.server);
        for index in 0..count {
            let Some((datagrams, source)) = receive.datagrams(index) else {
                continue;
            };
            for datagram in datagrams {
                match server.handle(source, datagram, now) {
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
        drop(server);
        send.flush(&relay.socket, relay.dual_stack);
    }
}
