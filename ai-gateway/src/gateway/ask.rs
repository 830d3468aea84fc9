//! The conversation use case every API shares: a caller asks an agent (the
//! household's assistant) or a model, in plain values ([`Ask`]); the
//! answer is a stream of [`ReplyEvent`]s or a refusal ([`Refused`]).
//! The sealed chat, the OpenAI API, Ollama's API, OpenClaw's protocol and
//! the scheduler's questions are adapters that translate their wire to an
//! `Ask` and the events back; none of them decides anything below.
//!
//! Decided here, once, in this order: which agent or model was asked
//! ([`Gateway::select`]); whom the turn is for, and so whose access and
//! budget apply (the member asked for, else the caller); whether the policy
//! lets them use it; which models may answer — a fallback is only ever a
//! model they may use ([`crate::access::Access::may_answer_with`]); whether
//! pictures may go to the model; their budget, with the tokens of replies
//! still streaming reserved ([`crate::access::Reservations`]); a reply slot
//! of their fair share ([`crate::slots`]). Then the reply streams, and what
//! it used is counted however it ends — completed, cut, failed or dropped
//! by the client — and it ends if the mesh stops naming the device it
//! was asked from.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hearth_e2ee::{ErrorCode, ReplyEvent, ReplyUsage};
use hearth_llm::Message;
use hearth_roster::Asker;

use super::Gateway;
use super::admit::{Account, Admission, Ask, Limit, Selection, admit};
use super::refused::Refused;
use super::turns::ASSISTANT_MODEL;
use crate::access::Target;
use crate::caller::Caller;
use crate::slots::Holder;

/// A reply slot, given back when dropped.
pub struct SlotGuard {
    gateway: Arc<Gateway>,
    holder: Holder,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        hearth_runtime::lock(&self.gateway.slots).give_back(&self.holder);
    }
}

impl Gateway {
    /// Which agent and model a request names ([`Book::select`]).
    pub fn select(
        &self,
        model: Option<&str>,
        agent: Option<&str>,
        backend_model: Option<&str>,
    ) -> Result<Selection, Refused> {
        self.book().select(model, agent, backend_model)
    }

    /// The model ids callers can name: the agents (as OpenClaw lists
    /// them), then the backend models as `provider/model` (Hearth's own
    /// addition), then the embedding model.
    pub fn model_ids(&self) -> Vec<String> {
        self.book().model_ids()
    }

    /// The model ids `caller` may use (what the policy grants it).
    pub fn permitted_model_ids(&self, caller: &Caller) -> Vec<String> {
        let access = caller.access();
        let mut ids = self.model_ids();
        ids.retain(|id| {
            let target = match self.agents.target(id) {
                Some(Ok(agent)) => Target::Agent(agent.to_owned()),
                _ => Target::Model(id.clone()),
            };
            access.permits(&target)
        });
        ids.dedup();
        ids
    }

    /// A reply slot for `holder` (its fair share, [`crate::slots`]).
    pub fn take_slot(self: &Arc<Self>, holder: Holder) -> Result<SlotGuard, Refused> {
        hearth_runtime::lock(&self.slots)
            .take(&holder)
            .map_err(|full| Refused::new(ErrorCode::Busy, full.to_string()))?;
        Ok(SlotGuard {
            gateway: Arc::clone(self),
            holder,
        })
    }

    /// The reply slot a turn of `caller` asking for `on_behalf_of` takes
    /// (none when it names someone it may not: the turn is refused anyway).
    pub fn slot_for(
        self: &Arc<Self>,
        caller: &Caller,
        on_behalf_of: Option<&Asker>,
    ) -> Result<Option<SlotGuard>, Refused> {
        let Ok(asker) = caller.asker(on_behalf_of) else {
            return Ok(None);
        };
        let account = Account::of(caller, asker.as_ref());
        self.take_slot(account.holder).map(Some)
    }

