//! Where a backend listens: `http://host:port[/prefix]`, or `unix:/path.sock`.

use std::sync::Arc;
use std::time::Duration;

use crate::link::{Idle, Opening, Place, Spares, Target};

/// The API a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Api {
    /// Ollama's native API (`/api/chat`, NDJSON).
    #[serde(rename = "ollama")]
    Ollama,
    /// OpenAI's chat completions (`/chat/completions`, SSE), as llama.cpp's `llama-server` serves it.
    #[serde(rename = "openai-completions")]
    OpenAiCompletions,
    /// A Hearth private-compute router: remote nodes whose attestation
    /// evidence is verified before any request is sealed to them
    /// (docs/private-compute.md).
    #[serde(rename = "hearth-enclave")]
    HearthEnclave,
}

/// Why a router or an endpoint could not be set up from its configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// A model reference is not `provider/model`.
    #[error("model `{0}` must be written provider/model")]
    BadModelRef(String),
    /// A provider lists no base URL.
    #[error("provider `{0}` has no baseUrl")]
    NoBaseUrl(String),
    /// A model of the chain names a provider that is not configured.
    #[error("model `{model}` names provider `{provider}`, which is not configured")]
    UnknownProvider {
        /// The model.
        model: String,
        /// The provider it names.
        provider: String,
    },
    /// An https:// base URL.
    #[error(
        "`{0}`: https is not supported; reach a model on another machine over the mesh with http:// (WireGuard encrypts it)"
    )]
    Https(String),
    /// Not http:// nor unix:.
    #[error("`{0}` is not an http:// URL or unix:/path")]
    NotAUrl(String),
    /// A URL that does not parse, or a client that cannot be built for it.
    #[error("`{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A URL without a host.
    #[error("`{0}` names no host")]
    NoHost(String),
    /// A `hearth-enclave` provider without an attestation policy.
    #[error("provider `{0}` (api hearth-enclave) needs an attestation policy")]
    NoPolicy(String),
    /// Its attestation policy cannot be read or used.
    #[error("provider `{provider}`: the attestation policy {reason}")]
    Policy {
        /// The provider.
        provider: String,
        /// What is wrong.
        reason: String,
    },
    /// A provider whose API this process does not implement.
    #[error("provider `{provider}`: api {api:?} is not available here")]
    Unsupported {
        /// The provider.
        provider: String,
        /// Its API.
        api: Api,
    },
}

/// One reachable instance of a backend.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// How it was configured, for messages.
    pub label: String,
    base: String,
    /// Where to connect, for requests made on [`crate::link`].
    target: Target,
    /// The `Host` header.
    authority: String,
    /// The path before the API's own paths (`/v1` for OpenAI-style servers).
    prefix: String,
    /// Connections kept for the next request (shared by clones).
    idle: Arc<Idle>,
    /// Connections opened ahead of requests on their way (shared by clones).
    spares: Arc<Spares>,
    /// The HTTP client bound to it.
    pub http: reqwest::Client,
}

