//! `hearth setup`: from an installed package to a running hub. It asks (or
//! takes flags for) the household's name, its public URL, the first admin
//! and the model; checks every answer and the machine (ports, the model
//! file, Ollama, the package's parts) before it writes anything; then
//! writes the configuration and the secrets, starts the coordinator, the
//! hub's own agent (joined to its own mesh), the model and the pod, waiting
//! until each answers, and prints what the first member needs.
//!
//! Running it again with the same answers changes nothing that works: files
//! are rewritten only when their text differs, secrets and the database are
//! kept, a unit is restarted only when its configuration changed. When a
//! step fails, what this run made is taken back (files, enabled units, and
//! on a first run the state the services began), and the error says which
//! step failed and what its service logged.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::answers::{Answers, ModelChoice, PublicUrl, check_household, parse_http_port};
use crate::layout::{CONTAINER_USER, Layout, MESSAGING_PORT, SOCKET_GROUP, Unit};
use crate::probe::{self, Target};
use crate::system::{self, Owner, write_file};

/// Where setup looks for Ollama.
pub const OLLAMA: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 11_434);
/// The tag the hub's own node carries.
pub const HUB_TAG: &str = "tag:hub";
/// How long the first member's key lasts.
const FIRST_KEY_LIFETIME: &str = "7d";

/// Answers given as flags (the rest are asked, or taken from the last run).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// The household's name.
    pub household: Option<String>,
    /// The public URL.
    pub url: Option<String>,
    /// The first admin.
    pub admin: Option<String>,
    /// `default`, `ollama[:NAME]` or a GGUF file.
    pub model: Option<String>,
    /// The plain-HTTP port or `off`.
    pub http_port: Option<String>,
    /// The hub's name in the mesh.
    pub hostname: Option<String>,
    /// Never ask: a missing answer is an error.
    pub non_interactive: bool,
}

/// What setup was told, and when it last completed (`setup.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Record {
    /// What it was told.
    pub answers: Answers,
    /// When setup last completed (Unix seconds).
    pub completed_at: i64,
}

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

/// Runs setup.
pub fn run(layout: &Layout, flags: Flags) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("hearth setup configures system services: run it as root (sudo hearth setup)");
    }
    let previous = read_record(layout)?;
    let answers = collect(
        layout,
        &flags,
        previous.as_ref().map(|record| &record.answers),
    )?;
    let checked = check_machine(layout, &answers, previous.as_ref())?;
    let mut undo = Undo::new(previous.is_none());
    match apply(layout, &answers, &checked, &mut undo) {
        Ok(summary) => {
            undo.forget();
            print_summary(&answers, &summary);
            Ok(())
        }
        Err(error) => {
            eprintln!("setup failed; taking back what this run made");
            undo.take_back();
            Err(error)
        }
    }
}

/// The last completed setup's record, if any.
pub fn read_record(layout: &Layout) -> anyhow::Result<Option<Record>> {
    let Some(text) = system::read_optional(&layout.setup_file())? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is damaged", layout.setup_file().display()))
}

