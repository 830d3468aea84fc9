//! The HTTP edge every API of the gateway shares: who is calling
//! ([`authenticate`]: the bearer token, the mesh's word on the address, a
//! front end naming whom it acts for), the same-origin rule for browsers,
//! JSON bodies, server-sent events, and the mapping of each outcome to a
//! status and a body. Every error, 404 and 405 included, is `{"error":
//! {"code", "message"}}` (Ollama's API rewrites it as Ollama writes errors).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use hearth_e2ee::ErrorCode;
use serde_json::json;

use crate::caller::{Auth, Caller};
use crate::gateway::{Gateway, Refused};

pub(crate) fn error_body(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// A request refused before its turn (a sealed envelope, a rate), counted.
pub(crate) fn refusal(gateway: &Gateway, refused: Refused) -> Response {
    gateway.metrics().outcome("chat", refused.code.as_str());
    tracing::debug!(code = %refused.code, "request refused");
    refused_response(refused)
}

/// The secret a caller presents: `Authorization: Bearer …`, or the
/// `x-api-key` Anthropic's SDKs send.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    authorization.or_else(|| headers.get("x-api-key")?.to_str().ok())
}

pub(crate) async fn authenticate(
    State(auth): State<Arc<Auth>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = peer.ip().to_canonical();
    let token_ok = bearer(request.headers()).is_some_and(|given| auth.is_secret(given));
    let nobody = Caller::nobody(address);
    // A mesh device is named by its tunnel address; this host's own address
    // is any local process, which only the token tells apart.
    let (caller, device) = if token_ok {
        let caller = Caller {
            speaks_for_members: true,
            ..nobody
        };
        (caller, "the token's holder".to_owned())
    } else if let Some(socket) = &auth.agent_socket
        && let Ok(Some(who)) = hearth_control::agent_api::whois(socket, address).await
        && !who.is_self
    {
        let name = who.name.clone();
        (Caller::of_device(address, who), name)
    } else if auth.token.is_none() && auth.loopback && address.is_loopback() {
        let caller = Caller {
            speaks_for_members: true,
            ..nobody
        };
        (caller, "a local caller".to_owned())
    } else {
        return error_body(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "this gateway needs `Authorization: Bearer <token>` or a caller inside the mesh".into(),
        );
    };
    // A front end serving many people names the one it acts for.
    let named = forwarded_user(
        request.headers(),
        auth.signed_users.as_ref(),
        hearth_runtime::clock::unix_seconds(),
    );
    let caller = match named {
        Ok(None) => caller,
        Ok(Some(named)) => match caller.acting_for(&named, &device) {
            Ok(caller) => caller,
            Err(refused) => {
                return error_body(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NotPermitted,
                    refused.to_string(),
                );
            }
        },
        // A signed header that does not check out names no one: refused
        // as not permitted, as a name the policy does not grant is.
        Err(why @ ForwardedUser::Signed(_)) => {
            return error_body(
                StatusCode::FORBIDDEN,
                ErrorCode::NotPermitted,
                why.to_string(),
            );
        }
        Err(why) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequestError,
                why.to_string(),
            );
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Why a front end's forwarded user header cannot be read.
#[derive(Debug, thiserror::Error)]
enum ForwardedUser {
    /// More than one.
    #[error("{0} is given twice")]
    Twice(&'static str),
    /// Not text.
    #[error("{0} is not text")]
    NotText(&'static str),
    /// The signed header, refused.
    #[error(transparent)]
    Signed(#[from] crate::forwarded::Refused),
    /// The signed header, with no secret here to check it.
    #[error(
        "{} is sent, but this gateway has no hearth.openWebUi.userJwtSecretFile to check it with",
        crate::forwarded::SIGNED_USER
    )]
    NoSecret,
    /// The plain header, where only the signed one is taken.
    #[error(
        "{} is not taken here: this gateway checks Open WebUI's signed {} (hearth.openWebUi.userJwtSecretFile)",
        crate::caller::FORWARDED_USER,
        crate::forwarded::SIGNED_USER
    )]
    Unsigned,
}

/// The one text value of header `name`, if any.
fn one_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, ForwardedUser> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ForwardedUser::Twice(name));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| ForwardedUser::NotText(name))
}

