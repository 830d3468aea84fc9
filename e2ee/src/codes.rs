//! The stable error codes of the encrypted chat and the gateway's HTTP APIs,
//! shared by the gateway and every client: one enum, serialized to the
//! strings docs/e2ee-protocol.md and docs/gateway.md list.

use serde::{Deserialize, Serialize};

/// An error code, as it travels in `{"error": {"code": ...}}` and in a
/// sealed `error` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not an envelope (or not JSON, or a field unknown, twice, missing or of the wrong type).
    Malformed,
    /// The envelope's `aad` does not bind its fields.
    Tampered,
    /// The timestamp is too old.
    StaleRequest,
    /// The timestamp is too far ahead.
    FutureRequest,
    /// The key id is unknown or retired.
    UnknownKey,
    /// The envelope does not decrypt.
    DecryptionFailed,
    /// The request id was seen before.
    ReplayedRequest,
    /// Too many requests from this device or address.
    RateLimited,
    /// No reply slot is free.
    Busy,
    /// The caller is neither a token holder nor a mesh device.
    Unauthenticated,
    /// A web page of another origin, or a name the gateway does not answer to.
    CrossSite,
    /// The body is not declared JSON.
    UnsupportedMediaType,
    /// No such endpoint.
    NotFound,
    /// The endpoint does not take that method.
    MethodNotAllowed,
    /// The OpenAI API was asked for a model it does not serve.
    ModelNotFound,
    /// Not an OpenAI chat completion request.
    InvalidRequestError,
    /// No model could answer.
    NoModel,
    /// The conversation is longer than the model's context.
    ContextOverflow,
    /// The model's reply failed before it was complete.
    BackendFailed,
    /// The model refused the request.
    BackendRefused,
    /// The sealed plaintext is not a chat request.
    BadRequest,
    /// The gateway failed.
    Internal,
    /// The access policy does not let this caller use what it asked for.
    NotPermitted,
    /// The caller's daily token budget is spent.
    BudgetExhausted,
    /// A code this client does not know (from a newer gateway).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it travels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::Tampered => "tampered",
            ErrorCode::StaleRequest => "stale_request",
            ErrorCode::FutureRequest => "future_request",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::DecryptionFailed => "decryption_failed",
            ErrorCode::ReplayedRequest => "replayed_request",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::CrossSite => "cross_site",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::InvalidRequestError => "invalid_request_error",
            ErrorCode::NoModel => "no_model",
            ErrorCode::ContextOverflow => "context_overflow",
            ErrorCode::BackendFailed => "backend_failed",
            ErrorCode::BackendRefused => "backend_refused",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Internal => "internal",
            ErrorCode::NotPermitted => "not_permitted",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// A code compares equal to the string it travels as.
impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_strings_and_unknown_ones_are_kept_apart() {
        for code in [
            ErrorCode::StaleRequest,
            ErrorCode::NoModel,
            ErrorCode::CrossSite,
        ] {
            let text = serde_json::to_string(&code).unwrap();
            assert_eq!(text, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"quantum_flux\"").unwrap(),
            ErrorCode::Unknown
        );
    }
}
