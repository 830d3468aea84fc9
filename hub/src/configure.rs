//! Writing the hub's configuration: the setup record, the coordinator's
//! settings, the gateway's model section, the containers' token and at-rest
//! keys (made once, never replaced), the assistant's identity file, and the
//! model in place (llama-server's file, or the socket's drop-in towards
//! Ollama). Every write goes through the run's [`Undo`].

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context;
use zeroize::Zeroizing;

use crate::answers::{Answers, ModelChoice};
use crate::layout::{CONTAINER_USER, Layout, SOCKET_GROUP};
use crate::machine::Checked;
use crate::record::Record;
use crate::system::{self, Owner};
use crate::undo::Undo;

/// Which parts' configuration this run changed (they restart).
#[derive(Clone, Copy, Default)]
pub(crate) struct Changed {
    pub(crate) coordinator: bool,
    pub(crate) model: bool,
    pub(crate) pod: bool,
}

fn random_secret(bytes: usize) -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; bytes]);
    rand::fill(&mut secret[..]);
    secret
}

fn token_text() -> Zeroizing<Vec<u8>> {
    let raw = random_secret(32);
    Zeroizing::new(hex::encode(&*raw).into_bytes())
}

/// Writes the hub's configuration and secrets for `answers` (each file
/// only when its text differs; secrets only when missing) and places the
/// model: which parts' configuration changed.
pub(crate) fn write(
    layout: &Layout,
    answers: &Answers,
    checked: &Checked,
    undo: &mut Undo,
) -> anyhow::Result<Changed> {
    let podman = crate::manager::in_podman();
    // In Podman alone every container of the pod runs as the pod's user
    // and group; on a Debian hub the containers' group is the sockets'.
    let container = Owner {
        uid: CONTAINER_USER,
        gid: if podman {
            CONTAINER_USER
        } else {
            system::group(layout, SOCKET_GROUP)?
        },
    };
    let now = hearth_runtime::clock::unix_seconds();
    crate::steps::announce(crate::steps::Step::WritingConfiguration);
    for folder in [layout.gateway_config(), layout.messaging_config()] {
        system::make_folder(&folder, 0o755, Owner::ROOT)?;
    }
    if podman {
        write_podman_defaults(layout, undo)?;
    }
    for folder in [layout.workspace(), layout.documents()] {
        system::make_folder(&folder, 0o755, Owner::ROOT)?;
    }
    for folder in [layout.gateway_data(), layout.messaging_data()] {
        system::make_folder(
            &folder,
            0o700,
            Owner {
                uid: CONTAINER_USER,
                gid: CONTAINER_USER,
            },
        )?;
    }
    let record = Record {
        answers: answers.clone(),
        completed_at: now,
    };
    // First: the pod's rendering reads the admin from it.
    undo.put(
        &layout.setup_file(),
        format!("{}\n", serde_json::to_string_pretty(&record)?).as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    let coordinator_changed = undo.put(
        &layout.setup_env(),
        if podman {
            crate::render::setup_env_in_pod(answers)
        } else {
            crate::render::setup_env(answers)
        }
        .as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    let timezone =
        crate::render::timezone(system::read_optional(&layout.etc("timezone"))?.as_deref());
    let mut pod_changed = undo.put(
        &layout.gateway_config().join("hub.json5"),
        crate::render::gateway_model_in(
            answers,
            &checked.model_id,
            &timezone,
            if crate::manager::in_podman() {
                crate::render::Form::Podman
            } else {
                crate::render::Form::Debian
            },
            crate::render::Beside {
                search: layout.search_model(),
                speech: layout.speech_model(),
            },
        )
        .as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    // One bearer token, a copy in each container's configuration.
    let token = match std::fs::read(layout.gateway_config().join("gateway.token")) {
        Ok(existing) => Zeroizing::new(existing),
        Err(_) => token_text(),
    };
    for folder in [layout.gateway_config(), layout.messaging_config()] {
        pod_changed |= undo.put(&folder.join("gateway.token"), &token, 0o600, container)?;
    }
    pod_changed |= undo.secret(
        &layout.gateway_config().join("assistant.key"),
        || random_secret(32),
        container,
    )?;
    pod_changed |= undo.secret(
        &layout.messaging_config().join("messages.key"),
        || random_secret(32),
        container,
    )?;
    let identity = layout.workspace().join("IDENTITY.md");
    if !identity.exists() {
        undo.put(
            &identity,
            crate::render::identity(&answers.household, answers.language).as_bytes(),
            0o644,
            Owner::ROOT,
        )?;
    }
    let model_changed = if podman && checked.model_file.is_none() {
        // A server on the machine: nothing of it is the hub's.
        false
    } else {
        place_model(layout, answers, checked, undo)?
    };
    pod_changed |= model_changed;
    let changed = Changed {
        coordinator: coordinator_changed,
        model: model_changed,
        pod: pod_changed,
    };
    Ok(changed)
}

/// The pod's user and group in Podman alone.
const POD_USER: Owner = Owner {
    uid: CONTAINER_USER,
    gid: CONTAINER_USER,
};

/// In Podman alone the models' containers (llama-server's, the search
/// model's) run as the pod's user and make their sockets in this folder, a
/// volume: theirs, whatever the model (a server on the machine too, when
/// the search model runs in the pod).
fn pod_models_folder(layout: &Layout) -> anyhow::Result<()> {
    system::make_folder(&layout.inference_dir(), 0o750, POD_USER)
}

/// What the Debian packages install under `/etc/hearth` (conffiles, the
/// admin's to edit), for the hub in Podman alone, where no package put
/// them: written when missing, never over the admin's. And the state
/// folders systemd would make: the coordinator's, the pod user's; the
/// agent's, root's.
fn write_podman_defaults(layout: &Layout, undo: &mut Undo) -> anyhow::Result<()> {
    const DEFAULTS: [(&str, &str); 2] = [
        (
            "gateway/gateway.json5",
            include_str!("../../packaging/hearth/etc/hearth/gateway/gateway.json5"),
        ),
        (
            "messaging/messaging.json5",
            include_str!("../../packaging/hearth/etc/hearth/messaging/messaging.json5"),
        ),
    ];
    for (name, text) in DEFAULTS {
        let path = layout.config_dir().join(name);
        if !path.exists() {
            undo.put(&path, text.as_bytes(), 0o644, Owner::ROOT)?;
        }
    }
    system::make_folder(&layout.coordinator_state(), 0o700, POD_USER)?;
    pod_models_folder(layout)?;
    system::make_folder(&layout.agent_state(), 0o700, Owner::ROOT)?;
    // The agent (root, without the right to override permissions) makes
    // its whois socket here; the pod's services may enter and use it.
    system::make_folder(
        &layout.whois_dir(),
        0o750,
        Owner {
            uid: 0,
            gid: CONTAINER_USER,
        },
    )?;
    Ok(())
}

/// Puts the model where its services look: llama-server's file (the
/// package's linked, the admin's copied) or the socket's drop-in towards
/// Ollama. Whether anything changed.
pub(crate) fn place_model(
    layout: &Layout,
    answers: &Answers,
    checked: &Checked,
    undo: &mut Undo,
) -> anyhow::Result<bool> {
    let dropin = layout.ollama_dropin();
    let mut changed = false;
    if crate::manager::in_podman() {
        pod_models_folder(layout)?;
    }
    match &checked.model_file {
        Some(file) => {
            if dropin.exists() {
                let old = std::fs::read(&dropin)?;
                std::fs::remove_file(&dropin)?;
                undo.replaced(&dropin, Zeroizing::new(old), 0o644, Owner::ROOT);
                changed = true;
            }
            let llama = if crate::manager::in_podman() {
                POD_USER
            } else {
                Owner {
                    uid: system::user(layout, "hearth-llama")?,
                    gid: system::group(layout, "hearth-llama")?,
                }
            };
            system::make_folder(&layout.llama_state(), 0o750, llama)?;
            let target = layout.model_file();
            let same = match answers.model {
                ModelChoice::Default => std::fs::read_link(&target).ok().as_deref() == Some(file),
                _ => same_file(file, &target),
            };
            if !same {
                let previous = target.with_extension("gguf.before-setup");
                if target.symlink_metadata().is_ok() {
                    std::fs::rename(&target, &previous)?;
                    undo.created(&previous);
                }
                undo.created(&target);
                if matches!(answers.model, ModelChoice::Default) {
                    std::os::unix::fs::symlink(file, &target)?;
                } else {
                    crate::steps::announce(crate::steps::Step::CopyingModel(file));
                    let partial = target.with_extension("gguf.partial");
                    std::fs::copy(file, &partial)
                        .with_context(|| format!("cannot copy {}", file.display()))?;
                    std::os::unix::fs::chown(&partial, Some(llama.uid), Some(llama.gid))?;
                    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o640))?;
                    std::fs::rename(&partial, &target)?;
                }
                if previous.exists() {
                    std::fs::remove_file(&previous)?;
                }
                changed = true;
            }
        }
        None => {
            let text = crate::render::OLLAMA_DROPIN;
            system::make_folder(
                dropin.parent().context("a drop-in has a folder")?,
                0o755,
                Owner::ROOT,
            )?;
            changed |= undo.put(&dropin, text.as_bytes(), 0o644, Owner::ROOT)?;
        }
    }
    Ok(changed)
}

/// Whether two files have the same size and contents.
fn same_file(one: &Path, other: &Path) -> bool {
    use std::io::Read as _;
    let (Ok(a), Ok(b)) = (std::fs::File::open(one), std::fs::File::open(other)) else {
        return false;
    };
    let same_size = match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.len() == b.len(),
        _ => false,
    };
    if !same_size {
        return false;
    }
    let (mut a, mut b) = (std::io::BufReader::new(a), std::io::BufReader::new(b));
    let (mut left, mut right) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let Ok(read) = a.read(&mut left) else {
            return false;
        };
        if read == 0 {
            return true;
        }
        if b.read_exact(&mut right[..read]).is_err() || left[..read] != right[..read] {
            return false;
        }
    }
}
