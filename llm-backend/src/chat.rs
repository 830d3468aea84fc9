//! What every backend speaks: a chat request in, a stream of events out, and
//! the errors that decide failover.

use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of a conversation. `content` is read from OpenAI's forms
/// (text, `null`, or a list of parts: text parts are joined, image parts
/// kept as `images`); the tool fields pass through as the client sent them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireMessage", into = "WireMessage")]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// The calls an assistant message made (OpenAI's `tool_calls`).
    pub tool_calls: Option<Value>,
    /// The call a `tool` message answers.
    pub tool_call_id: Option<String>,
    /// A tool's or participant's name.
    pub name: Option<String>,
    /// Images, as `data:image/…;base64,…` URLs (only a model that reads
    /// images is sent them; the gateway refuses them otherwise).
    pub images: Vec<String>,
}

/// A message as it travels in OpenAI's form.
#[derive(Serialize, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// Why a message's content is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContentRefused {
    /// An image to fetch rather than one sent inline.
    #[error("images are sent inline, as data:image/…;base64 URLs (the gateway fetches nothing)")]
    NotInline,
    /// A part of another kind than text or an image.
    #[error("content parts of type {0:?} are not supported (text and images)")]
    Part(Option<String>),
    /// Neither text, nor null, nor a list of parts.
    #[error("content must be text, null or a list of parts")]
    NotContent,
}

/// An image part's URL (`image_url` as OpenAI's chat and Responses APIs
/// write it): inline only (`data:image/…`), never one to fetch.
pub fn image_url(part: &Value) -> Result<String, ContentRefused> {
    let url = match &part["image_url"] {
        Value::String(url) => url.as_str(),
        other => other["url"].as_str().unwrap_or(""),
    };
    if url.starts_with("data:image/") && url.contains(";base64,") {
        Ok(url.to_owned())
    } else {
        Err(ContentRefused::NotInline)
    }
}

impl TryFrom<WireMessage> for Message {
    type Error = ContentRefused;

    /// OpenAI's `content`: a string, `null`, or parts (`text`, `image_url`,
    /// the Responses API's `input_text`, `output_text` and `input_image`).
    fn try_from(wire: WireMessage) -> Result<Message, ContentRefused> {
        let mut images = Vec::new();
        let content = match wire.content {
            Value::Null => String::new(),
            Value::String(text) => text,
            Value::Array(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part.get("type").and_then(Value::as_str) {
                        Some("text" | "input_text" | "output_text") => {
                            text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                        }
                        Some("image_url" | "input_image") => images.push(image_url(&part)?),
                        other => {
                            return Err(ContentRefused::Part(other.map(str::to_owned)));
                        }
                    }
                }
                text
            }
            _ => return Err(ContentRefused::NotContent),
        };
        Ok(Message {
            role: wire.role,
            content,
            tool_calls: wire.tool_calls,
            tool_call_id: wire.tool_call_id,
            name: wire.name,
            images,
        })
    }
}

impl From<Message> for WireMessage {
    fn from(message: Message) -> WireMessage {
        let content = if message.images.is_empty() {
            Value::String(message.content)
        } else {
            let text = (!message.content.is_empty())
                .then(|| serde_json::json!({"type": "text", "text": message.content}));
            Value::Array(
                text.into_iter()
                    .chain(message.images.into_iter().map(
                        |url| serde_json::json!({"type": "image_url", "image_url": {"url": url}}),
                    ))
                    .collect(),
            )
        };
        WireMessage {
            role: message.role,
            content,
            tool_calls: message.tool_calls,
            tool_call_id: message.tool_call_id,
            name: message.name,
        }
    }
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_owned(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            images: Vec::new(),
        }
    }
}

/// A chat request, backend-neutral.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Functions the model may call (OpenAI's `tools`), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    /// OpenAI's `tool_choice`, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Other sampling settings (`top_p`, `stop`, `seed`,
    /// `frequency_penalty`, `presence_penalty`), checked.
    #[serde(default, skip_serializing_if = "crate::Sampling::is_empty")]
    pub sampling: crate::Sampling,
    /// The reply's structure, in OpenAI's `response_format` shape
    /// ([`StructuredOutput`]): none is free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<StructuredOutput>,
    /// Whether (and how much) a thinking model thinks first; none: as the
    /// model server does by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
}

/// How much a thinking model thinks before it answers (Ollama's `think`:
/// a switch or a level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Think {
    /// No thinking.
    Off,
    /// Thinking, at the model's own level.
    On,
    /// Thinking a little.
    Low,
    /// Thinking some.
    Medium,
    /// Thinking a lot.
    High,
    /// Thinking as much as the model can.
    Max,
}

