//! The HTTPS client agents (and tests) use to talk to the coordinator.

use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::compression;
use crate::fingerprint::Fingerprint;
use crate::secret::SecretString;
use crate::tls::{ClientIdentity, TlsSetupError, client_config};
use crate::wire::{
    APPROVAL_PATH, ApprovalMessage, CERT_PATH, CertRequest, CertResponse, ENDPOINTS_PATH,
    EndpointReport, ErrorBody, MAP_PATH, MapMessage, REGISTER_PATH, RELAY_HELLO_PATH,
    RELAY_KEYS_PATH, ROTATE_PATH, ROUTES_PATH, RegisterRequest, RegisterResponse, RelayHello,
    RelayKeys, RelayRegion, RotateRequest, RotateResponse, RoutesReport,
};

/// Largest single line accepted on a stream (a full map of many thousand peers fits).
const MAX_LINE: usize = 64 * 1024 * 1024;
/// How much of a compressed stream is decompressed before looking for a line again.
const READ_AHEAD: usize = 256 * 1024;

/// What can go wrong talking to the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator answered with an error.
    #[error("coordinator refused ({status}): {}", body.message)]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its explanation.
        body: ErrorBody,
    },
    /// The coordinator could not be reached or the connection broke.
    #[error("cannot reach the coordinator: {0}")]
    Transport(String),
    /// The coordinator sent something that is not the protocol.
    #[error("unexpected answer from the coordinator: {0}")]
    Protocol(String),
    /// TLS could not be set up locally.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
}

impl ClientError {
    /// The machine-readable error code when the coordinator refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { body, .. } => Some(&body.error),
            _ => None,
        }
    }
}

fn transport(error: reqwest::Error) -> ClientError {
    // reqwest hides the TLS cause (e.g. a fingerprint mismatch) in the source chain.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport(text)
}

/// A connection to one coordinator. Clones share it: a new identity set
/// on one ([`ControlClient::set_identity`], after a key rotation) is every
/// clone's for its next request.
#[derive(Clone, Debug)]
pub struct ControlClient {
    base: String,
    fingerprint: Fingerprint,
    http: std::sync::Arc<std::sync::RwLock<reqwest::Client>>,
}

/// An HTTP client trusting only `fingerprint`, presenting `identity`.
fn http_client(
    fingerprint: Fingerprint,
    identity: Option<&ClientIdentity>,
) -> Result<reqwest::Client, ClientError> {
    let tls = client_config(fingerprint, identity)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(30))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .build()
        .map_err(transport)
}

impl ControlClient {
    /// A client for `base_url` (`https://host:port`) trusting only the certificate
    /// with `fingerprint`, authenticating with `identity` when given.
    pub fn new(
        base_url: &str,
        fingerprint: Fingerprint,
        identity: Option<&ClientIdentity>,
    ) -> Result<ControlClient, ClientError> {
        Ok(ControlClient {
            base: base_url.trim_end_matches('/').to_owned(),
            fingerprint,
            http: std::sync::Arc::new(std::sync::RwLock::new(http_client(fingerprint, identity)?)),
        })
    }

    /// Presents `identity` from now on (every clone); connections already
    /// open keep the old one until they close.
    pub fn set_identity(&self, identity: &ClientIdentity) -> Result<(), ClientError> {
        let http = http_client(self.fingerprint, Some(identity))?;
        *self
            .http
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = http;
        Ok(())
    }

    /// The HTTP client with the current identity.
    fn http(&self) -> reqwest::Client {
        self.http
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a device with a pre-auth key.
    pub async fn register(
        &self,
        request: &RegisterRequest,
    ) -> Result<RegisterResponse, ClientError> {
        self.post_json(REGISTER_PATH, request, None).await
    }

    /// Posts a report (JSON) to `path`.
    async fn report(&self, path: &str, report: &impl serde::Serialize) -> Result<(), ClientError> {
        let response = self
            .http()
            .post(self.url(path))
            .timeout(Duration::from_secs(30))
            .json(report)
            .send()
            .await
            .map_err(transport)?;
        check(response).await.map(|_| ())
    }

    /// Rotates the node's keys: the new WireGuard key and certificate
    /// request, sent with the current certificate.
    pub async fn rotate(&self, request: &RotateRequest) -> Result<RotateResponse, ClientError> {
        self.post_json(ROTATE_PATH, request, None).await
    }

    /// Asks for a certificate for the node's MagicDNS name (the CA is slow:
    /// up to a few minutes).
    pub async fn certificate(&self, request: &CertRequest) -> Result<CertResponse, ClientError> {
        self.post_json_within(CERT_PATH, request, None, Duration::from_secs(300))
            .await
    }

    /// Reports the node's endpoints.
    pub async fn report_endpoints(&self, report: &EndpointReport) -> Result<(), ClientError> {
        self.report(ENDPOINTS_PATH, report).await
    }

    /// Reports the routes the node advertises.
    pub async fn report_routes(&self, report: &RoutesReport) -> Result<(), ClientError> {
        self.report(ROUTES_PATH, report).await
    }

    /// Opens the streamed network map: a full map, then deltas and keep-alives.
    pub async fn map_stream(&self) -> Result<MessageStream<MapMessage>, ClientError> {
        self.stream(MAP_PATH).await
    }

    /// Opens the approval stream a pending node waits on.
    pub async fn approval_stream(&self) -> Result<MessageStream<ApprovalMessage>, ClientError> {
        self.stream(APPROVAL_PATH).await
    }

    /// A standalone relay's hello, with its secret: the coordinator answers
    /// with the region it serves.
    pub async fn relay_hello(
        &self,
        secret: &SecretString,
        hello: &RelayHello,
    ) -> Result<RelayRegion, ClientError> {
        self.post_json(RELAY_HELLO_PATH, hello, Some(secret)).await
    }

    /// Posts `body` (JSON) to `path`, with `bearer` when given, and reads
    /// the JSON answer.
    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        bearer: Option<&SecretString>,
    ) -> Result<T, ClientError> {
        self.post_json_within(path, body, bearer, Duration::from_secs(30))
            .await
    }

