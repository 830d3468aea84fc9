//! `hearth-messaging`: the service, and a command-line client.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use hearth_messaging::config::{Config, FileConfig};
use hearth_messaging::protocol::{Message, MessageStatus, ServerEvent};
use hearth_messaging::terminal::Said;
use serde_json::{Value, json};

/// Household messaging over the Hearth mesh, with the assistant as a member.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// JSON5 configuration.
        #[arg(long, env = "HEARTH_MESSAGING_CONFIG")]
        config: PathBuf,
    },
    /// Send a message.
    Send {
        #[command(flatten)]
        conversation: Conversation,
        /// The text.
        text: String,
    },
    /// Share a file (a PDF, text or Markdown document, or a picture): in
    /// your conversation with the assistant (`--dm assistant`) a document
    /// goes to your documents and a picture is looked at.
    Share {
        #[command(flatten)]
        conversation: Conversation,
        /// The file.
        file: PathBuf,
    },
    /// Print a room's recent messages, then new ones as they arrive.
    Tail {
        #[command(flatten)]
        conversation: Conversation,
        /// How many past messages to show first.
        #[arg(long, default_value_t = 20)]
        history: u32,
        /// Stop after this many new messages.
        #[arg(long)]
        count: Option<u32>,
        /// Instead of recent history, what this device missed since it was
        /// last connected (the service remembers each device's place).
        #[arg(long)]
        missed: bool,
        /// Print every live event as JSON (typing, streaming updates...).
        #[arg(long)]
        events: bool,
    },
    /// Ask the assistant and print its answer as it streams in.
    Ask {
        /// The service.
        #[arg(long, env = "HEARTH_MESSAGING_URL")]
        url: String,
        /// Ask in this room (as an `@assistant` message everyone there sees);
        /// by default in your direct conversation with the assistant.
        #[arg(long)]
        room: Option<String>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The question.
        question: String,
    },
    /// Search the messages you may read: by meaning where the hub has a
    /// search model (closest first), and by every word.
    Search {
        /// The service.
        #[arg(long, env = "HEARTH_MESSAGING_URL")]
        url: String,
        /// What to look for.
        query: String,
    },
    /// What the assistant remembers in your conversation with it (or in a
    /// room); `--forget N` forgets entry N.
    Memory {
        /// The service.
        #[arg(long, env = "HEARTH_MESSAGING_URL")]
        url: String,
        /// A room's memory instead of your own.
        #[arg(long)]
        room: Option<String>,
        /// Forget this entry.
        #[arg(long)]
        forget: Option<i64>,
    },
    /// Your reminders; `--cancel N` cancels reminder N.
    Reminders {
        /// The service.
        #[arg(long, env = "HEARTH_MESSAGING_URL")]
        url: String,
        /// Cancel this reminder.
        #[arg(long)]
        cancel: Option<i64>,
    },
    /// The documents the assistant can read for you (or in a room), and
    /// those it could not read, with why.
    Documents {
        /// The service.
        #[arg(long, env = "HEARTH_MESSAGING_URL")]
        url: String,
        /// In this room instead of your own conversation.
        #[arg(long)]
        room: Option<String>,
    },
}

/// What a streamed answer adds to what is already printed: the new tail
/// when the text grew, or the whole text (on a line of its own) when it was
/// rewritten.
fn growth<'a>(printed: &str, body: &'a str) -> (bool, &'a str) {
    match body.strip_prefix(printed) {
        Some(tail) => (false, tail),
        None => (true, body),
    }
}

/// The message that asks the assistant `question` in `room`.
fn question_body(room: &str, question: &str) -> String {
    let direct = hearth_messaging::protocol::RoomId::parse(room).is_ok_and(|room| room.is_dm());
    if direct || hearth_messaging::protocol::calls_assistant(room, "someone", question) {
        question.to_owned()
    } else {
        format!("@{} {question}", hearth_messaging::protocol::ASSISTANT)
    }
}

/// Where a client command talks: the service, and a room or a DM.
#[derive(clap::Args)]
struct Conversation {
    /// The service (`http://HUB-MESH-ADDRESS:18790`).
    #[arg(long, env = "HEARTH_MESSAGING_URL")]
    url: String,
    /// The room.
    #[arg(long, conflicts_with = "dm", required_unless_present = "dm")]
    room: Option<String>,
    /// Or the direct conversation with this user (`assistant` for the assistant).
    #[arg(long)]
    dm: Option<String>,
}

