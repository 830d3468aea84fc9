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
pub mod methods;
pub mod pairing;
pub mod wire;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::gateway::Gateway;
use device::Connect;
use pairing::{Admission, Origin, Pairing, Principal};
use wire::{ErrorShape, Request};

/// How long a client has to answer the challenge.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames queued for a client before it counts as too slow and is closed.
const OUTBOUND_FRAMES: usize = 4096;
/// Requests running at once on one connection.
const CONCURRENT_REQUESTS: usize = 16;

/// What every OpenClaw connection shares: the paired devices, the runs in
/// progress (for `chat.abort`), the per-device rate.
pub struct Claw {
    /// Paired devices and waiting requests.
    pub pairing: Pairing,
    runs: std::sync::Mutex<HashMap<String, Run>>,
    rate: DefaultKeyedRateLimiter<String>,
}

struct Run {
    owner: String,
    session_key: String,
    stop: CancellationToken,
}

impl Claw {
    /// The protocol's state over `pool`, `per_minute` requests allowed per device.
    pub fn new(pool: sqlx::SqlitePool, per_minute: u32) -> Claw {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Claw {
            pairing: Pairing::new(pool),
            runs: std::sync::Mutex::new(HashMap::new()),
            rate: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
        }
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

    fn start_run(&self, run_id: &str, owner: &str, session_key: &str) -> CancellationToken {
        let stop = CancellationToken::new();
        hearth_runtime::lock(&self.runs).insert(
            run_id.to_owned(),
            Run {
                owner: owner.to_owned(),
                session_key: session_key.to_owned(),
                stop: stop.clone(),
            },
        );
        stop
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

/// Serves one WebSocket until it closes.
pub async fn serve(
    socket: WebSocket,
    gateway: Arc<Gateway>,
    claw: Arc<Claw>,
    peer: Peer,
    auth: Arc<crate::api::Auth>,
) {
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
    let outcome = handshake(
        &gateway,
        &claw,
        &peer,
        auth.token.as_ref(),
        &request,
        &nonce,
    )
    .await;
    let (principal, caller, key, hello) = match outcome {
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
    let (out, mut outbound) = mpsc::channel::<String>(OUTBOUND_FRAMES);
    let closed = CancellationToken::new();
    let connection = Arc::new(Connection {
        gateway,
        claw,
        caller,
        principal,
        key,
        out,
        seq: std::sync::atomic::AtomicU64::new(0),
        closed: closed.clone(),
    });
    let writer = tokio::spawn({
        let closed = closed.clone();
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
            let _ = sink.send(close(1000, "")).await;
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
    loop {
        let message = tokio::select! {
            () = closed.cancelled() => break,
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
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
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
        code,
        reason: reason.into(),
    }))
}

type Admitted = (Principal, Caller, String, Value);

/// `connect`: the protocol, the secret, the device's proof, its pairing.
async fn handshake(
    gateway: &Arc<Gateway>,
    claw: &Claw,
    peer: &Peer,
    token: Option<&zeroize::Zeroizing<String>>,
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
        .any(|given| {
            token.is_some_and(|expected| crate::api::same(expected.as_bytes(), given.as_bytes()))
        });
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
            .map_err(store_failed)?;
        // As OpenClaw does, a device on this host holding the gateway's
        // token is paired at once (as the admin's): only others wait.
        if !(origin.token_holder && peer.address.is_loopback()) {
            tracing::info!(device = %device.id, %request_id, "an OpenClaw client's device waits for approval");
            let shape = pairing::pairing_required(&request_id, &device.id);
            let reason =
                format!("pairing required: device is not approved yet (requestId: {request_id})");
            return Err((shape, reason));
        }
        let admins = match claw.pairing.approve(&request_id, None, now).await {
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
    Ok((principal, caller, key, hello))
}
