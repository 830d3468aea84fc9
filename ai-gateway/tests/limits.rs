//! Limits (per device, per address, concurrent streams, max tokens), health,
//! metrics, and the refusal to listen beyond loopback without authentication.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hearth_chat_client::{ChatClient, ClientError};
use hearth_e2ee::{ChatPayload, KeyPair, ReplyEvent};
use hearth_testkit::gateway_process::{GatewayProcess, ask, config, now, post_chat, seal, text_of};
use hearth_testkit::standins::ollama_stand_in;
use serde_json::{Value, json};

#[tokio::test]
async fn each_device_is_limited_on_its_own() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut settings = config(&[("home", "ollama", &backend.url())]);
    settings["hearth"]["limits"] = json!({"requestsPerMinutePerDevice": 3});
    let gateway = GatewayProcess::start(settings);
    let key = gateway.current_key().await;
    let (busy, calm) = (KeyPair::generate(), KeyPair::generate());
    for _ in 0..3 {
        let (envelope, _) = seal(&key, &busy, "hi", now());
        assert_eq!(
            post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap())
                .await
                .status,
            200
        );
    }
    let (envelope, _) = seal(&key, &busy, "hi", now());
    let answer = post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap()).await;
    assert_eq!(
        (answer.status, answer.code.as_deref()),
        (429, Some("rate_limited"))
    );
    assert_eq!(
        backend.count("/api/chat"),
        3,
        "the refused request never reached the model"
    );
    let (envelope, _) = seal(&key, &calm, "hi", now());
    assert_eq!(
        post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap())
            .await
            .status,
        200,
        "another device is not held back"
    );
}

#[tokio::test]
async fn each_address_is_limited_across_devices_and_apis() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut settings = config(&[("home", "ollama", &backend.url())]);
    settings["hearth"]["limits"] = json!({"requestsPerMinutePerIp": 4});
    let gateway = GatewayProcess::start(settings);
    let key = gateway.current_key().await;
    for _ in 0..3 {
        let (envelope, _) = seal(&key, &KeyPair::generate(), "hi", now());
        assert_eq!(
            post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap())
                .await
                .status,
            200
        );
    }
    let completion = |body: Value| {
        let target = gateway.target();
        async move {
            target
                .http()
                .post(format!("{}/v1/chat/completions", target.url))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"model": "home/tiny", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(completion(body.clone()).await.status(), 200);
    let refused = completion(body).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
    let (envelope, _) = seal(&key, &KeyPair::generate(), "hi", now());
    assert_eq!(
        post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap())
            .await
            .status,
        429
    );
    assert_eq!(backend.count("/api/chat"), 4);
    // Reading keys and health is not charged.
    assert_eq!(gateway.keys().await.len(), 2);
}

