//! An idle reply stream is kept alive on every SSE API: a model slow to
//! its first token (a big model reading a long prompt) leaves the stream
//! silent for as long, and a proxy, a phone's OS or a load balancer closes
//! a connection silent for long enough. The gateway sends an SSE comment
//! (`: keep-alive`) whenever a stream has been idle for 10 s.
//!
//! Stand-ins, named here: the agent's `whois` (127.0.0.1 is ada's device)
//! and the model (the echo stand-in, 12 s before each token: a real model
//! cannot be held before its first token on cue).
// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use hearth_testkit::gateway_process::GatewayProcess;
use hearth_testkit::standins::{AgentStandIn, ollama_stand_in};
use serde_json::json;

/// Issue 68 (the house, round five): Anthropic's stream built its own SSE
/// without the edge's keep-alive, so `/v1/messages` stayed silent until
/// the first token while OpenAI's stream was kept alive. Both are now one
/// helper's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_is_kept_alive_on_every_sse_api() {
    let model = ollama_stand_in(&["tiny"], Duration::from_secs(12));
    let agent = AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(AgentStandIn::member("ada", "127.0.0.1", json!({}))),
    );
    let mut config = hearth_testkit::gateway_process::config(&[("home", "ollama", &model.url())]);
    // The model may take its time before the first token.
    config["models"]["providers"]["home"]["timeoutSeconds"] = json!(60);
    let (gateway, ollama) = GatewayProcess::start_for_apps(config, &agent.socket);
    let question = json!([{"role": "user", "content": "hello"}]);
    for (api, url, body) in [
        (
            "OpenAI",
            format!("{}/v1/chat/completions", gateway.url),
            json!({"model": "home/tiny", "stream": true, "messages": question}),
        ),
        (
            "Anthropic",
            format!("{ollama}/v1/messages"),
            json!({"model": "home/tiny", "stream": true, "max_tokens": 8, "messages": question}),
        ),
    ] {
        let response = reqwest::Client::new()
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{api}");
        let mut stream = response.bytes_stream();
        let mut seen = String::new();
        // Read until the comment comes, or the model's first token does.
        while !seen.contains(": keep-alive") && !seen.contains("hello") {
            let Some(chunk) = stream.next().await else {
                break;
            };
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let before_token = seen.split("hello").next().unwrap_or_default();
        assert!(
            before_token.contains(": keep-alive\n\n"),
            "{api}: no keep-alive while the model was silent: {seen:?}"
        );
    }
}
