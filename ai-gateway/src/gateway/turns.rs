//! A turn's reply, once [`super::ask`] admitted it: the backend request
//! built (persona, history fitted to the model's context, the assistant's
//! context), the models asked along the route the caller may use, the
//! events streamed and the exchange kept; the household assistant's tool
//! rounds ([`crate::conversation::Conversation`] decides them).

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hearth_e2ee::{ErrorCode, ReplyEvent, ReplyUsage};
use hearth_llm::{ChatRequest, Message, ModelRef, RouteError, StreamEvent};

use super::{Gateway, failure};

/// The model usage is counted under when none was asked (the household
/// assistant answered an everyday request itself).
pub(super) const ASSISTANT_MODEL: &str = "hearth/assistant";
use crate::agents::Agent;
use crate::assistant::Said;
use crate::context;
use crate::conversation::{Conversation, RoundEnd, shown_tool_name};

/// Which models a turn may try, and which first.
#[derive(Clone, Debug)]
pub struct Route {
    /// The model tried before the rest (asked for by name, or the agent's own).
    pub first: Option<ModelRef>,
    /// The models of the chain the caller may use, in the chain's order:
    /// no other is asked, a fallback included.
    pub allowed: Arc<Vec<ModelRef>>,
}

impl Route {
    /// The model a reply on this route starts with when all are well.
    pub fn leading(&self) -> Option<&ModelRef> {
        self.first
            .as_ref()
            .filter(|first| self.allowed.contains(first))
            .or_else(|| self.allowed.first())
    }

    /// The same models, none first (a later round of a turn).
    fn again(&self) -> Route {
        Route {
            first: None,
            allowed: Arc::clone(&self.allowed),
        }
    }
}

/// One event, as a stream.
pub(crate) fn single(event: ReplyEvent) -> BoxStream<'static, ReplyEvent> {
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

impl Gateway {
    /// Asks the models on `route` for `request` and returns the reply's
    /// events: `meta` (once the first token is in), `delta`s, then `done`
    /// or `error`. With `save`, the exchange is appended to that session
    /// when it completes.
    pub(super) async fn open_turn(
        self: &Arc<Self>,
        request: &ChatRequest,
        arrived: Instant,
        endpoint: &'static str,
        save: Option<(String, Message)>,
        route: &Route,
    ) -> BoxStream<'static, ReplyEvent> {
        let allowed = Arc::clone(&route.allowed);
        let opened = self
            .router
            .open_within(request, route.first.as_ref(), &move |model| {
                allowed.contains(model)
            })
            .await;
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
        };
        let rest = futures_util::stream::unfold(turn, |mut turn| async move {
            let event = turn.next().await?;
            Some((event, turn))
        });
        futures_util::stream::once(async move { meta })
            .chain(rest)
            .boxed()
    }

    /// The backend request for `agent`: its persona, history fitted to
    /// the context of the model it starts with, the new message, capped
    /// generation length.
    pub(super) fn request(
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
    pub(super) fn request_with(
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

    /// Tokens (as [`context::estimate_text_tokens`] counts them) of the
    /// assistant's context (memory, passages) a turn of `agent` may carry:
    /// a third of what the model's context leaves after its reply, so
    /// history still fits.
    pub(super) fn context_budget(&self, agent: &Agent) -> usize {
        let (context_window, max_tokens) = self.window(agent, None);
        context_window.saturating_sub(max_tokens) as usize / 3
    }

    /// The context window of the model `agent` starts with, and the most
    /// tokens a reply gets (`asked`, capped by the model and the limits).
    pub(super) fn window(&self, agent: &Agent, asked: Option<u32>) -> (u32, u32) {
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
    pub(super) fn said(
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
            model: ASSISTANT_MODEL.into(),
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
    pub(super) fn assistant_turn(
        self: &Arc<Self>,
        request: ChatRequest,
        asker: hearth_assistant::scope::Asker,
        mut citations: Vec<String>,
        save: Option<(String, Message)>,
        route: Route,
        arrived: Instant,
        endpoint: &'static str,
        client_tools: Vec<String>,
    ) -> BoxStream<'static, ReplyEvent> {
        let Some(assistant) = self.assistant.clone() else {
            return single(failure(ErrorCode::Internal));
        };
        let gateway = Arc::clone(self);
        let (sender, receiver) = tokio::sync::mpsc::channel::<ReplyEvent>(64);
        tokio::spawn(async move {
            let mut route = Some(route);
            let later = route.as_ref().map(Route::again);
            let session = save.as_ref().map(|(session, _)| session.clone());
            // The sources are named in the language the member asked in.
            let question = request
                .messages
                .iter()
                .rev()
                .find(|message| message.role == "user")
                .map(|message| message.content.clone())
                .unwrap_or_default();
            let language = assistant.language_for(&asker, &question);
            let mut turn = Conversation::new(request, session).with_client_tools(client_tools);
            loop {
                let this_route = route
                    .take()
                    .or_else(|| later.clone())
                    .expect("a route was given");
                let mut events = gateway
                    .open_turn(turn.start_round(), arrived, endpoint, None, &this_route)
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
                        if let Some(footer) = assistant.sources(&citations, language) {
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
}
