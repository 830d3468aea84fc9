//! What travels inside the envelope: the chat request's plaintext, and the
//! plaintext of each response chunk. Clients and the gateway share these.

use hearth_roster::Asker;
use serde::{Deserialize, Serialize};

/// The sealed request's plaintext.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatPayload {
    /// The user's message; `/new` starts a fresh session instead.
    pub message: String,
    /// Which conversation of this device it belongs to (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Most tokens to generate (capped by the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// The member (and room) household messaging asks for. The gateway
    /// honours it only from a caller it trusts to speak for members (one
    /// holding its token); a mesh device is the member the mesh names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Asker>,
    /// Pictures shown with the message, as `data:image/…;base64,…` URLs:
    /// answered by a model that reads images, refused otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// Token counts of a reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyUsage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// One response chunk's plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyEvent {
    /// Which model answers, in which session (sent with the first output).
    Meta {
        /// `provider/model`.
        model: String,
        /// The session id.
        session: String,
    },
    /// More text.
    Delta {
        /// The text.
        text: String,
    },
    /// Tool calls the model makes, or fragments of them, in OpenAI's
    /// streamed form (`[{index, id?, type?, function: {name?, arguments}}]`).
    /// Only replies to requests that offered tools carry them.
    ToolCalls {
        /// The calls.
        calls: serde_json::Value,
    },
    /// The assistant ran a tool (its input and output stay in the gateway;
    /// the chat shows that it ran).
    Tool {
        /// The tool's name (`memory_search`, `reminder_create`, …).
        name: String,
    },
    /// The structured answer of a request that is not a chat (the
    /// assistant API's lists, deliveries and confirmations).
    Data {
        /// The answer.
        data: serde_json::Value,
    },
    /// A message from the gateway itself (e.g. "new session started").
    Notice {
        /// The text.
        text: String,
    },
    /// The reply is complete (final chunk).
    Done {
        /// Why generation stopped.
        finish_reason: String,
        /// Token counts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<ReplyUsage>,
    },
    /// The reply failed (final chunk).
    Error {
        /// Stable code.
        code: crate::ErrorCode,
        /// For people.
        message: String,
    },
}

impl ReplyEvent {
    /// Whether this event ends the reply.
    pub fn is_final(&self) -> bool {
        matches!(self, ReplyEvent::Done { .. } | ReplyEvent::Error { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json() {
        let text = serde_json::to_string(&ReplyEvent::Delta { text: "hi".into() }).unwrap();
        assert_eq!(text, r#"{"type":"delta","text":"hi"}"#);
        assert!(
            ReplyEvent::Error {
                code: crate::ErrorCode::Internal,
                message: "y".into()
            }
            .is_final()
        );
        let payload: ChatPayload =
            serde_json::from_str(r#"{"message":"hello","channel":"cli"}"#).unwrap();
        assert_eq!(payload.channel.as_deref(), Some("cli"));
        assert!(serde_json::from_str::<ChatPayload>(r#"{"message":"x","admin":true}"#).is_err());
    }
}
