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

use anyhow::{anyhow, bail};
use hearth_assistant::language::Language;

use crate::answers::{
    AnswerError, Answers, ModelChoice, PublicUrl, check_household, language_of_locale,
    parse_http_port, parse_language, parse_yes_no, yes_no,
};
use crate::layout::{Layout, MESSAGING_PORT};
use crate::machine::{
    Checked, OLLAMA, check_admin, check_machine, default_model_file, hostname, memory_total,
    ollama_models,
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
    /// Whether members' apps may use the hub (`yes`, `no`).
    pub apps: Option<String>,
    /// The household's language (`en`, `ko`).
    pub lang: Option<String>,
    /// Never ask: a missing answer is an error.
    pub non_interactive: bool,
}

/// Runs setup.
pub fn run(layout: &Layout, flags: Flags) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        let locale = language_of_locale(hearth_runtime::terminal::locale().as_deref());
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

/// Each answer from its flag, else the last run's, else asked (in the
/// household's language, asked first). Each is checked as it is given: a
/// bad flag ends the run, a bad typed answer is said and asked again.
fn collect(layout: &Layout, flags: &Flags, previous: Option<&Answers>) -> anyhow::Result<Answers> {
    let interactive = !flags.non_interactive && std::io::stdin().is_terminal();
    let read_line = |language: Language, question: Question, default: &Option<String>| {
        let shown = default
            .as_deref()
            .map(|value| format!(" [{value}]"))
            .unwrap_or_default();
        eprint!("{}{shown}: ", question.ask(language));
        std::io::stderr().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!(words::no_answer(language, question));
        }
        Ok(line.trim().to_owned())
    };
    let language = match (&flags.lang, previous) {
        (Some(lang), _) => parse_language(lang)
            .map_err(|error| anyhow!(words::answer_error(language_of_locale(None), &error)))?,
        (None, Some(previous)) => previous.language,
        (None, None) => {
            let locale = language_of_locale(hearth_runtime::terminal::locale().as_deref());
            let asking = Asking {
                interactive,
                language: locale,
                question: Question::Language,
                read: &read_line,
            };
            asking.answer(None, Some(locale.tag().to_owned()), |text| {
                parse_language(text).map_err(|error| Refusal(words::answer_error(locale, &error)))
            })?
        }
    };
    crate::steps::use_language(language);
    let refused = |error: AnswerError| Refusal(words::answer_error(language, &error));
    let asking = |question| Asking {
        interactive,
        language,
        question,
        read: &read_line,
    };
    // In Podman alone this runs in a container, whose host name is no
    // one's: the hub is `hub`, and the URL is asked.
    let podman = crate::manager::in_podman();
    let machine_name = if podman { "hub".to_owned() } else { hostname() };
    let household = asking(Question::Household).answer(
        flags.household.as_deref(),
        previous.map(|answers| answers.household.clone()),
        |text| check_household(text).map_err(refused),
    )?;
    let url = asking(Question::Url).answer(
        flags.url.as_deref(),
        previous
            .map(|answers| answers.url.to_string())
            .or_else(|| (!podman).then(|| format!("https://{machine_name}"))),
        |text| PublicUrl::parse(text).map_err(refused),
    )?;
    let admin = asking(Question::Admin).answer(
        flags.admin.as_deref(),
        previous.map(|answers| answers.admin.clone()),
        |text| {
            if text.trim().is_empty() {
                return Err(refused(AnswerError::Admin));
            }
            check_admin(layout, text.trim())
                .map(|()| text.trim().to_owned())
                .map_err(|said| Refusal(format!("{said:#}")))
        },
    )?;
    let offered = match (&flags.model, previous) {
        (None, None) => {
            let offered = offer_model(layout, language);
            if language == Language::Korean && offered.as_deref() == Some("default") {
                eprintln!("{}\n", words::korean_model_advice(memory_total()));
            }
            offered
        }
        (_, previous) => previous.map(|answers| model_text(&answers.model)),
    };
    let model = asking(Question::Model).answer(flags.model.as_deref(), offered, |text| {
        model_answer(layout, language, text)
    })?;
    let apps = asking(Question::Apps).answer(
        flags.apps.as_deref(),
        Some(yes_no(previous.is_none_or(|answers| answers.apps)).into()),
        |text| parse_yes_no(text).map_err(refused),
    )?;
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
        admin,
        model,
        http_port,
        hostname,
        language,
        apps,
    };
    answers.check().map_err(refused)?;
    Ok(answers)
}

