//! OpenClaw's gateway protocol on the wire: the frames a client sends and
//! the ones the gateway answers with, their limits, and the error shape
//! (`{code, message, details?, retryable?, retryAfterMs?}`). Pure.

use serde::Serialize;
use serde_json::{Value, json};

/// The protocol version spoken (OpenClaw 2026.9's `PROTOCOL_VERSION`).
pub const PROTOCOL: u64 = 4;
/// The largest frame before `hello-ok` (OpenClaw's `MAX_PREAUTH_PAYLOAD_BYTES`).
pub const MAX_PREAUTH_BYTES: usize = 64 * 1024;
/// The largest frame after it, advertised as `policy.maxPayload`: Hearth's
/// chat takes text, so the HTTP API's body limit.
pub const MAX_PAYLOAD_BYTES: usize = 2 * 1024 * 1024;
/// What may wait unsent for a slow client before it is dropped
/// (`policy.maxBufferedBytes`).
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;
/// How often the gateway says it is alive (`tick` events).
pub const TICK_MS: u64 = 15_000;
/// The longest request id and method name taken.
const MAX_NAME: usize = 128;

/// A request frame: `{type: "req", id, method, params}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The client's id for it, echoed in the response.
    pub id: String,
    /// The method.
    pub method: String,
    /// Its parameters (`{}` when absent).
    pub params: Value,
}

/// Why an inbound frame cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Over the limit for this stage of the connection.
    #[error("the frame is {size} bytes; at most {limit} are taken here")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON.
    #[error("the frame is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a request.
    #[error(
        "a client sends only request frames ({{\"type\": \"req\", \"id\", \"method\", \"params\"}})"
    )]
    NotRequest,
    /// The id or method is missing, empty, too long or not text.
    #[error("a request needs an id and a method of 1 to 128 characters ({0})")]
    BadName(&'static str),
}

/// Reads one text frame of at most `limit` bytes as a request.
pub fn parse_request(text: &str, limit: usize) -> Result<Request, FrameError> {
    if text.len() > limit {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit,
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|error| FrameError::NotJson(error.to_string()))?;
    let Value::Object(mut frame) = value else {
        return Err(FrameError::NotRequest);
    };
    if frame.get("type").and_then(Value::as_str) != Some("req") {
        return Err(FrameError::NotRequest);
    }
    let name = |value: Option<Value>, what: &'static str| match value {
        Some(Value::String(text))
            if !text.is_empty()
                && text.len() <= MAX_NAME
                && !text.chars().any(char::is_control) =>
        {
            Ok(text)
        }
        _ => Err(FrameError::BadName(what)),
    };
    let id = name(frame.remove("id"), "id")?;
    let method = name(frame.remove("method"), "method")?;
    let params = match frame.remove("params") {
        None | Some(Value::Null) => json!({}),
        Some(params) => params,
    };
    Ok(Request { id, method, params })
}