/// The person a front end names, if any: the member Open WebUI's signed
/// user header is for, checked with `signed` at `now`; else, when no
/// secret is set, its plain name header (one value, text).
fn forwarded_user(
    headers: &HeaderMap,
    signed_users: Option<&crate::caller::SignedUsers>,
    now: i64,
) -> Result<Option<String>, ForwardedUser> {
    let signed = one_header(headers, crate::forwarded::SIGNED_USER)?;
    let plain = one_header(headers, crate::caller::FORWARDED_USER)?;
    match (signed, signed_users) {
        (Some(token), Some(users)) => Ok(Some(crate::forwarded::member(
            token,
            users.secret.as_bytes(),
            &users.members,
            now,
        )?)),
        (Some(_), None) => Err(ForwardedUser::NoSecret),
        (None, Some(_)) if plain.is_some() => Err(ForwardedUser::Unsigned),
        (None, _) => Ok(plain.map(|name| name.trim().to_owned())),
    }
}

/// Refuses a request naming a host the gateway does not answer to (DNS
/// rebinding) or sent by a web page of another origin (a cross-site POST of
/// `text/plain` included).
pub(crate) async fn same_origin(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    match auth.same_origin.check_request(&request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => error_body(
            StatusCode::FORBIDDEN,
            ErrorCode::CrossSite,
            refusal.to_string(),
        ),
    }
}

/// Requests with a body must say it is JSON: a browser cannot send that
/// across sites without asking first (CORS), and the gateway never says yes.
pub(crate) async fn json_only(request: Request, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("application/json"));
    if json {
        next.run(request).await
    } else {
        error_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`".into(),
        )
    }
}

/// An SSE response of `lines`, with a keep-alive comment whenever it is idle.
pub(crate) fn sse(lines: BoxStream<'static, Bytes>, keepalive: std::time::Duration) -> Response {
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let stream =
        futures_util::stream::unfold((lines, ticks), |(mut lines, mut ticks)| async move {
            let line = tokio::select! {
                line = lines.next() => line?,
                _ = ticks.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
            ticks.reset();
            Some((Ok::<_, Infallible>(line), (lines, ticks)))
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

/// A request of an HTTP API (OpenAI's, Anthropic's) as the conversation
/// use case takes it: the agent or model in `model` or OpenClaw's headers, the session of `key`
/// among the caller's own, the caller's address rate-limited.
pub(crate) fn http_ask(
    caller: Caller,
    model: Option<&str>,
    headers: &HeaderMap,
    key: Option<String>,
    messages: Vec<hearth_llm::Message>,
    endpoint: &'static str,
) -> crate::gateway::Ask {
    let session = key.map(|key| crate::gateway::Session {
        channel: format!("openai:{key}"),
        owner: caller.session_owner(),
    });
    crate::gateway::Ask {
        model: model.map(str::to_owned),
        agent: header_text(headers, "x-openclaw-agent-id").map(str::to_owned),
        backend_model: header_text(headers, "x-openclaw-model").map(str::to_owned),
        session,
        limit: crate::gateway::Limit::Address,
        ..crate::gateway::Ask::new(caller, messages, endpoint)
    }
}

/// A header's text, if present and readable.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// An error answer, before it becomes a response.
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_body(self.status, self.code, self.message)
    }
}

/// `400 invalid_request_error`.
pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: ErrorCode::InvalidRequestError,
        message: message.into(),
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Response {
    bad(message).into_response()
}

/// The HTTP status of a refusal.
pub(crate) fn refused_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ReplayedRequest => StatusCode::CONFLICT,
        ErrorCode::Malformed
        | ErrorCode::Tampered
        | ErrorCode::DecryptionFailed
        | ErrorCode::StaleRequest
        | ErrorCode::FutureRequest
        | ErrorCode::UnknownKey => StatusCode::BAD_REQUEST,
        ErrorCode::NotPermitted => StatusCode::FORBIDDEN,
        ErrorCode::BudgetExhausted | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Busy | ErrorCode::NoModel => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ModelNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidRequestError
        | ErrorCode::BadRequest
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::ContextOverflow => StatusCode::BAD_REQUEST,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// A refused turn as the OpenAI-style APIs answer it.
pub(crate) fn refused_response(refused: Refused) -> Response {
    error_body(refused_status(refused.code), refused.code, refused.message)
}

/// The HTTP status of a failed reply on the OpenAI API.
pub(crate) fn failure_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ContextOverflow | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::NoModel => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}