    /// Reserves what a turn may use of `account`'s budget today.
    async fn reserve(&self, account: &Account, wanted: u64) -> Result<Reservation, Refused> {
        if account.access.daily_tokens.is_none() {
            return Ok(Reservation::default());
        }
        // One at a time: a reply's usage is counted before its reservation
        // is given back under the same lock, so none is seen twice or missed.
        let mut reservations = self.reservations.lock().await;
        let today = crate::usage::day_of(hearth_runtime::clock::unix_seconds());
        let used = self
            .usage
            .used(&account.who, &today)
            .await
            .map_err(|error| {
                tracing::error!(%error, "the usage store failed");
                Refused::new(ErrorCode::Internal, "the usage store failed")
            })?;
        let tokens = reservations
            .reserve(&account.who, &account.access, used, wanted)
            .map_err(|over| Refused::new(ErrorCode::BudgetExhausted, over.to_string()))?;
        Ok(Reservation { tokens })
    }

    /// One conversation turn: see the module's documentation for what is
    /// decided, in which order. The events are `meta` (the model that
    /// answers), `delta`s, tool calls, then `done` or `error`.
    pub async fn ask(
        self: &Arc<Self>,
        ask: Ask,
    ) -> Result<BoxStream<'static, ReplyEvent>, Refused> {
        self.ask_holding(ask, None).await
    }

    /// [`Gateway::ask`] with a reply slot the adapter took already
    /// ([`Gateway::slot_for`], to say "busy" before its answer's head went
    /// out); without one, one is taken here.
    pub async fn ask_holding(
        self: &Arc<Self>,
        ask: Ask,
        slot: Option<SlotGuard>,
    ) -> Result<BoxStream<'static, ReplyEvent>, Refused> {
        let endpoint = ask.endpoint;
        let outcome = self.admit_ask(ask, slot).await;
        if let Err(refused) = &outcome {
            self.metrics.outcome(endpoint, refused.code.as_str());
        }
        outcome
    }

    async fn admit_ask(
        self: &Arc<Self>,
        ask: Ask,
        slot: Option<SlotGuard>,
    ) -> Result<BoxStream<'static, ReplyEvent>, Refused> {
        let admitted = {
            let book = self.book();
            let admitted = admit(&ask, &book);
            // A sleeping model server the asker may use is woken.
            if admitted.is_err()
                && let (Some(device), Some(mesh)) = (book.waking(&ask), self.router().mesh())
            {
                mesh.want(&device);
            }
            admitted
        };
        let Admission {
            selection,
            asker,
            account,
            route,
            assistant,
            household_tools,
            client_tools,
        } = admitted?;
        let Ask {
            caller,
            session,
            mut messages,
            instructions,
            max_tokens,
            temperature,
            sampling,
            tools,
            response_format,
            think,
            endpoint,
            arrived,
            limit,
            ..
        } = ask;
        let last = messages
            .pop()
            .expect("admitted: the conversation is not empty");
        // The household assistant answers a member who asks an agent.
        let assistant = match (assistant, &self.assistant, asker) {
            (true, Some(household), Some(asker)) => Some((Arc::clone(household), asker)),
            _ => None,
        };
        let speaking = {
            let agent = self
                .agents
                .get(&selection.agent)
                .cloned()
                .unwrap_or_default();
            let brought_system = messages.iter().any(|message| message.role == "system");
            let persona = [
                agent.persona.clone().filter(|_| !brought_system),
                instructions,
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n\n");
            crate::agents::Agent {
                persona: (!persona.is_empty()).then_some(persona),
                ..agent
            }
        };
        // What the model is sent: as much of the conversation as its window
        // leaves beside the reply ([`crate::context::fitting`]).
        let (context_window, most) = self.window(&speaking, max_tokens);
        let budget = context_window.saturating_sub(most) as usize;
        // With a session: its turns as stored, and where `history` starts
        // in them (what trimmed turns are noted from).
        let (history, save, stored) = match &session {
            Some(session) => {
                let (id, stored) = self
                    .sessions
                    .current(&session.channel, &session.owner)
                    .await
                    .map_err(|error| {
                        tracing::error!(%error, "session store failed");
                        Refused::new(ErrorCode::Internal, "the session store failed")
                    })?;
                // A session keeps every turn; only those that may be sent are read on.
                let (from, _) =
                    crate::context::fitting(speaking.persona.as_deref(), &stored, &last, budget);
                let history: Vec<Message> =
                    stored[from..].iter().cloned().chain(messages).collect();
                let save = (last.role == "user").then(|| (id, last.clone()));
                (history, save, Some((stored, from)))
            }
            None => (messages, None, None),
        };
        if limit == Limit::Address {
            self.admit_plain(caller.address)?;
        }
        // What the turn may use: its prompt, and the most it may generate.
        // A schema the reply is held to is sent to the model too (and costs
        // it a grammar's conversion): it counts with the prompt.
        let schema = response_format.as_ref().map_or(0, |format| {
            crate::context::estimate_text_tokens(&format.ollama_format().to_string())
        });
        let (_, prompt) =
            crate::context::fitting(speaking.persona.as_deref(), &history, &last, budget);
        let schema = u64::try_from(schema).unwrap_or(u64::MAX);
        let prompt = u64::try_from(prompt).unwrap_or(u64::MAX);
        let reservation = self
            .reserve(
                &account,
                prompt
                    .saturating_add(schema)
                    .saturating_add(u64::from(most)),
            )
            .await?;
        // What the turn uses is counted however it ends; its prompt as soon
        // as a model is asked (`Meter::charge_prompt`).
        let mut meter = Meter {
            who: account.who.clone(),
            leading: route
                .leading()
                .map_or_else(|| ASSISTANT_MODEL.to_owned(), ToString::to_string),
            model: None,
            prompt,
            schema,
            charged: false,
            deltas: 0,
            reservation: ReleaseOnDrop {
                gateway: Arc::clone(self),
                who: account.who.clone(),
                tokens: reservation.tokens,
            },
            counted: false,
        };
        let slot = match slot {
            Some(slot) => slot,
            None => self.take_slot(account.holder.clone())?,
        };
        let events = match assistant {
            Some((assistant, asker)) => {
                if last.role == "user"
                    && let Some(said) = assistant.intent(&asker, &last.content).await
                {
                    self.metrics.outcome(endpoint, "ok");
                    self.said(said, save)
                } else {
                    meter.charge_prompt().await;
                    // After a client's tool ran, the question is still its last one.
                    let question = std::iter::once(&last)
                        .chain(history.iter().rev())
                        .find(|message| message.role == "user")
                        .map(|message| message.content.clone())
                        .unwrap_or_default();
                    let budget = self.context_budget(&speaking);
                    let context = assistant.context(&asker, &question, budget).await;
                    let (mut request, kept) = self.request_with(
                        &speaking,
                        &history,
                        last,
                        max_tokens,
                        temperature,
                        context.system.as_deref(),
                    );
                    // The session's turns out of the model's window, counted
                    // from its first (as the note's mark is).
                    let dropped = stored.as_ref().map_or(0, |(stored, from)| {
                        (from + history.len().saturating_sub(kept)).min(stored.len())
                    });
                    if let (Some((id, _)), Some((stored, _)), true) = (&save, &stored, dropped > 0)
                    {
                        let (assistant, asker, id, stored) = (
                            Arc::clone(&assistant),
                            asker.clone(),
                            id.clone(),
                            Arc::clone(stored),
                        );
                        tokio::spawn(async move {
                            assistant.note_trimmed(&asker, &id, &stored, dropped).await;
                        });
                    }
                    // A reply held to a structure is the structure: the
                    // household's tools are not offered then (the model
                    // could not both call one and answer in the format).
                    request.tools = if response_format.is_some() {
                        tools.definitions()
                    } else {
                        crate::openai::merge_tools(household_tools, &tools)
                    };
                    request.tool_choice = tools.choice();
                    request.sampling = sampling;
                    request.response_format = response_format;
                    request.think = think;
                    self.assistant_turn(
                        request,
                        asker,
                        context.citations,
                        save,
                        route,
                        arrived,
                        endpoint,
                        client_tools,
                    )
                }
            }
            None => {
                let mut request = if session.is_some() {
                    self.request(&speaking, &history, last, max_tokens, temperature)
                } else {
                    // The caller brings the whole conversation: it is sent
                    // as it is, the persona first.
                    let mut request = self.request(
                        &crate::agents::Agent {
                            persona: None,
                            ..speaking.clone()
                        },
                        &[],
                        last.clone(),
                        max_tokens,
                        temperature,
                    );
                    request.messages = speaking
                        .persona
                        .iter()
                        .map(|text| Message::new("system", text.clone()))
                        .chain(history)
                        .chain(std::iter::once(last))
                        .collect();
                    request
                };
                request.tools = tools.definitions();
                request.tool_choice = tools.choice();
                request.sampling = sampling;
                request.response_format = response_format;
                request.think = think;
                meter.charge_prompt().await;
                self.open_turn(&request, arrived, endpoint, save, &route)
                    .await
            }
        };
        let watch = match (&self.mesh, &caller.device) {
            (Some(mesh), Some(device)) => Some(Watch {
                changes: mesh.subscribe(),
                address: caller.address,
                device: device.clone(),
            }),
            _ => None,
        };
        let streaming = Streaming {
            gateway: Arc::clone(self),
            events,
            meter,
            watch,
            _slot: slot,
            ended: false,
        };
        Ok(
            futures_util::stream::unfold(streaming, |mut streaming| async move {
                let event = streaming.next().await?;
                Some((event, streaming))
            })
            .boxed(),
        )
    }

    /// Embeddings of `inputs` for `caller`: from the embedding model the
    /// assistant uses (`memory.search`'s), also when none is named, or an
    /// agent's or a backend model as for chat; after the policy's access,
    /// from models the caller may use only.
    pub async fn embed(
        self: &Arc<Self>,
        caller: &Caller,
        model: Option<&str>,
        backend_model: Option<&str>,
        inputs: &[String],
        dimensions: Option<u32>,
    ) -> Result<(String, Vec<Vec<f64>>), Refused> {
        let named = model.map(str::trim).filter(|name| !name.is_empty());
        // The embedding model answers for itself, when none is named, and
        // for an agent (what apps pick first: its memory's embeddings).
        let embedding = match named {
            None => self.embedding_model(),
            Some(name) if matches!(self.agents.target(name), Some(Ok(_))) => self.embedding_model(),
            Some(name) => self.embedding_named(name),
        };
        let account = Account::of(caller, None);
        let _slot;
        let embedded = match &embedding {
            Some(embedding) => {
                let target = Target::Model(embedding.to_string());
                if !account.access.permits(&target) {
                    return Err(Refused::new(
                        ErrorCode::NotPermitted,
                        format!(
                            "{} may not use {embedding}: the household's policy (grants of hearth.example/cap/ai) lets them use {}",
                            account.who,
                            account.access.allowed()
                        ),
                    ));
                }
                _slot = self.take_slot(account.holder.clone())?;
                self.router
                    .embed_with(embedding, inputs)
                    .await
                    .map(|vectors| (embedding.to_string(), vectors))
            }
            None => {
                let selection = self.select(named, None, backend_model)?;
                let route = self.book().route(&account, &selection)?;
                _slot = self.take_slot(account.holder.clone())?;
                let allowed = Arc::clone(&route.allowed);
                self.router
                    .embed(route.first.as_ref(), inputs, dimensions, &move |model| {
                        allowed.contains(model)
                    })
                    .await
                    .map(|(model, vectors)| (model.to_string(), vectors))
            }
        };
        match embedded {
            Ok(embedded) => {
                self.metrics.outcome("embeddings", "ok");
                Ok(embedded)
            }
            Err(_) => {
                self.metrics.outcome("embeddings", "no_model");
                Err(Refused::new(
                    ErrorCode::NoModel,
                    "no model gave embeddings (a llama-server gives them when started with --embeddings --pooling mean)",
                ))
            }
        }
    }

    /// Whether the mesh still names `device` at `address`: `false` only on
    /// a clear answer that it does not (removed, expired, or another
    /// device there now); an agent that cannot be asked changes nothing.
    pub async fn still_named(
        &self,
        address: std::net::IpAddr,
        device: &hearth_control::agent_api::WhoIs,
    ) -> bool {
        let Some(mesh) = &self.mesh else {
            return true;
        };
        match hearth_control::agent_api::whois(mesh.socket(), address).await {
            Ok(now) => now.as_ref() == Some(device),
            Err(_) => true,
        }
    }

    /// A receiver of the mesh's changes, when the agent's feed is followed.
    pub fn mesh_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.mesh.as_ref().map(|mesh| mesh.subscribe())
    }
}

