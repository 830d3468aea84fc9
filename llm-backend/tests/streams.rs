//! Byte-level stream edge cases, replayed from recorded streams
//! (tests/streams/) by a scripted loopback server: a UTF-8 character split
//! across network chunks, keep-alive comments, a mid-stream error in each
//! API's shape, a dropped connection, a missing final message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use hearth_llm::endpoint::Endpoint;
use hearth_llm::{
    Api, BackendError, ChatRequest, EventStream, Message, StreamEvent, ollama, openai,
};
use hearth_testkit::standins::{Ending, Script, ScriptedServer, split_at};

const LLAMA: &[u8] = include_bytes!("streams/llama-server.sse");
const OLLAMA: &[u8] = include_bytes!("streams/ollama.ndjson");
const GAP: Duration = Duration::from_millis(15);

/// What a stream delivered: the text, and how it ended.
#[derive(Debug)]
struct Outcome {
    text: String,
    deltas: usize,
    end: Result<String, BackendError>,
}

async fn collect(mut events: EventStream) -> Outcome {
    let mut text = String::new();
    let mut deltas = 0;
    while let Some(event) = events.next().await {
        match event {
            Ok(StreamEvent::Delta(delta)) => {
                text.push_str(&delta);
                deltas += 1;
            }
            Ok(StreamEvent::ToolCalls(calls)) => panic!("no tools were offered: {calls}"),
            Ok(StreamEvent::Done { finish_reason, .. }) => {
                assert!(events.next().await.is_none(), "nothing follows the end");
                return Outcome {
                    text,
                    deltas,
                    end: Ok(finish_reason),
                };
            }
            Err(error) => {
                assert!(events.next().await.is_none(), "nothing follows an error");
                return Outcome {
                    text,
                    deltas,
                    end: Err(error),
                };
            }
        }
    }
    panic!("the stream ended without saying how (text so far: {text:?})");
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("user", "hello")],
        max_tokens: Some(6),
        temperature: Some(0.0),
        ..Default::default()
    }
}

/// Replays `chunks` as an OpenAI-style SSE reply and decodes it.
async fn replay_sse(chunks: Vec<Vec<u8>>, ending: Ending) -> Outcome {
    replay_sse_paced(chunks, ending, GAP).await
}

async fn replay_sse_paced(chunks: Vec<Vec<u8>>, ending: Ending, gap: Duration) -> Outcome {
    let server = ScriptedServer::start(move |_| {
        Script::stream("text/event-stream", chunks.clone(), gap, ending)
    });
    let endpoint = Endpoint::parse(
        &format!("{}/v1", server.url()),
        Api::OpenAiCompletions,
        Duration::from_secs(2),
    )
    .unwrap();
    let events = openai::stream_chat(&endpoint, "tiny", &request())
        .await
        .unwrap();
    let outcome = collect(events).await;
    assert_eq!(server.count("/v1/chat/completions"), 1);
    outcome
}

