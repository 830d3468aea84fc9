//! The gateway's use cases: admitting an encrypted request (every check
//! before any backend is called), and streaming the reply, sealed chunk by
//! chunk; the same conversation flow serves the OpenAI-compatible API.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hearth_e2ee::envelope::{SUITE, b64, check_shape, open_request_with};
use hearth_e2ee::{
    ChatEnvelope, ChatPayload, ChunkSealer, EnvelopeError, ErrorCode, PublishedKey, Rejection,
    ReplayWindow, ReplyEvent, ReplyUsage,
};
use hearth_llm::{ChatRequest, Message, ModelRef, RouteError, Router, StreamEvent};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::agents::{Agent, Agents};
use crate::assistant::{Answerer, Assistant, Said};
use crate::config::Config;
use crate::context;
use crate::conversation::{Conversation, RoundEnd, shown_tool_name};
use crate::journal::Journal;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::sessions::Sessions;

/// Why a request was refused before any backend call.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The key id is unknown or retired.
    #[error("key `{0}` is not accepted (unknown or retired); fetch /api/pubkey again")]
    UnknownKey(String),
    /// Outside the time window, or replayed.
    #[error(transparent)]
    Replay(#[from] Rejection),
    /// The envelope does not decrypt or was altered.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Too many requests from this device or address.
    #[error("too many requests; slow down")]
    RateLimited,
    /// Too many replies streaming.
    #[error("the gateway is busy ({0} replies streaming); retry shortly")]
    Busy(usize),
}

impl Refusal {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::UnknownKey(_) => ErrorCode::UnknownKey,
            Refusal::Replay(Rejection::Stale { .. }) => ErrorCode::StaleRequest,
            Refusal::Replay(Rejection::Future { .. }) => ErrorCode::FutureRequest,
            Refusal::Replay(Rejection::Replayed) => ErrorCode::ReplayedRequest,
            Refusal::Replay(Rejection::Full) => ErrorCode::Busy,
            Refusal::Envelope(error) => error.code(),
            Refusal::RateLimited => ErrorCode::RateLimited,
            Refusal::Busy(_) => ErrorCode::Busy,
        }
    }
}

/// `GET /api/pubkey`.
#[derive(Clone, Debug, Serialize)]
pub struct PubkeyAnswer {
    /// The HPKE suite and mode.
    pub suite: &'static str,
    /// The current key and the next one.
    pub keys: Vec<PublishedKey>,
}

/// Which models a turn tries.
pub enum Route {
    /// The configured chain, primary first.
    Chain,
    /// This model of the chain first, then the rest (an OpenAI client named it).
    StartingWith(ModelRef),
}

/// A request that passed every check; the reply may start.
pub struct Admitted {
    plaintext: zeroize::Zeroizing<Vec<u8>>,
    peer: String,
    sealer: ChunkSealer,
    permit: OwnedSemaphorePermit,
    arrived: Instant,
}

/// An encrypted request whose cheap checks passed: the one to decrypt it with.
pub struct Plausible {
    key: Arc<hearth_e2ee::receiver::Receiver>,
    arrived: Instant,
}

/// One event, as a stream.
fn single(event: ReplyEvent) -> BoxStream<'static, ReplyEvent> {
    futures_util::stream::once(async move { event }).boxed()
}

/// A reply being streamed: pulls the model's events and turns them into
/// reply events, keeping the metrics and, at the end, the session.
struct Turn {
    gateway: Arc<Gateway>,
    events: hearth_llm::EventStream,
    model: String,
    reply: String,
    save: Option<(String, Message)>,
    tokens: u64,
    first: bool,
    arrived: Instant,
    endpoint: &'static str,
    finished: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Turn {
    async fn next(&mut self) -> Option<ReplyEvent> {
        if self.finished {
            return None;
        }
        let metrics = &self.gateway.metrics;
        let event = match self.events.next().await {
            Some(Ok(StreamEvent::Delta(text))) => {
                if self.first {
                    metrics.first_token(self.arrived.elapsed());
                    self.first = false;
                }
                self.tokens += 1;
                if self.save.is_some() {
                    self.reply.push_str(&text);
                }
                return Some(ReplyEvent::Delta { text });
            }
            Some(Ok(StreamEvent::ToolCalls(calls))) => {
                if self.first {
                    metrics.first_token(self.arrived.elapsed());
                    self.first = false;
                }
                return Some(ReplyEvent::ToolCalls { calls });
            }
            Some(Ok(StreamEvent::Done {
                finish_reason,
                usage,
            })) => {
                let usage = usage.map(|usage| ReplyUsage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                });
                if let Some(usage) = usage {
                    self.tokens = usage.completion_tokens.max(self.tokens);
                }
                metrics.finished(self.tokens, self.arrived.elapsed());
                metrics.outcome(self.endpoint, "ok");
                if let Some((session, user)) = self.save.take() {
                    let reply = std::mem::take(&mut self.reply);
                    self.gateway
                        .sessions
                        .append(&session, vec![user, Message::new("assistant", reply)]);
                }
                ReplyEvent::Done {
                    finish_reason,
                    usage,
                }
            }
            Some(Err(_)) => {
                // The router judged it (failover.rs, output sent) and ended
                // the stream; the user is told the class, not the text.
                metrics.outcome(self.endpoint, "backend_failed");
                failure(ErrorCode::BackendFailed)
            }
            None => {
                tracing::warn!(model = %self.model, "the model's reply ended without its end");
                metrics.outcome(self.endpoint, "backend_failed");
                failure(ErrorCode::BackendFailed)
            }
        };
        self.finished = true;
        Some(event)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.finished {
            // The client went away: no failover, no error to anyone.
            self.gateway.metrics.outcome(self.endpoint, "client_gone");
        }
        self.gateway.metrics.stream_ended();
    }
}

