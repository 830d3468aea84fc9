//! Servers standing in for what cannot run here, on loopback only.
//!
//! - [`ScriptedServer`] replays recorded byte streams exactly as scripted:
//!   chosen chunk boundaries (a UTF-8 character split in two), pauses,
//!   dropped connections, hangs, error statuses. Real servers produce these
//!   only by accident; tests need them on demand.
//! - [`ollama_stand_in`] answers Ollama's documented API (`/api/chat`,
//!   `/api/tags`, `/api/version`) because Ollama itself cannot be installed
//!   here. Its "model" echoes the last user message word by word, so tests
//!   can assert what came through.
//!
//! Both speak HTTP/1.1 with chunked bodies and close every connection after
//! one exchange.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// A request as the stand-in received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How a scripted answer ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The body is complete (the terminating empty chunk is sent).
    Complete,
    /// The connection is closed in the middle of the body.
    Drop,
    /// The connection stays open and silent until the server stops.
    Hang,
}

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answers `status` with `content_type`, writing each chunk separately
    /// (flushed, `gap` apart), then ends as `ending` says.
    Answer {
        /// HTTP status.
        status: u16,
        /// `Content-Type`.
        content_type: String,
        /// The body, in the pieces the client should receive.
        chunks: Vec<Vec<u8>>,
        /// Pause before each chunk.
        gap: Duration,
        /// How the body ends.
        ending: Ending,
    },
    /// Reads the request and never answers.
    Hang,
}

