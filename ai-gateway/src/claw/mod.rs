//! OpenClaw's gateway protocol, so that OpenClaw's own clients (its CLI,
//! `openclaw tui`, the Control UI, the apps) work against Hearth: one
//! WebSocket on the gateway's port, JSON `req`/`res`/`event` frames
//! ([`wire`]), a `connect` answering a one-time challenge with an Ed25519
//! device proof ([`device`]), devices paired by the admin from Hearth's
//! CLI and bound to a member ([`pairing`]), then the methods a household
//! uses ([`methods`]), the member's assistant answering as on Hearth's own
//! page. This module is the connection's IO shell.

pub mod cron;
pub mod device;
pub mod devices;
pub mod methods;
pub mod pairing;
pub mod socket;
pub mod wire;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;

use crate::caller::{Auth, Caller};
use crate::gateway::Gateway;
use device::{Connect, Device};
use pairing::{Admission, Origin, Paired, Pairing, Principal};
use wire::{ErrorShape, Request};

/// How long a client has to answer the challenge.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames queued for a client before it counts as too slow and is closed.
const OUTBOUND_FRAMES: usize = 4096;
/// Requests running at once on one connection.
const CONCURRENT_REQUESTS: usize = 16;

/// Connections one address may open a minute (each may ask to pair).
const CONNECTS_PER_MINUTE: u32 = 30;

/// What every OpenClaw connection shares: the paired devices, the runs in
/// progress (for `chat.abort`), the per-device rate, the per-address rate
/// of connections, and the pairings' changes (which end connections of a
/// device removed or paired again).
pub struct Claw {
    /// Paired devices and waiting requests.
    pub pairing: Pairing,
    runs: std::sync::Mutex<HashMap<String, Run>>,
    rate: DefaultKeyedRateLimiter<String>,
    connects: DefaultKeyedRateLimiter<IpAddr>,
    paired_changes: tokio::sync::watch::Sender<u64>,
}

struct Run {
    owner: String,
    session_key: String,
    connection: u64,
    stop: CancellationToken,
}