/// The replay window and the journal that carries it across restarts.
struct Replay {
    window: ReplayWindow,
    journal: Journal,
}

/// What the room, the device or the OpenAI client is told when a reply
/// fails: a class and a fixed sentence, never a backend's own words (which
/// can quote the request, persona included).
pub fn failure_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NoModel => "no model could answer; try again shortly",
        ErrorCode::ContextOverflow => {
            "the conversation is longer than the model's context; start a new session with /new"
        }
        ErrorCode::BackendRefused => "the model refused the request",
        ErrorCode::BackendFailed => "the model's reply failed before it was complete",
        ErrorCode::BadRequest => "the request is not a chat request",
        _ => "the gateway failed; see its log",
    }
}

/// A reply that failed with `code`, as its final event.
pub fn failure(code: ErrorCode) -> ReplyEvent {
    ReplyEvent::Error {
        code,
        message: failure_message(code).into(),
    }
}

/// Why a caller may not start a turn: the code and the sentence it is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// `not_permitted`, `budget_exhausted`, or `internal`.
    pub code: ErrorCode,
    /// Why, for the caller.
    pub message: String,
}

/// The running gateway.
pub struct Gateway {
    /// The configuration.
    pub config: Config,
    /// The model router.
    pub router: Arc<Router>,
    /// Metrics.
    pub metrics: Metrics,
    keys: KeyStore,
    replay: Mutex<Replay>,
    sessions: Sessions,
    /// Tokens used, per day, caller and model.
    pub usage: crate::usage::Usage,
    /// The agents (personas) callers can address.
    pub agents: Agents,
    /// The household assistant (memory, reminders, documents, tools), when on.
    pub assistant: Option<Arc<Assistant>>,
    device_limiter: DefaultKeyedRateLimiter<[u8; 32]>,
    caller_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
    streams: Arc<Semaphore>,
}

fn per_minute(count: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(count.max(1)).expect("at least one"))
}

impl Gateway {
    /// Builds the gateway from its configuration (keys, sessions, persona,
    /// router) at `now`; its data directory exists already (the shell makes it).
    pub async fn start(config: Config, now: i64) -> anyhow::Result<Arc<Gateway>> {
        use anyhow::Context as _;
        let data_dir = &config.hearth.data_dir;
        let keys = KeyStore::open(
            data_dir,
            config.hearth.key_rotation_hours,
            config.hearth.key_overlap_hours,
            now,
        )
        .with_context(|| "cannot load the gateway keys")?;
        let sessions = Sessions::open(data_dir)
            .await
            .with_context(|| "cannot open the session store")?;
        let agents = load_agents(&config)?;
        let router = Arc::new(crate::build_router(&config)?);
        let assistant = if config.assistant.enabled {
            let program = std::env::current_exe()
                .with_context(|| "cannot find the gateway's own executable")?;
            Some(
                Assistant::start(
                    config.assistant.clone(),
                    Arc::clone(&router),
                    data_dir,
                    program,
                )
                .await?,
            )
        } else {
            None
        };
        let (journal, window) = Journal::open(
            &data_dir.join("replay.journal"),
            config.hearth.request_skew_seconds,
            hearth_e2ee::REPLAY_CAPACITY,
            now,
        )
        .with_context(|| "cannot open the replay journal")?;
        let limits = &config.hearth.limits;
        Ok(Arc::new(Gateway {
            device_limiter: RateLimiter::keyed(per_minute(limits.requests_per_minute_per_device)),
            caller_limiter: RateLimiter::keyed(per_minute(limits.requests_per_minute_per_device)),
            streams: Arc::new(Semaphore::new(limits.max_concurrent_streams.max(1))),
            replay: Mutex::new(Replay { window, journal }),
            metrics: Metrics::default(),
            router,
            keys,
            usage: crate::usage::Usage::new(sessions.pool().clone()),
            sessions,
            agents,
            assistant,
            config,
        }))
    }

    /// Starts the assistant's background work (the scheduler, which asks
    /// this gateway's models scheduled questions; the document indexer).
    pub fn spawn_assistant(self: &Arc<Self>) {
        let Some(assistant) = &self.assistant else {
            return;
        };
        assistant.spawn(Arc::new(ScheduledQuestions {
            gateway: Arc::downgrade(self),
        }));
    }

