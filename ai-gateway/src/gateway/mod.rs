//! The running gateway: its state (keys, replay window, sessions, the
//! models, the assistant) and what comes before a conversation — admitting
//! an encrypted request, every check before any backend is called
//! ([`Gateway::precheck`], [`Gateway::admit_checked`]). The conversation
//! every API shares is [`ask`]; a turn's reply is [`turns`].

mod admit;
mod ask;
mod refused;
mod speech;
mod turns;

pub use admit::{
    Ask, Limit, MAX_IMAGES, NO_VISION, PictureRefused, Selection, Session, check_images,
};
pub use ask::SlotGuard;
pub use refused::Refused;
pub use speech::{Heard, Hearing, Speech, max_upload, too_large};
pub use turns::Route;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hearth_e2ee::envelope::{SUITE, b64, check_shape, open_request_with};
use hearth_e2ee::{ChatEnvelope, ChunkSealer, ErrorCode, PublishedKey, ReplayWindow, ReplyEvent};
use hearth_llm::{Message, ModelRef, Router};
use serde::Serialize;

use crate::agents::{Agent, Agents};
use crate::assistant::{Answerer, Assistant, NotAnswered};
use crate::config::Config;
use crate::journal::Journal;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::sessions::Sessions;

/// `GET /api/pubkey`.
#[derive(Clone, Debug, Serialize)]
pub struct PubkeyAnswer {
    /// The HPKE suite and mode.
    pub suite: &'static str,
    /// The current key and the next one.
    pub keys: Vec<PublishedKey>,
}

/// An encrypted request that passed every check: decrypted, fresh, within
/// its device's rate.
pub struct Admitted {
    /// The request's plaintext (a chat or an assistant API request).
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    /// The device's key (base64): its sessions are its own.
    pub peer: String,
    /// Seals the reply to that device.
    pub sealer: ChunkSealer,
    /// When the request arrived.
    pub arrived: Instant,
}

