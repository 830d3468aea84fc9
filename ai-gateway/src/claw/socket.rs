//! The WebSocket under OpenClaw's protocol: the upgrade answered here (so
//! the connection's reads can be bounded), and a byte budget on what a
//! client may send before its `connect` is admitted. The protocol allows
//! one `connect` of at most [`super::wire::MAX_PREAUTH_BYTES`] before
//! `hello-ok`; a client that sends more is cut off as it sends it, not
//! after its message of up to [`super::wire::MAX_PAYLOAD_BYTES`] has been
//! buffered.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The socket a connection is served on.
pub type Socket = WebSocketStream<Capped<TokioIo<hyper::upgrade::Upgraded>>>;

/// Bytes a client may send before its `connect` is admitted: one
/// `connect` frame and its header.
pub const BEFORE_CONNECT_BYTES: u64 = super::wire::MAX_PREAUTH_BYTES as u64 + 1024;

/// What is left of a connection's byte budget (`u64::MAX`: none).
#[derive(Clone, Debug)]
pub struct Budget(Arc<AtomicU64>);

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Budget {
        Budget(Arc::new(AtomicU64::new(bytes)))
    }

    /// No budget from now on (the client is admitted).
    pub fn lift(&self) {
        self.0.store(u64::MAX, Ordering::Release);
    }

    /// Spends `bytes`; false when they were more than what was left.
    fn spend(&self, bytes: u64) -> bool {
        let mut left = self.0.load(Ordering::Acquire);
        loop {
            if left == u64::MAX {
                return true;
            }
            let Some(rest) = left.checked_sub(bytes) else {
                return false;
            };
            match self
                .0
                .compare_exchange(left, rest, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => left = now,
            }
        }
    }
}

/// An IO whose reads are held to a [`Budget`].
pub struct Capped<I> {
    inner: I,
    budget: Budget,
}

impl<I: AsyncRead + Unpin> AsyncRead for Capped<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        if let Poll::Ready(Ok(())) = &polled {
            let read = (buffer.filled().len() - before) as u64;
            if !self.budget.spend(read) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more sent before connect than a connect frame",
                )));
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Capped<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

/// Whether `headers` (of a GET) ask for a WebSocket.
pub fn is_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|text| {
                text.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    method == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

/// Answers a WebSocket upgrade (`101`), and calls `serve` with the socket
/// and its byte budget once the connection is upgraded; a malformed
/// upgrade is `400`.
pub fn accept<F, Fut>(mut request: Request, serve: F) -> Response
where
    F: FnOnce(Socket, Budget) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let headers = request.headers();
    let version_13 = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|version| version == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_13)
    else {
        return bad_upgrade();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return bad_upgrade();
    };
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let budget = Budget::new(BEFORE_CONNECT_BYTES);
        let io = Capped {
            inner: TokioIo::new(upgraded),
            budget: budget.clone(),
        };
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(super::wire::MAX_PAYLOAD_BYTES);
        config.max_frame_size = Some(super::wire::MAX_PAYLOAD_BYTES);
        config.read_buffer_size = 16 * 1024;
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        serve(socket, budget).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .expect("static headers are valid")
}

fn bad_upgrade() -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .body(axum::body::Body::from(
            "a WebSocket upgrade needs Sec-WebSocket-Version 13 and a Sec-WebSocket-Key",
        ))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_spent_until_lifted() {
        let budget = Budget::new(10);
        assert!(budget.spend(6));
        assert!(!budget.spend(5), "more than is left");
        assert!(budget.spend(4));
        budget.lift();
        assert!(budget.spend(u64::MAX - 1));
    }
}
