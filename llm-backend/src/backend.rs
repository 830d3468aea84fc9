//! What the router asks of a kind of backend: start a reply on one of its
//! endpoints, and say whether an endpoint answers. Ollama ([`Ollama`]) and
//! OpenAI-style servers such as llama.cpp's `llama-server`
//! ([`OpenAiCompletions`]) are implemented here; a remote kind (the
//! gateway's attested `hearth-enclave` provider) is given to
//! [`crate::Router::with_remote`] by the crate that knows it, so this crate
//! depends on no remote protocol.

use futures_util::future::BoxFuture;

use crate::chat::{BackendError, ChatRequest, EventStream};
use crate::endpoint::Endpoint;
use crate::{ollama, openai};

/// A kind of backend.
pub trait Backend: Send + Sync {
    /// Starts `model`'s reply to `request` on `endpoint` (on a connection
    /// opened ahead there, when the backend [`Backend::opens_ahead`]).
    fn stream_chat<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        model: &'a str,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, BackendError>>;

    /// Whether `endpoint` answers its health check.
    fn probe<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, bool>;

    /// Whether a connection opened ahead ([`crate::Router::prepare`])
    /// helps: only where a reply starts with a plain request on a fresh
    /// connection.
    fn opens_ahead(&self) -> bool {
        false
    }
}

/// OpenAI-style chat completions over SSE.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAiCompletions;

impl Backend for OpenAiCompletions {
    fn stream_chat<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        model: &'a str,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, BackendError>> {
        Box::pin(openai::stream_chat(endpoint, model, request))
    }

    fn probe<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, bool> {
        Box::pin(openai::probe(endpoint))
    }

    fn opens_ahead(&self) -> bool {
        true
    }
}

/// Ollama's native `/api/chat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ollama;

impl Backend for Ollama {
    fn stream_chat<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        model: &'a str,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, BackendError>> {
        Box::pin(ollama::stream_chat(endpoint, model, request))
    }

    fn probe<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, bool> {
        Box::pin(ollama::probe(endpoint))
    }
}