impl Claw {
    /// The protocol's state over `pool`, `per_minute` requests allowed per device.
    pub fn new(pool: sqlx::SqlitePool, per_minute: u32) -> Claw {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        let connects = NonZeroU32::new(CONNECTS_PER_MINUTE).expect("non-zero");
        Claw {
            pairing: Pairing::new(pool),
            runs: std::sync::Mutex::new(HashMap::new()),
            rate: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            connects: DefaultKeyedRateLimiter::keyed(Quota::per_minute(connects)),
            paired_changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// The paired devices changed (approved, removed): connections check
    /// that their device is still paired as it was.
    pub fn paired_changed(&self) {
        self.paired_changes
            .send_modify(|generation| *generation += 1);
    }

    /// Approves the waiting request `request_id`, bound to `member` (else
    /// the member whose device asked): the one use case behind Hearth's
    /// `hearth-gateway devices approve` and OpenClaw's `device.pair.approve`.
    /// Connections of that device check their standing again.
    pub async fn approve(
        &self,
        request_id: &str,
        member: Option<&str>,
    ) -> Result<Paired, pairing::ApproveError> {
        let now = jiff::Timestamp::now().as_second();
        let paired = self.pairing.approve(request_id, member, now).await?;
        tracing::info!(device = %paired.device_id, member = ?paired.member, "an OpenClaw client's device is paired");
        self.paired_changed();
        Ok(paired)
    }

    /// Refuses the waiting request `request_id`: the device it was for, if
    /// there was one (it may ask again, and waits again).
    pub async fn reject(&self, request_id: &str) -> Result<Option<String>, sqlx::Error> {
        let device = self.pairing.reject(request_id).await?;
        if let Some(device) = &device {
            tracing::info!(%device, "an OpenClaw client's pairing request is refused");
        }
        Ok(device)
    }

    /// Removes a paired device (by its id) or a waiting request (by its
    /// id); whether there was one. Its open connections end with it.
    pub async fn remove(&self, id: &str) -> Result<bool, sqlx::Error> {
        let removed = self.pairing.remove(id).await?;
        self.paired_changed();
        Ok(removed)
    }

    /// Whether `address` may open another connection now.
    fn may_connect(&self, address: IpAddr) -> bool {
        self.connects.check_key(&address.to_canonical()).is_ok()
    }

    /// Whether `device` may make another request now; if not, when.
    fn check_rate(&self, device: &str) -> Result<(), u64> {
        self.rate
            .check_key(&device.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
            })
    }

    fn start_run(
        &self,
        run_id: &str,
        owner: &str,
        session_key: &str,
        connection: u64,
    ) -> CancellationToken {
        let stop = CancellationToken::new();
        hearth_runtime::lock(&self.runs).insert(
            run_id.to_owned(),
            Run {
                owner: owner.to_owned(),
                session_key: session_key.to_owned(),
                connection,
                stop: stop.clone(),
            },
        );
        stop
    }

    /// Stops every run of connection `connection` (its device lost its standing).
    fn stop_runs_of(&self, connection: u64) {
        for run in hearth_runtime::lock(&self.runs).values() {
            if run.connection == connection {
                run.stop.cancel();
            }
        }
    }

    fn end_run(&self, run_id: &str) {
        hearth_runtime::lock(&self.runs).remove(run_id);
    }

    /// Stops `owner`'s runs in `session_key` (only `run_id` if given); which.
    fn abort(&self, owner: &str, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let runs = hearth_runtime::lock(&self.runs);
        runs.iter()
            .filter(|(id, run)| {
                run.owner == owner
                    && run.session_key == session_key
                    && run_id.is_none_or(|wanted| wanted == id.as_str())
            })
            .map(|(id, run)| {
                run.stop.cancel();
                id.clone()
            })
            .collect()
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

/// Who is on the other end before `connect`: the mesh's word on the
/// connecting address (or none), and whether an unauthenticated local
/// caller is every local user (no token configured, loopback only).
pub struct Peer {
    /// The connecting address.
    pub address: IpAddr,
    /// The caller as the mesh names it, if a mesh device.
    pub mesh: Option<Caller>,
    /// No secret is configured and this is loopback: a local caller holds
    /// what the token would give.
    pub local_open: bool,
}

/// One connection, after `hello-ok`.
pub(crate) struct Connection {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) claw: Arc<Claw>,
    pub(crate) caller: Caller,
    pub(crate) principal: Principal,
    /// Rate and runs are counted by this key (the device, or the admin).
    pub(crate) key: String,
    /// This connection, among the runs.
    pub(crate) id: u64,
    out: mpsc::Sender<String>,
    seq: std::sync::atomic::AtomicU64,
    closed: CancellationToken,
}

impl Connection {
    /// Queues a frame; a client too slow to take them is closed.
    pub(crate) fn send(&self, frame: String) {
        if self.out.try_send(frame).is_err() {
            self.closed.cancel();
        }
    }

    /// Queues a broadcast-style event with the connection's next `seq`.
    pub(crate) fn event(&self, name: &str, payload: Value) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.send(wire::event(name, payload, Some(seq)));
    }

    /// Whether the connection was granted `scope` (admin implies all).
    pub(crate) fn has(&self, scope: &str) -> bool {
        self.principal.scopes.iter().any(|held| {
            held == scope
                || held == "operator.admin"
                || (scope == "operator.read" && held == "operator.write")
        })
    }
}

/// What a connection was admitted as, to be checked again when the
/// pairings or the mesh change: it ends when they no longer say the same.
struct Standing {
    device: Option<(Device, Paired)>,
    mesh_device: Option<hearth_control::agent_api::WhoIs>,
    address: IpAddr,
}

impl Standing {
    /// Why the connection may not go on, if it may not.
    async fn lost(&self, gateway: &Gateway, claw: &Claw) -> Option<&'static str> {
        if let Some((device, paired)) = &self.device {
            match claw.pairing.paired(device).await {
                Ok(Some(now)) if now == *paired => {}
                Ok(_) => return Some("this device was removed or paired again"),
                Err(error) => tracing::warn!(%error, "the device store failed"),
            }
        }
        if let Some(mesh_device) = &self.mesh_device
            && !gateway.still_named(self.address, mesh_device).await
        {
            return Some("the mesh no longer names this device at its address");
        }
        None
    }
}

