//! Ollama's `/api/chat`: requests built with ollama-rs's types, the NDJSON
//! reply decoded here from bytes.
//!
//! ollama-rs 0.3.6 decodes each network chunk with `String::from_utf8`, so a
//! character split across chunks drops both chunks, and it treats a mid-stream
//! `{"error": ...}` line as the end of the reply. The stream is therefore
//! parsed as bytes by [`crate::ndjson`], each whole line into ollama-rs's
//! response type, and error lines are errors.

use bytes::Bytes;
use futures_util::Stream;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, ChatMessageResponse, MessageRole};
use ollama_rs::models::ModelOptions;
use serde_json::Value;

use crate::chat::{
    BackendError, ChatRequest, EventStream, StreamEvent, Usage, mentions_context_overflow,
    send_error, status_error,
};
use crate::decoding::{Events, Format};
use crate::endpoint::Endpoint;
use crate::ndjson::LineSplitter;

fn role(role: &str) -> MessageRole {
    match role {
        "system" => MessageRole::System,
        "assistant" => MessageRole::Assistant,
        "tool" => MessageRole::Tool,
        _ => MessageRole::User,
    }
}

/// The JSON body of a streamed `/api/chat` request.
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let messages = request
        .messages
        .iter()
        .map(|message| ChatMessage::new(role(&message.role), message.content.clone()))
        .collect();
    let mut options = ModelOptions::default();
    if let Some(max_tokens) = request.max_tokens {
        options = options.num_predict(i32::try_from(max_tokens).unwrap_or(i32::MAX));
    }
    if let Some(temperature) = request.temperature {
        options = options.temperature(temperature);
    }
    let built = ChatMessageRequest::new(model.to_owned(), messages).options(options);
    let mut body = serde_json::to_value(&built).expect("ollama-rs requests serialize");
    body["stream"] = Value::Bool(true);
    // Tools, the calls assistant messages made and what tools answered, in
    // Ollama's forms (arguments as objects); `tool_choice` has no equivalent.
    if let Some(tools) = &request.tools {
        body["tools"] = tools.clone();
    }
    if let Some(sent) = body["messages"].as_array_mut() {
        for (sent, message) in sent.iter_mut().zip(&request.messages) {
            if let Some(calls) = &message.tool_calls {
                sent["tool_calls"] = ollama_calls(calls);
            }
            if let Some(name) = &message.name {
                sent["tool_name"] = Value::String(name.clone());
            }
        }
    }
    for (key, value) in request.sampling.fields() {
        body["options"][key] = value;
    }
    if let Some(format) = &request.response_format {
        body["format"] = format.ollama_format();
    }
    if let Some(think) = request.think {
        body["think"] = think.ollama();
    }
    body
}

/// OpenAI's tool calls (arguments as a JSON string) as Ollama's (an object).
fn ollama_calls(calls: &Value) -> Value {
    let calls = calls.as_array().map(Vec::as_slice).unwrap_or_default();
    Value::Array(
        calls
            .iter()
            .map(|call| {
                let function = &call["function"];
                let arguments = function["arguments"]
                    .as_str()
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_else(|| function["arguments"].clone());
                serde_json::json!({"function": {"name": function["name"], "arguments": arguments}})
            })
            .collect(),
    )
}

/// Ollama's tool calls (whole, arguments as objects) in OpenAI's streamed
/// form; the `n`th call of the reply is `call_n`.
pub fn openai_calls(calls: &Value, first: usize) -> Value {
    let calls = calls.as_array().map(Vec::as_slice).unwrap_or_default();
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(offset, call)| {
                let function = &call["function"];
                let arguments = match &function["arguments"] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                serde_json::json!({
                    "index": first + offset,
                    "id": format!("call_{}", first + offset),
                    "type": "function",
                    "function": {"name": function["name"], "arguments": arguments},
                })
            })
            .collect(),
    )
}

/// Starts a streamed chat with `model` on `endpoint`.
pub async fn stream_chat(
    endpoint: &Endpoint,
    model: &str,
    request: &ChatRequest,
) -> Result<EventStream, BackendError> {
    let response = endpoint
        .http
        .post(endpoint.url("/api/chat"))
        .json(&request_body(model, request))
        .send()
        .await
        .map_err(|error| send_error(&error, &endpoint.label))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(status_error(status.as_u16(), &text));
    }
    Ok(decode(response.bytes_stream()))
}

/// What Ollama's `/api/show` says `model` can do (`capabilities`:
/// `tools`, `vision`, `thinking`), if it says.
pub fn show_caps(show: &Value) -> Option<crate::openai::TemplateCaps> {
    let listed: Vec<&str> = show
        .get("capabilities")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Some(crate::openai::TemplateCaps {
        tools: listed.contains(&"tools"),
        vision: listed.contains(&"vision"),
        thinking: listed.contains(&"thinking"),
    })
}

/// Asks an Ollama what `model` can do; `None` when it does not say.
pub async fn caps(endpoint: &Endpoint, model: &str) -> Option<crate::openai::TemplateCaps> {
    let request = endpoint
        .http
        .post(endpoint.url("/api/show"))
        .json(&serde_json::json!({"model": model}));
    show_caps(&crate::endpoint::json_answer(request).await?)
}

/// The models an Ollama has (`GET /api/tags`); `None` when it does not
/// answer so.
pub async fn models(endpoint: &Endpoint) -> Option<Vec<String>> {
    tags_models(&crate::endpoint::json_answer(endpoint.http.get(endpoint.url("/api/tags"))).await?)
}

