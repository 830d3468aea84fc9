//! Ollama's API, pure: its chat, generate and embedding requests read into
//! the gateway's terms, and a reply's events written out as Ollama's
//! objects and NDJSON lines, so apps made for "Ollama at hub:11434" use
//! the household's models and assistant. The HTTP shell is
//! [`crate::api::ollama_router`].

use hearth_e2ee::ReplyEvent;
use hearth_llm::{Message, NamedSchema, StructuredOutput, Think};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::openai::ToolCalls;

/// Why a request is refused (`400`, `{"error": "..."}`).
pub use crate::openai::Invalid;

/// The Ollama version this API follows (what `/api/version` says).
pub const VERSION: &str = "0.12.6";

/// What Ollama apps may not do here.
pub const REFUSED: &str = "models are managed by the household's admin on the hub, not through this API \
     (pull, push, create, copy and delete are refused); GET /api/tags lists what you can use";

/// A model name as an Ollama app sends it: `:latest` is the tag every
/// name has when it names none.
pub fn model_name(name: &str) -> &str {
    let name = name.trim();
    name.strip_suffix(":latest").unwrap_or(name)
}

/// The settings of Ollama's `options` the gateway passes on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// `num_predict`: most tokens generated.
    pub max_tokens: Option<u32>,
    /// `temperature`.
    pub temperature: Option<f32>,
    /// `top_p`, `stop`, `seed`, `frequency_penalty`, `presence_penalty`.
    pub sampling: hearth_llm::Sampling,
}

/// Reads `options` (other keys, such as `num_ctx`, are accepted and left
/// to the model server's own settings).
pub fn options(value: Option<&Value>) -> Result<Options, Invalid> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(Options::default());
    };
    let Some(map) = value.as_object() else {
        return Err("`options` must be an object".into());
    };
    let mut options = Options::default();
    match map.get("num_predict") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_i64() {
            // Ollama's -1 (and -2) mean "as long as the model goes".
            Some(count) if count < 0 => {}
            Some(count) => options.max_tokens = Some(u32::try_from(count).unwrap_or(u32::MAX)),
            None => return Err("options.num_predict must be a whole number".into()),
        },
    }
    match map.get("temperature") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_f64() {
            Some(temperature) if (0.0..=2.0).contains(&temperature) => {
                options.temperature = Some(temperature as f32);
            }
            _ => return Err("options.temperature must be a number from 0 to 2".into()),
        },
    }
    options.sampling =
        hearth_llm::Sampling::read(map).map_err(|refused| Invalid(format!("options.{refused}")))?;
    Ok(options)
}

/// An Ollama chat or generate request, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Asked {
    /// The model named.
    pub model: String,
    /// The conversation, the current message last (empty: a generate
    /// request that only loads the model).
    pub messages: Vec<Message>,
    /// Chat tools, in OpenAI's form, checked.
    pub tools: crate::openai::Tools,
    /// Whether to stream (Ollama's default: yes).
    pub stream: bool,
    /// What `options` set.
    pub options: Options,
    /// `format`: the reply held to JSON, or to a JSON schema.
    pub format: Option<StructuredOutput>,
    /// `think`: whether, and how much, a thinking model thinks.
    pub think: Option<Think>,
}

/// Reads Ollama's `think`: `true`, `false`, `"low"`, `"medium"`, `"high"`
/// or `"max"` (as Ollama takes them), or none.
pub fn think(value: Option<&Value>) -> Result<Option<Think>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Think::from_ollama(value).map(Some).ok_or_else(|| {
            Invalid(format!(
                "invalid think value {value}: one of true, false, \"low\", \"medium\", \"high\", \"max\""
            ))
        }),
    }
}

/// Reads Ollama's `format`: `"json"`, a JSON schema (an object), or none
/// (`""` too).
pub fn format(value: Option<&Value>) -> Result<Option<StructuredOutput>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) if text == "json" => Ok(Some(StructuredOutput::JsonObject)),
        Some(schema @ Value::Object(_)) => {
            let json_schema = NamedSchema::new("format".into(), schema.clone(), None)
                .map_err(|too_large| Invalid(format!("`format`: {too_large}")))?;
            Ok(Some(StructuredOutput::JsonSchema { json_schema }))
        }
        Some(_) => Err("`format` must be \"json\" or a JSON schema (an object)".into()),
    }
}

#[derive(Deserialize)]
struct ChatBody {
    model: String,
    #[serde(default)]
    messages: Vec<OllamaMessage>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    think: Option<Value>,
    // Accepted: `keep_alive` (the model server decides).
}

