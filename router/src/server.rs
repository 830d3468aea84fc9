//! `hearth-router serve`: the HTTP edge over the [`Registry`], and the
//! forwarding of sealed requests and streamed replies. The router holds no
//! key that opens a request: it reads the candidates' node ids, never the
//! envelopes, and passes reply bytes through as they come. Nodes heartbeat
//! with their own credential ([`crate::credential`]); the router sends only
//! to node URLs in the allowed networks ([`crate::reach`]), follows no
//! redirect, and limits each client address, except the OHTTP gateways it
//! is told of, whose many clients the relay limits one by one.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::StreamExt as _;
use hearth_pcc::protocol::{
    AttestRequest, Forward, Heartbeat, HeartbeatReply, MAX_FORWARD, NODE_HEADER, NONCE_BYTES,
    NodeList, RouterCode, check_forward, cut_event,
};
use hearth_runtime::clock::since_epoch;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::reach::NodeNetworks;
use crate::registry::Registry;

/// Largest heartbeat or attestation body (a bundle with four documents).
const MAX_SMALL_BODY: usize = 512 * 1024;

/// How the router runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The key nodes' credentials are made with ([`crate::credential`]).
    pub node_key: Zeroizing<String>,
    /// Where compute nodes may be reached.
    pub networks: NodeNetworks,
    /// OHTTP gateways: their requests are many clients' (limited one by one
    /// at the relay), so the per-source limit does not apply to them.
    pub forwarders: Vec<IpAddr>,
    /// How often nodes are told to heartbeat.
    pub heartbeat: Duration,
    /// How long a silent node stays in rotation.
    pub node_timeout: Duration,
    /// How long to wait for a node's reply to start.
    pub reply_timeout: Duration,
    /// Replies streaming at once, at most.
    pub max_streams: usize,
    /// Requests per second from one source address (0: no limit).
    pub per_source_rate: u32,
    /// Requests one source may make at once before its rate applies.
    pub per_source_burst: u32,
}

/// What the handlers share.
pub struct RouterState {
    registry: Mutex<Registry>,
    node_key: Zeroizing<String>,
    heartbeat: Duration,
    http: reqwest::Client,
    streams: Arc<Semaphore>,
}

impl RouterState {
    /// The state for `settings`.
    pub fn new(settings: &Settings) -> anyhow::Result<RouterState> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(settings.reply_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            // A node (or what answers at its address) cannot send the router on.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("the HTTP client to the nodes")?;
        Ok(RouterState {
            registry: Mutex::new(Registry::new(
                settings.node_timeout,
                settings.networks.clone(),
            )),
            node_key: settings.node_key.clone(),
            heartbeat: settings.heartbeat,
            http,
            streams: Arc::new(Semaphore::new(settings.max_streams)),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        hearth_runtime::lock(&self.registry)
    }
}

fn error(status: StatusCode, code: RouterCode, message: impl Into<String>) -> Response {
    let message: String = message.into();
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn json_body(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|kind| kind.trim() == "application/json")
        });
    if declared {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RouterCode::UnsupportedMediaType,
            "the body must be application/json",
        )))
    }
}

/// Requests per second each client address may make (after a burst), and
/// the addresses that speak for many clients.
struct PerSource {
    limiter: Option<governor::DefaultKeyedRateLimiter<IpAddr>>,
    forwarders: Vec<IpAddr>,
}

impl PerSource {
    fn new(settings: &Settings) -> PerSource {
        let limiter = std::num::NonZeroU32::new(settings.per_source_rate).map(|rate| {
            let burst =
                std::num::NonZeroU32::new(settings.per_source_burst.max(1)).expect("at least one");
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        PerSource {
            limiter,
            forwarders: settings
                .forwarders
                .iter()
                .map(|address| address.to_canonical())
                .collect(),
        }
    }

    /// Whether a request from `source` may go on now.
    fn admit(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        if self.forwarders.contains(&source) {
            return true;
        }
        self.limiter
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&source).is_ok())
    }
}

async fn limit_per_source(
    State(per_source): State<Arc<PerSource>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if per_source.admit(peer.ip()) {
        next.run(request).await
    } else {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            RouterCode::RateLimited,
            "too many requests from this address",
        )
    }
}

