//! The HTTP edge: routes, caller authentication, the same-origin rule for
//! browsers, and the mapping of each outcome to a status and a body. Every
//! error, 404 and 405 included, is `{"error": {"code", "message"}}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use hearth_e2ee::{ChatEnvelope, ErrorCode, ReplyEvent};
use hearth_llm::Message;
use serde::Deserialize;
use serde_json::json;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

pub use crate::caller::Auth;
use crate::caller::Caller;
use crate::gateway::{Ask, Gateway, Refusal, Refused, failure_message};
use hearth_runtime::clock::unix_seconds;

pub(crate) fn error_body(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

pub(crate) fn refusal(gateway: &Gateway, refusal: Refusal) -> Response {
    let status = match &refusal {
        Refusal::Replay(hearth_e2ee::Rejection::Replayed) => StatusCode::CONFLICT,
        Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Replay(hearth_e2ee::Rejection::Full) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    gateway.metrics().outcome("chat", refusal.code().as_str());
    tracing::debug!(code = %refusal.code(), "request refused");
    error_body(status, refusal.code(), refusal.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

pub(crate) async fn authenticate(
    State(auth): State<Arc<Auth>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = peer.ip().to_canonical();
    let token_ok = bearer(request.headers()).is_some_and(|given| auth.is_secret(given));
    let nobody = Caller::nobody(address);
    // A mesh device is named by its tunnel address; this host's own address
    // is any local process, which only the token tells apart.
    let (caller, device) = if token_ok {
        let caller = Caller {
            speaks_for_members: true,
            ..nobody
        };
        (caller, "the token's holder".to_owned())
    } else if let Some(socket) = &auth.agent_socket
        && let Ok(Some(who)) = hearth_control::agent_api::whois(socket, address).await
        && !who.is_self
    {
        let name = who.name.clone();
        (Caller::of_device(address, who), name)
    } else if auth.token.is_none() && auth.loopback && address.is_loopback() {
        let caller = Caller {
            speaks_for_members: true,
            ..nobody
        };
        (caller, "a local caller".to_owned())
    } else {
        return error_body(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "this gateway needs `Authorization: Bearer <token>` or a caller inside the mesh".into(),
        );
    };
    // A front end serving many people names the one it acts for.
    let caller = match forwarded_user(request.headers()) {
        Ok(None) => caller,
        Ok(Some(named)) => match caller.acting_for(&named, &device) {
            Ok(caller) => caller,
            Err(refused) => {
                return error_body(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NotPermitted,
                    refused.to_string(),
                );
            }
        },
        Err(why) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequestError,
                why.to_string(),
            );
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Why a front end's forwarded user header cannot be read.
#[derive(Debug, thiserror::Error)]
enum ForwardedUser {
    /// More than one.
    #[error("{} is given twice", crate::caller::FORWARDED_USER)]
    Twice,
    /// Not text.
    #[error("{} is not text", crate::caller::FORWARDED_USER)]
    NotText,
}

/// The person a front end names in its forwarded user header, if any: one
/// value, text.
fn forwarded_user(headers: &HeaderMap) -> Result<Option<String>, ForwardedUser> {
    let mut values = headers.get_all(crate::caller::FORWARDED_USER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ForwardedUser::Twice);
    }
    match value.to_str() {
        Ok(name) => Ok(Some(name.trim().to_owned())),
        Err(_) => Err(ForwardedUser::NotText),
    }
}

/// Refuses a request naming a host the gateway does not answer to (DNS
/// rebinding) or sent by a web page of another origin (a cross-site POST of
/// `text/plain` included).
pub(crate) async fn same_origin(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    match auth.same_origin.check_request(&request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => error_body(
            StatusCode::FORBIDDEN,
            ErrorCode::CrossSite,
            refusal.to_string(),
        ),
    }
}

/// Requests with a body must say it is JSON: a browser cannot send that
/// across sites without asking first (CORS), and the gateway never says yes.
async fn json_only(request: Request, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("application/json"));
    if json {
        next.run(request).await
    } else {
        error_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`".into(),
        )
    }
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>, auth: Auth) -> Router {
    let auth = Arc::new(auth);
    // Requests that reach a model are limited per source address.
    let per_ip = gateway
        .config()
        .hearth
        .limits
        .requests_per_minute_per_ip
        .max(1);
    let governor = GovernorConfigBuilder::default()
        .key_extractor(PeerIpKeyExtractor)
        .period(Duration::from_millis((60_000 / u64::from(per_ip)).max(1)))
        .burst_size(per_ip)
        .finish()
        .expect("period and burst are non-zero");
    let limited_gateway = Arc::clone(&gateway);
    let limiter = GovernorLayer::new(governor).error_handler(move |_| {
        limited_gateway.metrics().outcome("http", "rate_limited");
        error_body(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests from this address; slow down".into(),
        )
    });
    // The OpenAI-style endpoints are off unless enabled, as in OpenClaw;
    // either one brings the models and embeddings with it.
    let endpoints = gateway.config().gateway.http;
    let either = endpoints.chat_completions || endpoints.responses;
    // The sealed routes carry a member's pictures and shared documents:
    // a 10 MiB document is base64 in the request, sealed, and base64 again.
    let sealed_limit = DefaultBodyLimit::max(SEALED_BODY_LIMIT);
    let mut limited = Router::new()
        .route("/api/chat", post(chat).layer(sealed_limit))
        .route("/api/assistant", post(assistant).layer(sealed_limit));
    limited = limited.route(
        "/v1/chat/completions",
        if endpoints.chat_completions {
            post(completions)
        } else {
            post(not_enabled)
        },
    );
    limited = limited.route(
        "/v1/responses",
        if endpoints.responses {
            post(responses)
        } else {
            post(not_enabled)
        },
    );
    limited = limited.route(
        "/v1/embeddings",
        if either {
            post(embeddings)
        } else {
            post(not_enabled)
        },
    );
    let limited = limited.layer(middleware::from_fn(json_only)).layer(limiter);
    // OpenClaw's clients: their pairings and connections, shared by the
    // socket and the admin's device routes.
    let claw = Arc::new(crate::claw::Claw::new(
        gateway.database().clone(),
        gateway
            .config()
            .hearth
            .limits
            .requests_per_minute_per_device,
    ));
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/usage", get(usage))
        .route("/v1/devices", get(devices))
        .route("/v1/devices/approve", post(approve_device))
        .route("/v1/devices/remove", post(remove_device))
        .route(
            "/api/pubkey",
            get(|State(gateway): State<Arc<Gateway>>| async move {
                Json(gateway.pubkeys(unix_seconds()))
            }),
        )
        .route(
            "/v1/models",
            if either {
                get(models)
            } else {
                get(not_enabled)
            },
        )
        .route(
            "/v1/models/{*id}",
            if either { get(model) } else { get(not_enabled) },
        )
        .merge(limited)
        .layer(axum::Extension(Arc::clone(&claw)))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&auth),
            authenticate,
        ));
    // OpenClaw's clients: a WebSocket on `/`, authenticated in its own
    // handshake (the device's proof, its pairing, the mesh's word).
    let socket_auth = Arc::clone(&auth);
    Router::new()
        .route(
            "/",
            get(
                move |State(gateway): State<Arc<Gateway>>,
                      ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      request: Request| {
                    openclaw_socket(
                        gateway,
                        Arc::clone(&claw),
                        Arc::clone(&socket_auth),
                        peer,
                        request,
                    )
                },
            ),
        )
        .route("/health", get(health))
        .route("/healthz", get(live))
        .route("/livez", get(live))
        .route("/readyz", get(ready))
        .route("/ready", get(ready))
        .merge(protected)
        .fallback(
            |State(gateway): State<Arc<Gateway>>,
             method: axum::http::Method,
             uri: axum::http::Uri,
             headers: axum::http::HeaderMap| async move {
                // The Control UI's files and app routes, when it is served.
                if let Some(root) = &gateway.config().hearth.control_ui
                    && method == axum::http::Method::GET
                    && !uri.path().starts_with("/v1/")
                    && !uri.path().starts_with("/api/")
                {
                    let tag = hearth_http::etag::if_none_match(&headers);
                    return crate::control_ui::serve(root, uri.path(), tag).await;
                }
                error_body(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "no such endpoint; see docs/gateway.md".into(),
                )
            },
        )
        .method_not_allowed_fallback(|| async {
            error_body(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take that method".into(),
            )
        })
        .layer(DefaultBodyLimit::max(2 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(auth, same_origin))
        .with_state(gateway)
}

/// Largest body of the sealed routes (`/api/chat`, `/api/assistant`):
/// room for a document as large as a folder's may be
/// ([`hearth_assistant::extract::MAX_FILE_BYTES`]) encoded twice.
pub const SEALED_BODY_LIMIT: usize = 24 * 1024 * 1024;

/// `GET /`: OpenClaw's gateway protocol when it is a WebSocket upgrade;
/// else the Control UI, when it is served.
async fn openclaw_socket(
    gateway: Arc<Gateway>,
    claw: Arc<crate::claw::Claw>,
    auth: Arc<Auth>,
    peer: SocketAddr,
    request: Request,
) -> Response {
    if !crate::claw::socket::is_upgrade(request.method(), request.headers()) {
        if let Some(root) = &gateway.config().hearth.control_ui {
            let tag = hearth_http::etag::if_none_match(request.headers());
            return crate::control_ui::serve(root, "/", tag).await;
        }
        return error_body(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "this is Hearth's gateway: OpenClaw's clients connect here with a WebSocket; see docs/gateway.md".into(),
        );
    }
    let address = peer.ip().to_canonical();
    let peer = crate::claw::Peer {
        address,
        mesh: auth.mesh_caller(address).await,
        local_open: auth.token.is_none() && auth.loopback && address.is_loopback(),
    };
    crate::claw::socket::accept(request, move |socket, budget| {
        crate::claw::serve(socket, budget, gateway, claw, peer, auth)
    })
}

/// An OpenAI-style endpoint the configuration leaves off.
async fn not_enabled() -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "this endpoint is off: set gateway.http.endpoints.chatCompletions.enabled (or \
         responses.enabled) to true in the gateway's configuration"
            .into(),
    )
}

/// OpenClaw's liveness probe: the process serves HTTP.
async fn live() -> Response {
    Json(json!({"ok": true, "status": "live"})).into_response()
}

/// OpenClaw's readiness probe: some model can answer (a backend of the
/// chain answered its last probe).
async fn ready(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.router().ready() {
        Json(json!({"ok": true, "status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ok": false, "status": "unavailable", "failing": ["models"]})),
        )
            .into_response()
    }
}

/// Anyone may ask whether the gateway can answer, and how many backends
/// are up: nothing about where they are (that is in the authenticated
/// `/metrics`).
async fn health(State(gateway): State<Arc<Gateway>>) -> Response {
    let ready = gateway.router().ready();
    let endpoints = gateway.router().status();
    let healthy = endpoints.iter().filter(|status| status.healthy).count();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "backends": {"healthy": healthy, "total": endpoints.len()},
        })),
    )
        .into_response()
}

/// `GET /v1/usage`: tokens used in the last 31 days (UTC), per day and
/// model: a member's or a device's own; everyone's for the token's holder
/// (the household's admin). Counts only.
async fn usage(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let since = crate::usage::day_of(unix_seconds() - 30 * 86_400);
    let who = (!caller.speaks_for_members).then(|| caller.account());
    match gateway.usage().list(who.as_deref(), &since).await {
        Ok(rows) => Json(json!({"since": since, "usage": rows})).into_response(),
        Err(error) => {
            tracing::error!(%error, "the usage store failed");
            error_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the usage store failed".into(),
            )
        }
    }
}

/// Only the gateway's token (the household's admin) manages devices: the
/// refusal for anyone else.
fn not_admin(caller: &Caller) -> Option<Response> {
    if caller.speaks_for_members && caller.user.is_none() {
        return None;
    }
    Some(error_body(
        StatusCode::FORBIDDEN,
        ErrorCode::NotPermitted,
        "pairing devices is the household admin's: use the gateway's token".into(),
    ))
}

fn device_store_failed(error: &sqlx::Error) -> Response {
    tracing::error!(%error, "the device store failed");
    error_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "the device store failed".into(),
    )
}

/// `GET /v1/devices`: OpenClaw clients' devices waiting and paired.
async fn devices(
    axum::Extension(claw): axum::Extension<Arc<crate::claw::Claw>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    if let Some(refused) = not_admin(&caller) {
        return refused;
    }
    let pairing = &claw.pairing;
    match (pairing.pending().await, pairing.devices().await) {
        (Ok(pending), Ok(paired)) => {
            Json(json!({"pending": pending, "paired": paired})).into_response()
        }
        (Err(error), _) | (_, Err(error)) => device_store_failed(&error),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Approval {
    request_id: String,
    #[serde(default)]
    member: Option<String>,
}

/// `POST /v1/devices/approve`: the device may connect, as the member.
async fn approve_device(
    axum::Extension(claw): axum::Extension<Arc<crate::claw::Claw>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Json(approval): Json<Approval>,
) -> Response {
    if let Some(refused) = not_admin(&caller) {
        return refused;
    }
    let pairing = &claw.pairing;
    let member = approval
        .member
        .as_deref()
        .map(str::trim)
        .filter(|member| !member.is_empty());
    match pairing
        .approve(approval.request_id.trim(), member, unix_seconds())
        .await
    {
        Ok(paired) => {
            tracing::info!(device = %paired.device_id, member = ?paired.member, "an OpenClaw client's device is paired");
            claw.paired_changed();
            Json(json!({"paired": paired})).into_response()
        }
        Err(crate::claw::pairing::ApproveError::Store(error)) => device_store_failed(&error),
        Err(refused) => error_body(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequestError,
            refused.to_string(),
        ),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Removal {
    id: String,
}

/// `POST /v1/devices/remove`: a paired device (by id) or a request (by id) goes.
async fn remove_device(
    axum::Extension(claw): axum::Extension<Arc<crate::claw::Claw>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Json(removal): Json<Removal>,
) -> Response {
    if let Some(refused) = not_admin(&caller) {
        return refused;
    }
    match claw.pairing.remove(removal.id.trim()).await {
        Ok(removed) => {
            // Its open connections end with it.
            claw.paired_changed();
            Json(json!({"removed": removed})).into_response()
        }
        Err(error) => device_store_failed(&error),
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let text = gateway.metrics().render(&gateway.router().status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// An SSE response of `lines`, with a keep-alive comment whenever it is idle.
pub(crate) fn sse(lines: BoxStream<'static, Bytes>, keepalive: std::time::Duration) -> Response {
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let stream =
        futures_util::stream::unfold((lines, ticks), |(mut lines, mut ticks)| async move {
            let line = tokio::select! {
                line = lines.next() => line?,
                _ = ticks.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
            ticks.reset();
            Some((Ok::<_, Infallible>(line), (lines, ticks)))
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

async fn chat(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    let envelope: ChatEnvelope = match hearth_e2ee::envelope::parse_envelope(&body) {
        Ok(envelope) => envelope,
        Err(error) => return refusal(&gateway, Refusal::Envelope(error)),
    };
    let now = unix_seconds();
    let plausible = match gateway.precheck(&envelope, now, Instant::now()) {
        Ok(plausible) => plausible,
        Err(refused) => return refusal(&gateway, refused),
    };
    // Connect to the model while the request is decrypted: the yield lets
    // the connecting task start before this one spends its time on the
    // cryptography, and the model server accepts meanwhile.
    if gateway.router().prepare() {
        tokio::task::yield_now().await;
    }
    let admitted = match gateway.admit_checked(&envelope, plausible, now) {
        Ok(admitted) => admitted,
        Err(refused) => return refusal(&gateway, refused),
    };
    // A busy gateway says so before the answer's head, as before decryption.
    match crate::sealed::read_chat(&gateway, &caller, admitted) {
        Ok(turn) => {
            let keepalive = gateway.keepalive();
            // The reply runs in a task of its own from here, so the model is
            // asked while the head goes out; failures after admission are
            // sealed error events, the status is 200 either way. The task
            // is aborted if the client goes away first.
            let reply = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                crate::sealed::chat(&gateway, turn, caller).await
            }));
            let lines = futures_util::stream::once(async move {
                reply.await.unwrap_or_else(|error| {
                    tracing::error!(%error, "a reply task failed");
                    futures_util::stream::empty().boxed()
                })
            })
            .flatten()
            .boxed();
            sse(lines, keepalive)
        }
        Err(busy) => busy_response(&gateway, busy),
    }
}

/// A sealed request refused for want of a reply slot: `503 busy`.
fn busy_response(gateway: &Gateway, busy: Refused) -> Response {
    gateway.metrics().outcome("chat", busy.code.as_str());
    error_body(StatusCode::SERVICE_UNAVAILABLE, busy.code, busy.message)
}

/// `POST /api/assistant`: a sealed assistant API request (deliveries,
/// memory, reminders, documents), admitted like a chat request.
async fn assistant(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    let envelope: ChatEnvelope = match hearth_e2ee::envelope::parse_envelope(&body) {
        Ok(envelope) => envelope,
        Err(error) => return refusal(&gateway, Refusal::Envelope(error)),
    };
    let now = unix_seconds();
    let admitted = gateway
        .precheck(&envelope, now, Instant::now())
        .and_then(|plausible| gateway.admit_checked(&envelope, plausible, now));
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err(refused) => return refusal(&gateway, refused),
    };
    match crate::sealed::read_assistant(&gateway, &caller, admitted) {
        Ok(call) => {
            let keepalive = gateway.keepalive();
            let reply = async move { crate::sealed::assistant(&gateway, call, &caller).await };
            sse(
                futures_util::stream::once(reply).flatten().boxed(),
                keepalive,
            )
        }
        Err(busy) => busy_response(&gateway, busy),
    }
}

/// A header's text, if present and readable.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// An error answer, before it becomes a response.
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_body(self.status, self.code, self.message)
    }
}

/// `400 invalid_request_error`.
fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: ErrorCode::InvalidRequestError,
        message: message.into(),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Response {
    bad(message).into_response()
}

/// An OpenAI-style request as the conversation use case takes it: the
/// agent or model in `model` or OpenClaw's headers, the session of `key`
/// among the caller's own, the caller's address rate-limited.
pub(crate) fn openai_ask(
    caller: Caller,
    model: Option<&str>,
    headers: &HeaderMap,
    key: Option<String>,
    messages: Vec<Message>,
    endpoint: &'static str,
) -> Ask {
    let session = key.map(|key| crate::gateway::Session {
        channel: format!("openai:{key}"),
        owner: caller.session_owner(),
    });
    Ask {
        model: model.map(str::to_owned),
        agent: header_text(headers, "x-openclaw-agent-id").map(str::to_owned),
        backend_model: header_text(headers, "x-openclaw-model").map(str::to_owned),
        session,
        limit: crate::gateway::Limit::Address,
        ..Ask::new(caller, messages, endpoint)
    }
}

/// The session a request continues: `x-openclaw-session-key`, else the
/// request's `user`; none means stateless. OpenClaw's internal namespaces
/// are refused.
fn session_key(user: Option<&str>, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let key = header_text(headers, "x-openclaw-session-key")
        .or(user.map(str::trim).filter(|user| !user.is_empty()));
    match key {
        Some(key)
            if ["subagent:", "cron:", "acp:"]
                .iter()
                .any(|reserved| key.starts_with(reserved)) =>
        {
            Err(bad(format!(
                "session keys starting with {:?} are reserved",
                key.split(':').next().unwrap_or("")
            )))
        }
        Some(key) if key.len() > 200 => Err(bad("a session key has at most 200 characters")),
        key => Ok(key.map(str::to_owned)),
    }
}

fn model_object(id: &str) -> serde_json::Value {
    let owner = if id.starts_with("openclaw") {
        "openclaw"
    } else {
        "hearth"
    };
    json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
}

async fn models(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let data: Vec<_> = gateway
        .permitted_model_ids(&caller)
        .iter()
        .map(|id| model_object(id))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn model(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if gateway.permitted_model_ids(&caller).contains(&id) {
        Json(model_object(&id)).into_response()
    } else {
        error_body(
            StatusCode::NOT_FOUND,
            ErrorCode::ModelNotFound,
            format!("no model is called {id:?}; GET /v1/models lists them"),
        )
    }
}

/// An OpenAI chat completion request; other OpenAI fields are accepted
/// and ignored.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    tools: Option<serde_json::Value>,
    #[serde(default)]
    tool_choice: Option<serde_json::Value>,
    #[serde(default)]
    user: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// The sampling settings of `rest` that pass through, range-checked as
/// OpenClaw checks them.
pub(crate) fn sampling(
    temperature: Option<f32>,
    rest: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if temperature.is_some_and(|value| !(0.0..=2.0).contains(&value)) {
        return Err(bad("temperature must be from 0 to 2"));
    }
    let number = |key: &str, low: f64, high: f64| -> Result<(), ApiError> {
        match rest.get(key) {
            None | Some(serde_json::Value::Null) => Ok(()),
            Some(value)
                if value
                    .as_f64()
                    .is_some_and(|value| (low..=high).contains(&value)) =>
            {
                Ok(())
            }
            Some(_) => Err(bad(format!("{key} must be a number from {low} to {high}"))),
        }
    };
    number("top_p", 0.0, 1.0)?;
    number("frequency_penalty", -2.0, 2.0)?;
    number("presence_penalty", -2.0, 2.0)?;
    match rest.get("seed") {
        None | Some(serde_json::Value::Null) => {}
        Some(value) if value.is_i64() || value.is_u64() => {}
        Some(_) => return Err(bad("seed must be a whole number")),
    }
    match rest.get("stop") {
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => {}
        Some(serde_json::Value::Array(stops))
            if stops.len() <= 4
                && stops
                    .iter()
                    .all(|stop| stop.as_str().is_some_and(|stop| !stop.is_empty())) => {}
        Some(_) => {
            return Err(bad("stop must be a string or up to 4 non-empty strings"));
        }
    }
    Ok(hearth_llm::SAMPLING
        .iter()
        .filter_map(|key| {
            rest.get(*key)
                .filter(|value| !value.is_null())
                .map(|value| ((*key).to_owned(), value.clone()))
        })
        .collect())
}

async fn completions(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return invalid(format!("not a chat completion request: {error}")),
    };
    if request.messages.is_empty() {
        return invalid("`messages` is empty");
    }
    if let Err(why) =
        crate::openai::check_tools(request.tools.as_ref(), request.tool_choice.as_ref())
    {
        return invalid(why);
    }
    let sampling = match sampling(request.temperature, &request.rest) {
        Ok(sampling) => sampling,
        Err(error) => return error.into_response(),
    };
    let session = match session_key(request.user.as_deref(), &headers) {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|options| options["include_usage"] == true);
    let ask = Ask {
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        temperature: request.temperature,
        tools: request.tools,
        tool_choice: request.tool_choice,
        sampling,
        ..openai_ask(
            caller,
            request.model.as_deref(),
            &headers,
            session,
            request.messages,
            "completions",
        )
    };
    let mut events = match gateway.ask(ask).await {
        Ok(events) => events,
        Err(refused) => return refused_response(refused),
    };
    let id = format!(
        "chatcmpl-{}",
        hearth_e2ee::envelope::b64(&rand::random::<[u8; 9]>())
    );
    let created = unix_seconds();

    if !request.stream {
        let (mut model, mut text, mut finish, mut usage) =
            (String::new(), String::new(), None, None);
        let mut calls = crate::openai::ToolCalls::default();
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Meta {
                    model: answering, ..
                } => model = answering,
                ReplyEvent::Delta { text: more } => text.push_str(&more),
                ReplyEvent::ToolCalls { calls: more } => calls.push(&more),
                ReplyEvent::Done {
                    finish_reason,
                    usage: counts,
                } => {
                    finish = Some(finish_reason);
                    usage = counts;
                }
                ReplyEvent::Error { code, .. } => {
                    return error_body(failure_status(code), code, failure_message(code).into());
                }
                ReplyEvent::Notice { .. } | ReplyEvent::Tool { .. } | ReplyEvent::Data { .. } => {}
            }
        }
        let usage = usage.map(|usage| json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens + usage.completion_tokens}));
        let message = if calls.is_empty() {
            json!({"role": "assistant", "content": text})
        } else {
            json!({"role": "assistant", "content": if text.is_empty() { serde_json::Value::Null } else { json!(text) }, "tool_calls": calls.calls()})
        };
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }

    let mut model = String::new();
    let lines = events
        .flat_map(move |event| {
            let chunk = |model: &str, delta: serde_json::Value, finish: Option<&str>| {
                json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            let lines = match event {
                ReplyEvent::Meta { model: answering, .. } => {
                    model = answering;
                    vec![chunk(&model, json!({"role": "assistant", "content": ""}), None)]
                }
                ReplyEvent::Delta { text } => vec![chunk(&model, json!({"content": text}), None)],
                ReplyEvent::ToolCalls { calls } => vec![chunk(&model, json!({"tool_calls": calls}), None)],
                // `[DONE]` only after a complete reply: an error ends the stream without it.
                ReplyEvent::Done { finish_reason, usage } => {
                    let mut lines = vec![chunk(&model, json!({}), Some(&finish_reason))];
                    if include_usage {
                        let usage = usage.map(|usage| json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens + usage.completion_tokens}));
                        lines.push(json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage}));
                    }
                    lines.push(json!("[DONE]"));
                    lines
                }
                ReplyEvent::Error { code, message } => vec![json!({"error": {"code": code, "message": message}})],
                ReplyEvent::Notice { .. } | ReplyEvent::Tool { .. } | ReplyEvent::Data { .. } => Vec::new(),
            };
            futures_util::stream::iter(lines.into_iter().map(|line| match line {
                serde_json::Value::String(done) => Bytes::from(format!("data: {done}\n\n")),
                line => Bytes::from(format!("data: {line}\n\n")),
            }))
        })
        .boxed();
    sse(lines, gateway.keepalive())
}

/// `POST /v1/responses` (OpenResponses): `input` items and `instructions`
/// read as a chat, the reply as a response object or its SSE events.
async fn responses(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(error) => return invalid(format!("not a responses request: {error}")),
    };
    let chat = match crate::openai::responses_chat(&body) {
        Ok(chat) => chat,
        Err(why) => return invalid(why),
    };
    let temperature = body
        .get("temperature")
        .and_then(serde_json::Value::as_f64)
        .map(|value| value as f32);
    let sampling = match sampling(temperature, &body) {
        Ok(sampling) => sampling
            .into_iter()
            .filter(|(key, _)| key == "top_p")
            .collect(),
        Err(error) => return error.into_response(),
    };
    let session = match session_key(
        body.get("user").and_then(serde_json::Value::as_str),
        &headers,
    ) {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let max_tokens = body
        .get("max_output_tokens")
        .and_then(serde_json::Value::as_u64)
        .map(|tokens| u32::try_from(tokens).unwrap_or(u32::MAX));
    let ask = Ask {
        instructions: chat.system,
        max_tokens,
        temperature,
        tools: chat.tools,
        tool_choice: chat.tool_choice,
        sampling,
        ..openai_ask(
            caller,
            body.get("model").and_then(serde_json::Value::as_str),
            &headers,
            session,
            chat.messages,
            "responses",
        )
    };
    let mut events = match gateway.ask(ask).await {
        Ok(events) => events,
        Err(refused) => return refused_response(refused),
    };
    let mut stream =
        crate::openai::ResponseStream::new(format!("resp_{}", hex_id()), unix_seconds());
    if body.get("stream") != Some(&serde_json::Value::Bool(true)) {
        let mut failure = None;
        while let Some(event) = events.next().await {
            if let ReplyEvent::Error { code, .. } = &event {
                failure = Some(*code);
            }
            stream.push(&event);
        }
        if let Some(code) = failure {
            return error_body(failure_status(code), code, failure_message(code).into());
        }
        return Json(stream.response("completed")).into_response();
    }
    let lines = events
        .flat_map(move |event| {
            let lines: Vec<Bytes> = stream
                .push(&event)
                .into_iter()
                .map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
                .collect();
            futures_util::stream::iter(lines)
        })
        .boxed();
    sse(lines, gateway.keepalive())
}

/// A random id for responses.
fn hex_id() -> String {
    rand::random::<[u8; 12]>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The HTTP status of a turn the conversation use case refused.
pub(crate) fn refused_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotPermitted => StatusCode::FORBIDDEN,
        ErrorCode::BudgetExhausted | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Busy | ErrorCode::NoModel => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ModelNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidRequestError
        | ErrorCode::BadRequest
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::ContextOverflow => StatusCode::BAD_REQUEST,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// A refused turn as the OpenAI-style APIs answer it.
pub(crate) fn refused_response(refused: Refused) -> Response {
    error_body(refused_status(refused.code), refused.code, refused.message)
}

/// The HTTP status of a failed reply on the OpenAI API.
pub(crate) fn failure_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ContextOverflow | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::NoModel => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// An OpenAI embeddings request.
#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    input: serde_json::Value,
    #[serde(default)]
    dimensions: Option<u32>,
}

/// Most inputs in one embeddings request.
const MAX_EMBEDDING_INPUTS: usize = 256;

/// `POST /v1/embeddings`: `input` a string or a list of them; `model` an
/// agent target (its model, or `x-openclaw-model`) or a backend model.
async fn embeddings(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: EmbeddingRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return invalid(format!("not an embeddings request: {error}")),
    };
    let inputs: Vec<String> = match &request.input {
        serde_json::Value::String(text) => vec![text.clone()],
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_string) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => return invalid("`input` must be a string or a list of strings"),
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return invalid(format!(
            "`input` must hold 1 to {MAX_EMBEDDING_INPUTS} strings"
        ));
    }
    if let Err(refused) = gateway.admit_plain(caller.address) {
        return refusal(&gateway, refused);
    }
    let embedded = gateway
        .embed(
            &caller,
            request.model.as_deref(),
            header_text(&headers, "x-openclaw-model"),
            &inputs,
            request.dimensions,
        )
        .await;
    match embedded {
        Ok((model, vectors)) => {
            let data: Vec<_> = vectors
                .into_iter()
                .enumerate()
                .map(|(index, embedding)| json!({"object": "embedding", "index": index, "embedding": embedding}))
                .collect();
            Json(json!({"object": "list", "model": model, "data": data,
                        "usage": {"prompt_tokens": 0, "total_tokens": 0}}))
            .into_response()
        }
        Err(refused) => refused_response(refused),
    }
}