/// Why an answer was refused, as the person is told.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refusal(String);

/// Asks a person `Question` in `Language` (the default shown) and reads
/// their line.
type ReadLine<'a> = &'a dyn Fn(Language, Question, &Option<String>) -> anyhow::Result<String>;

/// One question of setup's.
struct Asking<'a> {
    interactive: bool,
    language: Language,
    question: Question,
    read: ReadLine<'a>,
}

impl Asking<'_> {
    /// The flag's value checked, else the answer typed (the default when
    /// none) checked, asked again until it passes; without a person to
    /// ask, the default or an error.
    fn answer<T>(
        &self,
        flag: Option<&str>,
        default: Option<String>,
        check: impl Fn(&str) -> Result<T, Refusal>,
    ) -> anyhow::Result<T> {
        if let Some(value) = flag {
            return check(value).map_err(anyhow::Error::from);
        }
        if !self.interactive {
            let value =
                default.ok_or_else(|| anyhow!(words::no_answer(self.language, self.question)))?;
            return check(&value).map_err(anyhow::Error::from);
        }
        loop {
            let typed = (self.read)(self.language, self.question, &default)?;
            let given = match (typed.is_empty(), &default) {
                (false, _) => typed,
                (true, Some(default)) => default.clone(),
                (true, None) => {
                    eprintln!("{}", words::answer_needed(self.language, self.question));
                    continue;
                }
            };
            match check(&given) {
                Ok(value) => return Ok(value),
                Err(said) => eprintln!("{said}"),
            }
        }
    }
}

/// The model answer `text`, read and checked on this machine as it is
/// given (the file there and a GGUF model, the Ollama answering with that
/// model): a bad one is said at once and asked again.
fn model_answer(layout: &Layout, language: Language, text: &str) -> Result<ModelChoice, Refusal> {
    let mut model =
        ModelChoice::parse(text).map_err(|error| Refusal(words::answer_error(language, &error)))?;
    if let ModelChoice::File { path } = &mut model
        && path.is_relative()
    {
        *path = std::env::current_dir()
            .map_err(|error| Refusal(error.to_string()))?
            .join(&*path);
    }
    crate::machine::check_model(layout, &model).map_err(|error| Refusal(format!("{error:#}")))?;
    Ok(model)
}

fn model_text(model: &ModelChoice) -> String {
    match model {
        ModelChoice::Default => "default".into(),
        ModelChoice::File { path } => path.display().to_string(),
        ModelChoice::Ollama { name } if name.is_empty() => "ollama".into(),
        ModelChoice::Ollama { name } => format!("ollama:{name}"),
        ModelChoice::Server { url } => format!("server:{url}"),
    }
}

/// Ollama first when one answers here (the design this comes from puts it
/// first), else the packaged small model when installed.
fn offer_model(layout: &Layout, language: Language) -> Option<String> {
    let ollama = ModelChoice::Ollama {
        name: String::new(),
    };
    let (where_, found) = match crate::machine::host_model_probe(&ollama) {
        Ok((target, _)) if crate::manager::in_podman() => (
            crate::layout::OLLAMA_FROM_PODMAN.to_owned(),
            crate::machine::ollama_models_at(&target),
        ),
        _ => (OLLAMA.to_string(), ollama_models()),
    };
    if let Ok(models) = found
        && !models.is_empty()
    {
        eprintln!(
            "{}",
            words::ollama_found(language, &where_, &models.join(", "))
        );
        return Some(format!("ollama:{}", models[0]));
    }
    default_model_file(layout).ok().map(|_| "default".into())
}

/// What setup made that the person is told at the end.
struct Made {
    reached: crate::services::Reached,
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
    let reached = crate::services::start(layout, answers, changed, undo)?;
    let first_key = crate::services::first_member_key(layout, answers, undo)?;
    Ok(Made { reached, first_key })
}

