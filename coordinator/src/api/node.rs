//! The node API, served over HTTPS to agents.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use hearth_control::compression::{self, Encoding};
use hearth_control::wire::{
    APPROVAL_PATH, ApprovalMessage, CERT_PATH, ENDPOINTS_PATH, MAP_PATH, MapMessage, REGISTER_PATH,
    ROTATE_PATH, ROUTES_PATH, RoutesReport,
};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

use super::{PeerInfo, parse_json};
use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::netmap::Credential;
use crate::streams::{Line, Subscription, encode_line};

/// How many registrations one address may make: a burst, then one per period.
#[derive(Clone, Copy, Debug)]
pub struct RegisterLimit {
    /// Registrations allowed at once.
    pub burst: u32,
    /// Time to earn one more.
    pub period: Duration,
}

/// The limit on registrations per source address. One limiter serves
/// `hearth-agent` registrations and the Tailscale control protocol's
/// `/machine/register` alike: an address's budget is the same whichever
/// protocol it uses.
pub type RegisterLimiter = GovernorLayer<
    PeerIpKeyExtractor,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    Body,
>;

/// The limiter for `limit`.
pub fn register_limiter(limit: RegisterLimit) -> RegisterLimiter {
    let governor = GovernorConfigBuilder::default()
        .key_extractor(PeerIpKeyExtractor)
        .period(limit.period)
        .burst_size(limit.burst.max(1))
        .finish()
        .expect("period and burst are non-zero");
    GovernorLayer::new(governor).error_handler(|_| {
        let body = hearth_control::wire::ErrorBody {
            error: "rate_limited".into(),
            message: "too many registrations from this address; wait and retry".into(),
        };
        (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
    })
}

/// The node API routes; registrations within `limiter`.
pub fn router(coordinator: Arc<Coordinator>, limiter: RegisterLimiter) -> Router {
    let register = Router::new()
        .route(REGISTER_PATH, post(register))
        .layer(limiter)
        .layer(DefaultBodyLimit::max(64 * 1024));
    // Reports and rotation read a body: only from a known node's certificate,
    // checked before a byte of it is read.
    let reports = Router::new()
        .route(ENDPOINTS_PATH, post(endpoints))
        .route(ROUTES_PATH, post(routes))
        .route(ROTATE_PATH, post(rotate))
        .route(CERT_PATH, post(certificate))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&coordinator),
            known_node,
        ));
    Router::new()
        .route(MAP_PATH, get(map))
        .route(APPROVAL_PATH, get(approval))
        .route("/health", get(|| async { "ok" }))
        .merge(reports)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .merge(register)
        .with_state(coordinator)
}

/// Lets a request through only when it came with the certificate of a
/// node the coordinator knows; answers the refusal otherwise, without
/// reading the body.
async fn known_node(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match coordinator
        .identify(peer.fingerprint.map(Credential::Certificate))
        .await
    {
        Ok(_) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn register(
    State(coordinator): State<Arc<Coordinator>>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let request = parse_json(&body)?;
    let response = coordinator.register(request).await?;
    Ok((StatusCode::CREATED, Json(response)))
}

async fn endpoints(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let report = parse_json(&body)?;
    coordinator
        .report_endpoints(
            peer.fingerprint.map(Credential::Certificate),
            report,
            Some(peer.remote),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let request = parse_json(&body)?;
    let response = coordinator
        .rotate_keys(peer.fingerprint.map(Credential::Certificate), &request)
        .await?;
    Ok(Json(response))
}

async fn certificate(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let request = parse_json(&body)?;
    let credential = peer
        .fingerprint
        .map(Credential::Certificate)
        .ok_or(Error::Unauthenticated)?;
    Ok(Json(
        coordinator.issue_certificate(credential, &request).await?,
    ))
}

async fn routes(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let report: RoutesReport = parse_json(&body)?;
    coordinator
        .report_routes(
            peer.fingerprint.map(Credential::Certificate),
            report.advertised,
            report.services,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn map(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    // Maps are large and mostly the same for many nodes: zstd when the
    // client takes it (see `hearth_control::compression`).
    let accept = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let encoding = Encoding::negotiate(accept);
    let subscription = coordinator
        .open_map(peer.fingerprint.map(Credential::Certificate), encoding)
        .await?;
    let keepalive = coordinator.settings().keepalive;
    Ok(stream_response(
        subscription,
        keepalive,
        encode_line(&MapMessage::KeepAlive),
        encoding,
    ))
}

async fn approval(
    State(coordinator): State<Arc<Coordinator>>,
    Extension(peer): Extension<PeerInfo>,
) -> Result<Response, Error> {
    let (_, subscription) = coordinator
        .open_approval(peer.fingerprint.map(Credential::Certificate))
        .await?;
    let keepalive = coordinator.settings().keepalive;
    Ok(stream_response(
        subscription,
        keepalive,
        encode_line(&ApprovalMessage::KeepAlive),
        Encoding::Identity,
    ))
}

/// A newline-delimited JSON response fed by `subscription`, with a keep-alive
/// line whenever nothing was sent for `keepalive`, in `encoding` (the
/// subscription's first line must already be in it). It ends when the
/// coordinator closes the subscription; the guard unregisters it when the
/// client goes away.
fn stream_response(
    subscription: Subscription,
    keepalive: Duration,
    keepalive_line: Bytes,
    encoding: Encoding,
) -> Response {
    let Subscription { receiver, guard } = subscription;
    let keepalive_line = Line::whole(keepalive_line);
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let lines = futures_util::stream::unfold(
        (receiver, ticks, guard),
        move |(mut receiver, mut ticks, guard)| {
            let keepalive_line = keepalive_line.clone();
            async move {
                let line = tokio::select! {
                    line = receiver.recv() => line?,
                    _ = ticks.tick() => keepalive_line,
                };
                ticks.reset();
                Some((line, (receiver, ticks, guard)))
            }
        },
    )
    .flat_map(move |line| {
        futures_util::stream::iter(line.into_pieces(encoding).map(Ok::<_, Infallible>))
    });
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store");
    if encoding == Encoding::Zstd {
        response = response.header(header::CONTENT_ENCODING, compression::ZSTD);
    }
    response
        .body(Body::from_stream(lines))
        .expect("static headers are valid")
}
