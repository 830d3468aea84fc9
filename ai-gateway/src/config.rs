//! The gateway's configuration: the relevant subset of OpenClaw's
//! `openclaw.json` (JSON5), plus a `hearth` section for what OpenClaw does
//! not have.
//!
//! ```json5
//! {
//!   gateway: { port: 18789, bind: "loopback", auth: { mode: "token", token: "${GATEWAY_TOKEN}" } },
//!   models: { providers: {
//!     llamacpp: { baseUrl: "unix:/run/inference.sock", api: "openai-completions", timeoutSeconds: 30,
//!                 models: [{ id: "tiny", contextWindow: 2048, maxTokens: 256 }] },
//!     ollama:   { baseUrl: "http://127.0.0.1:11434", api: "ollama", models: [{ id: "llama3.2" }] },
//!   } },
//!   agents: { defaults: { model: { primary: "llamacpp/tiny", fallbacks: ["ollama/llama3.2"] },
//!                         workspace: "/workspace" } },
//!   hearth: { dataDir: "/var/lib/hearth-gateway" },
//! }
//! ```
//!
//! Callers prove themselves with the bearer token (`gateway.auth`): the one
//! configured, or the one in `gateway.auth.tokenFile`, or by default the one
//! the gateway writes to `DATA_DIR/gateway.token` (0600) on first start.
//! Mesh devices may instead be named by the agent (`hearth.agentSocket`).
//! `auth.mode: "none"` trusts every process on the machine (loopback only).
//!
//! Unknown keys are refused with their path; `${VAR}` in any string is
//! replaced by the environment variable (a missing variable is an error).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON5.
    #[error("{0}")]
    Syntax(String),
    /// A `${VAR}` names an unset variable.
    #[error("{path}: environment variable `{name}` is not set")]
    MissingVariable {
        /// Where.
        path: String,
        /// Which variable.
        name: String,
    },
    /// A key or value does not fit the schema.
    #[error("{path}: {message}")]
    Schema {
        /// Where (dotted path).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Network settings.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Model providers.
    #[serde(default)]
    pub models: ModelsSection,
    /// Agent defaults: model chain and workspace.
    #[serde(default)]
    pub agents: AgentsSection,
    /// Hearth's own settings.
    #[serde(default)]
    pub hearth: HearthSection,
}

/// `gateway`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySection {
    /// TCP port (OpenClaw's default 18789).
    #[serde(default = "default_port")]
    pub port: u16,
    /// `loopback`, `lan` (all interfaces), `tailnet` (the mesh address) or an IP address.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// OpenClaw's gateway mode; only `local` exists here.
    #[serde(default)]
    pub mode: Option<String>,
    /// Caller authentication.
    #[serde(default)]
    pub auth: AuthSection,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            port: default_port(),
            bind: default_bind(),
            mode: None,
            auth: AuthSection::default(),
        }
    }
}

fn default_port() -> u16 {
    18789
}

fn default_bind() -> String {
    "loopback".into()
}

/// `gateway.auth`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `token` (the default) or `none`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The bearer token for `mode: token`.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the bearer token (a Hearth extension); created (0600)
    /// if missing. Default, when no `token` is given: `DATA_DIR/gateway.token`.
    #[serde(default, rename = "tokenFile")]
    pub token_file: Option<PathBuf>,
}

/// Where the bearer token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// Written in the configuration (usually as `${VAR}`).
    Given(String),
    /// Read from this file, which is created if missing.
    File(PathBuf),
    /// No token: `auth.mode: "none"`.
    Off,
}

/// `models`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    /// Providers by id.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSection>,
}

/// A base URL, or several in rotation (a Hearth extension).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum BaseUrls {
    /// One URL.
    One(String),
    /// Several, in rotation.
    Many(Vec<String>),
}

impl BaseUrls {
    /// The URLs.
    pub fn list(&self) -> Vec<String> {
        match self {
            BaseUrls::One(url) => vec![url.clone()],
            BaseUrls::Many(urls) => urls.clone(),
        }
    }
}

/// `models.providers.<id>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSection {
    /// Where it listens (`http://…/v1` for OpenAI-style, `unix:/path.sock`).
    pub base_url: BaseUrls,
    /// `ollama` or `openai-completions`.
    pub api: hearth_llm::Api,
    /// First-token and idle timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// An API key (accepted for compatibility; local backends need none).
    #[serde(default)]
    pub api_key: Option<String>,
    /// The models it serves.
    #[serde(default)]
    pub models: Vec<ModelSection>,
}

