//! OpenAI's API on the gateway's port, for the members' apps (the `openai`
//! SDK, LangChain, LiteLLM, Open WebUI): chat completions, responses,
//! embeddings and the model list, each translated to the conversation use
//! case ([`Gateway::ask`], [`Gateway::embed`]) and its events back to
//! OpenAI's shapes ([`crate::openai`]). OpenClaw's headers name an agent,
//! a model or a session.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use hearth_e2ee::{ErrorCode, ReplyEvent};
use hearth_llm::Message;
use serde::Deserialize;
use serde_json::json;

use crate::caller::Caller;
use crate::edge::{
    ApiError, bad, error_body, failure_status, header_text, http_ask, invalid, refusal,
    refused_response, sse,
};
use crate::gateway::{Ask, Gateway, failure_message};
use hearth_runtime::clock::unix_seconds;

/// The session a request continues: `x-openclaw-session-key`, else the
/// request's `user`; none means stateless. OpenClaw's internal namespaces
/// are refused.
fn session_key(user: Option<&str>, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let key = header_text(headers, "x-openclaw-session-key")
        .or(user.map(str::trim).filter(|user| !user.is_empty()));
    match key {
        Some(key)
            if ["subagent:", "cron:", "acp:"]
                .iter()
                .any(|reserved| key.starts_with(reserved)) =>
        {
            Err(bad(format!(
                "session keys starting with {:?} are reserved",
                key.split(':').next().unwrap_or("")
            )))
        }
        Some(key) if key.len() > 200 => Err(bad("a session key has at most 200 characters")),
        key => Ok(key.map(str::to_owned)),
    }
}

/// One model as OpenAI lists it, with what it can do (Hearth's addition:
/// `type` is `embedding` for the embedding model, else `chat`, and
/// `capabilities` as `/api/show` gives them), so an app need not offer the
/// embedding model for chat.
fn model_object(gateway: &Gateway, id: &str) -> serde_json::Value {
    let owner = if id.starts_with("openclaw") {
        "openclaw"
    } else {
        "hearth"
    };
    let capabilities = gateway.capabilities(id);
    let kind = if capabilities.contains(&"embedding") {
        "embedding"
    } else {
        "chat"
    };
    json!({"id": id, "object": "model", "created": 0, "owned_by": owner,
           "type": kind, "capabilities": capabilities})
}

pub(crate) async fn models(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let data: Vec<_> = gateway
        .permitted_model_ids(&caller)
        .iter()
        .map(|id| model_object(&gateway, id))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub(crate) async fn model(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if gateway.permitted_model_ids(&caller).contains(&id) {
        Json(model_object(&gateway, &id)).into_response()
    } else {
        error_body(
            StatusCode::NOT_FOUND,
            ErrorCode::ModelNotFound,
            format!("no model is called {id:?}; GET /v1/models lists them"),
        )
    }
}

/// An OpenAI chat completion request; other OpenAI fields are accepted
/// and ignored.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    tools: Option<serde_json::Value>,
    #[serde(default)]
    tool_choice: Option<serde_json::Value>,
    #[serde(default)]
    user: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// The sampling settings of `rest`, range-checked as OpenClaw checks them.
pub(crate) fn sampling(
    temperature: Option<f32>,
    rest: &serde_json::Map<String, serde_json::Value>,
) -> Result<hearth_llm::Sampling, ApiError> {
    if temperature.is_some_and(|value| !(0.0..=2.0).contains(&value)) {
        return Err(bad("temperature must be from 0 to 2"));
    }
    hearth_llm::Sampling::read(rest).map_err(|refused| bad(refused.to_string()))
}

pub(crate) async fn completions(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return invalid(format!("not a chat completion request: {error}")),
    };
    if request.messages.is_empty() {
        return invalid("`messages` is empty");
    }
    let tools =
        match crate::openai::check_tools(request.tools.as_ref(), request.tool_choice.as_ref()) {
            Ok(tools) => tools,
            Err(why) => return invalid(why.0),
        };
    let sampling = match sampling(request.temperature, &request.rest) {
        Ok(sampling) => sampling,
        Err(error) => return error.into_response(),
    };
    let response_format = match crate::openai::response_format(request.rest.get("response_format"))
    {
        Ok(format) => format,
        Err(why) => return invalid(why.0),
    };
    let session = match session_key(request.user.as_deref(), &headers) {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|options| options["include_usage"] == true);
    let ask = Ask {
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        temperature: request.temperature,
        tools,
        sampling,
        response_format,
        ..http_ask(
            caller,
            request.model.as_deref(),
            &headers,
            session,
            request.messages,
            "completions",
        )
    };
    let mut events = match gateway.ask(ask).await {
        Ok(events) => events,
        Err(refused) => return refused_response(refused),
    };
    let id = format!(
        "chatcmpl-{}",
        hearth_e2ee::envelope::b64(&rand::random::<[u8; 9]>())
    );
    let created = unix_seconds();

    let mut completion = crate::openai::Completion::new(id, created, include_usage);
    if !request.stream {
        while let Some(event) = events.next().await {
            if let ReplyEvent::Error { code, .. } = event {
                return error_body(failure_status(code), code, failure_message(code).into());
            }
            completion.gather(&event);
        }
        return Json(completion.whole()).into_response();
    }
    let lines = events
        .flat_map(move |event| {
            let frames = completion.chunks(event);
            futures_util::stream::iter(
                frames
                    .into_iter()
                    .map(|data| Bytes::from(format!("data: {data}\n\n"))),
            )
        })
        .boxed();
    sse(lines, gateway.keepalive())
}