#[derive(Deserialize)]
struct OllamaMessage {
    role: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
    #[serde(default)]
    tool_name: Option<String>,
}

/// An Ollama image (base64, no prefix) as a `data:` URL, its type read
/// from its first bytes.
pub fn image_data_url(base64: &Value) -> Result<String, Invalid> {
    let text = base64.as_str().ok_or("an image is base64 text")?.trim();
    let kind = [
        ("iVBOR", "png"),
        ("/9j/", "jpeg"),
        ("R0lGOD", "gif"),
        ("UklGR", "webp"),
    ]
    .iter()
    .find(|(start, _)| text.starts_with(start))
    .map(|(_, kind)| *kind)
    .ok_or("an image must be PNG, JPEG, GIF or WebP, base64-encoded")?;
    Ok(format!("data:image/{kind};base64,{text}"))
}

/// Reads `POST /api/chat`.
pub fn chat_request(body: &[u8]) -> Result<Asked, Invalid> {
    let body: ChatBody =
        serde_json::from_slice(body).map_err(|error| format!("not a chat request: {error}"))?;
    let mut messages = Vec::with_capacity(body.messages.len());
    for (index, message) in body.messages.into_iter().enumerate() {
        let images = message
            .images
            .iter()
            .flatten()
            .map(image_data_url)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| format!("messages[{index}]: {why}"))?;
        if !matches!(
            message.role.as_str(),
            "system" | "user" | "assistant" | "tool"
        ) {
            return Err(Invalid(format!(
                "messages[{index}]: the role {:?} is not one of system, user, assistant, tool",
                message.role
            )));
        }
        let mut read = Message::new(&message.role, message.content);
        if let Some(calls) = message.tool_calls {
            let calls = calls
                .iter()
                .enumerate()
                .map(|(call, value)| {
                    let function = &value["function"];
                    let arguments = match &function["arguments"] {
                        Value::String(text) => text.clone(),
                        Value::Null => "{}".to_owned(),
                        other => other.to_string(),
                    };
                    json!({"id": format!("call_{index}_{call}"), "type": "function",
                           "function": {"name": function["name"], "arguments": arguments}})
                })
                .collect();
            read.tool_calls = Some(Value::Array(calls));
        }
        read.name = message.tool_name;
        read.images = images;
        messages.push(read);
    }
    if !messages
        .last()
        .is_some_and(|message| message.role == "user" || message.role == "tool")
    {
        return Err("`messages` must end with a user message or a tool result".into());
    }
    let tools = crate::openai::check_tools(body.tools.as_ref(), None)?;
    Ok(Asked {
        model: model_name(&body.model).to_owned(),
        messages,
        tools,
        stream: body.stream.unwrap_or(true),
        options: options(body.options.as_ref())?,
        format: format(body.format.as_ref())?,
        think: think(body.think.as_ref())?,
    })
}

#[derive(Deserialize)]
struct GenerateBody {
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    think: Option<Value>,
    #[serde(default)]
    raw: bool,
}

/// Reads `POST /api/generate` as a one-message chat (an empty prompt
/// loads the model, as in Ollama: no messages).
pub fn generate_request(body: &[u8]) -> Result<Asked, Invalid> {
    let body: GenerateBody =
        serde_json::from_slice(body).map_err(|error| format!("not a generate request: {error}"))?;
    let images = body
        .images
        .iter()
        .flatten()
        .map(image_data_url)
        .collect::<Result<Vec<_>, _>>()?;
    if body.raw {
        return Err(
            "raw prompts are not supported: the model server applies its chat template".into(),
        );
    }
    let messages = if body.prompt.is_empty() {
        Vec::new()
    } else {
        body.system
            .filter(|system| !system.is_empty())
            .map(|system| Message::new("system", system))
            .into_iter()
            .chain(std::iter::once(Message {
                images,
                ..Message::new("user", body.prompt)
            }))
            .collect()
    };
    Ok(Asked {
        model: model_name(&body.model).to_owned(),
        messages,
        tools: crate::openai::Tools::default(),
        stream: body.stream.unwrap_or(true),
        options: options(body.options.as_ref())?,
        format: format(body.format.as_ref())?,
        think: think(body.think.as_ref())?,
    })
}

/// An embedding request (`/api/embed`'s `input`, or `/api/embeddings`'
/// `prompt`): the model named and the texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedAsked {
    /// The model named.
    pub model: String,
    /// The texts.
    pub inputs: Vec<String>,
    /// `dimensions`, when asked.
    pub dimensions: Option<u32>,
}