/// An encrypted request whose cheap checks passed: the one to decrypt it with.
pub struct Plausible {
    key: Arc<hearth_e2ee::receiver::Receiver>,
    arrived: Instant,
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

/// The running gateway.
pub struct Gateway {
    config: Config,
    router: Arc<Router>,
    metrics: Metrics,
    keys: KeyStore,
    replay: Mutex<Replay>,
    sessions: Sessions,
    /// Tokens used, per day, caller and model.
    usage: crate::usage::Usage,
    /// Tokens promised to replies still streaming.
    reservations: tokio::sync::Mutex<crate::access::Reservations>,
    agents: Agents,
    /// The models replies fail over along (the router's chain also has
    /// the models only asked by name).
    failover: Vec<ModelRef>,
    assistant: Option<Arc<Assistant>>,
    device_limiter: DefaultKeyedRateLimiter<[u8; 32]>,
    caller_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
    slots: Mutex<crate::slots::Slots>,
    /// The mesh's changes, when callers are identified through the agent.
    mesh: Option<Arc<hearth_control::agent_api::Changes>>,
    /// Speech recognition on the hub, when configured.
    speech: Option<speech::Speech>,
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
        let failover = config
            .failover_chain()
            .iter()
            .map(|name| ModelRef::parse(name))
            .collect::<Result<Vec<_>, _>>()?;
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
            slots: Mutex::new(crate::slots::Slots::new(limits.max_concurrent_streams)),
            reservations: tokio::sync::Mutex::default(),
            mesh: config
                .hearth
                .agent_socket
                .clone()
                .map(|socket| Arc::new(hearth_control::agent_api::Changes::new(socket))),
            replay: Mutex::new(Replay { window, journal }),
            speech: config.hearth.speech.clone().map(speech::Speech::new),
            metrics: Metrics::default(),
            router,
            keys,
            usage: crate::usage::Usage::new(sessions.pool().clone()),
            sessions,
            agents,
            failover,
            assistant,
            config,
        }))
    }

    /// Starts the background work: following the mesh's changes (so that
    /// replies and connections outlive no device), and the assistant's (the
    /// scheduler, which asks this gateway scheduled questions; the document
    /// indexer).
    pub fn spawn_background(self: &Arc<Self>) {
        if let Some(mesh) = &self.mesh {
            let changes = Arc::clone(mesh);
            tokio::spawn(async move { changes.follow().await });
            if let (Some(models), Some(servers)) =
                (self.router.mesh(), &self.config.hearth.model_servers)
            {
                // No device may take a configured provider's name, nor the pool's.
                let reserved = self
                    .config
                    .models
                    .providers
                    .keys()
                    .cloned()
                    .chain([servers.pool()])
                    .collect();
                tokio::spawn(crate::model_servers::follow(
                    Arc::clone(mesh),
                    Arc::clone(models),
                    servers.clone(),
                    Duration::from_secs(self.config.hearth.connect_timeout_seconds.max(1)),
                    reserved,
                ));
            }
        }
        let Some(assistant) = &self.assistant else {
            return;
        };
        assistant.spawn(Arc::new(ScheduledQuestions {
            gateway: Arc::downgrade(self),
        }));
    }

    /// Probes the models' endpoints every `period` until the task is aborted.
    pub fn spawn_health_checks(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        self.router.spawn_health_checks(period)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model router (readiness, health, endpoints' status).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The agents (personas) callers can address.
    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    /// The household assistant (memory, reminders, documents, tools), when on.
    pub fn assistant(&self) -> Option<&Arc<Assistant>> {
        self.assistant.as_ref()
    }

    /// Tokens used, per day, caller and model.
    pub fn usage(&self) -> &crate::usage::Usage {
        &self.usage
    }

    /// `asker` (of a question asked again later) with the grants the mesh
    /// gives their device now ([`hearth_assistant::scope::Asker::regranted`]),
    /// asked of this node's agent.
    /// The AI capability (model access, budget) is the exception: while no
    /// device of the member's answers for them it stays the one the
    /// question was asked with, never none (which would be everything).
    async fn with_current_grants(
        &self,
        asker: hearth_assistant::scope::Asker,
    ) -> hearth_assistant::scope::Asker {
        use crate::access::AI_CAPABILITY;
        let asked_with = asker.capabilities.get(AI_CAPABILITY).cloned();
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
        let members_now = now
            .as_ref()
            .is_some_and(|device| device.member == asker.member && !device.tagged);
        let mut regranted = asker.regranted(now);
        if !members_now && let Some(grant) = asked_with {
            regranted
                .capabilities
                .insert(AI_CAPABILITY.to_owned(), grant);
        }
        regranted
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
    ) -> Result<Plausible, Refused> {
        check_shape(envelope)?;
        // Checked again, with memory, in part two; this spares the decryption.
        hearth_runtime::lock(&self.replay)
            .window
            .check_skew(envelope.timestamp, now)?;
        let key = self
            .keys
            .accepted(&envelope.key_id, now)
            .ok_or_else(|| Refused::unknown_key(&envelope.key_id))?;
        Ok(Plausible { key, arrived })
    }

    /// Admission, part two, after [`Gateway::precheck`]: decryption (which
    /// authenticates the device), replay, device rate, capacity.
    pub fn admit_checked(
        &self,
        envelope: &ChatEnvelope,
        plausible: Plausible,
        now: i64,
    ) -> Result<Admitted, Refused> {
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
            .map_err(|_| Refused::rate_limited())?;
        Ok(Admitted {
            plaintext: opened.plaintext,
            peer: b64(&opened.device_key),
            sealer: opened.sealer,
            arrived,
        })
    }

    /// Admission on the OpenAI-compatible and Ollama APIs, which have no
    /// device key: the caller's address within the same per-device rate.
    pub fn admit_plain(&self, caller: std::net::IpAddr) -> Result<(), Refused> {
        self.caller_limiter
            .check_key(&caller.to_canonical())
            .map_err(|_| Refused::rate_limited())
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
        self.book().models()
    }

    /// What admission decides with: the agents and models as they are now
    /// ([`admit::Book`]).
    pub(crate) fn book(&self) -> admit::Book<'_> {
        admit::Book {
            agents: &self.agents,
            chain: self.router.chain(),
            discovered: self.router.mesh_models(),
            away: self.router.away(),
            wakeable: self.wakeable(),
            failover: &self.failover,
            embedding: self.embedding_model(),
            abilities: self.router.as_ref(),
            assistant: self
                .assistant
                .as_deref()
                .map(|assistant| assistant as &dyn admit::Household),
        }
    }

    /// The devices the hub may wake (`hearth.modelServers.wake`) that are
    /// not on the mesh now.
    fn wakeable(&self) -> Vec<String> {
        let (Some(servers), Some(mesh)) = (&self.config.hearth.model_servers, self.router.mesh())
        else {
            return Vec::new();
        };
        let here = mesh.devices();
        servers
            .wake
            .keys()
            .filter(|device| !here.contains(device))
            .cloned()
            .collect()
    }

    /// What `id` (an agent, a chat model or the embedding model) can do, in
    /// Ollama's words (`/api/show`'s `capabilities`): the embedding model
    /// only `embedding`; a chat model (an agent's: the model it starts
    /// with) `completion`, with `tools`, `vision` and `thinking` as its
    /// model server says (llama.cpp's `/props`, Ollama's `/api/show`; a
    /// server that does not say is taken to render tools, and to read no
    /// images and think not).
    pub fn capabilities(&self, id: &str) -> Vec<&'static str> {
        if self.embedding_named(id).is_some() {
            return vec!["embedding"];
        }
        let model = match self.agents.target(id) {
            Some(Ok(agent)) => self.agents.get(agent).and_then(|found| found.model.clone()),
            _ => ModelRef::parse(id).ok(),
        };
        let mut capabilities = vec!["completion"];
        if self.router.takes_tools(model.as_ref()) {
            capabilities.push("tools");
        }
        if self.router.reads_images(model.as_ref()) {
            capabilities.push("vision");
        }
        if self.router.thinks(model.as_ref()) {
            capabilities.push("thinking");
        }
        capabilities
    }

    /// The embedding model, when `name` names it (`provider/model`, or its
    /// bare model id).
    pub fn embedding_named(&self, name: &str) -> Option<ModelRef> {
        self.book().embedding_named(name)
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
        self.book().model_named(name)
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
/// a turn like any other ([`Gateway::ask`]), asked for the member with the
/// grants the mesh gives their device when it runs: their model access and
/// budget hold, and what it uses is counted. It holds the gateway weakly:
/// the assistant it is handed to is the gateway's.
struct ScheduledQuestions {
    gateway: std::sync::Weak<Gateway>,
}

impl Answerer for ScheduledQuestions {
    fn answer(
        &self,
        asker: hearth_assistant::scope::Asker,
        question: String,
    ) -> futures_util::future::BoxFuture<'static, Result<String, NotAnswered>> {
        use futures_util::StreamExt as _;
        let gateway = self.gateway.clone();
        Box::pin(async move {
            let gateway = gateway.upgrade().ok_or(NotAnswered::NoModel)?;
            let asker = gateway.with_current_grants(asker).await;
            let ask = Ask {
                on_behalf_of: Some(asker),
                ..Ask::new(
                    crate::caller::Caller::scheduler(),
                    vec![Message::new("user", question)],
                    "scheduled",
                )
            };
            let mut events = gateway
                .ask(ask)
                .await
                .map_err(|refused| NotAnswered::Refused(refused.message))?;
            let mut text = String::new();
            while let Some(event) = events.next().await {
                match event {
                    ReplyEvent::Delta { text: more } => text.push_str(&more),
                    ReplyEvent::Error { .. } => return Err(NotAnswered::NoModel),
                    ReplyEvent::Done { .. } => return Ok(text),
                    _ => {}
                }
            }
            Err(NotAnswered::NoModel)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_go_to_a_model_only_when_one_reads_them_and_only_as_pictures() {
        let png = "data:image/png;base64,iVBORw0KGgo=".to_owned();
        assert_eq!(check_images(std::slice::from_ref(&png), true), Ok(()));
        assert_eq!(
            check_images(std::slice::from_ref(&png), false),
            Err(PictureRefused::NoVision)
        );
        assert_eq!(PictureRefused::NoVision.to_string(), NO_VISION);
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
