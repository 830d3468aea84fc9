//! The join token: everything a new device needs to reach and trust the
//! coordinator and to prove it may register, on one line.
//!
//! Format: `hearth-join-v1:` followed by the unpadded base64url encoding of a
//! JSON object `{"url": "...", "fingerprint": "<64 hex digits>", "key": "..."}`.
//! `fingerprint` is the SHA-256 of the coordinator's TLS certificate (DER);
//! agents pin it instead of trusting any certificate authority.
//!
//! A standalone relay joins the same way with a relay token: the prefix
//! `hearth-relay-v1:` and the same payload, `key` being the relay's secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::fingerprint::Fingerprint;
use crate::secret::SecretString;

const PREFIX: &str = "hearth-join-v1:";
/// The prefix of a relay token.
pub const RELAY_PREFIX: &str = "hearth-relay-v1:";

/// A decoded join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The coordinator's base URL, `https://host:port`.
    pub url: String,
    /// SHA-256 of the coordinator's certificate.
    pub fingerprint: Fingerprint,
    /// The pre-auth key.
    pub key: SecretString,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JoinToken")
            .field("url", &self.url)
            .field("fingerprint", &self.fingerprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct Encoded {
    url: String,
    fingerprint: String,
    key: String,
}

/// Why a join token could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The text does not start with the token prefix.
    #[error("not the token expected here: it must start with `{0}`")]
    MissingPrefix(&'static str),
    /// The payload is not base64url.
    #[error("join token is damaged: its payload is not base64url")]
    Encoding,
    /// The payload is not the expected JSON object.
    #[error("join token is damaged: {0}")]
    Payload(String),
    /// The URL is not an https URL.
    #[error("join token names `{0}`, which is not an https:// URL")]
    Url(String),
    /// The fingerprint is not 64 hex digits.
    #[error("join token's certificate fingerprint is not 64 hex digits")]
    Fingerprint,
}

impl JoinToken {
    /// The one-line text form.
    pub fn encode(&self) -> String {
        self.encode_as(PREFIX)
    }

    /// The one-line text form of a relay token.
    pub fn encode_relay(&self) -> String {
        self.encode_as(RELAY_PREFIX)
    }

    /// Reads a token from its text form (surrounding whitespace is ignored).
    pub fn decode(text: &str) -> Result<JoinToken, TokenError> {
        Self::decode_as(PREFIX, text)
    }

    /// Reads a relay token.
    pub fn decode_relay(text: &str) -> Result<JoinToken, TokenError> {
        Self::decode_as(RELAY_PREFIX, text)
    }

    fn encode_as(&self, prefix: &str) -> String {
        let encoded = Encoded {
            url: self.url.clone(),
            fingerprint: self.fingerprint.to_hex(),
            key: self.key.expose().to_owned(),
        };
        let mut json = serde_json::to_vec(&encoded).expect("a struct of strings serializes");
        let text = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&json));
        json.zeroize();
        text
    }

    fn decode_as(prefix: &'static str, text: &str) -> Result<JoinToken, TokenError> {
        let payload = text
            .trim()
            .strip_prefix(prefix)
            .ok_or(TokenError::MissingPrefix(prefix))?;
        let mut json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Encoding)?;
        let parsed: Result<Encoded, _> = serde_json::from_slice(&json);
        json.zeroize();
        let encoded = parsed.map_err(|error| TokenError::Payload(error.to_string()))?;
        if !encoded.url.starts_with("https://") || encoded.url.len() <= "https://".len() {
            return Err(TokenError::Url(encoded.url.clone()));
        }
        let fingerprint =
            Fingerprint::from_hex(&encoded.fingerprint).ok_or(TokenError::Fingerprint)?;
        Ok(JoinToken {
            url: encoded.url.trim_end_matches('/').to_owned(),
            fingerprint,
            key: SecretString::new(encoded.key.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JoinToken {
        JoinToken {
            url: "https://192.0.2.1:8443".into(),
            fingerprint: Fingerprint::of(b"certificate"),
            key: SecretString::new("hskey-7-secret".into()),
        }
    }

    #[test]
    fn token_survives_encode_and_decode() {
        let token = sample();
        let text = token.encode();
        assert!(text.starts_with(PREFIX));
        assert!(!text.contains(' ') && !text.contains('\n'));
        assert_eq!(JoinToken::decode(&format!("  {text}\n")), Ok(token.clone()));
        let relay = token.encode_relay();
        assert!(relay.starts_with(RELAY_PREFIX));
        assert_eq!(JoinToken::decode_relay(&relay), Ok(token));
        assert_eq!(
            JoinToken::decode(&relay),
            Err(TokenError::MissingPrefix(PREFIX)),
            "a relay token is not a join token"
        );
        assert_eq!(
            JoinToken::decode_relay(&text),
            Err(TokenError::MissingPrefix(RELAY_PREFIX))
        );
    }

    #[test]
    fn damaged_tokens_are_refused_with_a_reason() {
        assert_eq!(
            JoinToken::decode("hskey-7-secret"),
            Err(TokenError::MissingPrefix(PREFIX))
        );
        assert_eq!(
            JoinToken::decode("hearth-join-v1:***"),
            Err(TokenError::Encoding)
        );
        let not_json = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(b"[1]"));
        assert!(matches!(
            JoinToken::decode(&not_json),
            Err(TokenError::Payload(_))
        ));
        let http = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(br#"{"url":"http://x","fingerprint":"00","key":"k"}"#)
        );
        assert_eq!(
            JoinToken::decode(&http),
            Err(TokenError::Url("http://x".into()))
        );
        let short_fp = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(br#"{"url":"https://x","fingerprint":"00","key":"k"}"#)
        );
        assert_eq!(JoinToken::decode(&short_fp), Err(TokenError::Fingerprint));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("secret"), "{shown}");
    }
}