/// Tokens reserved for a turn.
#[derive(Default)]
struct Reservation {
    tokens: u64,
}

/// Gives a turn's reservation back (after its usage is counted).
struct ReleaseOnDrop {
    gateway: Arc<Gateway>,
    who: String,
    tokens: u64,
}

impl ReleaseOnDrop {
    async fn release(&mut self) {
        let tokens = std::mem::take(&mut self.tokens);
        if tokens > 0 {
            self.gateway
                .reservations
                .lock()
                .await
                .release(&self.who, tokens);
        }
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let tokens = std::mem::take(&mut self.tokens);
        if tokens == 0 {
            return;
        }
        let (gateway, who) = (Arc::clone(&self.gateway), self.who.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                gateway.reservations.lock().await.release(&who, tokens);
            });
        }
    }
}

/// What a reply used, counted however it ends: its prompt as soon as a
/// model is asked, so a request cut before the model's first word costs
/// what the model was given; the rest at its end, or when it was cut.
struct Meter {
    who: String,
    /// The model the turn starts with: the prompt is charged to it.
    leading: String,
    /// The model answering, once it said (`meta`).
    model: Option<String>,
    /// The prompt's estimated size.
    prompt: u64,
    /// The estimated size of the schema the reply is held to: sent to the
    /// model beside the prompt, and in no count a model gives.
    schema: u64,
    /// Whether the estimate was charged when the model was asked.
    charged: bool,
    deltas: u64,
    reservation: ReleaseOnDrop,
    counted: bool,
}

