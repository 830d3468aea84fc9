//! Against a real llama.cpp `llama-server` serving the tiny generated model,
//! over TCP and over a UNIX socket, and the Ollama path against the Ollama
//! stand-in (Ollama cannot be installed here).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use futures_util::StreamExt;
use hearth_llm::endpoint::Endpoint;
use hearth_llm::{
    Api, BackendError, ChatRequest, EventStream, Message, ModelRef, ProviderConfig, RouteError,
    Router, StreamEvent, ollama, openai,
};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::standins::ollama_stand_in;

fn request(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new("system", "You are terse."),
            Message::new("user", text),
        ],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

/// The text and the end of a reply.
async fn collect(
    mut events: EventStream,
) -> (
    String,
    usize,
    Result<(String, Option<hearth_llm::Usage>), BackendError>,
) {
    let mut text = String::new();
    let mut deltas = 0;
    while let Some(event) = events.next().await {
        match event {
            Ok(StreamEvent::Delta(delta)) => {
                text.push_str(&delta);
                deltas += 1;
            }
            Ok(StreamEvent::Done {
                finish_reason,
                usage,
            }) => return (text, deltas, Ok((finish_reason, usage))),
            Ok(StreamEvent::ToolCalls(calls)) => panic!("no tools were offered: {calls}"),
            Err(error) => return (text, deltas, Err(error)),
        }
    }
    panic!("no end");
}

fn endpoint(server: &LlamaServer) -> Endpoint {
    Endpoint::parse(
        &server.base_url,
        Api::OpenAiCompletions,
        Duration::from_secs(2),
    )
    .unwrap()
}

/// A reply held to a JSON schema is JSON matching it: llama-server turns
/// the schema into a grammar, so even the tiny random model's reply is.
#[tokio::test]
async fn a_reply_held_to_a_json_schema_is_json_matching_it() {
    let Some(server) = LlamaServer::start_tcp() else {
        return;
    };
    let endpoint = endpoint(&server);
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"open": {"type": "boolean"}, "rooms": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["open", "rooms"],
        "additionalProperties": false,
    });
    let held = ChatRequest {
        response_format: Some(hearth_llm::StructuredOutput::JsonSchema {
            json_schema: hearth_llm::NamedSchema {
                name: "house".into(),
                schema,
                strict: Some(true),
            },
        }),
        ..request("is the house open, and how many rooms?", 64)
    };
    let (text, _, end) =
        collect(openai::stream_chat(&endpoint, "tiny", &held).await.unwrap()).await;
    end.unwrap();
    let reply: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text:?}"));
    let object = reply.as_object().unwrap_or_else(|| panic!("{reply}"));
    assert!(object["open"].is_boolean(), "{reply}");
    assert!(
        (0..=9).contains(&object["rooms"].as_i64().unwrap()),
        "{reply}"
    );
    assert_eq!(object.len(), 2, "{reply}");
}

#[tokio::test]
async fn llama_server_streams_over_tcp() {
    let Some(server) = LlamaServer::start_tcp() else {
        return;
    };
    let endpoint = endpoint(&server);
    assert!(openai::probe(&endpoint).await);
    let (text, deltas, end) = collect(
        openai::stream_chat(&endpoint, "tiny", &request("hello", 8))
            .await
            .unwrap(),
    )
    .await;
    let (reason, usage) = end.unwrap();
    assert_eq!(reason, "length", "generation stops at max_tokens");
    assert!((1..=8).contains(&deltas), "{deltas} deltas");
    assert!(!text.trim().is_empty());
    let usage = usage.expect("llama-server reports usage when asked");
    assert_eq!(usage.completion_tokens, 8);
    assert!(usage.prompt_tokens > 2);

    // Greedy sampling on a fixed model: the same question, the same answer.
    let (again, _, _) = collect(
        openai::stream_chat(&endpoint, "tiny", &request("hello", 8))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text, again);
}

#[tokio::test]
async fn llama_server_streams_over_a_unix_socket() {
    let Some(server) = LlamaServer::start_unix() else {
        return;
    };
    let socket = server.socket.clone().unwrap();
    let metadata = std::fs::metadata(&socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o660,
        "the socket is group-readable only"
    );
    assert!(server.base_url.starts_with("unix:/"));

    let endpoint = endpoint(&server);
    assert!(openai::probe(&endpoint).await);
    let (text, _, end) = collect(
        openai::stream_chat(&endpoint, "tiny", &request("hello", 5))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(end.unwrap().0, "length");
    assert!(!text.is_empty());
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_a_clear_error_and_no_fallback_is_tried() {
    let Some(server) = LlamaServer::start_tcp() else {
        return;
    };
    let fallback = ollama_stand_in(&["tiny"], Duration::ZERO);
    let router = Router::new(
        vec![
            provider("local", Api::OpenAiCompletions, &server.base_url, 10),
            provider("backup", Api::Ollama, &fallback.url(), 10),
        ],
        vec![
            ModelRef::parse("local/tiny").unwrap(),
            ModelRef::parse("backup/tiny").unwrap(),
        ],
    )
    .unwrap();
    let long = "hearth ".repeat(5000);
    let error = router.open(&request(&long, 4)).await.err().unwrap();
    let RouteError::Stopped { error, .. } = &error else {
        panic!("{error}")
    };
    assert!(matches!(error, BackendError::ContextOverflow(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("longer than the model's context"),
        "{error}"
    );
    assert_eq!(
        fallback.count("/api/chat"),
        0,
        "another model cannot fit it either"
    );
}

fn provider(id: &str, api: Api, url: &str, timeout: u64) -> ProviderConfig {
    ProviderConfig {
        id: id.into(),
        api,
        endpoints: vec![url.into()],
        timeout: Duration::from_secs(timeout),
        connect_timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn the_ollama_path_streams_from_the_ollama_stand_in() {
    let stand_in = ollama_stand_in(&["tiny:latest"], Duration::from_millis(2));
    let endpoint = Endpoint::parse(
        &format!("{}/", stand_in.url()),
        Api::Ollama,
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(
        ollama::probe(&endpoint).await,
        "ollama-rs lists the stand-in's models"
    );
    let (text, deltas, end) = collect(
        ollama::stream_chat(&endpoint, "tiny:latest", &request("tea for two", 50))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text, "echo: tea for two");
    assert_eq!(deltas, 4);
    let (reason, usage) = end.unwrap();
    assert_eq!(reason, "stop");
    assert_eq!(usage.unwrap().completion_tokens, 4);

    // max_tokens travels as options.num_predict.
    let (text, _, end) = collect(
        ollama::stream_chat(&endpoint, "tiny:latest", &request("tea for two", 2))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text, "echo: tea");
    assert_eq!(end.unwrap().0, "length");
    let sent = stand_in.requests().last().unwrap().json();
    assert_eq!(sent["options"]["num_predict"], 2);
    assert_eq!(sent["messages"][0]["role"], "system");

    let missing = ollama::stream_chat(&endpoint, "llama3", &request("hi", 2))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&missing, BackendError::Rejected { status: 404, message } if message.contains("not found")),
        "{missing}"
    );
}

#[tokio::test]
async fn a_stopped_server_fails_its_probe() {
    let Some(mut server) = LlamaServer::start_tcp() else {
        return;
    };
    let endpoint = endpoint(&server);
    assert!(openai::probe(&endpoint).await);
    server.kill();
    assert!(!openai::probe(&endpoint).await);
    let error = openai::stream_chat(&endpoint, "tiny", &request("hi", 2))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, BackendError::Refused(_)), "{error}");
}
