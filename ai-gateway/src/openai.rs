//! The OpenAI-style API's pure parts: tool definitions and choices checked
//! as OpenClaw checks them, streamed tool-call fragments joined into whole
//! calls, and the OpenResponses API (`/v1/responses`) translated to and
//! from a chat: its input items to messages, its tools to chat tools, and
//! a reply's events to its response object and its SSE events.

use hearth_e2ee::ReplyEvent;
use hearth_llm::{Message, NamedSchema, StructuredOutput};
use serde_json::{Map, Value, json};

/// Why a request is refused (`400 invalid_request_error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(why: String) -> Invalid {
        Invalid(why)
    }
}

impl From<&str> for Invalid {
    fn from(why: &str) -> Invalid {
        Invalid(why.to_owned())
    }
}

impl From<hearth_llm::chat::ContentRefused> for Invalid {
    fn from(why: hearth_llm::chat::ContentRefused) -> Invalid {
        Invalid(why.to_string())
    }
}

/// A caller's own tools, checked ([`check_tools`]): their definitions in
/// chat form, their names, and which the caller wants called.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tools {
    definitions: Vec<Value>,
    names: Vec<String>,
    choice: Option<Value>,
}

impl Tools {
    /// The tools' names, in the order given.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The definitions, as a model server reads them (none: no tools).
    pub fn definitions(&self) -> Option<Value> {
        (!self.definitions.is_empty()).then(|| Value::Array(self.definitions.clone()))
    }

    /// The `tool_choice`, as a model server reads it.
    pub fn choice(&self) -> Option<Value> {
        self.choice.clone()
    }
}

/// Checks chat `tools` (`[{type: "function", function: {name, …}}]`) and
/// `tool_choice`, as OpenClaw checks them.
pub fn check_tools(tools: Option<&Value>, choice: Option<&Value>) -> Result<Tools, Invalid> {
    let mut names = Vec::new();
    let mut definitions = Vec::new();
    if let Some(tools) = tools {
        let Some(tools) = tools.as_array() else {
            return Err("`tools` must be a list".into());
        };
        for (index, tool) in tools.iter().enumerate() {
            if tool["type"] != "function" {
                return Err(Invalid(format!(
                    "tools[{index}]: only function tools are supported"
                )));
            }
            match tool["function"]["name"].as_str() {
                Some(name) if !name.is_empty() => names.push(name.to_owned()),
                _ => return Err(Invalid(format!("tools[{index}].function.name is missing"))),
            }
            definitions.push(tool.clone());
        }
    }
    let choice = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(choice)) if matches!(choice.as_str(), "auto" | "none" | "required") => {
            Some(json!(choice))
        }
        Some(choice @ Value::Object(_)) if choice["type"] == "function" => {
            let name = choice["function"]["name"]
                .as_str()
                .or_else(|| choice["name"].as_str())
                .unwrap_or("");
            if !names.iter().any(|known| known == name) {
                return Err(Invalid(format!(
                    "tool_choice names {name:?}, which is not among the tools"
                )));
            }
            Some(choice.clone())
        }
        Some(other) => {
            return Err(Invalid(format!(
                "tool_choice {other} is not supported (\"auto\", \"none\", \"required\" or a function)"
            )));
        }
    };
    Ok(Tools {
        definitions,
        names,
        choice,
    })
}

/// The household's tools and a client's together, in chat form.
pub fn merge_tools(household: Option<Value>, client: &Tools) -> Option<Value> {
    let tools: Vec<Value> = household
        .into_iter()
        .filter_map(|tools| match tools {
            Value::Array(tools) => Some(tools),
            _ => None,
        })
        .flatten()
        .chain(client.definitions.iter().cloned())
        .collect();
    (!tools.is_empty()).then_some(Value::Array(tools))
}

/// Whole tool calls from streamed fragments: the fragments of one call
/// share an `index`; its id, type and name come once, its arguments in
/// pieces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolCalls {
    calls: Vec<Value>,
}