impl Conversation {
    /// The service's base URL, a client, and the room id.
    async fn open(self) -> anyhow::Result<(String, reqwest::Client, String)> {
        let url = self.url.trim_end_matches('/').to_owned();
        let http = client()?;
        let room = room_of(&http, &url, self.room, self.dm).await?;
        Ok((url, http, room))
    }
}

/// The language the client's own lines are said in: the terminal's.
fn language() -> hearth_assistant::language::Language {
    static LANGUAGE: std::sync::OnceLock<hearth_assistant::language::Language> =
        std::sync::OnceLock::new();
    *LANGUAGE.get_or_init(|| {
        hearth_messaging::terminal::language_of(hearth_runtime::terminal::locale().as_deref())
    })
}

/// `said` in the terminal's language.
fn say(said: Said<'_>) -> String {
    said.say(language())
}

async fn check(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no explanation");
        bail!(
            "{}",
            say(Said::Refused {
                status: status.as_u16(),
                message
            })
        );
    }
    Ok(body)
}

async fn room_of(
    http: &reqwest::Client,
    url: &str,
    room: Option<String>,
    dm: Option<String>,
) -> anyhow::Result<String> {
    match (room, dm) {
        (Some(room), _) => Ok(room),
        (None, Some(user)) => {
            let answer = check(
                http.post(format!("{url}/api/dm"))
                    .json(&json!({"user": user}))
                    .send()
                    .await?,
            )
            .await?;
            answer["room"]
                .as_str()
                .map(str::to_owned)
                .context("no room in the answer")
        }
        (None, None) => bail!("{}", say(Said::RoomOrDm)),
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .use_preconfigured_tls(tls_config()?)
        .build()?)
}

/// The service's live connection (`/ws` with `query`), over TLS for an
/// `https://` service.
async fn live(
    url: &str,
    query: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let websocket = url.replacen("http", "ws", 1);
    let tls = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(tls_config()?));
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("{websocket}/ws{query}"),
        None,
        false,
        Some(tls),
    )
    .await
    .with_context(|| format!("cannot open the live connection to {url}"))?;
    Ok(socket)
}