impl Endpoint {
    /// Parses `text`. For OpenAI-style providers an HTTP base URL includes
    /// its `/v1`; on a UNIX socket the OpenAI API is at `/v1`. HTTPS is
    /// refused: a model elsewhere is reached over the mesh, which encrypts.
    pub fn parse(text: &str, api: Api, connect_timeout: Duration) -> Result<Endpoint, SetupError> {
        let builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        let target = |place| Target {
            place,
            timeout: connect_timeout,
            label: text.to_owned(),
        };
        if let Some(path) = text.strip_prefix("unix:") {
            let path = format!("/{}", path.trim_start_matches('/'));
            let http = builder
                .unix_socket(path.as_str())
                .build()
                .map_err(|error| SetupError::BadUrl {
                    url: text.to_owned(),
                    reason: error.to_string(),
                })?;
            let prefix = match api {
                Api::OpenAiCompletions => "/v1",
                Api::Ollama | Api::HearthEnclave => "",
            };
            return Ok(Endpoint {
                label: text.to_owned(),
                base: format!("http://localhost{prefix}"),
                target: target(Place::Unix(path.into())),
                authority: "localhost".into(),
                prefix: prefix.into(),
                idle: Arc::default(),
                spares: Arc::default(),
                http,
            });
        }
        if text.starts_with("https://") {
            return Err(SetupError::Https(text.to_owned()));
        }
        if !text.starts_with("http://") {
            return Err(SetupError::NotAUrl(text.to_owned()));
        }
        let url = reqwest::Url::parse(text).map_err(|error| SetupError::BadUrl {
            url: text.to_owned(),
            reason: error.to_string(),
        })?;
        let (Some(named), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(SetupError::NoHost(text.to_owned()));
        };
        // An IPv6 address is bracketed in URLs and Host headers, not in connect().
        let host = named
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = match url.port() {
            Some(port) => format!("{named}:{port}"),
            None => named.to_owned(),
        };
        let http = builder.build().map_err(|error| SetupError::BadUrl {
            url: text.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(Endpoint {
            label: text.to_owned(),
            base: text.trim_end_matches('/').to_owned(),
            target: target(Place::Tcp { host, port }),
            authority,
            prefix: url.path().trim_end_matches('/').to_owned(),
            idle: Arc::default(),
            spares: Arc::default(),
            http,
        })
    }

    /// The URL of `path` (which starts with `/`) on this endpoint.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL of `path` at the server's root, outside the API's prefix
    /// (llama.cpp's `/props`).
    pub fn root_url(&self, path: &str) -> String {
        let root = self.base.strip_suffix(&self.prefix).unwrap_or(&self.base);
        format!("{root}{path}")
    }

    /// The request path of `path` (which starts with `/`) on this endpoint.
    pub(crate) fn path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The `Host` header for this endpoint.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// Where and how to connect.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Connections kept for the next request.
    pub(crate) fn idle(&self) -> &Idle {
        &self.idle
    }

    /// Starts connecting now for a request on its way, unless a kept
    /// connection is ready for it (see [`crate::link`]): the connection
    /// waits among the endpoint's spares, and the next request here takes
    /// it. True when one was started.
    pub fn prepare(&self) -> bool {
        if self.idle.any_ready() {
            return false;
        }
        self.spares.push(
            Opening::start(self.target.clone()),
            std::time::Instant::now(),
        );
        true
    }

    /// A connection opened ahead for this request, unless a kept one is
    /// ready.
    pub(crate) fn opening(&self) -> Option<Opening> {
        if self.idle.any_ready() {
            return None;
        }
        self.spares.take(std::time::Instant::now())
    }
}

/// The JSON a model server answers `request` with (within 3 s, a success);
/// `None` otherwise: for what a server says of itself, which it may not.
pub(crate) async fn json_answer(request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
    let response = request
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_sockets_are_understood() {
        let tcp = Endpoint::parse(
            "http://127.0.0.1:8080/v1/",
            Api::OpenAiCompletions,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            tcp.url("/chat/completions"),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        let socket = Endpoint::parse(
            "unix:/run/inference.sock",
            Api::OpenAiCompletions,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(socket.url("/models"), "http://localhost/v1/models");
        let ollama = Endpoint::parse(
            "unix:///run/ollama.sock",
            Api::Ollama,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(ollama.url("/api/chat"), "http://localhost/api/chat");
        assert!(Endpoint::parse("ftp://x", Api::Ollama, Duration::from_secs(1)).is_err());
        let https = Endpoint::parse("https://x/v1", Api::Ollama, Duration::from_secs(1));
        assert!(https.unwrap_err().to_string().contains("mesh"));
    }

    #[test]
    fn requests_go_to_the_configured_place_and_path() {
        let tcp = Endpoint::parse(
            "http://[::1]:8080/v1/",
            Api::OpenAiCompletions,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            tcp.target().place,
            Place::Tcp {
                host: "::1".into(),
                port: 8080
            }
        );
        assert_eq!(tcp.authority(), "[::1]:8080");
        assert_eq!(tcp.path("/chat/completions"), "/v1/chat/completions");
        let bare =
            Endpoint::parse("http://models.home", Api::Ollama, Duration::from_secs(1)).unwrap();
        assert_eq!(
            (
                bare.target().place.clone(),
                bare.authority(),
                bare.path("/api/chat")
            ),
            (
                Place::Tcp {
                    host: "models.home".into(),
                    port: 80
                },
                "models.home",
                "/api/chat".to_owned()
            )
        );
        let socket = Endpoint::parse(
            "unix:/run/inference.sock",
            Api::OpenAiCompletions,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            socket.target().place,
            Place::Unix("/run/inference.sock".into())
        );
        assert_eq!(socket.path("/chat/completions"), "/v1/chat/completions");
    }
}
