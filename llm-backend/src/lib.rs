//! The clients of Hearth's language models.
//!
//! Every kind of backend implements one trait ([`backend::Backend`]) and
//! speaks one streaming interface ([`chat`]): Ollama's `/api/chat`
//! ([`ollama`]) and OpenAI-style chat completions over SSE, as llama.cpp's
//! `llama-server` serves them over TCP or a UNIX socket ([`openai`]), are
//! here; the attested remote compute nodes of a `hearth-enclave` provider
//! are the gateway's (`hearth-gateway`'s `remote` module), given to
//! [`Router::with_remote`], so that this crate depends on no remote
//! protocol. Streams are decoded from bytes (`hearth-sse`, [`ndjson`]) so
//! that characters split across network chunks survive. The [`router`] tries a
//! primary model and ordered fallbacks by the rules of [`failover`], rests
//! failing backends, and keeps unhealthy endpoints out of rotation until they
//! answer again.

pub mod backend;
pub mod chat;
mod decoding;
pub mod embed;
pub mod endpoint;
pub mod failover;
pub mod link;
pub mod mesh;
mod model_ref;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod router;
pub mod sampling;
pub mod schema;

pub use backend::Backend;
pub use chat::{
    BackendError, ChatRequest, EventStream, Message, NamedSchema, StreamEvent, StructuredOutput,
    Think, Usage,
};
pub use endpoint::{Api, SetupError};
pub use router::{ModelRef, Opened, ProviderConfig, RemoteEndpoint, Remotes, RouteError, Router};
pub use sampling::{Sampling, SamplingError};
