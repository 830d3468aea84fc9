//! Anthropic's Messages API over HTTP (`POST /v1/messages`), on the
//! gateway's port beside the OpenAI API and on Ollama's port (Ollama serves
//! it too): the same callers, access, budgets and assistant, in Anthropic's
//! shapes ([`crate::anthropic`]). The SDK's `x-api-key` is read as the
//! bearer token (the admin's); a mesh device needs none.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use hearth_e2ee::ReplyEvent;

use crate::anthropic::{self, Reply};
use crate::caller::Caller;
use crate::edge::{failure_status, http_ask, refused_status, sse};
use crate::gateway::{Gateway, failure_message};

/// An error in Anthropic's shape.
fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(anthropic::error(status.as_u16(), message)),
    )
        .into_response()
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let asked = match anthropic::messages_request(&body) {
        Ok(asked) => asked,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why.0),
    };
    let ask = crate::gateway::Ask {
        instructions: asked.system,
        max_tokens: Some(asked.max_tokens),
        temperature: asked.temperature,
        sampling: asked.sampling,
        tools: asked.tools,
        arrived: Instant::now(),
        ..http_ask(
            caller,
            Some(&asked.model),
            &headers,
            None,
            asked.messages,
            "anthropic_messages",
        )
    };
    let mut events = match gateway.ask(ask).await {
        Ok(events) => events,
        Err(refused) => return error(refused_status(refused.code), &refused.message),
    };
    let id = format!(
        "msg_{}",
        hearth_e2ee::envelope::b64(&rand::random::<[u8; 12]>())
    );
    let mut reply = Reply::new(id, asked.model);
    if !asked.stream {
        while let Some(event) = events.next().await {
            match &event {
                ReplyEvent::Error { code, .. } => {
                    return error(failure_status(*code), failure_message(*code));
                }
                ReplyEvent::Done { .. } => return axum::Json(reply.whole(&event)).into_response(),
                other => reply.gather(other),
            }
        }
        return error(
            StatusCode::BAD_GATEWAY,
            failure_message(hearth_e2ee::ErrorCode::BackendFailed),
        );
    }
    let first = reply.start();
    let frames = futures_util::stream::iter(vec![first]).chain(events.map(move |event| {
        let mut pushed = reply.push(&event);
        // A failed reply's message is the gateway's fixed sentence, never
        // the model server's words.
        if let ReplyEvent::Error { code, .. } = &event {
            pushed = vec![(
                "error",
                anthropic::error(failure_status(*code).as_u16(), failure_message(*code)),
            )];
        }
        pushed
    }));
    let lines = frames.flat_map(|pushed| {
        futures_util::stream::iter(
            pushed
                .into_iter()
                .map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n"))),
        )
    });
    // The edge's SSE, with its keep-alive comment while the model is silent.
    sse(lines.boxed(), gateway.keepalive())
}
