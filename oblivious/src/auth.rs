//! The config server (`hearth-pcc-auth serve`, port 8080): `GET /api/config`
//! tells clients which relays to use, the OHTTP gateway's keys (derived
//! from the same seeds the gateway is given, so the two agree without
//! talking), when each key is accepted, the router as the gateway reaches
//! it, and the attestation policy clients apply.
//!
//! With `--log DIR` it also serves the transparency log
//! ([`hearth_transparency`]) the operator keeps there: `GET /log/checkpoint`
//! (the signed checkpoint), `/log/entries?start=&end=` and
//! `/log/proof/consistency?first=&second=`, and, in the document, the
//! inclusion proof of each active key and each policy image the log
//! holds. A client whose policy names the log uses only what is proven,
//! so this server's word alone can no longer point clients at another key
//! or image: what it publishes must be in the append-only log, where every
//! client and auditor sees it, and a log that shows clients different
//! histories is caught by their kept checkpoints. It still holds the seeds
//! (and so could derive the gateway's private keys): deploy it beside the
//! gateway, under the same administration.

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
use hearth_transparency::store::Snapshot;
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
    /// The transparency log's directory, if it keeps one.
    pub log: Option<std::path::PathBuf>,
}

/// The log's proofs for what a document relies on: each active key's
/// entry and each policy image's, where the log holds them. Pure.
pub fn log_proofs(
    snapshot: &Snapshot,
    policy: &Policy,
    active: &[&Seed],
) -> hearth_transparency::proofs::LogProofs {
    use hearth_pcc::transparency::{image_entries, key_entry};
    let wanted = active
        .iter()
        .map(|seed| key_entry(&seed.config(), seed.active_from, seed.active_until))
        .chain(image_entries(policy));
    let entries = wanted
        .filter_map(|entry| {
            let line = entry.to_line();
            let index = snapshot.index_of(&line)?;
            Some(hearth_transparency::proofs::LoggedEntry {
                index: index as u64,
                entry: line,
                proof: hearth_transparency::proofs::hex_hashes(&snapshot.inclusion(index)?),
            })
        })
        .take(hearth_transparency::proofs::MAX_PROVEN)
        .collect();
    hearth_transparency::proofs::LogProofs {
        checkpoint: snapshot.note.clone(),
        entries,
    }
}

/// The document at `now`: only the keys active then. Pure.
pub fn document(
    published: &Published,
    seeds: &[Seed],
    log: Option<&Snapshot>,
    now: Duration,
) -> ApiConfig {
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
        transparency: log.map(|snapshot| log_proofs(snapshot, policy, &active)),
    }
}

struct AuthState {
    published: Published,
    seeds: Vec<Seed>,
    /// The log as last read, kept while its checkpoint is unchanged.
    log: std::sync::Mutex<Option<Arc<Snapshot>>>,
}

async fn config(State(state): State<Arc<AuthState>>) -> Response {
    let log = match state.snapshot() {
        Ok(log) => log,
        Err(unavailable) => return unavailable.into_response(),
    };
    let document = document(
        &state.published,
        &state.seeds,
        log.as_deref(),
        since_epoch(),
    );
    ([(header::CACHE_CONTROL, "max-age=30")], Json(document)).into_response()
}

/// The log is kept but cannot be read now.
struct LogUnavailable;

impl IntoResponse for LogUnavailable {
    fn into_response(self) -> Response {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"title": "the transparency log cannot be read"})),
        )
            .into_response()
    }
}

impl AuthState {
    /// The log as it is on disk now (`None`: no log kept). Read and hashed
    /// again only when its signed checkpoint changed: the log only grows,
    /// and a new checkpoint is written after the entries it covers, so an
    /// unchanged checkpoint means unchanged entries up to its size (what
    /// the operator's `add-keys` appends shows at its next checkpoint,
    /// without a restart).
    fn snapshot(&self) -> Result<Option<Arc<Snapshot>>, LogUnavailable> {
        let Some(dir) = &self.published.log else {
            return Ok(None);
        };
        let unavailable = |error: &dyn std::fmt::Display| {
            tracing::error!(%error, "the transparency log cannot be read");
            LogUnavailable
        };
        let note =
            std::fs::read_to_string(dir.join("checkpoint")).map_err(|error| unavailable(&error))?;
        let mut kept = hearth_runtime::lock(&self.log);
        if let Some(snapshot) = kept.as_ref()
            && snapshot.note == note
        {
            return Ok(Some(Arc::clone(snapshot)));
        }
        let snapshot = Arc::new(Snapshot::load(dir).map_err(|error| unavailable(&error))?);
        *kept = Some(Arc::clone(&snapshot));
        Ok(Some(snapshot))
    }
}

/// Entries one `/log/entries` answer holds at most.
const ENTRIES_PER_PAGE: usize = 1000;

#[derive(serde::Deserialize)]
struct Range {
    start: usize,
    end: usize,
}

#[derive(serde::Deserialize)]
struct Sizes {
    first: u64,
    second: u64,
}

fn not_found(what: &str) -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(json!({"title": what})),
    )
        .into_response()
}

/// `GET /log/checkpoint`: the signed checkpoint.
async fn log_checkpoint(State(state): State<Arc<AuthState>>) -> Response {
    match state.snapshot() {
        Ok(Some(log)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            log.note.clone(),
        )
            .into_response(),
        Ok(None) => not_found("this config server keeps no transparency log"),
        Err(unavailable) => unavailable.into_response(),
    }
}

/// `GET /log/entries?start=&end=`: entries `start` to `end` (exclusive),
/// at most a thousand.
async fn log_entries(
    State(state): State<Arc<AuthState>>,
    axum::extract::Query(range): axum::extract::Query<Range>,
) -> Response {
    match state.snapshot() {
        Ok(Some(log)) => {
            let end = range
                .end
                .min(log.entries.len())
                .min(range.start.saturating_add(ENTRIES_PER_PAGE));
            let page = log.entries.get(range.start..end).unwrap_or_default();
            Json(page).into_response()
        }
        Ok(None) => not_found("this config server keeps no transparency log"),
        Err(unavailable) => unavailable.into_response(),
    }
}

/// `GET /log/proof/consistency?first=&second=`.
async fn log_consistency(
    State(state): State<Arc<AuthState>>,
    axum::extract::Query(sizes): axum::extract::Query<Sizes>,
) -> Response {
    match state.snapshot() {
        Ok(Some(log)) => match log.consistency(sizes.first, sizes.second) {
            Some(proof) => Json(hearth_transparency::proofs::ConsistencyProof {
                first: sizes.first,
                second: sizes.second,
                proof: hearth_transparency::proofs::hex_hashes(&proof),
            })
            .into_response(),
            None => not_found("no such sizes in the log"),
        },
        Ok(None) => not_found("this config server keeps no transparency log"),
        Err(unavailable) => unavailable.into_response(),
    }
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
    let state = Arc::new(AuthState {
        published,
        seeds,
        log: std::sync::Mutex::default(),
    });
    let app = Router::new()
        .route("/api/config", get(config))
        .route("/log/checkpoint", get(log_checkpoint))
        .route("/log/entries", get(log_entries))
        .route("/log/proof/consistency", get(log_consistency))
        .route("/health", get(health))
        .with_state(state);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
        hearth_http::Scale::Household,
    ));
    let address = listener.local_addr().unwrap_or(listen);
    tracing::info!(%address, "config server serving");
    hearth_http::serve::serve_tcp(listener, gate, app, shutdown).await?;
    tracing::info!("config server stopped");
    Ok(())
}
