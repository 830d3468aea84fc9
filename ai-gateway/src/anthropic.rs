//! Anthropic's Messages API (`POST /v1/messages`), pure: a request read into
//! the chat the gateway asks (its content blocks to OpenAI-form messages,
//! its tools and tool choice to chat tools), and a reply's events written
//! back as a `message` object or as the Messages API's server-sent events.
//! The official `anthropic` SDKs and apps made for Claude (or for Ollama,
//! which serves the same route) reach the member's assistant this way.

use hearth_e2ee::ReplyEvent;
use hearth_llm::Message;
use serde_json::{Map, Value, json};

use crate::openai::{Invalid, ToolCalls};

/// A Messages request, read.
#[derive(Debug)]
pub struct Asked {
    /// The model (an agent target or a `provider/model` id, as for OpenAI).
    pub model: String,
    /// The conversation in OpenAI's form, the newest message last.
    pub messages: Vec<Message>,
    /// `system`, as instructions after the agent's persona.
    pub system: Option<String>,
    /// `max_tokens` (required by the API).
    pub max_tokens: u32,
    /// Whether to stream the events.
    pub stream: bool,
    /// `temperature` (0-1 here, as Anthropic takes it).
    pub temperature: Option<f32>,
    /// `top_p` and `stop_sequences` (as `stop`), passed on.
    pub sampling: hearth_llm::Sampling,
    /// The caller's tools and `tool_choice`, as chat's, checked.
    pub tools: crate::openai::Tools,
}

fn text_of(blocks: &Value, at: &str) -> Result<String, Invalid> {
    match blocks {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .map(
                |block| match (block["type"].as_str(), block["text"].as_str()) {
                    (Some("text"), Some(text)) => Ok(text.to_owned()),
                    _ => Err(Invalid(format!("{at} takes text blocks only"))),
                },
            )
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        Value::Null => Ok(String::new()),
        _ => Err(Invalid(format!(
            "{at} must be text or a list of text blocks"
        ))),
    }
}

/// An image block's picture as a `data:` URL: inline (base64) only, the
/// gateway fetches nothing.
fn image(block: &Value, at: &str) -> Result<Value, Invalid> {
    let source = &block["source"];
    match (
        source["type"].as_str(),
        source["media_type"].as_str(),
        source["data"].as_str(),
    ) {
        (Some("base64"), Some(media), Some(data)) => Ok(
            json!({"type": "image_url", "image_url": {"url": format!("data:{media};base64,{data}")}}),
        ),
        (Some("url"), ..) => Err(Invalid(format!(
            "{at}: images are taken inline (base64) only; the gateway fetches nothing"
        ))),
        _ => Err(Invalid(format!(
            "{at}: an image needs source.type \"base64\", media_type and data"
        ))),
    }
}

