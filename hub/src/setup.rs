//! `hearth setup`: from an installed package to a running hub. It asks (or
//! takes flags for) the household's name, its public URL, the first admin
//! and the model; checks every answer and the machine (ports, the model
//! file, Ollama, the package's parts) before it writes anything; then
//! writes the configuration and the secrets, starts the coordinator, the
//! hub's own agent (joined to its own mesh), the model and the pod, waiting
//! until each answers, and prints what the first member needs.
//!
//! It is made of parts, each a module: the answers and their checks
//! ([`crate::answers`], pure), the machine's checks ([`crate::machine`]),
//! the undo journal ([`crate::undo`]), writing the configuration
//! ([`crate::configure`]) and starting the services ([`crate::services`]);
//! this module asks and runs them in order.
//!
//! Running it again with the same answers changes nothing that works: files
//! are rewritten only when their text differs, secrets and the database are
//! kept, a unit is restarted only when its configuration changed. When a
//! step fails, what this run made is taken back (files, enabled units, and
//! on a first run the state the services began), and the error says which
//! step failed and what its service logged.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::Ipv4Addr;

use anyhow::{Context, bail};

use crate::answers::{Answers, ModelChoice, PublicUrl, check_household, parse_http_port};
use crate::layout::{Layout, MESSAGING_PORT};
use crate::machine::{Checked, OLLAMA, check_machine, default_model_file, hostname, ollama_models};
use crate::record::read_record;
use crate::undo::Undo;

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

/// What the person is told at the end.
struct Summary {
    mesh_address: Ipv4Addr,
    first_key: String,
}

/// Writes the configuration, starts every service, makes the first
/// member's key.
fn apply(
    layout: &Layout,
    answers: &Answers,
    checked: &Checked,
    undo: &mut Undo,
) -> anyhow::Result<Summary> {
    let changed = crate::configure::write(layout, answers, checked, undo)?;
    let mesh_address = crate::services::start(layout, answers, changed, undo)?;
    let first_key = crate::services::first_member_key(layout, answers, undo)?;
    Ok(Summary {
        mesh_address,
        first_key,
    })
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