impl Script {
    /// A complete answer in one piece.
    pub fn whole(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Script {
        Script::Answer {
            status,
            content_type: content_type.to_owned(),
            chunks: vec![body.into()],
            gap: Duration::ZERO,
            ending: Ending::Complete,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Script {
        Script::whole(status, "application/json", value.to_string())
    }

    /// A 200 stream of `chunks`, `gap` apart, ending as `ending` says.
    pub fn stream(
        content_type: &str,
        chunks: Vec<Vec<u8>>,
        gap: Duration,
        ending: Ending,
    ) -> Script {
        Script::Answer {
            status: 200,
            content_type: content_type.to_owned(),
            chunks,
            gap,
            ending,
        }
    }
}

/// Splits `bytes` at the given offsets (ascending).
pub fn split_at(bytes: &[u8], offsets: &[usize]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &offset in offsets {
        pieces.push(bytes[start..offset].to_vec());
        start = offset;
    }
    pieces.push(bytes[start..].to_vec());
    pieces
}

type Handler = dyn Fn(&Request) -> Script + Send + Sync;

/// A loopback HTTP server answering by script; stops on drop.
pub struct ScriptedServer {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts a server that answers each request with `handler(request)`.
    pub fn start(handler: impl Fn(&Request) -> Script + Send + Sync + 'static) -> ScriptedServer {
        ScriptedServer::start_at("127.0.0.1:0", handler)
    }

    /// [`ScriptedServer::start`] listening at `address`.
    pub fn start_at(
        address: &str,
        handler: impl Fn(&Request) -> Script + Send + Sync + 'static,
    ) -> ScriptedServer {
        let listener = TcpListener::bind(address).expect("the stand-in's address");
        let address = listener.local_addr().expect("bound address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = Arc::clone(&handler);
                    let requests = Arc::clone(&requests);
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || serve(stream, &*handler, &requests, &stop));
                }
            })
        };
        ScriptedServer {
            address,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many requests had `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.path == path)
            .count()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

fn serve(
    mut stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let script = handler(&request);
    requests
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(request);
    let _ = stream.set_nodelay(true);
    let hang = |stop: &AtomicBool| {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    match script {
        Script::Hang => hang(stop),
        Script::Answer {
            status,
            content_type,
            chunks,
            gap,
            ending,
        } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                reason(status)
            );
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            for chunk in chunks {
                std::thread::sleep(gap);
                if chunk.is_empty() {
                    continue;
                }
                let framed =
                    [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                if stream
                    .write_all(&framed)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
            match ending {
                Ending::Complete => {
                    let _ = stream.write_all(b"0\r\n\r\n");
                }
                Ending::Drop => {}
                Ending::Hang => hang(stop),
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The "model" of the Ollama stand-in: the last user message, echoed.
pub fn echo_reply(request: &Value) -> String {
    let last = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|message| message.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("echo: {last}")
}

/// Splits text into word tokens that keep their leading space.
fn tokens(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for (index, word) in text.split(' ').enumerate() {
        if index == 0 {
            tokens.push(word.to_owned());
        } else {
            tokens.push(format!(" {word}"));
        }
    }
    tokens.retain(|token| !token.is_empty());
    tokens
}

/// A server standing in for Ollama (which cannot be installed here),
/// following Ollama's documented API: `GET /api/version`, `GET /api/tags`
/// listing `models`, and `POST /api/chat` streaming NDJSON (or one object with
/// `"stream": false`), honouring `options.num_predict`, and answering an
/// unknown model with 404 `{"error": "model \"x\" not found, try pulling it
/// first"}`. Tokens are `token_gap` apart.
pub fn ollama_stand_in(models: &[&str], token_gap: Duration) -> ScriptedServer {
    ollama_stand_in_at("127.0.0.1:0", models, token_gap)
}

/// [`ollama_stand_in`] listening at `address` (Ollama's own
/// `127.0.0.1:11434` inside a test's network namespace).
pub fn ollama_stand_in_at(address: &str, models: &[&str], token_gap: Duration) -> ScriptedServer {
    let models: Vec<String> = models.iter().map(|model| (*model).to_owned()).collect();
    ScriptedServer::start_at(address, move |request| {
        ollama_answer(&models, token_gap, request)
    })
}

const CREATED_AT: &str = "2026-11-22T10:00:00.000000000Z";

fn ollama_answer(models: &[String], token_gap: Duration, request: &Request) -> Script {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/api/version") => Script::json(200, &json!({"version": "0.12.0-hearth-stand-in"})),
        ("GET", "/api/tags") => {
            let listed: Vec<Value> = models
                .iter()
                .map(|name| {
                    json!({
                        "name": name, "model": name, "modified_at": CREATED_AT, "size": 530_000,
                        "digest": "0000000000000000000000000000000000000000000000000000000000000000",
                        "details": {"format": "gguf", "family": "llama", "parameter_size": "0.1M", "quantization_level": "F32"}
                    })
                })
                .collect();
            Script::json(200, &json!({ "models": listed }))
        }
        ("POST", "/api/chat") => {
            let body = request.json();
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if !models.contains(&model) {
                return Script::json(
                    404,
                    &json!({"error": format!("model \"{model}\" not found, try pulling it first")}),
                );
            }
            let mut words = tokens(&echo_reply(&body));
            let mut done_reason = "stop";
            if let Some(limit) = body.pointer("/options/num_predict").and_then(Value::as_u64)
                && words.len() as u64 > limit
            {
                words.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                done_reason = "length";
            }
            let last = json!({
                "model": model, "created_at": CREATED_AT,
                "message": {"role": "assistant", "content": ""},
                "done": true, "done_reason": done_reason,
                "total_duration": 1_000_000, "load_duration": 1000,
                "prompt_eval_count": 8, "prompt_eval_duration": 1000,
                "eval_count": words.len(), "eval_duration": 1000
            });
            if body.get("stream") == Some(&Value::Bool(false)) {
                let mut whole = last;
                whole["message"]["content"] = json!(words.concat());
                return Script::json(200, &whole);
            }
            let mut lines: Vec<Vec<u8>> = words
                .iter()
                .map(|word| {
                    let line = json!({
                        "model": model, "created_at": CREATED_AT,
                        "message": {"role": "assistant", "content": word}, "done": false
                    });
                    format!("{line}\n").into_bytes()
                })
                .collect();
            lines.push(format!("{last}\n").into_bytes());
            Script::stream("application/x-ndjson", lines, token_gap, Ending::Complete)
        }
        _ => Script::json(404, &json!({"error": "404 page not found"})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_tokens_keep_their_spaces() {
        let reply = echo_reply(&json!({"messages": [{"role": "user", "content": "tea for two"}]}));
        assert_eq!(tokens(&reply), ["echo:", " tea", " for", " two"]);
        assert_eq!(tokens(&reply).concat(), reply);
    }

    #[test]
    fn split_at_cuts_where_asked() {
        assert_eq!(
            split_at(b"abcdef", &[1, 4]),
            [b"a".to_vec(), b"bcd".to_vec(), b"ef".to_vec()]
        );
    }
}

/// What the tool-calling stand-in answers next.
#[derive(Clone, Debug)]
pub enum Turn {
    /// Text (streamed word by word).
    Say(String),
    /// These calls: (function name, arguments as JSON).
    Call(Vec<(String, Value)>),
}

/// A server standing in for an OpenAI-style model that calls tools
/// (llama-server with `--jinja` and a model trained for it): `GET
/// /v1/models`, and `POST /v1/chat/completions` streamed in llama-server's
/// form, each answer what `decide` makes of the request. A real small model
/// cannot be made to call a given tool when a test needs it; this one
/// does, and its requests (what the model was shown) stay readable through
/// [`ScriptedServer::requests`].
pub fn tool_model_stand_in(
    decide: impl Fn(&Value) -> Turn + Send + Sync + 'static,
) -> ScriptedServer {
    ScriptedServer::start(
        move |request| match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/v1/models") => Script::json(
                200,
                &json!({"object": "list", "data": [{"id": "tiny", "object": "model"}]}),
            ),
            ("POST", "/v1/chat/completions") => {
                let chunk = |delta: Value, finish: Option<&str>| {
                    format!(
                        "data: {}\n\n",
                        json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1,
                               "model": "tiny", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                    )
                    .into_bytes()
                };
                let mut chunks = vec![chunk(json!({"role": "assistant", "content": null}), None)];
                let finish = match decide(&request.json()) {
                    Turn::Say(text) => {
                        for word in tokens(&text) {
                            chunks.push(chunk(json!({"content": word}), None));
                        }
                        "stop"
                    }
                    Turn::Call(calls) => {
                        for (index, (name, arguments)) in calls.iter().enumerate() {
                            chunks.push(chunk(
                                json!({"tool_calls": [{"index": index, "id": format!("call_{index}"), "type": "function",
                                                       "function": {"name": name, "arguments": arguments.to_string()}}]}),
                                None,
                            ));
                        }
                        "tool_calls"
                    }
                };
                chunks.push(chunk(json!({}), Some(finish)));
                chunks.push(b"data: [DONE]\n\n".to_vec());
                Script::stream(
                    "text/event-stream",
                    chunks,
                    Duration::ZERO,
                    Ending::Complete,
                )
            }
            _ => Script::json(404, &json!({"error": "not found"})),
        },
    )
}

/// The messages of a chat request the stand-in received.
pub fn messages_of(request: &Value) -> Vec<Value> {
    request
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The node agent's local API standing in for a real agent (whose
/// answers come from a coordinator's policy): `GET /v1/whois?ip=ADDRESS`
/// answers what the test set for that address, else 404; `GET /v1/watch`
/// is the change feed, a line whenever the test changes an answer. On a
/// UNIX socket in a directory of its own; stops on drop.
pub struct AgentStandIn {
    /// The socket's path (what `hearth.agentSocket` names).
    pub socket: std::path::PathBuf,
    answers: Arc<Mutex<std::collections::HashMap<String, Value>>>,
    changes: Arc<(Mutex<u64>, std::sync::Condvar)>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl AgentStandIn {
    /// Starts one with no node known.
    pub fn start() -> AgentStandIn {
        let dir = tempfile::tempdir().expect("a directory for the socket");
        let socket = dir.path().join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("the socket binds");
        let answers: Arc<Mutex<std::collections::HashMap<String, Value>>> = Arc::default();
        let changes: Arc<(Mutex<u64>, std::sync::Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let answers = Arc::clone(&answers);
            let changes = Arc::clone(&changes);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let answers = Arc::clone(&answers);
                    let changes = Arc::clone(&changes);
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || answer_agent(stream, &answers, &changes, &stop));
                }
            });
        }
        AgentStandIn {
            socket,
            answers,
            changes,
            stop,
            _dir: dir,
        }
    }

