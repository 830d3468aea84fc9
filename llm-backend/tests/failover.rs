//! Failover between a primary and a fallback, class by class.
//!
//! The primary is a real `llama-server` (stopped with SIGKILL, hung with
//! SIGSTOP) or a scripted server (500, 429, a stream cut short, output then
//! silence); the fallback is the Ollama stand-in, whose echoed reply shows
//! who answered.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hearth_llm::{
    Api, BackendError, ChatRequest, Message, ModelRef, Opened, ProviderConfig, RouteError, Router,
    StreamEvent,
};
use hearth_testkit::llama::{LlamaServer, free_port};
use hearth_testkit::standins::{Ending, Script, ScriptedServer, ollama_stand_in};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack over the configured timeout for a failover to complete.
const SLACK: Duration = Duration::from_millis(1500);

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("user", "where is the tea")],
        max_tokens: Some(6),
        temperature: Some(0.0),
        ..Default::default()
    }
}

fn provider(id: &str, api: Api, endpoints: &[&str]) -> ProviderConfig {
    ProviderConfig {
        id: id.into(),
        api,
        endpoints: endpoints
            .iter()
            .map(|endpoint| (*endpoint).to_owned())
            .collect(),
        timeout: TIMEOUT,
        connect_timeout: Duration::from_secs(1),
    }
}

/// A router with `primary` (OpenAI-style at `url`) and the stand-in as fallback.
fn router(primary: &str, fallback: &ScriptedServer) -> Router {
    Router::new(
        vec![
            provider("local", Api::OpenAiCompletions, &[primary]),
            provider("backup", Api::Ollama, &[&fallback.url()]),
        ],
        vec![
            ModelRef::parse("local/tiny").unwrap(),
            ModelRef::parse("backup/tiny").unwrap(),
        ],
    )
    .unwrap()
}

async fn text_of(mut opened: Opened) -> Result<String, BackendError> {
    let mut text = String::new();
    while let Some(event) = opened.events.next().await {
        match event? {
            StreamEvent::Delta(delta) => text.push_str(&delta),
            StreamEvent::ToolCalls(calls) => panic!("no tools were offered: {calls}"),
            StreamEvent::Done { .. } => return Ok(text),
        }
    }
    Err(BackendError::EndedEarly)
}

/// Opens a reply and checks it came from the fallback within the budget.
async fn expect_fallback(
    router: &Router,
    fallback: &ScriptedServer,
) -> Vec<hearth_llm::router::Attempt> {
    let started = Instant::now();
    let opened = router.open(&request()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(opened.model.to_string(), "backup/tiny");
    assert!(took <= TIMEOUT + SLACK, "failover took {took:?}");
    let attempts = opened.attempts.clone();
    assert_eq!(text_of(opened).await.unwrap(), "echo: where is the tea");
    assert!(fallback.count("/api/chat") >= 1);
    attempts
}

fn scripted(script: Script) -> ScriptedServer {
    ScriptedServer::start(move |_| script.clone())
}

#[tokio::test]
async fn primary_stopped_fails_over_at_once() {
    let Some(mut llama) = LlamaServer::start_tcp() else {
        return;
    };
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&llama.base_url, &fallback);
    let first = router.open(&request()).await.unwrap();
    assert_eq!(
        first.model.to_string(),
        "local/tiny",
        "the primary answers while it runs"
    );
    assert!(text_of(first).await.is_ok());

    llama.kill();
    let started = Instant::now();
    let attempts = expect_fallback(&router, &fallback).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a refused connection costs no timeout"
    );
    assert!(
        matches!(attempts[0].error, BackendError::Refused(_)),
        "{:?}",
        attempts[0]
    );
}