/// The routes, with per-source limits on what clients call.
pub fn app(state: Arc<RouterState>, settings: &Settings) -> Router {
    let per_source = Arc::new(PerSource::new(settings));
    // Every minute, forget addresses that are back within their budget.
    let sweeping = Arc::downgrade(&per_source);
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                let Some(per_source) = sweeping.upgrade() else {
                    return;
                };
                if let Some(limiter) = &per_source.limiter {
                    limiter.retain_recent();
                }
            }
        });
    }
    let clients = Router::new()
        .route("/v1/nodes", get(nodes))
        .route("/v1/nodes/{node}/attest", post(attest))
        .route("/v1/compute", post(compute))
        .layer(DefaultBodyLimit::max(MAX_FORWARD))
        .route_layer(axum::middleware::from_fn_with_state(
            per_source,
            limit_per_source,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/v1/nodes/heartbeat", post(heartbeat))
        .merge(clients)
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                RouterCode::NotFound,
                "no such endpoint",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                RouterCode::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

async fn health(State(state): State<Arc<RouterState>>) -> Response {
    let nodes = state.registry().count(since_epoch());
    Json(json!({"status": "ok", "nodes": nodes})).into_response()
}

/// `POST /v1/nodes/heartbeat`: the node's credential is checked before its
/// body is read, and the heartbeat must be for the node it names.
async fn heartbeat(State(state): State<Arc<RouterState>>, request: Request) -> Response {
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let credited = match crate::credential::verify(state.node_key.as_bytes(), presented) {
        Ok(node) => node.to_owned(),
        Err(why) => {
            return error(
                StatusCode::UNAUTHORIZED,
                RouterCode::Unauthenticated,
                format!("nodes present their own credential: {why}"),
            );
        }
    };
    if let Err(refused) = json_body(headers) {
        return *refused;
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_SMALL_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                RouterCode::TooLarge,
                format!("a heartbeat is at most {MAX_SMALL_BODY} bytes, sent whole"),
            );
        }
    };
    let beat: Heartbeat = match serde_json::from_slice(&body) {
        Ok(beat) => beat,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                RouterCode::Malformed,
                format!("not a heartbeat: {why}"),
            );
        }
    };
    let node = beat.bundle.node.clone();
    if node != credited {
        tracing::warn!(%credited, claimed = %node, "a node's heartbeat named another node; refused");
        return error(
            StatusCode::FORBIDDEN,
            RouterCode::Unauthenticated,
            format!("this credential is node {credited}'s; the heartbeat is for {node}"),
        );
    }
    let joined = {
        let mut registry = state.registry();
        let known = registry.url(&node).is_some();
        registry.heartbeat(beat, since_epoch()).map(|()| !known)
    };
    match joined {
        Ok(joined) => {
            if joined {
                tracing::info!(%node, "compute node joined");
            }
            Json(HeartbeatReply {
                interval_seconds: state.heartbeat.as_secs().max(1),
            })
            .into_response()
        }
        Err(why) => error(
            StatusCode::BAD_REQUEST,
            RouterCode::Malformed,
            why.to_string(),
        ),
    }
}

async fn nodes(State(state): State<Arc<RouterState>>) -> Response {
    let nodes = state.registry().list(since_epoch());
    Json(NodeList { nodes }).into_response()
}

async fn attest(
    State(state): State<Arc<RouterState>>,
    Path(node): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = json_body(&headers) {
        return *refused;
    }
    let request: AttestRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                RouterCode::Malformed,
                format!("not an attestation request: {why}"),
            );
        }
    };
    let nonce_ok = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&request.nonce)
        .is_ok_and(|nonce| NONCE_BYTES.contains(&nonce.len()));
    if !nonce_ok {
        return error(
            StatusCode::BAD_REQUEST,
            RouterCode::Malformed,
            "`nonce` must be 16 to 64 bytes of unpadded base64url",
        );
    }
    let url = {
        let registry = state.registry();
        let listed = registry
            .list(since_epoch())
            .iter()
            .any(|entry| entry.node == node);
        match registry.url(&node) {
            Some(url) if listed && registry.reachable(url) => url.to_owned(),
            _ => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    RouterCode::NoNode,
                    "that node is not in rotation",
                );
            }
        }
    };
    let sent = state
        .http
        .post(format!("{url}/v1/attest"))
        .json(&request)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => {
            state.registry().failed(&node);
            return error(
                StatusCode::BAD_GATEWAY,
                RouterCode::NodeFailed,
                "the node could not be reached",
            );
        }
    };
    let status = response.status();
    match response.bytes().await {
        Ok(bytes) if bytes.len() <= MAX_SMALL_BODY => (
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        _ => error(
            StatusCode::BAD_GATEWAY,
            RouterCode::NodeFailed,
            "the node's evidence did not arrive whole",
        ),
    }
}

