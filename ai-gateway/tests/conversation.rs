//! Sessions, persona, context budget, and the OpenAI-compatible API.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hearth_e2ee::{KeyPair, ReplyEvent};
use hearth_testkit::gateway_process::{GatewayProcess, ask, config};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::standins::{ScriptedServer, ollama_stand_in};
use serde_json::{Value, json};

/// The messages of the backend's last request, as (role, content).
fn last_sent(backend: &ScriptedServer) -> Vec<(String, String)> {
    let request = backend
        .requests()
        .into_iter()
        .rev()
        .find(|request| request.path == "/api/chat")
        .unwrap();
    request.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| {
            (
                message["role"].as_str().unwrap().to_owned(),
                message["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(role, content)| ((*role).to_owned(), (*content).to_owned()))
        .collect()
}

#[tokio::test]
async fn sessions_are_per_channel_and_device_survive_restarts_and_new_starts_afresh() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let device = KeyPair::generate();
    let alice = gateway.client(device.clone());
    let bob = gateway.client(KeyPair::generate());

    ask(&alice, "kitchen", "first").await;
    ask(&alice, "kitchen", "second").await;
    assert_eq!(
        last_sent(&backend),
        turns(&[
            ("user", "first"),
            ("assistant", "echo: first"),
            ("user", "second")
        ])
    );
    ask(&bob, "kitchen", "mine").await;
    assert_eq!(
        last_sent(&backend),
        turns(&[("user", "mine")]),
        "another device, another session"
    );
    ask(&alice, "garden", "elsewhere").await;
    assert_eq!(
        last_sent(&backend),
        turns(&[("user", "elsewhere")]),
        "another channel, another session"
    );

    let fresh = ask(&alice, "kitchen", "/new").await;
    assert!(
        matches!(&fresh[0], ReplyEvent::Notice { text } if text.starts_with("New session")),
        "{fresh:?}"
    );
    assert!(
        matches!(fresh.last().unwrap(), ReplyEvent::Done { finish_reason, .. } if finish_reason == "new_session")
    );
    let calls = backend.count("/api/chat");
    ask(&alice, "kitchen", "third").await;
    assert_eq!(
        backend.count("/api/chat"),
        calls + 1,
        "/new itself did not call the model"
    );
    assert_eq!(last_sent(&backend), turns(&[("user", "third")]));

    let store = gateway.data_dir.join("sessions.db");
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(gateway.stop().success());
    gateway.launch();
    ask(&gateway.client(device), "kitchen", "fourth").await;
    assert_eq!(
        last_sent(&backend),
        turns(&[
            ("user", "third"),
            ("assistant", "echo: third"),
            ("user", "fourth")
        ]),
        "history is kept across a restart"
    );
}

#[tokio::test]
async fn the_persona_comes_from_the_workspace_files_capped() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(
        workspace.path().join("SOUL.md"),
        "You are Ember, the household's helper.\n",
    )
    .unwrap();
    std::fs::write(
        workspace.path().join("USER.md"),
        "The Okafor family: Ada, Tunde and Zara.",
    )
    .unwrap();
    std::fs::write(workspace.path().join("IDENTITY.md"), "i".repeat(30_000)).unwrap();
    std::fs::write(workspace.path().join("NOTES.md"), "not part of the persona").unwrap();
    for entry in std::fs::read_dir(workspace.path()).unwrap() {
        std::fs::set_permissions(
            entry.unwrap().path(),
            std::fs::Permissions::from_mode(0o444),
        )
        .unwrap();
    }
    std::fs::set_permissions(workspace.path(), std::fs::Permissions::from_mode(0o555)).unwrap();

    let mut settings = config(&[("home", "ollama", &backend.url())]);
    settings["agents"]["defaults"]["workspace"] = json!(workspace.path());
    settings["models"]["providers"]["home"]["models"][0]["contextWindow"] = json!(32_768);
    let gateway = GatewayProcess::start(settings);
    ask(&gateway.client(KeyPair::generate()), "c", "who are you").await;
    let sent = last_sent(&backend);
    assert_eq!(sent.len(), 2);
    let (role, system) = &sent[0];
    assert_eq!(role, "system");
    assert!(
        system.starts_with("# SOUL.md\n\nYou are Ember, the household's helper."),
        "{}",
        &system[..80]
    );
    assert!(system.contains("# IDENTITY.md"));
    assert_eq!(system.matches('i').count() - "# SOUL.md You are Ember, the household's helper. # USER.md The Okafor family: Ada, Tunde and Zara. # IDENTITY.md".matches('i').count(), 20_000);
    assert!(
        system.ends_with("The Okafor family: Ada, Tunde and Zara."),
        "USER.md comes last"
    );
    assert!(!system.contains("not part of the persona"));
    std::fs::set_permissions(workspace.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn long_history_is_trimmed_to_the_context_budget_oldest_first() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut settings = config(&[("home", "ollama", &backend.url())]);
    // 400 tokens of context, 64 kept for the reply: about 1,000 characters of prompt.
    settings["models"]["providers"]["home"]["models"][0]["contextWindow"] = json!(400);
    let gateway = GatewayProcess::start(settings);
    let client = gateway.client(KeyPair::generate());
    for index in 0..12 {
        ask(
            &client,
            "c",
            &format!("message {index:02} {}", "x".repeat(80)),
        )
        .await;
    }
    let sent = last_sent(&backend);
    let characters: usize = sent.iter().map(|(_, content)| content.len()).sum();
    assert!(characters <= 336 * 3, "{characters} characters sent");
    assert!(
        sent.len() < 24,
        "older turns were dropped: {} messages",
        sent.len()
    );
    assert!(
        sent.last().unwrap().1.starts_with("message 11"),
        "the new message is always sent"
    );
    assert_eq!(sent[0].0, "user", "whole turns are dropped from the oldest");
    let first_kept: usize = sent[0].1[8..10].parse().unwrap();
    assert!(first_kept > 0, "the oldest message went first");
}

#[tokio::test]
async fn a_prompt_longer_than_the_models_context_is_a_clear_error() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let gateway =
        GatewayProcess::start(config(&[("local", "openai-completions", &llama.base_url)]));
    let events = ask(
        &gateway.client(KeyPair::generate()),
        "c",
        &"hearth ".repeat(4000),
    )
    .await;
    let Some(ReplyEvent::Error { code, message }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(code, "context_overflow");
    assert!(
        message.contains("longer than the model's context"),
        "{message}"
    );
}

#[tokio::test]
async fn the_openai_compatible_api_serves_mesh_clients() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[
        ("local", "openai-completions", &llama.base_url),
        ("home", "ollama", &backend.url()),
    ]));
    let http = gateway.http();

    let models: Value = gateway.get_json("/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "openclaw",
            "openclaw/default",
            "openclaw/main",
            "home/tiny",
            "local/tiny"
        ],
        "OpenClaw's agent targets (one agent, main), then the backend models"
    );
    assert_eq!(models["object"], "list");

    let question = json!({"model": "local/tiny", "max_tokens": 6, "temperature": 0,
                          "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]});
    let whole: Value = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&question)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["model"], "local/tiny");
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 6);
    let content = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!content.is_empty());

    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let response = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|event| serde_json::from_str(event).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "chat.completion.chunk")
    );
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text, content,
        "streamed and whole replies agree (greedy sampling)"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );

    let empty = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"model": "local/tiny", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    let garbage = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(
        backend.count("/api/chat"),
        0,
        "the primary answered everything"
    );
}

#[tokio::test]
async fn the_chat_command_prints_the_streamed_answer() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("device.key");
    let url = gateway.url.clone();
    let token_file = gateway.data_dir.join("gateway.token");
    let run = |question: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hearth-gateway"))
            .args(["chat", "--url", &url, "--device-key"])
            .arg(&key)
            .arg("--token-file")
            .arg(&token_file)
            .arg(question)
            .output()
            .unwrap()
    };
    let output = run("tea or coffee");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "echo: tea or coffee\n"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("[home/tiny]"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the device key is private"
    );
    let again = run("and now");
    assert!(again.status.success());
    let sent = last_sent(&backend);
    assert_eq!(
        sent.len(),
        3,
        "the same device key continues the same session: {sent:?}"
    );
    drop(gateway);
    let down = run("anyone");
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot reach the gateway"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