/// The models in an `/api/tags` answer (`models[].model`, or `.name` as
/// older Ollamas say); `None` when it is not one.
pub fn tags_models(answer: &Value) -> Option<Vec<String>> {
    Some(
        answer
            .get("models")?
            .as_array()?
            .iter()
            .filter_map(|model| {
                let name = model.get("model").or_else(|| model.get("name"))?;
                name.as_str().map(str::to_owned)
            })
            .collect(),
    )
}

/// Whether `endpoint` answers (ollama-rs's model listing, `/api/tags`).
pub async fn probe(endpoint: &Endpoint) -> bool {
    let Ok(url) = reqwest::Url::parse(&endpoint.url("/")) else {
        return false;
    };
    let client = ollama_rs::Ollama::builder()
        .url(url)
        .reqwest_client(endpoint.http.clone())
        .build();
    tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.list_local_models(),
    )
    .await
    .is_ok_and(|answer| answer.is_ok())
}

/// Ollama's format: one JSON object per line.
#[derive(Default)]
struct Ndjson {
    lines: LineSplitter,
    /// Tool calls so far in this reply.
    calls: usize,
}

impl Format for Ndjson {
    fn chunk(&mut self, bytes: &[u8], events: &mut Events) {
        match self.lines.push(bytes) {
            Ok(lines) => lines.iter().for_each(|line| self.line(line, events)),
            Err(error) => events.fail(BackendError::Protocol(error.to_string())),
        }
    }

    fn end(&mut self, events: &mut Events) {
        match std::mem::take(&mut self.lines).finish() {
            Ok(Some(line)) => self.line(&line, events),
            Ok(None) => {}
            Err(error) => events.fail(BackendError::Protocol(error.to_string())),
        }
    }
}

impl Ndjson {
    fn line(&mut self, line: &str, events: &mut Events) {
        if events.ended() {
            return;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(error) => {
                return events.fail(BackendError::Protocol(format!(
                    "a line is not JSON: {error}"
                )));
            }
        };
        if let Some(error) = value.get("error") {
            let message = error
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            let failure = if mentions_context_overflow(&message) {
                BackendError::ContextOverflow(message)
            } else {
                BackendError::MidStream(message)
            };
            return events.fail(failure);
        }
        let reason = value
            .get("done_reason")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let calls = value
            .get("message")
            .and_then(|message| message.get("tool_calls"))
            .filter(|calls| calls.as_array().is_some_and(|calls| !calls.is_empty()))
            .map(|calls| openai_calls(calls, self.calls));
        let response: ChatMessageResponse = match serde_json::from_value(value) {
            Ok(response) => response,
            Err(error) => {
                return events.fail(BackendError::Protocol(format!("unexpected line: {error}")));
            }
        };
        if !response.message.content.is_empty() {
            events.push(StreamEvent::Delta(response.message.content));
        }
        if let Some(calls) = calls {
            self.calls += calls.as_array().map_or(0, Vec::len);
            events.push(StreamEvent::ToolCalls(calls));
        }
        if response.done {
            let usage = response.final_data.map(|data| Usage {
                prompt_tokens: data.prompt_eval_count,
                completion_tokens: data.eval_count,
            });
            events.finish(StreamEvent::Done {
                finish_reason: reason.unwrap_or_else(|| "stop".into()),
                usage,
            });
        }
    }
}

/// Decodes an Ollama NDJSON byte stream into events. A stream that ends
/// before a `"done": true` line yields [`BackendError::EndedEarly`].
pub fn decode<S>(bytes: S) -> EventStream
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    crate::decoding::decode(bytes, Ndjson::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, NamedSchema, StructuredOutput};

    #[test]
    fn a_structure_goes_to_ollama_as_its_format() {
        let schema =
            serde_json::json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
        let mut request = ChatRequest {
            messages: vec![Message::new("user", "ok?")],
            response_format: Some(StructuredOutput::JsonSchema {
                json_schema: NamedSchema {
                    name: "answer".into(),
                    schema: schema.clone(),
                    strict: None,
                },
            }),
            ..Default::default()
        };
        assert_eq!(request_body("m", &request)["format"], schema);
        request.response_format = Some(StructuredOutput::JsonObject);
        assert_eq!(request_body("m", &request)["format"], "json");
        request.response_format = None;
        assert!(request_body("m", &request).get("format").is_none());
    }

    #[test]
    fn ollama_says_what_a_model_can_do() {
        let caps =
            show_caps(&serde_json::json!({"capabilities": ["completion", "vision", "thinking"]}));
        assert_eq!(
            caps,
            Some(crate::openai::TemplateCaps {
                tools: false,
                vision: true,
                thinking: true
            })
        );
        assert_eq!(show_caps(&serde_json::json!({"modelfile": ""})), None);
    }

    #[test]
    fn thinking_goes_to_ollama_as_its_think() {
        let mut request = ChatRequest {
            messages: vec![Message::new("user", "why?")],
            think: Some(crate::Think::High),
            ..Default::default()
        };
        assert_eq!(request_body("m", &request)["think"], "high");
        request.think = Some(crate::Think::Off);
        assert_eq!(request_body("m", &request)["think"], false);
        request.think = None;
        assert!(request_body("m", &request).get("think").is_none());
    }
}