/// The most tool calls one reply may make; fragments of more are dropped.
pub const MAX_TOOL_CALLS: usize = 64;

/// Where fragment `index` (none: a new call) goes among `count` calls: an
/// existing call, or the next one; anything else (a model server naming
/// call 4,000,000,000, which would have the gateway make room for all
/// before it) is `None`, and the fragment is dropped. At most
/// [`MAX_TOOL_CALLS`].
pub fn call_slot(index: Option<u64>, count: usize) -> Option<usize> {
    let index = match index {
        Some(index) => usize::try_from(index).ok()?,
        None => count,
    };
    (index <= count && index < MAX_TOOL_CALLS).then_some(index)
}

impl ToolCalls {
    /// Adds `fragments` (a list).
    pub fn push(&mut self, fragments: &Value) {
        for fragment in fragments.as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(index) = call_slot(fragment["index"].as_u64(), self.calls.len()) else {
                continue;
            };
            if index == self.calls.len() {
                self.calls.push(
                    json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}),
                );
            }
            let call = &mut self.calls[index];
            if let Some(id) = fragment["id"].as_str() {
                call["id"] = json!(id);
            }
            if let Some(name) = fragment["function"]["name"].as_str() {
                call["function"]["name"] = json!(name);
            }
            if let Some(arguments) = fragment["function"]["arguments"].as_str() {
                let joined = format!(
                    "{}{arguments}",
                    call["function"]["arguments"].as_str().unwrap_or("")
                );
                call["function"]["arguments"] = json!(joined);
            }
        }
    }

    /// The calls, each `{id, type: "function", function: {name, arguments}}`
    /// (a call the model gave no id is `call_<index>`).
    pub fn calls(&self) -> Vec<Value> {
        self.calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let mut call = call.clone();
                if call["id"] == "" {
                    call["id"] = json!(format!("call_{index}"));
                }
                call
            })
            .collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// Reads OpenAI's `response_format` (chat completions): `text` (or none)
/// is free text; `json_object` any JSON object; `json_schema` JSON
/// matching `json_schema.schema`.
pub fn response_format(value: Option<&Value>) -> Result<Option<StructuredOutput>, Invalid> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    match value["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(StructuredOutput::JsonObject)),
        Some("json_schema") => named_schema(&value["json_schema"], "response_format.json_schema"),
        _ => {
            Err("response_format.type must be \"text\", \"json_object\" or \"json_schema\"".into())
        }
    }
}

/// Reads the Responses API's `text.format` (`{type: "json_schema", name,
/// schema, strict}` flat, or `json_object`, or `text`).
pub fn text_format(value: Option<&Value>) -> Result<Option<StructuredOutput>, Invalid> {
    let Some(format) = value
        .map(|text| &text["format"])
        .filter(|format| !format.is_null())
    else {
        return Ok(None);
    };
    match format["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(StructuredOutput::JsonObject)),
        Some("json_schema") => named_schema(format, "text.format"),
        _ => Err("text.format.type must be \"text\", \"json_object\" or \"json_schema\"".into()),
    }
}

/// `{name, schema, strict}` at `at`: the schema must be an object.
fn named_schema(value: &Value, at: &str) -> Result<Option<StructuredOutput>, Invalid> {
    if !value["schema"].is_object() {
        return Err(Invalid(format!(
            "{at}.schema must be a JSON schema (an object)"
        )));
    }
    let json_schema = NamedSchema::new(
        value["name"].as_str().unwrap_or("response").to_owned(),
        value["schema"].clone(),
        value["strict"].as_bool(),
    )
    .map_err(|too_large| Invalid(format!("{at}.schema: {too_large}")))?;
    Ok(Some(StructuredOutput::JsonSchema { json_schema }))
}