async fn replay_ndjson(chunks: Vec<Vec<u8>>, ending: Ending) -> Outcome {
    let server = ScriptedServer::start(move |_| {
        Script::stream("application/x-ndjson", chunks.clone(), GAP, ending)
    });
    let endpoint = Endpoint::parse(&server.url(), Api::Ollama, Duration::from_secs(2)).unwrap();
    let events = ollama::stream_chat(&endpoint, "tiny", &request())
        .await
        .unwrap();
    let outcome = collect(events).await;
    assert_eq!(server.count("/api/chat"), 1);
    outcome
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The recording with its deltas' text replaced by multi-byte text.
fn llama_with_multibyte() -> Vec<u8> {
    text(LLAMA)
        .replacen(r#""content":"3""#, "\"content\":\"caf\u{e9} \"", 1)
        .replace(r#""content":" home""#, "\"content\":\"\u{2615}\u{e9}\"")
        .into_bytes()
}

#[tokio::test]
async fn the_recorded_llama_server_stream_decodes_whole() {
    let outcome = replay_sse(vec![LLAMA.to_vec()], Ending::Complete).await;
    assert_eq!(outcome.text, "3 home home home home home");
    assert_eq!(outcome.deltas, 6);
    assert_eq!(outcome.end.unwrap(), "length");
}

#[tokio::test]
async fn an_sse_stream_cut_inside_every_character_survives() {
    let bytes = llama_with_multibyte();
    let expected =
        "caf\u{e9} \u{2615}\u{e9}\u{2615}\u{e9}\u{2615}\u{e9}\u{2615}\u{e9}\u{2615}\u{e9}";
    // Cut after the first byte of every multi-byte character: each such
    // character reaches the client in two network chunks.
    let cuts: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte >= 0xc0)
        .map(|(index, _)| index + 1)
        .collect();
    assert!(cuts.len() >= 11, "the variant has multi-byte characters");
    let outcome = replay_sse(split_at(&bytes, &cuts), Ending::Complete).await;
    assert_eq!(outcome.text, expected);
    assert_eq!(outcome.end.unwrap(), "length");
}

#[tokio::test]
async fn an_ndjson_stream_cut_inside_a_character_survives() {
    // ollama-rs itself loses both halves here ("café" arrives as "caf").
    let cafe = OLLAMA
        .windows(2)
        .position(|pair| pair == [0xc3, 0xa9])
        .unwrap();
    let cup = OLLAMA
        .windows(3)
        .position(|triple| triple == [0xe2, 0x98, 0x95])
        .unwrap();
    let outcome = replay_ndjson(
        split_at(OLLAMA, &[cafe + 1, cup + 1, cup + 2]),
        Ending::Complete,
    )
    .await;
    assert_eq!(outcome.text, "The caf\u{e9} is open \u{2615}");
    assert_eq!(outcome.end.unwrap(), "stop");
}

#[tokio::test]
async fn keep_alive_comments_between_events_are_ignored() {
    let with_comments = text(LLAMA).replace("\n\ndata:", "\n\n: keep-alive\n\n:\n\ndata:");
    assert!(with_comments.matches(": keep-alive").count() >= 7);
    let lines: Vec<Vec<u8>> = with_comments
        .split_inclusive('\n')
        .map(|line| line.as_bytes().to_vec())
        .collect();
    let outcome = replay_sse(lines, Ending::Complete).await;
    assert_eq!(outcome.text, "3 home home home home home");
    assert_eq!(outcome.end.unwrap(), "length");
}

/// The recording up to its third delta, then `tail` instead of the rest.
fn llama_then(tail: &str) -> Vec<u8> {
    let recording = text(LLAMA);
    let events: Vec<&str> = recording.split_inclusive("\n\n").collect();
    let mut bytes = events[..4].concat();
    bytes.push_str(tail);
    bytes.into_bytes()
}

#[tokio::test]
async fn a_mid_stream_error_in_openai_shape_is_an_error_not_an_end() {
    let tail = "data: {\"error\":{\"code\":500,\"message\":\"slot crashed\",\"type\":\"server_error\"}}\n\n";
    let outcome = replay_sse(vec![llama_then(tail)], Ending::Complete).await;
    assert_eq!(outcome.text, "3 home home");
    assert_eq!(
        outcome.end.unwrap_err(),
        BackendError::MidStream("slot crashed".into())
    );
}

#[tokio::test]
async fn a_mid_stream_error_in_llama_cpp_shape_is_an_error_not_an_end() {
    let tail = "error: {\"code\":500,\"message\":\"decode failed\",\"type\":\"server_error\"}\n\n";
    let outcome = replay_sse(vec![llama_then(tail)], Ending::Complete).await;
    assert_eq!(outcome.text, "3 home home");
    assert_eq!(
        outcome.end.unwrap_err(),
        BackendError::MidStream("decode failed".into())
    );
}

#[tokio::test]
async fn a_mid_stream_error_in_ollama_shape_is_an_error_not_an_end() {
    let recording = text(OLLAMA);
    let lines: Vec<&str> = recording.lines().collect();
    let broken = format!(
        "{}\n{}\n{{\"error\":\"an error was encountered while running the model: unexpected EOF\"}}\n",
        lines[0], lines[1]
    );
    let outcome = replay_ndjson(vec![broken.into_bytes()], Ending::Complete).await;
    assert_eq!(outcome.text, "The caf\u{e9}");
    assert!(
        matches!(&outcome.end, Err(BackendError::MidStream(message)) if message.contains("unexpected EOF")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_an_error() {
    let outcome = replay_sse(vec![llama_then("")], Ending::Drop).await;
    assert_eq!(outcome.text, "3 home home");
    assert!(
        matches!(outcome.end, Err(BackendError::Transport(_))),
        "{outcome:?}"
    );

    let half: Vec<u8> = OLLAMA[..OLLAMA.len() / 2].to_vec();
    let outcome = replay_ndjson(vec![half], Ending::Drop).await;
    assert!(outcome.end.is_err(), "{outcome:?}");
}

#[tokio::test]
async fn a_stream_without_its_final_message_is_cut_short() {
    // SSE: neither a finish_reason nor [DONE], but a clean end of body.
    let outcome = replay_sse(vec![llama_then("")], Ending::Complete).await;
    assert_eq!(outcome.text, "3 home home");
    assert_eq!(outcome.end.unwrap_err(), BackendError::EndedEarly);

    // NDJSON: no "done": true line.
    let without_last: String = text(OLLAMA)
        .lines()
        .take(4)
        .map(|line| format!("{line}\n"))
        .collect();
    let outcome = replay_ndjson(vec![without_last.into_bytes()], Ending::Complete).await;
    assert_eq!(outcome.text, "The caf\u{e9} is open \u{2615}");
    assert_eq!(outcome.end.unwrap_err(), BackendError::EndedEarly);
}

#[tokio::test]
async fn a_finish_reason_without_done_still_ends_the_reply() {
    // Some OpenAI-compatible servers close after the finish_reason chunk.
    let without_done = text(LLAMA).replace("data: [DONE]\n\n", "");
    let outcome = replay_sse(vec![without_done.into_bytes()], Ending::Complete).await;
    assert_eq!(outcome.end.unwrap(), "length");
}

#[tokio::test]
async fn one_byte_per_chunk_gives_the_same_reply() {
    let bytes = llama_with_multibyte();
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    let outcome = replay_sse_paced(
        split_at(&bytes, &cuts),
        Ending::Complete,
        Duration::from_micros(300),
    )
    .await;
    assert_eq!(
        outcome.text,
        "caf\u{e9} \u{2615}\u{e9}\u{2615}\u{e9}\u{2615}\u{e9}\u{2615}\u{e9}\u{2615}\u{e9}"
    );
    assert_eq!(outcome.end.unwrap(), "length");
}

#[tokio::test]
async fn nothing_counts_after_an_error_in_the_same_network_chunk() {
    // Found by the `streams` fuzz target: events after a broken one, in the
    // same chunk, used to follow the error.
    let broken = format!("data: {{not json}}\n\n{}", text(LLAMA));
    let outcome = replay_sse(vec![broken.into_bytes()], Ending::Complete).await;
    assert_eq!(outcome.text, "");
    assert!(
        matches!(outcome.end, Err(BackendError::Protocol(_))),
        "{outcome:?}"
    );
}
