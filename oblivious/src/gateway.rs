//! The OHTTP gateway (`hearth-ohttp-gateway`, port 3200): removes the outer
//! layer of requests the relay forwards, sends the inner request only to an
//! allow-listed target (the router), and seals the response back, chunk by
//! chunk as it streams. It sees the relay's address, never the device's;
//! it reads which target is asked and the sealed envelope to a compute
//! node, which it cannot open.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use hearth_ohttp::bhttp::{self, Field};
use hearth_ohttp::hpke::KeyPair;
use hearth_ohttp::keys::{KEYS_MEDIA_TYPE, Seed};
use hearth_ohttp::{Error as OhttpError, KeyConfig, Mode, ResponseSealer};
use hearth_runtime::clock::since_epoch;
use serde_json::json;
use tokio::net::TcpListener;

use crate::allow::{AllowList, FORWARDED_HEADERS};

/// The largest encapsulated request taken.
pub const MAX_REQUEST: usize = 4 * 1024 * 1024;
/// The largest whole (not chunked) inner response sealed.
const MAX_WHOLE_RESPONSE: usize = 16 * 1024 * 1024;
/// Response headers passed back from the target.
const RETURNED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    hearth_pcc::protocol::NODE_HEADER,
];

/// The problem type RFC 9458 section 5.3 names for key problems.
pub const KEY_PROBLEM: &str = "https://iana.org/assignments/http-problem-types#ohttp-key";

/// How the gateway runs.
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The key seeds (from `OHTTP_SEEDS_JSON` or a file).
    pub seeds: Vec<Seed>,
    /// Where inner requests may go.
    pub allow: AllowList,
    /// How long to wait for a target's response to start.
    pub target_timeout: Duration,
}

struct Key {
    seed: Seed,
    pair: KeyPair,
    config: KeyConfig,
}

/// What the handlers share.
pub struct GatewayState {
    keys: Vec<Key>,
    allow: AllowList,
    http: reqwest::Client,
    /// Requests forwarded, refused: counts only, nothing about who or what.
    forwarded: AtomicU64,
    refused: AtomicU64,
}

