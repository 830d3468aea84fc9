//! Who runs the hub's services: systemd on a Debian hub (its units), or
//! Podman alone (one pod whose containers take the units' places, for a
//! machine without systemd: a Mac's `podman machine`, a NAS). The rest of
//! the hub asks this module to start, stop or look at a [`Unit`] and does
//! not care which.
//!
//! In Podman the coordinator and the agent are containers of their own,
//! the gateway and messaging are the `Pod` unit's two; llama-server, when
//! the model is its, is a container of the pod listening on the model's
//! socket (no socket unit, no proxy); otherwise the model is a server on
//! the host, reached at `host.containers.internal`. The whole pod is played from its kube file
//! the first time any of it starts, and again when that file changes.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context;

use crate::layout::{Layout, Unit};
use crate::podman::Podman;
use crate::system;

/// The hub's services' manager.
#[derive(Clone, Debug)]
pub enum Manager {
    /// systemd, with `systemctl` and `journalctl`.
    Systemd,
    /// One Podman pod, through the Podman service's socket.
    Podman(PodHub),
}

/// The hub in Podman alone.
#[derive(Clone, Debug)]
pub struct PodHub {
    /// The Podman service.
    pub api: Podman,
    /// The pod's name (its containers are `POD-coordinator`…, its volumes
    /// `POD-etc`…).
    pub pod: String,
    /// The Podman network it plays on.
    pub network: String,
    /// The hub's paths (the volumes, mounted where a Debian hub keeps them).
    pub layout: Layout,
}

static CURRENT: OnceLock<Manager> = OnceLock::new();

/// Makes `manager` the one this process uses (once, at start).
pub fn use_manager(manager: Manager) {
    let _ = CURRENT.set(manager);
}

/// The manager in use: systemd unless [`use_manager`] said otherwise.
pub fn current() -> &'static Manager {
    CURRENT.get_or_init(|| Manager::Systemd)
}

/// Whether the hub lives in Podman alone.
pub fn in_podman() -> bool {
    matches!(current(), Manager::Podman(_))
}

impl PodHub {
    /// The containers that are `unit` here (none: the unit has no place
    /// in this form).
    pub fn containers(&self, unit: Unit) -> Vec<String> {
        let names: &[&str] = match unit {
            Unit::Coordinator => &["coordinator"],
            Unit::Agent => &["agent"],
            Unit::Pod => &["gateway", "messaging"],
            // In the pod when the model is llama-server's (else the pod
            // has no such container and it is inactive).
            Unit::LlamaServer => &["llama"],
            // In the pod when the image carries the search model.
            Unit::EmbeddingsServer => &["embeddings"],
            Unit::InferenceSocket
            | Unit::LlamaProxy
            | Unit::OllamaProxy
            | Unit::EmbeddingsSocket
            | Unit::EmbeddingsProxy
            | Unit::SpeechSocket
            | Unit::SpeechServer
            | Unit::SpeechProxy => &[],
        };
        names
            .iter()
            .map(|name| format!("{}-{name}", self.pod))
            .collect()
    }

    /// Where the pod's kube file last played is kept: with the hub's
    /// configuration, so that a restore brings it back with the pod's
    /// settings and does not play an unchanged pod again.
    fn played_file(&self) -> PathBuf {
        self.layout.config_dir().join("hearth-hub-pod.yaml")
    }

    /// Plays the pod when it is not there, again when its kube file
    /// (rendered now) is not the one it was played from or when one of
    /// its containers is missing; whether it did.
    pub fn play(&self) -> anyhow::Result<bool> {
        let rendered = crate::pod::render_hub(&self.layout, &self.pod)?;
        let present = self.api.pod_containers(&self.pod)?;
        let played = system::read_optional(&self.played_file())?;
        let verdict = playing(
            present.as_deref(),
            played.as_deref(),
            &crate::pod::container_names(&rendered, &self.pod),
            &rendered,
        );
        match verdict {
            Playing::Not => return Ok(false),
            Playing::Afresh => {}
            Playing::Changed => crate::steps::announce(crate::steps::Step::PodChanged),
            Playing::Incomplete(missing) => {
                crate::steps::announce(crate::steps::Step::PodIncomplete(&missing));
            }
        }
        if present.is_some() {
            self.api.remove_pod(&self.pod)?;
        }
        self.api
            .play(&rendered, &self.network)
            .context("the hub's pod did not start")?;
        system::write_file(
            &self.played_file(),
            rendered.as_bytes(),
            0o644,
            system::Owner::ROOT,
        )?;
        Ok(true)
    }
}