#[tokio::test]
async fn primary_hung_fails_over_after_the_first_token_timeout_then_rests() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&llama.base_url, &fallback);
    llama.freeze();
    let attempts = expect_fallback(&router, &fallback).await;
    assert!(
        matches!(attempts[0].error, BackendError::FirstTokenTimeout(2)),
        "{:?}",
        attempts[0]
    );

    // The hung backend rests for 30 s: the next reply does not wait for it.
    let started = Instant::now();
    let opened = router.open(&request()).await.unwrap();
    assert_eq!(opened.model.to_string(), "backup/tiny");
    assert!(
        opened.attempts.is_empty(),
        "the resting primary is not tried first"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    let local = router
        .status()
        .into_iter()
        .find(|status| status.provider == "local")
        .unwrap();
    assert!((28..=30).contains(&local.cooldown_seconds), "{local:?}");
    llama.thaw();
}

#[tokio::test]
async fn primary_answering_500_fails_over() {
    let primary = scripted(Script::json(
        500,
        &json!({"error": {"code": 500, "message": "boom", "type": "server_error"}}),
    ));
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&format!("{}/v1", primary.url()), &fallback);
    let attempts = expect_fallback(&router, &fallback).await;
    assert!(
        matches!(attempts[0].error, BackendError::Server { status: 500, .. }),
        "{:?}",
        attempts[0]
    );
    assert_eq!(primary.count("/v1/chat/completions"), 1);
}

#[tokio::test]
async fn primary_answering_429_fails_over() {
    let primary = scripted(Script::json(
        429,
        &json!({"error": {"code": 429, "message": "slow down", "type": "rate_limit"}}),
    ));
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&format!("{}/v1", primary.url()), &fallback);
    let attempts = expect_fallback(&router, &fallback).await;
    assert!(
        matches!(attempts[0].error, BackendError::RateLimited(_)),
        "{:?}",
        attempts[0]
    );
}

#[tokio::test]
async fn a_stream_cut_short_before_any_text_fails_over() {
    let role_only = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}]}\n\n";
    let primary = scripted(Script::stream(
        "text/event-stream",
        vec![role_only.into()],
        Duration::ZERO,
        Ending::Complete,
    ));
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&format!("{}/v1", primary.url()), &fallback);
    let attempts = expect_fallback(&router, &fallback).await;
    assert_eq!(attempts[0].error, BackendError::EndedEarly);
}

#[tokio::test]
async fn after_output_reached_the_user_there_is_no_failover() {
    let delta = |text: &str| {
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n").into_bytes()
    };
    let primary = scripted(Script::stream(
        "text/event-stream",
        vec![delta("warm"), delta(" tea")],
        Duration::ZERO,
        Ending::Hang,
    ));
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&format!("{}/v1", primary.url()), &fallback);
    let opened = router.open(&request()).await.unwrap();
    assert_eq!(opened.model.to_string(), "local/tiny");
    let started = Instant::now();
    let mut events = opened.events;
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        StreamEvent::Delta("warm".into())
    );
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        StreamEvent::Delta(" tea".into())
    );
    assert_eq!(
        events.next().await.unwrap().unwrap_err(),
        BackendError::IdleTimeout(2)
    );
    assert!(events.next().await.is_none());
    assert!(started.elapsed() <= TIMEOUT + SLACK);
    assert_eq!(
        fallback.count("/api/chat"),
        0,
        "a half-told reply is not restarted elsewhere"
    );
}

#[tokio::test]
async fn everything_down_is_a_clear_error_at_once() {
    let nowhere = format!("http://127.0.0.1:{}/v1", free_port());
    let also_nowhere = format!("http://127.0.0.1:{}", free_port());
    let router = Router::new(
        vec![
            provider("local", Api::OpenAiCompletions, &[&nowhere]),
            provider("backup", Api::Ollama, &[&also_nowhere]),
        ],
        vec![
            ModelRef::parse("local/tiny").unwrap(),
            ModelRef::parse("backup/tiny").unwrap(),
        ],
    )
    .unwrap();
    let started = Instant::now();
    let error = router.open(&request()).await.err().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let RouteError::Exhausted(attempts) = &error else {
        panic!("{error}")
    };
    assert_eq!(attempts.len(), 2);
    let message = error.to_string();
    assert!(
        message.contains("local/tiny")
            && message.contains("backup/tiny")
            && message.contains("refused"),
        "{message}"
    );
    assert!(!router.ready(), "no endpoint answered");
}