    /// `asker` (of a question asked again later) with the grants the mesh
    /// gives their device now ([`hearth_assistant::scope::Asker::regranted`]),
    /// asked of this node's agent.
    async fn with_current_grants(
        &self,
        asker: hearth_assistant::scope::Asker,
    ) -> hearth_assistant::scope::Asker {
        let now = match (&self.config.hearth.agent_socket, asker.device) {
            (Some(socket), Some(device)) => hearth_control::agent_api::whois(socket, device)
                .await
                .ok()
                .flatten()
                .map(|who| hearth_assistant::scope::DeviceNow {
                    member: who.user,
                    tagged: !who.tags.is_empty(),
                    capabilities: who.capabilities,
                }),
            _ => None,
        };
        asker.regranted(now)
    }

    /// The keys to publish at `now`.
    pub fn pubkeys(&self, now: i64) -> PubkeyAnswer {
        PubkeyAnswer {
            suite: SUITE,
            keys: self.keys.published(now),
        }
    }

    /// Rotates keys as due at `now` (called periodically).
    pub fn maintain_keys(&self, now: i64) -> std::io::Result<()> {
        self.keys.maintain(now)
    }

    /// Admission, part one, at `now` (Unix seconds) for a request that
    /// `arrived` then: the checks that cost no cryptography (shape,
    /// freshness, key id). No backend is called before both parts pass.
    pub fn precheck(
        &self,
        envelope: &ChatEnvelope,
        now: i64,
        arrived: Instant,
    ) -> Result<Plausible, Refusal> {
        check_shape(envelope)?;
        // Checked again, with memory, in part two; this spares the decryption.
        hearth_runtime::lock(&self.replay)
            .window
            .check_skew(envelope.timestamp, now)?;
        let key = self
            .keys
            .accepted(&envelope.key_id, now)
            .ok_or_else(|| Refusal::UnknownKey(envelope.key_id.clone()))?;
        Ok(Plausible { key, arrived })
    }

