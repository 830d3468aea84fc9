//! Model servers found on the mesh: the household's other computers that
//! lend their models while they are awake.
//!
//! A [`MeshModels`] holds the servers that answer now, each under its
//! device's name, with the models it serves and what each can do; whoever
//! finds them (the gateway, from its agent's view of the mesh) puts them in
//! with [`MeshModels::put`] and takes them out with [`MeshModels::remove`]
//! the moment they go. The router asks it for the servers of a model:
//! `device/model` is that device's, `POOL/model` (the pool is named after
//! the tag, `models` for `tag:models`) whichever serves it with the fewest
//! replies in progress ([`least_outstanding`]). [`identify`] asks a server
//! what it is and serves: llama.cpp's `/props` and `/v1/models`, else
//! Ollama's `/api/tags` and `/api/show`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::backend::Backend;
use crate::endpoint::{Api, Endpoint};
use crate::model_ref::ModelRef;
use crate::openai::TemplateCaps;

/// A model server that answers now.
pub struct Server {
    /// The device's name on the mesh (the provider part of its models).
    pub device: String,
    /// The API it speaks.
    pub api: Api,
    /// Where it is reached (its mesh address and port).
    pub endpoint: Endpoint,
    /// How to ask it.
    pub backend: Arc<dyn Backend>,
    /// Its models by name, with what each can do.
    pub models: BTreeMap<String, TemplateCaps>,
    /// The mesh address it was found at.
    pub address: IpAddr,
    /// When it said what it serves.
    pub found: std::time::Instant,
    /// Replies in progress on it.
    outstanding: AtomicUsize,
    /// Replies it has started since it was found.
    served: AtomicU64,
}

