//! The compute node's core: its request encryption key (REK), made at start
//! and kept only in memory; admission of a sealed request (shape, key,
//! time, decryption, replay, a free slot); and the sealed reply, streamed
//! from the model chunk by chunk. Nothing of a request or a reply is
//! written or logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use hearth_attest::EvidenceBundle;
use hearth_e2ee::chunks::sse_chunk;
use hearth_e2ee::envelope::{COMPUTE_INFO, open_request_with, parse_envelope};
use hearth_e2ee::receiver::Receiver;
use hearth_e2ee::{
    ChunkSealer, EnvelopeError, ErrorCode, KeyPair, REPLAY_CAPACITY, Rejection, ReplayWindow,
    ReplyEvent, ReplyUsage,
};
use hearth_llm::{ChatRequest, Message, ModelRef, RouteError, StreamEvent};
use hearth_pcc::ComputeRequest;
use hearth_pcc::protocol::Load;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::evidence::{EvidenceError, EvidenceSource};

/// Seconds a request's timestamp may differ from the node's clock.
pub const SKEW_SECONDS: i64 = 60;
/// How long published evidence is reused before it is made again.
pub const EVIDENCE_REFRESH: Duration = Duration::from_secs(300);
/// The provider id of the node's own model server in its model router.
pub const PROVIDER: &str = "local";

/// Why a request was refused before any reply.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not a well-formed envelope, or it does not open.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Sealed to another key (an older REK of a node that restarted).
    #[error("sealed to key `{0}`, not this node's; fetch the node's evidence again")]
    UnknownKey(String),
    /// Stale, from the future, or replayed.
    #[error(transparent)]
    Replay(#[from] Rejection),
    /// Every slot is busy.
    #[error("the node is answering {0} requests; retry elsewhere")]
    Busy(u32),
}

impl Refusal {
    /// The code, as the gateway's API uses them.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Envelope(error) => error.code(),
            Refusal::UnknownKey(_) => ErrorCode::UnknownKey,
            Refusal::Replay(Rejection::Stale { .. }) => ErrorCode::StaleRequest,
            Refusal::Replay(Rejection::Future { .. }) => ErrorCode::FutureRequest,
            Refusal::Replay(Rejection::Replayed) => ErrorCode::ReplayedRequest,
            Refusal::Replay(Rejection::Full) | Refusal::Busy(_) => ErrorCode::Busy,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Replay(Rejection::Replayed) => 409,
            Refusal::Replay(Rejection::Full) | Refusal::Busy(_) => 503,
            _ => 400,
        }
    }
}

/// An admitted request: its plaintext, the sealer of its reply, its slot.
pub struct Admitted {
    plaintext: Zeroizing<Vec<u8>>,
    sealer: ChunkSealer,
    permit: OwnedSemaphorePermit,
}

/// The node.
pub struct ComputeNode {
    id: String,
    rek: KeyPair,
    receiver: Receiver,
    key_id: String,
    replay: Mutex<ReplayWindow>,
    llm: hearth_llm::Router,
    models: Vec<String>,
    max_tokens: u32,
    slots: Arc<Semaphore>,
    capacity: u32,
    evidence: EvidenceSource,
    published: Mutex<Option<(Duration, EvidenceBundle)>>,
}

impl ComputeNode {
    /// A node `id` with a fresh REK, serving `models` through `llm` (whose
    /// chain is `local/<model>` for each), `capacity` replies at once,
    /// started at `now` (Unix seconds).
    pub fn new(
        id: &str,
        evidence: EvidenceSource,
        llm: hearth_llm::Router,
        models: Vec<String>,
        capacity: u32,
        max_tokens: u32,
        now: i64,
    ) -> ComputeNode {
        let rek = KeyPair::generate();
        let receiver = rek.receiver_for(COMPUTE_INFO);
        let key_id = hearth_pcc::key_id(&rek.public_bytes());
        ComputeNode {
            id: id.to_owned(),
            receiver,
            key_id,
            rek,
            // Requests sealed before this start went to another REK: none
            // can open here, so the window starts now.
            replay: Mutex::new(ReplayWindow::new(
                SKEW_SECONDS,
                now - SKEW_SECONDS,
                REPLAY_CAPACITY,
            )),
            llm,
            models,
            max_tokens,
            slots: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            evidence,
            published: Mutex::new(None),
        }
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The models it serves.
    pub fn models(&self) -> &[String] {
        &self.models
    }

    /// Its public request key.
    pub fn rek(&self) -> [u8; 32] {
        self.rek.public_bytes()
    }

    /// How busy it is.
    pub fn load(&self) -> Load {
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(self.capacity);
        Load {
            active: self.capacity.saturating_sub(free),
            capacity: self.capacity,
        }
    }

    /// Evidence binding the REK: fresh with `nonce`, else the published
    /// bundle, remade after [`EVIDENCE_REFRESH`].
    pub fn evidence(
        &self,
        nonce: Option<&[u8]>,
        now: Duration,
    ) -> Result<EvidenceBundle, EvidenceError> {
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        if nonce.is_some() {
            return self.evidence.bundle(&self.id, &self.rek(), nonce, now_ms);
        }
        let mut published = hearth_runtime::lock(&self.published);
        if let Some((made, bundle)) = published.as_ref()
            && now.saturating_sub(*made) < EVIDENCE_REFRESH
        {
            return Ok(bundle.clone());
        }
        let bundle = self.evidence.bundle(&self.id, &self.rek(), None, now_ms)?;
        *published = Some((now, bundle.clone()));
        Ok(bundle)
    }

    /// Admits a sealed request body at `now` (Unix seconds): its shape, the
    /// key it names, its time, decryption, replay, then a free slot.
    pub fn admit(&self, body: &[u8], now: i64) -> Result<Admitted, Refusal> {
        let envelope = parse_envelope(body)?;
        if envelope.key_id != self.key_id {
            return Err(Refusal::UnknownKey(envelope.key_id));
        }
        hearth_runtime::lock(&self.replay).check_skew(envelope.timestamp, now)?;
        let opened = open_request_with(&envelope, &self.receiver)?;
        hearth_runtime::lock(&self.replay).check(&envelope.request_id, envelope.timestamp, now)?;
        let permit = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy(self.capacity))?;
        Ok(Admitted {
            plaintext: opened.plaintext,
            sealer: opened.sealer,
            permit,
        })
    }