/// Most texts in one embedding request.
pub const MAX_EMBED_INPUTS: usize = 256;

/// Reads `POST /api/embed` (`legacy`: `POST /api/embeddings`, one `prompt`).
pub fn embed_request(body: &[u8], legacy: bool) -> Result<EmbedAsked, Invalid> {
    let body: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|error| format!("not an embedding request: {error}"))?;
    let model = match body.get("model") {
        Some(Value::String(model)) => model_name(model).to_owned(),
        _ => return Err("`model` must name a model".into()),
    };
    let key = if legacy { "prompt" } else { "input" };
    let inputs = match body.get(key) {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !legacy && items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ if legacy => return Err("`prompt` must be a string".into()),
        _ => return Err("`input` must be a string or a list of strings".into()),
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBED_INPUTS {
        return Err(Invalid(format!(
            "`{key}` must hold 1 to {MAX_EMBED_INPUTS} strings"
        )));
    }
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|count| u32::try_from(count).ok())
                .ok_or("`dimensions` must be a whole number")?,
        ),
    };
    Ok(EmbedAsked {
        model,
        inputs,
        dimensions,
    })
}

/// The digest Ollama apps show for a model: a hash of its name (the
/// gateway has no model files of its own to hash).
pub fn digest(name: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn details() -> Value {
    json!({"parent_model": "", "format": "gguf", "family": "", "families": null,
           "parameter_size": "", "quantization_level": ""})
}

/// One model in `/api/tags` (`modified_at` given).
pub fn tag(name: &str, modified_at: &str) -> Value {
    json!({"name": name, "model": name, "modified_at": modified_at, "size": 0,
           "digest": digest(name), "details": details()})
}

/// One model in `/api/ps`.
pub fn running(name: &str, expires_at: &str) -> Value {
    json!({"name": name, "model": name, "size": 0, "digest": digest(name), "details": details(),
           "expires_at": expires_at, "size_vram": 0})
}

/// `/api/show`'s answer for `name`, which can do what `capabilities` says
/// (`completion`, `tools`, `vision`; or `embedding`).
pub fn show(name: &str, capabilities: &[&str], modified_at: &str) -> Value {
    json!({"modelfile": format!("# {name}: served by the household's Hearth gateway\n"),
           "parameters": "", "template": "", "details": details(), "model_info": {},
           "capabilities": capabilities, "modified_at": modified_at})
}

/// Which of Ollama's answers a reply becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/api/chat`: `message`.
    Chat,
    /// `/api/generate`: `response`.
    Generate,
}

/// A reply, as Ollama's objects: one per piece when streaming, or the
/// whole at the end.
#[derive(Clone, Debug)]
pub struct Reply {
    kind: Kind,
    model: String,
    created_at: String,
    text: String,
    calls: ToolCalls,
}

impl Reply {
    /// A reply of `kind` naming `model` (as the app asked, until the
    /// model that answers is known), made at `created_at` (RFC 3339).
    pub fn new(kind: Kind, model: String, created_at: String) -> Reply {
        Reply {
            kind,
            model,
            created_at,
            text: String::new(),
            calls: ToolCalls::default(),
        }
    }

    fn piece(&self, text: &str, calls: Option<Value>, done: bool) -> Value {
        let mut object = json!({"model": self.model, "created_at": self.created_at, "done": done});
        match self.kind {
            Kind::Chat => {
                let mut message = json!({"role": "assistant", "content": text});
                if let Some(calls) = calls {
                    message["tool_calls"] = calls;
                }
                object["message"] = message;
            }
            Kind::Generate => object["response"] = json!(text),
        }
        object
    }

    /// Tool calls in Ollama's form: arguments as objects.
    fn ollama_calls(&self) -> Option<Value> {
        if self.calls.is_empty() {
            return None;
        }
        Some(Value::Array(
            self.calls
                .calls()
                .iter()
                .map(|call| {
                    let arguments = call["function"]["arguments"]
                        .as_str()
                        .and_then(|text| serde_json::from_str::<Value>(text).ok())
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    json!({"function": {"name": call["function"]["name"], "arguments": arguments}})
                })
                .collect(),
        ))
    }

