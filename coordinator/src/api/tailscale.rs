//! The Tailscale control protocol's entry on the node listener: `GET
//! /key?v=N` gives a client the control key it starts its Noise handshake
//! with (`hearth_control::ts2021`). Clients older than
//! [`MIN_CAPABILITY`](hearth_control::ts2021::MIN_CAPABILITY) are refused
//! with a message naming the minimum.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hearth_control::ts2021;
use hearth_control::wire::ErrorBody;
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
        .with_state(key)
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
