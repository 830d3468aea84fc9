//! The Tailscale control protocol on the node listener: `GET /key?v=N`
//! gives a client the control key it starts its Noise handshake with
//! (`hearth_control::ts2021`); `POST /ts2021` upgrades to that session, in
//! which HTTP/2 carries `/machine/register` and `/machine/map`
//! (`hearth_control::tailcfg`, `crate::tailscale`, `crate::tsmap`). Clients
//! older than [`MIN_CAPABILITY`](hearth_control::ts2021::MIN_CAPABILITY)
//! are refused with a message naming the minimum.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Extension, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use hearth_control::compression::Encoding;
use hearth_control::tailcfg::{self, MachineKey};
use hearth_control::ts2021;
use hearth_control::wire::{ErrorBody, MapChange, MapMessage, NodeState};
use hyper_util::rt::TokioIo;
use tokio::sync::{broadcast, mpsc};

use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::netmap::Credential;
use crate::streams::Subscription;
use crate::tsmap::{SelfKeys, TsMapView};
use serde::Deserialize;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The coordinator's Tailscale control key.
pub struct ControlKey {
    secret: StaticSecret,
    public: [u8; 32],
}

impl ControlKey {
    /// The key in `path` (64 hex digits, kept from other users), made and
    /// written 0600 on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<ControlKey> {
        let secret = match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(path)?);
                anyhow::ensure!(
                    hearth_files::token::private_enough(mode),
                    "{} is open to other users (chmod 600)",
                    path.display()
                );
                let bytes = Zeroizing::new(
                    hex::decode(text.trim())
                        .with_context(|| format!("{} is not hex", path.display()))?,
                );
                let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!("{} does not hold a 32-byte key", path.display())
                })?;
                StaticSecret::from(bytes)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret = StaticSecret::random();
                let text = Zeroizing::new(hex::encode(secret.to_bytes()));
                crate::state_dir::write_private(path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                secret
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let public = PublicKey::from(&secret).to_bytes();
        Ok(ControlKey { secret, public })
    }

    /// The secret, for the handshake.
    pub fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The public key clients fetch.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    v: Option<u16>,
}

/// Where ts2021 sessions are served from: the limits of the listener they
/// arrived on (their HTTP/2 gets the same deadlines and body budget as any
/// connection) and the signal that the coordinator is stopping.
#[derive(Clone)]
pub struct Sessions {
    /// The listener's gate.
    pub gate: hearth_http::Gate,
    /// Turns true when the coordinator stops.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Registrations per source address (shared with the node API).
    pub register_limiter: super::node::RegisterLimiter,
}

type Shared = (Arc<ControlKey>, Arc<Coordinator>, Sessions);

/// The Tailscale routes of the node listener.
pub fn router(key: Arc<ControlKey>, coordinator: Arc<Coordinator>, sessions: Sessions) -> Router {
    Router::new()
        .route("/key", get(control_key))
        .route("/ts2021", post(upgrade))
        .route("/register/{code}", get(login_page))
        .route(
            "/register/{code}/sign-in",
            get(back_to_the_page).post(begin_sign_in),
        )
        .route(crate::sign_in::CALLBACK_PATH, get(finish_sign_in))
        .route("/admin", get(admin_page))
        .route("/admin/{*rest}", get(admin_page))
        .with_state((key, coordinator, sessions))
}

/// `POST /ts2021` with `Upgrade: tailscale-control-protocol` and the
/// handshake initiation in `X-Tailscale-Handshake`: 101, the handshake
/// response, then HTTP/2 inside the session.
async fn upgrade(
    State((key, coordinator, sessions)): State<Shared>,
    mut request: Request,
) -> Response {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if !header("upgrade")
        .is_some_and(|value| value.eq_ignore_ascii_case("tailscale-control-protocol"))
    {
        return (
            StatusCode::BAD_REQUEST,
            "ask for Upgrade: tailscale-control-protocol",
        )
            .into_response();
    }
    let Some(initiation) = header("x-tailscale-handshake")
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "no or bad X-Tailscale-Handshake header",
        )
            .into_response();
    };
    match ts2021::initiation_version(&initiation) {
        Ok(version) => {
            if let Err(too_old) = ts2021::check_capability(version) {
                return (StatusCode::BAD_REQUEST, too_old.to_string()).into_response();
            }
        }
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
    let accepted = match ts2021::accept(&initiation, key.secret(), &StaticSecret::random()) {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::info!(%error, "a ts2021 handshake was refused");
            return (StatusCode::BAD_REQUEST, "the handshake did not open").into_response();
        }
    };
    let upgrading = hyper::upgrade::on(&mut request);
    let source = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    tokio::spawn(serve_session(
        upgrading,
        accepted,
        coordinator,
        source,
        sessions,
    ));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "tailscale-control-protocol")
        .header("connection", "upgrade")
        .body(axum::body::Body::empty())
        .expect("a fixed response builds")
}

