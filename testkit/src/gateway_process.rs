//! The real `hearth-gateway` binary on a loopback port with a configuration
//! written for the test, and helpers to talk to it over HTTP and the
//! encrypted API: the gateway's integration tests.
// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::llama::free_port;
use hearth_chat_client::ChatClient;
use hearth_e2ee::envelope::seal_request;
use hearth_e2ee::{
    ChatEnvelope, ChatPayload, ChunkOpener, KeyPair, PublishedKey, ReplyEvent, SealedChunk,
};
use hearth_sse::SseDecoder;
use serde_json::{Value, json};

/// A config with one provider per `(id, api, url)` and the chain in that order.
pub fn config(providers: &[(&str, &str, &str)]) -> Value {
    let mut section = serde_json::Map::new();
    for (id, api, url) in providers {
        section.insert(
            (*id).to_owned(),
            json!({"baseUrl": url, "api": api, "timeoutSeconds": 3, "models": [{"id": "tiny", "contextWindow": 2048, "maxTokens": 64}]}),
        );
    }
    let chain: Vec<String> = providers
        .iter()
        .map(|(id, _, _)| format!("{id}/tiny"))
        .collect();
    json!({
        "gateway": {"bind": "loopback", "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": section},
        "agents": {"defaults": {"model": {"primary": chain[0], "fallbacks": chain[1..]}}},
        "hearth": {"connectTimeoutSeconds": 1, "healthCheckSeconds": 1},
    })
}

/// Where a gateway listens and the bearer token it wants.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The token (the one the gateway wrote to its data directory, unless configured).
    pub token: String,
}

impl Target {
    /// A client that sends the token with every request.
    pub fn http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }
}

/// A running gateway; stopped (SIGKILL) on drop.
pub struct GatewayProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    config_path: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    /// Extra environment of the process.
    pub env: Vec<(String, String)>,
}

impl GatewayProcess {
    /// Writes `config` (port and data dir filled in) and starts the gateway
    /// with `HEARTH_LOG=trace`; waits until it listens.
    pub fn start(config: Value) -> GatewayProcess {
        let mut gateway = GatewayProcess::prepare(config);
        gateway.launch();
        gateway
    }

    /// Starts the gateway with `config` as members' apps reach it: callers
    /// named by the node agent at `agent_socket` (the token's holder
    /// otherwise), and Ollama's API on a free port; waits until that API
    /// answers. The gateway, and Ollama's API's URL.
    pub fn start_for_apps(mut config: Value, agent_socket: &Path) -> (GatewayProcess, String) {
        let ollama_port = free_port();
        config["gateway"]["auth"] = json!({"mode": "token"});
        config["hearth"]["agentSocket"] = json!(agent_socket);
        config["hearth"]["ollama"] = json!({"enabled": true, "port": ollama_port});
        let gateway = GatewayProcess::start(config);
        let answers = crate::wait_until(Duration::from_secs(10), || {
            crate::llama::port_answers(("127.0.0.1", ollama_port))
        });
        assert!(
            answers.is_some(),
            "Ollama's API listens: {}",
            gateway.log_text()
        );
        (gateway, format!("http://127.0.0.1:{ollama_port}"))
    }

    /// Writes the config without starting.
    pub fn prepare(mut config: Value) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data_dir = dir.path().join("data");
        config["gateway"]["port"] = json!(port);
        config["hearth"]["dataDir"] = json!(data_dir);
        let config_path = dir.path().join("openclaw.json");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        GatewayProcess {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            config_path,
            log: dir.path().join("gateway.log"),
            dir,
            port,
            env: Vec::new(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(crate::lab::binary("hearth-gateway"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .env("HEARTH_LOG", "trace")
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null());
        command
    }

    /// Starts (again) and waits until it listens.
    pub fn launch(&mut self) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command()
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("the gateway exited ({status}): {}", self.log_text());
            }
            if crate::llama::port_answers(("127.0.0.1", self.port)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the gateway did not listen in 20 s: {}", self.log_text());
    }

    /// Runs the gateway expecting it to refuse to start; its exit and output.
    pub fn refuse(&self) -> (ExitStatus, String) {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut output = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut output)
                    .unwrap();
                return (status, output);
            }
            assert!(
                Instant::now() < deadline,
                "the gateway started instead of refusing"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the gateway did not stop on SIGTERM: {}", self.log_text());
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the gateway runs").id()
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A scratch directory living as long as the gateway.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bearer token local callers need: the one the gateway wrote to
    /// its data directory on its first start (or the configured one).
    pub fn token(&self) -> String {
        let configured = std::fs::read_to_string(&self.config_path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|config| {
                config["gateway"]["auth"]["token"]
                    .as_str()
                    .map(str::to_owned)
            })
            .filter(|token| !token.starts_with("${"));
        configured.unwrap_or_else(|| {
            std::fs::read_to_string(self.data_dir.join("gateway.token"))
                .map(|text| text.trim().to_owned())
                .unwrap_or_default()
        })
    }

    /// Where it listens, with its token.
    pub fn target(&self) -> Target {
        Target {
            url: self.url.clone(),
            token: self.token(),
        }
    }

    /// An HTTP client that sends the token.
    pub fn http(&self) -> reqwest::Client {
        self.target().http()
    }

    /// `GET path` with the token; the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET path` with the token; the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path).await).unwrap()
    }

