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

pub use hearth_files::config::{ConfigError, FileConfig};
use serde::Deserialize;
use serde_json::Value;

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
    /// For `api: "hearth-enclave"`: the attestation policy (JSON) remote
    /// nodes' evidence must pass before anything is sealed to them.
    #[serde(default)]
    pub attestation_policy: Option<PathBuf>,
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

impl FileConfig for Config {
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
        for (id, provider) in &self.models.providers {
            let enclave = provider.api == hearth_llm::Api::HearthEnclave;
            if enclave != provider.attestation_policy.is_some() {
                return Err(schema(
                    &format!("models.providers.{id}.attestationPolicy"),
                    if enclave {
                        "a hearth-enclave provider needs the attestation policy its nodes must pass"
                            .into()
                    } else {
                        "only a hearth-enclave provider takes an attestation policy".into()
                    },
                ));
            }
        }
        Ok(())
    }
}

impl Config {
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

/// Where `hearth-gateway serve` looks for its configuration, in order:
/// the one given (`--config`), or else OpenClaw's places: `$OPENCLAW_CONFIG_PATH`,
/// `~/.openclaw/openclaw.json`, then `/etc/hearth/openclaw.json`.
pub fn config_candidates(
    given: Option<PathBuf>,
    openclaw_env: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Vec<PathBuf> {
    if let Some(given) = given {
        return vec![given];
    }
    openclaw_env
        .into_iter()
        .chain(home.map(|home| home.join(".openclaw/openclaw.json")))
        .chain(std::iter::once(PathBuf::from("/etc/hearth/openclaw.json")))
        .collect()
}

#[cfg(test)]
mod tests;
