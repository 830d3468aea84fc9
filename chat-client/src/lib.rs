//! A client of the gateway's encrypted chat (`hearth-gateway chat`, the
//! messaging service): fetches the gateway's key, seals the request, opens
//! the reply chunk by chunk, and notices a reply cut short or altered
//! (docs/e2ee-protocol.md).

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use hearth_e2ee::ErrorCode;
use hearth_e2ee::envelope::seal_request;
use hearth_e2ee::{
    ChatPayload, ChunkError, ChunkOpener, KeyPair, PublishedKey, ReplyEvent, SealedChunk,
};
use hearth_sse::SseDecoder;
use zeroize::Zeroizing;

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens where the gateway should (not started yet, or
    /// restarting): nothing was sent.
    #[error("cannot reach the gateway (nothing answers there; is it running?): {0}")]
    Unreachable(String),
    /// The connection to the gateway failed.
    #[error("cannot reach the gateway: {0}")]
    Transport(String),
    /// The gateway refused the request.
    #[error("the gateway refused ({status}, {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The gateway has no current key.
    #[error("the gateway published no current key")]
    NoKey,
    /// The reply could not be opened, or was cut short.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// Something else than the protocol came back.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// Loads the device key at `path`, creating it (0600) on first use.
pub fn device_key(path: &Path) -> std::io::Result<KeyPair> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a device key", path.display()),
                )
            })?);
            KeyPair::from_private(&bytes).map_err(|error| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let pair = KeyPair::generate();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(pair.private_bytes().as_ref()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            std::io::Write::write_all(&mut file, text.as_bytes())?;
            Ok(pair)
        }
        Err(error) => Err(error),
    }
}

/// A client of one gateway.
#[derive(Clone)]
pub struct ChatClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    device: KeyPair,
}

#[derive(serde::Deserialize)]
struct Keys {
    suite: String,
    keys: Vec<PublishedKey>,
}

/// A failed request: `Unreachable` when it never connected (nothing was
/// sent), `Transport` otherwise.
fn send_failed(error: reqwest::Error) -> ClientError {
    if error.is_connect() {
        ClientError::Unreachable(error.to_string())
    } else {
        ClientError::Transport(error.to_string())
    }
}