    /// The prompt tokens `who` was charged, over every model and day of
    /// the usage the admin reads (`/v1/usage`).
    pub async fn prompt_tokens(&self, who: &str) -> u64 {
        let usage = self.get_json("/v1/usage").await;
        usage["usage"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["who"] == who)
            .map(|row| row["prompt_tokens"].as_u64().unwrap())
            .sum()
    }

    /// A client as `device`.
    pub fn client(&self, device: KeyPair) -> ChatClient {
        ChatClient::new(&self.url, Some(self.token()), device)
    }

    /// The published keys.
    pub async fn keys(&self) -> Vec<PublishedKey> {
        let answer = self.get_json("/api/pubkey").await;
        serde_json::from_value(answer["keys"].clone()).unwrap()
    }

    /// The current key.
    pub async fn current_key(&self) -> PublishedKey {
        self.keys()
            .await
            .into_iter()
            .find(|key| key.status == "current")
            .unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Seals `message` to `key` as `device` at `timestamp`.
pub fn seal(
    key: &PublishedKey,
    device: &KeyPair,
    message: &str,
    timestamp: i64,
) -> (ChatEnvelope, ChunkOpener) {
    use base64::Engine as _;
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&key.public_key)
        .unwrap();
    let payload = ChatPayload {
        message: message.into(),
        channel: Some("test".into()),
        max_tokens: Some(8),
        temperature: Some(0.0),
        images: Vec::new(),
        on_behalf_of: None,
    };
    seal_request(
        &public,
        &key.id,
        device,
        &serde_json::to_vec(&payload).unwrap(),
        timestamp,
    )
    .unwrap()
}

/// What `POST /api/chat` answered: status, the error code if refused, and the raw body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The error code, if refused.
    pub code: Option<String>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Posts `body` to `/api/chat` and reads the whole answer.
pub async fn post_chat(target: &Target, body: impl Into<reqwest::Body>) -> Answer {
    let response = target
        .http()
        .post(format!("{}/api/chat", target.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap().to_vec();
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|value| value["error"]["code"].as_str().map(str::to_owned));
    Answer { status, code, body }
}

/// The sealed chunks of an SSE body.
pub fn chunks(body: &[u8]) -> Vec<SealedChunk> {
    let mut decoder = SseDecoder::new();
    decoder
        .push(body)
        .unwrap()
        .into_iter()
        .map(|event| serde_json::from_str(&event.data).unwrap())
        .collect()
}

/// Opens every chunk; the events, or the first error.
pub fn open_all(
    opener: &mut ChunkOpener,
    chunks: &[SealedChunk],
) -> Result<Vec<ReplyEvent>, hearth_e2ee::ChunkError> {
    let mut events = Vec::new();
    for chunk in chunks {
        let plaintext = opener.open(chunk)?;
        events.push(serde_json::from_slice(&plaintext).unwrap());
    }
    opener.finish()?;
    Ok(events)
}

/// The text of the deltas.
pub fn text_of(events: &[ReplyEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            ReplyEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Sends `message` through `client`; the events.
pub async fn ask(client: &ChatClient, channel: &str, message: &str) -> Vec<ReplyEvent> {
    let payload = ChatPayload {
        message: message.into(),
        channel: Some(channel.into()),
        max_tokens: Some(8),
        temperature: Some(0.0),
        images: Vec::new(),
        on_behalf_of: None,
    };
    let mut events = Vec::new();
    client
        .chat(&payload, |event| events.push(event.clone()))
        .await
        .unwrap();
    events
}