    /// From now on `address` is `who` (a `WhoIs` as JSON); `None`: unknown.
    pub fn set(&self, address: &str, who: Option<Value>) {
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match who {
            Some(who) => answers.insert(address.to_owned(), who),
            None => answers.remove(address),
        };
        drop(answers);
        let (generation, changed) = &*self.changes;
        *generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        changed.notify_all();
    }

    /// A `WhoIs` answer for a member's untagged device.
    pub fn member(user: &str, address: &str, capabilities: Value) -> Value {
        json!({
            "id": 7,
            "name": format!("{user}-device"),
            "user": user,
            "tags": [],
            "addresses": [address],
            "is_self": false,
            "capabilities": capabilities,
        })
    }

    /// A `WhoIs` answer for a tagged device `name` (owned by `admin`).
    pub fn tagged(name: &str, address: &str, tags: &[&str], capabilities: Value) -> Value {
        json!({
            "id": 9,
            "name": name,
            "user": "admin",
            "tags": tags,
            "addresses": [address],
            "is_self": false,
            "capabilities": capabilities,
        })
    }
}

impl Drop for AgentStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.changes.1.notify_all();
        let _ = std::os::unix::net::UnixStream::connect(&self.socket);
    }
}

/// The change feed: a line at once, then one per change (and the same
/// line again every 20 s, as the agent's keep-alive), until the reader or
/// the stand-in goes.
fn follow_changes(
    stream: &std::os::unix::net::UnixStream,
    changes: &(Mutex<u64>, std::sync::Condvar),
    stop: &AtomicBool,
) {
    let mut writer = stream;
    if write!(
        writer,
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n"
    )
    .is_err()
    {
        return;
    }
    let (generation, changed) = changes;
    let mut seen = *generation
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        if writeln!(writer, "{{\"generation\":{seen}}}").is_err() || writer.flush().is_err() {
            return;
        }
        let guard = generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = changed
            .wait_timeout_while(guard, Duration::from_secs(20), |now| {
                *now == seen && !stop.load(Ordering::Relaxed)
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if stop.load(Ordering::Relaxed) {
            return;
        }
        seen = *guard;
    }
}

fn answer_agent(
    stream: std::os::unix::net::UnixStream,
    answers: &Mutex<std::collections::HashMap<String, Value>>,
    changes: &(Mutex<u64>, std::sync::Condvar),
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // The rest of the head.
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or_default();
    if target == hearth_control::agent_api::WATCH_PATH {
        return follow_changes(&stream, changes, stop);
    }
    let address = target
        .strip_prefix(hearth_control::agent_api::WHOIS_PATH)
        .and_then(|rest| rest.strip_prefix("?ip="))
        .map(|address| address.replace("%3A", ":").replace("%3a", ":"));
    let found = address.and_then(|address| {
        answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&address)
            .cloned()
    });
    let (status, body) = match found {
        Some(who) => ("200 OK", who.to_string()),
        None => ("404 Not Found", "{}".to_owned()),
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}
