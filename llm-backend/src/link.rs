//! One HTTP/1.1 exchange with a model server over TCP or a UNIX socket, on
//! hyper's connection API rather than a pooled client, so that the
//! connection can be opened before its request exists ([`Opening`]): the
//! gateway starts it while it decrypts the request, and the server's accept
//! runs on another core meanwhile. Connections the server keeps open (Ollama
//! and most OpenAI-style servers do; llama-server closes its connection
//! after every streamed reply) wait in [`Idle`] for the next request.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use crate::chat::BackendError;

/// Where a model server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A host name or address (without brackets) and a port.
    Tcp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// A UNIX socket.
    Unix(PathBuf),
}

/// A byte stream to a model server.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An open connection.
pub(crate) type Connection = Box<dyn Io>;

/// How to reach one server, and how to name it in messages.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) place: Place,
    pub(crate) timeout: Duration,
    pub(crate) label: String,
}

/// Connects to `target` within its timeout.
pub(crate) async fn connect(target: &Target) -> Result<Connection, BackendError> {
    let connecting = async {
        match &target.place {
            Place::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                // Tokens are small writes that must not wait for each other.
                stream.set_nodelay(true)?;
                Ok::<Connection, io::Error>(Box::new(stream))
            }
            Place::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok(Box::new(stream) as Connection)
            }
        }
    };
    match tokio::time::timeout(target.timeout, connecting).await {
        Err(_) => Err(BackendError::ConnectTimeout(target.label.clone())),
        Ok(Err(error)) => Err(connect_error(&error, &target.label)),
        Ok(Ok(connection)) => Ok(connection),
    }
}

/// Classifies a failure to connect: nothing listening is [`BackendError::Refused`].
fn connect_error(error: &io::Error, label: &str) -> BackendError {
    match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
            BackendError::Refused(label.to_owned())
        }
        _ => BackendError::Transport(format!("cannot connect to {label}: {error}")),
    }
}

/// A connection being opened ahead of its request, in a task of its own.
/// Dropped unused, it is abandoned (and closed if it was made).
pub struct Opening(JoinHandle<Result<Connection, BackendError>>);

impl Opening {
    /// Starts connecting to `target`. Needs a tokio runtime.
    pub(crate) fn start(target: Target) -> Opening {
        Opening(tokio::spawn(async move { connect(&target).await }))
    }

    /// The connection, once made.
    pub(crate) async fn ready(mut self) -> Result<Connection, BackendError> {
        (&mut self.0).await.unwrap_or_else(|error| {
            Err(BackendError::Transport(format!(
                "the connection task failed: {error}"
            )))
        })
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Opening")
    }
}

/// Connections opened ahead of requests on their way
/// ([`crate::endpoint::Endpoint::prepare`]), newest last. The next request
/// to the endpoint takes one; one unused for [`Spares::FRESH_FOR`] (its
/// request was refused, or went elsewhere) is closed without a byte.
#[derive(Debug, Default)]
pub(crate) struct Spares(Mutex<Vec<(Opening, Instant)>>);

impl Spares {
    /// At most this many wait at once.
    const KEPT: usize = 64;
    /// How long one waits for its request; a server may close a silent
    /// connection soon after.
    pub(crate) const FRESH_FOR: Duration = Duration::from_secs(2);

    fn openings(&self) -> std::sync::MutexGuard<'_, Vec<(Opening, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `opening`, started at `now`; stale ones are closed.
    pub(crate) fn push(&self, opening: Opening, now: Instant) {
        let mut openings = self.openings();
        openings.retain(|(_, started)| now.duration_since(*started) < Self::FRESH_FOR);
        if openings.len() < Self::KEPT {
            openings.push((opening, now));
        }
    }

    /// The newest fresh one at `now`; stale ones are closed.
    pub(crate) fn take(&self, now: Instant) -> Option<Opening> {
        let mut openings = self.openings();
        openings.retain(|(_, started)| now.duration_since(*started) < Self::FRESH_FOR);
        openings.pop().map(|(opening, _)| opening)
    }

    /// How many wait.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.openings().len()
    }
}

/// The sending half of one HTTP/1.1 connection.
type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Connections of one endpoint that may carry another request: kept after
/// each request (a busy one becomes ready when its reply has been read),
/// dropped once the server closes them or after 30 s unused.
#[derive(Default)]
pub(crate) struct Idle(Mutex<Vec<(Sender, Instant)>>);

impl Idle {
    /// At most this many are kept (as many as streams run at once, typically).
    const KEPT: usize = 1024;
    const UNUSED_FOR: Duration = Duration::from_secs(30);

