//! `hearth-gateway`: parses the command line and calls the library.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_chat_client::{ChatClient, device_key};
use hearth_e2ee::{ChatPayload, ReplyEvent};
use hearth_gateway::config::{self, Loaded, Overrides, Problems};
use hearth_gateway::doctor;

/// Hearth's AI gateway: end-to-end encrypted chat with local models.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// JSON5 configuration (OpenClaw's openclaw.json) [default:
        /// $OPENCLAW_CONFIG_PATH, then ~/.openclaw/openclaw.json, then
        /// /etc/hearth/openclaw.json, the first that exists].
        #[arg(long, env = "HEARTH_GATEWAY_CONFIG")]
        config: Option<PathBuf>,
        /// The port, over gateway.port (OpenClaw's variable).
        #[arg(long, env = "OPENCLAW_GATEWAY_PORT")]
        port: Option<u16>,
        /// The data directory, over hearth.dataDir.
        #[arg(long, env = "HEARTH_GATEWAY_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the running setup: configuration, token file, data directory,
    /// workspace files, backends.
    Doctor {
        /// The configuration [default: as `serve` finds it].
        #[arg(long, env = "HEARTH_GATEWAY_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory, over hearth.dataDir.
        #[arg(long, env = "HEARTH_GATEWAY_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Ask a question through the encrypted API and print the streamed answer.
    Chat {
        /// The question (`/new` starts a fresh session).
        question: String,
        /// The gateway.
        #[arg(long, default_value = "http://127.0.0.1:18789")]
        url: String,
        /// The conversation to continue.
        #[arg(long, default_value = "cli")]
        channel: String,
        /// File holding the bearer token (the gateway writes
        /// DATA_DIR/gateway.token); `$HEARTH_GATEWAY_TOKEN` wins. Never an
        /// argument: other users of the machine can read those.
        #[arg(long, default_value = "/var/lib/hearth-gateway/gateway.token")]
        token_file: PathBuf,
        /// This device's key (created on first use) [default: ~/.config/hearth/device.key].
        #[arg(long)]
        device_key: Option<PathBuf>,
        /// Most tokens to generate.
        #[arg(long)]
        max_tokens: Option<u32>,
    },
    /// Tokens used in the last 31 days, per day and model: yours from a
    /// member's device, everyone's with the gateway's token.
    Usage {
        /// The gateway.
        #[arg(long, default_value = "http://127.0.0.1:18789")]
        url: String,
        /// File holding the bearer token (as for `chat`); without one, the
        /// mesh tells the gateway who you are.
        #[arg(long, default_value = "/var/lib/hearth-gateway/gateway.token")]
        token_file: PathBuf,
        /// Print the gateway's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// OpenClaw clients' devices (its CLI, TUI, Control UI, apps): those
    /// waiting for approval and those paired, and approving or removing one.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
        /// The gateway.
        #[arg(long, default_value = "http://127.0.0.1:18789", global = true)]
        url: String,
        /// File holding the gateway's token (as for `chat`): managing
        /// devices is the household admin's.
        #[arg(
            long,
            default_value = "/var/lib/hearth-gateway/gateway.token",
            global = true
        )]
        token_file: PathBuf,
    },
    /// Read a document from standard input and print its text (how the
    /// gateway reads PDFs: in a process of their own, with limits).
    #[command(hide = true)]
    Extract {
        /// `pdf`, `text` or `markdown`.
        format: String,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Devices waiting for approval, then those paired.
    List {
        /// Print the gateway's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Let a waiting device connect, as the member whose device asked (or
    /// as `--member`).
    Approve {
        /// The request's id (`devices list`).
        request_id: String,
        /// The member it acts as, when it asked from no member's device.
        #[arg(long)]
        member: Option<String>,
    },
    /// Remove a paired device (by device id) or a waiting request.
    Remove {
        /// The device's or the request's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Read each file as `serve` would: exit 1 if any has a problem; list
    /// every problem with its path, and the keys the gateway ignores.
    Validate {
        /// The files [default: as `serve` finds it].
        files: Vec<PathBuf>,
        /// `text`, or `json` (one object per file, one per line).
        #[arg(long, default_value = "text")]
        output: Output,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

/// The token for `token_file`: `$HEARTH_GATEWAY_TOKEN`, else the file's,
/// else none (a missing file is no token).
fn read_token(token_file: &std::path::Path) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
    if let Ok(token) = std::env::var("HEARTH_GATEWAY_TOKEN") {
        return Ok(Some(token.into()));
    }
    match std::fs::read_to_string(token_file) {
        Ok(text) => Ok(Some(text.trim().to_owned().into())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(anyhow::Error::new(error)
            .context(format!("cannot read the token {}", token_file.display()))),
    }
}

/// One call of the gateway's JSON API at `path` (a POST of `body`, else a
/// GET), with the bearer `token` when there is one: its answer, or why not.
async fn gateway_call(
    url: &str,
    token: Option<&str>,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::new();
    let address = format!("{}{path}", url.trim_end_matches('/'));
    let mut request = match body {
        Some(body) => client.post(address).json(&body),
        None => client.get(address),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the gateway at {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("the gateway's answer is not JSON")?;
    if !status.is_success() {
        anyhow::bail!(
            "the gateway answered {status}: {}",
            body["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    Ok(body)
}

/// A call of the gateway's device endpoints, which need its token.
async fn admin_call(
    url: &str,
    token_file: &std::path::Path,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let token = read_token(token_file)?.with_context(|| {
        format!(
            "managing devices needs the gateway's token: {} is missing (or set $HEARTH_GATEWAY_TOKEN)",
            token_file.display()
        )
    })?;
    gateway_call(url, Some(token.as_str()), path, body).await
}

/// `hearth-gateway devices …`.
async fn devices(
    url: &str,
    token_file: &std::path::Path,
    command: DevicesCommand,
) -> anyhow::Result<()> {
    use hearth_gateway::claw::pairing::{Paired, Pending};
    // What a device chose (its client's id and platform) and what the mesh
    // named reach the admin's terminal escaped.
    use hearth_runtime::terminal::printable as shown;
    match command {
        DevicesCommand::List { json } => {
            let body = admin_call(url, token_file, "/v1/devices", None).await?;
            if json {
                println!("{body}");
                return Ok(());
            }
            let pending: Vec<Pending> = serde_json::from_value(body["pending"].clone())
                .context("the gateway's list is not readable")?;
            let paired: Vec<Paired> = serde_json::from_value(body["paired"].clone())
                .context("the gateway's list is not readable")?;
            println!("Waiting for approval ({}):", pending.len());
            for request in &pending {
                println!(
                    "  {}  {:<12}  {:<10}  from {:<15}  device {}",
                    shown(&request.request_id),
                    shown(
                        request
                            .member
                            .as_deref()
                            .unwrap_or(if request.token_holder {
                                "(admin)"
                            } else {
                                "(nobody)"
                            })
                    ),
                    shown(&request.client),
                    shown(&request.address),
                    shown(&request.device_id.chars().take(16).collect::<String>()),
                );
            }
            println!("Paired ({}):", paired.len());
            for device in &paired {
                println!(
                    "  {}  {:<12}  {:<10}  {}",
                    shown(&device.device_id),
                    shown(device.member.as_deref().unwrap_or("(admin)")),
                    shown(&device.client),
                    shown(&device.scopes.join(" ")),
                );
            }
        }
        DevicesCommand::Approve { request_id, member } => {
            let body = admin_call(
                url,
                token_file,
                "/v1/devices/approve",
                Some(serde_json::json!({"requestId": request_id, "member": member})),
            )
            .await?;
            let paired: Paired = serde_json::from_value(body["paired"].clone())
                .context("the gateway's answer is not readable")?;
            println!(
                "Approved: device {} acts as {}.",
                shown(&paired.device_id),
                shown(paired.member.as_deref().unwrap_or("the admin"))
            );
        }
        DevicesCommand::Remove { id } => {
            let body = admin_call(
                url,
                token_file,
                "/v1/devices/remove",
                Some(serde_json::json!({"id": id})),
            )
            .await?;
            if body["removed"].as_bool() == Some(true) {
                println!("Removed {id}.");
            } else {
                anyhow::bail!("no paired device or waiting request is {id}");
            }
        }
    }
    Ok(())
}

/// `hearth-gateway usage`: the gateway's `/v1/usage`, as a table.
async fn usage(url: &str, token_file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let token = read_token(token_file)?;
    let body = gateway_call(url, token.as_deref().map(String::as_str), "/v1/usage", None).await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let rows: Vec<hearth_gateway::usage::UsageRow> = serde_json::from_value(body["usage"].clone())
        .context("the gateway's usage is not readable")?;
    println!(
        "{:<10}  {:<20}  {:<28}  {:>8}  {:>10}  {:>10}  {:>8}",
        "DAY", "WHO", "MODEL", "REQUESTS", "PROMPT", "GENERATED", "AUDIO_S"
    );
    for row in rows {
        println!(
            "{:<10}  {:<20}  {:<28}  {:>8}  {:>10}  {:>10}  {:>8.1}",
            row.day,
            hearth_runtime::terminal::printable(&row.who),
            hearth_runtime::terminal::printable(&row.model),
            row.requests,
            row.prompt_tokens,
            row.completion_tokens,
            row.audio_seconds
        );
    }
    Ok(())
}

/// `hearth-gateway extract FORMAT`: limits its own memory and CPU time
/// and the system calls it may make first, then reads the document from standard input and prints its text
/// after a marker line (the parser may print too).
fn extract(format: &str) -> anyhow::Result<()> {
    use hearth_assistant::extract::{Format, MAX_FILE_BYTES};
    use hearth_gateway::assistant::library::{EXTRACT_MEMORY, extract_answer};
    use std::io::Read as _;
    let format = match format {
        "pdf" => Format::Pdf,
        "text" => Format::Text,
        "markdown" => Format::Markdown,
        other => anyhow::bail!("no format {other:?}: pdf, text or markdown"),
    };
    rlimit::setrlimit(rlimit::Resource::AS, EXTRACT_MEMORY, EXTRACT_MEMORY)
        .context("cannot limit the reader's memory")?;
    rlimit::setrlimit(rlimit::Resource::CPU, 30, 30)
        .context("cannot limit the reader's CPU time")?;
    hearth_gateway::assistant::library::confine_reader()?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the document")?;
    let answer = extract_answer(format, &bytes);
    let mut out = std::io::stdout().lock();
    out.write_all(answer.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The configuration file `serve` would read.
fn find_config(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidates = config::config_candidates(
        given,
        std::env::var_os("OPENCLAW_CONFIG_PATH").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    );
    candidates
        .iter()
        .find(|path| path.exists())
        .cloned()
        .with_context(|| {
            format!(
                "no configuration: give --config, or create one of {}",
                candidates
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Reads the configuration at `path`, or says everything wrong with it.
fn load(path: &std::path::Path, overrides: &Overrides) -> anyhow::Result<Loaded> {
    config::load(path, &config::System, overrides).map_err(|problems: Problems| {
        anyhow::anyhow!(
            "{} is not a valid configuration: {problems}",
            path.display()
        )
    })
}

/// `config validate`: whether each file is valid; exit code 1 if any is not.
fn validate(files: Vec<PathBuf>, output: Output) -> anyhow::Result<()> {
    let files = if files.is_empty() {
        vec![find_config(None)?]
    } else {
        files
    };
    let mut invalid = 0;
    let count = files.len();
    let mut out = std::io::stdout().lock();
    for file in files {
        let result = config::load(&file, &config::System, &Overrides::default());
        invalid += usize::from(result.is_err());
        match output {
            Output::Json => {
                let (problems, notes) = match &result {
                    Ok(loaded) => (Vec::new(), loaded.notes.clone()),
                    Err(problems) => (problems.0.clone(), Vec::new()),
                };
                let line = serde_json::json!({
                    "path": file,
                    "valid": result.is_ok(),
                    "problems": problems
                        .iter()
                        .map(|problem| serde_json::json!({"path": problem.path, "message": problem.message}))
                        .collect::<Vec<_>>(),
                    "notes": notes,
                });
                writeln!(out, "{line}")?;
            }
            Output::Text => match &result {
                Ok(loaded) => {
                    writeln!(out, "{}: valid", file.display())?;
                    for note in &loaded.notes {
                        writeln!(out, "  {}: {}", note.path, note.note)?;
                    }
                }
                Err(problems) => writeln!(out, "{}: {problems}", file.display())?,
            },
        }
    }
    if invalid > 0 {
        anyhow::bail!("{invalid} of {count} configuration files are not valid");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            config,
            port,
            data_dir,
        } => {
            hearth_runtime::init("info");
            let path = find_config(config)?;
            let loaded = load(&path, &Overrides { port, data_dir })?;
            tracing::info!(path = %path.display(), "configuration read");
            for note in &loaded.notes {
                if note.note.starts_with("warning:") {
                    tracing::warn!(path = %note.path, "{}", note.note);
                } else {
                    tracing::info!(path = %note.path, "{}", note.note);
                }
            }
            hearth_gateway::server::serve(loaded.config, hearth_runtime::shutdown_signal()).await
        }
        Command::Config {
            command: ConfigCommand::Validate { files, output },
        } => validate(files, output),
        Command::Extract { .. } => unreachable!("extract runs before the runtime"),
        Command::Doctor { config, data_dir } => {
            let path = find_config(config)?;
            let loaded = load(
                &path,
                &Overrides {
                    port: None,
                    data_dir,
                },
            )?;
            let checks = doctor::run(&loaded).await;
            let mut out = std::io::stdout().lock();
            writeln!(out, "configuration {}: valid", path.display())?;
            for check in &checks {
                writeln!(out, "{check}")?;
            }
            let failed = checks.iter().filter(|check| check.failed()).count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) failed");
            }
            Ok(())
        }
        Command::Devices {
            command,
            url,
            token_file,
        } => devices(&url, &token_file, command).await,
        Command::Usage {
            url,
            token_file,
            json,
        } => usage(&url, &token_file, json).await,
        Command::Chat {
            question,
            url,
            channel,
            token_file,
            device_key: key_path,
            max_tokens,
        } => {
            let token = read_token(&token_file)?.map(|token| token.as_str().to_owned());
            let key_path = match key_path {
                Some(path) => path,
                None => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                    .join(".config/hearth/device.key"),
            };
            let device = device_key(&key_path)
                .with_context(|| format!("cannot load the device key {}", key_path.display()))?;
            let client = ChatClient::new(&url, token, device);
            let payload = ChatPayload {
                message: question,
                channel: Some(channel),
                max_tokens,
                temperature: None,
                images: Vec::new(),
                on_behalf_of: None,
            };
            let mut failure = None;
            client
                .chat(&payload, |event| match event {
                    ReplyEvent::Delta { text } | ReplyEvent::Notice { text } => {
                        print!("{text}");
                        let _ = std::io::stdout().flush();
                    }
                    ReplyEvent::Done { .. } => println!(),
                    ReplyEvent::Error { code, message } => {
                        failure = Some(format!("{code}: {message}"))
                    }
                    ReplyEvent::Meta { model, .. } => eprintln!("[{model}]"),
                    ReplyEvent::Tool { name } => eprintln!("[ran {name}]"),
                    ReplyEvent::ToolCalls { .. } | ReplyEvent::Data { .. } => {}
                })
                .await?;
            if let Some(failure) = failure {
                anyhow::bail!("the gateway could not answer: {failure}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Extract { format } = &cli.command {
        // Before any runtime: the reader confines a process that has no
        // other thread.
        return match extract(format) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hearth-gateway extract: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    // One thread: a reply is a relay of small events between two sockets,
    // and keeping its tasks on one thread spares a cross-core wake-up per
    // hop (measured: lower time to first token and 25 % less CPU per token
    // than two workers, docs/benchmarks.md). SQLite runs on its own threads.
    hearth_runtime::run(hearth_runtime::Threads::One, run(cli))
}