fn default_timeout() -> u64 {
    60
}

/// A model of a provider.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSection {
    /// Model id at the provider.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Context window, tokens.
    #[serde(default = "default_context")]
    pub context_window: u32,
    /// Most tokens per reply.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_context() -> u32 {
    8192
}

fn default_max_tokens() -> u32 {
    1024
}

/// `agents`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsSection {
    /// `agents.defaults`.
    #[serde(default)]
    pub defaults: AgentDefaults,
}

/// `agents.defaults`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefaults {
    /// The model chain.
    #[serde(default)]
    pub model: ModelChain,
    /// The persona folder (SOUL.md, AGENTS.md, IDENTITY.md, USER.md).
    #[serde(default)]
    pub workspace: Option<PathBuf>,
}

/// `agents.defaults.model`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelChain {
    /// `provider/model` tried first.
    #[serde(default)]
    pub primary: Option<String>,
    /// Then these, in order.
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

/// `hearth`: settings OpenClaw does not have.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HearthSection {
    /// Keys, sessions (default `/var/lib/hearth-gateway`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Hours between key rotations.
    #[serde(default = "default_rotation")]
    pub key_rotation_hours: u64,
    /// Hours an old key stays accepted after rotation.
    #[serde(default = "default_overlap")]
    pub key_overlap_hours: u64,
    /// The node agent's socket, to learn who is behind a tunnel address.
    #[serde(default)]
    pub agent_socket: Option<PathBuf>,
    /// Seconds a request timestamp may differ from the gateway's clock.
    #[serde(default = "default_skew")]
    pub request_skew_seconds: i64,
    /// Seconds to wait for a connection to a backend.
    #[serde(default = "default_connect")]
    pub connect_timeout_seconds: u64,
    /// Seconds between backend health probes.
    #[serde(default = "default_health")]
    pub health_check_seconds: u64,
    /// DNS names browsers may reach the gateway by, besides its IP
    /// addresses and `localhost`; requests naming another host, or coming
    /// from a web page of another origin, are refused.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
}

