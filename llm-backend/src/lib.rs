//! The clients of Hearth's language models.
//!
//! Three kinds of backend speak one streaming interface ([`chat`]): Ollama's
//! `/api/chat` ([`ollama`]), OpenAI-style chat completions over SSE, as
//! llama.cpp's `llama-server` serves them over TCP or a UNIX socket
//! ([`openai`]), and attested remote compute nodes behind a private-compute
//! router, verified before anything is sealed to them ([`enclave`]). Streams are decoded from bytes ([`sse`], [`ndjson`]) so that
//! characters split across network chunks survive. The [`router`] tries a
//! primary model and ordered fallbacks by the rules of [`failover`], rests
//! failing backends, and keeps unhealthy endpoints out of rotation until they
//! answer again.

pub mod chat;
mod decoding;
pub mod embed;
pub mod enclave;
pub mod endpoint;
pub mod failover;
pub mod link;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod router;

pub use chat::{
    BackendError, ChatRequest, EventStream, Message, SAMPLING, SetupError, StreamEvent, Usage,
};
pub use endpoint::Api;
pub use router::{Ahead, ModelRef, Opened, ProviderConfig, RouteError, Router};
