//! The model router: a primary model and ordered fallbacks, each served by a
//! provider with one or more endpoints in rotation.
//!
//! [`Router::open`] tries models in order (resting backends last) until one
//! produces its first event, applying the connect, first-token and idle
//! timeouts; the decision to move on is [`crate::failover::verdict`]'s. A
//! background task probes endpoints so that an unhealthy one rejoins the
//! rotation when it answers again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::backend::Backend;
use crate::chat::{BackendError, ChatRequest, EventStream, StreamEvent};
use crate::endpoint::SetupError;
use crate::endpoint::{Api, Endpoint};
use crate::failover::{Cooldowns, Verdict, endpoint_unhealthy, verdict};
use crate::mesh::MeshModels;
pub use crate::model_ref::ModelRef;

/// A provider as configured.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Its id (the part before `/` in model refs).
    pub id: String,
    /// The API it speaks.
    pub api: Api,
    /// Its endpoints, tried in rotation.
    pub endpoints: Vec<String>,
    /// How long to wait for the first token, and between tokens.
    pub timeout: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

/// An endpoint of a kind this crate does not implement (a remote
/// provider's): how to ask it, and the address its health is checked at.
pub struct RemoteEndpoint {
    /// How to ask it.
    pub backend: Arc<dyn Backend>,
    /// Where it is reached (an [`Endpoint`] address).
    pub address: String,
}

/// Makes the [`RemoteEndpoint`] for an endpoint address of a provider whose
/// API this crate does not implement.
pub type Remotes<'a> = &'a dyn Fn(&str, &ProviderConfig) -> Result<RemoteEndpoint, SetupError>;

struct EndpointState {
    endpoint: Endpoint,
    healthy: AtomicBool,
    backend: Arc<dyn Backend>,
    /// What its models can do, once the server said: llama.cpp's for the
    /// one model it serves (under ""), Ollama's per model (forgotten when
    /// it goes down: it may come back with other models).
    caps: std::sync::Mutex<HashMap<String, crate::openai::TemplateCaps>>,
}

struct Provider {
    config: ProviderConfig,
    endpoints: Vec<EndpointState>,
    next: AtomicUsize,
}

impl Provider {
    /// Endpoint indices in the order to try: healthy ones from the rotation
    /// point; if none is healthy, all of them (health may be stale).
    fn rotation(&self) -> Vec<usize> {
        self.rotation_from(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The endpoint the next [`Provider::rotation`] will start with.
    fn next_in_rotation(&self) -> Option<usize> {
        self.rotation_from(self.next.load(Ordering::Relaxed))
            .first()
            .copied()
    }

    fn rotation_from(&self, start: usize) -> Vec<usize> {
        let count = self.endpoints.len();
        let all: Vec<usize> = (0..count).map(|offset| (start + offset) % count).collect();
        let healthy: Vec<usize> = all
            .iter()
            .copied()
            .filter(|index| self.endpoints[*index].healthy.load(Ordering::Relaxed))
            .collect();
        if healthy.is_empty() { all } else { healthy }
    }
}

/// One failed try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The model tried.
    pub model: String,
    /// The endpoint tried.
    pub endpoint: String,
    /// What went wrong.
    pub error: BackendError,
}

/// Why no model answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// An error that failing over cannot help (e.g. a context overflow).
    #[error("{error}")]
    Stopped {
        /// The error.
        error: BackendError,
        /// Tries before it.
        attempts: Vec<Attempt>,
    },
    /// Every model failed.
    #[error("no model could answer: {}", describe(.0))]
    Exhausted(Vec<Attempt>),
}

