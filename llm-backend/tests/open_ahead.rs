//! Connections to a model server. One opened ahead (`Router::prepare`)
//! reaches the server before the request exists and then carries it (no
//! second connection); unused, it closes without a byte sent. One the server keeps open carries
//! the next request. The server is a bare TCP listener speaking just enough
//! HTTP, so that connections can be counted.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use hearth_llm::{Api, ChatRequest, Message, ModelRef, ProviderConfig, Router, StreamEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn router(port: u16) -> Router {
    Router::new(
        vec![ProviderConfig {
            id: "local".into(),
            api: Api::OpenAiCompletions,
            endpoints: vec![format!("http://127.0.0.1:{port}/v1")],
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
        }],
        vec![ModelRef::parse("local/tiny").unwrap()],
    )
    .unwrap()
}

/// Reads one HTTP request (head and `Content-Length` body) from `socket`.
async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = socket.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the connection closed before a whole request");
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

const REPLY: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tea\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

#[tokio::test]
async fn the_request_travels_on_the_connection_opened_ahead() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router = router(listener.local_addr().unwrap().port());
    assert!(router.prepare(), "an OpenAI-style primary");
    // The server has the connection before any request exists.
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the connection is opened ahead")
        .unwrap();
    let request = ChatRequest {
        messages: vec![Message::new("user", "where is the tea")],
        max_tokens: Some(4),
        temperature: None,
        ..Default::default()
    };
    let server = tokio::spawn(async move {
        let received = read_request(&mut socket).await;
        socket.write_all(REPLY.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        received
    });
    let opened = router.open(&request).await.unwrap();
    let events: Vec<_> = opened.events.collect().await;
    assert_eq!(
        events.first().cloned().unwrap().unwrap(),
        StreamEvent::Delta("tea".into())
    );
    assert!(matches!(
        events.last().cloned().unwrap().unwrap(),
        StreamEvent::Done { .. }
    ));
    let received = server.await.unwrap();
    assert!(
        received.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{received}"
    );
    assert!(received.contains("where is the tea"));
    // No second connection was made for it.
    let second = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(second.is_err(), "the request opened a second connection");
}

#[tokio::test]
async fn a_connection_opened_ahead_and_not_used_closes_without_a_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router = router(listener.local_addr().unwrap().port());
    assert!(router.prepare());
    let (mut socket, _) = listener.accept().await.unwrap();
    // The request it was opened for was refused, and the gateway stops.
    drop(router);
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut received))
        .await
        .expect("the unused connection is closed")
        .unwrap();
    assert!(received.is_empty(), "{received:?}");
}

#[tokio::test]
async fn only_openai_style_servers_are_opened_ahead() {
    let router = Router::new(
        vec![ProviderConfig {
            id: "home".into(),
            api: Api::Ollama,
            endpoints: vec!["http://127.0.0.1:9/".into()],
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }],
        vec![ModelRef::parse("home/tiny").unwrap()],
    )
    .unwrap();
    assert!(!router.prepare());
}

#[tokio::test]
async fn a_connection_the_server_keeps_open_carries_the_next_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = hearth_llm::endpoint::Endpoint::parse(
        &format!("http://127.0.0.1:{port}/v1"),
        Api::OpenAiCompletions,
        Duration::from_secs(1),
    )
    .unwrap();
    let body = REPLY.split_once("\r\n\r\n").unwrap().1;
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        for _ in 0..2 {
            read_request(&mut socket).await;
            socket.write_all(reply.as_bytes()).await.unwrap();
        }
        // A third connection would mean the kept one was not used.
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err()
    });
    let request = ChatRequest {
        messages: vec![Message::new("user", "where is the tea")],
        max_tokens: Some(4),
        temperature: None,
        ..Default::default()
    };
    for _ in 0..2 {
        let events: Vec<_> = hearth_llm::openai::stream_chat(&endpoint, "tiny", &request)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(
            events.first().cloned().unwrap().unwrap(),
            StreamEvent::Delta("tea".into())
        );
    }
    assert!(
        server.await.unwrap(),
        "the second request opened a new connection"
    );
}
