//! The OHTTP relay (`hearth-ohttp-relay`, port 3100): forwards encapsulated
//! requests to its one configured gateway and streams the responses back,
//! each piece as it comes. It sees the device's address and holds no key:
//! what it forwards it cannot read. It passes on the content type and the
//! body only (no client address, no cookies, no user agent), limits each
//! source, and keeps counts, not logs of who asked.

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
use serde_json::json;
use tokio::net::TcpListener;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

use crate::gateway::MAX_REQUEST;

/// How the relay runs.
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The OHTTP gateway's URL (`http://ADDRESS:3200/gateway`).
    pub gateway: String,
    /// Requests per second from one source address (0: no limit).
    pub per_source_rate: u32,
    /// Requests one source may make at once before its rate applies.
    pub per_source_burst: u32,
    /// Connections one source may hold.
    pub per_source_connections: usize,
}

struct RelayState {
    gateway: String,
    http: reqwest::Client,
    relayed: AtomicU64,
    failed: AtomicU64,
}

fn problem(status: StatusCode, title: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": "about:blank", "title": title}).to_string(),
    )
        .into_response()
}

async fn relay(State(state): State<Arc<RelayState>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let Some(content_type) = content_type.filter(|kind| {
        [
            hearth_ohttp::encap::REQUEST_MEDIA_TYPE,
            hearth_ohttp::encap::CHUNKED_REQUEST_MEDIA_TYPE,
        ]
        .contains(kind)
    }) else {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send message/ohttp-req or message/ohttp-chunked-req",
        );
    };
    // Only the content type and the body go on: nothing that says who asked.
    let sent = state
        .http
        .post(&state.gateway)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => {
            state.failed.fetch_add(1, Ordering::Relaxed);
            return problem(
                StatusCode::BAD_GATEWAY,
                "the OHTTP gateway could not be reached",
            );
        }
    };
    state.relayed.fetch_add(1, Ordering::Relaxed);
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(kind) = response.headers().get(header::CONTENT_TYPE) {
        builder = builder.header(header::CONTENT_TYPE, kind.clone());
    }
    // Each piece goes out as it comes (chunked OHTTP replies stream).
    let body = response
        .bytes_stream()
        .map(|piece| piece.map_err(std::io::Error::other));
    builder
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn health(State(state): State<Arc<RelayState>>) -> Response {
    Json(json!({
        "status": "ok",
        "relayed": state.relayed.load(Ordering::Relaxed),
        "failed": state.failed.load(Ordering::Relaxed),
    }))
    .into_response()
}

/// Serves until `shutdown` completes.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = Arc::new(RelayState {
        gateway: settings.gateway.clone(),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("the HTTP client to the gateway")?,
        relayed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let mut app = Router::new()
        .route("/", post(relay))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(state);
    if settings.per_source_rate > 0 {
        let limiter = GovernorConfigBuilder::default()
            .period(Duration::from_nanos(
                (1_000_000_000 / u64::from(settings.per_source_rate)).max(1),
            ))
            .burst_size(settings.per_source_burst.max(1))
            .key_extractor(PeerIpKeyExtractor)
            .finish()
            .context("the per-source limit")?;
        app = app.layer(GovernorLayer::new(Arc::new(limiter)).error_handler(|_| {
            problem(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this address",
            )
        }));
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(hearth_http::Scale::Front {
        total: 8192,
        per_source: settings.per_source_connections,
    }));
    let address = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(%address, "OHTTP relay serving");
    hearth_http::serve::serve_tcp(listener, gate, app, shutdown).await?;
    tracing::info!("OHTTP relay stopped");
    Ok(())
}