    fn senders(&self) -> std::sync::MutexGuard<'_, Vec<(Sender, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection ready for a request, if one is.
    fn take(&self) -> Option<Sender> {
        let mut senders = self.senders();
        senders.retain(|(sender, kept)| !sender.is_closed() && kept.elapsed() < Idle::UNUSED_FOR);
        let ready = senders.iter().rposition(|(sender, _)| sender.is_ready())?;
        Some(senders.swap_remove(ready).0)
    }

    /// Whether a kept connection is ready for a request.
    pub(crate) fn any_ready(&self) -> bool {
        self.senders()
            .iter()
            .any(|(sender, _)| sender.is_ready() && !sender.is_closed())
    }

    /// Keeps `sender` for a later request.
    fn keep(&self, sender: Sender) {
        let mut senders = self.senders();
        if senders.len() < Idle::KEPT {
            senders.push((sender, Instant::now()));
        }
    }
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Idle({})", self.senders().len())
    }
}

/// Starts HTTP/1.1 on `connection`.
async fn handshake(connection: Connection) -> Result<Sender, BackendError> {
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(connection))
        .await
        .map_err(|error| transport("the HTTP handshake failed", &error))?;
    // The connection runs beside the caller until the server closes it or
    // the sender and the reply being read are dropped.
    tokio::spawn(async move {
        if let Err(error) = driver.await {
            tracing::debug!(%error, "backend connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends `POST path` with a JSON `body` to `target` and returns the response
/// once its head has arrived; its body streams as it is read. The request
/// goes on `opening` if given, else on an idle connection, else on a new one.
pub(crate) async fn post_json(
    target: &Target,
    idle: &Idle,
    opening: Option<Opening>,
    authority: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Response<Incoming>, BackendError> {
    let mut request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "text/event-stream")
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| BackendError::Protocol(format!("cannot build the request: {error}")))?;
    let mut sender = match opening {
        Some(opening) => handshake(opening.ready().await?).await?,
        None => loop {
            let Some(mut sender) = idle.take() else {
                break handshake(connect(target).await?).await?;
            };
            // A kept connection the server has just closed takes nothing:
            // the request comes back unsent and goes on the next one.
            match sender.try_send_request(request).await {
                Ok(response) => {
                    idle.keep(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(transport("the request failed", error.error())),
                },
            }
        },
    };
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| transport("the request failed", &error))?;
    idle.keep(sender);
    Ok(response)
}

/// The start of an error response's body, as text (at most 64 KiB is read).
pub(crate) async fn error_text(response: Response<Incoming>) -> String {
    match Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}

/// A transport failure with its causes, for messages.
fn transport(context: &str, error: &dyn std::error::Error) -> BackendError {
    BackendError::Transport(format!("{context}: {}", hearth_runtime::error_chain(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(place: Place) -> Target {
        Target {
            place,
            timeout: Duration::from_secs(2),
            label: "test".into(),
        }
    }

    #[tokio::test]
    async fn a_spare_waits_a_few_seconds_for_its_request_then_is_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let place = Place::Tcp {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        let spares = Spares::default();
        let start = Instant::now();
        spares.push(Opening::start(target(place.clone())), start);
        spares.push(
            Opening::start(target(place)),
            start + Duration::from_secs(1),
        );
        assert_eq!(spares.len(), 2);
        let later = start + Spares::FRESH_FOR + Duration::from_millis(500);
        assert!(spares.take(later).is_some(), "the newer one is still fresh");
        assert!(spares.take(later).is_none(), "the older one went stale");
        assert_eq!(spares.len(), 0);
    }

    #[tokio::test]
    async fn nothing_listening_is_refused() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let tcp = target(Place::Tcp {
            host: "127.0.0.1".into(),
            port,
        });
        assert!(matches!(connect(&tcp).await, Err(BackendError::Refused(_))));
        let missing = target(Place::Unix("/nonexistent/hearth.sock".into()));
        assert!(matches!(
            connect(&missing).await,
            Err(BackendError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn an_opening_is_made_before_it_is_asked_for_and_closed_when_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let opening = Opening::start(target(Place::Tcp {
            host: "127.0.0.1".into(),
            port,
        }));
        // The server sees the connection while nobody has asked for it yet.
        let (mut accepted, _) = listener.accept().await.unwrap();
        drop(opening);
        let mut byte = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut accepted, &mut byte)
            .await
            .unwrap();
        assert_eq!(read, 0, "an unused opening closes its connection");
    }
}
