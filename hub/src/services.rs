//! Starting the hub's services in order, each waited for: the
//! coordinator, the hub's own agent (joined to its own mesh on the first
//! run), the model, the pod; the first member's key; and the same start
//! after a restore.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::answers::Answers;
use crate::configure::{Changed, place_model};
use crate::layout::{HUB_TAG, Layout, MESSAGING_PORT, Unit, hub_services};
use crate::machine::check_machine;
use crate::probe::{self, Target};
use crate::steps::{Awaited, Step, announce};
use crate::system::{self, Owner};
use crate::undo::Undo;

/// How long the first member's key lasts.
const FIRST_KEY_LIFETIME: &str = "7d";

/// The first member's key, kept to be shown again while it is unused.
#[derive(Serialize, Deserialize)]
struct FirstKey {
    id: i64,
    token: String,
}

impl Drop for FirstKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// Where members reach the hub's services: its mesh address, and the
/// MagicDNS names of the Tailscale Services it hosts (the household's chat,
/// `svc:chat`; the assistant's API for members' apps, `svc:assistant`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reached {
    /// The hub's own mesh address.
    pub mesh_address: Ipv4Addr,
    /// `chat.<tailnet>`, and its address.
    pub chat: (String, Ipv4Addr),
    /// `assistant.<tailnet>` and its address, when members' apps may use
    /// the hub.
    pub assistant: Option<(String, Ipv4Addr)>,
}

/// Makes the hub the host of `services` (created if the coordinator has
/// none by that name), the hub's node being `node`; their MagicDNS names.
fn host_services(layout: &Layout, node: &str, services: &[&str]) -> anyhow::Result<Vec<String>> {
    let list = || -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(&system::run(
            system::coordinator(layout).args(["services", "list", "--output", "json"]),
        )?)?)
    };
    let find = |listed: &[serde_json::Value], service: &str| {
        listed
            .iter()
            .find(|known| known["name"] == service)
            .cloned()
    };
    let listed = list()?;
    for service in services {
        let known = find(&listed, service);
        if known.is_none() {
            system::run(system::coordinator(layout).args(["services", "create", service]))?;
        }
        let hosted_here =
            known.is_some_and(|known| known["host"] == node && known["placed"] == "chosen");
        if !hosted_here {
            system::run(
                system::coordinator(layout).args(["services", "move", service, "--to", node]),
            )?;
        }
    }
    let listed = list()?;
    services
        .iter()
        .map(|service| {
            find(&listed, service)
                .and_then(|known| known["dns_name"].as_str().map(str::to_owned))
                .with_context(|| format!("the coordinator lists no {service}"))
        })
        .collect()
}