    /// [`Self::post_json`], waiting at most `limit` for the answer.
    async fn post_json_within<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        bearer: Option<&SecretString>,
        limit: Duration,
    ) -> Result<T, ClientError> {
        let mut request = self.http().post(self.url(path));
        if let Some(secret) = bearer {
            request = request.bearer_auth(secret.expose());
        }
        let response = request
            .timeout(limit)
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        check(response)
            .await?
            .json()
            .await
            .map_err(|error| ClientError::Protocol(error.to_string()))
    }

    /// The stream of admitted node keys a standalone relay follows.
    pub async fn relay_keys(
        &self,
        secret: &SecretString,
    ) -> Result<MessageStream<RelayKeys>, ClientError> {
        self.stream_with(RELAY_KEYS_PATH, Some(secret)).await
    }

    async fn stream<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<MessageStream<T>, ClientError> {
        self.stream_with(path, None).await
    }

    async fn stream_with<T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&SecretString>,
    ) -> Result<MessageStream<T>, ClientError> {
        let mut request = self
            .http()
            .get(self.url(path))
            .header(reqwest::header::ACCEPT_ENCODING, compression::ZSTD);
        if let Some(secret) = bearer {
            request = request.bearer_auth(secret.expose());
        }
        let response = request.send().await.map_err(transport)?;
        let response = check(response).await?;
        let encoding = response.headers().get(reqwest::header::CONTENT_ENCODING);
        let frames = match encoding.map(|value| value.as_bytes()) {
            None => None,
            Some(value) if value == compression::ZSTD.as_bytes() => Some(
                compression::FrameReader::new()
                    .map_err(|error| ClientError::Protocol(error.to_string()))?,
            ),
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "a stream in an encoding not asked for: {}",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        Ok(MessageStream::new(
            Box::pin(response.bytes_stream()),
            frames,
        ))
    }
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
        error: "http_error".into(),
        message: if text.is_empty() {
            status.to_string()
        } else {
            text
        },
    });
    Err(ClientError::Refused {
        status: status.as_u16(),
        body,
    })
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A stream of newline-delimited JSON messages, plain or in zstd frames.
pub struct MessageStream<T> {
    body: ByteStream,
    /// Decompresses the body when it is zstd.
    frames: Option<compression::FrameReader>,
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no newline: a long line that
    /// arrives in many pieces is scanned once, not once per piece.
    scanned: usize,
    kind: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> MessageStream<T> {
    fn new(body: ByteStream, frames: Option<compression::FrameReader>) -> MessageStream<T> {
        MessageStream {
            body,
            frames,
            buffer: BytesMut::new(),
            scanned: 0,
            kind: PhantomData,
        }
    }

    /// The next message; `None` when the coordinator closed the stream.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            if let Some(line) = self.next_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(
                    serde_json::from_slice(&line)
                        .map_err(|error| ClientError::Protocol(error.to_string())),
                );
            }
            if self.buffer.len() > MAX_LINE {
                return Some(Err(ClientError::Protocol("stream line too long".into())));
            }
            match &mut self.frames {
                // Compressed bytes received and not yet read: read some
                // (as much as a line may still grow by) before receiving more.
                Some(frames) if frames.has_more() => {
                    let room = MAX_LINE + 1 - self.buffer.len();
                    if let Err(error) = frames.read_into(&mut self.buffer, room.min(READ_AHEAD)) {
                        return Some(Err(ClientError::Protocol(error.to_string())));
                    }
                }
                _ => match self.body.next().await? {
                    Ok(chunk) => match &mut self.frames {
                        Some(frames) => frames.push(chunk),
                        None => self.buffer.extend_from_slice(&chunk),
                    },
                    Err(error) => return Some(Err(transport(error))),
                },
            }
        }
    }

    /// The next whole line in the buffer, without its newline.
    fn next_line(&mut self) -> Option<BytesMut> {
        let Some(found) = self.buffer[self.scanned..]
            .iter()
            .position(|byte| *byte == b'\n')
        else {
            self.scanned = self.buffer.len();
            return None;
        };
        let end = self.scanned + found;
        self.scanned = 0;
        let mut line = self.buffer.split_to(end + 1);
        line.truncate(end);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: Vec<&'static [u8]>) -> MessageStream<serde_json::Value> {
        let body: ByteStream = Box::pin(futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok(Bytes::from_static(chunk))),
        ));
        MessageStream::new(body, None)
    }

    #[tokio::test]
    async fn lines_come_whole_however_their_bytes_arrive() {
        let mut pieces: Vec<&'static [u8]> = Vec::new();
        let long: &'static [u8] = b"{\"a\":\"0123456789\"}";
        for byte in long.chunks(1) {
            pieces.push(byte);
        }
        pieces.push(b"\n{\"b\":1}\n\n{\"c\"");
        pieces.push(b":2}\n");
        let mut stream = stream_of(pieces);
        let mut read = Vec::new();
        while let Some(message) = stream.next().await {
            read.push(message.unwrap());
        }
        assert_eq!(
            read,
            [
                serde_json::json!({"a": "0123456789"}),
                serde_json::json!({"b": 1}),
                serde_json::json!({"c": 2})
            ]
        );
    }
}