impl Think {
    /// Reads Ollama's `think`: `true`, `false`, `"low"`, `"medium"`,
    /// `"high"` or `"max"`; anything else is `None`.
    pub fn from_ollama(value: &Value) -> Option<Think> {
        match value {
            Value::Bool(true) => Some(Think::On),
            Value::Bool(false) => Some(Think::Off),
            Value::String(level) => match level.as_str() {
                "low" => Some(Think::Low),
                "medium" => Some(Think::Medium),
                "high" => Some(Think::High),
                "max" => Some(Think::Max),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the model thinks at all.
    pub fn enabled(self) -> bool {
        self != Think::Off
    }

    /// The level asked for, if one was.
    pub fn level(self) -> Option<&'static str> {
        match self {
            Think::Low => Some("low"),
            Think::Medium => Some("medium"),
            Think::High => Some("high"),
            Think::Max => Some("max"),
            Think::Off | Think::On => None,
        }
    }

    /// As Ollama takes it.
    pub fn ollama(self) -> Value {
        self.level().map_or_else(
            || Value::Bool(self.enabled()),
            |level| Value::String(level.into()),
        )
    }
}

/// A reply held to JSON: any JSON object, or JSON matching a schema. The
/// model server constrains its sampling to it (llama.cpp by a grammar,
/// Ollama by its `format`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StructuredOutput {
    /// Any JSON object.
    JsonObject,
    /// JSON matching `json_schema.schema`.
    JsonSchema {
        /// The schema and its name.
        json_schema: NamedSchema,
    },
}

/// A JSON schema with the name OpenAI's API gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedSchema {
    /// Its name.
    pub name: String,
    /// The JSON schema.
    pub schema: Value,
    /// Whether the schema is to be followed strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl NamedSchema {
    /// A schema named `name`, held to [`crate::schema`]'s limits.
    pub fn new(
        name: String,
        schema: Value,
        strict: Option<bool>,
    ) -> Result<NamedSchema, crate::schema::SchemaTooLarge> {
        crate::schema::check(&schema)?;
        Ok(NamedSchema {
            name,
            schema,
            strict,
        })
    }
}

impl StructuredOutput {
    /// As Ollama's `format`: `"json"`, or the schema itself.
    pub fn ollama_format(&self) -> Value {
        match self {
            StructuredOutput::JsonObject => Value::String("json".into()),
            StructuredOutput::JsonSchema { json_schema } => json_schema.schema.clone(),
        }
    }
}

/// Token counts of a finished reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

/// One event of a reply stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// More text.
    Delta(String),
    /// Tool calls, or fragments of them, in OpenAI's streamed form (a list
    /// of `{index, id?, type?, function: {name?, arguments}}`): the
    /// fragments of one call share its `index`.
    ToolCalls(Value),
    /// The reply is complete.
    Done {
        /// Why generation stopped (`stop`, `length`...).
        finish_reason: String,
        /// Token counts, when the backend gave them.
        usage: Option<Usage>,
    },
}

/// What went wrong talking to a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Nothing listens there.
    #[error("connection refused by {0}")]
    Refused(String),
    /// The connection could not be made in time.
    #[error("no connection to {0} in time")]
    ConnectTimeout(String),
    /// Connected, but no first token came in time.
    #[error("no first token within {0} s")]
    FirstTokenTimeout(u64),
    /// The stream went silent.
    #[error("the stream was silent for {0} s")]
    IdleTimeout(u64),
    /// The backend answered with a server error.
    #[error("the backend answered {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The backend asked to slow down.
    #[error("the backend is rate limiting (429): {0}")]
    RateLimited(String),
    /// The conversation does not fit the model's context.
    #[error("the conversation is longer than the model's context: {0}")]
    ContextOverflow(String),
    /// The backend refused the request itself (a 4xx other than 429).
    #[error("the backend refused the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The stream ended without its final message.
    #[error("the stream ended without its final message")]
    EndedEarly,
    /// The stream reported an error in the middle.
    #[error("the backend reported an error mid-stream: {0}")]
    MidStream(String),
    /// The backend sent something unexpected.
    #[error("unexpected answer from the backend: {0}")]
    Protocol(String),
    /// The connection broke.
    #[error("the connection broke: {0}")]
    Transport(String),
    /// No remote node's attestation evidence passed the policy: nothing
    /// was sent.
    #[error("no attested node could be verified: {0}")]
    Unverified(String),
    /// The model's server is a machine of the mesh that is not there now
    /// (asleep, off, or its agent down): nothing was sent, nothing waited.
    #[error("{0} is not on the mesh now (asleep, off, or its agent is down)")]
    Away(String),
}

