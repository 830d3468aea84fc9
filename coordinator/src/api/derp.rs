//! The relay's HTTP surface (on the coordinator's HTTPS listener, or a
//! standalone relay's): `GET /derp` upgraded to DERP (`Upgrade: DERP`, as
//! Tailscale's clients and `hearth-agent` ask) or to a WebSocket carrying
//! the same byte stream (`Upgrade: websocket`, subprotocol `derp`, as
//! browsers and some Tailscale clients do); and `/derp/probe`,
//! `/derp/latency-check` and `/generate_204`, which clients use to measure
//! the relay when UDP is blocked. The relay itself is [`crate::derp`].

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hearth_control::derp;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::derp::{Admission, Relay};

/// Bytes in flight between a WebSocket and the relay.
const WEBSOCKET_PIPE: usize = 256 << 10;

/// The relay's routes.
pub fn router<A: Admission>(relay: Arc<Relay<A>>) -> Router {
    Router::new()
        .route("/derp", get(upgrade::<A>))
        .route("/derp/probe", get(|| async { StatusCode::OK }))
        .route("/derp/latency-check", get(|| async { StatusCode::OK }))
        .route("/generate_204", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(relay)
}

fn asks_for(request: &Request, protocol: &str) -> bool {
    request
        .headers()
        .get("upgrade")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case(protocol))
}

async fn upgrade<A: Admission>(State(relay): State<Arc<Relay<A>>>, request: Request) -> Response {
    if asks_for(&request, "websocket") {
        return websocket(relay, request).await;
    }
    if !asks_for(&request, "derp") {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "DERP requires Upgrade: DERP (or websocket)",
        )
            .into_response();
    }
    let mut request = request;
    let upgrading = hyper::upgrade::on(&mut request);
    let public = hex::encode(relay.public_key());
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => {
                if let Err(error) = relay.serve_client(TokioIo::new(upgraded)).await {
                    tracing::debug!(%error, "a relay client left");
                }
            }
            Err(error) => tracing::debug!(%error, "a relay upgrade did not complete"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "DERP")
        .header("connection", "Upgrade")
        .header("derp-version", derp::PROTOCOL_VERSION.to_string())
        .header("derp-public-key", public)
        .body(axum::body::Body::empty())
        .expect("a fixed response builds")
}

/// DERP over a WebSocket: binary messages carry the relay's byte stream.
async fn websocket<A: Admission>(relay: Arc<Relay<A>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols(["derp"])
        .max_message_size(derp::MAX_FRAME * 2)
        .on_upgrade(move |socket| async move {
            let (relay_side, socket_side) = tokio::io::duplex(WEBSOCKET_PIPE);
            let pump = tokio::spawn(pump(socket, socket_side));
            if let Err(error) = relay.serve_client(relay_side).await {
                tracing::debug!(%error, "a relay client (WebSocket) left");
            }
            pump.abort();
        })
}

/// Carries bytes between a WebSocket's binary messages and the relay.
async fn pump(socket: WebSocket, pipe: tokio::io::DuplexStream) {
    let (mut sink, mut stream) = socket.split();
    let (mut from_relay, mut to_relay) = tokio::io::split(pipe);
    let inbound = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(bytes) if to_relay.write_all(&bytes).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_relay.shutdown().await;
    };
    let outbound = async {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match from_relay.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let message = Message::Binary(buffer[..read].to_vec().into());
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}
