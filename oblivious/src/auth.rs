//! The config server (`hearth-pcc-auth serve`, port 8080): `GET /api/config`
//! tells clients which relays to use, the OHTTP gateway's keys (derived
//! from the same seeds the gateway is given, so the two agree without
//! talking), when each key is accepted, the router as the gateway reaches
//! it, and the attestation policy clients apply.
//!
//! Its weakness, as in the design it follows: whoever can change what this
//! server publishes can point clients at other keys and a weaker policy.
//! It holds the seeds, and so could derive the gateway's private keys. A
//! signed bundle (keys and policy signed offline, the client pinning the
//! signer) is the planned answer; until then deploy it beside the gateway,
//! under the same administration.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use hearth_attest::Policy;
use hearth_ohttp::keys::{Seed, active};
use hearth_pcc::oblivious::{
    ApiConfig, AttestationConfig, CONFIG_VERSION, Features, RotationPeriod,
};
use hearth_runtime::clock::since_epoch;
use serde_json::json;
use tokio::net::TcpListener;

/// What the config server publishes, apart from the keys.
pub struct Published {
    /// Relays clients may use.
    pub relay_urls: Vec<String>,
    /// The OHTTP gateway.
    pub gateway_url: String,
    /// The router as the gateway reaches it.
    pub router_url: String,
    /// The attestation policy, and its file's bytes.
    pub policy: (Policy, Vec<u8>),
}

/// The document at `now`: only the keys active then. Pure.
pub fn document(published: &Published, seeds: &[Seed], now: Duration) -> ApiConfig {
    let active = active(seeds, now);
    let configs: Vec<_> = active.iter().map(|seed| seed.config()).collect();
    let (policy, text) = &published.policy;
    ApiConfig {
        version: CONFIG_VERSION.into(),
        features: Features {
            ohttp: true,
            real_attestation: !policy.allow_dev_evidence,
        },
        relay_urls: published.relay_urls.clone(),
        gateway_url: published.gateway_url.clone(),
        router_url: published.router_url.clone(),
        ohttp_key_configs_bundle: base64::engine::general_purpose::STANDARD
            .encode(hearth_ohttp::encode_keys(&configs)),
        ohttp_key_rotation_periods: active
            .iter()
            .map(|seed| RotationPeriod {
                key_id: seed.key_id,
                active_from: hearth_attest::report::rfc3339(seed.active_from),
                active_until: hearth_attest::report::rfc3339(seed.active_until),
            })
            .collect(),
        attestation: AttestationConfig::for_policy(policy, text),
    }
}

struct AuthState {
    published: Published,
    seeds: Vec<Seed>,
}

async fn config(State(state): State<Arc<AuthState>>) -> Response {
    let document = document(&state.published, &state.seeds, since_epoch());
    ([(header::CACHE_CONTROL, "max-age=30")], Json(document)).into_response()
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    published: Published,
    seeds: Vec<Seed>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = Arc::new(AuthState { published, seeds });
    let app = Router::new()
        .route("/api/config", get(config))
        .route("/health", get(health))
        .with_state(state);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
        hearth_http::Scale::Household,
    ));
    tracing::info!(address = %listen, "config server serving");
    hearth_http::serve::serve_tcp(listener, gate, app, shutdown).await?;
    tracing::info!("config server stopped");
    Ok(())
}
