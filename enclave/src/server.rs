//! The node's HTTP edge (reached only by the router) and its heartbeats.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use hearth_e2ee::ErrorCode;
use hearth_pcc::protocol::{AttestRequest, Heartbeat, HeartbeatReply, MAX_ENVELOPE, NONCE_BYTES};
use hearth_runtime::clock::{since_epoch, unix_seconds};
use serde_json::json;
use zeroize::Zeroizing;

use crate::node::ComputeNode;

fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let message: String = message.into();
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The node's routes.
pub fn app(node: Arc<ComputeNode>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/attest", post(attest))
        .route("/v1/compute", post(compute))
        .layer(DefaultBodyLimit::max(MAX_ENVELOPE))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        })
        .with_state(node)
}

async fn health(State(node): State<Arc<ComputeNode>>) -> Response {
    Json(json!({"node": node.id(), "load": node.load()})).into_response()
}

async fn attest(State(node): State<Arc<ComputeNode>>, body: Bytes) -> Response {
    let nonce = serde_json::from_slice::<AttestRequest>(&body)
        .ok()
        .and_then(|request| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(request.nonce)
                .ok()
        })
        .filter(|nonce| NONCE_BYTES.contains(&nonce.len()));
    let Some(nonce) = nonce else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            "expected {\"nonce\": 16 to 64 bytes of unpadded base64url}",
        );
    };
    match node.evidence(Some(&nonce), since_epoch()) {
        Ok(bundle) => Json(bundle).into_response(),
        Err(why) => {
            tracing::error!(error = %why, "cannot make evidence");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "evidence could not be made",
            )
        }
    }
}

async fn compute(State(node): State<Arc<ComputeNode>>, body: Bytes) -> Response {
    let admitted = match node.admit(&body, unix_seconds()) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            tracing::debug!(code = %refusal.code(), "request refused");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, refusal.code(), refusal.to_string());
        }
    };
    drop(body);
    let chunks = node.reply(admitted).await;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(futures_util::StreamExt::map(
            chunks,
            Ok::<Bytes, std::convert::Infallible>,
        )))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "building the reply failed",
            )
        })
}

/// Where the node reports to.
pub struct Registration {
    /// The router's base URL.
    pub router: String,
    /// The token the router gave its nodes.
    pub token: Zeroizing<String>,
    /// The URL the router reaches this node at.
    pub advertise: String,
}

/// Heartbeats to the router until dropped: load and evidence, at the
/// interval the router asks for.
pub async fn heartbeats(node: Arc<ComputeNode>, registration: Registration) {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut interval = Duration::from_secs(5);
    let mut reachable = true;
    loop {
        let beat = match node.evidence(None, since_epoch()) {
            Ok(bundle) => Heartbeat {
                url: registration.advertise.clone(),
                models: node.models().to_vec(),
                load: node.load(),
                bundle,
            },
            Err(why) => {
                tracing::error!(error = %why, "cannot make evidence; not heartbeating");
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        let sent = http
            .post(format!("{}/v1/nodes/heartbeat", registration.router))
            .bearer_auth(registration.token.as_str())
            .json(&beat)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                if !reachable {
                    tracing::info!("the router answers heartbeats again");
                }
                reachable = true;
                if let Ok(reply) = response.json::<HeartbeatReply>().await {
                    interval = Duration::from_secs(reply.interval_seconds.clamp(1, 300));
                }
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                tracing::warn!(%status, %body, "the router refused a heartbeat");
                reachable = false;
            }
            Err(why) => {
                if reachable {
                    tracing::warn!(error = %why, "the router cannot be reached");
                }
                reachable = false;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Serves `node` on `listen` until `shutdown`, heartbeating meanwhile:
/// on TCP, or on vsock or a UNIX socket behind a proxy that names each
/// connection's client ([`crate::vsock`]); the same server either way.
pub async fn serve(
    node: Arc<ComputeNode>,
    listen: crate::vsock::Endpoint,
    registration: Registration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use crate::vsock::Listener;
    use hearth_http::serve::{serve_forwarded, serve_tcp};
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
        hearth_http::Scale::COMPUTE_NODE,
    ));
    let app = app(Arc::clone(&node));
    let listener = Listener::bind(&listen).await?;
    serving(&node, &listener.bound(&listen));
    let beats = tokio::spawn(heartbeats(Arc::clone(&node), registration));
    let served = match listener {
        Listener::Tcp(listener) => serve_tcp(listener, gate, app, shutdown).await,
        Listener::Vsock(listener) => serve_forwarded(listener, gate, app, shutdown).await,
        Listener::Unix(listener) => serve_forwarded(listener, gate, app, shutdown).await,
    };
    beats.abort();
    served?;
    tracing::info!("compute node stopped");
    Ok(())
}

fn serving(node: &ComputeNode, listen: &crate::vsock::Endpoint) {
    tracing::info!(address = %listen, node = node.id(), rek = %hearth_pcc::key_id(&node.rek()), "compute node serving");
}