fn print_summary(answers: &Answers, summary: &Made) {
    let login = answers.login_url();
    let qr = hearth_runtime::terminal::qr(&login).unwrap_or_default();
    let (chat_name, chat_address) = &summary.reached.chat;
    let chat =
        format!("http://{chat_name}:{MESSAGING_PORT}/ (http://{chat_address}:{MESSAGING_PORT}/)");
    let apps = summary
        .reached
        .assistant
        .as_ref()
        .map(|(name, address)| crate::words::AppsAt::new(name, *address));
    let text = Summary {
        apps,
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Answers `lines` in turn, as a person typing them would.
    fn typed(lines: &[&str]) -> (RefCell<Vec<String>>, RefCell<usize>) {
        (
            RefCell::new(lines.iter().rev().map(|line| (*line).to_owned()).collect()),
            RefCell::new(0),
        )
    }

    /// Hardening round five, finding 18: a model path that is no model was
    /// found only after the last question, and every answer had to be
    /// typed again. It is checked as it is given, and asked again.
    #[test]
    fn a_bad_model_path_is_refused_when_given_and_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::under(dir.path());
        std::fs::create_dir_all(layout.llama_server().parent().unwrap()).unwrap();
        std::fs::write(layout.llama_server(), "").unwrap();
        let model = dir.path().join("tiny.gguf");
        std::fs::write(&model, b"GGUF\x03\x00\x00\x00").unwrap();
        let not_a_model = dir.path().join("notes.txt");
        std::fs::write(&not_a_model, b"not a model").unwrap();
        let missing = dir.path().join("missing.gguf");
        let paths = [
            missing.display().to_string(),
            not_a_model.display().to_string(),
        ];
        let (lines, asked) = typed(&[&paths[0], &paths[1], &model.display().to_string()]);
        let read = |_: Language, _: Question, _: &Option<String>| {
            *asked.borrow_mut() += 1;
            lines
                .borrow_mut()
                .pop()
                .ok_or_else(|| anyhow!("no more lines"))
        };
        let asking = Asking {
            interactive: true,
            language: Language::English,
            question: Question::Model,
            read: &read,
        };
        let check = |text: &str| model_answer(&layout, Language::English, text);
        let chosen = asking.answer(None, None, check).unwrap();
        assert_eq!(
            chosen,
            ModelChoice::File {
                path: model.clone()
            }
        );
        assert_eq!(
            *asked.borrow(),
            3,
            "missing, then not a model, then a model"
        );
        // Given as a flag: refused at once, before any other question.
        let refused = asking
            .answer(Some(&paths[1]), None, check)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("is not a GGUF model file"), "{refused}");
    }

    #[test]
    fn a_bad_typed_answer_is_asked_again_and_a_bad_flag_ends_the_run() {
        let (lines, asked) = typed(&["", "https://", "https://hub.home.example"]);
        let read = |_: Language, _: Question, _: &Option<String>| {
            *asked.borrow_mut() += 1;
            lines
                .borrow_mut()
                .pop()
                .ok_or_else(|| anyhow!("no more lines"))
        };
        let asking = Asking {
            interactive: true,
            language: Language::English,
            question: Question::Url,
            read: &read,
        };
        let check = |text: &str| PublicUrl::parse(text).map_err(|error| Refusal(error.to_string()));
        let url = asking.answer(None, None, check).unwrap();
        assert_eq!(url.to_string(), "https://hub.home.example");
        assert_eq!(*asked.borrow(), 3, "empty, then bad, then good");
        // An empty line takes the default.
        let (lines, _) = typed(&[""]);
        let read = |_: Language, _: Question, _: &Option<String>| {
            lines
                .borrow_mut()
                .pop()
                .ok_or_else(|| anyhow!("no more lines"))
        };
        let asking = Asking {
            read: &read,
            ..asking
        };
        let url = asking
            .answer(None, Some("https://hub".into()), check)
            .unwrap();
        assert_eq!(url.to_string(), "https://hub");
        // A flag is checked once: no one is asked.
        let refused = asking.answer(Some("https://"), None, check).unwrap_err();
        assert!(refused.to_string().contains("host"), "{refused}");
        // Without a person, the default or an error, never a question.
        let unattended = Asking {
            interactive: false,
            ..asking
        };
        let missing = unattended.answer(None, None, check).unwrap_err();
        assert!(missing.to_string().contains("no answer"), "{missing}");
    }
}
