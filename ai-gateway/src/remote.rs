//! The `hearth-enclave` provider: a private-compute router's attested nodes,
//! as a [`hearth_llm::Backend`] the model router is given
//! ([`hearth_llm::Router::with_remote`]). The client
//! ([`hearth_pcc::ComputeClient`]) verifies each node's evidence against the
//! provider's attestation policy and seals the conversation to verified
//! nodes only; this module maps its reply onto `hearth-llm`'s event stream
//! and its failures onto the errors failover judges.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use hearth_attest::Policy;
use hearth_e2ee::{ErrorCode, KeyPair, ReplyEvent};
use hearth_llm::endpoint::Endpoint;
use hearth_llm::{
    Backend, BackendError, ChatRequest, EventStream, ProviderConfig, RemoteEndpoint, SetupError,
    StreamEvent, Usage,
};
use hearth_pcc::oblivious::ApiConfig;
use hearth_pcc::{ComputeClient, ComputeMessage, ComputeRequest, PccError};

/// The prefix of a base URL that names a config server: the provider then
/// reaches the router through its OHTTP relay (`ohttp+http://auth:8080`).
pub const OBLIVIOUS_PREFIX: &str = "ohttp+";

/// How long a fetched config document (relays, keys) is used.
const CONFIG_TTL: Duration = Duration::from_secs(60);

/// A remote provider's client: straight to the router, or through the
/// relay and OHTTP gateway a config server names (refetched every minute,
/// so rotated keys are picked up).
pub enum Remote {
    /// `http://router:3600`.
    Direct(Box<ComputeClient>),
    /// `ohttp+http://auth:8080`.
    Oblivious {
        /// The config server.
        config_url: String,
        /// The provider's policy; the config server's must be the same.
        policy: Box<Policy>,
        /// The client built from the last document, and when.
        current: tokio::sync::Mutex<ObliviousState>,
    },
}

/// The endpoint `url` of provider `config` under its attestation `policy`:
/// its client (whose device key is made here and lives as long as the
/// gateway, or the config document), and where its health is checked
/// (through a config server's relay, the config server).
pub fn endpoint(
    url: &str,
    config: &ProviderConfig,
    policy: Option<&Policy>,
) -> Result<RemoteEndpoint, SetupError> {
    let policy = policy
        .cloned()
        .ok_or_else(|| SetupError::NoPolicy(config.id.clone()))?;
    let oblivious = url.strip_prefix(OBLIVIOUS_PREFIX);
    let address = oblivious.unwrap_or(url).to_owned();
    let remote = match oblivious {
        Some(config_url) => Remote::Oblivious {
            config_url: config_url.trim_end_matches('/').to_owned(),
            policy: Box::new(policy),
            current: tokio::sync::Mutex::new(ObliviousState::default()),
        },
        None => Remote::Direct(Box::new(ComputeClient::new(
            url,
            policy,
            KeyPair::generate(),
        ))),
    };
    Ok(RemoteEndpoint {
        backend: Arc::new(remote),
        address,
    })
}

impl Backend for Remote {
    fn stream_chat<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        model: &'a str,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, BackendError>> {
        Box::pin(stream_chat(self, endpoint, model, request))
    }

    fn probe<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, bool> {
        Box::pin(probe(endpoint))
    }
}

/// What an oblivious provider keeps between requests.
#[derive(Default)]
pub struct ObliviousState {
    /// The client made from the last document, and when it was fetched.
    client: Option<(Duration, Arc<ComputeClient>)>,
    /// The transparency log's last checkpoint accepted: each new one must
    /// extend it.
    witness: hearth_transparency::Witness,
}