/// A `/v1/responses` request as a chat: the system prompt it adds
/// (`instructions`, `system` and `developer` messages), the conversation,
/// and its function tools in chat form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponsesChat {
    /// What goes into the system prompt.
    pub system: Option<String>,
    /// The conversation, the current message last.
    pub messages: Vec<Message>,
    /// The caller's tools and its choice, checked.
    pub tools: Tools,
}

/// The text and images of an item's `content`: a string or parts
/// (`input_text`, `output_text`, `text`, `input_image` inline); files are
/// refused.
fn item_content(content: &Value) -> Result<(String, Vec<String>), Invalid> {
    match content {
        Value::Null => Ok((String::new(), Vec::new())),
        Value::String(text) => Ok((text.clone(), Vec::new())),
        Value::Array(parts) => {
            let (mut text, mut images) = (String::new(), Vec::new());
            for part in parts {
                match part["type"].as_str() {
                    Some("input_text" | "output_text" | "text") => {
                        text.push_str(part["text"].as_str().unwrap_or(""));
                    }
                    Some("input_image") => images.push(hearth_llm::chat::image_url(part)?),
                    other => {
                        return Err(Invalid(format!(
                            "content parts of type {other:?} are not supported here (text and images)"
                        )));
                    }
                }
            }
            Ok((text, images))
        }
        _ => Err("content must be text or a list of parts".into()),
    }
}

/// Reads a `/v1/responses` request's `input`, `instructions`, `tools` and
/// `tool_choice`.
pub fn responses_chat(body: &Map<String, Value>) -> Result<ResponsesChat, Invalid> {
    let mut system: Vec<String> = body
        .get("instructions")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    let mut messages = Vec::new();
    match body.get("input") {
        Some(Value::String(text)) => messages.push(Message::new("user", text.clone())),
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let at = |why: Invalid| format!("input[{index}]: {why}");
                match item["type"].as_str().unwrap_or("message") {
                    "message" => {
                        let role = item["role"].as_str().unwrap_or("user");
                        let (text, images) = item_content(&item["content"]).map_err(at)?;
                        match role {
                            "system" | "developer" if images.is_empty() => system.push(text),
                            "system" | "developer" => {
                                return Err(Invalid(at("images go in a user message".into())));
                            }
                            "user" | "assistant" => {
                                let mut message = Message::new(role, text);
                                message.images = images;
                                messages.push(message);
                            }
                            other => {
                                return Err(Invalid(at(format!(
                                    "role {other:?} is not supported"
                                )
                                .into())));
                            }
                        }
                    }
                    "function_call" => {
                        let call = json!([{
                            "id": item["call_id"],
                            "type": "function",
                            "function": {"name": item["name"], "arguments": item["arguments"]},
                        }]);
                        let mut message = Message::new("assistant", "");
                        message.tool_calls = Some(call);
                        messages.push(message);
                    }
                    "function_call_output" => {
                        let output = match &item["output"] {
                            Value::String(text) => text.clone(),
                            other => item_content(other).map_err(at)?.0,
                        };
                        let mut message = Message::new("tool", output);
                        message.tool_call_id = item["call_id"].as_str().map(str::to_owned);
                        messages.push(message);
                    }
                    "reasoning" | "item_reference" => {}
                    other => {
                        return Err(Invalid(at(format!(
                            "items of type {other:?} are not supported"
                        )
                        .into())));
                    }
                }
            }
        }
        _ => return Err("`input` must be text or a list of items".into()),
    }
    if !messages
        .last()
        .is_some_and(|message| message.role == "user" || message.role == "tool")
    {
        return Err("the input must end with a user message or a function_call_output".into());
    }
    let tools = match body.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(tools)) => Some(Value::Array(
            tools
                .iter()
                .enumerate()
                .map(|(index, tool)| {
                    if tool["type"] != "function" || !tool["name"].is_string() {
                        return Err(Invalid(format!(
                            "tools[{index}]: only function tools with a name are supported"
                        )));
                    }
                    let mut function = Map::new();
                    for key in ["name", "description", "parameters", "strict"] {
                        if let Some(value) = tool.get(key) {
                            function.insert(key.to_owned(), value.clone());
                        }
                    }
                    Ok(json!({"type": "function", "function": function}))
                })
                .collect::<Result<Vec<_>, Invalid>>()?,
        )),
        Some(_) => return Err("`tools` must be a list".into()),
    };
    let tool_choice = match body.get("tool_choice") {
        Some(choice @ Value::Object(_)) if choice["type"] == "function" => {
            Some(json!({"type": "function", "function": {"name": choice["name"]}}))
        }
        other => other.cloned(),
    };
    let tools = check_tools(tools.as_ref(), tool_choice.as_ref())?;
    Ok(ResponsesChat {
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages,
        tools,
    })
}

