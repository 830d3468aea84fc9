//! The HTTP edge: routes, caller authentication, the same-origin rule for
//! browsers, and the mapping of each outcome to a status and a body. Every
//! error, 404 and 405 included, is `{"error": {"code", "message"}}`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
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

use crate::gateway::{Gateway, Refusal, Route, failure_message};
use hearth_http::SameOrigin;
use hearth_runtime::clock::unix_seconds;

/// Who may call.
#[derive(Clone, Debug)]
pub struct Auth {
    /// The bearer token; `None` only with `auth.mode: "none"`.
    pub token: Option<zeroize::Zeroizing<String>>,
    /// The node agent's socket, to accept mesh nodes by their tunnel address.
    pub agent_socket: Option<PathBuf>,
    /// Whether the gateway listens on loopback only (with `auth.mode:
    /// "none"`, local callers are then trusted without a token).
    pub loopback: bool,
    /// The names and origins browsers may use.
    pub same_origin: SameOrigin,
}

/// Who called, once authenticated.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The source address.
    pub address: IpAddr,
    /// The mesh user, when the agent knew the address.
    pub user: Option<String>,
}

fn error_body(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn refusal(gateway: &Gateway, refusal: Refusal) -> Response {
    let status = match &refusal {
        Refusal::Replay(hearth_e2ee::Rejection::Replayed) => StatusCode::CONFLICT,
        Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Busy(_) | Refusal::Replay(hearth_e2ee::Rejection::Full) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    gateway.metrics.outcome("chat", refusal.code().as_str());
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

/// Constant-time comparison of secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn authenticate(
    State(auth): State<Arc<Auth>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = peer.ip().to_canonical();
    let mut caller = Caller {
        address,
        user: None,
    };
    let token_ok = match (&auth.token, bearer(request.headers())) {
        (Some(expected), Some(given)) => same(expected, given),
        _ => false,
    };
    // A mesh device is named by its tunnel address; this host's own address
    // is any local process, which only the token tells apart.
    let allowed = if token_ok {
        true
    } else if let Some(socket) = &auth.agent_socket
        && let Ok(Some(who)) = hearth_control::agent_api::whois(socket, address).await
        && !who.is_self
    {
        caller.user = Some(who.user);
        true
    } else {
        auth.token.is_none() && auth.loopback && address.is_loopback()
    };
    if !allowed {
        return error_body(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "this gateway needs `Authorization: Bearer <token>` or a caller inside the mesh".into(),
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Refuses a request naming a host the gateway does not answer to (DNS
/// rebinding) or sent by a web page of another origin (a cross-site POST of
/// `text/plain` included).
async fn same_origin(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
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
        .config
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
        limited_gateway.metrics.outcome("http", "rate_limited");
        error_body(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests from this address; slow down".into(),
        )
    });
    let limited = Router::new()
        .route("/api/chat", post(chat))
        .route("/v1/chat/completions", post(completions))
        .layer(middleware::from_fn(json_only))
        .layer(limiter);
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/api/pubkey",
            get(|State(gateway): State<Arc<Gateway>>| async move {
                Json(gateway.pubkeys(unix_seconds()))
            }),
        )
        .route("/v1/models", get(models))
        .merge(limited)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&auth),
            authenticate,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(|| async {
            error_body(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint; see docs/gateway.md".into(),
            )
        })
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

/// Anyone may ask whether the gateway can answer, and how many backends
/// are up: nothing about where they are (that is in the authenticated
/// `/metrics`).
async fn health(State(gateway): State<Arc<Gateway>>) -> Response {
    let ready = gateway.router.ready();
    let endpoints = gateway.router.status();
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

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let text = gateway.metrics.render(&gateway.router.status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// An SSE response of `lines`, with a keep-alive comment whenever it is idle.
fn sse(lines: BoxStream<'static, Bytes>, keepalive: std::time::Duration) -> Response {
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

async fn chat(State(gateway): State<Arc<Gateway>>, body: Bytes) -> Response {
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
    let ahead = gateway.router.open_ahead();
    if ahead.is_some() {
        tokio::task::yield_now().await;
    }
    match gateway.admit_checked(&envelope, plausible, ahead, now) {
        Ok(admitted) => {
            let keepalive = gateway.keepalive();
            let mut reply = Box::pin(async move { gateway.reply(admitted).await });
            // Ask the model before answering the head: the connection opened
            // ahead completes on the next turn of the event loop, and the
            // request is written by the connection's own task on the turn
            // after that.
            for _ in 0..2 {
                if let Poll::Ready(lines) = futures_util::poll!(reply.as_mut()) {
                    return sse(lines, keepalive);
                }
                tokio::task::yield_now().await;
            }
            // Then the head goes out while the model works, so that the
            // first token travels alone. Failures after admission are
            // sealed error events: the status is 200 either way.
            sse(
                futures_util::stream::once(reply).flatten().boxed(),
                keepalive,
            )
        }
        Err(refused) => refusal(&gateway, refused),
    }
}

async fn models(State(gateway): State<Arc<Gateway>>) -> Response {
    let data: Vec<_> = gateway
        .models()
        .into_iter()
        .map(|model| json!({"id": model.to_string(), "object": "model", "created": 0, "owned_by": "hearth"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// An OpenAI chat completion request (other OpenAI fields are accepted and ignored).
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
}

/// The HTTP status of a failed reply on the OpenAI API.
fn failure_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ContextOverflow | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::NoModel => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

async fn completions(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();

    let request: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequestError,
                format!("not a chat completion request: {error}"),
            );
        }
    };
    let Some((last, history)) = request.messages.split_last() else {
        return error_body(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequestError,
            "`messages` is empty".into(),
        );
    };
    let route = match request.model.as_deref() {
        None | Some("") => Route::Chain(None),
        Some(name) => match gateway.model_named(name) {
            Some(model) => Route::StartingWith(model),
            None => {
                let known: Vec<String> = gateway.models().iter().map(ToString::to_string).collect();
                return error_body(
                    StatusCode::NOT_FOUND,
                    ErrorCode::ModelNotFound,
                    format!(
                        "no model is called {name:?}; GET /v1/models lists them: {}",
                        known.join(", ")
                    ),
                );
            }
        },
    };
    // The same admission as the encrypted API: the caller's rate and a reply slot.
    let permit = match gateway.admit_plain(peer.ip()) {
        Ok(permit) => permit,
        Err(refused) => return refusal(&gateway, refused),
    };
    let has_system = history.iter().any(|message| message.role == "system");
    let mut backend_request =
        gateway.request(&[], last.clone(), request.max_tokens, request.temperature);
    // The caller manages its own history; the persona is added only when it brought no system prompt.
    let persona = backend_request
        .messages
        .first()
        .filter(|message| message.role == "system" && !has_system)
        .cloned();
    backend_request.messages = persona
        .into_iter()
        .chain(history.iter().cloned())
        .chain(std::iter::once(last.clone()))
        .collect();
    let id = format!(
        "chatcmpl-{}",
        hearth_e2ee::envelope::b64(&rand::random::<[u8; 9]>())
    );
    let created = unix_seconds();

    let mut events = gateway
        .open_turn(
            &backend_request,
            arrived,
            "completions",
            None,
            Some(permit),
            route,
        )
        .await;

    if !request.stream {
        let (mut model, mut text, mut finish, mut usage) =
            (String::new(), String::new(), None, None);
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Meta {
                    model: answering, ..
                } => model = answering,
                ReplyEvent::Delta { text: more } => text.push_str(&more),
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
                ReplyEvent::Notice { .. } => {}
            }
        }
        let usage = usage.map(|usage| json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens + usage.completion_tokens}));
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
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
                // `[DONE]` only after a complete reply: an error ends the stream without it.
                ReplyEvent::Done { finish_reason, .. } => vec![chunk(&model, json!({}), Some(&finish_reason)), json!("[DONE]")],
                ReplyEvent::Error { code, message } => vec![json!({"error": {"code": code, "message": message}})],
                ReplyEvent::Notice { .. } => Vec::new(),
            };
            futures_util::stream::iter(lines.into_iter().map(|line| match line {
                serde_json::Value::String(done) => Bytes::from(format!("data: {done}\n\n")),
                line => Bytes::from(format!("data: {line}\n\n")),
            }))
        })
        .boxed();
    sse(lines, gateway.keepalive())
}