impl Default for HearthSection {
    fn default() -> Self {
        serde_json::from_value(Value::Object(Default::default()))
            .expect("every field has a default")
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/hearth-gateway")
}
fn default_rotation() -> u64 {
    24
}
fn default_overlap() -> u64 {
    1
}
fn default_skew() -> i64 {
    60
}
fn default_connect() -> u64 {
    5
}
fn default_health() -> u64 {
    5
}

/// `hearth.limits`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Requests per minute per device key.
    #[serde(default = "default_device_rate")]
    pub requests_per_minute_per_device: u32,
    /// Requests per minute per source address.
    #[serde(default = "default_ip_rate")]
    pub requests_per_minute_per_ip: u32,
    /// Replies streaming at once.
    #[serde(default = "default_streams")]
    pub max_concurrent_streams: usize,
    /// Most tokens per reply, whatever a request asks.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

impl Default for Limits {
    fn default() -> Self {
        serde_json::from_value(Value::Object(Default::default()))
            .expect("every field has a default")
    }
}

fn default_device_rate() -> u32 {
    60
}
fn default_ip_rate() -> u32 {
    240
}
fn default_streams() -> usize {
    64
}

/// Replaces `${NAME}` in every string of `value` (`path` names where, for
/// errors), looking names up with `lookup`. Shared with the messaging
/// service's configuration.
pub fn substitute(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => {
            let mut result = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let Some(length) = rest[start + 2..].find('}') else {
                    break;
                };
                let name = &rest[start + 2..start + 2 + length];
                let replacement = lookup(name).ok_or_else(|| ConfigError::MissingVariable {
                    path: path.to_owned(),
                    name: name.to_owned(),
                })?;
                result.push_str(&rest[..start]);
                result.push_str(&replacement);
                rest = &rest[start + 3 + length..];
            }
            result.push_str(rest);
            *text = result;
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{index}]"), lookup)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute(item, &child, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads a JSON5 configuration into `T`: syntax, then `${VAR}` from
/// `lookup`, then the schema, each failure naming where it is. Shared by
/// Hearth's services that take an OpenClaw-style file.
pub fn parse_json5<T: serde::de::DeserializeOwned>(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    let mut value: Value =
        json5::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
    substitute(&mut value, "", lookup)?;
    serde_path_to_error::deserialize(value).map_err(|error| ConfigError::Schema {
        path: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

impl Config {
    /// Parses JSON5 `text`, substituting variables from the environment.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, &|name| std::env::var(name).ok())
    }

    /// Parses JSON5 `text`, substituting variables from `lookup`.
    pub fn parse_with(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let config: Config = parse_json5(text, lookup)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let schema = |path: &str, message: String| ConfigError::Schema {
            path: path.to_owned(),
            message,
        };
        if let Some(mode) = &self.gateway.mode
            && mode != "local"
        {
            return Err(schema(
                "gateway.mode",
                format!("only \"local\" is supported, not {mode:?}"),
            ));
        }
        match self.gateway.auth.mode.as_deref() {
            Some("none") => {}
            None | Some("token") => {
                if let Some(token) = &self.gateway.auth.token
                    && token.trim().len() < 16
                {
                    return Err(schema(
                        "gateway.auth.token",
                        "a token must have at least 16 characters".into(),
                    ));
                }
                if self.gateway.auth.token.is_some() && self.gateway.auth.token_file.is_some() {
                    return Err(schema(
                        "gateway.auth",
                        "give `token` or `tokenFile`, not both".into(),
                    ));
                }
            }
            Some(other) => {
                return Err(schema(
                    "gateway.auth.mode",
                    format!("{other:?} is not \"token\" or \"none\""),
                ));
            }
        }
        if !matches!(self.gateway.bind.as_str(), "loopback" | "lan" | "tailnet")
            && self.gateway.bind.parse::<IpAddr>().is_err()
        {
            return Err(schema(
                "gateway.bind",
                format!(
                    "{:?} is not loopback, lan, tailnet or an IP address",
                    self.gateway.bind
                ),
            ));
        }
        Ok(())
    }

    /// Where the bearer token callers must present comes from. Whitespace
    /// around a token is not part of it (a token read from a file or a
    /// podman secret often ends with a newline).
    pub fn token_source(&self) -> TokenSource {
        let auth = &self.gateway.auth;
        if auth.mode.as_deref() == Some("none") {
            return TokenSource::Off;
        }
        match (&auth.token, &auth.token_file) {
            (Some(token), _) => TokenSource::Given(token.trim().to_owned()),
            (None, Some(file)) => TokenSource::File(file.clone()),
            (None, None) => TokenSource::File(self.hearth.data_dir.join("gateway.token")),
        }
    }

    /// The model chain, primary first.
    pub fn chain(&self) -> Vec<String> {
        let model = &self.agents.defaults.model;
        model
            .primary
            .iter()
            .chain(&model.fallbacks)
            .cloned()
            .collect()
    }

    /// The settings of `provider/model`, if configured.
    pub fn model(&self, provider: &str, model: &str) -> Option<&ModelSection> {
        self.models
            .providers
            .get(provider)?
            .models
            .iter()
            .find(|entry| entry.id == model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      // OpenClaw-style
      gateway: { port: 18789, bind: "loopback" },
      models: { providers: {
        llamacpp: { baseUrl: "unix:/run/inference.sock", api: "openai-completions", timeoutSeconds: 20,
                    models: [{ id: "tiny", name: "Tiny", contextWindow: 2048, maxTokens: 128 }] },
        ollama: { baseUrl: ["http://127.0.0.1:11434", "http://127.0.0.2:11434"], api: "ollama", apiKey: "${OLLAMA_KEY}",
                  models: [{ id: "llama3.2" }] },
      } },
      agents: { defaults: { model: { primary: "llamacpp/tiny", fallbacks: ["ollama/llama3.2"] }, workspace: "/ws" } },
      hearth: { dataDir: "/tmp/gw", limits: { maxConcurrentStreams: 8 } },
    }"#;

    fn lookup(name: &str) -> Option<String> {
        (name == "OLLAMA_KEY").then(|| "secret".into())
    }

    #[test]
    fn an_openclaw_style_config_parses() {
        let config = Config::parse_with(EXAMPLE, &lookup).unwrap();
        assert_eq!(config.gateway.port, 18789);
        assert_eq!(config.chain(), ["llamacpp/tiny", "ollama/llama3.2"]);
        assert_eq!(config.models.providers["ollama"].base_url.list().len(), 2);
        assert_eq!(
            config.models.providers["ollama"].api_key.as_deref(),
            Some("secret")
        );
        assert_eq!(config.model("llamacpp", "tiny").unwrap().max_tokens, 128);
        assert_eq!(config.hearth.limits.max_concurrent_streams, 8);
        assert_eq!(
            config.hearth.limits.max_tokens, 1024,
            "defaults fill the rest"
        );
        assert_eq!(config.hearth.key_rotation_hours, 24);
    }

    #[test]
    fn a_token_from_a_file_loses_its_newline() {
        let text =
            r#"{ gateway: { bind: "0.0.0.0", auth: { mode: "token", token: "${TOKEN}" } } }"#;
        let from_file = |name: &str| (name == "TOKEN").then(|| "0123456789abcdef0123\n".into());
        let config = Config::parse_with(text, &from_file).unwrap();
        assert_eq!(
            config.token_source(),
            TokenSource::Given("0123456789abcdef0123".into())
        );
        let short = |name: &str| (name == "TOKEN").then(|| "short          \n".into());
        assert!(
            Config::parse_with(text, &short).is_err(),
            "padding does not make a token long enough"
        );
    }

    #[test]
    fn an_empty_config_has_openclaw_defaults() {
        let config = Config::parse_with("{}", &lookup).unwrap();
        assert_eq!(
            (config.gateway.port, config.gateway.bind.as_str()),
            (18789, "loopback")
        );
        assert_eq!(
            config.token_source(),
            TokenSource::File(PathBuf::from("/var/lib/hearth-gateway/gateway.token")),
            "local callers need the token the gateway writes"
        );
        let open =
            Config::parse_with(r#"{ gateway: { auth: { mode: "none" } } }"#, &lookup).unwrap();
        assert_eq!(open.token_source(), TokenSource::Off);
        let filed = Config::parse_with(
            r#"{ gateway: { auth: { tokenFile: "/etc/hearth/token" } } }"#,
            &lookup,
        )
        .unwrap();
        assert_eq!(
            filed.token_source(),
            TokenSource::File("/etc/hearth/token".into())
        );
        assert!(
            Config::parse_with(
                r#"{ gateway: { auth: { token: "0123456789abcdef", tokenFile: "/x" } } }"#,
                &lookup
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let error =
            Config::parse_with("{ gateway: { port: 1, bnd: \"lan\" } }", &lookup).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("gateway.bnd: unknown field `bnd`"),
            "{error}"
        );
        let error = Config::parse_with("{ models: { providers: { x: { baseUrl: \"http://a\", api: \"ollama\", model: [] } } } }", &lookup)
            .unwrap_err();
        assert!(
            error.to_string().contains("models.providers.x")
                && error.to_string().contains("`model`"),
            "{error}"
        );
        let error = Config::parse_with(
            "{ models: { providers: { x: { baseUrl: \"http://a\", api: \"anthropic\" } } } }",
            &lookup,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("models.providers.x.api"),
            "{error}"
        );
    }

    #[test]
    fn variables_are_substituted_and_missing_ones_named() {
        let error = Config::parse_with(
            r#"{ gateway: { auth: { mode: "token", token: "${NOPE}" } } }"#,
            &lookup,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "gateway.auth.token: environment variable `NOPE` is not set"
        );
        let config =
            Config::parse_with(r#"{ hearth: { dataDir: "/x/${OLLAMA_KEY}/y" } }"#, &lookup)
                .unwrap();
        assert_eq!(config.hearth.data_dir, PathBuf::from("/x/secret/y"));
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(Config::parse_with("{ gateway: { bind: \"everywhere\" } }", &lookup).is_err());
        assert!(
            Config::parse_with(
                "{ gateway: { auth: { mode: \"token\", token: \"short\" } } }",
                &lookup
            )
            .is_err()
        );
        assert!(Config::parse_with("{ gateway: { port: 99999 } }", &lookup).is_err());
        assert!(matches!(
            Config::parse_with("{ gateway: ", &lookup),
            Err(ConfigError::Syntax(_))
        ));
    }
}