/// One Anthropic message as OpenAI-form messages: a user's tool results
/// become `tool` messages (before any text of theirs), an assistant's
/// `tool_use` blocks its `tool_calls`; thinking blocks are left out.
fn openai_messages(message: &Value, at: &str) -> Result<Vec<Value>, Invalid> {
    let role = match message["role"].as_str() {
        Some(role @ ("user" | "assistant")) => role,
        _ => {
            return Err(Invalid(format!(
                "{at}.role must be \"user\" or \"assistant\""
            )));
        }
    };
    let blocks = match &message["content"] {
        Value::String(text) => return Ok(vec![json!({"role": role, "content": text})]),
        Value::Array(blocks) => blocks,
        _ => {
            return Err(Invalid(format!(
                "{at}.content must be text or a list of content blocks"
            )));
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let here = format!("{at}.content[{index}]");
        match (role, block["type"].as_str()) {
            (_, Some("text")) => {
                let text = block["text"]
                    .as_str()
                    .ok_or_else(|| Invalid(format!("{here}.text must be text")))?;
                parts.push(json!({"type": "text", "text": text}));
            }
            ("user", Some("image")) => parts.push(image(block, &here)?),
            ("user", Some("tool_result")) => {
                let id = block["tool_use_id"]
                    .as_str()
                    .ok_or_else(|| Invalid(format!("{here}.tool_use_id is required")))?;
                let mut content = text_of(&block["content"], &format!("{here}.content"))?;
                if block["is_error"] == true {
                    content = format!("error: {content}");
                }
                results.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            ("assistant", Some("tool_use")) => {
                let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                    return Err(Invalid(format!("{here}: a tool_use needs id and name")));
                };
                let input = if block["input"].is_null() {
                    json!({})
                } else {
                    block["input"].clone()
                };
                calls.push(json!({"id": id, "type": "function",
                                  "function": {"name": name, "arguments": input.to_string()}}));
            }
            ("assistant", Some("thinking" | "redacted_thinking")) => {}
            (_, Some("document")) => {
                return Err(Invalid(format!(
                    "{here}: documents are not taken here; put them in your documents folder, which the assistant reads"
                )));
            }
            (_, other) => {
                return Err(Invalid(format!(
                    "{here}: a {} block is not taken in a {role} message",
                    other.unwrap_or("typeless")
                )));
            }
        }
    }
    let mut out = results;
    let only_text = parts.iter().all(|part| part["type"] == "text");
    let content = if only_text {
        json!(
            parts
                .iter()
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        )
    } else {
        json!(parts)
    };
    if !calls.is_empty() {
        out.push(json!({"role": role, "content": content, "tool_calls": calls}));
    } else if !parts.is_empty() {
        out.push(json!({"role": role, "content": content}));
    }
    Ok(out)
}

/// Anthropic's tools (`[{name, description, input_schema}]`) as chat
/// tools; a server tool (one with a `type` of Anthropic's own) is refused.
fn tools(value: Option<&Value>) -> Result<Option<Value>, Invalid> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let list = value
        .as_array()
        .ok_or_else(|| Invalid("`tools` must be a list".into()))?;
    let mut out = Vec::new();
    for (index, tool) in list.iter().enumerate() {
        if let Some(kind) = tool["type"].as_str().filter(|kind| *kind != "custom") {
            return Err(Invalid(format!(
                "tools[{index}]: {kind} is one of Anthropic's server tools, which this gateway does not run; define the tool yourself"
            )));
        }
        let name = tool["name"]
            .as_str()
            .ok_or_else(|| Invalid(format!("tools[{index}].name is required")))?;
        let mut function = json!({"name": name, "parameters": tool["input_schema"]});
        if let Some(description) = tool["description"].as_str() {
            function["description"] = json!(description);
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Some(Value::Array(out)))
}

/// Anthropic's `tool_choice` as chat's.
fn tool_choice(value: Option<&Value>) -> Result<Option<Value>, Invalid> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    match (value["type"].as_str(), value["name"].as_str()) {
        (Some("auto"), _) => Ok(Some(json!("auto"))),
        (Some("any"), _) => Ok(Some(json!("required"))),
        (Some("none"), _) => Ok(Some(json!("none"))),
        (Some("tool"), Some(name)) => Ok(Some(
            json!({"type": "function", "function": {"name": name}}),
        )),
        _ => Err(Invalid(
            "`tool_choice` must be {\"type\": \"auto\"}, \"any\", \"none\" or {\"type\": \"tool\", \"name\": …}".into(),
        )),
    }
}

/// Reads a `POST /v1/messages` body.
pub fn messages_request(body: &[u8]) -> Result<Asked, Invalid> {
    let body: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|error| Invalid(format!("not a Messages request: {error}")))?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|model| !model.is_empty())
        .ok_or_else(|| Invalid("`model` is required".into()))?
        .to_owned();
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|tokens| *tokens > 0)
        .and_then(|tokens| u32::try_from(tokens).ok())
        .ok_or_else(|| Invalid("`max_tokens` is required: a whole number above 0".into()))?;
    let listed = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or_else(|| Invalid("`messages` must be a list of at least one message".into()))?;
    let mut wire = Vec::new();
    for (index, message) in listed.iter().enumerate() {
        wire.extend(openai_messages(message, &format!("messages[{index}]"))?);
    }
    let messages: Vec<Message> = wire
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|error| Invalid(format!("a message is not taken: {error}")))?;
    let system = match body.get("system") {
        None | Some(Value::Null) => None,
        Some(system) => Some(text_of(system, "`system`")?).filter(|text| !text.is_empty()),
    };
    let temperature = match body.get("temperature") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let value = value
                .as_f64()
                .filter(|value| (0.0..=1.0).contains(value))
                .ok_or_else(|| Invalid("`temperature` must be between 0 and 1".into()))?;
            #[allow(clippy::cast_possible_truncation)] // 0..=1
            Some(value as f32)
        }
    };
    // Anthropic's names for the settings every API shares.
    let mut fields = Map::new();
    for (theirs, ours) in [("top_p", "top_p"), ("stop_sequences", "stop")] {
        if let Some(value) = body.get(theirs).filter(|value| !value.is_null()) {
            fields.insert(ours.to_owned(), value.clone());
        }
    }
    // Anthropic takes a list only (a bare text is OpenAI's form).
    if fields.get("stop").is_some_and(|stop| !stop.is_array()) {
        return Err(Invalid("`stop_sequences` must be at most 4 texts".into()));
    }
    let sampling = hearth_llm::Sampling::read(&fields).map_err(|refused| {
        let field = if refused.field == "stop" {
            "stop_sequences"
        } else {
            refused.field
        };
        Invalid(format!("`{field}` must be {}", refused.rule))
    })?;
    let tools = tools(body.get("tools"))?;
    let tool_choice = tool_choice(body.get("tool_choice"))?;
    let tools = crate::openai::check_tools(tools.as_ref(), tool_choice.as_ref())?;
    Ok(Asked {
        model,
        messages,
        system,
        max_tokens,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        temperature,
        sampling,
        tools,
    })
}