/// TLS for an `https://` service (the hub's name, with a certificate from
/// the household's CA): the system's authorities (`SSL_CERT_FILE` names
/// others).
fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn print(message: &Message) {
    let time = time_of(message.created_at);
    let body = match (&message.attachment, message.status) {
        (_, MessageStatus::Deleted) => say(Said::Deleted),
        (Some(file), _) => format!(
            "\u{1f4ce} {} ({} bytes, {})",
            file.name, file.size, file.media_type
        ),
        (None, MessageStatus::Interrupted) => {
            let said = say(Said::Interrupted);
            [message.body.as_str(), said.as_str()]
                .iter()
                .filter(|part| !part.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        }
        (None, _) if message.edited_at.is_some() => {
            format!("{} {}", message.body, say(Said::Edited))
        }
        (None, _) => message.body.clone(),
    };
    // What members wrote reaches this terminal escaped.
    println!(
        "[{time}] {}: {}",
        hearth_runtime::terminal::printable(&message.sender),
        hearth_runtime::terminal::printable_lines(&body)
    );
    let _ = std::io::stdout().flush();
}

fn time_of(millis: i64) -> String {
    let seconds = millis.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn path(room: &str) -> String {
    room.replace('%', "%25")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('#', "%23")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            hearth_runtime::init("info");
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read {}", config.display()))?;
            let config = Config::parse(&text)
                .with_context(|| format!("{} is not a valid configuration", config.display()))?;
            hearth_messaging::server::serve(config, hearth_runtime::shutdown_signal()).await
        }
        Command::Send { conversation, text } => {
            let (url, http, room) = conversation.open().await?;
            let sent = check(
                http.post(format!("{url}/api/rooms/{}/messages", path(&room)))
                    .json(&json!({"body": text}))
                    .send()
                    .await
                    .with_context(|| say(Said::CannotReach(&url)))?,
            )
            .await?;
            println!(
                "{}",
                say(Said::Sent {
                    id: sent["id"].as_i64().unwrap_or_default(),
                    room: &room
                })
            );
            Ok(())
        }
        Command::Share { conversation, file } => {
            let name = file
                .file_name()
                .and_then(|name| name.to_str())
                .with_context(|| format!("{} names no file", file.display()))?
                .to_owned();
            let limit = hearth_messaging::protocol::MAX_ATTACHMENT_BYTES;
            let size = std::fs::metadata(&file)
                .with_context(|| say(Said::CannotRead(&file.display().to_string())))?
                .len();
            if size > limit {
                bail!(
                    "{}",
                    say(Said::TooBig {
                        file: &file.display().to_string(),
                        size,
                        limit
                    })
                );
            }
            let bytes = std::fs::read(&file)
                .with_context(|| say(Said::CannotRead(&file.display().to_string())))?;
            let (url, http, room) = conversation.open().await?;
            let sent = check(
                http.post(format!("{url}/api/rooms/{}/files", path(&room)))
                    .query(&[("name", name.as_str())])
                    .body(bytes)
                    .send()
                    .await
                    .with_context(|| say(Said::CannotReach(&url)))?,
            )
            .await?;
            println!(
                "{}",
                say(Said::Shared {
                    name: &name,
                    id: sent["id"].as_i64().unwrap_or_default(),
                    room: &room
                })
            );
            Ok(())
        }
        Command::Tail {
            conversation,
            history,
            count,
            missed,
            events,
        } => {
            let (url, http, room) = conversation.open().await?;
            let query = if missed {
                String::new()
            } else {
                let page = check(
                    http.get(format!(
                        "{url}/api/rooms/{}/messages?limit={}",
                        path(&room),
                        history.max(1)
                    ))
                    .send()
                    .await
                    .with_context(|| say(Said::CannotReach(&url)))?,
                )
                .await?;
                let messages: Vec<Message> =
                    serde_json::from_value(page["messages"].clone()).unwrap_or_default();
                for message in messages
                    .iter()
                    .filter(|message| message.status != MessageStatus::Streaming)
                {
                    print(message);
                }
                format!("?since={}", messages.last().map_or(0, |message| message.id))
            };
            let mut socket = live(&url, &query).await?;
            let mut left = count;
            while left != Some(0) {
                let Some(frame) = socket.next().await else {
                    bail!("{}", say(Said::Closed))
                };
                let tokio_tungstenite::tungstenite::Message::Text(text) = frame? else {
                    continue;
                };
                if events {
                    println!("{text}");
                }
                let shown = match serde_json::from_str::<ServerEvent>(&text) {
                    Ok(ServerEvent::Message { message })
                        if message.room == room && message.status != MessageStatus::Streaming =>
                    {
                        print(&message);
                        true
                    }
                    // The assistant's reply, complete (edits of people's
                    // messages are not printed again).
                    Ok(ServerEvent::Update {
                        id,
                        room: in_room,
                        body,
                        status,
                        edited_at: None,
                    }) if in_room == room && status != MessageStatus::Streaming => {
                        print(&Message {
                            id,
                            room: in_room,
                            sender: hearth_messaging::protocol::ASSISTANT.into(),
                            body,
                            created_at: std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|elapsed| elapsed.as_millis() as i64)
                                .unwrap_or_default(),
                            status,
                            client_id: None,
                            attachment: None,
                            edited_at: None,
                        });
                        true
                    }
                    _ => false,
                };
                if shown {
                    left = left.map(|left| left - 1);
                }
            }
            Ok(())
        }
        Command::Ask {
            url,
            room,
            timeout,
            question,
        } => ask(url.trim_end_matches('/'), room, &question, timeout).await,
        Command::Search { url, query } => {
            let url = url.trim_end_matches('/');
            let found = check(
                client()?
                    .get(format!("{url}/api/search"))
                    .query(&[("q", query.as_str())])
                    .send()
                    .await
                    .with_context(|| say(Said::CannotReach(url)))?,
            )
            .await?;
            let messages: Vec<Message> =
                serde_json::from_value(found["messages"].clone()).unwrap_or_default();
            for message in &messages {
                print!("{} ", hearth_runtime::terminal::printable(&message.room));
                print(message);
            }
            Ok(())
        }
        Command::Memory { url, room, forget } => {
            let query = room_query(room.as_deref());
            let (method, path) = match forget {
                Some(id) => (
                    reqwest::Method::DELETE,
                    format!("/api/assistant/memory/{id}{query}"),
                ),
                None => (
                    reqwest::Method::GET,
                    format!("/api/assistant/memory{query}"),
                ),
            };
            assistant(&url, method, &path).await
        }
        Command::Reminders { url, cancel } => {
            let (method, path) = match cancel {
                Some(id) => (
                    reqwest::Method::DELETE,
                    format!("/api/assistant/reminders/{id}"),
                ),
                None => (reqwest::Method::GET, "/api/assistant/reminders".into()),
            };
            assistant(&url, method, &path).await
        }
        Command::Documents { url, room } => {
            let path = format!("/api/assistant/documents{}", room_query(room.as_deref()));
            assistant(&url, reqwest::Method::GET, &path).await
        }
    }
}