    fn done(
        &self,
        text: &str,
        finish_reason: &str,
        usage: Option<hearth_e2ee::ReplyUsage>,
        elapsed_ns: u64,
    ) -> Value {
        let calls = if self.kind == Kind::Chat {
            self.ollama_calls()
        } else {
            None
        };
        let mut object = self.piece(text, calls, true);
        let usage = usage.unwrap_or_default();
        let reason = if finish_reason == "length" {
            "length"
        } else {
            "stop"
        };
        for (key, value) in [
            ("done_reason", json!(reason)),
            ("total_duration", json!(elapsed_ns)),
            ("load_duration", json!(0)),
            ("prompt_eval_count", json!(usage.prompt_tokens)),
            ("prompt_eval_duration", json!(0)),
            ("eval_count", json!(usage.completion_tokens)),
            ("eval_duration", json!(elapsed_ns)),
        ] {
            object[key] = value;
        }
        object
    }

    /// The streamed lines `event` adds (`elapsed_ns` since the request).
    pub fn push(&mut self, event: &ReplyEvent, elapsed_ns: u64) -> Vec<Value> {
        match event {
            ReplyEvent::Delta { text } => {
                self.text.push_str(text);
                vec![self.piece(text, None, false)]
            }
            ReplyEvent::ToolCalls { calls } => {
                self.calls.push(calls);
                Vec::new()
            }
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => vec![self.done("", finish_reason, *usage, elapsed_ns)],
            ReplyEvent::Error { message, .. } => vec![json!({"error": message})],
            ReplyEvent::Meta { model, .. } => {
                // The reply names the model that answers, not the one asked.
                model.clone_into(&mut self.model);
                Vec::new()
            }
            ReplyEvent::Notice { .. } | ReplyEvent::Tool { .. } | ReplyEvent::Data { .. } => {
                Vec::new()
            }
        }
    }

    /// The whole reply, once `done` (its event) came.
    pub fn whole(&self, done: &ReplyEvent, elapsed_ns: u64) -> Value {
        match done {
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => self.done(&self.text, finish_reason, *usage, elapsed_ns),
            _ => self.done(&self.text, "stop", None, elapsed_ns),
        }
    }

