//! Prompts and replies are never logged: a canary string goes through every
//! path (encrypted chat, the OpenAI API streaming and not, a backend that
//! quotes the prompt in its errors, a reply failing mid-stream) with the
//! gateway logging at TRACE, and must appear neither in its logs nor in its
//! data directory outside the session store.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use hearth_e2ee::{KeyPair, ReplyEvent};
use hearth_testkit::gateway_process::{GatewayProcess, ask, config, text_of};
use hearth_testkit::standins::{Ending, Script, ScriptedServer, ollama_stand_in};
use serde_json::{Value, json};

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn a_canary_prompt_never_reaches_logs_or_files_outside_the_session_store() {
    let canary = format!(
        "CANARY-{}",
        hearth_e2ee::envelope::b64(&rand::random::<[u8; 12]>())
    );
    // The primary quotes whatever it was sent in its errors: a 500 for most
    // requests, an error in the middle of the stream when asked.
    let quoting = ScriptedServer::start(|request| {
        let body = String::from_utf8_lossy(&request.body).replace('"', "'");
        if body.contains("midstream") {
            let delta = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"},\"finish_reason\":null}]}\n\n".to_owned();
            let error = format!(
                "data: {{\"error\":{{\"code\":500,\"message\":\"failed on: {body}\"}}}}\n\n"
            );
            Script::stream(
                "text/event-stream",
                vec![delta.into_bytes(), error.into_bytes()],
                Duration::ZERO,
                Ending::Complete,
            )
        } else {
            Script::json(
                500,
                &json!({"error": {"message": format!("cannot answer: {body}")}}),
            )
        }
    });
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut gateway = GatewayProcess::start(config(&[
        (
            "quoting",
            "openai-completions",
            &format!("{}/v1", quoting.url()),
        ),
        ("home", "ollama", &fallback.url()),
    ]));
    let client = gateway.client(KeyPair::generate());

    // A reply failing mid-stream, its error quoting the prompt.
    let events = ask(&client, "hall", &format!("midstream {canary}")).await;
    assert_eq!(text_of(&events), "partial");
    assert!(
        matches!(events.last().unwrap(), ReplyEvent::Error { .. }),
        "{events:?}"
    );

    // Encrypted chat: the primary fails quoting the prompt, the fallback echoes it.
    let events = ask(&client, "kitchen", &format!("what does {canary} mean")).await;
    assert_eq!(text_of(&events), format!("echo: what does {canary} mean"));
    // A second turn carries the first in its history.
    let events = ask(&client, "kitchen", &format!("and {canary} again")).await;
    assert!(text_of(&events).contains(&canary));
    // The OpenAI-compatible API, not streaming and streaming.
    let http = gateway.http();
    for stream in [false, true] {
        let body = json!({"model": "home/tiny", "stream": stream, "messages": [{"role": "user", "content": format!("say {canary}")}]});
        let answer = http
            .post(format!("{}/v1/chat/completions", gateway.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(
            answer.text().await.unwrap().contains(&canary),
            "the reply itself carries the canary"
        );
    }
    let metrics = gateway.get_text("/metrics").await;
    assert!(!metrics.contains(&canary));
    assert!(gateway.stop().success());

    let log = gateway.log_text();
    assert!(log.contains("TRACE"), "the gateway logged at TRACE:\n{log}");
    assert!(
        log.contains("model attempt failed"),
        "the failures were logged, without payloads"
    );
    assert!(!log.contains(&canary), "the canary is in the gateway's log");
    assert!(
        !log.contains("what does"),
        "a prompt is in the gateway's log"
    );

    let mut in_sessions = false;
    for file in files(&gateway.data_dir) {
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("sessions.db") {
            in_sessions |= contains(&bytes, &canary);
        } else {
            assert!(
                !contains(&bytes, &canary),
                "the canary is in {}",
                file.display()
            );
        }
    }
    assert!(
        in_sessions,
        "the conversation is kept in the session store (so the search above looked at real data)"
    );
    let backend_saw: Vec<Value> = fallback
        .requests()
        .iter()
        .map(|request| request.json())
        .collect();
    assert!(
        backend_saw
            .iter()
            .any(|body| body.to_string().contains(&canary))
    );
}