impl GatewayState {
    fn new(settings: Settings) -> anyhow::Result<GatewayState> {
        let keys = settings
            .seeds
            .into_iter()
            .map(|seed| {
                let pair = seed.key_pair();
                let config = KeyConfig::new(seed.key_id, &pair);
                Key { seed, pair, config }
            })
            .collect();
        Ok(GatewayState {
            keys,
            allow: settings.allow,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .read_timeout(settings.target_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("the HTTP client to the targets")?,
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// The key configurations accepted at `now`, newest first.
    pub fn active_configs(&self, now: Duration) -> Vec<KeyConfig> {
        let mut active: Vec<&Key> = self
            .keys
            .iter()
            .filter(|key| key.seed.active(now))
            .collect();
        active.sort_by_key(|key| std::cmp::Reverse(key.seed.active_from));
        active.into_iter().map(|key| key.config.clone()).collect()
    }
}

fn problem(status: StatusCode, kind: &str, title: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": kind, "title": title}).to_string(),
    )
        .into_response()
}

/// The router of the gateway's HTTP API.
pub fn app(state: Arc<GatewayState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ohttp-keys", get(keys))
        .route("/gateway", post(gateway))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(state)
}

async fn health(State(state): State<Arc<GatewayState>>) -> Response {
    Json(json!({
        "status": "ok",
        "active_keys": state.active_configs(since_epoch()).len(),
        "forwarded": state.forwarded.load(Ordering::Relaxed),
        "refused": state.refused.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn keys(State(state): State<Arc<GatewayState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, KEYS_MEDIA_TYPE),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        hearth_ohttp::encode_keys(&state.active_configs(since_epoch())),
    )
        .into_response()
}

/// An inner response sealed whole or as the first and last chunk.
fn sealed_answer(mode: Mode, mut sealer: ResponseSealer, response: &bhttp::Response) -> Response {
    let body = match mode {
        Mode::Whole => sealer.seal_whole(&response.encode()),
        Mode::Chunked => {
            let mut out = sealer.start();
            let mut streamed = response.clone();
            streamed.framing.known_length = false;
            out.extend(
                sealer
                    .seal_chunk(&streamed.encode(), true)
                    .unwrap_or_default(),
            );
            out
        }
    };
    ([(header::CONTENT_TYPE, mode.response_media_type())], body).into_response()
}

fn inner_error(status: u16, code: &str, message: &str) -> bhttp::Response {
    let mut response = bhttp::Response::new(status);
    response
        .headers
        .push((b"content-type".to_vec(), b"application/json".to_vec()));
    response.content = json!({"error": {"code": code, "message": message}})
        .to_string()
        .into_bytes();
    response
}

async fn gateway(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    {
        Some(hearth_ohttp::encap::REQUEST_MEDIA_TYPE) => Mode::Whole,
        Some(hearth_ohttp::encap::CHUNKED_REQUEST_MEDIA_TYPE) => Mode::Chunked,
        _ => {
            return problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "about:blank",
                "send message/ohttp-req or message/ohttp-chunked-req",
            );
        }
    };
    let now = since_epoch();
    let opened = hearth_ohttp::decapsulate(
        &body,
        mode,
        |id| {
            state
                .keys
                .iter()
                .find(|key| key.seed.key_id == id && key.seed.active(now))
                .map(|key| (&key.pair, &key.config))
        },
        None,
    );
    let opened = match opened {
        Ok(opened) => opened,
        Err(OhttpError::UnknownKey(_) | OhttpError::Unsupported(_)) => {
            state.refused.fetch_add(1, Ordering::Relaxed);
            return problem(
                StatusCode::BAD_REQUEST,
                KEY_PROBLEM,
                "the key configuration is not accepted now: fetch the current keys",
            );
        }
        Err(_) => {
            state.refused.fetch_add(1, Ordering::Relaxed);
            return problem(
                StatusCode::BAD_REQUEST,
                "about:blank",
                "the encapsulated request is malformed or did not open",
            );
        }
    };
    let sealer = opened.sealer;
    let inner = match bhttp::Request::decode(&opened.request) {
        Ok(inner) => inner,
        Err(_) => {
            state.refused.fetch_add(1, Ordering::Relaxed);
            return sealed_answer(
                mode,
                sealer,
                &inner_error(400, "malformed", "the inner request is not Binary HTTP"),
            );
        }
    };
    let url = match state.allow.check(&inner) {
        Ok(url) => url,
        Err(why) => {
            state.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!("an inner request to a target not on the allow-list was refused");
            return sealed_answer(mode, sealer, &inner_error(403, "target_not_allowed", why));
        }
    };
    let method = if inner.method == b"GET" {
        reqwest::Method::GET
    } else {
        reqwest::Method::POST
    };
    let mut request = state.http.request(method, &url);
    for (name, value) in &inner.headers {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if FORWARDED_HEADERS.contains(&name.as_str()) {
            request = request.header(name, value.as_slice());
        }
    }
    let sent = request.body(inner.content.clone()).send().await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => {
            return sealed_answer(
                mode,
                sealer,
                &inner_error(
                    502,
                    "target_unreachable",
                    "the inner target could not be reached",
                ),
            );
        }
    };
    state.forwarded.fetch_add(1, Ordering::Relaxed);
    let status = response.status().as_u16();
    let returned: Vec<Field> = response
        .headers()
        .iter()
        .filter(|(name, _)| RETURNED_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect();
    match mode {
        Mode::Whole => {
            let mut whole = bhttp::Response::new(status);
            whole.headers = returned;
            match read_limited(response, MAX_WHOLE_RESPONSE).await {
                Some(content) => whole.content = content,
                None => {
                    return sealed_answer(
                        mode,
                        sealer,
                        &inner_error(
                            502,
                            "target_failed",
                            "the target's response broke off or was too large",
                        ),
                    );
                }
            }
            sealed_answer(mode, sealer, &whole)
        }
        Mode::Chunked => streamed(sealer, status, &returned, response),
    }
}

async fn read_limited(response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece.ok()?);
        if out.len() > limit {
            return None;
        }
    }
    Some(out)
}

/// The target's response as chunked OHTTP: the nonce and the inner head
/// first, then each piece of content sealed as it comes, then the final
/// chunk. If the target breaks off, the final chunk is never sent: the
/// client sees a cut, never a silent end.
fn streamed(
    mut sealer: ResponseSealer,
    status: u16,
    headers: &[Field],
    response: reqwest::Response,
) -> Response {
    let mut first = sealer.start();
    first.extend(
        sealer
            .seal_chunk(&bhttp::response_head(status, headers), false)
            .expect("a response head is never empty"),
    );
    let start =
        futures_util::stream::once(async move { Ok::<Bytes, Infallible>(Bytes::from(first)) });
    let rest = futures_util::stream::unfold(
        Some((response.bytes_stream(), sealer)),
        |state| async move {
            let (mut body, mut sealer) = state?;
            loop {
                match body.next().await {
                    Some(Ok(piece)) if piece.is_empty() => continue,
                    Some(Ok(piece)) => {
                        let chunk = sealer
                            .seal_chunk(&bhttp::content_chunk(&piece), false)
                            .expect("content chunks are never empty");
                        return Some((Ok(Bytes::from(chunk)), Some((body, sealer))));
                    }
                    Some(Err(_)) => {
                        tracing::warn!(
                            "an inner target's response broke off; the client will see the cut"
                        );
                        return None;
                    }
                    None => {
                        let last = sealer
                            .seal_chunk(&bhttp::RESPONSE_END, true)
                            .expect("the final chunk can hold anything");
                        return Some((Ok(Bytes::from(last)), None));
                    }
                }
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, Mode::Chunked.response_media_type())
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(start.chain(rest)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Serves until `shutdown` completes.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = settings.listen;
    let state = Arc::new(GatewayState::new(settings)?);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
        hearth_http::Scale::OHTTP_GATEWAY,
    ));
    let address = listener.local_addr().unwrap_or(listen);
    tracing::info!(%address, keys = state.keys.len(), "OHTTP gateway serving");
    hearth_http::serve::serve_tcp(listener, gate, app(state), shutdown).await?;
    tracing::info!("OHTTP gateway stopped");
    Ok(())
}
