//! The gateway's routes on its port: the encrypted chat and assistant API
//! (adapters in [`crate::sealed`]), OpenAI's API ([`crate::openai_http`]),
//! OpenClaw's socket ([`crate::claw`]), the health probes, metrics, usage
//! and the admin's device routes, under the HTTP edge ([`crate::edge`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use hearth_e2ee::{ChatEnvelope, ErrorCode};
use serde_json::json;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

pub use crate::caller::Auth;
use crate::caller::Caller;
use crate::edge::{authenticate, error_body, json_only, refusal, same_origin, sse};
use crate::gateway::{Gateway, Refused};
use crate::openai_http::{completions, embeddings, model, models, responses};
use hearth_runtime::clock::unix_seconds;

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
    // Anthropic's Messages API, with the OpenAI API's switches (OpenClaw
    // has none of its own for it).
    limited = limited.route(
        "/v1/messages",
        if either {
            post(crate::anthropic_http::messages)
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
    // Speech: a multipart form (not JSON), as large as hearth.speech allows.
    let heard = Router::new().route(
        "/v1/audio/transcriptions",
        post(crate::speech_http::transcriptions).layer(DefaultBodyLimit::max(
            crate::gateway::max_upload(gateway.config().hearth.speech.as_ref()),
        )),
    );
    let limited = limited
        .layer(middleware::from_fn(json_only))
        .merge(heard)
        .layer(limiter);
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
    let member = approval
        .member
        .as_deref()
        .map(str::trim)
        .filter(|member| !member.is_empty());
    match claw.approve(approval.request_id.trim(), member).await {
        Ok(paired) => Json(json!({"paired": paired})).into_response(),
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
    match claw.remove(removal.id.trim()).await {
        Ok(removed) => Json(json!({"removed": removed})).into_response(),
        Err(error) => device_store_failed(&error),
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let text = gateway.metrics().render(&gateway.router().status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn chat(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    let envelope: ChatEnvelope = match hearth_e2ee::envelope::parse_envelope(&body) {
        Ok(envelope) => envelope,
        Err(error) => return refusal(&gateway, Refused::from(error)),
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
        Err(error) => return refusal(&gateway, Refused::from(error)),
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
