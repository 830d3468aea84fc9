//! An independent client, written in Python from docs/e2ee-protocol.md
//! alone with PyPI's pyhpke and cryptography (clients/python/hearth_chat.py),
//! checks the published test vectors and completes encrypted streamed chats
//! with the real gateway.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use hearth_testkit::gateway_process::{GatewayProcess, config};
use hearth_testkit::llama::{LlamaServer, python, workspace_root};
use hearth_testkit::skip;
use hearth_testkit::standins::ollama_stand_in;

/// The client script, when its Python packages are installed.
fn client() -> Option<PathBuf> {
    let check = Command::new(python())
        .args(["-c", "import pyhpke, cryptography"])
        .output();
    if !check.is_ok_and(|output| output.status.success()) {
        return skip("pyhpke and cryptography are not installed: run scripts/python-env.sh");
    }
    Some(workspace_root().join("clients/python/hearth_chat.py"))
}

fn run(script: &PathBuf, args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(python());
    command.arg(script).args(args);
    if let Some(token) = token {
        command.env("HEARTH_GATEWAY_TOKEN", token);
    }
    command.output().unwrap()
}

/// Runs the Python client's `chat` against `gateway` as the device in `key`;
/// the token goes through the environment, never argv (a token starting
/// with `-` once read as an option there).
fn chat(script: &PathBuf, gateway: &GatewayProcess, key: &str, rest: &[&str]) -> Output {
    let mut args = vec!["chat", "--url", &gateway.url, "--device-key", key];
    args.extend_from_slice(rest);
    run(script, &args, Some(&gateway.token()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_python_client_agrees_with_the_published_vectors() {
    let Some(script) = client() else { return };
    let vectors = workspace_root().join("docs/e2ee-test-vectors.json");
    let output = run(
        &script,
        &["verify-vectors", vectors.to_str().unwrap()],
        None,
    );
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(text(&output.stdout).starts_with("vectors ok"));
}

#[tokio::test]
async fn the_python_client_chats_through_the_gateway() {
    let Some(script) = client() else { return };
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let echo = ollama_stand_in(&["tiny"], Duration::ZERO);
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("device.key");
    let key = key.to_str().unwrap();

    // Exact text through the Ollama stand-in, multi-byte characters included.
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &echo.url())]));
    let output = chat(&script, &gateway, key, &["hello from python \u{2615}"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "echo: hello from python \u{2615}\n");
    assert!(text(&output.stderr).contains("[home/tiny]"));
    // Same device key, same channel: the second turn carries the first.
    let output = chat(&script, &gateway, key, &["again"]);
    assert!(output.status.success());
    let last = echo.requests().last().unwrap().json();
    assert_eq!(last["messages"].as_array().unwrap().len(), 3, "{last}");

    // Real tokens from llama-server.
    let gateway =
        GatewayProcess::start(config(&[("local", "openai-completions", &llama.base_url)]));
    let output = chat(
        &script,
        &gateway,
        key,
        &["--max-tokens", "6", "tell me a story"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).trim().is_empty());
    assert!(text(&output.stderr).contains("[local/tiny]"));

    // A refusal is reported as such.
    drop(llama);
    let output = chat(&script, &gateway, key, &["anyone there"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("no_model"),
        "{}",
        text(&output.stderr)
    );
}
