//! The DERP relay server, as Tailscale's clients and `hearth-agent` speak
//! it: after the login (`hearth_control::derp`) a client sends packets to
//! node keys and receives packets sent to its own. It runs inside the
//! coordinator (region 900) and, the same code, as a standalone relay
//! ([`standalone`]); the only difference is who answers "is this key an
//! admitted node?" ([`Admission`]).
//!
//! - Only keys of admitted nodes log in, and one that loses admission
//!   (deleted, expired, rejected) is disconnected within [`RECHECK`].
//! - Each client has a bounded queue; a full queue drops the packet
//!   (WireGuard retransmits) rather than slowing the sender.
//! - Each client may send [`Limits::bytes_per_second`] (after a burst):
//!   past that the relay stops reading from it, so its TCP connection slows
//!   down and a flooding client cannot take the relay from the others.
//! - Counters for `/metrics` ([`Metrics`]); no keys, addresses or payloads.

pub mod bucket;
pub mod standalone;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_control::derp::{self, kind};
use hearth_control::wire::WireGuardKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use bucket::Bucket;

/// Frames queued for one client before packets to it are dropped.
const QUEUE_DEPTH: usize = 512;
/// How often an idle client gets a keep-alive.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// Time a client has to log in after the upgrade.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connected client's admission is checked again: a node
/// deleted, expired or rejected loses the relay within this time.
pub const RECHECK: Duration = Duration::from_millis(500);

/// Who may use the relay: the keys of admitted nodes.
pub trait Admission: Send + Sync + 'static {
    /// Whether the node with WireGuard (node) key `key` is admitted now.
    fn admits(&self, key: &[u8; 32]) -> impl Future<Output = bool> + Send;
}

/// How much one client may send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Bytes a second one client may send through the relay (0: no limit).
    pub bytes_per_second: u64,
    /// Bytes it may send at once before the rate applies.
    pub burst_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // 200 Mbit/s a client: more than a household's uplink, well under
        // what two cores relay, so one client cannot starve the rest.
        Limits {
            bytes_per_second: 25 << 20,
            burst_bytes: 4 << 20,
        }
    }
}

/// What the relay counts (all since it started).
#[derive(Debug, Default)]
pub struct Metrics {
    logins: AtomicU64,
    refused: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_no_peer: AtomicU64,
    throttled: AtomicU64,
}

/// Connected clients by node key: the connection's number and its queue.
type Clients = HashMap<[u8; 32], (u64, mpsc::Sender<Bytes>)>;

/// A relay: its key, who is connected, its limits and counters.
pub struct Relay<A: Admission> {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    admission: Arc<A>,
    limits: Limits,
    next_connection: AtomicU64,
    clients: Mutex<Clients>,
    metrics: Metrics,
}

impl<A: Admission> Relay<A> {
    /// A relay with a fresh key (clients learn it at each login) that lets
    /// in whom `admission` admits.
    pub fn new(admission: Arc<A>, limits: Limits) -> Relay<A> {
        let secret = StaticSecret::random();
        let public = PublicKey::from(&secret).to_bytes();
        Relay {
            secret: Zeroizing::new(secret.to_bytes()),
            public,
            admission,
            limits,
            next_connection: AtomicU64::new(1),
            clients: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        hearth_runtime::lock(&self.clients)
    }

    /// The relay's public key (sent in the upgrade answer's headers too).
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.lock().len()
    }

    /// The counters in Prometheus's text format.
    pub fn render_metrics(&self) -> String {
        let metrics = &self.metrics;
        let counter = |name: &str, help: &str, value: &AtomicU64| {
            format!(
                "# HELP hearth_relay_{name} {help}\n# TYPE hearth_relay_{name} counter\nhearth_relay_{name} {}\n",
                value.load(Ordering::Relaxed)
            )
        };
        let mut text = format!(
            "# HELP hearth_relay_clients Clients connected now.\n# TYPE hearth_relay_clients gauge\nhearth_relay_clients {}\n",
            self.clients()
        );
        text += &counter("logins_total", "Logins of admitted nodes.", &metrics.logins);
        text += &counter(
            "logins_refused_total",
            "Logins refused (unknown or unadmitted keys, bad boxes).",
            &metrics.refused,
        );
        text += &counter(
            "packets_total",
            "Packets handed to a connected recipient's queue.",
            &metrics.packets,
        );
        text += &counter(
            "bytes_total",
            "Bytes of packets handed to recipients' queues.",
            &metrics.bytes,
        );
        text += &format!(
            "# HELP hearth_relay_dropped_total Packets not relayed, by reason.\n# TYPE hearth_relay_dropped_total counter\nhearth_relay_dropped_total{{reason=\"queue_full\"}} {}\nhearth_relay_dropped_total{{reason=\"no_peer\"}} {}\n",
            metrics.dropped_queue_full.load(Ordering::Relaxed),
            metrics.dropped_no_peer.load(Ordering::Relaxed),
        );
        text += &counter(
            "throttled_total",
            "Times a client sent past its rate and was read more slowly.",
            &metrics.throttled,
        );
        text
    }