impl Meter {
    /// A model is about to be asked: its prompt is charged now, and the
    /// reservation gives back what it held for the prompt (under the
    /// reservations' lock, so no request sees it twice or not at all).
    async fn charge_prompt(&mut self) {
        if self.charged || self.counted {
            return;
        }
        self.charged = true;
        let charged = self.prompt.saturating_add(self.schema);
        let gateway = Arc::clone(&self.reservation.gateway);
        let mut reservations = gateway.reservations.lock().await;
        record(
            &gateway,
            &self.who,
            &self.leading,
            Charge {
                requests: 0,
                prompt_tokens: i64::try_from(charged).unwrap_or(i64::MAX),
                completion_tokens: 0,
            },
        )
        .await;
        let given_back = charged.min(self.reservation.tokens);
        self.reservation.tokens -= given_back;
        reservations.release(&self.who, given_back);
    }

    /// Follows `event`: at the reply's end, its counts are added to the
    /// usage before the end is passed on (the next request sees them).
    async fn see(&mut self, event: &ReplyEvent) {
        match event {
            ReplyEvent::Meta { model, .. } => self.model = Some(model.clone()),
            ReplyEvent::Delta { .. } => self.deltas += 1,
            ReplyEvent::Done { usage, .. } => {
                // Without the model's counts: the estimate, when a model
                // was given the prompt at all.
                let counts = usage.unwrap_or(ReplyUsage {
                    prompt_tokens: if self.charged { self.prompt } else { 0 },
                    completion_tokens: self.deltas,
                });
                self.count(counts).await;
            }
            // No model answered at all (none could be reached, each
            // refused): the prompt charged when it was asked is given back
            // (what a schema weighs stays). A member pays for what a model
            // began, not for the household's backends being down.
            ReplyEvent::Error { .. } if self.model.is_none() => {
                let nothing = ReplyUsage {
                    prompt_tokens: 0,
                    completion_tokens: 0,
                };
                self.count(nothing).await;
            }
            ReplyEvent::Error { .. } => self.cut().await,
            _ => {}
        }
    }

