//! The encrypted chat API end to end: the real gateway binary in front of a
//! real llama-server (or the Ollama stand-in where the test must count the
//! backend's calls).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_e2ee::envelope::{b64, request_aad};
use hearth_e2ee::{ChunkError, KeyPair, ReplyEvent};
use hearth_testkit::gateway_process::{
    GatewayProcess, ask, chunks, config, now, open_all, post_chat, seal, text_of,
};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::standins::{Ending, Script, ScriptedServer, ollama_stand_in};

#[tokio::test]
async fn a_sealed_question_gets_a_sealed_streamed_answer_from_llama_server() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let gateway =
        GatewayProcess::start(config(&[("local", "openai-completions", &llama.base_url)]));
    let key = gateway.current_key().await;
    let device = KeyPair::generate();
    let (envelope, mut opener) = seal(&key, &device, "hello hearth", now());
    let answer = post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap()).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    let sealed = chunks(&answer.body);
    assert!(
        sealed.len() >= 3,
        "meta, deltas, done: {} chunks",
        sealed.len()
    );
    assert!(
        sealed.last().unwrap().last && sealed[..sealed.len() - 1].iter().all(|chunk| !chunk.last)
    );
    let events = open_all(&mut opener, &sealed).unwrap();
    assert!(
        matches!(&events[0], ReplyEvent::Meta { model, session } if model == "local/tiny" && !session.is_empty())
    );
    assert!(
        matches!(events.last().unwrap(), ReplyEvent::Done { finish_reason, .. } if finish_reason == "length")
    );
    let text = text_of(&events);
    assert!(!text.trim().is_empty());
    // The reply and the question are nowhere in clear on the wire.
    let wire = String::from_utf8_lossy(&answer.body);
    for word in text.split_whitespace().filter(|word| word.len() >= 4) {
        assert!(!wire.contains(word), "`{word}` travels in clear");
    }
    assert!(
        !serde_json::to_string(&envelope)
            .unwrap()
            .contains("hello hearth")
    );

    // The library client (what `hearth-gateway chat` uses) sees the same answer.
    let again = ask(
        &gateway.client(KeyPair::generate()),
        "other",
        "hello hearth",
    )
    .await;
    assert_eq!(
        text_of(&again),
        text,
        "greedy sampling: same question, same answer"
    );
}