/// Starts the hub's services in order, each waited for, joining the hub's
/// agent to its mesh on the first run and making it the host of the
/// household's services; where members reach them.
pub(crate) fn start(
    layout: &Layout,
    answers: &Answers,
    changed: Changed,
    undo: &mut Undo,
) -> anyhow::Result<Reached> {
    let manager = crate::manager::current();
    manager.reload()?;
    announce(Step::StartingCoordinator);
    undo.began(&layout.coordinator_state());
    undo.start(Unit::Coordinator, changed.coordinator)?;
    system::wait_for(Awaited::Coordinator, Duration::from_secs(60), || {
        let output = system::output(
            system::coordinator(layout).args(["users", "list", "--output", "json"]),
        )?;
        if output.status.success() {
            Ok(())
        } else {
            bail!("{}", String::from_utf8_lossy(&output.stderr).trim())
        }
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::Coordinator)))?;
    let users: serde_json::Value = serde_json::from_str(&system::run(
        system::coordinator(layout).args(["users", "list", "--output", "json"]),
    )?)?;
    let known = users.as_array().is_some_and(|users| {
        users
            .iter()
            .any(|user| user["name"] == answers.admin.as_str())
    });
    if !known {
        system::run(system::coordinator(layout).args(["users", "create", &answers.admin]))?;
    }

    announce(Step::Joining);
    let joined = layout.agent_state().join("identity.json").exists();
    if !joined {
        let created: serde_json::Value =
            serde_json::from_str(&system::run(system::coordinator(layout).args([
                "preauthkeys",
                "create",
                "--user",
                &answers.admin,
                "--tags",
                HUB_TAG,
                "--pre-approved",
                "--expiration",
                "1h",
                "--output",
                "json",
            ]))?)?;
        let token = created["token"]
            .as_str()
            .context("the coordinator's key has no token")?;
        undo.put(&layout.join_token(), token.as_bytes(), 0o600, Owner::ROOT)?;
    }
    let services = hub_services(answers.apps);
    let agent_changed = undo.put(
        &layout.agent_env(),
        format!(
            "HEARTH_HOSTNAME={}\nHEARTH_ADVERTISE_SERVICES={}\n",
            answers.hostname,
            services.join(",")
        )
        .as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    undo.began(&layout.agent_state());
    undo.start(Unit::Agent, agent_changed)?;
    let status = system::wait_for_agent(layout, Duration::from_secs(60))
        .map_err(|error| anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::Agent)))?;
    let mesh_address = system::agent_address(&status).context("the agent has an address")?;

    announce(Step::Hosting);
    let node = status["node"]["name"]
        .as_str()
        .context("the agent's status names no node")?;
    let names = host_services(layout, node, &services)?;
    // The pod publishes its ports at the services' addresses: the agent
    // must answer at them first.
    let mut addresses = Vec::new();
    system::wait_for(Awaited::ServicesAddresses, Duration::from_secs(60), || {
        let status = system::agent_status(layout).context("no agent status")?;
        addresses = services
            .iter()
            .map(|service| {
                system::hosted_address(&status, service)
                    .with_context(|| format!("the agent does not host {service} yet"))
            })
            .collect::<anyhow::Result<_>>()?;
        // In Podman the mesh interface is the pod's, not this container's:
        // the agent saying it hosts them is what can be seen.
        if let Some(missing) = addresses
            .iter()
            .find(|address| !crate::manager::in_podman() && !system::has_address(**address))
        {
            bail!("{missing} is not on the mesh interface yet");
        }
        Ok(())
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::Agent)))?;
    let mut placed = names.into_iter().zip(addresses);
    let reached = Reached {
        mesh_address,
        chat: placed.next().context("the hub does not host the chat")?,
        assistant: placed.next(),
    };

    if crate::manager::in_podman() {
        return start_pod_in_podman(layout, answers, reached, undo, changed);
    }
    announce(Step::StartingModel);
    if changed.model {
        // The proxy and the server start again on the next connection,
        // with the new model.
        for unit in [Unit::LlamaProxy, Unit::LlamaServer, Unit::OllamaProxy] {
            let _ = manager.stop(unit);
        }
    }
    undo.start(Unit::InferenceSocket, changed.model)?;
    let health = if answers.model.uses_llama_server() {
        "/health"
    } else {
        "/api/version"
    };
    system::wait_for(Awaited::Model, Duration::from_secs(600), || {
        let answer = probe::get(&Target::Unix(layout.inference_socket()), health)?;
        if answer.status == 200 {
            Ok(())
        } else {
            bail!("it answered {} (loading?)", answer.status)
        }
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::LlamaServer)))?;
    if layout.search_model().is_some() {
        announce(Step::StartingSearchModel);
        undo.start(Unit::EmbeddingsSocket, false)?;
        wait_for_search_model(layout)?;
    }
    if layout.speech_model().is_some() {
        // whisper-server starts on the first recording.
        undo.start(Unit::SpeechSocket, false)?;
    }

    announce(Step::StartingAssistant);
    undo.pod_starting();
    undo.start(Unit::Pod, changed.pod)?;
    let assistant = reached.assistant.as_ref().map(|(_, address)| *address);
    wait_for_pod(mesh_address, answers.apps)
        .and_then(|()| wait_for_services(Some(reached.chat.1), assistant))
        .map_err(|error| anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::Pod)))?;
    Ok(reached)
}

