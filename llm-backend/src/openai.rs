//! OpenAI-compatible chat completions over SSE (llama.cpp's `llama-server`).

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat::{
    BackendError, ChatRequest, EventStream, StreamEvent, Usage, mentions_context_overflow,
    status_error,
};
use crate::decoding::{Events, Format};
use crate::endpoint::Endpoint;
use crate::link;
use hearth_sse::{SseDecoder, SseEvent};

/// Starts a streamed chat completion with `model` on `endpoint`.
/// Goes out on a kept connection, else on one opened ahead for it
/// ([`Endpoint::prepare`]), else on a new one.
pub async fn stream_chat(
    endpoint: &Endpoint,
    model: &str,
    request: &ChatRequest,
) -> Result<EventStream, BackendError> {
    let mut body = json!({
        "model": model,
        "messages": request.messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(tools) = &request.tools {
        body["tools"] = tools.clone();
    }
    if let Some(choice) = &request.tool_choice {
        body["tool_choice"] = choice.clone();
    }
    for (key, value) in request.sampling.fields() {
        body[key] = value;
    }
    if let Some(format) = &request.response_format {
        body["response_format"] = serde_json::to_value(format).expect("a format serializes");
    }
    if let Some(think) = request.think {
        think_for_llama_cpp(&mut body, think);
    }
    let body = serde_json::to_vec(&body).expect("a JSON value serializes");
    let response = link::post_json(
        endpoint.target(),
        endpoint.idle(),
        endpoint.opening(),
        endpoint.authority(),
        &endpoint.path("/chat/completions"),
        body,
    )
    .await?;
    let status = response.status();
    if !status.is_success() {
        let text = link::error_text(response).await;
        return Err(status_error(status.as_u16(), &text));
    }
    Ok(decode(http_body_util::BodyDataStream::new(
        response.into_body(),
    )))
}

/// Whether `endpoint` answers (`GET /models`, which llama-server answers 503 while loading).
pub async fn probe(endpoint: &Endpoint) -> bool {
    match endpoint
        .http
        .get(endpoint.url("/models"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
    {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

/// The model ids an OpenAI-style server lists (`GET /models`); `None`
/// when it does not answer so.
pub async fn models(endpoint: &Endpoint) -> Option<Vec<String>> {
    listed_models(&crate::endpoint::json_answer(endpoint.http.get(endpoint.url("/models"))).await?)
}

/// The model ids in a `GET /models` answer (`data[].id`); `None` when it
/// is not one.
pub fn listed_models(answer: &Value) -> Option<Vec<String>> {
    Some(
        answer
            .get("data")?
            .as_array()?
            .iter()
            .filter_map(|model| model.get("id")?.as_str().map(str::to_owned))
            .collect(),
    )
}

/// Thinking as llama-server takes it: the chat template's `enable_thinking`
/// (Qwen 3's, DeepSeek's and others' templates read it) and, for a level,
/// OpenAI's `reasoning_effort` (which it gives templates that take one;
/// "max" is its "high").
pub fn think_for_llama_cpp(body: &mut Value, think: crate::chat::Think) {
    body["chat_template_kwargs"]["enable_thinking"] = json!(think.enabled());
    if let Some(level) = think.level() {
        body["reasoning_effort"] = json!(if level == "max" { "high" } else { level });
    }
}

/// What a model server says a model can do: llama.cpp of its model's chat
/// template (`GET /props`, `chat_template_caps`, `modalities`), Ollama of
/// each model (`/api/show`'s `capabilities`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TemplateCaps {
    /// Tool definitions and calls.
    pub tools: bool,
    /// Images (a multimodal projector is loaded: `modalities.vision`).
    pub vision: bool,
    /// Thinking before answering (Ollama's `thinking` capability;
    /// llama.cpp's `/props` does not say).
    pub thinking: bool,
}

/// The capabilities in llama-server's `/props` answer, if it states them
/// (other servers do not answer `/props`).
pub fn template_caps(props: &Value) -> Option<TemplateCaps> {
    let caps = props.get("chat_template_caps")?.as_object()?;
    Some(TemplateCaps {
        tools: caps.get("supports_tools").and_then(Value::as_bool)?,
        vision: props["modalities"]["vision"].as_bool().unwrap_or(false),
        thinking: false,
    })
}

/// Asks a llama.cpp server what its chat template can render; `None` when
/// it does not say (not llama.cpp, or down).
pub async fn props(endpoint: &Endpoint) -> Option<TemplateCaps> {
    let answer =
        crate::endpoint::json_answer(endpoint.http.get(endpoint.root_url("/props"))).await?;
    template_caps(&answer)
}

/// One chunk of a streamed completion; other fields are ignored.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

#[derive(Deserialize)]
struct UsageIn {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The error a mid-stream error object describes.
fn error_of(error: &Value) -> BackendError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    if mentions_context_overflow(&error.to_string()) {
        BackendError::ContextOverflow(message)
    } else {
        BackendError::MidStream(message)
    }
}

/// The OpenAI-style format: server-sent events, `[DONE]` or a
/// `finish_reason` at the end.
#[derive(Default)]
struct Sse {
    decoder: SseDecoder,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Format for Sse {
    fn chunk(&mut self, bytes: &[u8], events: &mut Events) {
        match self.decoder.push(bytes) {
            Ok(decoded) => decoded.iter().for_each(|event| self.event(event, events)),
            Err(error) => events.fail(BackendError::Protocol(error.to_string())),
        }
    }

    fn end(&mut self, events: &mut Events) {
        if self.finish_reason.is_some() {
            self.finish(events);
        }
    }
}

impl Sse {
    /// Turns one SSE event into stream events.
    fn event(&mut self, event: &SseEvent, events: &mut Events) {
        if events.ended() {
            // Nothing counts after the end or an error, even in the same network chunk.
            return;
        }
        let data = event.data.as_str();
        if data.trim() == "[DONE]" {
            self.finish(events);
            return;
        }
        if event.event.as_deref() == Some("error") {
            // llama.cpp's `error: {json}` line: the whole object is the error.
            match serde_json::from_str::<Value>(data) {
                Ok(error) => events.fail(error_of(&error)),
                Err(error) => events.fail(BackendError::Protocol(format!(
                    "an event is not JSON: {error}"
                ))),
            }
            return;
        }
        // Typed and borrowing: this runs for every token of every reply.
        let chunk: Chunk<'_> = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                events.fail(BackendError::Protocol(format!(
                    "an event is not a completion chunk: {error}"
                )));
                return;
            }
        };
        if let Some(error) = chunk.error {
            events.fail(error_of(&error));
            return;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            });
        }
        let Some(choice) = chunk.choices.and_then(|choices| choices.into_iter().next()) else {
            return;
        };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content
                && !text.is_empty()
            {
                events.push(StreamEvent::Delta(text.into_owned()));
            }
            if let Some(calls) = delta.tool_calls
                && calls.as_array().is_some_and(|calls| !calls.is_empty())
            {
                events.push(StreamEvent::ToolCalls(calls));
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason.into_owned());
        }
    }

    fn finish(&mut self, events: &mut Events) {
        events.finish(StreamEvent::Done {
            finish_reason: self.finish_reason.take().unwrap_or_else(|| "stop".into()),
            usage: self.usage.take(),
        });
    }
}