#[tokio::test]
async fn every_refusal_is_clear_and_never_reaches_the_backend() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let key = gateway.current_key().await;
    let device = KeyPair::generate();
    let post = |envelope: &hearth_e2ee::ChatEnvelope| {
        let body = serde_json::to_vec(envelope).unwrap();
        let target = gateway.target();
        async move { post_chat(&target, body).await }
    };

    // Far outside the gateway's 60-second window, so that the seconds the
    // test spends before the gateway reads its clock cannot bring either
    // back in (a stamp one second past the edge did, once, in CI).
    let (stale, _) = seal(&key, &device, "hi", now() - 3600);
    let (future, _) = seal(&key, &device, "hi", now() + 3600);
    let (wrong_key, _) = {
        let mut other = key.clone();
        other.id = "kAAAAAAAA".into();
        seal(&other, &device, "hi", now())
    };
    let (good, _) = seal(&key, &device, "hi", now());
    let mut flipped = good.clone();
    flipped.ciphertext = {
        let mut text = flipped.ciphertext.into_bytes();
        text[5] = if text[5] == b'A' { b'B' } else { b'A' };
        String::from_utf8(text).unwrap()
    };
    let mut moved_in_time = good.clone();
    moved_in_time.timestamp -= 1;
    let mut resealed_aad = moved_in_time.clone();
    resealed_aad.aad = b64(&request_aad(
        &resealed_aad.key_id,
        resealed_aad.timestamp,
        &resealed_aad.request_id,
        &resealed_aad.device_key,
    ));
    let mut impostor = good.clone();
    impostor.device_key = b64(&KeyPair::generate().public_bytes());
    impostor.aad = b64(&request_aad(
        &impostor.key_id,
        impostor.timestamp,
        &impostor.request_id,
        &impostor.device_key,
    ));

    let cases = [
        ("stale", post(&stale).await, 400, "stale_request"),
        ("future", post(&future).await, 400, "future_request"),
        ("wrong key id", post(&wrong_key).await, 400, "unknown_key"),
        (
            "flipped ciphertext",
            post(&flipped).await,
            400,
            "decryption_failed",
        ),
        (
            "aad not matching its fields",
            post(&moved_in_time).await,
            400,
            "tampered",
        ),
        (
            "fields and aad changed together",
            post(&resealed_aad).await,
            400,
            "decryption_failed",
        ),
        (
            "another device's key",
            post(&impostor).await,
            400,
            "decryption_failed",
        ),
        (
            "not json",
            post_chat(&gateway.target(), "hello").await,
            400,
            "malformed",
        ),
        (
            "unknown field",
            post_chat(&gateway.target(), r#"{"v":1,"admin":true}"#).await,
            400,
            "malformed",
        ),
    ];
    for (name, answer, status, code) in &cases {
        let body = String::from_utf8_lossy(&answer.body);
        assert_eq!(
            (answer.status, answer.code.as_deref()),
            (*status, Some(*code)),
            "{name}: {body}"
        );
        let message =
            serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
        assert!(
            message.len() > 15,
            "{name}: the message explains ({message})"
        );
    }
    assert_eq!(
        backend.count("/api/chat"),
        0,
        "no refused request reached the model"
    );

    // The good one goes through once; the same bytes again are a replay.
    let first = post(&good).await;
    assert_eq!(first.status, 200);
    let replayed = post(&good).await;
    assert_eq!(
        (replayed.status, replayed.code.as_deref()),
        (409, Some("replayed_request"))
    );
    assert_eq!(backend.count("/api/chat"), 1);

    // The refusals are counted by code.
    let metrics = gateway.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"outcome="replayed_request"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"outcome="decryption_failed"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_cut_or_altered_reply_is_detected_by_the_client() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let key = gateway.current_key().await;
    let device = KeyPair::generate();

    let reply = |message: &'static str| {
        let (envelope, opener) = seal(&key, &device, message, now());
        let target = gateway.target();
        async move {
            (
                post_chat(&target, serde_json::to_vec(&envelope).unwrap()).await,
                opener,
            )
        }
    };
    let (answer, mut opener) = reply("one two three").await;
    let sealed = chunks(&answer.body);
    let events = open_all(&mut opener, &sealed).unwrap();
    assert_eq!(text_of(&events), "echo: one two three");

    // Without its final chunk: truncated.
    let (answer, mut opener) = reply("one two three").await;
    let sealed = chunks(&answer.body);
    assert_eq!(
        open_all(&mut opener, &sealed[..sealed.len() - 1]).unwrap_err(),
        ChunkError::Truncated
    );
    // Two chunks swapped: out of order.
    let (answer, mut opener) = reply("one two three").await;
    let mut sealed = chunks(&answer.body);
    sealed.swap(1, 2);
    assert!(matches!(
        open_all(&mut opener, &sealed),
        Err(ChunkError::OutOfOrder { .. })
    ));
    // A chunk marked final early (its tag covers the mark): altered.
    let (answer, mut opener) = reply("one two three").await;
    let mut sealed = chunks(&answer.body);
    sealed[1].last = true;
    assert_eq!(
        open_all(&mut opener, &sealed[..2]).unwrap_err(),
        ChunkError::Tampered
    );
}

#[tokio::test]
async fn a_backend_failing_mid_reply_ends_with_a_sealed_error_not_a_cut() {
    let delta = |text: &str| {
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n").into_bytes()
    };
    let script = Script::stream(
        "text/event-stream",
        vec![delta("warm"), delta(" bread")],
        Duration::from_millis(5),
        Ending::Drop,
    );
    let primary = ScriptedServer::start(move |_| script.clone());
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[
        (
            "local",
            "openai-completions",
            &format!("{}/v1", primary.url()),
        ),
        ("home", "ollama", &fallback.url()),
    ]));
    let events = ask(&gateway.client(KeyPair::generate()), "c", "bake").await;
    assert_eq!(text_of(&events), "warm bread");
    assert!(
        matches!(events.last().unwrap(), ReplyEvent::Error { code, .. } if code == "backend_failed"),
        "{events:?}"
    );
    assert_eq!(
        fallback.count("/api/chat"),
        0,
        "output had reached the user: no failover"
    );
}

#[tokio::test]
async fn a_failover_is_invisible_but_named() {
    let primary = ScriptedServer::start(|_| {
        Script::json(
            503,
            &serde_json::json!({"error": {"message": "Loading model"}}),
        )
    });
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[
        (
            "local",
            "openai-completions",
            &format!("{}/v1", primary.url()),
        ),
        ("home", "ollama", &fallback.url()),
    ]));
    let events = ask(&gateway.client(KeyPair::generate()), "c", "anyone home").await;
    assert!(matches!(&events[0], ReplyEvent::Meta { model, .. } if model == "home/tiny"));
    assert_eq!(text_of(&events), "echo: anyone home");
}