/// After the 101: the handshake response, then HTTP/2 inside the session,
/// served by [`session_router`] for the client's machine key under the
/// edge's rules (a first request within the header timeout, closed once
/// idle, bodies within their deadline and the source's budget).
async fn serve_session(
    upgrading: hyper::upgrade::OnUpgrade,
    accepted: ts2021::Accepted,
    coordinator: Arc<Coordinator>,
    source: Option<std::net::IpAddr>,
    sessions: Sessions,
) {
    let upgraded = match upgrading.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "the ts2021 upgrade did not complete");
            return;
        }
    };
    let mut io = TokioIo::new(upgraded);
    if let Err(error) = tokio::io::AsyncWriteExt::write_all(&mut io, &accepted.response).await {
        tracing::debug!(%error, "could not send the handshake response");
        return;
    }
    let session = Session {
        machine: MachineKey(accepted.machine_key),
        version: accepted.version,
        source,
    };
    tracing::info!(machine = %session.machine, version = session.version, "ts2021 session open");
    let stream = hearth_control::noise_stream::NoiseStream::new(io, accepted.session);
    hearth_http::serve::serve_http2(
        stream,
        session_router(coordinator, session, sessions.register_limiter),
        sessions.gate,
        source.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        sessions.stop,
    )
    .await;
    tracing::debug!(machine = %session.machine, "ts2021 session closed");
}

/// Who is at the other end of a ts2021 session.
#[derive(Clone, Copy, Debug)]
struct Session {
    machine: MachineKey,
    version: u16,
    source: Option<std::net::IpAddr>,
}

/// The routes inside a ts2021 session; registrations within `limiter`.
fn session_router(
    coordinator: Arc<Coordinator>,
    session: Session,
    limiter: super::node::RegisterLimiter,
) -> Router {
    Router::new()
        .route("/machine/register", post(register).layer(limiter))
        .route("/machine/map", post(map))
        .route("/machine/ssh/action/from/{from}/to/{to}", get(ssh_action))
        .route("/machine/set-dns", post(set_dns))
        .route("/machine/feature/query", post(query_feature))
        .route("/machine/c2n/vip-services/{ask}", post(vip_services))
        .fallback(|request: Request| async move {
            tracing::info!(path = %request.uri().path(), "ts2021 request for a path not served");
            (StatusCode::NOT_FOUND, "not served by this coordinator")
        })
        .layer(DefaultBodyLimit::max(tailcfg::MAX_REQUEST))
        .layer(Extension(session))
        .with_state(coordinator)
}

/// Where a client posts its answer to `GET /vip-services` (asked in its
/// map stream, [`stream_map`]): the raw HTTP response. Each ask has a URL
/// of its own: a client answers a URL once.
const VIP_SERVICES_REPLY: &str = "https://unused/machine/c2n/vip-services/";

/// Asks so far (for their URLs).
static ASKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `/machine/c2n/vip-services`: which Tailscale Services the client says
/// it serves.
async fn vip_services(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    match coordinator
        .report_vip_services(session.machine, &body)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            tracing::info!(machine = %session.machine, %error, "a client's list of services was refused");
            error.into_response()
        }
    }
}