impl Server {
    /// A server of `device` at `endpoint` serving `models`.
    pub fn new(
        device: &str,
        address: IpAddr,
        api: Api,
        endpoint: Endpoint,
        models: BTreeMap<String, TemplateCaps>,
    ) -> Server {
        let backend: Arc<dyn Backend> = match api {
            Api::Ollama => Arc::new(crate::backend::Ollama),
            _ => Arc::new(crate::backend::OpenAiCompletions),
        };
        Server {
            device: device.to_owned(),
            api,
            endpoint,
            backend,
            models,
            address,
            found: std::time::Instant::now(),
            outstanding: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// Counts a reply started on it until the claim is dropped.
    pub fn claim(self: &Arc<Self>) -> Claim {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        Claim(Arc::clone(self))
    }

    /// Replies in progress on it.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Whether it still answers (its model list, within the probe's time).
    pub async fn answers(&self) -> bool {
        self.backend.probe(&self.endpoint).await
    }
}

/// A reply in progress on a [`Server`]; counted until dropped.
pub struct Claim(Arc<Server>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one server looks like to the choice of [`least_outstanding`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Replies in progress.
    pub outstanding: usize,
    /// Replies started since it was found.
    pub served: u64,
}

/// The order to try servers of one model in: fewest replies in progress
/// first; among equals, the one that has started fewest (so that requests
/// one after another take turns), then the given order. Indices of `loads`.
pub fn least_outstanding(loads: &[Load]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..loads.len()).collect();
    order.sort_by_key(|index| (loads[*index].outstanding, loads[*index].served));
    order
}

/// The model servers found on the mesh, as they are now.
pub struct MeshModels {
    pool: String,
    timeout: Duration,
    servers: RwLock<BTreeMap<String, Arc<Server>>>,
    /// Devices whose models were asked for while they were away.
    wanted: std::sync::Mutex<std::collections::BTreeSet<String>>,
    wanted_now: tokio::sync::Notify,
}

impl MeshModels {
    /// No servers yet; the pool (any server's model) is called `pool`; a
    /// server has `timeout` to start a reply and between its tokens.
    pub fn new(pool: &str, timeout: Duration) -> MeshModels {
        MeshModels {
            pool: pool.to_owned(),
            timeout,
            servers: RwLock::default(),
            wanted: std::sync::Mutex::default(),
            wanted_now: tokio::sync::Notify::new(),
        }
    }

    /// How long a server has to start a reply, and between its tokens.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The pool's name (`models` for `tag:models`).
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// Notes that a model of `device` was asked for while it is away
    /// (whoever finds servers may wake it: [`MeshModels::wanted`]).
    pub fn want(&self, device: &str) {
        hearth_runtime::lock(&self.wanted).insert(device.to_owned());
        self.wanted_now.notify_one();
    }

    /// Waits until some device is [wanted](MeshModels::want); those
    /// wanted since the last call.
    pub async fn wanted(&self) -> Vec<String> {
        loop {
            let drained: Vec<String> = std::mem::take(&mut *hearth_runtime::lock(&self.wanted))
                .into_iter()
                .collect();
            if !drained.is_empty() {
                return drained;
            }
            self.wanted_now.notified().await;
        }
    }

    /// Puts `server` in (replacing its device's previous one).
    pub fn put(&self, server: Server) {
        hearth_runtime::write(&self.servers).insert(server.device.clone(), Arc::new(server));
    }

    /// Takes `device`'s server out; whether it was in.
    pub fn remove(&self, device: &str) -> bool {
        hearth_runtime::write(&self.servers)
            .remove(device)
            .is_some()
    }

    /// The devices whose servers are in.
    pub fn devices(&self) -> Vec<String> {
        hearth_runtime::read(&self.servers)
            .keys()
            .cloned()
            .collect()
    }

    /// `device`'s server, if it is in.
    pub fn server(&self, device: &str) -> Option<Arc<Server>> {
        hearth_runtime::read(&self.servers).get(device).cloned()
    }

    /// Every model that can be asked now: each server's as `device/model`,
    /// then each model any server has as `POOL/model`.
    pub fn listed(&self) -> Vec<ModelRef> {
        let servers = hearth_runtime::read(&self.servers);
        let mut listed: Vec<ModelRef> = servers
            .values()
            .flat_map(|server| {
                server.models.keys().map(|model| ModelRef {
                    provider: server.device.clone(),
                    model: model.clone(),
                })
            })
            .collect();
        let mut pooled: Vec<&String> = servers
            .values()
            .flat_map(|server| server.models.keys())
            .collect();
        pooled.sort();
        pooled.dedup();
        listed.extend(pooled.into_iter().map(|model| ModelRef {
            provider: self.pool.clone(),
            model: model.clone(),
        }));
        listed
    }

    /// Whether `model` names a model server's provider (the pool, or a
    /// device) rather than a configured one.
    pub fn names(&self, model: &ModelRef) -> bool {
        model.provider == self.pool || self.server(&model.provider).is_some()
    }

    /// The servers of `model` that answer now, in the order to try them:
    /// `device/model` its device's; `POOL/model` every server that has it,
    /// least outstanding first.
    pub fn servers_for(&self, model: &ModelRef) -> Vec<Arc<Server>> {
        let servers = hearth_runtime::read(&self.servers);
        let found: Vec<Arc<Server>> = if model.provider == self.pool {
            servers
                .values()
                .filter(|server| server.models.contains_key(&model.model))
                .cloned()
                .collect()
        } else {
            servers
                .get(&model.provider)
                .filter(|server| server.models.contains_key(&model.model))
                .cloned()
                .into_iter()
                .collect()
        };
        let loads: Vec<Load> = found
            .iter()
            .map(|server| Load {
                outstanding: server.outstanding(),
                served: server.served.load(Ordering::Relaxed),
            })
            .collect();
        least_outstanding(&loads)
            .into_iter()
            .map(|index| Arc::clone(&found[index]))
            .collect()
    }

    /// What the servers of `model` said it can do, one per server.
    pub fn caps(&self, model: &ModelRef) -> Vec<TemplateCaps> {
        self.servers_for(model)
            .iter()
            .filter_map(|server| server.models.get(&model.model).copied())
            .collect()
    }
}

/// The most models one server is taken at its word for (Ollama's
/// `/api/show` is asked of each).
pub const MOST_MODELS: usize = 64;

/// Whether a name a server gave its model may be listed: some text, not
/// too long, no control characters.
pub fn listable(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.chars().any(char::is_control)
}

/// A model's name as the gateway lists it: a llama.cpp server names its
/// model by the file it loaded unless given an alias; only the file's name
/// is kept (the server answers whatever name it is asked by).
pub fn model_name(listed: &str) -> String {
    listed
        .rsplit('/')
        .next()
        .unwrap_or(listed)
        .trim()
        .to_owned()
}

/// Whether a `/props` answer is llama.cpp's (its generation settings, or
/// the model it loaded).
pub fn is_llama_cpp(props: &serde_json::Value) -> bool {
    props.get("default_generation_settings").is_some() || props.get("model_path").is_some()
}

/// Asks the server of `device` at `address` on each of `ports` (all at
/// once: a port the mesh's policy filters answers nothing, and must not
/// hold up the others) what it is and what it serves: llama.cpp
/// (`/props`, `/v1/models`) or Ollama (`/api/tags`, each model's
/// `/api/show`). The first port to answer so wins; `None` when nothing
/// there answers as either, or it serves no model.
pub async fn identify(
    device: &str,
    address: IpAddr,
    ports: &[u16],
    connect_timeout: Duration,
) -> Option<Server> {
    use futures_util::StreamExt as _;
    let mut asked: futures_util::stream::FuturesUnordered<_> = ports
        .iter()
        .map(|port| identify_at(device, address, *port, connect_timeout))
        .collect();
    while let Some(answer) = asked.next().await {
        if answer.is_some() {
            return answer;
        }
    }
    None
}

async fn identify_at(
    device: &str,
    address: IpAddr,
    port: u16,
    connect_timeout: Duration,
) -> Option<Server> {
    let host = match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let llama = Endpoint::parse(
        &format!("http://{host}:{port}/v1"),
        Api::OpenAiCompletions,
        connect_timeout,
    )
    .ok()?;
    let props = crate::endpoint::json_answer(llama.http.get(llama.root_url("/props"))).await;
    if let Some(props) = props.filter(is_llama_cpp) {
        // A template that does not say is taken to render tools.
        let caps = crate::openai::template_caps(&props).unwrap_or(TemplateCaps {
            tools: true,
            ..TemplateCaps::default()
        });
        let models: BTreeMap<String, TemplateCaps> = crate::openai::models(&llama)
            .await
            .unwrap_or_default()
            .iter()
            .map(|listed| (model_name(listed), caps))
            .filter(|(name, _)| listable(name))
            .take(MOST_MODELS)
            .collect();
        return (!models.is_empty())
            .then(|| Server::new(device, address, Api::OpenAiCompletions, llama, models));
    }
    let ollama = Endpoint::parse(
        &format!("http://{host}:{port}"),
        Api::Ollama,
        connect_timeout,
    )
    .ok()?;
    let mut models = BTreeMap::new();
    let names = crate::ollama::models(&ollama).await?;
    for name in names
        .into_iter()
        .filter(|name| listable(name))
        .take(MOST_MODELS)
    {
        let caps = crate::ollama::caps(&ollama, &name)
            .await
            .unwrap_or(TemplateCaps {
                tools: true,
                ..TemplateCaps::default()
            });
        models.insert(name, caps);
    }
    (!models.is_empty()).then(|| Server::new(device, address, Api::Ollama, ollama, models))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(device: &str, models: &[&str]) -> Server {
        let endpoint = Endpoint::parse(
            "http://100.64.0.9:8080/v1",
            Api::OpenAiCompletions,
            Duration::from_secs(1),
        )
        .unwrap();
        Server::new(
            device,
            "100.64.0.9".parse().unwrap(),
            Api::OpenAiCompletions,
            endpoint,
            models
                .iter()
                .map(|model| ((*model).to_owned(), TemplateCaps::default()))
                .collect(),
        )
    }

    fn named(text: &str) -> ModelRef {
        ModelRef::parse(text).unwrap()
    }

    #[test]
    fn the_least_busy_server_goes_first_and_equals_take_turns() {
        let load = |outstanding, served| Load {
            outstanding,
            served,
        };
        assert_eq!(
            least_outstanding(&[load(2, 0), load(0, 9), load(1, 0)]),
            vec![1, 2, 0]
        );
        assert_eq!(least_outstanding(&[load(0, 3), load(0, 2)]), vec![1, 0]);
        assert_eq!(least_outstanding(&[]), Vec::<usize>::new());
    }

    #[test]
    fn models_are_listed_by_device_and_in_the_pool_and_leave_with_their_server() {
        let mesh = MeshModels::new("models", Duration::from_secs(30));
        mesh.put(server("gaming-pc", &["qwen3:8b", "smollm"]));
        mesh.put(server("mac", &["smollm"]));
        let listed: Vec<String> = mesh.listed().iter().map(ToString::to_string).collect();
        assert_eq!(
            listed,
            [
                "gaming-pc/qwen3:8b",
                "gaming-pc/smollm",
                "mac/smollm",
                "models/qwen3:8b",
                "models/smollm"
            ]
        );
        assert!(mesh.names(&named("mac/smollm")) && mesh.names(&named("models/x")));
        assert!(!mesh.names(&named("local/tiny")));
        assert_eq!(mesh.servers_for(&named("models/smollm")).len(), 2);
        assert_eq!(mesh.servers_for(&named("mac/qwen3:8b")).len(), 0);
        assert!(mesh.remove("gaming-pc"));
        assert!(!mesh.remove("gaming-pc"));
        assert_eq!(
            mesh.listed()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["mac/smollm", "models/smollm"]
        );
        assert!(mesh.servers_for(&named("gaming-pc/qwen3:8b")).is_empty());
    }

    #[test]
    fn a_pooled_model_goes_to_the_server_with_fewest_replies_in_progress() {
        let mesh = MeshModels::new("models", Duration::from_secs(30));
        mesh.put(server("gaming-pc", &["smollm"]));
        mesh.put(server("mac", &["smollm"]));
        let pooled = named("models/smollm");
        let first = mesh.servers_for(&pooled)[0].clone();
        let held = first.claim();
        let second = mesh.servers_for(&pooled)[0].clone();
        assert_ne!(first.device, second.device, "the busy one goes last");
        let _also = second.claim();
        let _more = second.claim();
        assert_eq!(mesh.servers_for(&pooled)[0].device, first.device);
        drop(held);
        assert_eq!(first.outstanding(), 0, "a claim ends with its reply");
    }

    #[test]
    fn only_names_fit_to_show_are_listed() {
        assert!(listable("qwen3:8b") && listable("hf.co/user/model:Q4_K_M"));
        assert!(!listable("") && !listable("evil\u{1b}[2J") && !listable(&"x".repeat(201)));
    }

    #[test]
    fn a_llama_cpp_model_is_named_by_its_file() {
        assert_eq!(model_name("/models/SmolLM2-135M.gguf"), "SmolLM2-135M.gguf");
        assert_eq!(model_name("tiny"), "tiny");
    }
}
