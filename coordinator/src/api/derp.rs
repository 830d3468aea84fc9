//! The DERP relay embedded in the coordinator (`GET /derp` with `Upgrade:
//! DERP` on the HTTPS listener), as official Tailscale clients speak it:
//! after the login (`hearth_control::derp`) a client sends packets to node
//! keys and receives packets sent to its own. Only node keys of admitted
//! nodes may log in, and one that loses admission (deleted, expired,
//! rejected) is disconnected within half a second. Each client has a
//! bounded queue; a full queue drops
//! the packet (WireGuard retransmits) rather than slowing the sender.
//!
//! Also `/derp/probe`, `/derp/latency-check` and `/generate_204`, which
//! clients use to measure the relay when UDP is blocked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hearth_control::derp::{self, kind};
use hearth_control::wire::WireGuardKey;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::coordinator::Coordinator;

/// Frames queued for one client before packets to it are dropped.
const QUEUE_DEPTH: usize = 512;
/// How often an idle client gets a keep-alive.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// Time a client has to log in after the upgrade.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connected client's admission is checked again: a node
/// deleted, expired or rejected loses the relay within this time.
const RECHECK: Duration = Duration::from_millis(500);

/// Connected clients by node key: the connection's number and its queue.
type Clients = HashMap<[u8; 32], (u64, mpsc::Sender<Bytes>)>;

/// The relay: its key and who is connected.
pub struct Relay {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    next_connection: AtomicU64,
    clients: Mutex<Clients>,
}

impl Relay {
    /// A relay with a fresh key (clients learn it at each login).
    pub fn new() -> Relay {
        let secret = StaticSecret::random();
        let public = PublicKey::from(&secret).to_bytes();
        Relay {
            secret: Zeroizing::new(secret.to_bytes()),
            public,
            next_connection: AtomicU64::new(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.lock().len()
    }
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

/// The relay's routes.
pub fn router(relay: Arc<Relay>, coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/derp", get(upgrade))
        .route("/derp/probe", get(|| async { StatusCode::OK }))
        .route("/derp/latency-check", get(|| async { StatusCode::OK }))
        .route("/generate_204", get(|| async { StatusCode::NO_CONTENT }))
        .with_state((relay, coordinator))
}

async fn upgrade(
    State((relay, coordinator)): State<(Arc<Relay>, Arc<Coordinator>)>,
    mut request: Request,
) -> Response {
    let asked = request
        .headers()
        .get("upgrade")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("derp"));
    if !asked {
        return (StatusCode::UPGRADE_REQUIRED, "DERP requires Upgrade: DERP").into_response();
    }
    let upgrading = hyper::upgrade::on(&mut request);
    let public = hex::encode(relay.public);
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => {
                if let Err(error) = serve_client(relay, coordinator, TokioIo::new(upgraded)).await {
                    tracing::debug!(%error, "a DERP client left");
                }
            }
            Err(error) => tracing::debug!(%error, "a DERP upgrade did not complete"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "DERP")
        .header("connection", "Upgrade")
        .header("derp-version", derp::PROTOCOL_VERSION.to_string())
        .header("derp-public-key", public)
        .body(axum::body::Body::empty())
        .expect("a fixed response builds")
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

async fn serve_client<S>(
    relay: Arc<Relay>,
    coordinator: Arc<Coordinator>,
    io: S,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (reader, mut writer) = tokio::io::split(io);
    let mut reader = BufReader::new(reader);
    writer.write_all(&derp::server_key(&relay.public)).await?;
    writer.flush().await?;
    let (kind, payload) =
        tokio::time::timeout(LOGIN_TIMEOUT, read_frame(&mut reader, derp::MAX_INFO)).await??;
    anyhow::ensure!(kind == kind::CLIENT_INFO, derp::DerpError::NotClientInfo);
    let (client, _info) = derp::open_client_info(&relay.secret, &payload)?;
    if !coordinator.admits_node_key(&WireGuardKey(client)).await {
        tracing::info!(key = %WireGuardKey(client), "a DERP login with a key of no admitted node was refused");
        return Ok(());
    }
    let nonce: [u8; derp::NONCE_LEN] = rand::random();
    writer
        .write_all(&derp::server_info(&relay.secret, &client, &nonce))
        .await?;
    writer.flush().await?;

    let connection = relay.next_connection.fetch_add(1, Ordering::Relaxed);
    let (sender, mut receiver) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
    relay.lock().insert(client, (connection, sender.clone()));
    tracing::debug!(key = %WireGuardKey(client), "DERP client connected");

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
            if writer.write_all(&frame).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    });

    let outcome = async {
        let mut recheck = tokio::time::interval(RECHECK);
        loop {
            let (kind, payload) = tokio::select! {
                frame = read_frame(&mut reader, derp::MAX_FRAME) => frame?,
                _ = recheck.tick() => {
                    if coordinator.admits_node_key(&WireGuardKey(client)).await {
                        continue;
                    }
                    tracing::info!(key = %WireGuardKey(client), "a node lost admission; its relay connection is closed");
                    return Ok(());
                }
            };
            match kind {
                kind::SEND_PACKET => {
                    let (destination, packet) = derp::split_send(&payload)?;
                    let target = relay
                        .lock()
                        .get(&destination)
                        .map(|(_, sender)| sender.clone());
                    match target {
                        Some(target) => {
                            // A full queue drops the packet: the sender is not slowed.
                            let _ =
                                target.try_send(Bytes::from(derp::recv_packet(&client, packet)));
                        }
                        None => {
                            let _ = sender.try_send(Bytes::from(derp::peer_gone(
                                &destination,
                                derp::gone::NOT_HERE,
                            )));
                        }
                    }
                }
                kind::PING if payload.len() == 8 => {
                    let _ = sender.try_send(Bytes::from(derp::pong(&payload)));
                }
                _ => {} // keep-alives, preferred-relay notes, pongs
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    }
    .await;

    {
        let mut clients = relay.lock();
        if clients
            .get(&client)
            .is_some_and(|(id, _)| *id == connection)
        {
            clients.remove(&client);
        }
    }
    writing.abort();
    tracing::debug!(key = %WireGuardKey(client), "DERP client disconnected");
    outcome
}
