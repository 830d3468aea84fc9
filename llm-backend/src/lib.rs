//! The clients of Hearth's language models.
//!
//! Two kinds of backend speak one streaming interface ([`chat`]): Ollama's
//! `/api/chat` ([`ollama`]) and OpenAI-style chat completions over SSE, as
//! llama.cpp's `llama-server` serves them over TCP or a UNIX socket
//! ([`openai`]). Streams are decoded from bytes ([`sse`], [`ndjson`]) so that
//! characters split across network chunks survive. The [`router`] tries a
//! primary model and ordered fallbacks by the rules of [`failover`], rests
//! failing backends, and keeps unhealthy endpoints out of rotation until they
//! answer again. A remote attested backend would be a third module speaking
//! the same [`chat`] types.

pub mod chat;
mod decoding;
pub mod endpoint;
pub mod failover;
pub mod link;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod router;

pub use chat::{BackendError, ChatRequest, EventStream, Message, SetupError, StreamEvent, Usage};
pub use endpoint::Api;
pub use router::{Ahead, ModelRef, Opened, ProviderConfig, RouteError, Router};