impl BackendError {
    /// The error without anything the backend wrote, for logs: a backend's
    /// message may quote the conversation, which is never logged.
    pub fn summary(&self) -> String {
        match self {
            BackendError::Refused(_)
            | BackendError::ConnectTimeout(_)
            | BackendError::FirstTokenTimeout(_)
            | BackendError::IdleTimeout(_)
            | BackendError::EndedEarly
            | BackendError::Transport(_)
            | BackendError::Unverified(_)
            | BackendError::Away(_) => self.to_string(),
            BackendError::Server { status, .. } => format!("the backend answered {status}"),
            BackendError::RateLimited(_) => "the backend is rate limiting (429)".into(),
            BackendError::ContextOverflow(_) => {
                "the conversation is longer than the model's context".into()
            }
            BackendError::Rejected { status, .. } => {
                format!("the backend refused the request ({status})")
            }
            BackendError::MidStream(_) => "the backend reported an error mid-stream".into(),
            BackendError::Protocol(_) => "unexpected answer from the backend".into(),
        }
    }
}

/// A reply stream.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, BackendError>> + Send>>;

/// Whether an error message names a context overflow (llama.cpp's
/// `exceed_context_size_error`, OpenAI's `context_length_exceeded`, Ollama's
/// wording).
pub fn mentions_context_overflow(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("exceed_context_size")
        || lower.contains("context_length_exceeded")
        || lower.contains("exceeds the available context")
        || (lower.contains("context") && (lower.contains("exceed") || lower.contains("too long")))
}

/// Classifies a non-success HTTP answer.
pub fn status_error(status: u16, body: &str) -> BackendError {
    let message: String = body.chars().take(300).collect();
    match status {
        429 => BackendError::RateLimited(message),
        400 | 413 if mentions_context_overflow(body) => BackendError::ContextOverflow(message),
        500..=599 => BackendError::Server { status, message },
        _ => BackendError::Rejected { status, message },
    }
}

/// Classifies a reqwest failure to send.
pub fn send_error(error: &reqwest::Error, endpoint: &str) -> BackendError {
    let text = hearth_runtime::error_chain(error);
    if error.is_timeout() {
        BackendError::ConnectTimeout(endpoint.to_owned())
    } else if error.is_connect() {
        if text.contains("refused") || text.contains("No such file") || text.contains("not found") {
            BackendError::Refused(endpoint.to_owned())
        } else {
            BackendError::Transport(text)
        }
    } else {
        BackendError::Transport(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_travel_inline_in_openais_parts_and_nothing_is_fetched() {
        let read: Message = serde_json::from_value(serde_json::json!({"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        ]}))
        .unwrap();
        assert_eq!(read.content, "what is this?");
        assert_eq!(read.images, ["data:image/png;base64,iVBORw0K"]);
        let sent = serde_json::to_value(&read).unwrap();
        assert_eq!(
            sent["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBORw0K"
        );
        assert_eq!(sent["content"][0]["text"], "what is this?");
        // Without images a message is sent as before: content as text.
        assert_eq!(
            serde_json::to_value(Message::new("user", "hi")).unwrap()["content"],
            "hi"
        );
        let remote =
            serde_json::from_value::<Message>(serde_json::json!({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://192.0.2.1/cat.png"}}]}));
        assert!(remote.unwrap_err().to_string().contains("fetches nothing"));
        let audio =
            serde_json::from_value::<Message>(serde_json::json!({"role": "user", "content": [
            {"type": "input_audio"}]}));
        assert!(audio.unwrap_err().to_string().contains("input_audio"));
    }

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(
            status_error(429, "slow down"),
            BackendError::RateLimited(_)
        ));
        assert!(matches!(
            status_error(503, "Loading model"),
            BackendError::Server { status: 503, .. }
        ));
        let overflow = r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#;
        assert!(matches!(
            status_error(400, overflow),
            BackendError::ContextOverflow(_)
        ));
        assert!(matches!(
            status_error(400, "bad json"),
            BackendError::Rejected { status: 400, .. }
        ));
        assert!(matches!(
            status_error(404, "no model"),
            BackendError::Rejected { status: 404, .. }
        ));
    }
}