#[tokio::test]
async fn everything_hung_ends_in_an_error_not_a_hang() {
    let first = scripted(Script::Hang);
    let second = scripted(Script::Hang);
    let router = Router::new(
        vec![
            provider(
                "local",
                Api::OpenAiCompletions,
                &[&format!("{}/v1", first.url())],
            ),
            provider("backup", Api::Ollama, &[&second.url()]),
        ],
        vec![
            ModelRef::parse("local/tiny").unwrap(),
            ModelRef::parse("backup/tiny").unwrap(),
        ],
    )
    .unwrap();
    let started = Instant::now();
    let error = router.open(&request()).await.err().unwrap();
    assert!(
        started.elapsed() <= 2 * TIMEOUT + SLACK,
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, RouteError::Exhausted(ref attempts) if attempts.len() == 2),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_abort_is_not_a_backend_failure() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = router(&llama.base_url, &fallback);
    let long = ChatRequest {
        max_tokens: Some(500),
        ..request()
    };
    let mut opened = router.open(&long).await.unwrap();
    assert!(matches!(
        opened.events.next().await,
        Some(Ok(StreamEvent::Delta(_)))
    ));
    drop(opened); // The user closed the page.

    let again = router.open(&request()).await.unwrap();
    assert_eq!(
        again.model.to_string(),
        "local/tiny",
        "the primary does not rest"
    );
    assert!(again.attempts.is_empty());
    assert!(text_of(again).await.is_ok());
    assert_eq!(fallback.count("/api/chat"), 0);
    assert!(
        router
            .status()
            .iter()
            .all(|status| status.cooldown_seconds == 0)
    );
}

#[tokio::test]
async fn an_unhealthy_endpoint_leaves_rotation_until_it_answers_again() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let broken = Arc::new(AtomicBool::new(true));
    let flaky = {
        let broken = Arc::clone(&broken);
        ScriptedServer::start(move |request| {
            if broken.load(Ordering::Relaxed) {
                return Script::json(500, &json!({"error": {"message": "down"}}));
            }
            match request.path.as_str() {
                "/v1/models" => Script::json(200, &json!({"object": "list", "data": [{"id": "tiny", "object": "model"}]})),
                _ => Script::stream(
                    "text/event-stream",
                    vec![
                        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"flaky\"},\"finish_reason\":\"stop\"}]}\n\n".to_vec(),
                        b"data: [DONE]\n\n".to_vec(),
                    ],
                    Duration::ZERO,
                    Ending::Complete,
                ),
            }
        })
    };
    let flaky_url = format!("{}/v1", flaky.url());
    let router = Router::new(
        vec![provider(
            "local",
            Api::OpenAiCompletions,
            &[&flaky_url, &llama.base_url],
        )],
        vec![ModelRef::parse("local/tiny").unwrap()],
    )
    .unwrap();
    for _ in 0..4 {
        let opened = router.open(&request()).await.unwrap();
        assert!(text_of(opened).await.is_ok());
    }
    assert_eq!(
        flaky.count("/v1/chat/completions"),
        1,
        "tried once, then out of rotation"
    );
    let flaky_status = router
        .status()
        .into_iter()
        .find(|status| status.endpoint == flaky_url)
        .unwrap();
    assert!(!flaky_status.healthy);
    assert!(router.ready(), "the other endpoint still serves");

    broken.store(false, Ordering::Relaxed);
    assert_eq!(router.probe_all().await, 2);
    let mut from_flaky = 0;
    for _ in 0..4 {
        if text_of(router.open(&request()).await.unwrap())
            .await
            .unwrap()
            == "flaky"
        {
            from_flaky += 1;
        }
    }
    assert_eq!(
        from_flaky, 2,
        "back in rotation, it takes every other request"
    );
}