fn describe(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|attempt| format!("{} ({})", attempt.model, attempt.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A reply that has started: the model that answered and its events (the
/// first one included).
pub struct Opened {
    /// The model answering.
    pub model: ModelRef,
    /// Its events; idle gaps longer than the provider timeout end it with
    /// [`BackendError::IdleTimeout`]. A failure after the first event ends
    /// the stream: output has reached the user, so no other model takes over
    /// ([`crate::failover::verdict`]).
    pub events: EventStream,
    /// Failed tries before it.
    pub attempts: Vec<Attempt>,
}

/// Health and rest of one endpoint, for `/health` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Provider id.
    pub provider: String,
    /// Endpoint as configured.
    pub endpoint: String,
    /// Whether it answered its last probe or request.
    pub healthy: bool,
    /// Seconds its provider still rests after failures.
    pub cooldown_seconds: u64,
}

/// The router.
pub struct Router {
    providers: HashMap<String, Provider>,
    chain: Vec<ModelRef>,
    /// The model servers found on the mesh, when the gateway looks for them.
    mesh: Option<Arc<MeshModels>>,
    cooldowns: Mutex<Cooldowns>,
    origin: Instant,
}

impl Router {
    /// A router over `providers`, trying `chain` (primary first). An empty
    /// chain answers nothing and is never ready: a gateway with no model
    /// configured still starts, and says so.
    pub fn new(providers: Vec<ProviderConfig>, chain: Vec<ModelRef>) -> Result<Router, SetupError> {
        Router::with_remote(providers, chain, &|_, config| {
            Err(SetupError::Unsupported {
                provider: config.id.clone(),
                api: config.api,
            })
        })
    }

    /// [`Router::new`], with `remote` making the endpoints of providers
    /// whose API this crate does not implement (`hearth-enclave`).
    pub fn with_remote(
        providers: Vec<ProviderConfig>,
        chain: Vec<ModelRef>,
        remote: Remotes<'_>,
    ) -> Result<Router, SetupError> {
        Router::with_mesh(providers, chain, remote, None)
    }

    /// [`Router::with_remote`], with the model servers found on the mesh:
    /// a model of the chain may then name a device (or the pool) instead of
    /// a configured provider, and is asked there while it is on the mesh.
    pub fn with_mesh(
        providers: Vec<ProviderConfig>,
        chain: Vec<ModelRef>,
        remote: Remotes<'_>,
        mesh: Option<Arc<MeshModels>>,
    ) -> Result<Router, SetupError> {
        let mut built = HashMap::new();
        for config in providers {
            if config.endpoints.is_empty() {
                return Err(SetupError::NoBaseUrl(config.id.clone()));
            }
            let endpoints = config
                .endpoints
                .iter()
                .map(|text| {
                    let (backend, reached): (Arc<dyn Backend>, String) = match config.api {
                        Api::OpenAiCompletions => {
                            (Arc::new(crate::backend::OpenAiCompletions), text.clone())
                        }
                        Api::Ollama => (Arc::new(crate::backend::Ollama), text.clone()),
                        Api::HearthEnclave => {
                            let made = remote(text, &config)?;
                            (made.backend, made.address)
                        }
                    };
                    Ok(EndpointState {
                        endpoint: Endpoint::parse(&reached, config.api, config.connect_timeout)?,
                        healthy: AtomicBool::new(true),
                        backend,
                        caps: std::sync::Mutex::default(),
                    })
                })
                .collect::<Result<Vec<_>, SetupError>>()?;
            built.insert(
                config.id.clone(),
                Provider {
                    config,
                    endpoints,
                    next: AtomicUsize::new(0),
                },
            );
        }
        for model in chain.iter().filter(|_| mesh.is_none()) {
            if !built.contains_key(&model.provider) {
                return Err(SetupError::UnknownProvider {
                    model: model.to_string(),
                    provider: model.provider.clone(),
                });
            }
        }
        Ok(Router {
            providers: built,
            chain,
            mesh,
            cooldowns: Mutex::new(Cooldowns::default()),
            origin: Instant::now(),
        })
    }

    /// The configured chain, primary first.
    pub fn chain(&self) -> &[ModelRef] {
        &self.chain
    }

    /// The model servers found on the mesh, when they are looked for.
    pub fn mesh(&self) -> Option<&Arc<MeshModels>> {
        self.mesh.as_ref()
    }

    /// The models of the chain on mesh servers that are not there now
    /// (asleep, off): not listed, failed over at once.
    pub fn away(&self) -> Vec<ModelRef> {
        let Some(mesh) = &self.mesh else {
            return Vec::new();
        };
        self.chain
            .iter()
            .filter(|model| !self.providers.contains_key(&model.provider))
            .filter(|model| mesh.servers_for(model).is_empty())
            .cloned()
            .collect()
    }

    /// The models of the mesh's servers that can be asked now (none when
    /// they are not looked for).
    pub fn mesh_models(&self) -> Vec<ModelRef> {
        self.mesh
            .as_ref()
            .map(|mesh| mesh.listed())
            .unwrap_or_default()
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn cooldowns(&self) -> std::sync::MutexGuard<'_, Cooldowns> {
        hearth_runtime::lock(&self.cooldowns)
    }

    /// Models in the order to try: resting backends last; `first` (an index
    /// of the chain a caller asked for by name) before all.
    fn order(&self, first: Option<usize>) -> Vec<usize> {
        let providers: Vec<&str> = self
            .chain
            .iter()
            .map(|model| model.provider.as_str())
            .collect();
        let mut order = self.cooldowns().order(&providers, self.now());
        if let Some(first) = first
            && let Some(position) = order.iter().position(|index| *index == first)
        {
            order.remove(position);
            order.insert(0, first);
        }
        order
    }

    /// Starts connecting to the endpoint a request would try first, for
    /// a request on its way: the connection is made while the caller still
    /// decrypts and checks it, and [`Router::open`] then finds it there.
    /// Only backends a fresh connection helps ([`Backend::opens_ahead`]: the
    /// local llama-server), and only when no kept connection is ready. One
    /// left unused (the request was refused) is closed within a few seconds
    /// ([`crate::link`]) without a byte sent. True when one was started.
    pub fn prepare(&self) -> bool {
        let Some(first) = self.order(None).first().copied() else {
            return false;
        };
        let Some(provider) = self.providers.get(&self.chain[first].provider) else {
            return false;
        };
        let Some(endpoint) = provider.next_in_rotation() else {
            return false;
        };
        let state = &provider.endpoints[endpoint];
        state.backend.opens_ahead() && state.endpoint.prepare()
    }

    /// Starts a reply to `request` from the first model that can give one.
    pub async fn open(&self, request: &ChatRequest) -> Result<Opened, RouteError> {
        self.open_within(request, None, &|_| true).await
    }

    /// [`Router::open`], trying `model` (a model of the chain) first, then
    /// the rest of the chain as usual.
    pub async fn open_starting_with(
        &self,
        request: &ChatRequest,
        model: &ModelRef,
    ) -> Result<Opened, RouteError> {
        self.open_within(request, Some(model), &|_| true).await
    }

    /// [`Router::open`] over the models of the chain `allowed` accepts only
    /// (those a caller may use: a fallback is never another), trying
    /// `first` before the rest. No model allowed is [`RouteError::Exhausted`]
    /// with no attempt.
    pub async fn open_within(
        &self,
        request: &ChatRequest,
        first: Option<&ModelRef>,
        allowed: &(dyn Fn(&ModelRef) -> bool + Sync),
    ) -> Result<Opened, RouteError> {
        let in_chain =
            first.and_then(|model| self.chain.iter().position(|chained| chained == model));
        let mut models: Vec<&ModelRef> = self
            .order(in_chain)
            .into_iter()
            .map(|index| &self.chain[index])
            .collect();
        // A mesh model asked for by name that is not in the chain.
        if let (Some(first), None, Some(mesh)) = (first, in_chain, &self.mesh)
            && !self.providers.contains_key(&first.provider)
            && mesh.names(first)
        {
            models.insert(0, first);
        }
        let mut attempts = Vec::new();
        for model in models {
            if !allowed(model) {
                continue;
            }
            let Some(provider) = self.providers.get(&model.provider) else {
                // Not configured: a device's (the chain allows it only
                // when the mesh's servers are looked for).
                let Some(mesh) = &self.mesh else {
                    continue;
                };
                match open_on_mesh(mesh, model, request, &mut attempts).await {
                    Ok(Some(opened)) => return Ok(opened),
                    Ok(None) => continue,
                    Err(error) => return Err(RouteError::Stopped { error, attempts }),
                }
            };
            let mut rest_backend = false;
            for endpoint_index in provider.rotation() {
                let state = &provider.endpoints[endpoint_index];
                let answering = attempt(
                    provider.config.timeout,
                    &state.endpoint,
                    state.backend.as_ref(),
                    &model.model,
                    request,
                );
                match answering.await {
                    Ok(events) => {
                        self.cooldowns().succeed(&model.provider);
                        state.healthy.store(true, Ordering::Relaxed);
                        return Ok(Opened {
                            model: model.clone(),
                            events: after_output(events, model.clone()),
                            attempts,
                        });
                    }
                    Err(error) => {
                        tracing::warn!(model = %model, endpoint = %state.endpoint.label, error = %error.summary(), "model attempt failed");
                        if endpoint_unhealthy(&error) {
                            state.healthy.store(false, Ordering::Relaxed);
                        }
                        let decision = verdict(&error, false);
                        attempts.push(Attempt {
                            model: model.to_string(),
                            endpoint: state.endpoint.label.clone(),
                            error: error.clone(),
                        });
                        match decision {
                            Verdict::Stop => return Err(RouteError::Stopped { error, attempts }),
                            Verdict::FailOver { cool_down } => rest_backend |= cool_down,
                        }
                    }
                }
            }
            if rest_backend {
                let rest = self.cooldowns().fail(&model.provider, self.now());
                tracing::info!(provider = %model.provider, seconds = rest.as_secs(), "backend rests after failures");
            }
        }
        Err(RouteError::Exhausted(attempts))
    }

    /// Embeddings of `inputs` from the first model that gives them, trying
    /// `first` (a model of the chain) before the rest of the chain; the
    /// model that answered. Only models `allowed` accepts are asked.
    pub async fn embed(
        &self,
        first: Option<&ModelRef>,
        inputs: &[String],
        dimensions: Option<u32>,
        allowed: &(dyn Fn(&ModelRef) -> bool + Sync),
    ) -> Result<(ModelRef, Vec<Vec<f64>>), RouteError> {
        let first = first.and_then(|model| self.chain.iter().position(|chained| chained == model));
        let mut attempts = Vec::new();
        for index in self.order(first) {
            let model = &self.chain[index];
            if !allowed(model) {
                continue;
            }
            let Some(provider) = self.providers.get(&model.provider) else {
                continue;
            };
            for endpoint_index in provider.rotation() {
                let state = &provider.endpoints[endpoint_index];
                match crate::embed::embed(
                    &state.endpoint,
                    provider.config.api,
                    &model.model,
                    inputs,
                    dimensions,
                    provider.config.timeout,
                )
                .await
                {
                    Ok(vectors) => return Ok((model.clone(), vectors)),
                    Err(error) => {
                        tracing::warn!(model = %model, endpoint = %state.endpoint.label, error = %error.summary(), "embedding attempt failed");
                        attempts.push(Attempt {
                            model: model.to_string(),
                            endpoint: state.endpoint.label.clone(),
                            error,
                        });
                    }
                }
            }
        }
        Err(RouteError::Exhausted(attempts))
    }

    /// The vectors of `inputs` from exactly `model` (on any of its
    /// provider's endpoints), never another: vectors of different models
    /// cannot be compared, so an index must keep to one.
    pub async fn embed_with(
        &self,
        model: &ModelRef,
        inputs: &[String],
    ) -> Result<Vec<Vec<f64>>, RouteError> {
        let Some(provider) = self.providers.get(&model.provider) else {
            return Err(RouteError::Exhausted(Vec::new()));
        };
        let mut attempts = Vec::new();
        for endpoint_index in provider.rotation() {
            let state = &provider.endpoints[endpoint_index];
            match crate::embed::embed(
                &state.endpoint,
                provider.config.api,
                &model.model,
                inputs,
                None,
                provider.config.timeout,
            )
            .await
            {
                Ok(vectors) => return Ok(vectors),
                Err(error) => attempts.push(Attempt {
                    model: model.to_string(),
                    endpoint: state.endpoint.label.clone(),
                    error,
                }),
            }
        }
        Err(RouteError::Exhausted(attempts))
    }

    /// Probes every endpoint once; returns how many answered.
    pub async fn probe_all(&self) -> usize {
        let mut answered = 0;
        for provider in self.providers.values() {
            for state in &provider.endpoints {
                let alive = state.backend.probe(&state.endpoint).await;
                if alive != state.healthy.swap(alive, Ordering::Relaxed) {
                    tracing::info!(provider = %provider.config.id, endpoint = %state.endpoint.label, healthy = alive, "endpoint health changed");
                }
                if !alive {
                    hearth_runtime::lock(&state.caps).clear();
                } else {
                    self.learn_caps(provider, state).await;
                }
                answered += usize::from(alive);
            }
        }
        answered
    }

    /// Asks an endpoint that answers what its models can do, once: llama.cpp
    /// its template (`/props`), Ollama each of the provider's models in
    /// the chain (`/api/show`).
    async fn learn_caps(&self, provider: &Provider, state: &EndpointState) {
        let known = |key: &str| hearth_runtime::lock(&state.caps).contains_key(key);
        match provider.config.api {
            Api::OpenAiCompletions if !known("") => {
                if let Some(caps) = crate::openai::props(&state.endpoint).await {
                    hearth_runtime::lock(&state.caps).insert(String::new(), caps);
                }
            }
            Api::Ollama => {
                let models = self
                    .chain
                    .iter()
                    .filter(|model| model.provider == provider.config.id)
                    .map(|model| model.model.clone());
                for model in models {
                    if known(&model) {
                        continue;
                    }
                    if let Some(caps) = crate::ollama::caps(&state.endpoint, &model).await {
                        hearth_runtime::lock(&state.caps).insert(model, caps);
                    }
                }
            }
            _ => {}
        }
    }

    /// What the endpoints of `model`'s provider said it can do (its own
    /// entry, else its server's), one per endpoint that said.
    fn said_caps(&self, model: &ModelRef) -> Vec<crate::openai::TemplateCaps> {
        if !self.providers.contains_key(&model.provider)
            && let Some(mesh) = &self.mesh
        {
            return mesh.caps(model);
        }
        self.providers
            .get(&model.provider)
            .map(|provider| {
                provider
                    .endpoints
                    .iter()
                    .filter_map(|state| {
                        let caps = hearth_runtime::lock(&state.caps);
                        caps.get(&model.model).or_else(|| caps.get("")).copied()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `model` (the chain's first when `None`) thinks before it
    /// answers: some endpoint of its provider said so (Ollama's
    /// `thinking`); unknown is no.
    pub fn thinks(&self, model: Option<&ModelRef>) -> bool {
        model
            .or_else(|| self.chain.first())
            .is_some_and(|model| self.said_caps(model).iter().any(|caps| caps.thinking))
    }

    /// Probes endpoints every `period` until the router is dropped.
    pub fn spawn_health_checks(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let router = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(router) = router.upgrade() else {
                    return;
                };
                router.probe_all().await;
                drop(router);
                tokio::time::sleep(period).await;
            }
        })
    }

    /// Whether `model` (the chain's first when `None`) can be sent tools:
    /// no, when every endpoint of its provider that said what its chat
    /// template renders said it has no tools (and one did); yes otherwise.
    pub fn takes_tools(&self, model: Option<&ModelRef>) -> bool {
        let Some(model) = model.or_else(|| self.chain.first()) else {
            return true;
        };
        let said = self.said_caps(model);
        said.is_empty() || said.iter().any(|caps| caps.tools)
    }

    /// Whether `model` (the chain's first when `None`) reads images: some
    /// endpoint of its provider said so (llama.cpp with a multimodal
    /// projector); unknown is no.
    pub fn reads_images(&self, model: Option<&ModelRef>) -> bool {
        model
            .or_else(|| self.chain.first())
            .is_some_and(|model| self.said_caps(model).iter().any(|caps| caps.vision))
    }

    /// Whether some endpoint of some model in the chain is healthy.
    pub fn ready(&self) -> bool {
        self.chain
            .iter()
            .any(|model| match self.providers.get(&model.provider) {
                Some(provider) => provider
                    .endpoints
                    .iter()
                    .any(|state| state.healthy.load(Ordering::Relaxed)),
                None => self
                    .mesh
                    .as_ref()
                    .is_some_and(|mesh| !mesh.servers_for(model).is_empty()),
            })
    }

    /// Health and rest of every endpoint.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let now = self.now();
        let cooldowns = self.cooldowns();
        let mut status: Vec<EndpointStatus> = self
            .providers
            .values()
            .flat_map(|provider| {
                let rest = cooldowns
                    .remaining(&provider.config.id, now)
                    .map_or(0, |left| left.as_secs());
                provider.endpoints.iter().map(move |state| EndpointStatus {
                    provider: provider.config.id.clone(),
                    endpoint: state.endpoint.label.clone(),
                    healthy: state.healthy.load(Ordering::Relaxed),
                    cooldown_seconds: rest,
                })
            })
            .collect();
        // The mesh's servers that answer now (those that do not are gone).
        if let Some(mesh) = &self.mesh {
            status.extend(mesh.devices().into_iter().filter_map(|device| {
                let server = mesh.server(&device)?;
                Some(EndpointStatus {
                    provider: device,
                    endpoint: server.endpoint.label.clone(),
                    healthy: true,
                    cooldown_seconds: 0,
                })
            }));
        }
        status.sort_by(|a, b| (&a.provider, &a.endpoint).cmp(&(&b.provider, &b.endpoint)));
        status
    }
}

/// Starts `model`'s reply on the mesh's servers of it, least busy
/// first: `Ok(None)` when none is there or none answered (each try in
/// `attempts`, a model whose device is away among them, at once);
/// `Err` for an error no other model can help.
async fn open_on_mesh(
    mesh: &MeshModels,
    model: &ModelRef,
    request: &ChatRequest,
    attempts: &mut Vec<Attempt>,
) -> Result<Option<Opened>, BackendError> {
    let servers = mesh.servers_for(model);
    if servers.is_empty() {
        if model.provider != mesh.pool() {
            mesh.want(&model.provider);
        }
        attempts.push(Attempt {
            model: model.to_string(),
            endpoint: model.provider.clone(),
            error: BackendError::Away(model.provider.clone()),
        });
        return Ok(None);
    }
    for server in servers {
        let claim = server.claim();
        match attempt(
            mesh.timeout(),
            &server.endpoint,
            server.backend.as_ref(),
            &model.model,
            request,
        )
        .await
        {
            Ok(events) => {
                // The claim lasts as long as the reply's events.
                let events = after_output(events, model.clone());
                let held: EventStream = Box::pin(events.map(move |event| {
                    let _held = &claim;
                    event
                }));
                return Ok(Some(Opened {
                    model: ModelRef {
                        provider: server.device.clone(),
                        model: model.model.clone(),
                    },
                    events: held,
                    attempts: std::mem::take(attempts),
                }));
            }
            Err(error) => {
                tracing::warn!(model = %model, device = %server.device, error = %error.summary(), "model attempt failed");
                attempts.push(Attempt {
                    model: model.to_string(),
                    endpoint: server.endpoint.label.clone(),
                    error: error.clone(),
                });
                if verdict(&error, false) == Verdict::Stop {
                    return Err(error);
                }
            }
        }
    }
    Ok(None)
}

/// One try: connect and wait for the first event, within `budget` (the
/// provider's timeout).
async fn attempt(
    budget: Duration,
    endpoint: &Endpoint,
    backend: &dyn Backend,
    model: &str,
    request: &ChatRequest,
) -> Result<EventStream, BackendError> {
    let started = Instant::now();
    let starting = backend.stream_chat(endpoint, model, request);
    let mut events = tokio::time::timeout(budget, starting)
        .await
        .map_err(|_| BackendError::FirstTokenTimeout(budget.as_secs()))??;
    let left = budget.saturating_sub(started.elapsed());
    let first = tokio::time::timeout(left, events.next())
        .await
        .map_err(|_| BackendError::FirstTokenTimeout(budget.as_secs()))?
        .ok_or(BackendError::EndedEarly)??;
    let rest = with_idle_timeout(events, budget);
    Ok(Box::pin(
        futures_util::stream::once(async move { Ok::<StreamEvent, BackendError>(first) })
            .chain(rest),
    ))
}

/// The events of a reply whose first event is on its way to the user: a
/// failure now is judged with output sent, which ends the reply with the
/// error (nothing after it is read).
fn after_output(events: EventStream, model: ModelRef) -> EventStream {
    Box::pin(futures_util::stream::unfold(Some(events), move |state| {
        let model = model.clone();
        async move {
            let mut events = state?;
            match events.next().await? {
                Ok(event) => Some((Ok(event), Some(events))),
                Err(error) => {
                    let decision = verdict(&error, true);
                    tracing::warn!(model = %model, error = %error.summary(), ?decision, "reply failed mid-stream");
                    Some((Err(error), None))
                }
            }
        }
    }))
}

/// Ends `events` with an [`BackendError::IdleTimeout`] when it stays silent for `idle`.
fn with_idle_timeout(events: EventStream, idle: Duration) -> EventStream {
    Box::pin(futures_util::stream::unfold(
        Some(events),
        move |state| async move {
            let mut events = state?;
            match tokio::time::timeout(idle, events.next()).await {
                Ok(Some(item)) => Some((item, Some(events))),
                Ok(None) => None,
                Err(_) => Some((Err(BackendError::IdleTimeout(idle.as_secs())), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_must_name_configured_providers_and_may_be_empty() {
        let provider = ProviderConfig {
            id: "local".into(),
            api: Api::OpenAiCompletions,
            endpoints: vec!["http://127.0.0.1:1/v1".into()],
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        let error = Router::new(
            vec![provider.clone()],
            vec![ModelRef::parse("cloud/x").unwrap()],
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("provider `cloud`"), "{error}");
        let empty = Router::new(vec![provider], Vec::new()).unwrap();
        assert!(!empty.ready(), "an empty chain is never ready");
    }
}