/// Whether (and why) the hub's pod is played.
#[derive(Debug, PartialEq, Eq)]
enum Playing {
    /// It is there as `rendered` makes it.
    Not,
    /// It is not there.
    Afresh,
    /// It was played from another kube file.
    Changed,
    /// It lacks this container (removed by hand, or left so by a removal
    /// that stopped half way): starting it would be refused.
    Incomplete(String),
}

/// Whether the pod whose containers are `present` (`None`: no pod), last
/// played from `played`, is played from `rendered`, which makes the
/// containers `expected`.
fn playing(
    present: Option<&[String]>,
    played: Option<&str>,
    expected: &[String],
    rendered: &str,
) -> Playing {
    let Some(present) = present else {
        return Playing::Afresh;
    };
    if played != Some(rendered) {
        return Playing::Changed;
    }
    match expected.iter().find(|name| !present.contains(name)) {
        Some(missing) => Playing::Incomplete(missing.clone()),
        None => Playing::Not,
    }
}

impl Manager {
    /// The unit's state as systemd says it (`active`, `failed`,
    /// `inactive`…; `absent` where it has no place) and whether it is
    /// enabled (in Podman: whether the pod is there).
    pub fn state(&self, unit: Unit) -> (String, bool) {
        match self {
            Manager::Systemd => system::unit_state(unit),
            Manager::Podman(hub) => {
                let containers = hub.containers(unit);
                if containers.is_empty() {
                    return ("absent".into(), false);
                }
                let mut worst = "active";
                for name in &containers {
                    let state = match hub.api.state(name) {
                        Ok(Some(state)) => state.as_unit_state(),
                        Ok(None) => return ("inactive".into(), false),
                        Err(_) => "unknown",
                    };
                    if state != "active" {
                        worst = state;
                    }
                }
                (worst.into(), true)
            }
        }
    }

    /// Enables `unit`: it starts with the machine (systemd's `enable`; in
    /// Podman nothing: the pod runs while it is played).
    pub fn enable(&self, unit: Unit) -> anyhow::Result<()> {
        match self {
            Manager::Systemd => system::systemctl(&["enable", unit.name()]).map(drop),
            Manager::Podman(_) => Ok(()),
        }
    }

    /// Starts `unit`.
    pub fn start(&self, unit: Unit) -> anyhow::Result<()> {
        match self {
            Manager::Systemd => system::systemctl(&["start", unit.name()])
                .map(drop)
                .with_context(|| format!("{} did not start:\n{}", unit.name(), self.logs(unit))),
            Manager::Podman(hub) => {
                hub.play()?;
                for name in hub.containers(unit) {
                    hub.api.act(&name, "start")?;
                }
                Ok(())
            }
        }
    }

    /// Restarts `unit` (in Podman: plays the pod again first when its
    /// kube file changed, which restarts it all).
    pub fn restart(&self, unit: Unit) -> anyhow::Result<()> {
        match self {
            Manager::Systemd => system::systemctl(&["restart", unit.name()])
                .map(drop)
                .with_context(|| format!("{} did not restart:\n{}", unit.name(), self.logs(unit))),
            Manager::Podman(hub) => {
                if hub.play()? {
                    return Ok(());
                }
                for name in hub.containers(unit) {
                    hub.api.act(&name, "restart")?;
                }
                Ok(())
            }
        }
    }