/// The error codes of the protocol (OpenClaw's `ErrorCodes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// The device waits for the owner's approval.
    NotPaired,
    /// The request is malformed or its method unknown.
    InvalidRequest,
    /// The caller may not do this.
    Forbidden,
    /// Something needed is not available now.
    Unavailable,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorShape {
    /// What kind.
    pub code: Code,
    /// What happened, for a person.
    pub message: String,
    /// Structured detail clients branch on (`details.code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Whether trying again may work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// When to try again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// An error with no details.
    pub fn new(code: Code, message: impl Into<String>) -> ErrorShape {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    /// The same, with `details`.
    pub fn with_details(mut self, details: Value) -> ErrorShape {
        self.details = Some(details);
        self
    }

    /// A malformed request.
    pub fn invalid(message: impl Into<String>) -> ErrorShape {
        ErrorShape::new(Code::InvalidRequest, message)
    }

    /// A method the gateway does not serve: clients read the method back
    /// from `unknown method: NAME`.
    pub fn unknown_method(method: &str) -> ErrorShape {
        ErrorShape::invalid(format!(
            "unknown method: {method} (Hearth's gateway serves the methods hello-ok lists; see docs/openclaw-clients.md)"
        ))
    }

    /// A scope the connection was not granted.
    pub fn missing_scope(scope: &str) -> ErrorShape {
        ErrorShape::new(Code::Forbidden, format!("missing scope: {scope}")).with_details(json!({
            "code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope],
        }))
    }

    /// Too many requests from this device.
    pub fn rate_limited(retry_after_ms: u64) -> ErrorShape {
        ErrorShape {
            code: Code::Unavailable,
            message: "too many requests from this device; slow down".into(),
            details: Some(json!({"code": "RATE_LIMITED"})),
            retryable: Some(true),
            retry_after_ms: Some(retry_after_ms),
        }
    }
}

/// A successful response frame.
pub fn ok(id: &str, payload: Value) -> String {
    json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

/// A failed response frame.
pub fn error(id: &str, error: &ErrorShape) -> String {
    json!({"type": "res", "id": id, "ok": false, "error": error}).to_string()
}

/// An event frame; `seq` numbers the broadcast events of a connection.
pub fn event(name: &str, payload: Value, seq: Option<u64>) -> String {
    let mut frame = json!({"type": "event", "event": name, "payload": payload});
    if let Some(seq) = seq {
        frame["seq"] = json!(seq);
    }
    frame.to_string()
}

/// The challenge the gateway opens every connection with.
pub fn challenge(nonce: &str, now_ms: u64) -> String {
    event(
        "connect.challenge",
        json!({"nonce": nonce, "ts": now_ms}),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_with_its_params_and_anything_else_is_refused() {
        let request = parse_request(r#"{"type":"req","id":"1:a","method":"health"}"#, 100).unwrap();
        assert_eq!(request.method, "health");
        assert_eq!(request.params, json!({}));
        let request = parse_request(
            r#"{"type":"req","id":"2","method":"cron.list","params":{"limit":5}}"#,
            100,
        )
        .unwrap();
        assert_eq!(request.params["limit"], 5);
        for (text, expected) in [
            (
                r#"{"type":"res","id":"1","method":"x"}"#,
                FrameError::NotRequest,
            ),
            (r#"[1]"#, FrameError::NotRequest),
            (
                r#"{"type":"req","id":"","method":"x"}"#,
                FrameError::BadName("id"),
            ),
            (
                r#"{"type":"req","id":"1","method":5}"#,
                FrameError::BadName("method"),
            ),
            (
                r#"{"type":"req","id":"1","method":"a\u0000b"}"#,
                FrameError::BadName("method"),
            ),
        ] {
            assert_eq!(parse_request(text, 100), Err(expected), "{text}");
        }
        assert!(matches!(
            parse_request("{", 100),
            Err(FrameError::NotJson(_))
        ));
        let long = format!(
            r#"{{"type":"req","id":"1","method":"{}"}}"#,
            "m".repeat(200)
        );
        assert_eq!(
            parse_request(&long, 1000),
            Err(FrameError::BadName("method"))
        );
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_it_is_parsed() {
        let frame = format!(
            r#"{{"type":"req","id":"1","method":"x","params":"{}"}}"#,
            "a".repeat(100)
        );
        assert_eq!(
            parse_request(&frame, 64),
            Err(FrameError::TooLarge {
                size: frame.len(),
                limit: 64
            })
        );
    }

    #[test]
    fn errors_carry_the_shape_clients_branch_on() {
        let frame: Value =
            serde_json::from_str(&error("7", &ErrorShape::missing_scope("operator.admin")))
                .unwrap();
        assert_eq!(frame["ok"], false);
        assert_eq!(frame["error"]["code"], "FORBIDDEN");
        assert_eq!(frame["error"]["details"]["missingScope"], "operator.admin");
        let frame: Value =
            serde_json::from_str(&error("8", &ErrorShape::unknown_method("node.list"))).unwrap();
        assert_eq!(frame["error"]["code"], "INVALID_REQUEST");
        assert!(
            frame["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("unknown method: node.list")
        );
        let frame: Value =
            serde_json::from_str(&error("9", &ErrorShape::rate_limited(500))).unwrap();
        assert_eq!(frame["error"]["retryAfterMs"], 500);
        assert_eq!(frame["error"]["retryable"], true);
    }
}