/// One reply as an OpenResponses response: the object, and the SSE events
/// that stream it (`response.created` … `response.completed`), from the
/// reply's events in order.
#[derive(Clone, Debug)]
pub struct ResponseStream {
    id: String,
    created: i64,
    model: String,
    text: Option<String>,
    calls: ToolCalls,
    /// Output items already opened, in order: `("message", 0)` or `("call", n)`.
    items: Vec<(&'static str, usize)>,
    usage: Option<Value>,
    sequence: u64,
}

impl ResponseStream {
    /// A response `id` made at `created` (Unix seconds).
    pub fn new(id: String, created: i64) -> ResponseStream {
        ResponseStream {
            id,
            created,
            model: String::new(),
            text: None,
            calls: ToolCalls::default(),
            items: Vec::new(),
            usage: None,
            sequence: 0,
        }
    }

    fn message_id(&self) -> String {
        format!("msg_{}", &self.id["resp_".len().min(self.id.len())..])
    }

    fn event(&mut self, kind: &str, mut data: Value) -> (String, Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        (kind.to_owned(), data)
    }

    /// The response object, `status` given.
    pub fn response(&self, status: &str) -> Value {
        let mut output = Vec::new();
        for (kind, index) in &self.items {
            match *kind {
                "message" => output.push(json!({
                    "type": "message", "id": self.message_id(), "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": self.text.clone().unwrap_or_default(), "annotations": []}],
                })),
                _ => {
                    let call = &self.calls.calls()[*index];
                    output.push(json!({
                        "type": "function_call", "id": format!("fc_{index}_{}", self.id), "status": "completed",
                        "call_id": call["id"], "name": call["function"]["name"], "arguments": call["function"]["arguments"],
                    }));
                }
            }
        }
        json!({
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "model": self.model, "output": output, "usage": self.usage,
        })
    }

    /// The SSE events (name, data) that `event` adds.
    pub fn push(&mut self, event: &ReplyEvent) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        match event {
            ReplyEvent::Meta { model, .. } => {
                self.model = model.clone();
                let response = self.response("in_progress");
                out.push(self.event("response.created", json!({"response": response})));
                out.push(self.event("response.in_progress", json!({"response": response})));
            }
            ReplyEvent::Delta { text } => {
                if self.text.is_none() {
                    self.text = Some(String::new());
                    let output_index = self.items.len();
                    self.items.push(("message", 0));
                    let id = self.message_id();
                    out.push(self.event(
                        "response.output_item.added",
                        json!({"output_index": output_index, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}),
                    ));
                    out.push(self.event(
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                    ));
                }
                if let Some(kept) = &mut self.text {
                    kept.push_str(text);
                }
                let output_index = self
                    .items
                    .iter()
                    .position(|(kind, _)| *kind == "message")
                    .unwrap_or(0);
                let id = self.message_id();
                out.push(self.event(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0, "delta": text}),
                ));
            }
            ReplyEvent::ToolCalls { calls } => {
                let before = self.calls.calls().len();
                self.calls.push(calls);
                let after = self.calls.calls().len();
                for index in before..after {
                    // Clients (the official SDK among them) want an item
                    // announced before any event about it.
                    let output_index = self.items.len();
                    self.items.push(("call", index));
                    let call = &self.calls.calls()[index];
                    let item = json!({
                        "type": "function_call", "id": format!("fc_{index}_{}", self.id), "status": "in_progress",
                        "call_id": call["id"], "name": call["function"]["name"], "arguments": "",
                    });
                    out.push(self.event(
                        "response.output_item.added",
                        json!({"output_index": output_index, "item": item}),
                    ));
                }
                for fragment in calls.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let index = fragment["index"].as_u64().map_or(0, |index| index as usize);
                    let output_index = self
                        .items
                        .iter()
                        .position(|item| *item == ("call", index))
                        .unwrap_or(0);
                    if let Some(arguments) = fragment["function"]["arguments"].as_str()
                        && !arguments.is_empty()
                    {
                        let item_id = format!("fc_{index}_{}", self.id);
                        out.push(self.event(
                            "response.function_call_arguments.delta",
                            json!({"item_id": item_id, "output_index": output_index, "delta": arguments}),
                        ));
                    }
                }
            }
            ReplyEvent::Done { usage, .. } => {
                self.usage = usage.map(|usage| {
                    json!({"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
                           "total_tokens": usage.prompt_tokens + usage.completion_tokens})
                });
                let finished = self.response("completed");
                let items = finished["output"].as_array().cloned().unwrap_or_default();
                for (output_index, item) in items.into_iter().enumerate() {
                    if item["type"] == "message" {
                        let text = self.text.clone().unwrap_or_default();
                        out.push(self.event(
                            "response.output_text.done",
                            json!({"item_id": item["id"], "output_index": output_index, "content_index": 0, "text": text}),
                        ));
                    } else {
                        out.push(self.event(
                            "response.function_call_arguments.done",
                            json!({"item_id": item["id"], "output_index": output_index, "arguments": item["arguments"]}),
                        ));
                    }
                    out.push(self.event(
                        "response.output_item.done",
                        json!({"output_index": output_index, "item": item}),
                    ));
                }
                out.push(self.event("response.completed", json!({"response": finished})));
            }
            ReplyEvent::Error { code, message } => {
                let mut failed = self.response("failed");
                failed["error"] = json!({"code": code, "message": message});
                out.push(self.event("response.failed", json!({"response": failed})));
            }
            ReplyEvent::Notice { .. } | ReplyEvent::Tool { .. } | ReplyEvent::Data { .. } => {}
        }
        out
    }
}