    /// The answer to a generate request with no prompt (the model is
    /// "loaded").
    pub fn loaded(&self) -> Value {
        let mut object = self.piece("", None, true);
        object["done_reason"] = json!("load");
        object
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_are_refused_as_the_other_apis_refuse_them() {
        for (given, said) in [
            (
                json!({"top_p": 5}),
                "options.top_p must be a number from 0 to 1",
            ),
            (json!({"seed": "x"}), "options.seed must be a whole number"),
            (
                json!({"stop": [""]}),
                "options.stop must be a text or up to 4 texts, none empty",
            ),
        ] {
            assert_eq!(options(Some(&given)).unwrap_err().0, said);
        }
        assert_eq!(
            options(Some(&json!({"stop": ["\n\n"], "num_ctx": 4096})))
                .unwrap()
                .sampling
                .stop,
            ["\n\n"]
        );
    }

    #[test]
    fn a_chat_request_reads_as_ollama_apps_send_it() {
        let asked = chat_request(
            br#"{"model": "openclaw:latest", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]},
                {"role": "tool", "content": "sunny", "tool_name": "weather"}],
               "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
               "options": {"num_predict": 8, "temperature": 0.2, "top_p": 0.9, "num_ctx": 4096},
               "format": "json", "keep_alive": "5m"}"#,
        )
        .unwrap();
        assert_eq!(asked.model, "openclaw");
        assert!(asked.stream, "Ollama streams unless told not to");
        assert_eq!(asked.messages.len(), 4);
        let call = &asked.messages[2].tool_calls.as_ref().unwrap()[0];
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
        assert_eq!(asked.messages[3].name.as_deref(), Some("weather"));
        assert_eq!(asked.options.max_tokens, Some(8));
        assert_eq!(asked.options.sampling.top_p, Some(0.9));
        assert_eq!(asked.format, Some(StructuredOutput::JsonObject));
    }

    #[test]
    fn think_is_a_switch_or_a_level() {
        assert_eq!(think(Some(&json!(true))).unwrap(), Some(Think::On));
        assert_eq!(think(Some(&json!(false))).unwrap(), Some(Think::Off));
        assert_eq!(think(Some(&json!("low"))).unwrap(), Some(Think::Low));
        assert_eq!(think(Some(&json!("max"))).unwrap(), Some(Think::Max));
        assert_eq!(think(None).unwrap(), None);
        let refused = think(Some(&json!("extreme"))).unwrap_err();
        assert!(refused.0.contains("invalid think value"), "{}", refused.0);
        let asked = chat_request(br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "think": "medium"}"#);
        assert_eq!(asked.unwrap().think, Some(Think::Medium));
    }

    #[test]
    fn format_is_json_a_schema_or_nothing() {
        let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
        let read = format(Some(&schema)).unwrap().unwrap();
        assert_eq!(read.ollama_format(), schema, "passed on as it came");
        assert_eq!(
            format(Some(&json!("json"))).unwrap(),
            Some(StructuredOutput::JsonObject)
        );
        assert_eq!(format(Some(&json!(""))).unwrap(), None);
        assert_eq!(format(None).unwrap(), None);
        let refused = format(Some(&json!("yaml"))).unwrap_err();
        assert!(refused.0.contains("JSON schema"), "{}", refused.0);
        let generate = generate_request(br#"{"model": "m", "prompt": "hi", "format": "json"}"#);
        assert_eq!(generate.unwrap().format, Some(StructuredOutput::JsonObject));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        for (body, says) in [
            (&br#"{"messages": []}"#[..], "model"),
            (br#"{"model": "m", "messages": []}"#, "must end"),
            (br#"{"model": "m", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}"#, "PNG, JPEG"),
            (br#"{"model": "m", "messages": [{"role": "robot", "content": "x"}]}"#, "robot"),
            (br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "options": {"temperature": 9}}"#, "temperature"),
            (br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]}"#, "function"),
        ] {
            let why = chat_request(body).unwrap_err();
            assert!(why.0.contains(says), "{why}");
        }
        assert!(generate_request(br#"{"model": "m", "prompt": "x", "raw": true}"#).is_err());
        assert!(embed_request(br#"{"model": "m", "input": []}"#, false).is_err());
        assert!(embed_request(br#"{"model": "m", "input": ["a"]}"#, true).is_err());
    }

    #[test]
    fn generate_and_embed_requests_read() {
        let asked = generate_request(
            br#"{"model": "local/tiny", "prompt": "hi", "system": "S", "stream": false}"#,
        )
        .unwrap();
        assert_eq!(
            asked.messages,
            [Message::new("system", "S"), Message::new("user", "hi")]
        );
        assert!(!asked.stream);
        assert!(
            generate_request(br#"{"model": "m"}"#)
                .unwrap()
                .messages
                .is_empty()
        );
        let embed = embed_request(br#"{"model": "e:latest", "input": ["a", "b"]}"#, false).unwrap();
        assert_eq!((embed.model.as_str(), embed.inputs.len()), ("e", 2));
        let legacy = embed_request(br#"{"model": "e", "prompt": "a"}"#, true).unwrap();
        assert_eq!(legacy.inputs, ["a"]);
        let seen = chat_request(
            br#"{"model": "m", "messages": [{"role": "user", "content": "what?", "images": ["iVBORw0KGgo="]}]}"#,
        )
        .unwrap();
        assert_eq!(
            seen.messages[0].images,
            ["data:image/png;base64,iVBORw0KGgo="]
        );
    }

    #[test]
    fn a_reply_streams_and_ends_as_ollama_writes_it() {
        let mut reply = Reply::new(Kind::Chat, "openclaw".into(), "2026-11-26T00:00:00Z".into());
        let lines = reply.push(&ReplyEvent::Delta { text: "Hi".into() }, 1);
        assert_eq!(lines[0]["message"]["content"], "Hi");
        assert_eq!(lines[0]["done"], false);
        reply.push(
            &ReplyEvent::ToolCalls {
                calls: json!([{"index": 0, "id": "c", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]),
            },
            2,
        );
        let done = ReplyEvent::Done {
            finish_reason: "tool_calls".into(),
            usage: Some(hearth_e2ee::ReplyUsage {
                prompt_tokens: 3,
                completion_tokens: 2,
            }),
        };
        let last = reply.push(&done, 9).remove(0);
        assert_eq!(last["done"], true);
        assert_eq!(last["done_reason"], "stop");
        assert_eq!(last["eval_count"], 2);
        assert_eq!(
            last["message"]["tool_calls"][0]["function"]["arguments"]["city"],
            "Oslo"
        );
        let whole = reply.whole(&done, 9);
        assert_eq!(whole["message"]["content"], "Hi");

        let mut generated = Reply::new(Kind::Generate, "m".into(), "t".into());
        assert_eq!(
            generated.push(&ReplyEvent::Delta { text: "x".into() }, 1)[0]["response"],
            "x"
        );
        assert_eq!(generated.loaded()["done_reason"], "load");
    }
}
