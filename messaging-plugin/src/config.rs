//! The messaging service's configuration (JSON5, unknown keys refused,
//! `${VAR}` substitution, as the gateway's).
//!
//! ```json5
//! {
//!   listen: "tailnet",                 // the node's mesh address (default); or "loopback", or an IP
//!   port: 18790,
//!   agentSocket: "/var/lib/hearth/agent/agent.sock",   // who is calling: required
//!   dataDir: "/var/lib/hearth-messaging",
//!   encryptionKeyFile: "/etc/hearth/messages.key",     // optional: seal bodies at rest
//!   rooms: ["household"],              // created at start
//!   admins: ["home"],                  // may delete any room
//!   allowedHosts: ["hub.example.home"],   // names browsers may use (IP literals and localhost always)
//!   tls: { certFile: "/var/lib/hearth/agent/certs/hub.ts.example.crt", keyFile: "/var/lib/hearth/agent/certs/hub.ts.example.key" },   // optional: HTTPS (plain HTTP redirected)
//!   limits: { postsPerMinute: 60, postBurst: 20, roomsPerUser: 20, questionsAtOnce: 4, questionsWaitingPerUser: 4 },
//!   assistant: { gatewayUrl: "http://127.0.0.1:18789", gatewayTokenFile: "/var/lib/hearth-gateway/gateway.token", maxTokens: 512 },   // optional
//!   search: { embeddings: "unix:/run/hearth-inference/embeddings.sock", model: "multilingual-e5-small" },   // optional: search by meaning
//! }
//! ```

use std::path::PathBuf;

pub use hearth_files::config::{ConfigError, FileConfig};
use serde::Deserialize;

use crate::protocol::check_room;

/// The configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// `tailnet` (the mesh address), `loopback`, or an IP address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The node agent's socket: how callers are identified.
    pub agent_socket: PathBuf,
    /// Where messages are kept.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A 32-byte key file (0600) to seal message bodies at rest.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// Rooms that exist from the start.
    #[serde(default = "default_rooms")]
    pub rooms: Vec<String>,
    /// Users who may delete any room (everyone may delete the rooms they created).
    #[serde(default)]
    pub admins: Vec<String>,
    /// DNS names browsers may reach the service by, besides its IP
    /// addresses and `localhost` (e.g. the hub's MagicDNS-style name, or a
    /// TLS terminator's). Requests naming any other host, or coming from a
    /// web page of another origin, are refused.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// HTTPS: the certificate and key files (PEM) to serve, e.g. the ones
    /// `hearth-agent cert` keeps for the hub's MagicDNS name. Files renewed
    /// in place are served from the next connection on; plain HTTP to the
    /// same port is redirected to `https://`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Per-person limits.
    #[serde(default)]
    pub limits: crate::quota::Limits,
    /// The assistant, when there is a gateway to ask.
    #[serde(default)]
    pub assistant: Option<AssistantConfig>,
    /// Search by meaning, when there is an embedding model to ask (else
    /// searches go by words).
    #[serde(default)]
    pub search: Option<SearchConfig>,
}

/// `search`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchConfig {
    /// The embedding model's server: llama-server's OpenAI API on a UNIX
    /// socket (`unix:/run/hearth-inference/embeddings.sock`) or at
    /// `http://HOST:PORT/v1`.
    pub embeddings: String,
    /// The model's name (its kind decides what goes before a query and a
    /// message: `hearth_assistant::search::profile`).
    pub model: String,
}

/// `tls`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Its private key, PEM (0600).
    pub key_file: PathBuf,
}

/// `assistant`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssistantConfig {
    /// The gateway's base URL.
    #[serde(default = "default_gateway")]
    pub gateway_url: String,
    /// Its bearer token, if it needs one (use `${VAR}`).
    #[serde(default)]
    pub gateway_token: Option<String>,
    /// A file holding the bearer token (the gateway writes one, readable
    /// only by its owner and the group the admin gives it); read at start.
    #[serde(default)]
    pub gateway_token_file: Option<PathBuf>,
    /// This service's device key for the gateway (default `DATA_DIR/gateway-device.key`).
    #[serde(default)]
    pub device_key_file: Option<PathBuf>,
    /// Most tokens per answer.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

fn default_listen() -> String {
    "tailnet".into()
}
fn default_port() -> u16 {
    18790
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/hearth-messaging")
}
fn default_rooms() -> Vec<String> {
    vec!["household".into()]
}
fn default_gateway() -> String {
    "http://127.0.0.1:18789".into()
}

impl FileConfig for Config {
    fn check(&self) -> Result<(), ConfigError> {
        let config = self;
        for (index, room) in config.rooms.iter().enumerate() {
            if !check_room(room).is_ok_and(|room| !room.is_dm()) {
                return Err(ConfigError::Schema {
                    path: format!("rooms[{index}]"),
                    message: format!(
                        "{room:?} is not a room name (lowercase letters, digits and -, up to 40)"
                    ),
                });
            }
        }
        if !matches!(config.listen.as_str(), "tailnet" | "loopback")
            && config.listen.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ConfigError::Schema {
                path: "listen".into(),
                message: format!(
                    "{:?} is not tailnet, loopback or an IP address",
                    config.listen
                ),
            });
        }
        Ok(())
    }
}

impl Config {
    /// The assistant's device key file.
    pub fn device_key_file(&self) -> Option<PathBuf> {
        let assistant = self.assistant.as_ref()?;
        Some(
            assistant
                .device_key_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("gateway-device.key")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "a-long-gateway-token-0123456789".into())
    }

    #[test]
    fn defaults_and_the_assistant() {
        let config = Config::parse_with(
            r#"{ agentSocket: "/run/agent.sock", assistant: { gatewayToken: "${TOKEN}" } }"#,
            &lookup,
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((config.listen.as_str(), config.port), ("tailnet", 18790));
        assert_eq!(config.rooms, ["household"]);
        let assistant = config
            .assistant
            .clone()
            .unwrap_or_else(|| panic!("assistant"));
        assert_eq!(assistant.gateway_url, "http://127.0.0.1:18789");
        assert_eq!(
            assistant.gateway_token.as_deref(),
            Some("a-long-gateway-token-0123456789")
        );
        assert_eq!(
            config.device_key_file(),
            Some(PathBuf::from(
                "/var/lib/hearth-messaging/gateway-device.key"
            ))
        );
    }

    #[test]
    fn mistakes_are_named() {
        let error = Config::parse_with(r#"{ agentSocket: "/x", room: [] }"#, &lookup)
            .err()
            .map(|error| error.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|error| error.contains("unknown field `room`")),
            "{error:?}"
        );
        let error = Config::parse_with(r#"{ listen: "tailnet" }"#, &lookup)
            .err()
            .map(|error| error.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|error| error.contains("agentSocket")),
            "{error:?}"
        );
        let error = Config::parse_with(r#"{ agentSocket: "/x", rooms: ["Kitchen"] }"#, &lookup)
            .err()
            .map(|error| error.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|error| error.starts_with("rooms[0]")),
            "{error:?}"
        );
        assert!(
            Config::parse_with(r#"{ agentSocket: "/x", listen: "everywhere" }"#, &lookup).is_err()
        );
    }
}
