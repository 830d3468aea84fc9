//! The Tailscale control protocol's entry on the node listener: `GET
//! /key?v=N` gives a client the control key it starts its Noise handshake
//! with (`hearth_control::ts2021`). Clients older than
//! [`MIN_CAPABILITY`](hearth_control::ts2021::MIN_CAPABILITY) are refused
//! with a message naming the minimum.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use hearth_control::ts2021;
use hearth_control::wire::ErrorBody;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The coordinator's Tailscale control key.
pub struct ControlKey {
    secret: StaticSecret,
    public: [u8; 32],
}

impl ControlKey {
    /// The key in `path` (64 hex digits, kept from other users), made and
    /// written 0600 on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<ControlKey> {
        let secret = match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(path)?);
                anyhow::ensure!(
                    hearth_files::token::private_enough(mode),
                    "{} is open to other users (chmod 600)",
                    path.display()
                );
                let bytes = Zeroizing::new(
                    hex::decode(text.trim())
                        .with_context(|| format!("{} is not hex", path.display()))?,
                );
                let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!("{} does not hold a 32-byte key", path.display())
                })?;
                StaticSecret::from(bytes)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret = StaticSecret::random();
                let text = Zeroizing::new(hex::encode(secret.to_bytes()));
                crate::state_dir::write_private(path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                secret
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let public = PublicKey::from(&secret).to_bytes();
        Ok(ControlKey { secret, public })
    }

    /// The secret, for the handshake.
    pub fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The public key clients fetch.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    v: Option<u16>,
}

/// The Tailscale routes of the node listener.
pub fn router(key: Arc<ControlKey>) -> Router {
    Router::new()
        .route("/key", get(control_key))
        .route("/ts2021", post(upgrade))
        .with_state(key)
}

/// `POST /ts2021` with `Upgrade: tailscale-control-protocol` and the
/// handshake initiation in `X-Tailscale-Handshake`: 101, the handshake
/// response, then HTTP/2 inside the session.
async fn upgrade(State(key): State<Arc<ControlKey>>, mut request: Request) -> Response {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if !header("upgrade")
        .is_some_and(|value| value.eq_ignore_ascii_case("tailscale-control-protocol"))
    {
        return (
            StatusCode::BAD_REQUEST,
            "ask for Upgrade: tailscale-control-protocol",
        )
            .into_response();
    }
    let Some(initiation) = header("x-tailscale-handshake")
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "no or bad X-Tailscale-Handshake header",
        )
            .into_response();
    };
    match ts2021::initiation_version(&initiation) {
        Ok(version) => {
            if let Err(message) = ts2021::check_capability(version) {
                return (StatusCode::BAD_REQUEST, message).into_response();
            }
        }
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
    let accepted = match ts2021::accept(&initiation, key.secret(), &StaticSecret::random()) {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::info!(%error, "a ts2021 handshake was refused");
            return (StatusCode::BAD_REQUEST, "the handshake did not open").into_response();
        }
    };
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(serve_session(upgrading, accepted));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "tailscale-control-protocol")
        .header("connection", "upgrade")
        .body(axum::body::Body::empty())
        .expect("a fixed response builds")
}

/// After the 101: the handshake response, then HTTP/2 inside the session.
async fn serve_session(upgrading: hyper::upgrade::OnUpgrade, accepted: ts2021::Accepted) {
    let upgraded = match upgrading.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "the ts2021 upgrade did not complete");
            return;
        }
    };
    let mut io = TokioIo::new(upgraded);
    if let Err(error) = tokio::io::AsyncWriteExt::write_all(&mut io, &accepted.response).await {
        tracing::debug!(%error, "could not send the handshake response");
        return;
    }
    let machine = ts2021::machine_key_text(&accepted.machine_key);
    tracing::info!(machine = %machine, version = accepted.version, "ts2021 session open");
    let stream = super::noise_stream::NoiseStream::new(io, accepted.session);
    let service = hyper::service::service_fn(
        move |inner: hyper::Request<hyper::body::Incoming>| {
            let machine = machine.clone();
            async move {
                tracing::info!(machine = %machine, method = %inner.method(), path = %inner.uri().path(), "ts2021 request");
                let body = serde_json::json!({"error": "not_implemented",
                "message": "this coordinator does not serve Tailscale registration yet"})
                .to_string();
                hyper::Response::builder()
                    .status(StatusCode::NOT_IMPLEMENTED)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            }
        },
    );
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "a ts2021 session ended with an error");
    }
}

async fn control_key(
    State(key): State<Arc<ControlKey>>,
    Query(query): Query<KeyQuery>,
) -> Response {
    let refused = |message: String| {
        let body = ErrorBody {
            error: "unsupported_client".into(),
            message,
        };
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    let Some(version) = query.v else {
        return refused("ask /key?v=N with the client's capability version".into());
    };
    if let Err(message) = ts2021::check_capability(version) {
        return refused(message);
    }
    Json(ts2021::key_response(&key.public())).into_response()
}
