//! Why the gateway did not start a turn, whatever stopped it: a sealed
//! request's envelope (its shape, key, time, replay, decryption), the rate
//! a device or address is held to, or the conversation use case (the
//! policy, the budget, a slot, the model asked for). One type, a stable
//! code and a sentence for the caller; each API's edge gives it the status
//! and body of its wire.

use hearth_e2ee::{EnvelopeError, ErrorCode, Rejection};

/// A refusal: a stable code and why, for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The code (`not_permitted`, `budget_exhausted`, `busy`,
    /// `replayed_request`, …).
    pub code: ErrorCode,
    /// Why, for the caller.
    pub message: String,
}

impl Refused {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
        }
    }

    /// A sealed request under a key id the gateway does not accept.
    pub fn unknown_key(key_id: &str) -> Refused {
        Refused::new(
            ErrorCode::UnknownKey,
            format!("key `{key_id}` is not accepted (unknown or retired); fetch /api/pubkey again"),
        )
    }

    /// Too many requests from one device or address.
    pub fn rate_limited() -> Refused {
        Refused::new(ErrorCode::RateLimited, "too many requests; slow down")
    }
}

impl From<Rejection> for Refused {
    /// Outside the time window, replayed, or the window is full.
    fn from(rejection: Rejection) -> Refused {
        let code = match rejection {
            Rejection::Stale { .. } => ErrorCode::StaleRequest,
            Rejection::Future { .. } => ErrorCode::FutureRequest,
            Rejection::Replayed => ErrorCode::ReplayedRequest,
            Rejection::Full => ErrorCode::Busy,
        };
        Refused::new(code, rejection.to_string())
    }
}

impl From<EnvelopeError> for Refused {
    /// The envelope does not parse, was altered, or does not decrypt.
    fn from(error: EnvelopeError) -> Refused {
        Refused::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_envelope_refusal_keeps_its_code_and_reason() {
        let replayed = Refused::from(Rejection::Replayed);
        assert_eq!(replayed.code, ErrorCode::ReplayedRequest);
        assert_eq!(replayed.message, Rejection::Replayed.to_string());
        assert_eq!(Refused::from(Rejection::Full).code, ErrorCode::Busy);
        assert_eq!(
            Refused::from(EnvelopeError::Decryption).code,
            ErrorCode::DecryptionFailed
        );
        let unknown = Refused::unknown_key("k9");
        assert_eq!(unknown.code, ErrorCode::UnknownKey);
        assert!(unknown.message.contains("`k9`"), "{}", unknown.message);
    }
}