/// The map message that asks a client which services it serves.
fn ask_for_services() -> tailcfg::MapResponse {
    tailcfg::MapResponse {
        ping_request: Some(tailcfg::PingRequest {
            url: format!(
                "{VIP_SERVICES_REPLY}{}",
                ASKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            url_is_noise: true,
            log: false,
            types: "c2n".to_owned(),
            payload: hearth_control::c2n::vip_services_request(),
        }),
        ..tailcfg::MapResponse::default()
    }
}

/// `/machine/register`. Refusals a person must act on (a bad, used or
/// expired key) go back in the answer's `Error`, which `tailscale up` prints.
async fn register(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    let request: tailcfg::RegisterRequest = match super::parse_json(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    match coordinator
        .register_tailscale(session.machine, session.source, request)
        .await
    {
        Ok(response) => Json(response).into_response(),
        Err(error @ (Error::Db(_) | Error::Tls(_))) => error.into_response(),
        Err(error) => {
            tracing::info!(machine = %session.machine, %error, "a Tailscale registration was refused");
            Json(crate::tailscale::refusal(&error)).into_response()
        }
    }
}

/// `/machine/map`: stores what the request reports; then, for a streaming
/// request, the map as length-prefixed (zstd) frames: the full map, its
/// changes, keep-alives.
async fn map(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    let request: tailcfg::MapRequest = match super::parse_json(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let record = match coordinator
        .tailscale_map_request(session.machine, &request)
        .await
    {
        Ok(record) => record,
        Err(error) => {
            tracing::info!(machine = %session.machine, %error, "a Tailscale map request was refused");
            return error.into_response();
        }
    };
    if request.omit_peers && !request.stream {
        return StatusCode::OK.into_response();
    }
    let keys = SelfKeys {
        node: request.node_key,
        machine: session.machine,
        disco: request.disco_key,
        hostinfo: request.hostinfo.clone().unwrap_or_default(),
        version: request.version,
    };
    let settings = coordinator.settings();
    // Presence from here on, then who is online now: nothing falls between.
    let presence = coordinator.presence_changes();
    let view = TsMapView::new(&settings.base_domain, coordinator.relays().await, keys)
        .with_capabilities(settings.node_capabilities())
        .with_dns(settings.dns.clone())
        .with_server_url(&settings.public_url)
        .with_certificates(settings.device_certificates(), settings.public_name())
        .with_online(coordinator.online_nodes());
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    let compress = request.compress == "zstd";
    tokio::spawn(stream_map(
        coordinator,
        Credential::Machine(session.machine),
        record.id,
        view,
        MapFeed {
            sender,
            compress,
            stream: request.stream,
        },
        presence,
    ));
    let frames = tokio_stream::wrappers::ReceiverStream::new(receiver)
        .map(Ok::<_, std::convert::Infallible>);
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from_stream(frames))
        .expect("static headers are valid")
}

/// `/machine/set-dns`: a client publishes the ACME challenge for its own
/// name (`tailscale cert`); refusals say why in the body, which the client
/// prints.
async fn set_dns(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    let request: tailcfg::SetDnsRequest = match super::parse_json(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    match coordinator
        .set_acme_challenge(Credential::Machine(session.machine), &request)
        .await
    {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `/machine/feature/query`: whether a feature a client is about to use
/// is on (`serve` with HTTPS needs certificates; Funnel needs Tailscale's
/// own servers): the answer's text says what the person can do.
async fn query_feature(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    let request: tailcfg::QueryFeatureRequest = match super::parse_json(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = coordinator
        .identify(Some(Credential::Machine(session.machine)))
        .await
    {
        return error.into_response();
    }
    let certificates = coordinator.settings().device_certificates();
    Json(crate::tsmap::feature_answer(&request.feature, certificates)).into_response()
}

/// What a node sends when it asks about a `check` rule's session.
#[derive(Debug, Deserialize)]
struct SshActionQuery {
    #[serde(default)]
    ssh_user: String,
    local_user: String,
    period: u64,
    /// The check it already waits on.
    check: Option<u64>,
}

/// A node asks whether a session a `check` rule covers may go on: at once
/// if an approval covers it; else it is told the check's number (shown to
/// the person connecting) and asks again, with `check=N` added, held until
/// an admin decides.
async fn ssh_action(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(session): Extension<Session>,
    axum::extract::Path((from, to)): axum::extract::Path<(u64, u64)>,
    Query(query): Query<SshActionQuery>,
    uri: axum::http::Uri,
) -> Response {
    use crate::ssh_checks::{Asked, CheckState};
    use hearth_control::tailcfg::SshAction;
    let credential = Credential::Machine(session.machine);
    // The same request again, naming the check it waits on.
    let again = |id: u64, message: String| {
        let asked = uri.path_and_query().map_or("", |asked| asked.as_str());
        let base = coordinator
            .settings()
            .public_url
            .trim_end_matches('/')
            .to_owned();
        SshAction {
            hold_and_delegate: match query.check {
                Some(_) => format!("{base}{asked}"),
                None => format!("{base}{asked}&check={id}"),
            },
            message,
            ..SshAction::default()
        }
    };
    let action = match query.check {
        None => match coordinator
            .ask_ssh_check(
                credential,
                from,
                to,
                &query.ssh_user,
                &query.local_user,
                query.period,
            )
            .await
        {
            Ok(Asked::Approved) => crate::tsmap::ssh_accept(),
            Ok(Asked::Waiting(id)) => again(
                id,
                format!(
                    "# This session needs an admin's approval: hearth-coordinator ssh approve {id}\n"
                ),
            ),
            Err(error) => return error.into_response(),
        },
        Some(id) => match coordinator.await_ssh_check(credential, id, to).await {
            Ok(CheckState::Approved) => crate::tsmap::ssh_accept(),
            Ok(CheckState::Waiting) => again(id, String::new()),
            Ok(CheckState::Denied) => SshAction {
                reject: true,
                message: "# An admin did not approve this session.\n".into(),
                ..SshAction::default()
            },
            Err(error) => return error.into_response(),
        },
    };
    Json(action).into_response()
}

/// Where a map stream's frames go.
struct MapFeed {
    sender: mpsc::Sender<Bytes>,
    compress: bool,
    stream: bool,
}

impl MapFeed {
    /// Sends one response; false when the client is gone or the stream is done.
    async fn send(&self, response: &tailcfg::MapResponse) -> bool {
        let json = serde_json::to_vec(response).expect("map responses serialize");
        let frame = match tailcfg::frame(&json, self.compress) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, "a map message could not be framed");
                return false;
            }
        };
        self.sender.send(Bytes::from(frame)).await.is_ok() && self.stream
    }
}

/// Feeds one Tailscale client's map: while its node waits for approval, its
/// own entry (not authorized) and keep-alives; once approved, the same map
/// stream `hearth-agent` nodes get, translated. Ends when the client goes,
/// its node is deleted or loses admission.
async fn stream_map(
    coordinator: Arc<Coordinator>,
    credential: Credential,
    id: hearth_control::wire::NodeId,
    mut view: TsMapView,
    feed: MapFeed,
    mut presence: tokio::sync::broadcast::Receiver<(hearth_control::wire::NodeId, bool)>,
) {
    let keepalive = coordinator.settings().keepalive;
    let keepalive_response = tailcfg::MapResponse {
        keep_alive: true,
        ..tailcfg::MapResponse::default()
    };
    let mut service_asks = coordinator.service_asks();
    loop {
        let Ok(record) = coordinator.identify(Some(credential)).await else {
            return;
        };
        if record.id != id {
            return;
        }
        let subscription = match record.state {
            NodeState::Approved => match coordinator
                .open_map(Some(credential), Encoding::Identity)
                .await
            {
                Ok(subscription) => subscription,
                Err(_) => return,
            },
            NodeState::Pending => {
                if !feed.send(&view.waiting(&record.info())).await {
                    return;
                }
                match coordinator.open_approval(Some(credential)).await {
                    Ok((_, subscription)) => subscription,
                    Err(_) => return,
                }
            }
            NodeState::Expired => {
                // Told so, the client stops and asks its user to log in
                // again, instead of retrying a map that never comes.
                let now = hearth_runtime::clock::unix_seconds();
                let _ = feed.send(&view.key_expired(&record.info(), now)).await;
                return;
            }
            _ => return,
        };
        let approved = record.state == NodeState::Approved;
        let Subscription {
            mut receiver,
            guard,
        } = subscription;
        let mut ask_now = approved && record.service_ads.stale();
        let mut map_sent = false;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            // Asked once its map went out.
            if map_sent && std::mem::take(&mut ask_now) && !feed.send(&ask_for_services()).await {
                return;
            }
            let line = tokio::select! {
                asked = service_asks.recv() => {
                    ask_now = approved && match asked {
                        Ok(node) => node == id,
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    continue;
                }
                line = receiver.recv() => line,
                _ = ticks.tick() => {
                    if !feed.send(&keepalive_response).await {
                        return;
                    }
                    continue;
                }
                _ = feed.sender.closed() => return,
                change = presence.recv() => {
                    let patch = match change {
                        Ok((node, online)) => view.presence(node, online),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            view.set_online(&coordinator.online_nodes())
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if let Some(patch) = patch
                        && !feed.send(&patch).await
                    {
                        return;
                    }
                    continue;
                }
            };
            let Some(line) = line else {
                break; // the coordinator ended this stream
            };
            ticks.reset();
            if approved {
                let Ok(message) = serde_json::from_slice::<MapMessage>(&line.joined()) else {
                    tracing::warn!(node = id, "an unreadable map line; ending the stream");
                    return;
                };
                // Presence reaches Tailscale clients from the streams' own
                // feed above, as `online` patches.
                if let MapMessage::Delta { changes } = &message
                    && changes
                        .iter()
                        .all(|change| matches!(change, MapChange::Presence { .. }))
                {
                    continue;
                }
                let Some(response) = view.apply(message) else {
                    return; // revoked
                };
                if !feed.send(&response).await {
                    return;
                }
                map_sent = true;
            }
        }
        drop(guard);
        if approved {
            return; // deleted or no longer admitted: the client asks again
        }
    }
}

/// What every page for a person's browser says of itself: no scripts,
/// nothing from elsewhere, never inside another site's frame (where a
/// person could be tricked into pressing its buttons), never cached.
const PAGE_HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    // Not `no-referrer`: a form sent from a page with it carries
    // `Origin: null`, which says nothing about where it came from.
    ("referrer-policy", "same-origin"),
];

/// `; Secure` when the coordinator is reached over HTTPS.
fn secure_attribute(coordinator: &Coordinator) -> &'static str {
    if coordinator.settings().public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// `GET /admin` and below: where an official Tailscale app sends an admin
/// (to approve a device); the page says what to run on the hub.
async fn admin_page() -> Response {
    (StatusCode::OK, PAGE_HEADERS, crate::logins::admin_page()).into_response()
}

/// The page at a Tailscale client's login URL; with sign-in, its form's
/// token, also set in a cookie only pages of this site send back.
async fn login_page(
    State((_, coordinator, _)): State<Shared>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Response {
    let token = hex::encode(rand::random::<[u8; 24]>());
    let (status, page) = coordinator.login_page(&code, &token);
    let mut response = (status, PAGE_HEADERS, page).into_response();
    if crate::logins::is_code(&code) {
        let cookie = format!(
            "{}={token}; Path={}{code}; Max-Age={}; HttpOnly; SameSite=Strict{}",
            crate::sign_in::PAGE_COOKIE,
            crate::logins::LOGIN_PATH,
            crate::sign_in::SIGN_IN_WAIT,
            secure_attribute(&coordinator),
        );
        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
            response
                .headers_mut()
                .insert(axum::http::header::SET_COOKIE, value);
        }
    }
    response
}

/// `GET /register/{code}/sign-in` (a link to it, as pages once had): back
/// to the device's page. Opening a URL never begins a sign-in.
async fn back_to_the_page(axum::extract::Path(code): axum::extract::Path<String>) -> Response {
    if !crate::logins::is_code(&code) {
        return page(
            StatusCode::NOT_FOUND,
            "no such device",
            "<h1>No device is waiting with this link</h1>",
        );
    }
    let page = format!("{}{code}", crate::logins::LOGIN_PATH);
    (
        StatusCode::SEE_OTHER,
        [("location", page), ("cache-control", "no-store".to_owned())],
    )
        .into_response()
}

/// A page for a person's browser (no scripts, nothing from elsewhere).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Hearth: {title}</title></head>\n<body>\n{body}\n</body></html>\n"
    );
    (status, PAGE_HEADERS, html).into_response()
}

/// The sign-in failed: the page says why.
fn sign_in_failed(error: &crate::error::Error) -> Response {
    let message = crate::logins::escape(&error.to_string());
    page(
        error.status(),
        "sign-in failed",
        &format!("<h1>The device was not added</h1>\n<p id=\"why\">{message}</p>"),
    )
}

/// `POST /register/{code}/sign-in`, the device page's form: off to the
/// identity provider, with the sign-in's state in a cookie so only this
/// browser can finish it. Refused unless the device's page in this browser
/// sent it ([`crate::sign_in::form_from_the_page`]).
async fn begin_sign_in(
    State((_, coordinator, _)): State<Shared>,
    axum::extract::Path(code): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let source = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let cookie = parts
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|header| crate::sign_in::cookie(header, crate::sign_in::PAGE_COOKIE));
    let Ok(form) = axum::body::to_bytes(body, 4096).await else {
        return sign_in_failed(&crate::error::Error::BadRequest(
            "the sign-in form is too large".into(),
        ));
    };
    let token = form_urlencoded::parse(&form)
        .find(|(name, _)| name == crate::logins::FORM_TOKEN)
        .map(|(_, value)| value.into_owned());
    // HTTP/2 names the host in the request's authority, HTTP/1 in `Host`.
    let host = parts
        .uri
        .authority()
        .map(axum::http::uri::Authority::as_str)
        .or_else(|| header("host"));
    if let Err(refused) = crate::sign_in::form_from_the_page(
        header("origin"),
        header("sec-fetch-site"),
        host,
        cookie,
        token.as_deref(),
    ) {
        tracing::warn!(
            %refused,
            origin = header("origin").unwrap_or("-"),
            host = host.unwrap_or("-"),
            fetch_site = header("sec-fetch-site").unwrap_or("-"),
            "a sign-in not sent by the device's page was refused"
        );
        return sign_in_failed(&crate::error::Error::SignIn(refused.to_string()));
    }
    match coordinator.begin_sign_in(&code, source).await {
        Ok(redirect) => {
            let cookie = format!(
                "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
                crate::sign_in::COOKIE,
                redirect.state,
                crate::sign_in::CALLBACK_PATH,
                crate::sign_in::SIGN_IN_WAIT,
                secure_attribute(&coordinator),
            );
            (
                StatusCode::SEE_OTHER,
                [
                    ("location", redirect.url),
                    ("set-cookie", cookie),
                    ("cache-control", "no-store".to_owned()),
                ],
            )
                .into_response()
        }
        Err(error) => sign_in_failed(&error),
    }
}