/// Decodes an OpenAI-style SSE byte stream into events. A stream that ends
/// before `[DONE]` or a `finish_reason` yields [`BackendError::EndedEarly`].
pub fn decode<S, E>(bytes: S) -> EventStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    crate::decoding::decode(bytes, Sse::default())
}

#[cfg(test)]
mod template_tests {
    use super::*;

    #[test]
    fn llama_cpp_says_whether_its_template_takes_tools() {
        let props =
            json!({"chat_template_caps": {"supports_tools": false, "supports_system_role": true}});
        assert_eq!(
            template_caps(&props),
            Some(TemplateCaps {
                tools: false,
                vision: false,
                thinking: false,
            })
        );
        let props =
            json!({"chat_template_caps": {"supports_tools": true}, "modalities": {"vision": true}});
        assert_eq!(
            template_caps(&props),
            Some(TemplateCaps {
                tools: true,
                vision: true,
                thinking: false,
            })
        );
        assert_eq!(
            template_caps(&json!({"default_generation_settings": {}})),
            None
        );
        assert_eq!(template_caps(&json!({"chat_template_caps": {}})), None);
    }

    #[test]
    fn thinking_goes_to_llama_cpp_as_template_switch_and_effort() {
        let mut body = json!({});
        think_for_llama_cpp(&mut body, crate::Think::Low);
        assert_eq!(body["chat_template_kwargs"]["enable_thinking"], true);
        assert_eq!(body["reasoning_effort"], "low");
        let mut body = json!({});
        think_for_llama_cpp(&mut body, crate::Think::Off);
        assert_eq!(body["chat_template_kwargs"]["enable_thinking"], false);
        assert!(body.get("reasoning_effort").is_none());
        let mut body = json!({});
        think_for_llama_cpp(&mut body, crate::Think::Max);
        assert_eq!(body["reasoning_effort"], "high");
    }
}