/// Each answer from its flag, else the last run's, else asked.
fn collect(layout: &Layout, flags: &Flags, previous: Option<&Answers>) -> anyhow::Result<Answers> {
    let interactive = !flags.non_interactive && std::io::stdin().is_terminal();
    let ask = |question: &str, default: Option<String>| -> anyhow::Result<String> {
        if !interactive {
            return default.with_context(|| {
                format!("{question}: no answer given (pass it as a flag; see hearth setup --help)")
            });
        }
        let shown = default
            .as_deref()
            .map(|value| format!(" [{value}]"))
            .unwrap_or_default();
        eprint!("{question}{shown}: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.trim().to_owned();
        match (line.is_empty(), default) {
            (false, _) => Ok(line),
            (true, Some(default)) => Ok(default),
            (true, None) => bail!("{question}: an answer is needed"),
        }
    };
    let machine_name = hostname();
    let household = match &flags.household {
        Some(value) => value.clone(),
        None => ask(
            "The household's name",
            previous.map(|answers| answers.household.clone()),
        )?,
    };
    let household = check_household(&household)?;
    let url = match &flags.url {
        Some(value) => value.clone(),
        None => ask(
            "The address members' devices reach this hub at",
            Some(
                previous
                    .map(|answers| answers.url.to_string())
                    .unwrap_or_else(|| format!("https://{machine_name}")),
            ),
        )?,
    };
    let url = PublicUrl::parse(&url)?;
    let admin = match &flags.admin {
        Some(value) => value.clone(),
        None => ask(
            "The first admin's user name (also the first member)",
            previous.map(|answers| answers.admin.clone()),
        )?,
    };
    let model = match &flags.model {
        Some(value) => value.clone(),
        None => {
            let offered = offer_model(layout);
            ask(
                "The model: default, ollama[:NAME], or a GGUF file's path",
                previous
                    .map(|answers| model_text(&answers.model))
                    .or(offered),
            )?
        }
    };
    let mut model = ModelChoice::parse(&model)?;
    if let ModelChoice::File { path } = &mut model
        && path.is_relative()
    {
        *path = std::env::current_dir()?.join(&*path);
    }
    let http_port = match &flags.http_port {
        Some(value) => parse_http_port(value)?,
        None => previous.map_or(Some(80), |answers| answers.http_port),
    };
    let hostname = flags
        .hostname
        .clone()
        .or_else(|| previous.map(|answers| answers.hostname.clone()))
        .unwrap_or(machine_name);
    let answers = Answers {
        household,
        url,
        admin: admin.trim().to_owned(),
        model,
        http_port,
        hostname,
    };
    answers.check()?;
    Ok(answers)
}

fn model_text(model: &ModelChoice) -> String {
    match model {
        ModelChoice::Default => "default".into(),
        ModelChoice::File { path } => path.display().to_string(),
        ModelChoice::Ollama { name } if name.is_empty() => "ollama".into(),
        ModelChoice::Ollama { name } => format!("ollama:{name}"),
    }
}

/// Ollama first when one answers here (the design this comes from puts it
/// first), else the packaged small model when installed.
fn offer_model(layout: &Layout) -> Option<String> {
    if let Ok(models) = ollama_models()
        && !models.is_empty()
    {
        eprintln!("An Ollama answers at {OLLAMA} with: {}", models.join(", "));
        return Some(format!("ollama:{}", models[0]));
    }
    default_model_file(layout).ok().map(|_| "default".into())
}

/// The machine's host name, as a mesh name (lower case).
fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_lowercase()
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
fn default_model_file(layout: &Layout) -> anyhow::Result<PathBuf> {
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
    found.into_iter().next().with_context(|| {
        format!(
            "the default model is not installed ({} is empty): install the hearth-model-smollm2 \
             package, or choose --model ollama or --model FILE.gguf",
            folder.display()
        )
    })
}

/// What the machine checks settled.
struct Checked {
    /// The model file llama-server will serve (none with Ollama).
    model_file: Option<PathBuf>,
    /// The model's id in the gateway.
    model_id: String,
}

/// Everything that can be refused before anything is written.
fn check_machine(
    layout: &Layout,
    answers: &Answers,
    previous: Option<&Record>,
) -> anyhow::Result<Checked> {
    if let Some(previous) = previous {
        let before = &previous.answers;
        if before.url != answers.url || before.admin != answers.admin {
            bail!(
                "this hub was set up for {} with admin {}; its devices' keys name that URL. To \
                 start over, back it up (hearth backup FILE), then `apt purge hearth` and install \
                 it again",
                before.url,
                before.admin
            );
        }
    }
    let checked_name =
        system::output(system::coordinator(layout).args(["users", "check", &answers.admin]))?;
    if !checked_name.status.success() {
        bail!(
            "the admin's name: {}",
            String::from_utf8_lossy(&checked_name.stderr)
                .trim()
                .trim_start_matches("Error: ")
        );
    }
    for needed in [layout.pod_template(), layout.images_manifest()] {
        if !needed.exists() {
            bail!(
                "{} is missing: is the hearth package installed?",
                needed.display()
            );
        }
    }
    let (model_file, model_id) = match &answers.model {
        ModelChoice::Default => {
            let file = default_model_file(layout)?;
            let id = answers
                .model
                .id(&file.file_name().unwrap_or_default().to_string_lossy());
            (Some(file), id)
        }
        ModelChoice::File { path } => {
            check_gguf(path)?;
            (Some(path.clone()), answers.model.id(""))
        }
        ModelChoice::Ollama { name } => {
            let models = ollama_models().map_err(|error| {
                anyhow::anyhow!(
                    "no Ollama answers at {OLLAMA} ({error:#}): start it, or choose another model"
                )
            })?;
            let chosen = if name.is_empty() {
                models.first().cloned().with_context(|| {
                    format!("the Ollama at {OLLAMA} has no model: `ollama pull NAME` first")
                })?
            } else if models
                .iter()
                .any(|listed| listed == name || listed == &format!("{name}:latest"))
            {
                name.clone()
            } else {
                bail!(
                    "the Ollama at {OLLAMA} has no model {name} (it has: {})",
                    models.join(", ")
                );
            };
            (None, chosen)
        }
    };
    if model_file.is_some() && !layout.llama_server().exists() {
        bail!(
            "{} is missing: install the hearth-llama-server package, or choose --model ollama",
            layout.llama_server().display()
        );
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
    Ok(Checked {
        model_file,
        model_id,
    })
}

/// Whether `path` can be read and is a GGUF model.
fn check_gguf(path: &Path) -> anyhow::Result<()> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the model file {}", path.display()))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .with_context(|| format!("cannot read the model file {}", path.display()))?;
    if &magic != b"GGUF" {
        bail!(
            "{} is not a GGUF model file (llama.cpp's format: a file ending in .gguf)",
            path.display()
        );
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
    bail!(
        "port {port}/{name} is taken by another program{holder}: stop it, or give the hub another \
         port (--url https://HOST:PORT, --http-port PORT|off)"
    )
}

/// What setup made, to be taken back if a later step fails.
struct Undo {
    first_run: bool,
    steps: Vec<Step>,
}

enum Step {
    Created(PathBuf),
    Replaced(PathBuf, Zeroizing<Vec<u8>>, u32, Owner),
    Enabled(Unit),
    Started(Unit),
    /// A state folder the services began on this (first) run.
    Began(PathBuf),
}

impl Undo {
    fn new(first_run: bool) -> Undo {
        Undo {
            first_run,
            steps: Vec::new(),
        }
    }

    fn forget(&mut self) {
        self.steps.clear();
    }

    fn take_back(&mut self) {
        while let Some(step) = self.steps.pop() {
            let result = match &step {
                Step::Enabled(unit) => {
                    system::systemctl(&["disable", "--now", unit.name()]).map(drop)
                }
                Step::Started(unit) => system::systemctl(&["stop", unit.name()]).map(drop),
                Step::Created(path) => std::fs::remove_file(path)
                    .or_else(|error| match error.kind() {
                        std::io::ErrorKind::NotFound => Ok(()),
                        _ => Err(error),
                    })
                    .map_err(anyhow::Error::from),
                Step::Replaced(path, contents, mode, owner) => {
                    write_file(path, contents, *mode, *owner)
                }
                Step::Began(folder) => empty_folder(folder),
            };
            if let Err(error) = result {
                eprintln!("  could not take back a step: {error:#}");
            }
        }
    }

    /// Writes `contents` unless the file already holds them; whether it wrote.
    fn put(
        &mut self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        owner: Owner,
    ) -> anyhow::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        match std::fs::read(path) {
            Ok(old) if old == contents => return Ok(false),
            Ok(old) => {
                let metadata = std::fs::metadata(path)?;
                self.steps.push(Step::Replaced(
                    path.to_owned(),
                    Zeroizing::new(old),
                    metadata.permissions().mode() & 0o7777,
                    Owner {
                        uid: metadata.uid(),
                        gid: metadata.gid(),
                    },
                ));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.steps.push(Step::Created(path.to_owned()));
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        write_file(path, contents, mode, owner)?;
        Ok(true)
    }

    /// Makes a secret file unless one exists (secrets are never replaced).
    fn secret(
        &mut self,
        path: &Path,
        make: impl FnOnce() -> Zeroizing<Vec<u8>>,
        owner: Owner,
    ) -> anyhow::Result<bool> {
        if path.exists() {
            return Ok(false);
        }
        self.steps.push(Step::Created(path.to_owned()));
        write_file(path, &make(), 0o600, owner)?;
        Ok(true)
    }

    /// Enables and starts `unit` unless it runs; restarts it when `changed`.
    fn start(&mut self, unit: Unit, changed: bool) -> anyhow::Result<()> {
        let (state, enabled) = system::unit_state(unit);
        if !enabled {
            system::systemctl(&["enable", unit.name()])?;
            self.steps.push(Step::Enabled(unit));
        }
        if state != "active" {
            system::systemctl(&["start", unit.name()]).with_context(|| {
                format!("{} did not start:\n{}", unit.name(), system::journal(unit))
            })?;
            if enabled {
                self.steps.push(Step::Started(unit));
            }
        } else if changed {
            system::systemctl(&["restart", unit.name()]).with_context(|| {
                format!(
                    "{} did not restart:\n{}",
                    unit.name(),
                    system::journal(unit)
                )
            })?;
        }
        Ok(())
    }

    /// On a first run, `folder`'s contents are the services' to begin.
    fn began(&mut self, folder: &Path) {
        let empty = std::fs::read_dir(folder).map_or(true, |mut entries| entries.next().is_none());
        if self.first_run && empty {
            self.steps.push(Step::Began(folder.to_owned()));
        }
    }
}

fn empty_folder(folder: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// What the person is told at the end.
struct Summary {
    mesh_address: Ipv4Addr,
    first_key: String,
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

fn apply(
    layout: &Layout,
    answers: &Answers,
    checked: &Checked,
    undo: &mut Undo,
) -> anyhow::Result<Summary> {
    let container = Owner {
        uid: CONTAINER_USER,
        gid: system::group(layout, SOCKET_GROUP)?,
    };
    let now = hearth_runtime::clock::unix_seconds();
    eprintln!("Writing the configuration");
    for folder in [layout.gateway_config(), layout.messaging_config()] {
        system::make_folder(&folder, 0o755, Owner::ROOT)?;
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
        crate::render::setup_env(answers).as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    let timezone =
        crate::render::timezone(system::read_optional(&layout.etc("timezone"))?.as_deref());
    let mut pod_changed = undo.put(
        &layout.gateway_config().join("hub.json5"),
        crate::render::gateway_model(answers, &checked.model_id, &timezone).as_bytes(),
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
            crate::render::identity(&answers.household).as_bytes(),
            0o644,
            Owner::ROOT,
        )?;
    }
    let model_changed = place_model(layout, answers, checked, undo)?;
    pod_changed |= model_changed;
    let changed = Changed {
        coordinator: coordinator_changed,
        model: model_changed,
        pod: pod_changed,
    };
    let mesh_address = start(layout, answers, changed, undo)?;
    let first_key = first_member_key(layout, answers, undo)?;
    Ok(Summary {
        mesh_address,
        first_key,
    })
}

/// Which parts' configuration this run changed (they restart).
#[derive(Clone, Copy, Default)]
struct Changed {
    coordinator: bool,
    model: bool,
    pod: bool,
}

/// Starts the hub's services in order, each waited for, joining the hub's
/// agent to its mesh on the first run; the hub's mesh address.
fn start(
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
            .and_then(crate::pod::agent_address);
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
    undo.start(Unit::Pod, changed.pod)?;
    wait_for_pod(mesh_address)
        .map_err(|error| anyhow::anyhow!("{error:#}\n{}", system::journal(Unit::Pod)))?;
    Ok(mesh_address)
}

/// After a restore put the hub's files back: the model in place, every
/// service started and waited for.
pub fn restart_after_restore(layout: &Layout, answers: &Answers) -> anyhow::Result<Ipv4Addr> {
    let checked = check_machine(layout, answers, None)?;
    let mut undo = Undo::new(false);
    place_model(layout, answers, &checked, &mut undo)?;
    let changed = Changed {
        coordinator: true,
        model: true,
        pod: true,
    };
    let address = start(layout, answers, changed, &mut undo)?;
    undo.forget();
    Ok(address)
}

/// Puts the model where its services look: llama-server's file (the
/// package's linked, the admin's copied) or the socket's drop-in towards
/// Ollama. Whether anything changed.
fn place_model(
    layout: &Layout,
    answers: &Answers,
    checked: &Checked,
    undo: &mut Undo,
) -> anyhow::Result<bool> {
    let dropin = layout.ollama_dropin();
    let mut changed = false;
    match &checked.model_file {
        Some(file) => {
            if dropin.exists() {
                let old = std::fs::read(&dropin)?;
                std::fs::remove_file(&dropin)?;
                undo.steps.push(Step::Replaced(
                    dropin.clone(),
                    Zeroizing::new(old),
                    0o644,
                    Owner::ROOT,
                ));
                changed = true;
            }
            let llama = Owner {
                uid: system::user(layout, "hearth-llama")?,
                gid: system::group(layout, "hearth-llama")?,
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
                    undo.steps.push(Step::Created(previous.clone()));
                }
                undo.steps.push(Step::Created(target.clone()));
                if matches!(answers.model, ModelChoice::Default) {
                    std::os::unix::fs::symlink(file, &target)?;
                } else {
                    eprintln!("  copying {} (once)", file.display());
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

/// Waits until the pod's gateway is ready and messaging answers on the mesh.
pub fn wait_for_pod(mesh_address: Ipv4Addr) -> anyhow::Result<()> {
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
    })
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
fn first_member_key(layout: &Layout, answers: &Answers, undo: &mut Undo) -> anyhow::Result<String> {
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

fn print_summary(answers: &Answers, summary: &Summary) {
    let login = answers.login_url();
    let qr = hearth_runtime::terminal::qr(&login).unwrap_or_default();
    println!(
        "\nHearth is ready: {household}.\n\n\
         First member ({admin}): their join key (one device, valid 7 days):\n\n  {key}\n\n\
         Official Tailscale apps: choose \"Use an alternate server\" (or --login-server) with\n\n  \
         {login}\n\n\
         and sign in with the key:\n\n  tailscale up --login-server {login} --authkey <the key above>\n\n\
         {qr}\n\
         Hearth's own agent: hearth-agent up --token-file FILE (the key in FILE).\n\n\
         The household's chat, from a device in the mesh: http://{mesh}:{port}/\n\n\
         More members: hearth-coordinator users create NAME, then\n  \
         hearth-coordinator preauthkeys create --user NAME --expiration 7d\n\
         How the hub is doing: hearth status. Back it up: hearth backup FILE.",
        household = answers.household,
        admin = answers.admin,
        key = summary.first_key,
        mesh = summary.mesh_address,
        port = MESSAGING_PORT,
    );
}