    /// Admission, part two, after [`Gateway::precheck`]: decryption (which
    /// authenticates the device), replay, device rate, capacity.
    pub fn admit_checked(
        &self,
        envelope: &ChatEnvelope,
        plausible: Plausible,
        now: i64,
    ) -> Result<Admitted, Refusal> {
        let Plausible { key, arrived } = plausible;
        let opened = open_request_with(envelope, &key)?;
        {
            let mut replay = hearth_runtime::lock(&self.replay);
            let Replay { window, journal } = &mut *replay;
            window.check(&envelope.request_id, envelope.timestamp, now)?;
            let forget_at = ReplayWindow::forget_at(envelope.timestamp, now);
            journal.accepted(&envelope.request_id, forget_at, window);
        }
        self.device_limiter
            .check_key(&opened.device_key)
            .map_err(|_| Refusal::RateLimited)?;
        let permit = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy(self.config.hearth.limits.max_concurrent_streams))?;
        Ok(Admitted {
            plaintext: opened.plaintext,
            peer: b64(&opened.device_key),
            sealer: opened.sealer,
            permit,
            arrived,
        })
    }

    /// Admission on the OpenAI-compatible API, which has no device key: the
    /// caller's address within the same per-device rate, and a reply slot
    /// like any encrypted request.
    pub fn admit_plain(&self, caller: std::net::IpAddr) -> Result<OwnedSemaphorePermit, Refusal> {
        self.caller_limiter
            .check_key(&caller.to_canonical())
            .map_err(|_| Refusal::RateLimited)?;
        Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy(self.config.hearth.limits.max_concurrent_streams))
    }

    /// The sealed reply to an admitted request, as SSE lines. The model is
    /// asked, and its first token awaited, before this returns; the rest is
    /// pulled through by the response body as the client reads it, so a
    /// client that goes away drops the backend request with it.
    pub async fn reply(
        self: &Arc<Self>,
        admitted: Admitted,
        caller: &crate::caller::Caller,
    ) -> BoxStream<'static, Bytes> {
        let Admitted {
            plaintext,
            peer,
            mut sealer,
            permit,
            arrived,
        } = admitted;
        let events = match serde_json::from_slice::<ChatPayload>(&plaintext) {
            Ok(payload) => {
                drop(plaintext);
                match caller.asker(payload.on_behalf_of.as_ref()) {
                    Ok(asker) => {
                        // The policy's models and budget: the member's (as
                        // their device has them) or the caller's own.
                        let (who, access) = match &asker {
                            Some(asker) => (
                                asker.member.clone(),
                                crate::access::Access::of(&asker.capabilities),
                            ),
                            None => (caller.account(), caller.access()),
                        };
                        let target =
                            crate::access::Target::Agent(self.agents.default_id().to_owned());
                        match self.permit(&who, &access, &target).await {
                            Ok(()) => {
                                let events = self
                                    .begin(payload, &peer, arrived, Some(permit), asker)
                                    .await;
                                self.metered(who, events)
                            }
                            Err(denied) => {
                                self.metrics.outcome("chat", denied.code.as_str());
                                single(ReplyEvent::Error {
                                    code: denied.code,
                                    message: denied.message,
                                })
                            }
                        }
                    }
                    Err(why) => {
                        self.metrics.outcome("chat", "bad_request");
                        single(ReplyEvent::Error {
                            code: ErrorCode::BadRequest,
                            message: why.into(),
                        })
                    }
                }
            }
            Err(error) => {
                self.metrics.outcome("chat", "bad_request");
                tracing::debug!(%error, "an admitted request's plaintext is not a chat request");
                let event = failure(ErrorCode::BadRequest);
                futures_util::stream::once(async move { event }).boxed()
            }
        };
        events
            .map(move |event| Bytes::from(hearth_e2ee::chunks::sse_chunk(&mut sealer, &event)))
            .boxed()
    }

    /// The sealed answer to an assistant API request (`POST
    /// /api/assistant`): deliveries for household messaging, and for a
    /// member (established as for chat) their memory, reminders and
    /// documents.
    pub async fn assistant_reply(
        self: &Arc<Self>,
        admitted: Admitted,
        caller: &crate::caller::Caller,
    ) -> BoxStream<'static, Bytes> {
        use hearth_assistant::api::{Answer, MAX_WAIT_MS, Op, Request};
        let Admitted {
            plaintext,
            mut sealer,
            permit,
            ..
        } = admitted;
        let refused = |message: &str| Answer::Refused {
            message: message.to_owned(),
        };
        let answer = match (
            &self.assistant,
            serde_json::from_slice::<Request>(&plaintext),
        ) {
            (None, _) => {
                refused("the household assistant is off on this gateway (hearth.assistant.enabled)")
            }
            (_, Err(error)) => Answer::Refused {
                message: format!("not an assistant request: {error}"),
            },
            (Some(assistant), Ok(request)) => match request.op {
                Op::Deliveries { after, wait_ms } => {
                    if caller.speaks_for_members {
                        let wait = Duration::from_millis(wait_ms.min(MAX_WAIT_MS));
                        assistant.deliveries(after, wait).await
                    } else {
                        refused("only household messaging collects the assistant's deliveries")
                    }
                }
                op => match caller.asker(request.asker.as_ref()) {
                    Ok(Some(asker)) => assistant.answer(&asker, op).await,
                    Ok(None) => refused("name the member this is for"),
                    Err(why) => refused(why),
                },
            },
        };
        drop(plaintext);
        drop(permit);
        self.metrics.outcome("assistant", "ok");
        let events = [
            ReplyEvent::Data {
                data: serde_json::to_value(&answer).unwrap_or_default(),
            },
            ReplyEvent::Done {
                finish_reason: "stop".into(),
                usage: None,
            },
        ];
        futures_util::stream::iter(events)
            .map(move |event| Bytes::from(hearth_e2ee::chunks::sse_chunk(&mut sealer, &event)))
            .boxed()
    }

    /// One conversation turn of `peer` on the encrypted API: `/new`, or the
    /// session's history under the persona, fitted to the context, sent to
    /// the first model that answers. The exchange is saved when it completes.
    /// With the assistant on and a known `asker`, an everyday request is
    /// carried out at once, and otherwise the turn is given what is
    /// remembered and what the documents say, and the household's tools.
    pub async fn begin(
        self: &Arc<Self>,
        payload: ChatPayload,
        peer: &str,
        arrived: Instant,
        permit: Option<OwnedSemaphorePermit>,
        asker: Option<hearth_assistant::scope::Asker>,
    ) -> BoxStream<'static, ReplyEvent> {
        let endpoint = "chat";
        let channel = payload.channel.clone().unwrap_or_else(|| "default".into());
        if channel.is_empty() || channel.len() > 200 {
            self.metrics.outcome(endpoint, "bad_request");
            return single(ReplyEvent::Error {
                code: ErrorCode::BadRequest,
                message: "channel must be 1 to 200 characters".into(),
            });
        }
        if payload.message.trim() == "/new" {
            let session = self.sessions.start(&channel, peer);
            self.metrics.outcome(endpoint, "new_session");
            let events = [
                ReplyEvent::Notice {
                    text: format!("New session {session} started."),
                },
                ReplyEvent::Done {
                    finish_reason: "new_session".into(),
                    usage: None,
                },
            ];
            return futures_util::stream::iter(events).boxed();
        }
        let (session, history) = match self.sessions.current(&channel, peer).await {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(%error, "session store failed");
                self.metrics.outcome(endpoint, "internal");
                return single(ReplyEvent::Error {
                    code: ErrorCode::Internal,
                    message: "the session store failed".into(),
                });
            }
        };
        let mut user = Message::new("user", payload.message);
        if !payload.images.is_empty() {
            if let Err(why) = check_images(&payload.images, self.router.reads_images(None)) {
                self.metrics.outcome(endpoint, "bad_request");
                return single(ReplyEvent::Error {
                    code: ErrorCode::UnsupportedMediaType,
                    message: why,
                });
            }
            user.images = payload.images;
        }
        if let (Some(assistant), Some(asker)) = (&self.assistant, asker) {
            if let Some(said) = assistant.intent(&asker, &user.content).await {
                self.metrics.outcome(endpoint, "ok");
                return self.said(said, Some((session, user)));
            }
            let budget = self.context_budget(self.agents.default_agent());
            let context = assistant.context(&asker, &user.content, budget).await;
            let (mut request, kept) = self.request_with(
                self.agents.default_agent(),
                &history,
                user.clone(),
                payload.max_tokens,
                payload.temperature,
                context.system.as_deref(),
            );
            let dropped = history.len().saturating_sub(kept);
            if dropped > 0 {
                let (assistant, asker, session, history) = (
                    Arc::clone(assistant),
                    asker.clone(),
                    session.clone(),
                    Arc::clone(&history),
                );
                tokio::spawn(async move {
                    assistant
                        .note_trimmed(&asker, &session, &history, dropped)
                        .await;
                });
            }
            request.tools = self.household_tools(&Route::Chain);
            return self
                .assistant_turn(
                    request,
                    asker,
                    context.citations,
                    Some((session, user)),
                    permit,
                    Route::Chain,
                    arrived,
                    Vec::new(),
                )
                .await;
        }
        let request = self.request(
            self.agents.default_agent(),
            &history,
            user.clone(),
            payload.max_tokens,
            payload.temperature,
        );
        self.open_turn(
            &request,
            arrived,
            endpoint,
            Some((session, user)),
            permit,
            Route::Chain,
        )
        .await
    }

    /// The backend request for `agent`: its persona, history fitted to
    /// the context of the model it starts with, the new message, capped
    /// generation length.
    pub fn request(
        &self,
        agent: &Agent,
        history: &[Message],
        new: Message,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
    ) -> ChatRequest {
        self.request_with(agent, history, new, max_tokens, temperature, None)
            .0
    }

    /// [`Gateway::request`] with `extra` (the assistant's context) given
    /// with the newest user message ([`context::with_context`]), out of the
    /// same budget; and how many messages of `history` fitted.
    pub fn request_with(
        &self,
        agent: &Agent,
        history: &[Message],
        new: Message,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
        extra: Option<&str>,
    ) -> (ChatRequest, usize) {
        let (context_window, max_tokens) = self.window(agent, max_tokens);
        let extra_cost = extra.map_or(0, |text| {
            context::estimate_tokens(&Message::new("user", text))
        });
        let budget =
            (context_window.saturating_sub(max_tokens) as usize).saturating_sub(extra_cost);
        let mut messages = context::fit(agent.persona.as_deref(), history, new, budget);
        let kept = messages.len() - 1 - usize::from(agent.persona.is_some());
        if let Some(extra) = extra {
            context::with_context(&mut messages, extra);
        }
        (
            ChatRequest {
                messages,
                max_tokens: Some(max_tokens),
                temperature,
                ..Default::default()
            },
            kept,
        )
    }

    /// Characters of the assistant's context (memory, passages) a turn of
    /// `agent` may carry: a third of what the model's context leaves after
    /// its reply (at three characters a token), so history still fits.
    pub fn context_budget(&self, agent: &Agent) -> usize {
        let (context_window, max_tokens) = self.window(agent, None);
        context_window.saturating_sub(max_tokens) as usize
    }

    /// The context window of the model `agent` starts with, and the most
    /// tokens a reply gets (`asked`, capped by the model and the limits).
    fn window(&self, agent: &Agent, asked: Option<u32>) -> (u32, u32) {
        let (context_window, model_max) = agent
            .model
            .as_ref()
            .or_else(|| self.router.chain().first())
            .and_then(|model| self.config.model(&model.provider, &model.model))
            .map_or(
                (
                    crate::config::DEFAULT_CONTEXT,
                    crate::config::DEFAULT_MAX_TOKENS,
                ),
                |model| (model.context_window, model.max_tokens),
            );
        let max_tokens = asked
            .unwrap_or(model_max)
            .min(model_max)
            .min(self.config.hearth.limits.max_tokens);
        (context_window, max_tokens)
    }

    /// The reply to a request the assistant carried out itself: the tool
    /// it ran, its sentence; with `save`, the exchange is saved in that
    /// session like any other.
    pub fn said(
        &self,
        said: Said,
        save: Option<(String, Message)>,
    ) -> BoxStream<'static, ReplyEvent> {
        let session = save
            .as_ref()
            .map(|(session, _)| session.clone())
            .unwrap_or_default();
        if let Some((session, user)) = save {
            self.sessions.append(
                &session,
                vec![user, Message::new("assistant", said.text.clone())],
            );
        }
        let events = [ReplyEvent::Meta {
            model: "hearth/assistant".into(),
            session,
        }]
        .into_iter()
        .chain(said.tool.map(|name| ReplyEvent::Tool { name: name.into() }))
        .chain([
            ReplyEvent::Delta { text: said.text },
            ReplyEvent::Done {
                finish_reason: "stop".into(),
                usage: None,
            },
        ]);
        futures_util::stream::iter(events.collect::<Vec<_>>()).boxed()
    }

    /// A turn of the household assistant: the model may call the
    /// household's tools (each run for `asker`, and shown to the chat) for
    /// up to `MAX_ROUNDS` rounds, then answers; the answer names the
    /// documents it was given. With `save`, the question and the final
    /// answer go into that session. A call of one of `client_tools` (the
    /// tools an OpenAI client brought) ends the turn: those calls go back
    /// to the client, which runs them and asks again.
    #[allow(clippy::too_many_arguments)]
    pub async fn assistant_turn(
        self: &Arc<Self>,
        request: ChatRequest,
        asker: hearth_assistant::scope::Asker,
        mut citations: Vec<String>,
        save: Option<(String, Message)>,
        permit: Option<OwnedSemaphorePermit>,
        route: Route,
        arrived: Instant,
        client_tools: Vec<String>,
    ) -> BoxStream<'static, ReplyEvent> {
        let Some(assistant) = self.assistant.clone() else {
            return single(failure(ErrorCode::Internal));
        };
        let gateway = Arc::clone(self);
        let (sender, receiver) = tokio::sync::mpsc::channel::<ReplyEvent>(64);
        tokio::spawn(async move {
            let _permit = permit;
            let mut route = Some(route);
            let session = save.as_ref().map(|(session, _)| session.clone());
            let mut turn = Conversation::new(request, session).with_client_tools(client_tools);
            loop {
                let this_route = route.take().unwrap_or(Route::Chain);
                let mut events = gateway
                    .open_turn(turn.start_round(), arrived, "chat", None, None, this_route)
                    .await;
                while let Some(event) = events.next().await {
                    let Some(forward) = turn.on_event(event) else {
                        continue;
                    };
                    let last = matches!(forward, ReplyEvent::Error { .. });
                    if sender.send(forward).await.is_err() || last {
                        return;
                    }
                }
                match turn.end_round() {
                    RoundEnd::Cut => return,
                    RoundEnd::Answered {
                        finish_reason,
                        usage,
                    } => {
                        if let Some(footer) = assistant.sources(&citations) {
                            turn.append(&footer);
                            let _ = sender.send(ReplyEvent::Delta { text: footer }).await;
                        }
                        if let Some((session, user)) = save {
                            gateway.sessions.append(
                                &session,
                                vec![user, Message::new("assistant", turn.answer())],
                            );
                        }
                        let _ = sender
                            .send(ReplyEvent::Done {
                                finish_reason,
                                usage,
                            })
                            .await;
                        return;
                    }
                    RoundEnd::ClientTools {
                        calls,
                        finish_reason,
                        usage,
                    } => {
                        let calls = calls
                            .into_iter()
                            .enumerate()
                            .map(|(index, (id, name, arguments))| {
                                serde_json::json!({"index": index, "id": id, "type": "function",
                                    "function": {"name": name, "arguments": arguments}})
                            })
                            .collect();
                        let _ = sender
                            .send(ReplyEvent::ToolCalls {
                                calls: serde_json::Value::Array(calls),
                            })
                            .await;
                        let _ = sender
                            .send(ReplyEvent::Done {
                                finish_reason,
                                usage,
                            })
                            .await;
                        return;
                    }
                    RoundEnd::Tools(calls) => {
                        for (id, name, arguments) in calls {
                            let shown = ReplyEvent::Tool {
                                name: shown_tool_name(&name),
                            };
                            if sender.send(shown).await.is_err() {
                                return;
                            }
                            let output = assistant
                                .run_tool(&asker, &name, &arguments, &mut citations)
                                .await;
                            turn.tool_result(id, name, output);
                        }
                    }
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver).boxed()
    }

    /// The assistant's answer to a scheduled question, asked with
    /// `asker`'s authority (its memory, documents, tools); `None` when no
    /// model answered.
    pub async fn answer_for(
        self: &Arc<Self>,
        asker: hearth_assistant::scope::Asker,
        question: String,
    ) -> Option<String> {
        let assistant = self.assistant.clone()?;
        let budget = self.context_budget(self.agents.default_agent());
        let context = assistant.context(&asker, &question, budget).await;
        let (mut request, _) = self.request_with(
            self.agents.default_agent(),
            &[],
            Message::new("user", question),
            None,
            None,
            context.system.as_deref(),
        );
        request.tools = self.household_tools(&Route::Chain);
        let mut events = self
            .assistant_turn(
                request,
                asker,
                context.citations,
                None,
                None,
                Route::Chain,
                Instant::now(),
                Vec::new(),
            )
            .await;
        let mut text = String::new();
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Delta { text: more } => text.push_str(&more),
                ReplyEvent::Error { .. } => return None,
                ReplyEvent::Done { .. } => return Some(text),
                _ => {}
            }
        }
        None
    }

    /// Asks the models for `request` and returns the reply's events: `meta`
    /// (once the first token is in), `delta`s, then `done` or `error`. With
    /// `save`, the exchange is appended to that session when it completes.
    pub async fn open_turn(
        self: &Arc<Self>,
        request: &ChatRequest,
        arrived: Instant,
        endpoint: &'static str,
        save: Option<(String, Message)>,
        permit: Option<OwnedSemaphorePermit>,
        route: Route,
    ) -> BoxStream<'static, ReplyEvent> {
        let opened = match route {
            Route::Chain => self.router.open(request).await,
            Route::StartingWith(model) => self.router.open_starting_with(request, &model).await,
        };
        let opened = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let code = match &error {
                    RouteError::Stopped {
                        error: hearth_llm::BackendError::ContextOverflow(_),
                        ..
                    } => ErrorCode::ContextOverflow,
                    RouteError::Stopped { .. } => ErrorCode::BackendRefused,
                    RouteError::Exhausted(_) => ErrorCode::NoModel,
                };
                self.metrics.outcome(endpoint, code.as_str());
                return single(failure(code));
            }
        };
        let meta = ReplyEvent::Meta {
            model: opened.model.to_string(),
            session: save
                .as_ref()
                .map(|(session, _)| session.clone())
                .unwrap_or_default(),
        };
        self.metrics.stream_started();
        let turn = Turn {
            gateway: Arc::clone(self),
            events: opened.events,
            model: opened.model.to_string(),
            reply: String::new(),
            save,
            tokens: 0,
            first: true,
            arrived,
            endpoint,
            finished: false,
            _permit: permit,
        };
        let rest = futures_util::stream::unfold(turn, |mut turn| async move {
            let event = turn.next().await?;
            Some((event, turn))
        });
        futures_util::stream::once(async move { meta })
            .chain(rest)
            .boxed()
    }

    /// The current session of (channel, peer) and its history.
    pub async fn history(
        &self,
        channel: &str,
        peer: &str,
    ) -> Result<(String, Arc<Vec<Message>>), sqlx::Error> {
        self.sessions.current(channel, peer).await
    }

    /// `peer`'s session channels starting with `prefix`, with their
    /// current session ids.
    pub fn session_channels(&self, peer: &str, prefix: &str) -> Vec<(String, String)> {
        self.sessions.channels_of(peer, prefix)
    }

    /// Starts a new session in (channel, peer); its id.
    pub fn new_session(&self, channel: &str, peer: &str) -> String {
        self.sessions.start(channel, peer)
    }

    /// The session store's database (usage and paired devices live there too).
    pub fn database(&self) -> &sqlx::SqlitePool {
        self.sessions.pool()
    }

    /// The models that can answer (those of the chain), by name.
    pub fn models(&self) -> Vec<ModelRef> {
        let mut models = self.router.chain().to_vec();
        models.sort_by_key(ToString::to_string);
        models.dedup();
        models
    }

    /// Whether `who`, with `access` (the policy's, for its device), may
    /// start a turn on `target` now: the model granted, the day's budget
    /// not spent.
    pub async fn permit(
        &self,
        who: &str,
        access: &crate::access::Access,
        target: &crate::access::Target,
    ) -> Result<(), Denied> {
        if !access.permits(target) {
            let (crate::access::Target::Agent(name) | crate::access::Target::Model(name)) = target;
            return Err(Denied {
                code: ErrorCode::NotPermitted,
                message: format!(
                    "{who} may not use {name}: the household's policy (grants of hearth.example/cap/ai) lets them use {}",
                    access.allowed()
                ),
            });
        }
        if access.daily_tokens.is_some() {
            let today = crate::usage::day_of(hearth_runtime::clock::unix_seconds());
            let used = self.usage.used(who, &today).await.map_err(|error| {
                tracing::error!(%error, "the usage store failed");
                Denied {
                    code: ErrorCode::Internal,
                    message: "the usage store failed".into(),
                }
            })?;
            crate::access::within_budget(who, access, used).map_err(|over| Denied {
                code: ErrorCode::BudgetExhausted,
                message: over.to_string(),
            })?;
        }
        Ok(())
    }

    /// `events` with each completed reply's token counts added to `who`'s
    /// usage (counts only), before its end is passed on: the next request
    /// sees it. A model that reports no counts is counted by its pieces.
    pub fn metered(
        self: &Arc<Self>,
        who: String,
        events: BoxStream<'static, ReplyEvent>,
    ) -> BoxStream<'static, ReplyEvent> {
        let usage = self.usage.clone();
        let counted = Arc::new(std::sync::Mutex::new((String::new(), 0u64)));
        events
            .then(move |event| {
                let (usage, who, counted) = (usage.clone(), who.clone(), Arc::clone(&counted));
                async move {
                    let done = {
                        let mut counted = hearth_runtime::lock(&counted);
                        match &event {
                            ReplyEvent::Meta { model, .. } => {
                                counted.0.clone_from(model);
                                None
                            }
                            ReplyEvent::Delta { .. } => {
                                counted.1 += 1;
                                None
                            }
                            ReplyEvent::Done { usage: counts, .. } => Some((
                                counted.0.clone(),
                                counts.unwrap_or(ReplyUsage {
                                    prompt_tokens: 0,
                                    completion_tokens: counted.1,
                                }),
                            )),
                            _ => None,
                        }
                    };
                    if let Some((model, counts)) = done {
                        let day = crate::usage::day_of(hearth_runtime::clock::unix_seconds());
                        if let Err(error) = usage
                            .record(
                                &day,
                                &who,
                                &model,
                                counts.prompt_tokens,
                                counts.completion_tokens,
                            )
                            .await
                        {
                            tracing::error!(%error, "usage was not recorded");
                        }
                    }
                    event
                }
            })
            .boxed()
    }

    /// The household's tools for a turn on `route`: none when the assistant
    /// is off or its tools are, or when the model's chat template renders
    /// no tools (llama.cpp says so: SmolLM2's, for one).
    pub fn household_tools(&self, route: &Route) -> Option<serde_json::Value> {
        let assistant = self.assistant.as_ref()?;
        let first = match route {
            Route::StartingWith(model) => Some(model),
            Route::Chain => None,
        };
        if !self.router.takes_tools(first) {
            return None;
        }
        assistant.tool_definitions()
    }

    /// The model the assistant embeds with (`memory.search`'s), if any.
    pub fn embedding_model(&self) -> Option<ModelRef> {
        self.config
            .assistant
            .embeddings
            .as_deref()
            .and_then(|name| ModelRef::parse(name).ok())
    }

    /// The model an OpenAI client named: a `provider/model` id of
    /// `/v1/models`, or a bare model id that names exactly one of them.
    pub fn model_named(&self, name: &str) -> Option<ModelRef> {
        let models = self.models();
        if let Some(found) = models.iter().find(|model| model.to_string() == name) {
            return Some(found.clone());
        }
        let mut bare = models.iter().filter(|model| model.model == name);
        match (bare.next(), bare.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    /// Closes the session store and the assistant's.
    pub async fn close(&self) {
        self.sessions.close().await;
        if let Some(assistant) = &self.assistant {
            assistant.close().await;
        }
    }

    /// How long an idle SSE connection waits between keep-alive comments.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// The agents of `config`, their personas read from their workspaces (an
/// agent without one has the defaults' workspace).
fn load_agents(config: &Config) -> anyhow::Result<Agents> {
    use anyhow::Context as _;
    let persona = |workspace: Option<&std::path::PathBuf>| -> anyhow::Result<Option<String>> {
        match workspace {
            Some(workspace) => crate::persona::load(workspace)
                .with_context(|| format!("cannot read the workspace {}", workspace.display())),
            None => Ok(None),
        }
    };
    let defaults = &config.agents.defaults;
    let fallback = Agent {
        name: None,
        persona: persona(defaults.workspace.as_ref())?,
        model: None,
    };
    let mut agents = std::collections::BTreeMap::new();
    let mut default = None;
    for (id, entry) in &config.agents.entries {
        let model = entry
            .model
            .as_ref()
            .and_then(|chain| chain.primary.as_deref())
            .and_then(|text| ModelRef::parse(text).ok());
        agents.insert(
            id.clone(),
            Agent {
                name: entry.name.clone(),
                persona: persona(entry.workspace.as_ref().or(defaults.workspace.as_ref()))?,
                model,
            },
        );
        if entry.default && default.is_none() {
            default = Some(id.clone());
        }
    }
    Ok(Agents::new(agents, default, fallback))
}

/// The gateway as the scheduler's [`Answerer`]: a scheduled question is
/// asked with the grants the mesh gives the asker's device when it runs.
/// It holds the gateway weakly: the assistant it is handed to is the
/// gateway's.
struct ScheduledQuestions {
    gateway: std::sync::Weak<Gateway>,
}

impl Answerer for ScheduledQuestions {
    fn answer(
        &self,
        asker: hearth_assistant::scope::Asker,
        question: String,
    ) -> futures_util::future::BoxFuture<'static, Option<String>> {
        let gateway = self.gateway.clone();
        Box::pin(async move {
            let gateway = gateway.upgrade()?;
            let asker = gateway.with_current_grants(asker).await;
            gateway.answer_for(asker, question).await
        })
    }
}

/// Most pictures one message may carry.
pub const MAX_IMAGES: usize = 4;

/// Whether `images` (data URLs) may go to the model: some model here reads
/// images, and each is a picture in a form models take.
pub fn check_images(images: &[String], vision: bool) -> Result<(), String> {
    if !vision {
        return Err(NO_VISION.into());
    }
    if images.len() > MAX_IMAGES {
        return Err(format!("at most {MAX_IMAGES} pictures go with one message"));
    }
    let picture = |url: &str| {
        ["png", "jpeg", "webp", "gif"]
            .iter()
            .any(|kind| url.starts_with(&format!("data:image/{kind};base64,")))
    };
    if images.iter().all(|url| picture(url)) {
        Ok(())
    } else {
        Err("a picture is sent as a data:image/(png|jpeg|webp|gif);base64 URL".into())
    }
}

/// Why a picture is not looked at when no model reads images.
pub const NO_VISION: &str = "none of the household's models can look at pictures: a model that \
     reads images is needed (llama-server started with its multimodal projector, --mmproj)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_go_to_a_model_only_when_one_reads_them_and_only_as_pictures() {
        let png = "data:image/png;base64,iVBORw0KGgo=".to_owned();
        assert_eq!(check_images(std::slice::from_ref(&png), true), Ok(()));
        assert_eq!(
            check_images(std::slice::from_ref(&png), false),
            Err(NO_VISION.to_owned())
        );
        for other in [
            "data:text/html;base64,PHNjcmlwdD4=",
            "data:image/svg+xml;base64,PHN2Zz4=",
            "https://example.com/cat.png",
            "data:image/png,raw",
        ] {
            assert!(
                check_images(&[png.clone(), other.to_owned()], true).is_err(),
                "{other}"
            );
        }
        assert!(check_images(&vec![png; MAX_IMAGES + 1], true).is_err());
    }
}