#[tokio::test]
async fn concurrent_streams_are_capped() {
    // Each token takes 100 ms: a ten-word echo streams for about a second.
    let backend = ollama_stand_in(&["tiny"], Duration::from_millis(100));
    let mut settings = config(&[("home", "ollama", &backend.url())]);
    settings["hearth"]["limits"] = json!({"maxConcurrentStreams": 1});
    let gateway = GatewayProcess::start(settings);
    let slow = gateway.client(KeyPair::generate());
    let first = tokio::spawn(async move {
        ask(&slow, "c", "one two three four five six seven eight nine").await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = ask_result(&gateway.client(KeyPair::generate()), "hi").await;
    assert!(
        matches!(&refused, Err(ClientError::Refused { status: 503, code, .. }) if code == "busy"),
        "{refused:?}"
    );
    let events = first.await.unwrap();
    assert!(matches!(events.last().unwrap(), ReplyEvent::Done { .. }));
    assert!(
        ask_result(&gateway.client(KeyPair::generate()), "hi")
            .await
            .is_ok(),
        "free again"
    );
}

async fn ask_result(client: &ChatClient, message: &str) -> Result<Vec<ReplyEvent>, ClientError> {
    let payload = ChatPayload {
        message: message.into(),
        channel: None,
        max_tokens: None,
        temperature: None,
        images: Vec::new(),
        on_behalf_of: None,
    };
    let mut events = Vec::new();
    client
        .chat(&payload, |event| events.push(event.clone()))
        .await
        .map(|()| events)
}

#[tokio::test]
async fn max_tokens_is_capped_by_the_gateway() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut settings = config(&[("home", "ollama", &backend.url())]);
    settings["hearth"]["limits"] = json!({"maxTokens": 3});
    let gateway = GatewayProcess::start(settings);
    let events = ask(
        &gateway.client(KeyPair::generate()),
        "c",
        "one two three four five",
    )
    .await;
    assert_eq!(text_of(&events), "echo: one two");
    assert!(
        matches!(events.last().unwrap(), ReplyEvent::Done { finish_reason, .. } if finish_reason == "length")
    );
    // The chat request (the gateway's health checks may come after it).
    let chats: Vec<_> = backend
        .requests()
        .into_iter()
        .filter(|request| request.path == "/api/chat")
        .collect();
    assert_eq!(chats.len(), 1, "{chats:?}");
    assert_eq!(chats[0].json()["options"]["num_predict"], 3);
}

#[tokio::test]
async fn health_follows_the_backends_and_metrics_count_without_payloads() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let health = gateway
        .http()
        .get(format!("{}/health", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ready");

    let events = ask(&gateway.client(KeyPair::generate()), "c", "count me").await;
    assert_eq!(text_of(&events), "echo: count me");
    let metrics = gateway.get_text("/metrics").await;
    for expected in [
        r#"hearth_gateway_requests_total{endpoint="chat",outcome="ok"} 1"#,
        "hearth_gateway_active_streams 0",
        "hearth_gateway_first_token_seconds_count 1",
        "hearth_gateway_reply_seconds_count 1",
        "hearth_gateway_tokens_total 3",
        r#"hearth_gateway_backend_up{provider="home""#,
        r#"hearth_gateway_backend_cooldown_seconds{provider="home""#,
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    assert!(!metrics.contains("count me"));

    drop(backend);
    let started = Instant::now();
    let down = hearth_testkit::wait_until(Duration::from_secs(5), || {
        std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{}/health", gateway.url),
            ])
            .output()
            .is_ok_and(|output| output.stdout == b"503")
    });
    assert!(
        down.is_some(),
        "health turns unavailable within a few probe periods"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let health: Value = gateway.get_json("/health").await;
    assert_eq!(health["backends"], json!({"healthy": 0, "total": 1}));
    assert!(
        !health.to_string().contains("127.0.0.1"),
        "health tells nobody where the backends are: {health}"
    );
}

#[tokio::test]
async fn listening_beyond_loopback_needs_authentication() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut open = config(&[("home", "ollama", &backend.url())]);
    open["gateway"]["bind"] = json!("lan");
    open["gateway"]["auth"] = json!({"mode": "none"});
    let gateway = GatewayProcess::prepare(open.clone());
    let (status, output) = gateway.refuse();
    assert!(!status.success());
    assert!(
        output.contains("refusing to listen") && output.contains("gateway.auth"),
        "{output}"
    );

    let token = "a-long-household-token-0123456789";
    open["gateway"]["auth"] = json!({"mode": "token", "token": "${TEST_GATEWAY_TOKEN}"});
    let mut gateway = GatewayProcess::prepare(open);
    gateway
        .env
        .push(("TEST_GATEWAY_TOKEN".into(), token.into()));
    gateway.launch();
    let anonymous = gateway
        .http()
        .get(format!("{}/api/pubkey", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "even from loopback, once a token is set"
    );
    let health = gateway
        .http()
        .get(format!("{}/health", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health answers anyone");
    let client = ChatClient::new(&gateway.url, Some(token.into()), KeyPair::generate());
    assert_eq!(
        text_of(&ask(&client, "c", "let me in").await),
        "echo: let me in"
    );
    assert!(
        !gateway.log_text().contains(token),
        "the token is never logged"
    );
}
