//! The machine's checks, made before setup writes anything: the package's
//! parts, the model (the packaged file, a GGUF of the admin's, or an Ollama
//! on the machine and its models), the ports the hub will take, the admin's
//! name as the coordinator would take it, and the system's D-Bus running.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::answers::{Answers, ModelChoice};
use crate::checks::MachineError;
use crate::layout::OLLAMA_FROM_PODMAN;
use crate::layout::{Layout, Unit};
use crate::probe::{self, Target};
use crate::record::Record;
use crate::system;

/// Where setup looks for Ollama.
pub const OLLAMA: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 11_434);

/// The machine's host name, as a mesh name (lower case).
pub(crate) fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_lowercase()
}

/// This machine's memory in bytes (`/proc/meminfo`'s MemTotal; 0 when it
/// cannot be read).
pub(crate) fn memory_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Where the model server the hub asks answers whether it is up (its
/// address, resolved now, and the path): Ollama's `/api/version`,
/// llama-server's `/health`. For the packaged llama-server, its socket.
pub fn host_model_probe(model: &ModelChoice) -> anyhow::Result<(Target, &'static str)> {
    use std::net::ToSocketAddrs as _;
    let resolve = |host_port: &str| -> anyhow::Result<Target> {
        let address = host_port
            .to_socket_addrs()
            .with_context(|| format!("{host_port} does not resolve"))?
            .next()
            .with_context(|| format!("{host_port} has no address"))?;
        Ok(Target::Tcp(address))
    };
    match model {
        ModelChoice::Ollama { .. } if crate::manager::in_podman() => {
            Ok((resolve(OLLAMA_FROM_PODMAN)?, "/api/version"))
        }
        ModelChoice::Ollama { .. } => Ok((Target::Tcp(OLLAMA), "/api/version")),
        ModelChoice::Server { url } => {
            let host_port = url.strip_prefix("http://").unwrap_or(url);
            Ok((resolve(host_port)?, "/health"))
        }
        ModelChoice::Default | ModelChoice::File { .. } => Ok((
            Target::Unix(crate::layout::Layout::system().inference_socket()),
            "/health",
        )),
    }
}

/// The models an Ollama at [`OLLAMA`] lists.
pub fn ollama_models() -> anyhow::Result<Vec<String>> {
    ollama_models_at(&Target::Tcp(OLLAMA))
}

/// The models an Ollama at `target` lists (`GET /api/tags`).
pub fn ollama_models_at(target: &Target) -> anyhow::Result<Vec<String>> {
    let answer = probe::get(target, "/api/tags")?;
    if answer.status != 200 {
        bail!("/api/tags answered {}", answer.status);
    }
    let tags: serde_json::Value =
        serde_json::from_slice(&answer.body).context("/api/tags is not Ollama's answer")?;
    Ok(tags["models"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|model| model["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The GGUF file the model package installed.
pub(crate) fn default_model_file(layout: &Layout) -> anyhow::Result<PathBuf> {
    let folder = layout.default_models();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.extension()
                        .is_some_and(|extension| extension == "gguf")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or(MachineError::NoDefaultModel(folder))
        .map_err(anyhow::Error::from)
}

/// What the machine checks settled.
pub(crate) struct Checked {
    /// The model file llama-server will serve (none with Ollama).
    pub(crate) model_file: Option<PathBuf>,
    /// The model's id in the gateway.
    pub(crate) model_id: String,
}

/// The admin's name as the coordinator would take it (asked of it,
/// without a running coordinator).
pub(crate) fn check_admin(layout: &Layout, name: &str) -> anyhow::Result<()> {
    let checked = system::output(system::coordinator(layout).args(["users", "check", name]))?;
    if !checked.status.success() {
        let reason = String::from_utf8_lossy(&checked.stderr);
        let reason = reason.trim().trim_start_matches("Error: ");
        return Err(MachineError::AdminName(reason.to_owned()).into());
    }
    Ok(())
}

/// Everything that can be refused before anything is written.
pub(crate) fn check_machine(
    layout: &Layout,
    answers: &Answers,
    previous: Option<&Record>,
) -> anyhow::Result<Checked> {
    if let Some(previous) = previous {
        let before = &previous.answers;
        if before.url != answers.url || before.admin != answers.admin {
            return Err(MachineError::SetUpFor {
                url: before.url.to_string(),
                admin: before.admin.clone(),
            }
            .into());
        }
    }
    check_admin(layout, &answers.admin)?;
    let (model_file, model_id) = check_model(layout, &answers.model)?;
    if let crate::manager::Manager::Podman(hub) = crate::manager::current() {
        // The pod's template is in this program; the machine's ports are
        // Podman's to give (it says which is taken when the pod plays).
        hub.api.ping()?;
        return Ok(Checked {
            model_file,
            model_id,
        });
    }
    for needed in [layout.pod_template(), layout.images_manifest()] {
        if !needed.exists() {
            return Err(MachineError::PackagePart(needed).into());
        }
    }
    // Units of this hub already running: their ports are theirs.
    let running: Vec<Unit> = Unit::ALL
        .into_iter()
        .filter(|unit| system::unit_state(*unit).0 == "active")
        .collect();
    let mut ports = vec![(answers.url.port(), Protocol::Tcp, Unit::Coordinator)];
    if let Some(port) = answers.http_port {
        ports.push((port, Protocol::Tcp, Unit::Coordinator));
    }
    ports.push((3478, Protocol::Udp, Unit::Coordinator));
    ports.push((41641, Protocol::Udp, Unit::Agent));
    for (port, protocol, owner) in ports {
        if running.contains(&owner) {
            continue;
        }
        check_port(port, protocol)?;
    }
    // Last: the one check that changes the machine (it may start D-Bus).
    ensure_system_bus(layout)?;
    Ok(Checked {
        model_file,
        model_id,
    })
}

/// Checks the model `model` on this machine (setup checks it as the answer
/// is given, so a bad path is asked again at once): the file llama-server
/// will serve and the model's id in the gateway, or why it cannot be used.
pub(crate) fn check_model(
    layout: &Layout,
    model: &ModelChoice,
) -> anyhow::Result<(Option<PathBuf>, String)> {
    let in_podman = crate::manager::in_podman();
    let (model_file, model_id) = match model {
        ModelChoice::Server { url } => {
            let (target, _) = host_model_probe(model)?;
            let answer =
                probe::get(&target, "/v1/models").map_err(|error| MachineError::ServerSilent {
                    url: url.clone(),
                    detail: format!("{error:#}"),
                })?;
            let listed: serde_json::Value = serde_json::from_slice(&answer.body)
                .ok()
                .filter(|_| answer.status == 200)
                .ok_or_else(|| MachineError::ServerNotOpenAi(url.clone()))?;
            let id = listed["data"][0]["id"]
                .as_str()
                .ok_or_else(|| MachineError::ServerEmpty(url.clone()))?;
            (None, crate::answers::model_id_of(id))
        }
        ModelChoice::Default => {
            let file = default_model_file(layout)?;
            let id = model.id(&file.file_name().unwrap_or_default().to_string_lossy());
            (Some(file), id)
        }
        ModelChoice::File { path } => {
            check_gguf(path)?;
            (Some(path.clone()), model.id(""))
        }
        ModelChoice::Ollama { name } => {
            let (target, _) = host_model_probe(model)?;
            let at = if in_podman {
                OLLAMA_FROM_PODMAN.to_owned()
            } else {
                OLLAMA.to_string()
            };
            let models = ollama_models_at(&target).map_err(|error| MachineError::OllamaSilent {
                at: at.clone(),
                detail: format!("{error:#}"),
            })?;
            let chosen = if name.is_empty() {
                models
                    .first()
                    .cloned()
                    .ok_or_else(|| MachineError::OllamaEmpty(at.clone()))?
            } else if models
                .iter()
                .any(|listed| listed == name || listed == &format!("{name}:latest"))
            {
                name.clone()
            } else {
                return Err(MachineError::OllamaLacks {
                    at,
                    name: name.clone(),
                    has: models.join(", "),
                }
                .into());
            };
            (None, chosen)
        }
    };
    if model_file.is_some() && !layout.llama_server().exists() {
        return Err(MachineError::NoLlamaServer(layout.llama_server()).into());
    }
    Ok((model_file, model_id))
}

/// Makes sure the system's D-Bus runs: the pod's containers are started
/// through systemd, which crun reaches over it ("cannot open sd-bus"). A
/// minimal, LXC or debootstrap server has dbus installed (Podman pulls it
/// in) but nothing starts it until a reboot; this starts it, before
/// anything of the hub is written, or says what to do.
pub(crate) fn ensure_system_bus(layout: &Layout) -> anyhow::Result<()> {
    // The socket's file outlives a stopped bus: it runs if it answers.
    let answers = || std::os::unix::net::UnixStream::connect(layout.system_bus()).is_ok();
    if answers() {
        return Ok(());
    }
    let started = system::systemctl(&["start", "dbus.socket", "dbus.service"]);
    let up = started.is_ok()
        && system::wait_for(
            crate::steps::Awaited::SystemBus,
            std::time::Duration::from_secs(10),
            || {
                if answers() {
                    Ok(())
                } else {
                    bail!("nothing answers at {} yet", layout.system_bus().display())
                }
            },
        )
        .is_ok();
    if !up {
        return Err(MachineError::NoSystemBus(started.err().map_or_else(
            || format!("nothing answers at {}", layout.system_bus().display()),
            |error| format!("{error:#}"),
        ))
        .into());
    }
    crate::steps::announce(crate::steps::Step::StartedSystemBus);
    Ok(())
}

/// Whether `path` can be read and is a GGUF model.
fn check_gguf(path: &Path) -> anyhow::Result<()> {
    use std::io::Read as _;
    let unreadable = |error: std::io::Error| MachineError::UnreadableModel {
        path: path.to_owned(),
        detail: error.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).map_err(unreadable)?;
    if &magic != b"GGUF" {
        return Err(MachineError::NotGguf(path.to_owned()).into());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Tcp,
    Udp,
}

/// Refuses a port another program holds, naming it when `ss` can.
fn check_port(port: u16, protocol: Protocol) -> anyhow::Result<()> {
    let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    let any4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let free = match protocol {
        Protocol::Tcp => {
            std::net::TcpListener::bind(any).is_ok() && std::net::TcpListener::bind(any4).is_ok()
        }
        Protocol::Udp => {
            std::net::UdpSocket::bind(any).is_ok() && std::net::UdpSocket::bind(any4).is_ok()
        }
    };
    if free {
        return Ok(());
    }
    let (name, flag) = match protocol {
        Protocol::Tcp => ("tcp", "-ltnpH"),
        Protocol::Udp => ("udp", "-lunpH"),
    };
    let holder =
        system::output(std::process::Command::new("ss").args([flag, &format!("sport = :{port}")]))
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
    let holder = holder
        .split("users:((")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|who| format!(" ({who})"))
        .unwrap_or_default();
    Err(MachineError::PortTaken {
        port,
        protocol: name,
        holder,
    }
    .into())
}