    /// Stops `unit` and forgets that it failed.
    pub fn stop(&self, unit: Unit) -> anyhow::Result<()> {
        match self {
            Manager::Systemd => {
                let stopped = system::systemctl(&["stop", unit.name()]).map(drop);
                let _ = system::systemctl(&["reset-failed", unit.name()]);
                stopped
            }
            Manager::Podman(hub) => {
                for name in hub.containers(unit) {
                    if hub.api.state(&name)?.is_some() {
                        hub.api.act(&name, "stop")?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Stops and disables `unit` (in Podman: removes the pod, never its
    /// volumes).
    pub fn disable(&self, unit: Unit) -> anyhow::Result<()> {
        match self {
            Manager::Systemd => {
                let disabled = system::systemctl(&["disable", "--now", unit.name()]).map(drop);
                let _ = system::systemctl(&["reset-failed", unit.name()]);
                disabled
            }
            Manager::Podman(hub) => {
                hub.api.remove_pod(&hub.pod)?;
                let _ = std::fs::remove_file(hub.played_file());
                Ok(())
            }
        }
    }

    /// Tells the manager its units' files changed (systemd's
    /// `daemon-reload`; nothing in Podman).
    pub fn reload(&self) -> anyhow::Result<()> {
        match self {
            Manager::Systemd => system::systemctl(&["daemon-reload"]).map(drop),
            Manager::Podman(_) => Ok(()),
        }
    }

    /// The last lines `unit` logged, for an error message.
    pub fn logs(&self, unit: Unit) -> String {
        match self {
            Manager::Systemd => system::journal(unit),
            Manager::Podman(hub) => hub
                .containers(unit)
                .iter()
                .map(|name| format!("{name}:\n{}", hub.api.logs(name)))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// How to read `unit`'s log, as told to the admin.
    pub fn log_command(&self, unit: Unit) -> String {
        match self {
            Manager::Systemd => format!("journalctl -u {}", unit.name()),
            Manager::Podman(hub) => hub
                .containers(unit)
                .iter()
                .map(|name| format!("podman logs {name}"))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_is_its_containers_in_podman() {
        let hub = PodHub {
            api: Podman::at("/run/podman/podman.sock".into()),
            pod: "hearth".into(),
            network: "hearth".into(),
            layout: Layout::system(),
        };
        assert_eq!(hub.containers(Unit::Coordinator), ["hearth-coordinator"]);
        assert_eq!(hub.containers(Unit::Agent), ["hearth-agent"]);
        assert_eq!(
            hub.containers(Unit::Pod),
            ["hearth-gateway", "hearth-messaging"]
        );
        assert!(hub.containers(Unit::InferenceSocket).is_empty());
        assert_eq!(hub.containers(Unit::LlamaServer), ["hearth-llama"]);
        assert!(hub.containers(Unit::LlamaProxy).is_empty());
    }

    /// The CI run that found it: a removal of the pod stopped half way
    /// (its containers gone, the pod left), and the restore then started
    /// the coordinator's container in the pod it found, which Podman
    /// refused (404), as the kube file was the one played.
    #[test]
    fn a_pod_is_played_when_missing_changed_or_missing_a_container() {
        let kube = "kind: Pod\n";
        let expected = ["hth7-coordinator".to_owned(), "hth7-agent".to_owned()];
        let all = [
            "9f3a-infra".to_owned(),
            "hth7-coordinator".to_owned(),
            "hth7-agent".to_owned(),
        ];
        assert_eq!(playing(None, Some(kube), &expected, kube), Playing::Afresh);
        assert_eq!(playing(None, None, &expected, kube), Playing::Afresh);
        assert_eq!(
            playing(Some(&all), Some(kube), &expected, kube),
            Playing::Not
        );
        assert_eq!(
            playing(Some(&all), Some("kind: Pod\n# old\n"), &expected, kube),
            Playing::Changed
        );
        assert_eq!(playing(Some(&all), None, &expected, kube), Playing::Changed);
        assert_eq!(
            playing(Some(&all[..1]), Some(kube), &expected, kube),
            Playing::Incomplete("hth7-coordinator".into())
        );
        assert_eq!(
            playing(Some(&all[..2]), Some(kube), &expected, kube),
            Playing::Incomplete("hth7-agent".into())
        );
    }
}
