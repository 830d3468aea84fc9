//! Where a backend listens: `http(s)://host:port[/prefix]`, or `unix:/path.sock`.

use std::time::Duration;

/// The API a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Api {
    /// Ollama's native API (`/api/chat`, NDJSON).
    #[serde(rename = "ollama")]
    Ollama,
    /// OpenAI's chat completions (`/chat/completions`, SSE), as llama.cpp's `llama-server` serves it.
    #[serde(rename = "openai-completions")]
    OpenAiCompletions,
}

/// One reachable instance of a backend.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// How it was configured, for messages.
    pub label: String,
    base: String,
    /// The HTTP client bound to it.
    pub http: reqwest::Client,
}

impl Endpoint {
    /// Parses `text`. For OpenAI-style providers an HTTP base URL includes
    /// its `/v1`; on a UNIX socket the OpenAI API is at `/v1`.
    pub fn parse(text: &str, api: Api, connect_timeout: Duration) -> Result<Endpoint, String> {
        let builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(path) = text.strip_prefix("unix:") {
            let path = format!("/{}", path.trim_start_matches('/'));
            let http = builder
                .unix_socket(path.as_str())
                .build()
                .map_err(|error| format!("{text}: {error}"))?;
            let base = match api {
                Api::OpenAiCompletions => "http://localhost/v1",
                Api::Ollama => "http://localhost",
            };
            return Ok(Endpoint {
                label: text.to_owned(),
                base: base.to_owned(),
                http,
            });
        }
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            return Err(format!("`{text}` is not an http(s):// URL or unix:/path"));
        }
        let http = builder
            .build()
            .map_err(|error| format!("{text}: {error}"))?;
        Ok(Endpoint {
            label: text.to_owned(),
            base: text.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The URL of `path` (which starts with `/`) on this endpoint.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
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
    }
}
