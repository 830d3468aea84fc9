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
use crate::layout::{HUB_TAG, Layout, MESSAGING_PORT, Unit};
use crate::machine::check_machine;
use crate::probe::{self, Target};
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

/// Starts the hub's services in order, each waited for, joining the hub's
/// agent to its mesh on the first run; the hub's mesh address.
pub(crate) fn start(
    layout: &Layout,
    answers: &Answers,
    changed: Changed,
    undo: &mut Undo,
) -> anyhow::Result<Ipv4Addr> {
    system::systemctl(&["daemon-reload"])?;
    eprintln!("Starting the coordinator");
    undo.began(&layout.coordinator_state());
    undo.start(Unit::Coordinator, changed.coordinator)?;
    system::wait_for("the coordinator", Duration::from_secs(60), || {
        let output = system::output(
            system::coordinator(layout).args(["users", "list", "--output", "json"]),
        )?;
        if output.status.success() {
            Ok(())
        } else {
            bail!("{}", String::from_utf8_lossy(&output.stderr).trim())
        }
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", system::journal(Unit::Coordinator)))?;
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

    eprintln!("Joining this hub to its mesh");
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
    let agent_changed = undo.put(
        &layout.agent_env(),
        format!("HEARTH_HOSTNAME={}\n", answers.hostname).as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    undo.began(&layout.agent_state());
    undo.start(Unit::Agent, agent_changed)?;
    let mut mesh_address = None;
    system::wait_for("the hub's mesh address", Duration::from_secs(60), || {
        mesh_address = system::agent_status(layout)
            .as_ref()
            .and_then(system::agent_address);
        mesh_address
            .map(drop)
            .context("the agent has no address yet")
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", system::journal(Unit::Agent)))?;
    let mesh_address = mesh_address.context("the agent has an address")?;

    eprintln!("Starting the model");
    if changed.model {
        // The proxy and the server start again on the next connection,
        // with the new model.
        for unit in [Unit::LlamaProxy, Unit::LlamaServer, Unit::OllamaProxy] {
            let _ = system::systemctl(&["stop", unit.name()]);
        }
    }
    undo.start(Unit::InferenceSocket, changed.model)?;
    let health = if answers.model.uses_llama_server() {
        "/health"
    } else {
        "/api/version"
    };
    system::wait_for("the model", Duration::from_secs(600), || {
        let answer = probe::get(&Target::Unix(layout.inference_socket()), health)?;
        if answer.status == 200 {
            Ok(())
        } else {
            bail!("it answered {} (loading?)", answer.status)
        }
    })
    .map_err(|error| anyhow::anyhow!("{error:#}\n{}", system::journal(Unit::LlamaServer)))?;

    eprintln!("Starting the assistant and the household's chat");
    undo.pod_starting();
    undo.start(Unit::Pod, changed.pod)?;
    wait_for_pod(mesh_address, answers.apps)
        .map_err(|error| anyhow::anyhow!("{error:#}\n{}", system::journal(Unit::Pod)))?;
    Ok(mesh_address)
}

/// After a restore put the hub's files back: the model in place, every
/// service started and waited for.
pub fn restart_after_restore(layout: &Layout, answers: &Answers) -> anyhow::Result<Ipv4Addr> {
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
        Ok(address) => {
            undo.forget();
            Ok(address)
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
    system::wait_for("the gateway", Duration::from_secs(180), || {
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
    system::wait_for("the household's chat", Duration::from_secs(60), || {
        probe::get(
            &Target::Tcp(SocketAddr::from((mesh_address, MESSAGING_PORT))),
            "/",
        )?;
        Ok(())
    })?;
    if apps {
        system::wait_for("the API for members' apps", Duration::from_secs(60), || {
            let target = Target::Tcp(SocketAddr::from((mesh_address, crate::render::OLLAMA_PORT)));
            let answer = probe::get(&target, "/api/version")?;
            if answer.status == 200 {
                Ok(())
            } else {
                bail!("it answered {}", answer.status)
            }
        })?;
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