/// `?room=ROOM` (encoded), or nothing.
fn room_query(room: Option<&str>) -> String {
    room.map(|room| {
        let encoded: String = room
            .bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(byte).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        format!("?room={encoded}")
    })
    .unwrap_or_default()
}

/// `memory`, `reminders`, `documents`: asks the service and prints the
/// answer as the assistant says it in the chat.
async fn assistant(url: &str, method: reqwest::Method, path: &str) -> anyhow::Result<()> {
    let url = url.trim_end_matches('/');
    let answer = check(
        client()?
            .request(method, format!("{url}{path}"))
            .send()
            .await
            .with_context(|| say(Said::CannotReach(url)))?,
    )
    .await?;
    let answer: hearth_assistant::api::Answer =
        serde_json::from_value(answer).context("the service's answer is not the assistant's")?;
    println!(
        "{}",
        hearth_runtime::terminal::printable_lines(&hearth_messaging::commands::render(
            &answer,
            language(),
        ))
    );
    Ok(())
}

/// `ask`: posts the question, then follows the assistant's reply to it.
async fn ask(url: &str, room: Option<String>, question: &str, limit: u64) -> anyhow::Result<()> {
    let http = client()?;
    let asked_in_room = room.is_some();
    let dm = (!asked_in_room).then(|| hearth_messaging::protocol::ASSISTANT.to_owned());
    let room = room_of(&http, url, room, dm).await?;
    // Listen from the room's latest message on, then ask.
    let page = check(
        http.get(format!("{url}/api/rooms/{}/messages?limit=1", path(&room)))
            .send()
            .await
            .with_context(|| say(Said::CannotReach(url)))?,
    )
    .await?;
    let latest = page["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["id"].as_i64())
        .unwrap_or(0);
    let mut socket = live(url, &format!("?since={latest}")).await?;
    let sent = check(
        http.post(format!("{url}/api/rooms/{}/messages", path(&room)))
            .json(&json!({"body": question_body(&room, question)}))
            .send()
            .await
            .with_context(|| say(Said::CannotReach(url)))?,
    )
    .await?;
    let asked = sent["id"].as_i64().context("no message id in the answer")?;
    let mut reply: Option<i64> = None;
    let mut printed = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(limit);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!(say(Said::NoAnswerWithin(limit))))?;
        let Some(frame) = frame else {
            bail!("{}", say(Said::Closed))
        };
        let tokio_tungstenite::tungstenite::Message::Text(text) = frame? else {
            continue;
        };
        let (id, body, status) = match serde_json::from_str::<ServerEvent>(&text) {
            Ok(ServerEvent::Message { message })
                if reply.is_none()
                    && message.room == room
                    && message.id > asked
                    && message.sender == hearth_messaging::protocol::ASSISTANT =>
            {
                (message.id, message.body, message.status)
            }
            Ok(ServerEvent::Update {
                id, body, status, ..
            }) if Some(id) == reply => (id, body, status),
            _ => continue,
        };
        reply = Some(id);
        if status == MessageStatus::Error {
            bail!("{body}");
        }
        let (restart, new) = growth(&printed, &body);
        let mut stdout = std::io::stdout().lock();
        if restart && !printed.is_empty() {
            writeln!(stdout)?;
        }
        write!(stdout, "{new}")?;
        stdout.flush()?;
        printed = body;
        if status == MessageStatus::Done {
            writeln!(stdout)?;
            return Ok(());
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hearth_runtime::run(hearth_runtime::Threads::PerCore, run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_answer_prints_only_what_is_new() {
        assert_eq!(growth("", "Hello"), (false, "Hello"));
        assert_eq!(growth("Hello", "Hello there"), (false, " there"));
        assert_eq!(growth("Hello there", "Hi"), (true, "Hi"));
    }

    #[test]
    fn a_question_in_a_room_mentions_the_assistant_once() {
        assert_eq!(
            question_body("household", "what's for dinner?"),
            "@assistant what's for dinner?"
        );
        assert_eq!(question_body("household", "@assistant hi"), "@assistant hi");
        assert_eq!(question_body("dm:ada,assistant", "hi"), "hi");
    }
}