/// A caller allowed only the primary is never answered by the fallback:
/// the router asks no model outside what it is allowed (the fourth
/// review's allowlist bypass through failover), chat and embeddings alike.
#[tokio::test]
async fn a_fallback_the_caller_may_not_use_is_never_asked() {
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let down = scripted(Script::json(503, &json!({"error": "loading"})));
    let router = router(&format!("{}/v1", down.url()), &fallback);
    let primary = ModelRef::parse("local/tiny").unwrap();
    let only_primary = |model: &ModelRef| *model == primary;
    let refused = router
        .open_within(&request(), None, &only_primary)
        .await
        .err()
        .unwrap();
    assert!(matches!(refused, RouteError::Exhausted(_)), "{refused}");
    let embedded = router
        .embed(None, &["tea".to_owned()], None, &only_primary)
        .await;
    assert!(embedded.is_err());
    assert_eq!(fallback.count("/api/chat"), 0, "the fallback was asked");
    assert_eq!(fallback.count("/api/embed"), 0, "the fallback was asked");
    // Allowed, it answers as before.
    let opened = router
        .open_within(&request(), None, &|_| true)
        .await
        .unwrap();
    assert_eq!(opened.model.to_string(), "backup/tiny");
}

/// A model server found on the mesh: asked while it is in, and the moment
/// it is taken out (its device asleep) the fallback answers, no wait.
#[tokio::test]
async fn a_mesh_model_whose_device_is_away_fails_over_at_once() {
    let gpu = ollama_stand_in(&["smollm"], Duration::ZERO);
    let mac = ollama_stand_in(&["smollm"], Duration::ZERO);
    let backup = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mesh = Arc::new(hearth_llm::mesh::MeshModels::new("models", TIMEOUT));
    for (device, server) in [("gpu", &gpu), ("mac", &mac)] {
        let address: std::net::SocketAddr =
            server.url().trim_start_matches("http://").parse().unwrap();
        let found = hearth_llm::mesh::identify(device, address.ip(), &[address.port()], TIMEOUT)
            .await
            .expect("the stand-in says it is an Ollama");
        assert_eq!(found.api, Api::Ollama);
        assert_eq!(found.models.keys().collect::<Vec<_>>(), ["smollm"]);
        mesh.put(found);
    }
    let router = Router::with_mesh(
        vec![provider("backup", Api::Ollama, &[&backup.url()])],
        vec![
            ModelRef::parse("gpu/smollm").unwrap(),
            ModelRef::parse("backup/tiny").unwrap(),
        ],
        &|_, config| {
            Err(hearth_llm::SetupError::Unsupported {
                provider: config.id.clone(),
                api: config.api,
            })
        },
        Some(Arc::clone(&mesh)),
    )
    .unwrap();
    assert!(router.ready());
    let opened = router.open(&request()).await.unwrap();
    assert_eq!(opened.model.to_string(), "gpu/smollm");
    drop(opened);
    // The pool: one after another, the two servers take turns.
    let pool = ModelRef::parse("models/smollm").unwrap();
    let mut answered = Vec::new();
    for _ in 0..2 {
        let opened = router
            .open_within(&request(), Some(&pool), &|model| model == &pool)
            .await
            .unwrap();
        answered.push(opened.model.provider.clone());
    }
    answered.sort();
    assert_eq!(answered, ["gpu", "mac"]);

    assert!(router.away().is_empty());
    assert!(mesh.remove("gpu"));
    assert_eq!(router.away(), [ModelRef::parse("gpu/smollm").unwrap()]);
    let started = Instant::now();
    let opened = router.open(&request()).await.unwrap();
    assert_eq!(opened.model.to_string(), "backup/tiny");
    assert_eq!(opened.attempts.len(), 1);
    assert_eq!(
        opened.attempts[0].error,
        BackendError::Away("gpu".into()),
        "{}",
        opened.attempts[0].error
    );
    assert!(started.elapsed() < TIMEOUT, "no wait on the device away");
    assert_eq!(gpu.count("/api/chat"), 2, "nothing more went to the gpu");
}
