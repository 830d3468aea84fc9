//! The accept loop: every connection takes a slot of the listener's
//! [`Gate`] (or is closed at once), holds it for as long as its socket
//! lives (WebSocket upgrades included), and must send a whole request head
//! within the header timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::limits::{Full, Gate, Limits, Ticket};
use crate::throttle::Throttle;

/// How long a stop waits for connections in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// An HTTP/1 and HTTP/2 connection server with `limits`' header timeout,
/// and HTTP/2 keep-alive pings so that a silent peer is dropped.
pub fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// A stream that holds a connection slot for as long as it lives.
#[derive(Debug)]
pub struct Held<S> {
    stream: S,
    _ticket: Ticket,
}

impl<S> Held<S> {
    /// `stream`, holding `ticket`.
    pub fn new(stream: S, ticket: Ticket) -> Held<S> {
        Held {
            stream,
            _ticket: ticket,
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// What the accept loop logs, at most once a second per kind.
pub struct Refusals {
    full: Mutex<Throttle>,
    accept: Mutex<Throttle>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            full: Mutex::new(Throttle::new(Duration::from_secs(1))),
            accept: Mutex::new(Throttle::new(Duration::from_secs(1))),
        }
    }
}

impl Refusals {
    /// A connection from `remote` found no slot.
    pub fn full(&self, remote: SocketAddr, why: Full) {
        let allowed = hearth_runtime::lock(&self.full).allow(Instant::now());
        if let Some(suppressed) = allowed {
            tracing::warn!(%remote, %why, suppressed, "connection refused");
        }
    }

    /// `accept` failed (out of descriptors, usually).
    pub fn accept_failed(&self, error: &io::Error) {
        let allowed = hearth_runtime::lock(&self.accept).allow(Instant::now());
        if let Some(suppressed) = allowed {
            tracing::warn!(%error, suppressed, "accept failed");
        }
    }
}

/// The next connection `gate` admits, with TCP_NODELAY set; `None` once
/// `shutdown` completes. Refused and failed accepts are logged (rate
/// limited) through `refusals`.
async fn next_admitted<S: Future<Output = ()>>(
    listener: &TcpListener,
    gate: &Gate,
    refusals: &Refusals,
    shutdown: &mut Pin<&mut S>,
) -> Option<(TcpStream, SocketAddr, Ticket)> {
    loop {
        let (tcp, remote) = tokio::select! {
            () = shutdown.as_mut() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    refusals.accept_failed(&error);
                    // Out of descriptors: give connections in flight time to end.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match gate.admit(remote.ip()) {
            Ok(ticket) => {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
                return Some((tcp, remote, ticket));
            }
            Err(why) => refusals.full(remote, why),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, within `gate`'s
/// limits; requests carry `ConnectInfo<SocketAddr>`. Replies go out with
/// TCP_NODELAY: they are streams of small writes (chat events, tokens) that
/// Nagle's algorithm would hold back.
pub async fn serve_tcp(
    listener: TcpListener,
    gate: Gate,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let builder = connection_builder(gate.limits());
    let graceful = GracefulShutdown::new();
    let refusals = Refusals::default();
    tokio::pin!(shutdown);
    while let Some((tcp, remote, ticket)) =
        next_admitted(&listener, &gate, &refusals, &mut shutdown).await
    {
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Held::new(tcp, ticket)),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN:?}");
    }
    Ok(())
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, within
/// `gate`'s limits (the handshake gets the header timeout too). Each
/// request carries `ConnectInfo<SocketAddr>` and what `peer` makes of the
/// connection's address and client certificate (DER, when one was
/// presented). When the accept loop ends, `stopping` runs (to end
/// long-lived streams), then connections in flight get [`DRAIN`].
pub async fn serve_tls<E, P>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    gate: Gate,
    app: Router,
    peer: P,
    shutdown: impl Future<Output = ()>,
    stopping: impl FnOnce(),
) -> io::Result<()>
where
    E: Clone + Send + Sync + 'static,
    P: Fn(SocketAddr, Option<&[u8]>) -> E + Clone + Send + Sync + 'static,
{
    let limits = *gate.limits();
    let builder = connection_builder(&limits);
    let graceful = GracefulShutdown::new();
    let refusals = std::sync::Arc::new(Refusals::default());
    tokio::pin!(shutdown);
    while let Some((tcp, remote, ticket)) =
        next_admitted(&listener, &gate, &refusals, &mut shutdown).await
    {
        let (acceptor, app, peer) = (acceptor.clone(), app.clone(), peer.clone());
        let (watcher, builder) = (graceful.watcher(), builder.clone());
        tokio::spawn(async move {
            let handshake = acceptor.accept(Held::new(tcp, ticket));
            let tls = match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%remote, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.as_ref());
            let extension = peer(remote, certificate);
            let service = app.map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(extension.clone());
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            });
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(tls),
                TowerToHyperService::new(service),
            );
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down");
    drop(listener);
    stopping();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/who",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_tcp(listener, Gate::new(limits), app, async move {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    fn limits(total: usize, per_source: usize, header: Duration) -> Limits {
        Limits {
            max_connections: total,
            max_per_source: per_source,
            header_timeout: header,
            handshake_timeout: header,
        }
    }

    #[tokio::test]
    async fn a_half_sent_header_is_cut_off_at_the_timeout() {
        let (address, _stop) = start(limits(16, 16, Duration::from_millis(300))).await;
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn one_source_holds_its_share_and_no_more() {
        let (address, _stop) = start(limits(16, 2, Duration::from_secs(5))).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream.write_all(b"GET /who HTTP/1.1\r\n").await.unwrap();
            held.push(stream);
        }
        // The third is accepted by the kernel and closed at once by the server.
        let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
        let _ = third
            .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut answer))
            .await
            .expect("closed, not left hanging");
        assert!(
            read.is_err() || answer.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
        // A slot comes back when a held connection goes.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = reqwest::get(format!("http://{address}/who")).await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "127.0.0.1");
    }
}