/// A chat completion, as the Chat Completions API writes it: one
/// `chat.completion` at the end ([`Completion::gather`], then
/// [`Completion::whole`]), or its `chat.completion.chunk`s as the events
/// come ([`Completion::chunks`]).
#[derive(Clone, Debug)]
pub struct Completion {
    id: String,
    created: i64,
    include_usage: bool,
    model: String,
    text: String,
    calls: ToolCalls,
    finish: Option<String>,
    usage: Option<hearth_e2ee::ReplyUsage>,
}

fn usage_json(usage: Option<hearth_e2ee::ReplyUsage>) -> Value {
    usage.map_or(Value::Null, |usage| {
        json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
               "total_tokens": usage.prompt_tokens + usage.completion_tokens})
    })
}

impl Completion {
    /// A completion `id` (`chatcmpl-…`) made at `created` (Unix seconds);
    /// streamed, a last chunk carries the usage when `include_usage`
    /// (`stream_options.include_usage`).
    pub fn new(id: String, created: i64, include_usage: bool) -> Completion {
        Completion {
            id,
            created,
            include_usage,
            model: String::new(),
            text: String::new(),
            calls: ToolCalls::default(),
            finish: None,
            usage: None,
        }
    }

    /// Takes in one event of a reply given whole.
    pub fn gather(&mut self, event: &ReplyEvent) {
        match event {
            ReplyEvent::Meta { model, .. } => model.clone_into(&mut self.model),
            ReplyEvent::Delta { text } => self.text.push_str(text),
            ReplyEvent::ToolCalls { calls } => self.calls.push(calls),
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => {
                self.finish = Some(finish_reason.clone());
                self.usage = *usage;
            }
            ReplyEvent::Error { .. }
            | ReplyEvent::Notice { .. }
            | ReplyEvent::Tool { .. }
            | ReplyEvent::Data { .. } => {}
        }
    }