/// Counts a forward against its node until dropped (the reply's end).
struct InFlight {
    state: Arc<RouterState>,
    node: String,
    _permit: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.registry().finished(&self.node);
    }
}

async fn compute(
    State(state): State<Arc<RouterState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = json_body(&headers) {
        return *refused;
    }
    let forward: Forward = match serde_json::from_slice(&body) {
        Ok(forward) => forward,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                RouterCode::Malformed,
                format!("not a forward request: {why}"),
            );
        }
    };
    if let Err(why) = check_forward(&forward) {
        return error(StatusCode::BAD_REQUEST, RouterCode::Malformed, why);
    }
    let order = state.registry().order(&forward, since_epoch());
    if order.is_empty() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            RouterCode::NoNode,
            "none of the candidates is in rotation",
        );
    }
    for index in order {
        let candidate = &forward.candidates[index];
        let Ok(permit) = Arc::clone(&state.streams).try_acquire_owned() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                RouterCode::Busy,
                "too many replies in flight; retry shortly",
            );
        };
        let url = {
            let mut registry = state.registry();
            let Some(url) = registry
                .url(&candidate.node)
                .filter(|url| registry.reachable(url))
                .map(str::to_owned)
            else {
                continue;
            };
            registry.started(&candidate.node);
            url
        };
        let flight = InFlight {
            state: Arc::clone(&state),
            node: candidate.node.clone(),
            _permit: permit,
        };
        let sent = state
            .http
            .post(format!("{url}/v1/compute"))
            .json(&candidate.envelope)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(why) => {
                tracing::warn!(node = %candidate.node, error = %why, "compute node unreachable; out of rotation until its next heartbeat");
                state.registry().failed(&candidate.node);
                continue;
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            // Full: another candidate may have room.
            continue;
        }
        tracing::debug!(node = %candidate.node, status = status.as_u16(), "forwarded");
        if !status.is_success() {
            // The node refused the request itself: its answer, unchanged.
            let bytes = response.bytes().await.unwrap_or_default();
            return (
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response();
        }
        return streamed(response, flight);
    }
    error(
        StatusCode::BAD_GATEWAY,
        RouterCode::NodeFailed,
        "no candidate node could take the request",
    )
}

/// The node's reply, passed through as it comes; if it breaks off, an
/// unsealed `error` event says so and the node leaves rotation.
fn streamed(response: reqwest::Response, flight: InFlight) -> Response {
    let node =
        HeaderValue::from_str(&flight.node).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let body = futures_util::stream::unfold(
        Some((response.bytes_stream(), flight)),
        |state| async move {
            let (mut body, flight) = state?;
            match body.next().await {
                Some(Ok(bytes)) => Some((Ok::<Bytes, Infallible>(bytes), Some((body, flight)))),
                Some(Err(why)) => {
                    tracing::warn!(node = %flight.node, error = %why, "a compute node's reply broke off");
                    flight.state.registry().failed(&flight.node);
                    let event =
                        cut_event(RouterCode::NodeFailed, "the compute node's reply broke off");
                    Some((Ok(Bytes::from(event)), None))
                }
                None => None,
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header(NODE_HEADER, node)
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                RouterCode::NodeFailed,
                "building the reply failed",
            )
        })
}

/// Serves until `shutdown` completes.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = Arc::new(RouterState::new(&settings)?);
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let limits = hearth_http::Limits::for_scale(hearth_http::Scale::Front {
        total: settings.max_streams + 1024,
        per_source: 4096,
    });
    let gate = hearth_http::Gate::new(limits);
    tracing::info!(address = %settings.listen, "router serving");
    let sweeper = tokio::spawn({
        let state = Arc::clone(&state);
        async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                state.registry().forget_silent(since_epoch());
            }
        }
    });
    hearth_http::serve::serve_tcp(listener, gate, app(state, &settings), shutdown).await?;
    sweeper.abort();
    tracing::info!("router stopped");
    Ok(())
}
