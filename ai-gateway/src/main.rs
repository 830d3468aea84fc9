//! `hearth-gateway`: parses the command line and calls the library.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_chat_client::{ChatClient, device_key};
use hearth_e2ee::{ChatPayload, ReplyEvent};
use hearth_gateway::config::{Config, FileConfig};

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
        /// JSON5 configuration (OpenClaw's openclaw.json subset) [default:
        /// $OPENCLAW_CONFIG_PATH, then ~/.openclaw/openclaw.json, then
        /// /etc/hearth/openclaw.json, the first that exists].
        #[arg(long, env = "HEARTH_GATEWAY_CONFIG")]
        config: Option<PathBuf>,
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
        /// Bearer token [default: read from --token-file].
        #[arg(long, env = "HEARTH_GATEWAY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// File holding the bearer token (the gateway writes DATA_DIR/gateway.token).
        #[arg(long, default_value = "/var/lib/hearth-gateway/gateway.token")]
        token_file: PathBuf,
        /// This device's key (created on first use) [default: ~/.config/hearth/device.key].
        #[arg(long)]
        device_key: Option<PathBuf>,
        /// Most tokens to generate.
        #[arg(long)]
        max_tokens: Option<u32>,
    },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            hearth_runtime::init("info");
            let candidates = hearth_gateway::config::config_candidates(
                config,
                std::env::var_os("OPENCLAW_CONFIG_PATH").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            );
            let config = candidates
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
                })?;
            tracing::info!(path = %config.display(), "configuration read");
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read {}", config.display()))?;
            let config = Config::parse(&text)
                .with_context(|| format!("{} is not a valid configuration", config.display()))?;
            hearth_gateway::server::serve(config, hearth_runtime::shutdown_signal()).await
        }
        Command::Chat {
            question,
            url,
            channel,
            token,
            token_file,
            device_key: key_path,
            max_tokens,
        } => {
            let token = match token {
                Some(token) => Some(token),
                None => match std::fs::read_to_string(&token_file) {
                    Ok(text) => Some(text.trim().to_owned()),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                    Err(error) => {
                        return Err(anyhow::Error::new(error)
                            .context(format!("cannot read the token {}", token_file.display())));
                    }
                },
            };
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
    // One thread: a reply is a relay of small events between two sockets,
    // and keeping its tasks on one thread spares a cross-core wake-up per
    // hop (measured: lower time to first token and 25 % less CPU per token
    // than two workers, docs/benchmarks.md). SQLite runs on its own threads.
    hearth_runtime::run(hearth_runtime::Threads::One, run(cli))
}
