//! The AI gateway's `hearth-enclave` provider in OHTTP mode, on loopback:
//! its base URL names the config server (`ohttp+http://…`), and the
//! conversation goes gateway -> relay -> OHTTP gateway -> router -> compute
//! node (dev evidence) -> llama-server. A config server applying another
//! policy than the provider's is refused: the provider then fails over.
//! Needs the cached llama-server; outside CI the test skips without it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use hearth_e2ee::{ChatPayload, KeyPair, ReplyEvent};
use hearth_testkit::compute::{IMAGE, LoopbackRouter, dev_policy};
use hearth_testkit::gateway_process::{GatewayProcess, config};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::oblivious::{LoopbackServer, seeds_json};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

async fn ask(gateway: &GatewayProcess) -> (String, String) {
    let (mut model, mut text) = (String::new(), String::new());
    let payload = ChatPayload {
        message: "What is for dinner?".into(),
        channel: None,
        max_tokens: Some(8),
        temperature: None,
        images: Vec::new(),
        on_behalf_of: None,
    };
    gateway
        .client(KeyPair::generate())
        .chat(&payload, |event| match event {
            ReplyEvent::Meta { model: named, .. } => model = named.clone(),
            ReplyEvent::Delta { text: more } => text.push_str(more),
            _ => {}
        })
        .await
        .unwrap_or_else(|error| panic!("the chat failed: {error}\n{}", gateway.log_text()));
    (model, text)
}

/// How many requests the relay at `url` has forwarded.
async fn relayed(url: &str) -> u64 {
    let health: serde_json::Value = reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["relayed"].as_u64().unwrap()
}

#[tokio::test]
async fn the_gateway_reaches_a_remote_node_through_the_relay() {
    let Some(llama) = LlamaServer::start_unix() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let router = LoopbackRouter::start(&["--heartbeat-seconds", "1"]);
    let mut node = router.start_node("node-a", &llama.base_url);

    let now = hearth_runtime::clock::since_epoch();
    let seeds = seeds_json(&[(1, now - HOUR, now + HOUR)]);
    let (gateway, relay) = LoopbackServer::gateway_and_relay(&router.url, &seeds, &[]);
    let policy = dev_policy(dir.path(), "policy.json", IMAGE);
    let relay_url = format!("{}/", relay.url);
    let urls = [
        "--relay-url",
        &relay_url,
        "--gateway-url",
        &gateway.url,
        "--router-url",
        &router.url,
    ];
    let auth_with = |policy: &std::path::Path| {
        LoopbackServer::start(
            "hearth-pcc-auth",
            &[&urls[..], &["--policy", policy.to_str().unwrap()]].concat(),
            &seeds,
        )
    };
    let auth = auth_with(&policy);

    let oblivious = format!("ohttp+{}", auth.url);
    let mut settings = config(&[("remote", "hearth-enclave", &oblivious)]);
    settings["models"]["providers"]["remote"]["attestationPolicy"] = json!(policy);
    settings["models"]["providers"]["remote"]["timeoutSeconds"] = json!(20);
    let chat = GatewayProcess::start(settings);
    let (model, text) = ask(&chat).await;
    assert_eq!(model, "remote/tiny");
    assert!(!text.is_empty());
    let relayed = || async { relayed(&relay.url).await };
    let before = relayed().await;
    assert!(
        before >= 2,
        "the node list and the chat went through the relay: {before}"
    );

    // A config server applying another policy: the provider does not use
    // it, and fails over to the local model.
    let other = dev_policy(dir.path(), "other.json", "another image");
    let other_auth = auth_with(&other);

    let mut settings = config(&[
        (
            "remote",
            "hearth-enclave",
            &format!("ohttp+{}", other_auth.url),
        ),
        ("local", "openai-completions", &llama.base_url),
    ]);
    settings["models"]["providers"]["remote"]["attestationPolicy"] = json!(policy);
    let chat = GatewayProcess::start(settings);
    let (model, _) = ask(&chat).await;
    assert_eq!(
        model, "local/tiny",
        "a config server with another policy is not followed"
    );
    assert_eq!(
        relayed().await,
        before,
        "nothing was sent through its relay"
    );
    let _ = node.kill();
    let _ = node.wait();
}