/// Serves one WebSocket until it closes.
pub async fn serve(
    mut socket: socket::Socket,
    budget: socket::Budget,
    gateway: Arc<Gateway>,
    claw: Arc<Claw>,
    peer: Peer,
    auth: Arc<Auth>,
) {
    if !claw.may_connect(peer.address) {
        let _ = socket
            .send(close(
                1013,
                "too many connections from this address; retry later",
            ))
            .await;
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let nonce = pairing::uuid_like();
    if sink
        .send(WsMessage::Text(wire::challenge(&nonce, now_ms()).into()))
        .await
        .is_err()
    {
        return;
    }
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.next()).await;
    let text = match first {
        Ok(Some(Ok(WsMessage::Text(text)))) => text,
        _ => return,
    };
    let request = match wire::parse_request(&text, wire::MAX_PREAUTH_BYTES) {
        Ok(request) if request.method == "connect" => request,
        Ok(request) => {
            let refused = ErrorShape::invalid("the first request must be connect");
            let _ = sink
                .send(WsMessage::Text(wire::error(&request.id, &refused).into()))
                .await;
            let _ = sink.send(close(1008, "connect first")).await;
            return;
        }
        Err(error) => {
            let _ = sink.send(close(1008, &error.to_string())).await;
            return;
        }
    };
    let outcome = handshake(&gateway, &claw, &peer, &auth, &request, &nonce).await;
    let (principal, caller, key, hello, device) = match outcome {
        Ok(admitted) => admitted,
        Err((refused, reason)) => {
            let _ = sink
                .send(WsMessage::Text(wire::error(&request.id, &refused).into()))
                .await;
            let _ = sink.send(close(1008, &reason)).await;
            return;
        }
    };
    if sink
        .send(WsMessage::Text(wire::ok(&request.id, hello).into()))
        .await
        .is_err()
    {
        return;
    }
    budget.lift();
    let standing = Standing {
        device,
        mesh_device: caller.device.clone(),
        address: peer.address,
    };
    let (out, mut outbound) = mpsc::channel::<String>(OUTBOUND_FRAMES);
    let closed = CancellationToken::new();
    // Why the server ended the connection, if it did: the close frame's reason.
    let ended = Arc::new(std::sync::Mutex::new(None::<&'static str>));
    let connection = Arc::new(Connection {
        gateway: Arc::clone(&gateway),
        claw: Arc::clone(&claw),
        caller,
        principal,
        key,
        id: rand::random(),
        out,
        seq: std::sync::atomic::AtomicU64::new(0),
        closed: closed.clone(),
    });
    let writer = tokio::spawn({
        let closed = closed.clone();
        let ended = Arc::clone(&ended);
        async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(wire::TICK_MS));
            ticks.tick().await;
            loop {
                tokio::select! {
                    () = closed.cancelled() => break,
                    frame = outbound.recv() => match frame {
                        Some(frame) => if sink.send(WsMessage::Text(frame.into())).await.is_err() { break },
                        None => break,
                    },
                    _ = ticks.tick() => {
                        let tick = wire::event("tick", json!({"ts": now_ms()}), None);
                        if sink.send(WsMessage::Text(tick.into())).await.is_err() { break }
                    }
                }
            }
            let reason = hearth_runtime::lock(&ended).take();
            let _ = match reason {
                Some(reason) => sink.send(close(1008, reason)).await,
                None => sink.send(close(1000, "")).await,
            };
        }
    });
    let mut paired_changes = claw.paired_changes.subscribe();
    let mut mesh_changes = gateway.mesh_changes();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
    loop {
        let message = tokio::select! {
            () = closed.cancelled() => break,
            changed = paired_changes.changed() => {
                if changed.is_ok() && let Some(reason) = standing.lost(&gateway, &claw).await {
                    tracing::info!(address = %peer.address, reason, "closing an OpenClaw connection");
                    *hearth_runtime::lock(&ended) = Some(reason);
                    break;
                }
                continue;
            }
            changed = async {
                match &mut mesh_changes {
                    Some(changes) => changes.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    mesh_changes = None;
                } else if let Some(reason) = standing.lost(&gateway, &claw).await {
                    tracing::info!(address = %peer.address, reason, "closing an OpenClaw connection");
                    *hearth_runtime::lock(&ended) = Some(reason);
                    break;
                }
                continue;
            }
            message = stream.next() => message,
        };
        let text = match message {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Binary(_))) => {
                connection.send(wire::event(
                    "error",
                    json!({"message": "frames are JSON text"}),
                    None,
                ));
                continue;
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
            _ => break,
        };
        let request = match wire::parse_request(&text, wire::MAX_PAYLOAD_BYTES) {
            Ok(request) => request,
            Err(wire::FrameError::TooLarge { .. }) => break,
            Err(error) => {
                connection.send(wire::event(
                    "error",
                    json!({"message": error.to_string()}),
                    None,
                ));
                continue;
            }
        };
        if let Err(wait) = connection.claw.check_rate(&connection.key) {
            connection.send(wire::error(&request.id, &ErrorShape::rate_limited(wait)));
            continue;
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            let busy = ErrorShape {
                retryable: Some(true),
                retry_after_ms: Some(250),
                ..ErrorShape::new(
                    wire::Code::Unavailable,
                    "too many requests running on this connection",
                )
            };
            connection.send(wire::error(&request.id, &busy));
            continue;
        };
        let connection = Arc::clone(&connection);
        tokio::spawn(async move {
            methods::call(&connection, request).await;
            drop(slot);
        });
    }
    // A connection ended for its device's standing stops its runs too (a
    // client that only went away leaves them to finish into its session).
    if hearth_runtime::lock(&ended).is_some() {
        connection.claw.stop_runs_of(connection.id);
    }
    closed.cancel();
    let _ = writer.await;
}

