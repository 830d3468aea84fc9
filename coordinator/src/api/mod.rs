//! The HTTP edge: the node API (HTTPS, mutual TLS) and the admin API (UNIX
//! socket). Handlers are thin: parse, call the coordinator, map the result.

use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_control::Fingerprint;
use hearth_control::wire::ErrorBody;

use crate::db::DbError;
use crate::error::Error;

pub mod admin;
pub mod derp;
pub mod node;
pub mod relay;
pub mod tailscale;

/// What the TLS layer learned about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    /// The TCP peer address.
    pub remote: SocketAddr,
    /// Fingerprint of the client certificate, when one was presented.
    pub fingerprint: Option<Fingerprint>,
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidKey | Error::KeyExpired | Error::KeyUsed => StatusCode::UNAUTHORIZED,
            Error::Unauthenticated | Error::UnknownNode => StatusCode::UNAUTHORIZED,
            Error::NodePending { .. } | Error::NodeNotAdmitted { .. } | Error::SignIn(_) => {
                StatusCode::FORBIDDEN
            }
            Error::BadRequest(_) | Error::BadName(_) | Error::PolicyInvalid(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::TooManyPending(_) | Error::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Error::AlreadyRegistered(_) | Error::Conflict(_) | Error::Db(DbError::Conflict(_)) => {
                StatusCode::CONFLICT
            }
            Error::Exhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(_) | Error::Tls(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "internal error; see the coordinator's log".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: self.code().to_owned(),
            message,
        };
        (status, Json(body)).into_response()
    }
}

/// Parses a JSON body, turning any mistake into a clear 400.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|error| Error::BadRequest(format!("malformed JSON body: {error}")))
}