    /// A reply that ended before its end: what the model was given and
    /// what came of it.
    async fn cut(&mut self) {
        let counts = self.cut_counts();
        self.count(counts).await;
    }

    fn cut_counts(&self) -> ReplyUsage {
        ReplyUsage {
            prompt_tokens: self.prompt,
            completion_tokens: self.deltas,
        }
    }

    /// What is still to be added for `counts`, and under which model.
    fn charge(&self, counts: ReplyUsage) -> Option<(String, Charge)> {
        let model = self
            .model
            .clone()
            .or_else(|| self.charged.then(|| self.leading.clone()))?;
        let signed = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        let already = if self.charged {
            self.prompt.saturating_add(self.schema)
        } else {
            0
        };
        let prompt = signed(counts.prompt_tokens.saturating_add(self.schema)) - signed(already);
        Some((
            model,
            Charge {
                requests: 1,
                prompt_tokens: prompt,
                completion_tokens: counts.completion_tokens,
            },
        ))
    }

    async fn count(&mut self, counts: ReplyUsage) {
        if self.counted {
            return;
        }
        self.counted = true;
        if let Some((model, charge)) = self.charge(counts) {
            record(&self.reservation.gateway, &self.who, &model, charge).await;
        }
        self.reservation.release().await;
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if self.counted {
            return;
        }
        // Dropped before its end (the client went away): counted in a
        // task of its own, the reservation given back after.
        let Some((model, charge)) = self.charge(self.cut_counts()) else {
            return;
        };
        let gateway = Arc::clone(&self.reservation.gateway);
        let reservation = ReleaseOnDrop {
            gateway: Arc::clone(&gateway),
            who: self.who.clone(),
            tokens: std::mem::take(&mut self.reservation.tokens),
        };
        let who = self.who.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut reservation = reservation;
                record(&gateway, &who, &model, charge).await;
                reservation.release().await;
            });
        }
    }
}