/// What the identity provider sends the browser back with.
#[derive(Deserialize)]
struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// `GET /oidc/callback`: the identity provider sent the browser back.
async fn finish_sign_in(
    State((_, coordinator, _)): State<Shared>,
    headers: axum::http::HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let (Some(state), Some(code)) = (callback.state, callback.code) else {
        let why = callback.error.map_or_else(
            || "the identity provider sent no code".to_owned(),
            |error| format!("the identity provider said: {error}"),
        );
        return sign_in_failed(&crate::error::Error::SignIn(why));
    };
    let cookie = headers
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|header| crate::sign_in::cookie(header, crate::sign_in::COOKIE));
    match coordinator.finish_sign_in(&state, cookie, code).await {
        Ok(joined) => page(
            StatusCode::OK,
            "device added",
            &format!(
                "<h1>Signed in</h1>\n<p id=\"joined\">{} joined the network as {}'s device.</p>\n\
                 <p>This page can be closed.</p>",
                crate::logins::escape(&joined.node.name),
                crate::logins::escape(&joined.user),
            ),
        ),
        Err(error) => sign_in_failed(&error),
    }
}

async fn control_key(State((key, _, _)): State<Shared>, Query(query): Query<KeyQuery>) -> Response {
    let refused = |message: String| {
        let body = ErrorBody {
            error: "unsupported_client".into(),
            message,
        };
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    let Some(version) = query.v else {
        return refused("ask /key?v=N with the client's capability version".into());
    };
    if let Err(too_old) = ts2021::check_capability(version) {
        return refused(too_old.to_string());
    }
    Json(ts2021::key_response(&key.public())).into_response()
}
