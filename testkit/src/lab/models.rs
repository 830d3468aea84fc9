//! Model servers and their clients in lab hosts: llama-server serving a
//! GGUF file, and the official Python clients (PyPI's `openai`, `ollama`)
//! from the test environment's interpreter.

use std::path::Path;

use super::{Host, Lab, Process};

impl Lab {
    /// Starts `llama` (a llama-server binary) in `host` serving `model`
    /// under the name `alias`, at `address:port`, with a context of
    /// `context` tokens on one thread.
    pub fn start_llama_server(
        &mut self,
        host: &Host,
        llama: &Path,
        model: &Path,
        (address, port): (&str, u16),
        alias: &str,
        context: u32,
    ) -> Process {
        let mut command = self.command(host, llama);
        command.arg("-m").arg(model).args([
            "--host",
            address,
            "--port",
            &port.to_string(),
            "--alias",
            alias,
            "-c",
            &context.to_string(),
            "-t",
            "1",
            "--no-webui",
        ]);
        self.spawn(host, &format!("{}-llama-server-{port}", host.name), command)
    }

    /// Starts `gateway` (the hearth-gateway binary) in `host` serving
    /// `config` (written to the lab's `gateway.json`), logging at info.
    pub fn serve_gateway(
        &mut self,
        host: &Host,
        gateway: impl AsRef<std::ffi::OsStr>,
        config: &serde_json::Value,
    ) -> Process {
        let path = self.dir.path().join("gateway.json");
        std::fs::write(&path, config.to_string()).expect("the gateway's configuration is written");
        let mut command = self.command(host, gateway);
        command
            .args(["serve", "--config"])
            .arg(&path)
            .env("HEARTH_LOG", "info");
        self.spawn(host, "gateway", command)
    }

    /// Runs `script` with the test environment's Python (the official
    /// clients) in `host`, with `env` set; its output and errors, joined.
    pub fn python_on(&self, host: &Host, script: &str, env: &[(&str, &str)]) -> String {
        let output = self
            .command(host, crate::llama::python())
            .args(["-c", script])
            .envs(env.iter().copied())
            .output()
            .expect("python runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}