/// The Messages API's name for why a reply stopped.
fn stop_reason(finish_reason: &str, called: bool) -> &'static str {
    match finish_reason {
        _ if called => "tool_use",
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    }
}

/// The error object of `status` with `message`, as Anthropic writes it.
pub fn error(status: u16, message: &str) -> Value {
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// A reply, as the Messages API writes it: one `message` at the end, or
/// its events as they come.
#[derive(Debug)]
pub struct Reply {
    id: String,
    model: String,
    text: String,
    calls: ToolCalls,
    /// Streaming: the block open now (its index, and whether it is text).
    open: Option<(usize, bool)>,
    /// Streaming: blocks started so far.
    blocks: usize,
    /// Streaming: the block of each tool call (by the call's index).
    call_blocks: Vec<usize>,
}

impl Reply {
    /// A reply with `id` (`msg_…`), naming `model` until the model that
    /// answers is known.
    pub fn new(id: String, model: String) -> Reply {
        Reply {
            id,
            model,
            text: String::new(),
            calls: ToolCalls::default(),
            open: None,
            blocks: 0,
            call_blocks: Vec::new(),
        }
    }

    fn tool_uses(&self) -> Vec<Value> {
        self.calls
            .calls()
            .iter()
            .map(|call| {
                let input = call["function"]["arguments"]
                    .as_str()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input})
            })
            .collect()
    }

    /// The whole `message`, once its `done` event came.
    pub fn whole(&self, done: &ReplyEvent) -> Value {
        let (finish, usage) = match done {
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => (finish_reason.as_str(), usage.unwrap_or_default()),
            _ => ("stop", hearth_e2ee::ReplyUsage::default()),
        };
        let mut content = Vec::new();
        if !self.text.is_empty() || self.calls.is_empty() {
            content.push(json!({"type": "text", "text": self.text}));
        }
        content.extend(self.tool_uses());
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": content,
            "stop_reason": stop_reason(finish, !self.calls.is_empty()), "stop_sequence": null,
            "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
        })
    }

    /// Adds `event` to the whole reply (not streaming).
    pub fn gather(&mut self, event: &ReplyEvent) {
        match event {
            ReplyEvent::Meta { model, .. } => model.clone_into(&mut self.model),
            ReplyEvent::Delta { text } => self.text.push_str(text),
            ReplyEvent::ToolCalls { calls } => self.calls.push(calls),
            _ => {}
        }
    }

    /// The first events of a stream.
    pub fn start(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            ),
            ("ping", json!({"type": "ping"})),
        ]
    }

    fn close(&mut self, out: &mut Vec<(&'static str, Value)>) {
        if let Some((index, _)) = self.open.take() {
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn begin(&mut self, block: Value, text: bool, out: &mut Vec<(&'static str, Value)>) -> usize {
        self.close(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some((index, text));
        out.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    /// The events `event` adds to a stream.
    pub fn push(&mut self, event: &ReplyEvent) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        match event {
            ReplyEvent::Delta { text } if !text.is_empty() => {
                let index = match self.open {
                    Some((index, true)) => index,
                    _ => self.begin(json!({"type": "text", "text": ""}), true, &mut out),
                };
                self.text.push_str(text);
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": text}}),
                ));
            }
            ReplyEvent::ToolCalls { calls } => {
                self.calls.push(calls);
                for fragment in calls.as_array().map(Vec::as_slice).unwrap_or_default() {
                    // As the whole reply's calls take it (`ToolCalls`): an
                    // existing call or the next, never room for millions.
                    let Some(call) = crate::openai::call_slot(
                        fragment["index"].as_u64(),
                        self.call_blocks.len(),
                    ) else {
                        continue;
                    };
                    let block = if let Some(block) = self.call_blocks.get(call) {
                        *block
                    } else {
                        let id = fragment["id"]
                            .as_str()
                            .map_or_else(|| format!("call_{call}"), str::to_owned);
                        let name = fragment["function"]["name"].as_str().unwrap_or("");
                        let block = self.begin(
                            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                            false,
                            &mut out,
                        );
                        self.call_blocks.push(block);
                        block
                    };
                    if let Some(piece) = fragment["function"]["arguments"]
                        .as_str()
                        .filter(|piece| !piece.is_empty())
                    {
                        out.push((
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": block,
                                   "delta": {"type": "input_json_delta", "partial_json": piece}}),
                        ));
                    }
                }
            }
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => {
                self.close(&mut out);
                let usage = usage.unwrap_or_default();
                out.push((
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": stop_reason(finish_reason, !self.calls.is_empty()), "stop_sequence": null},
                           "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}}),
                ));
                out.push(("message_stop", json!({"type": "message_stop"})));
            }
            ReplyEvent::Error { message, .. } => {
                out.push(("error", error(500, message)));
            }
            ReplyEvent::Meta { model, .. } => model.clone_into(&mut self.model),
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_request_reads_as_the_sdk_sends_it() {
        let asked = messages_request(
            br#"{"model": "openclaw", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
                 "messages": [
                   {"role": "user", "content": "Weather in Oslo?"},
                   {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                     {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                     {"type": "text", "text": "And tomorrow?"}]}],
                 "tools": [{"name": "weather", "description": "The weather", "input_schema": {"type": "object"}}],
                 "tool_choice": {"type": "any"}, "temperature": 0.5, "stop_sequences": ["END"], "stream": true}"#,
        )
        .unwrap();
        assert_eq!(asked.model, "openclaw");
        assert_eq!(asked.system.as_deref(), Some("Be brief."));
        assert!(asked.stream);
        let roles: Vec<&str> = asked.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "user"]);
        let call = &asked.messages[1].tool_calls.as_ref().unwrap()[0];
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
        assert_eq!(asked.messages[2].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(asked.messages[3].content, "And tomorrow?");
        assert_eq!(asked.tools.names(), ["weather"]);
        assert_eq!(asked.tools.choice(), Some(json!("required")));
        assert_eq!(asked.sampling.stop, ["END"]);
    }

    #[test]
    fn what_the_gateway_cannot_do_is_refused_with_why() {
        let refused = |body: &str| messages_request(body.as_bytes()).unwrap_err().0;
        assert!(
            refused(r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#)
                .contains("max_tokens")
        );
        assert!(refused(r#"{"model": "m", "max_tokens": 8, "messages": []}"#).contains("messages"));
        assert!(refused(r#"{"model": "m", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}"#).contains("role"));
        assert!(refused(r#"{"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}], "temperature": 1.5}"#).contains("temperature"));
        assert!(
            refused(
                r#"{"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}],
                          "tools": [{"type": "web_search_20250305", "name": "web_search"}]}"#
            )
            .contains("server tools")
        );
        assert!(refused(r#"{"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [
                          {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}]}]}"#).contains("fetches nothing"));
        assert!(refused("not json").contains("not a Messages request"));
        for sampling in [
            r#""stop_sequences": "END""#,
            r#""stop_sequences": ["a", "b", "c", "d", "e"]"#,
        ] {
            let body = format!(
                r#"{{"model": "m", "max_tokens": 8, "messages": [{{"role": "user", "content": "x"}}], {sampling}}}"#
            );
            assert!(
                refused(&body).starts_with("`stop_sequences` must be"),
                "{sampling}"
            );
        }
        let top_p = r#"{"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}], "top_p": 2}"#;
        assert!(refused(top_p).starts_with("`top_p` must be"));
    }

    #[test]
    fn a_reply_streams_as_text_then_tool_use_blocks() {
        let mut reply = Reply::new("msg_1".into(), "openclaw".into());
        let mut events: Vec<(&str, Value)> = reply.start();
        for event in [
            ReplyEvent::Meta {
                model: "local/tiny".into(),
                session: String::new(),
            },
            ReplyEvent::Delta {
                text: "Checking".into(),
            },
            ReplyEvent::ToolCalls {
                calls: json!([{"index": 0, "id": "c1", "function": {"name": "weather", "arguments": "{\"ci"}}]),
            },
            ReplyEvent::ToolCalls {
                calls: json!([{"index": 0, "function": {"arguments": "ty\":\"Oslo\"}"}}]),
            },
            ReplyEvent::Done {
                finish_reason: "tool_calls".into(),
                usage: None,
            },
        ] {
            events.extend(reply.push(&event));
        }
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[5].1["content_block"]["name"], "weather");
        assert_eq!(events[5].1["index"], 1);
        assert_eq!(events[9].1["delta"]["stop_reason"], "tool_use");
        let whole = reply.whole(&ReplyEvent::Done {
            finish_reason: "tool_calls".into(),
            usage: None,
        });
        assert_eq!(whole["content"][1]["input"], json!({"city": "Oslo"}));
        assert_eq!(whole["model"], "local/tiny");
    }
}
