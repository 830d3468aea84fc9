//! Ollama's API over HTTP, on its own port (Ollama's 11434 by default):
//! the same callers, access, assistant and models as the OpenAI API
//! ([`crate::api`]), in Ollama's shapes ([`crate::ollama`]). Errors are
//! Ollama's `{"error": "..."}`. Bodies need no JSON content type (Ollama's
//! own examples send none); other sites' pages are still refused.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use hearth_e2ee::{ErrorCode, ReplyEvent};
use serde_json::json;

use crate::caller::Auth;
use crate::caller::Caller;
use crate::edge::{
    authenticate, error_body, failure_status, refusal, refused_response, same_origin,
};
use crate::gateway::{Ask, Gateway, Limit, failure_message};
use crate::ollama::{self, Kind, Reply};

/// The Ollama API's routes, and `others` (Anthropic's Messages API, which
/// Ollama serves too) behind the same checks.
pub fn router(gateway: Arc<Gateway>, auth: Auth, others: Router<Arc<Gateway>>) -> Router {
    let auth = Arc::new(auth);
    let refused = || async {
        error_body(
            StatusCode::FORBIDDEN,
            ErrorCode::NotPermitted,
            ollama::REFUSED.into(),
        )
    };
    let protected = Router::new()
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(embed_new))
        .route("/api/embeddings", post(embed_legacy))
        // Ollama's OpenAI-compatible speech endpoint.
        .route(
            "/v1/audio/transcriptions",
            post(crate::speech_http::transcriptions).layer(axum::extract::DefaultBodyLimit::max(
                crate::gateway::max_upload(gateway.config().hearth.speech.as_ref()),
            )),
        )
        .route("/api/pull", any(refused))
        .route("/api/push", any(refused))
        .route("/api/create", any(refused))
        .route("/api/copy", any(refused))
        .route("/api/delete", any(refused))
        .route("/api/blobs/{*digest}", any(refused))
        .merge(others)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&auth),
            authenticate,
        ));
    Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route(
            "/api/version",
            get(|| async { Json(json!({"version": ollama::VERSION})) }),
        )
        // Ollama's status: whether its cloud models are off. Hearth has
        // none: the household's models answer, on its own machines.
        .route(
            "/api/status",
            get(|| async { Json(json!({"cloud": {"disabled": true, "source": "config"}})) }),
        )
        .merge(protected)
        .fallback(|| async {
            error_body(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint; see docs/gateway.md (Ollama's API)".into(),
            )
        })
        .method_not_allowed_fallback(|| async {
            error_body(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take that method".into(),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(2 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(auth, same_origin))
        .layer(middleware::from_fn(ollama_errors))
        .with_state(gateway)
}

/// Every error as Ollama writes it: `{"error": "message"}` (the Messages
/// API's as Anthropic writes them, as Ollama's own server does).
async fn ollama_errors(request: Request, next: Next) -> Response {
    let anthropic = request.uri().path() == "/v1/messages";
    let response = next.run(request).await;
    if response.status().is_success() || anthropic {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    let body = json!({"error": message}).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn bad(message: String) -> Response {
    error_body(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequestError,
        message,
    )
}

/// Now, as Ollama writes times.
fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}

async fn tags(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let now = now_text();
    let models: Vec<_> = gateway
        .permitted_model_ids(&caller)
        .iter()
        .map(|name| ollama::tag(name, &now))
        .collect();
    Json(json!({"models": models})).into_response()
}

async fn ps(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    // The chain's models answer now; when they unload is the model
    // server's business, so they are shown as staying a day.
    let expires = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
    let permitted = gateway.permitted_model_ids(&caller);
    let models: Vec<_> = gateway
        .models()
        .iter()
        .map(ToString::to_string)
        .filter(|name| permitted.contains(name))
        .map(|name| ollama::running(&name, &expires))
        .collect();
    Json(json!({"models": models})).into_response()
}

async fn show(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(error) => return bad(format!("not a show request: {error}")),
    };
    let Some(name) = body["model"].as_str().or_else(|| body["name"].as_str()) else {
        return bad("`model` must name a model".into());
    };
    let name = ollama::model_name(name);
    if !gateway
        .permitted_model_ids(&caller)
        .iter()
        .any(|id| id == name)
    {
        return error_body(
            StatusCode::NOT_FOUND,
            ErrorCode::ModelNotFound,
            format!("model {name:?} not found; GET /api/tags lists what you can use"),
        );
    }
    let capabilities = gateway.capabilities(name);
    Json(ollama::show(name, &capabilities, &now_text())).into_response()
}

async fn chat(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    match ollama::chat_request(&body) {
        Ok(asked) => reply(gateway, caller, asked, Kind::Chat).await,
        Err(why) => bad(why.0),
    }
}

async fn generate(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    match ollama::generate_request(&body) {
        Ok(asked) => reply(gateway, caller, asked, Kind::Generate).await,
        Err(why) => bad(why.0),
    }
}

/// Asks the model (or the assistant) as the OpenAI API does, and answers
/// in Ollama's shape: NDJSON lines, or one object.
async fn reply(
    gateway: Arc<Gateway>,
    caller: Caller,
    asked: ollama::Asked,
    kind: Kind,
) -> Response {
    let arrived = Instant::now();
    let mut reply = Reply::new(kind, asked.model.clone(), now_text());
    if asked.messages.is_empty() {
        // An empty prompt "loads" the model: it must be one the caller may use.
        if let Err(refused) = gateway.select(Some(&asked.model), None, None) {
            return refused_response(refused);
        }
        return Json(reply.loaded()).into_response();
    }
    let endpoint = match kind {
        Kind::Chat => "ollama_chat",
        Kind::Generate => "ollama_generate",
    };
    let ask = Ask {
        model: Some(asked.model.clone()),
        max_tokens: asked.options.max_tokens,
        temperature: asked.options.temperature,
        tools: asked.tools,
        sampling: asked.options.sampling,
        response_format: asked.format,
        think: asked.think,
        limit: Limit::Address,
        arrived,
        ..Ask::new(caller, asked.messages, endpoint)
    };
    let mut events = match gateway.ask(ask).await {
        Ok(events) => events,
        Err(refused) => return refused_response(refused),
    };
    let elapsed = move || u64::try_from(arrived.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if !asked.stream {
        while let Some(event) = events.next().await {
            match &event {
                ReplyEvent::Error { code, .. } => {
                    return error_body(failure_status(*code), *code, failure_message(*code).into());
                }
                ReplyEvent::Done { .. } => {
                    return Json(reply.whole(&event, elapsed())).into_response();
                }
                other => {
                    reply.push(other, elapsed());
                }
            }
        }
        return error_body(
            StatusCode::BAD_GATEWAY,
            ErrorCode::BackendFailed,
            failure_message(ErrorCode::BackendFailed).into(),
        );
    }
    let lines = events.flat_map(move |event| {
        let lines: Vec<Result<Bytes, std::convert::Infallible>> = reply
            .push(&event, elapsed())
            .into_iter()
            .map(|line| Ok(Bytes::from(format!("{line}\n"))))
            .collect();
        futures_util::stream::iter(lines)
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(lines))
        .expect("static headers are valid")
}

async fn embed_new(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    embedding(gateway, caller, body, false).await
}

async fn embed_legacy(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Response {
    embedding(gateway, caller, body, true).await
}

async fn embedding(gateway: Arc<Gateway>, caller: Caller, body: Bytes, legacy: bool) -> Response {
    let arrived = Instant::now();
    let asked = match ollama::embed_request(&body, legacy) {
        Ok(asked) => asked,
        Err(why) => return bad(why.0),
    };
    if let Err(refused) = gateway.admit_plain(caller.address) {
        return refusal(&gateway, refused);
    }
    let embedded = gateway
        .embed(
            &caller,
            Some(&asked.model),
            None,
            &asked.inputs,
            asked.dimensions,
        )
        .await;
    match embedded {
        Ok((_, mut vectors)) if legacy => {
            Json(json!({"embedding": vectors.pop().unwrap_or_default()})).into_response()
        }
        Ok((_, vectors)) => Json(json!({
            "model": asked.model, "embeddings": vectors,
            "total_duration": u64::try_from(arrived.elapsed().as_nanos()).unwrap_or(u64::MAX),
            "load_duration": 0, "prompt_eval_count": 0,
        }))
        .into_response(),
        Err(refused) => refused_response(refused),
    }
}
