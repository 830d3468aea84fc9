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

use anyhow::{anyhow, bail};
use hearth_assistant::language::Language;

use crate::answers::{
    AnswerError, Answers, ModelChoice, PublicUrl, check_household, language_of_locale,
    parse_http_port, parse_language,
};
use crate::layout::{Layout, MESSAGING_PORT};
use crate::machine::{
    Checked, OLLAMA, check_machine, default_model_file, hostname, memory_total, ollama_models,
};
use crate::record::read_record;
use crate::undo::Undo;
use crate::words::{self, Question, Summary};

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
    /// The household's language (`en`, `ko`).
    pub lang: Option<String>,
    /// Never ask: a missing answer is an error.
    pub non_interactive: bool,
}

/// Runs setup.
pub fn run(layout: &Layout, flags: Flags) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        let locale = language_of_locale(system_locale().as_deref());
        let language = flags
            .lang
            .as_deref()
            .and_then(|lang| parse_language(lang).ok())
            .unwrap_or(locale);
        bail!(match language {
            Language::English => {
                "hearth setup configures system services: run it as root (su - first, or sudo hearth setup)"
            }
            Language::Korean => {
                "hearth setup은 시스템 서비스를 설정해요: root로 실행하세요 (먼저 su -, 또는 sudo hearth setup)"
            }
        });
    }
    let previous = read_record(layout)?;
    let answers = collect(
        layout,
        &flags,
        previous.as_ref().map(|record| &record.answers),
    )?;
    let language = answers.language;
    let checked = check_machine(layout, &answers, previous.as_ref())?;
    let mut undo = Undo::new(previous.is_none());
    match apply(layout, &answers, &checked, &mut undo) {
        Ok(summary) => {
            undo.forget();
            print_summary(&answers, &summary);
            Ok(())
        }
        Err(error) => {
            eprintln!("{}", words::taking_back(language));
            undo.take_back();
            Err(error)
        }
    }
}

/// The system's locale, as `LC_ALL`, `LC_MESSAGES` or `LANG` names it.
fn system_locale() -> Option<String> {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
}

/// Each answer from its flag, else the last run's, else asked (in the
/// household's language, asked first).
fn collect(layout: &Layout, flags: &Flags, previous: Option<&Answers>) -> anyhow::Result<Answers> {
    let interactive = !flags.non_interactive && std::io::stdin().is_terminal();
    let ask = |language: Language,
               question: Question,
               default: Option<String>|
     -> anyhow::Result<String> {
        if !interactive {
            return default.ok_or_else(|| anyhow!(words::no_answer(language, question)));
        }
        let shown = default
            .as_deref()
            .map(|value| format!(" [{value}]"))
            .unwrap_or_default();
        eprint!("{}{shown}: ", question.ask(language));
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.trim().to_owned();
        match (line.is_empty(), default) {
            (false, _) => Ok(line),
            (true, Some(default)) => Ok(default),
            (true, None) => bail!(words::answer_needed(language, question)),
        }
    };
    let language = match (&flags.lang, previous) {
        (Some(lang), _) => parse_language(lang),
        (None, Some(previous)) => Ok(previous.language),
        (None, None) => {
            let locale = language_of_locale(system_locale().as_deref());
            let answer = ask(locale, Question::Language, Some(locale.tag().to_owned()))?;
            parse_language(&answer)
        }
    }
    .map_err(|error| anyhow!(words::answer_error(language_of_locale(None), &error)))?;
    let refused = |error: AnswerError| anyhow!(words::answer_error(language, &error));
    let machine_name = hostname();
    let household = match &flags.household {
        Some(value) => value.clone(),
        None => ask(
            language,
            Question::Household,
            previous.map(|answers| answers.household.clone()),
        )?,
    };
    let household = check_household(&household).map_err(refused)?;
    let url = match &flags.url {
        Some(value) => value.clone(),
        None => ask(
            language,
            Question::Url,
            Some(
                previous
                    .map(|answers| answers.url.to_string())
                    .unwrap_or_else(|| format!("https://{machine_name}")),
            ),
        )?,
    };
    let url = PublicUrl::parse(&url).map_err(refused)?;
    let admin = match &flags.admin {
        Some(value) => value.clone(),
        None => ask(
            language,
            Question::Admin,
            previous.map(|answers| answers.admin.clone()),
        )?,
    };
    let model = match &flags.model {
        Some(value) => value.clone(),
        None => {
            let offered = offer_model(layout, language);
            if language == Language::Korean && offered.as_deref() == Some("default") {
                eprintln!("{}\n", words::korean_model_advice(memory_total()));
            }
            ask(
                language,
                Question::Model,
                previous
                    .map(|answers| model_text(&answers.model))
                    .or(offered),
            )?
        }
    };
    let mut model = ModelChoice::parse(&model).map_err(refused)?;
    if let ModelChoice::File { path } = &mut model
        && path.is_relative()
    {
        *path = std::env::current_dir()?.join(&*path);
    }
    let http_port = match &flags.http_port {
        Some(value) => parse_http_port(value).map_err(refused)?,
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
        language,
    };
    answers.check().map_err(refused)?;
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
fn offer_model(layout: &Layout, language: Language) -> Option<String> {
    if let Ok(models) = ollama_models()
        && !models.is_empty()
    {
        eprintln!(
            "{}",
            words::ollama_found(language, &OLLAMA.to_string(), &models.join(", "))
        );
        return Some(format!("ollama:{}", models[0]));
    }
    default_model_file(layout).ok().map(|_| "default".into())
}

/// What setup made that the person is told at the end.
struct Made {
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
) -> anyhow::Result<Made> {
    let changed = crate::configure::write(layout, answers, checked, undo)?;
    let mesh_address = crate::services::start(layout, answers, changed, undo)?;
    let first_key = crate::services::first_member_key(layout, answers, undo)?;
    Ok(Made {
        mesh_address,
        first_key,
    })
}

fn print_summary(answers: &Answers, summary: &Made) {
    let login = answers.login_url();
    let qr = hearth_runtime::terminal::qr(&login).unwrap_or_default();
    let chat = format!("http://{}:{MESSAGING_PORT}/", summary.mesh_address);
    let text = Summary {
        household: &answers.household,
        admin: &answers.admin,
        key: &summary.first_key,
        login: &login,
        qr: &qr,
        chat: &chat,
    };
    println!("{}", text.say(answers.language));
    if answers.language == Language::Korean && answers.model == ModelChoice::Default {
        println!("\n{}", words::korean_model_advice(memory_total()));
    }
}