    /// The whole `chat.completion`.
    pub fn whole(&self) -> Value {
        let message = if self.calls.is_empty() {
            json!({"role": "assistant", "content": self.text})
        } else {
            let content = if self.text.is_empty() {
                Value::Null
            } else {
                json!(self.text)
            };
            json!({"role": "assistant", "content": content, "tool_calls": self.calls.calls()})
        };
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
            "usage": usage_json(self.usage),
        })
    }

    /// The data of the SSE frames one event of a streamed reply becomes:
    /// chunks, and `[DONE]` only after a complete reply (an error ends the
    /// stream without it).
    pub fn chunks(&mut self, event: ReplyEvent) -> Vec<String> {
        let chunk = |model: &str, delta: Value, finish: Option<&str>| {
            json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                   "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
        };
        match event {
            ReplyEvent::Meta { model, .. } => {
                let first = chunk(&model, json!({"role": "assistant", "content": ""}), None);
                self.model = model;
                vec![first]
            }
            ReplyEvent::Delta { text } => vec![chunk(&self.model, json!({"content": text}), None)],
            ReplyEvent::ToolCalls { calls } => {
                vec![chunk(&self.model, json!({"tool_calls": calls}), None)]
            }
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => {
                let mut lines = vec![chunk(&self.model, json!({}), Some(&finish_reason))];
                if self.include_usage {
                    lines.push(
                        json!({"id": self.id, "object": "chat.completion.chunk",
                               "created": self.created, "model": self.model, "choices": [],
                               "usage": usage_json(usage)})
                        .to_string(),
                    );
                }
                lines.push("[DONE]".to_owned());
                lines
            }
            ReplyEvent::Error { code, message } => {
                vec![json!({"error": {"code": code, "message": message}}).to_string()]
            }
            ReplyEvent::Notice { .. } | ReplyEvent::Tool { .. } | ReplyEvent::Data { .. } => {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Vec<ReplyEvent> {
        vec![
            ReplyEvent::Meta {
                model: "local/small".into(),
                session: "s1".into(),
            },
            ReplyEvent::Delta { text: "Hel".into() },
            ReplyEvent::Delta { text: "lo".into() },
            ReplyEvent::ToolCalls {
                calls: json!([{"index": 0, "id": "call_1", "function": {"name": "remember", "arguments": "{}"}}]),
            },
            ReplyEvent::Done {
                finish_reason: "tool_calls".into(),
                usage: Some(hearth_e2ee::ReplyUsage {
                    prompt_tokens: 7,
                    completion_tokens: 3,
                }),
            },
        ]
    }

    #[test]
    fn a_completion_given_whole_carries_the_answering_model_text_calls_and_usage() {
        let mut completion = Completion::new("chatcmpl-1".into(), 1_700_000_000, false);
        for event in &reply() {
            completion.gather(event);
        }
        let whole = completion.whole();
        assert_eq!(whole["model"], "local/small");
        assert_eq!(whole["choices"][0]["message"]["content"], "Hello");
        assert_eq!(
            whole["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "remember"
        );
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(whole["usage"]["total_tokens"], 10);
    }

    #[test]
    fn a_streamed_completion_ends_with_done_only_when_whole() {
        let mut completion = Completion::new("chatcmpl-1".into(), 1, true);
        let frames: Vec<String> = reply()
            .into_iter()
            .flat_map(|event| completion.chunks(event))
            .collect();
        let first: Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["model"], "local/small");
        let usage: Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 7);
        assert_eq!(frames.last().unwrap(), "[DONE]");
        // A reply that fails ends with its error, and no `[DONE]`.
        let mut failed = Completion::new("chatcmpl-2".into(), 1, false);
        let frames = failed.chunks(ReplyEvent::Error {
            code: hearth_e2ee::ErrorCode::BackendFailed,
            message: "the model failed".into(),
        });
        assert_eq!(frames.len(), 1);
        assert!(frames[0].contains("backend_failed"), "{}", frames[0]);
    }

    /// The attack: a model server (or a remote node) streams a tool-call
    /// fragment naming call 4,000,000,000; making room for every call
    /// before it took the gateway's memory (found by the openai fuzz
    /// target). The fragment is dropped; real calls still join.
    #[test]
    fn a_tool_call_index_far_past_the_calls_made_is_dropped() {
        let mut calls = ToolCalls::default();
        calls.push(&json!([{"index": 4_000_000_000u64, "id": "x", "function": {"name": "boom", "arguments": "{}"}}]));
        calls.push(&json!([{"index": 1, "function": {"name": "skip"}}]));
        assert!(calls.is_empty(), "{:?}", calls.calls());
        calls.push(&json!([{"index": 0, "id": "a", "function": {"name": "weather", "arguments": "{\"ci"}}]));
        calls.push(&json!([{"index": 0, "function": {"arguments": "ty\":1}"}}]));
        calls.push(&json!([{"id": "b", "function": {"name": "time", "arguments": "{}"}}]));
        let made = calls.calls();
        assert_eq!(made.len(), 2);
        assert_eq!(made[0]["function"]["arguments"], "{\"city\":1}");
        assert_eq!(made[1]["id"], "b");
        for index in 0..(MAX_TOOL_CALLS as u64 + 10) {
            calls.push(&json!([{"index": index, "function": {"name": "n"}}]));
        }
        assert_eq!(calls.calls().len(), MAX_TOOL_CALLS);
        assert_eq!(call_slot(Some(u64::MAX), 0), None);
    }

    #[test]
    fn response_formats_read_as_openai_and_the_responses_api_send_them() {
        let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
        let chat = response_format(Some(&json!({"type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": true}})))
        .unwrap()
        .unwrap();
        let responses = text_format(Some(&json!({"format": {"type": "json_schema",
            "name": "answer", "schema": schema, "strict": true}})))
        .unwrap()
        .unwrap();
        assert_eq!(chat, responses, "the same structure from either API");
        assert_eq!(chat.ollama_format(), schema);
        assert_eq!(
            response_format(Some(&json!({"type": "json_object"}))).unwrap(),
            Some(StructuredOutput::JsonObject)
        );
        assert_eq!(
            response_format(Some(&json!({"type": "text"}))).unwrap(),
            None
        );
        assert_eq!(
            text_format(Some(&json!({"verbosity": "low"}))).unwrap(),
            None
        );
        assert_eq!(response_format(None).unwrap(), None);
        for (refused, says) in [
            (
                response_format(Some(&json!({"type": "yaml"}))),
                "response_format.type",
            ),
            (
                response_format(Some(
                    &json!({"type": "json_schema", "json_schema": {"name": "x"}}),
                )),
                "response_format.json_schema.schema",
            ),
            (
                text_format(Some(
                    &json!({"format": {"type": "json_schema", "schema": "no"}}),
                )),
                "text.format.schema",
            ),
        ] {
            let why = refused.unwrap_err().0;
            assert!(why.contains(says), "{why}");
        }
    }

    #[test]
    fn tools_and_choices_are_checked_as_openclaw_checks_them() {
        let tools =
            json!([{"type": "function", "function": {"name": "weather", "parameters": {}}}]);
        let checked = check_tools(Some(&tools), Some(&json!("auto"))).unwrap();
        assert_eq!(checked.names(), ["weather"]);
        assert_eq!(checked.definitions(), Some(tools.clone()));
        assert_eq!(checked.choice(), Some(json!("auto")));
        assert_eq!(check_tools(None, None).unwrap().definitions(), None);
        assert!(
            check_tools(
                Some(&tools),
                Some(&json!({"type": "function", "function": {"name": "weather"}}))
            )
            .is_ok()
        );
        assert!(
            check_tools(
                Some(&tools),
                Some(&json!({"type": "function", "function": {"name": "mail"}}))
            )
            .is_err()
        );
        assert!(check_tools(Some(&tools), Some(&json!({"type": "allowed_tools"}))).is_err());
        assert!(check_tools(Some(&json!({})), None).is_err());
        assert!(check_tools(Some(&json!([{"type": "code_interpreter"}])), None).is_err());
        assert!(check_tools(Some(&json!([{"type": "function", "function": {}}])), None).is_err());
    }

    #[test]
    fn streamed_fragments_make_whole_calls() {
        let mut calls = ToolCalls::default();
        calls.push(&json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]));
        calls.push(&json!([{"index": 0, "function": {"arguments": "{\"city\":"}}]));
        calls.push(&json!([{"index": 0, "function": {"arguments": "\"Oslo\"}"}}, {"index": 1, "function": {"name": "time", "arguments": "{}"}}]));
        assert_eq!(
            calls.calls(),
            [
                json!({"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}),
                json!({"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}}),
            ]
        );
    }

    #[test]
    fn responses_input_becomes_a_chat() {
        let body = json!({
            "instructions": "Be brief.",
            "input": [
                {"type": "message", "role": "developer", "content": "Answer in English."},
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "weather"},
        });
        let chat = responses_chat(body.as_object().unwrap()).unwrap();
        assert_eq!(
            chat.system.as_deref(),
            Some("Be brief.\n\nAnswer in English.")
        );
        assert_eq!(chat.messages.len(), 3);
        assert_eq!(
            chat.messages[1].tool_calls.as_ref().unwrap()[0]["function"]["name"],
            "weather"
        );
        assert_eq!(chat.messages[2].role, "tool");
        assert_eq!(chat.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(chat.tools.names(), ["weather"]);
        assert_eq!(chat.tools.choice().unwrap()["function"]["name"], "weather");
        let plain = responses_chat(json!({"input": "hi"}).as_object().unwrap()).unwrap();
        assert_eq!(plain.messages, [Message::new("user", "hi")]);
        assert!(
            responses_chat(
                json!({"input": [{"role": "assistant", "content": "x"}]})
                    .as_object()
                    .unwrap()
            )
            .is_err()
        );
        assert!(
            responses_chat(
                json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/x.png"}]}]})
                    .as_object()
                    .unwrap()
            )
            .is_err(),
            "nothing is fetched"
        );
        let seen = responses_chat(
            json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "what?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"}]}]})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(seen.messages[0].images, ["data:image/png;base64,iVBOR"]);
        assert!(
            responses_chat(
                json!({"input": [{"role": "user", "content": [{"type": "input_file"}]}]})
                    .as_object()
                    .unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn a_reply_streams_as_openresponses_events() {
        let mut stream = ResponseStream::new("resp_x".into(), 7);
        let mut names = Vec::new();
        for event in [
            ReplyEvent::Meta {
                model: "p/m".into(),
                session: String::new(),
            },
            ReplyEvent::Delta { text: "Hel".into() },
            ReplyEvent::Delta { text: "lo".into() },
            ReplyEvent::ToolCalls {
                calls: json!([{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]),
            },
            ReplyEvent::Done {
                finish_reason: "tool_calls".into(),
                usage: Some(hearth_e2ee::ReplyUsage {
                    prompt_tokens: 3,
                    completion_tokens: 2,
                }),
            },
        ] {
            names.extend(stream.push(&event).into_iter().map(|(name, data)| {
                assert_eq!(data["type"], name.as_str());
                name
            }));
        }
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.output_text.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let done = stream.response("completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["name"], "f");
        assert_eq!(done["usage"]["total_tokens"], 5);
    }
}