fn close(code: u16, reason: &str) -> WsMessage {
    // A close reason has at most 123 bytes.
    let mut reason = reason.to_owned();
    while reason.len() > 123 {
        reason.pop();
    }
    WsMessage::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }))
}

type Admitted = (Principal, Caller, String, Value, Option<(Device, Paired)>);

/// `connect`: the protocol, the secret, the device's proof, its pairing.
async fn handshake(
    gateway: &Arc<Gateway>,
    claw: &Claw,
    peer: &Peer,
    secret: &Auth,
    request: &Request,
    nonce: &str,
) -> Result<Admitted, (ErrorShape, String)> {
    let refuse = |shape: ErrorShape| {
        let reason = shape.message.clone();
        (shape, reason)
    };
    let connect = Connect::parse(&request.params).map_err(refuse)?;
    connect.check_protocol().map_err(refuse)?;
    if connect.role() != "operator" {
        return Err(refuse(ErrorShape::new(
            wire::Code::Forbidden,
            format!(
                "role {:?} is not served here: Hearth's gateway takes operator clients",
                connect.role()
            ),
        )));
    }
    let auth = connect.auth.clone().unwrap_or_default();
    let presented = [&auth.token, &auth.password]
        .into_iter()
        .flatten()
        .any(|given| secret.is_secret(given));
    let origin = Origin {
        token_holder: presented || peer.local_open,
        member: peer.mesh.as_ref().and_then(|caller| caller.user.clone()),
        tagged: peer
            .mesh
            .as_ref()
            .is_some_and(|caller| !caller.tags.is_empty()),
    };
    let requested = connect
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["operator.admin".to_owned()]);
    let proof = connect
        .device
        .is_some()
        .then(|| device::verify(&connect, nonce, now_ms()));
    let device = match proof {
        Some(Err(error)) => return Err(refuse(error.shape())),
        Some(Ok(device)) => Some(device),
        None => None,
    };
    let store_failed = |error: sqlx::Error| {
        tracing::error!(%error, "the device store failed");
        refuse(ErrorShape::new(
            wire::Code::Unavailable,
            "the device store failed",
        ))
    };
    let mut paired = match &device {
        Some(device) => claw.pairing.paired(device).await.map_err(store_failed)?,
        None => None,
    };
    let mut decision = pairing::admit(&origin, paired.as_ref(), device.is_some(), &requested);
    if decision == Admission::Pair {
        let device = device.as_ref().expect("only a proved device waits");
        let now = jiff::Timestamp::now().as_second();
        let request_id = claw
            .pairing
            .request(
                device,
                &origin,
                &requested,
                &connect.client.id,
                connect.client.platform.as_deref().unwrap_or(""),
                &peer.address.to_string(),
                now,
            )
            .await
            .map_err(|error| match error {
                pairing::RequestError::Store(error) => store_failed(error),
                refused => refuse(refused.shape()),
            })?;
        // As OpenClaw does, a device on this host holding the gateway's
        // token is paired at once (as the admin's): only others wait.
        if !(origin.token_holder && peer.address.is_loopback()) {
            tracing::info!(device = %device.id, %request_id, "an OpenClaw client's device waits for approval");
            let shape = pairing::pairing_required(&request_id, &device.id);
            let reason =
                format!("pairing required: device is not approved yet (requestId: {request_id})");
            return Err((shape, reason));
        }
        let admins = match claw.approve(&request_id, None).await {
            Ok(paired) => paired,
            Err(pairing::ApproveError::Store(error)) => return Err(store_failed(error)),
            Err(other) => return Err(refuse(ErrorShape::invalid(other.to_string()))),
        };
        tracing::info!(device = %device.id, "a local OpenClaw client holding the token is paired as the admin's");
        decision = pairing::admit(&origin, Some(&admins), true, &requested);
        paired = Some(admins);
    }
    let principal = match decision {
        Admission::Admit(principal) => principal,
        Admission::Refuse(shape) => return Err(refuse(shape)),
        // A paired device is never asked to pair again.
        Admission::Pair => {
            return Err(refuse(ErrorShape::new(
                wire::Code::Unavailable,
                "the device could not be paired",
            )));
        }
    };
    // A paired device's own token: checked when presented instead of the
    // shared one, issued (again) when not presented.
    let mut issued = None;
    if let (Some(device), Some(_)) = (&device, &paired) {
        let offered = auth
            .device_token
            .as_deref()
            .or(auth.token.as_deref().filter(|_| !presented));
        let holds = match offered {
            Some(offered) => claw
                .pairing
                .token_matches(&device.id, offered)
                .await
                .map_err(store_failed)?,
            None => None,
        };
        match (offered, holds) {
            (Some(_), Some(true)) => {}
            (Some(_), Some(false)) => {
                return Err(refuse(
                    ErrorShape::new(wire::Code::Forbidden, "device token mismatch")
                        .with_details(json!({"code": "AUTH_DEVICE_TOKEN_MISMATCH", "recommendedNextStep": "update_auth_credentials"})),
                ));
            }
            _ => {
                issued = Some(
                    claw.pairing
                        .issue_token(&device.id)
                        .await
                        .map_err(store_failed)?,
                )
            }
        }
    }
    let caller = match (&principal.member, &peer.mesh) {
        (Some(member), Some(mesh)) if mesh.user.as_deref() == Some(member.as_str()) => mesh.clone(),
        (Some(member), _) => Caller {
            user: Some(member.clone()),
            speaks_for_members: false,
            ..Caller::nobody(peer.address)
        },
        (None, _) => Caller {
            speaks_for_members: true,
            ..Caller::nobody(peer.address)
        },
    };
    let key = device
        .as_ref()
        .map_or_else(|| "admin".to_owned(), |device| device.id.clone());
    let mut auth_info = json!({"role": "operator", "scopes": principal.scopes, "method": if device.is_some() { "device" } else { "token" }});
    if let Some(issued) = &issued {
        auth_info["deviceToken"] = json!(issued.as_str());
    }
    let hello = methods::hello(gateway, &principal, auth_info);
    let standing = device.zip(paired);
    Ok((principal, caller, key, hello, standing))
}