/// `POST /v1/responses` (OpenResponses): `input` items and `instructions`
/// read as a chat, the reply as a response object or its SSE events.
pub(crate) async fn responses(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(error) => return invalid(format!("not a responses request: {error}")),
    };
    let chat = match crate::openai::responses_chat(&body) {
        Ok(chat) => chat,
        Err(why) => return invalid(why.0),
    };
    let response_format = match crate::openai::text_format(body.get("text")) {
        Ok(format) => format,
        Err(why) => return invalid(why.0),
    };
    let temperature = body
        .get("temperature")
        .and_then(serde_json::Value::as_f64)
        .map(|value| value as f32);
    let sampling = match sampling(temperature, &body) {
        // The Responses API has `top_p` only.
        Ok(sampling) => hearth_llm::Sampling {
            top_p: sampling.top_p,
            ..hearth_llm::Sampling::default()
        },
        Err(error) => return error.into_response(),
    };
    let session = match session_key(
        body.get("user").and_then(serde_json::Value::as_str),
        &headers,
    ) {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let max_tokens = body
        .get("max_output_tokens")
        .and_then(serde_json::Value::as_u64)
        .map(|tokens| u32::try_from(tokens).unwrap_or(u32::MAX));
    let ask = Ask {
        instructions: chat.system,
        max_tokens,
        temperature,
        tools: chat.tools,
        sampling,
        response_format,
        ..http_ask(
            caller,
            body.get("model").and_then(serde_json::Value::as_str),
            &headers,
            session,
            chat.messages,
            "responses",
        )
    };
    let mut events = match gateway.ask(ask).await {
        Ok(events) => events,
        Err(refused) => return refused_response(refused),
    };
    let mut stream =
        crate::openai::ResponseStream::new(format!("resp_{}", hex_id()), unix_seconds());
    if body.get("stream") != Some(&serde_json::Value::Bool(true)) {
        let mut failure = None;
        while let Some(event) = events.next().await {
            if let ReplyEvent::Error { code, .. } = &event {
                failure = Some(*code);
            }
            stream.push(&event);
        }
        if let Some(code) = failure {
            return error_body(failure_status(code), code, failure_message(code).into());
        }
        return Json(stream.response("completed")).into_response();
    }
    let lines = events
        .flat_map(move |event| {
            let lines: Vec<Bytes> = stream
                .push(&event)
                .into_iter()
                .map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
                .collect();
            futures_util::stream::iter(lines)
        })
        .boxed();
    sse(lines, gateway.keepalive())
}

/// A random id for responses.
fn hex_id() -> String {
    rand::random::<[u8; 12]>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An OpenAI embeddings request.
#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    input: serde_json::Value,
    #[serde(default)]
    dimensions: Option<u32>,
}

/// Most inputs in one embeddings request.
const MAX_EMBEDDING_INPUTS: usize = 256;

/// `POST /v1/embeddings`: `input` a string or a list of them; `model` an
/// agent target (its model, or `x-openclaw-model`) or a backend model.
pub(crate) async fn embeddings(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: EmbeddingRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return invalid(format!("not an embeddings request: {error}")),
    };
    let inputs: Vec<String> = match &request.input {
        serde_json::Value::String(text) => vec![text.clone()],
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_string) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => return invalid("`input` must be a string or a list of strings"),
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return invalid(format!(
            "`input` must hold 1 to {MAX_EMBEDDING_INPUTS} strings"
        ));
    }
    if let Err(refused) = gateway.admit_plain(caller.address) {
        return refusal(&gateway, refused);
    }
    let embedded = gateway
        .embed(
            &caller,
            request.model.as_deref(),
            header_text(&headers, "x-openclaw-model"),
            &inputs,
            request.dimensions,
        )
        .await;
    match embedded {
        Ok((model, vectors)) => {
            let data: Vec<_> = vectors
                .into_iter()
                .enumerate()
                .map(|(index, embedding)| json!({"object": "embedding", "index": index, "embedding": embedding}))
                .collect();
            Json(json!({"object": "list", "model": model, "data": data,
                        "usage": {"prompt_tokens": 0, "total_tokens": 0}}))
            .into_response()
        }
        Err(refused) => refused_response(refused),
    }
}