/// Tokens and requests added to a member's usage at once.
#[derive(Clone, Copy, Debug)]
struct Charge {
    requests: u64,
    /// Signed: the model's own count may be below the estimate charged.
    prompt_tokens: i64,
    completion_tokens: u64,
}

async fn record(gateway: &Gateway, who: &str, model: &str, charge: Charge) {
    let day = crate::usage::day_of(hearth_runtime::clock::unix_seconds());
    if let Err(error) = gateway
        .usage
        .record(
            &day,
            who,
            model,
            crate::usage::Added {
                requests: charge.requests,
                prompt_tokens: charge.prompt_tokens,
                completion_tokens: charge.completion_tokens,
            },
        )
        .await
    {
        tracing::error!(%error, "usage was not recorded");
    }
}

/// The mesh's word on the device a reply was asked from.
struct Watch {
    changes: tokio::sync::watch::Receiver<u64>,
    address: std::net::IpAddr,
    device: hearth_control::agent_api::WhoIs,
}

/// A reply on its way: its events counted, its slot held, ended if the
/// device it was asked from is no longer what the mesh names there.
struct Streaming {
    gateway: Arc<Gateway>,
    events: BoxStream<'static, ReplyEvent>,
    meter: Meter,
    watch: Option<Watch>,
    _slot: SlotGuard,
    ended: bool,
}

impl Streaming {
    async fn next(&mut self) -> Option<ReplyEvent> {
        if self.ended {
            return None;
        }
        let event = loop {
            let Some(watch) = &mut self.watch else {
                break self.events.next().await;
            };
            tokio::select! {
                event = self.events.next() => break event,
                changed = watch.changes.changed() => {
                    if changed.is_err() {
                        self.watch = None;
                        continue;
                    }
                    if !self.gateway.still_named(watch.address, &watch.device).await {
                        tracing::info!(address = %watch.address, "the device a reply streams to left the mesh; ending it");
                        self.ended = true;
                        self.meter.cut().await;
                        return Some(ReplyEvent::Error {
                            code: ErrorCode::Unauthenticated,
                            message: "the device this reply was asked from is no longer the one the mesh names at its address".into(),
                        });
                    }
                }
            }
        };
        let Some(event) = event else {
            self.ended = true;
            self.meter.cut().await;
            return None;
        };
        self.meter.see(&event).await;
        if matches!(event, ReplyEvent::Done { .. } | ReplyEvent::Error { .. }) {
            self.ended = true;
        }
        Some(event)
    }
}