    /// The sealed reply to an admitted request, as SSE text.
    pub async fn reply(self: &Arc<Self>, admitted: Admitted) -> BoxStream<'static, Bytes> {
        let Admitted {
            plaintext,
            mut sealer,
            permit,
        } = admitted;
        let events = match serde_json::from_slice::<ComputeRequest>(&plaintext) {
            Ok(request) => {
                drop(plaintext);
                self.answer(request, permit).await
            }
            Err(_) => single(ReplyEvent::Error {
                code: ErrorCode::BadRequest,
                message: "the sealed plaintext is not a compute request".into(),
            }),
        };
        events
            .map(move |event| Bytes::from(sse_chunk(&mut sealer, &event)))
            .boxed()
    }

    async fn answer(
        &self,
        request: ComputeRequest,
        permit: OwnedSemaphorePermit,
    ) -> BoxStream<'static, ReplyEvent> {
        if !self.models.contains(&request.model) {
            return single(ReplyEvent::Error {
                code: ErrorCode::ModelNotFound,
                message: format!("this node serves {}", self.models.join(", ")),
            });
        }
        let model = ModelRef {
            provider: PROVIDER.into(),
            model: request.model.clone(),
        };
        let chat = ChatRequest {
            messages: request
                .messages
                .into_iter()
                .map(|message| Message::new(&message.role, message.content))
                .collect(),
            max_tokens: Some(
                request
                    .max_tokens
                    .unwrap_or(self.max_tokens)
                    .min(self.max_tokens),
            ),
            temperature: request.temperature,
            ..Default::default()
        };
        let opened = match self.llm.open_starting_with(&chat, &model).await {
            Ok(opened) => opened,
            Err(error) => return single(failure(&error)),
        };
        drop(chat);
        let meta = ReplyEvent::Meta {
            model: request.model,
            session: String::new(),
        };
        let events = opened.events.map(|event| match event {
            Ok(StreamEvent::Delta(text)) => ReplyEvent::Delta { text },
            Ok(StreamEvent::ToolCalls(calls)) => ReplyEvent::ToolCalls { calls },
            Ok(StreamEvent::Done {
                finish_reason,
                usage,
            }) => ReplyEvent::Done {
                finish_reason,
                usage: usage.map(|usage| ReplyUsage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                }),
            },
            Err(_) => ReplyEvent::Error {
                code: ErrorCode::BackendFailed,
                message: "the model's reply failed before it was complete".into(),
            },
        });
        // Up to the final event, then the slot is free again.
        let mut permit = Some(permit);
        futures_util::stream::once(async move { meta })
            .chain(events)
            .scan(false, |ended, event| {
                let emit = (!*ended).then(|| {
                    *ended = event.is_final();
                    event
                });
                async move { emit }
            })
            .map(move |event| {
                if event.is_final() {
                    permit.take();
                }
                event
            })
            .boxed()
    }
}

fn single(event: ReplyEvent) -> BoxStream<'static, ReplyEvent> {
    futures_util::stream::once(async move { event }).boxed()
}

/// The sealed error for a model that could not start (never the backend's
/// own words: they can quote the request).
fn failure(error: &RouteError) -> ReplyEvent {
    let (code, message) = match error {
        RouteError::Stopped {
            error: hearth_llm::BackendError::ContextOverflow(_),
            ..
        } => (
            ErrorCode::ContextOverflow,
            "the conversation is longer than the model's context",
        ),
        RouteError::Stopped { .. } => (ErrorCode::BackendRefused, "the model refused the request"),
        RouteError::Exhausted(_) => (ErrorCode::NoModel, "the node's model could not answer"),
    };
    ReplyEvent::Error {
        code,
        message: message.into(),
    }
}
