//! A llama-server started by the node itself, inside the same trust
//! boundary: on a UNIX socket in a directory only this process can enter,
//! killed when the node stops. This is how the compute image runs (an
//! enclave has one entry point and no service manager); `--backend` points
//! at a model server started some other way.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a model may take to load.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A running llama-server; killed when dropped.
pub struct SpawnedModel {
    child: tokio::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl SpawnedModel {
    /// Starts `server` with `model`, `slots` replies at once, and waits until
    /// it answers `/health`.
    pub async fn start(server: &Path, model: &Path, slots: u32) -> anyhow::Result<SpawnedModel> {
        // tempfile makes the directory 0700: only this user reaches the socket.
        let dir = tempfile::Builder::new()
            .prefix("hearth-enclave-")
            .tempdir()
            .context("creating the model's socket directory")?;
        let socket = dir.path().join("inference.sock");
        let mut child = tokio::process::Command::new(server)
            .arg("-m")
            .arg(model)
            .arg("--host")
            .arg(&socket)
            .args(["-c", "2048", "-np", &slots.max(1).to_string(), "--no-webui"])
            // Its output could hold request text at higher verbosity: none
            // of it is kept.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "{} exited before it was ready ({status}); is {} a GGUF model?",
                    server.display(),
                    model.display()
                );
            }
            if healthy(&socket).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{} was not ready within {READY_WITHIN:?}", server.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(pid = child.id(), "model server ready");
        Ok(SpawnedModel {
            child,
            socket,
            _dir: dir,
        })
    }

    /// The backend URL for `hearth-llm`: `unix:/…/inference.sock`.
    pub fn backend(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Whether the server on `socket` answers `GET /health` with 200.
async fn healthy(socket: &Path) -> bool {
    let Ok(mut stream) = tokio::net::UnixStream::connect(socket).await else {
        return false;
    };
    let asked = stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let mut head = [0u8; 12];
    asked.is_ok() && stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200")
}