/// The last steps of the hub in Podman alone: the model (llama-server in
/// the pod, or a server on the machine) is asked whether it answers, and
/// the pod, played again when the names its agent now has change what its
/// services answer to, is waited for through the agent: the chat must
/// answer at the hub's mesh address.
fn start_pod_in_podman(
    layout: &Layout,
    answers: &Answers,
    reached: Reached,
    undo: &mut Undo,
    changed: Changed,
) -> anyhow::Result<Reached> {
    let manager = crate::manager::current();
    let in_pod = answers.model.uses_llama_server();
    if in_pod {
        // llama-server in the pod (played with it), on the model's socket.
        announce(Step::StartingModel);
        if changed.model {
            manager.restart(Unit::LlamaServer)?;
        } else {
            // Played with the pod if it is not; started if it was stopped.
            manager.start(Unit::LlamaServer)?;
        }
    } else {
        announce(Step::AskingModel);
    }
    let (target, path) = crate::machine::host_model_probe(&answers.model)?;
    // A big model takes a while to read in; a server elsewhere is up or not.
    let limit = Duration::from_secs(if in_pod { 600 } else { 120 });
    system::wait_for(Awaited::Model, limit, || {
        let answer = probe::get(&target, path)?;
        if answer.status == 200 {
            Ok(())
        } else {
            bail!("it answered {}", answer.status)
        }
    })
    .map_err(|error| {
        if in_pod {
            anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::LlamaServer))
        } else {
            error
        }
    })?;
    if layout.search_model().is_some() {
        // In the pod (played with it) on its socket, from the image.
        announce(Step::StartingSearchModel);
        manager.start(Unit::EmbeddingsServer)?;
        wait_for_search_model(layout)?;
    }
    announce(Step::StartingAssistant);
    undo.start(Unit::Pod, changed.pod)?;
    // Its names are known now: the pod answers to them (played again if
    // they were not the ones predicted).
    manager.restart(Unit::Pod)?;
    system::wait_for(Awaited::Chat, Duration::from_secs(120), || {
        let (state, _) = manager.state(Unit::Pod);
        if state != "active" {
            bail!("the gateway and messaging are {state}");
        }
        let status = system::agent_status(layout).context("no agent status")?;
        if status["node"]["name"].is_null() {
            bail!("the agent has no node yet");
        }
        Ok(())
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", manager.logs(Unit::Pod)))?;
    let _ = layout;
    Ok(reached)
}

/// Waits until the search model answers on its socket.
fn wait_for_search_model(layout: &Layout) -> anyhow::Result<()> {
    system::wait_for(Awaited::SearchModel, Duration::from_secs(120), || {
        let answer = probe::get(&Target::Unix(layout.embeddings_socket()), "/health")?;
        if answer.status == 200 {
            Ok(())
        } else {
            bail!("it answered {} (loading?)", answer.status)
        }
    })
    .map_err(|error| {
        let logs = crate::manager::current().logs(Unit::EmbeddingsServer);
        anyhow::anyhow!("{error:#}\n{logs}")
    })
}

/// Waits until the chat answers at its service's address and, when the
/// hub hosts the assistant's API, Ollama's API at that one's.
fn wait_for_services(chat: Option<Ipv4Addr>, assistant: Option<Ipv4Addr>) -> anyhow::Result<()> {
    if let Some(address) = chat {
        wait_for_chat(Awaited::ChatService, address)?;
    }
    if let Some(address) = assistant {
        wait_for_apps_api(Awaited::AssistantService, address)?;
    }
    Ok(())
}

/// Waits until the household's chat answers at `address`.
fn wait_for_chat(what: Awaited, address: Ipv4Addr) -> anyhow::Result<()> {
    system::wait_for(what, Duration::from_secs(60), || {
        probe::get(
            &Target::Tcp(SocketAddr::from((address, MESSAGING_PORT))),
            "/",
        )?;
        Ok(())
    })
}

/// Waits until Ollama's API for members' apps answers at `address`.
fn wait_for_apps_api(what: Awaited, address: Ipv4Addr) -> anyhow::Result<()> {
    system::wait_for(what, Duration::from_secs(60), || {
        let target = Target::Tcp(SocketAddr::from((address, crate::render::OLLAMA_PORT)));
        let answer = probe::get(&target, "/api/version")?;
        if answer.status == 200 {
            Ok(())
        } else {
            bail!("it answered {}", answer.status)
        }
    })
}

/// After a restore put the hub's files back: the model in place, every
/// service started and waited for.
pub fn restart_after_restore(layout: &Layout, answers: &Answers) -> anyhow::Result<Reached> {
    let checked = check_machine(layout, answers, None)?;
    let mut undo = Undo::new(false);
    let changed = Changed {
        coordinator: true,
        model: true,
        pod: true,
    };
    let started = place_model(layout, answers, &checked, &mut undo)
        .and_then(|_| start(layout, answers, changed, &mut undo));
    match started {
        Ok(reached) => {
            undo.forget();
            Ok(reached)
        }
        Err(error) => {
            // Units enabled, the pod made, the model placed: taken back.
            undo.take_back();
            Err(error)
        }
    }
}

/// Waits until the pod's gateway is ready and messaging answers on the
/// mesh (and, when members' apps may use the hub, Ollama's API there too).
pub fn wait_for_pod(mesh_address: Ipv4Addr, apps: bool) -> anyhow::Result<()> {
    system::wait_for(Awaited::Gateway, Duration::from_secs(180), || {
        let namespace = pod_namespace().context("the pod is not running yet")?;
        let answer = probe::get(
            &Target::TcpIn(
                namespace,
                SocketAddr::from((Ipv4Addr::LOCALHOST, crate::layout::GATEWAY_PORT)),
            ),
            "/health",
        )?;
        if answer.status == 200 {
            Ok(())
        } else {
            bail!("its health answered {}", answer.status)
        }
    })?;
    wait_for_chat(Awaited::Chat, mesh_address)?;
    if apps {
        wait_for_apps_api(Awaited::AppsApi, mesh_address)?;
    }
    Ok(())
}

/// The pod's network namespace (`/proc/PID/ns/net` of its infra container).
pub fn pod_namespace() -> Option<PathBuf> {
    let output = system::output(std::process::Command::new("podman").args([
        "pod",
        "inspect",
        "--format",
        "{{.InfraContainerID}}",
        crate::layout::POD,
    ]))
    .ok()?;
    let infra = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || infra.is_empty() {
        return None;
    }
    let output = system::output(std::process::Command::new("podman").args([
        "inspect",
        "--format",
        "{{.State.Pid}}",
        &infra,
    ]))
    .ok()?;
    let pid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    (pid > 0).then(|| PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// The first member's join token: the one made before while it is unused,
/// else a new one (single use, pre-approved, seven days).
pub(crate) fn first_member_key(
    layout: &Layout,
    answers: &Answers,
    undo: &mut Undo,
) -> anyhow::Result<String> {
    let path = layout.first_member_token();
    if let Some(text) = system::read_optional(&path)?
        && let Ok(kept) = serde_json::from_str::<FirstKey>(&text)
    {
        let keys: serde_json::Value =
            serde_json::from_str(&system::run(system::coordinator(layout).args([
                "preauthkeys",
                "list",
                "--user",
                &answers.admin,
                "--output",
                "json",
            ]))?)?;
        let usable = keys.as_array().is_some_and(|keys| {
            keys.iter()
                .any(|key| key["id"] == kept.id && key["usable"] == true)
        });
        if usable {
            return Ok(kept.token.clone());
        }
    }
    let created: serde_json::Value =
        serde_json::from_str(&system::run(system::coordinator(layout).args([
            "preauthkeys",
            "create",
            "--user",
            &answers.admin,
            "--pre-approved",
            "--expiration",
            FIRST_KEY_LIFETIME,
            "--output",
            "json",
        ]))?)?;
    let kept = FirstKey {
        id: created["key"]["id"]
            .as_i64()
            .context("a created key has an id")?,
        token: created["token"]
            .as_str()
            .context("a created key has a token")?
            .to_owned(),
    };
    let text = Zeroizing::new(serde_json::to_vec(&kept)?);
    undo.put(&path, &text, 0o600, Owner::ROOT)?;
    Ok(kept.token.clone())
}