impl ChatClient {
    /// A client of the gateway at `base` (`http://127.0.0.1:18789`), as `device`.
    pub fn new(base: &str, token: Option<String>, device: KeyPair) -> ChatClient {
        ChatClient {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token,
            device,
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn refused(response: reqwest::Response) -> ClientError {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        ClientError::Refused {
            status,
            code: serde_json::from_value(body["error"]["code"].clone())
                .unwrap_or(ErrorCode::Unknown),
            message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
        }
    }

    /// The gateway's current key.
    pub async fn current_key(&self) -> Result<PublishedKey, ClientError> {
        let get = || {
            self.authorize(self.http.get(format!("{}/api/pubkey", self.base)))
                .send()
        };
        // A kept connection to a gateway that has since restarted fails on
        // first use; the question is harmless to ask again, on a new one.
        let response = match get().await {
            Err(error) if !error.is_connect() => get().await,
            answer => answer,
        }
        .map_err(send_failed)?;
        if !response.status().is_success() {
            return Err(ChatClient::refused(response).await);
        }
        let keys: Keys = response
            .json()
            .await
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        if keys.suite != hearth_e2ee::envelope::SUITE {
            return Err(ClientError::Protocol(format!(
                "the gateway uses another suite: {}",
                keys.suite
            )));
        }
        keys.keys
            .into_iter()
            .find(|key| key.status == "current")
            .ok_or(ClientError::NoKey)
    }

    /// Waits, for at most `limit`, until the gateway answers at all (its
    /// key, or a refusal): after a restart, or while its container starts,
    /// nothing may listen yet. Whether it answered in time.
    pub async fn wait_until_up(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            match self.current_key().await {
                Err(ClientError::Unreachable(_) | ClientError::Transport(_)) => {}
                _ => return true,
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
    }

    /// Sends `payload` sealed to the gateway and calls `on_event` with each
    /// event of the sealed reply as it arrives.
    pub async fn chat(
        &self,
        payload: &ChatPayload,
        on_event: impl FnMut(&ReplyEvent),
    ) -> Result<(), ClientError> {
        let plaintext = Zeroizing::new(serde_json::to_vec(payload).expect("payloads serialize"));
        self.exchange("/api/chat", &plaintext, on_event).await
    }

    /// Sends an assistant API `request` (`POST /api/assistant`: deliveries,
    /// memory, reminders, documents) sealed like a chat request; the
    /// answer it carries.
    pub async fn assistant(
        &self,
        request: &impl serde::Serialize,
    ) -> Result<serde_json::Value, ClientError> {
        let plaintext = Zeroizing::new(
            serde_json::to_vec(request)
                .map_err(|error| ClientError::Protocol(error.to_string()))?,
        );
        let mut answer = None;
        let mut failure = None;
        self.exchange("/api/assistant", &plaintext, |event| match event {
            ReplyEvent::Data { data } => answer = Some(data.clone()),
            ReplyEvent::Error { code, message } => {
                failure = Some(ClientError::Refused {
                    status: 200,
                    code: *code,
                    message: message.clone(),
                });
            }
            _ => {}
        })
        .await?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        answer.ok_or_else(|| ClientError::Protocol("the gateway's answer held no data".into()))
    }

    /// Seals `plaintext` to the gateway's current key, posts it to `path`,
    /// and opens the sealed reply event by event.
    async fn exchange(
        &self,
        path: &str,
        plaintext: &[u8],
        mut on_event: impl FnMut(&ReplyEvent),
    ) -> Result<(), ClientError> {
        let key = self.current_key().await?;
        let public = URL_SAFE_NO_PAD
            .decode(&key.public_key)
            .map_err(|_| ClientError::Protocol("the published key is not base64url".into()))?;
        let (envelope, opener) = seal_request(
            &public,
            &key.id,
            &self.device,
            plaintext,
            hearth_runtime::clock::unix_seconds(),
        )
        .map_err(|error| ClientError::Protocol(error.to_string()))?;
        let response = self
            .authorize(self.http.post(format!("{}{path}", self.base)))
            .json(&envelope)
            .send()
            .await
            .map_err(send_failed)?;
        if !response.status().is_success() {
            return Err(ChatClient::refused(response).await);
        }
        let mut bytes = response.bytes_stream();
        let mut reply = SealedReply::new(opener);
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|error| ClientError::Transport(error.to_string()))?;
            for event in reply.push(&chunk)? {
                on_event(&event);
            }
        }
        reply.finish()
    }
}

/// A sealed reply opened as its bytes arrive: SSE framing, chunks opened in
/// order, and the rule that `done` or `error` comes in the final chunk and
/// only there. Pure: the caller feeds bytes from wherever they come.
pub struct SealedReply {
    decoder: SseDecoder,
    opener: ChunkOpener,
    unsealed_error: Option<String>,
}

impl SealedReply {
    /// A reply to be opened with `opener` (from sealing the request).
    pub fn new(opener: ChunkOpener) -> SealedReply {
        SealedReply {
            decoder: SseDecoder::new(),
            opener,
            unsealed_error: None,
        }
    }

    /// Feeds bytes; returns the reply events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ReplyEvent>, ClientError> {
        let mut events = Vec::new();
        for event in self
            .decoder
            .push(bytes)
            .map_err(|error| ClientError::Protocol(error.to_string()))?
        {
            match event.event.as_deref() {
                Some("chunk") => {}
                // A relay that cannot seal (the router) says why it stopped.
                Some("error") => {
                    self.unsealed_error = Some(event.data.clone());
                    continue;
                }
                // Other event types are for later versions: skipped.
                _ => continue,
            }
            let sealed: SealedChunk = serde_json::from_str(&event.data)
                .map_err(|error| ClientError::Protocol(error.to_string()))?;
            let plaintext = self.opener.open(&sealed)?;
            let event: ReplyEvent = serde_json::from_slice(&plaintext)
                .map_err(|error| ClientError::Protocol(error.to_string()))?;
            if event.is_final() != sealed.last {
                return Err(ClientError::Protocol(
                    "`done` or `error` outside the final chunk, or a final chunk without one"
                        .into(),
                ));
            }
            events.push(event);
        }
        Ok(events)
    }

    /// Checks that the reply ended with its final chunk.
    pub fn finish(&self) -> Result<(), ClientError> {
        self.opener.finish().map_err(ClientError::from)
    }

    /// An unsealed `error` event's data, if a relay sent one (it cannot be
    /// authenticated; it only explains a reply cut short).
    pub fn unsealed_error(&self) -> Option<&str> {
        self.unsealed_error.as_deref()
    }
}