    /// Serves one client on `io` (after the HTTP upgrade) until it leaves,
    /// is refused, or loses admission.
    pub async fn serve_client<S>(self: Arc<Self>, io: S) -> anyhow::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (reader, mut writer) = tokio::io::split(io);
        let mut reader = BufReader::new(reader);
        writer.write_all(&derp::server_key(&self.public)).await?;
        writer.flush().await?;
        let login = async {
            let (kind, payload) =
                tokio::time::timeout(LOGIN_TIMEOUT, read_frame(&mut reader, derp::MAX_INFO))
                    .await??;
            anyhow::ensure!(kind == kind::CLIENT_INFO, derp::DerpError::NotClientInfo);
            Ok::<_, anyhow::Error>(derp::open_client_info(&self.secret, &payload)?.0)
        };
        let client = match login.await {
            Ok(client) => client,
            Err(error) => {
                self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
        };
        if !self.admission.admits(&client).await {
            self.metrics.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(key = %WireGuardKey(client), "a relay login with a key of no admitted node was refused");
            return Ok(());
        }
        self.metrics.logins.fetch_add(1, Ordering::Relaxed);
        // Reachable before it is told it is in: a peer that hears the
        // client is connected and sends at once must find it (registered
        // after the greeting, such a packet was dropped as to nobody).
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (sender, mut receiver) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
        self.lock().insert(client, (connection, sender.clone()));
        let nonce: [u8; derp::NONCE_LEN] = rand::random();
        let greeted = async {
            writer
                .write_all(&derp::server_info(&self.secret, &client, &nonce))
                .await?;
            writer.flush().await
        }
        .await;
        if let Err(error) = greeted {
            self.forget(client, connection);
            return Err(error.into());
        }
        tracing::debug!(key = %WireGuardKey(client), "relay client connected");

        let writing = tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
            loop {
                let frame = tokio::select! {
                    frame = receiver.recv() => match frame {
                        Some(frame) => frame,
                        None => return,
                    },
                    _ = ticks.tick() => Bytes::from(derp::keep_alive()),
                };
                if writer.write_all(&frame).await.is_err() {
                    return;
                }
                // Frames queued meanwhile go out with the same flush.
                while let Ok(more) = receiver.try_recv() {
                    if writer.write_all(&more).await.is_err() {
                        return;
                    }
                }
                if writer.flush().await.is_err() {
                    return;
                }
            }
        });

        let outcome = self.relay_from(client, &mut reader, &sender).await;
        self.forget(client, connection);
        writing.abort();
        tracing::debug!(key = %WireGuardKey(client), "relay client disconnected");
        outcome
    }

    /// Takes `client` out of the map, unless a newer connection of its
    /// took its place.
    fn forget(&self, client: [u8; 32], connection: u64) {
        let mut clients = self.lock();
        if clients
            .get(&client)
            .is_some_and(|(id, _)| *id == connection)
        {
            clients.remove(&client);
        }
    }

    /// Reads `client`'s frames and relays its packets until it leaves or
    /// loses admission.
    async fn relay_from<R: tokio::io::AsyncRead + Unpin>(
        &self,
        client: [u8; 32],
        reader: &mut R,
        own_queue: &mpsc::Sender<Bytes>,
    ) -> anyhow::Result<()> {
        let mut recheck = tokio::time::interval(RECHECK);
        let mut bucket = Bucket::new(self.limits.bytes_per_second, self.limits.burst_bytes);
        let started = Instant::now();
        loop {
            // The read outlives the rechecks: dropping it half-way through
            // a frame (a recheck firing between a frame's TCP segments)
            // would lose the bytes it had read and put the connection out
            // of step.
            let frame = read_frame(reader, derp::MAX_FRAME);
            tokio::pin!(frame);
            let (kind, payload) = loop {
                tokio::select! {
                    frame = &mut frame => break frame?,
                    _ = recheck.tick() => {
                        if !self.admission.admits(&client).await {
                            tracing::info!(key = %WireGuardKey(client), "a node lost admission; its relay connection is closed");
                            return Ok(());
                        }
                    }
                }
            };
            if let Some(wait) =
                bucket.take((derp::HEADER_LEN + payload.len()) as u64, started.elapsed())
            {
                // Past its rate: stop reading for a while, so its TCP
                // window closes and the flood slows down at the source.
                self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
            match kind {
                kind::SEND_PACKET => {
                    let (destination, packet) = derp::split_send(&payload)?;
                    let target = self
                        .lock()
                        .get(&destination)
                        .map(|(_, sender)| sender.clone());
                    match target {
                        Some(target) => {
                            let frame = Bytes::from(derp::recv_packet(&client, packet));
                            // A full queue drops the packet: the sender is not slowed.
                            if target.try_send(frame).is_ok() {
                                self.metrics.packets.fetch_add(1, Ordering::Relaxed);
                                self.metrics
                                    .bytes
                                    .fetch_add(packet.len() as u64, Ordering::Relaxed);
                            } else {
                                self.metrics
                                    .dropped_queue_full
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => {
                            self.metrics.dropped_no_peer.fetch_add(1, Ordering::Relaxed);
                            let _ = own_queue.try_send(Bytes::from(derp::peer_gone(
                                &destination,
                                derp::gone::NOT_HERE,
                            )));
                        }
                    }
                }
                kind::PING if payload.len() == 8 => {
                    let _ = own_queue.try_send(Bytes::from(derp::pong(&payload)));
                }
                _ => {} // keep-alives, preferred-relay notes, pongs
            }
        }
    }
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; derp::HEADER_LEN];
    reader.read_exact(&mut head).await?;
    let (kind, length) = derp::header(&head, limit)?.expect("a whole header was read");
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).await?;
    Ok((kind, payload))
}