/// The oblivious client from the config server's current document.
async fn oblivious_client(
    config_url: &str,
    policy: &Policy,
    current: &tokio::sync::Mutex<ObliviousState>,
    http: &reqwest::Client,
) -> Result<Arc<ComputeClient>, BackendError> {
    let now = hearth_runtime::clock::since_epoch();
    let mut current = current.lock().await;
    if let Some((fetched, client)) = current.client.as_ref()
        && now.saturating_sub(*fetched) < CONFIG_TTL
    {
        return Ok(Arc::clone(client));
    }
    let url = format!("{config_url}/api/config");
    let document: ApiConfig = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| BackendError::Refused(format!("the config server: {error}")))?
        .json()
        .await
        .map_err(|error| BackendError::Protocol(format!("the config document: {error}")))?;
    if document.attestation.policy != *policy {
        return Err(BackendError::Unverified(
            "the config server applies another attestation policy than this provider's".into(),
        ));
    }
    let prepared = hearth_pcc::oblivious::prepare(
        http,
        config_url,
        &document,
        policy.clone(),
        &mut current.witness,
        now,
    )
    .await
    .map_err(|error| match error {
        PccError::Protocol(message) => BackendError::Unverified(message),
        other => backend_error(other),
    })?;
    for image in &prepared.unlogged {
        tracing::warn!(%image, "an image of the policy is not in the transparency log: not trusted");
    }
    let client = Arc::new(ComputeClient::oblivious(
        prepared.link,
        prepared.policy,
        KeyPair::generate(),
    ));
    current.client = Some((now, Arc::clone(&client)));
    Ok(client)
}

/// Whether the router answers its health check.
async fn probe(endpoint: &Endpoint) -> bool {
    endpoint
        .http
        .get(endpoint.url("/health"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

fn backend_error(error: PccError) -> BackendError {
    match error {
        PccError::Transport(message) => BackendError::Refused(message),
        PccError::NoVerifiedNode { .. } => BackendError::Unverified(error.to_string()),
        PccError::Refused {
            status: 429,
            message,
            ..
        } => BackendError::RateLimited(message),
        PccError::Refused {
            status, message, ..
        } if status >= 500 => BackendError::Server { status, message },
        PccError::Refused {
            status, message, ..
        } => BackendError::Rejected { status, message },
        PccError::Reply(message) => BackendError::MidStream(message),
        PccError::Protocol(message) => BackendError::Protocol(message),
    }
}

/// Asks a verified node behind the router for `model`'s reply.
async fn stream_chat(
    remote: &Remote,
    endpoint: &Endpoint,
    model: &str,
    request: &ChatRequest,
) -> Result<EventStream, BackendError> {
    let shared;
    let client = match remote {
        Remote::Direct(client) => client,
        Remote::Oblivious {
            config_url,
            policy,
            current,
        } => {
            shared = oblivious_client(config_url, policy, current, &endpoint.http).await?;
            &*shared
        }
    };
    let compute = ComputeRequest {
        model: model.to_owned(),
        messages: request
            .messages
            .iter()
            .map(|message| ComputeMessage {
                role: message.role.clone(),
                content: message.content.clone(),
            })
            .collect(),
        max_tokens: request.max_tokens,
        temperature: request.temperature,
    };
    let reply = client
        .open(&compute, hearth_runtime::clock::since_epoch())
        .await
        .map_err(backend_error)?;
    tracing::debug!(node = %reply.node, "an attested node answers");
    let events = futures_util::stream::unfold(Some(reply), |state| async move {
        let mut reply = state?;
        loop {
            let event = match reply.next().await? {
                Ok(event) => event,
                Err(error) => return Some((Err(backend_error(error)), None)),
            };
            let mapped = match event {
                // A compute node runs no tools of the household's and
                // answers no assistant requests: only its text counts.
                ReplyEvent::Meta { .. }
                | ReplyEvent::Notice { .. }
                | ReplyEvent::Tool { .. }
                | ReplyEvent::Data { .. } => continue,
                ReplyEvent::Delta { text } => Ok(StreamEvent::Delta(text)),
                ReplyEvent::ToolCalls { calls } => Ok(StreamEvent::ToolCalls(calls)),
                ReplyEvent::Done {
                    finish_reason,
                    usage,
                } => Ok(StreamEvent::Done {
                    finish_reason,
                    usage: usage.map(|usage| Usage {
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                    }),
                }),
                ReplyEvent::Error { code, message } => Err(node_error(code, message)),
            };
            return Some((mapped, Some(reply)));
        }
    });
    Ok(events.boxed())
}

/// A node's sealed error as a backend error: a context overflow is the
/// caller's to fix, a refusal of the request is a refusal, anything else
/// is the node failing.
fn node_error(code: ErrorCode, message: String) -> BackendError {
    match code {
        ErrorCode::ContextOverflow => BackendError::ContextOverflow(message),
        ErrorCode::BadRequest | ErrorCode::ModelNotFound | ErrorCode::BackendRefused => {
            BackendError::Rejected {
                status: 400,
                message,
            }
        }
        _ => BackendError::Server {
            status: 502,
            message: format!("{code}: {message}"),
        },
    }
}
