//! The gateway's configuration: OpenClaw's `openclaw.json` (JSON5), read
//! as OpenClaw reads it, plus a `hearth` section for what OpenClaw does not
//! have.
//!
//! ```json5
//! {
//!   gateway: { port: 18789, bind: "loopback", auth: { mode: "token", token: "${GATEWAY_TOKEN}" },
//!              http: { endpoints: { chatCompletions: { enabled: true } } } },
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
//! Every file OpenClaw's schema accepts is read ([`load`]): the keys Hearth
//! implements keep OpenClaw's meaning ([`openclaw`]); the ones it does not
//! are listed once as ignored, with why ([`ignored`]); a `${VAR}` that is not
//! set stays as written and is reported, as OpenClaw does. An invalid file
//! is refused with every problem at once, each with its path, and nothing
//! starts. The `hearth` section is Hearth's own and strict.
//!
//! Callers prove themselves with the shared secret (`gateway.auth`, token or
//! password, given, from a SecretRef or `OPENCLAW_GATEWAY_TOKEN`), or with the
//! one in `gateway.auth.tokenFile`, or by default the one the gateway writes
//! to `DATA_DIR/gateway.token` (0600) on first start. Mesh devices may
//! instead be named by the agent (`hearth.agentSocket`). `auth.mode:
//! "none"` trusts every process on the machine (loopback only).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

mod ignored;
mod openclaw;
mod read;
mod source;

pub use openclaw::{MIN_SECRET, agent_id};
pub use read::{Note, Problem};
pub use source::{Sources, System};

/// The whole configuration, as the gateway uses it.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Network settings.
    pub gateway: GatewaySection,
    /// Model providers.
    pub models: ModelsSection,
    /// Agents: the default model chain and workspace, and named personas.
    pub agents: AgentsSection,
    /// Hearth's own settings.
    pub hearth: HearthSection,
    /// The household assistant: memory, reminders, documents, tools.
    pub assistant: AssistantSection,
}

/// The household assistant (docs/assistant.md), from OpenClaw's `memory`,
/// `cron` and `agents.defaults.userTimezone`, and `hearth.assistant`.
#[derive(Clone, Debug)]
pub struct AssistantSection {
    /// Whether members get memory, reminders, documents and tools
    /// (`hearth.assistant.enabled`).
    pub enabled: bool,
    /// The household's time zone, for reminders and "today"
    /// (`hearth.assistant.timezone`, else `agents.defaults.userTimezone`,
    /// else UTC).
    pub timezone: String,
    /// Whether the model is offered tools (`hearth.assistant.tools`; the
    /// model server must speak OpenAI function calling, llama-server with
    /// `--jinja`).
    pub tools: bool,
    /// `provider/model` giving embeddings for memory and document search
    /// (`memory.search.provider` naming a `models.providers` entry, and
    /// `memory.search.model`); without it, search is by keywords alone.
    pub embeddings: Option<String>,
    /// Most search results (`memory.search.query.maxResults`).
    pub max_results: usize,
    /// Lowest score kept (`memory.search.query.minScore`).
    pub min_score: f32,
    /// When answers name their document sources (`memory.citations`).
    pub citations: Citations,
    /// Whether reminders and scheduled jobs fire (`cron.enabled`, and not
    /// `OPENCLAW_SKIP_CRON=1`).
    pub cron_enabled: bool,
    /// Whether recurring jobs skip the slots missed while the gateway was
    /// down instead of firing once for them (`cron.skipMissedJobs`).
    pub skip_missed: bool,
    /// Folders of household documents (`hearth.assistant.documents`, and
    /// `memory.search.extraPaths` as folders for the whole household).
    pub folders: Vec<DocumentFolder>,
    /// The key (a file, 0600) memory, reminders, lists and deliveries are
    /// sealed with at rest (`hearth.assistant.encryptionKeyFile`).
    pub encryption_key_file: Option<PathBuf>,
    /// Seconds between looks at the document folders for changes.
    pub rescan_seconds: u64,
    /// The household's language (`hearth.assistant.language`, a BCP 47
    /// tag such as `ko`; `hearth setup --lang` writes it): what the
    /// assistant speaks when neither the member's app nor the message says
    /// (a listing asked from the CLI, a bare `/reminders`).
    pub language: hearth_assistant::language::Language,
}

impl Default for AssistantSection {
    fn default() -> Self {
        AssistantSection {
            enabled: true,
            timezone: "UTC".into(),
            tools: true,
            embeddings: None,
            max_results: 6,
            min_score: 0.35,
            citations: Citations::Auto,
            cron_enabled: true,
            skip_missed: false,
            folders: Vec::new(),
            encryption_key_file: None,
            rescan_seconds: 60,
            language: hearth_assistant::language::Language::English,
        }
    }
}

/// `memory.citations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Citations {
    /// Name the sources of answers that used documents (the default).
    Auto,
    /// The same: sources are always named when documents were used.
    On,
    /// Never.
    Off,
}

/// A folder of household documents.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DocumentFolder {
    /// Its name (what the access policy's grants name).
    pub name: String,
    /// Where it is (mounted read-only into the gateway's container).
    pub path: PathBuf,
    /// Only in this room.
    #[serde(default)]
    pub room: Option<String>,
    /// Only for this member, in their own conversation.
    #[serde(default)]
    pub member: Option<String>,
    /// Only for members the access policy grants it to
    /// (`hearth.example/cap/documents`).
    #[serde(default)]
    pub granted: bool,
}

/// `hearth.assistant`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HearthAssistant {
    /// See [`AssistantSection::enabled`].
    #[serde(default = "yes")]
    pub enabled: bool,
    /// See [`AssistantSection::timezone`].
    #[serde(default)]
    pub timezone: Option<String>,
    /// See [`AssistantSection::tools`].
    #[serde(default = "yes")]
    pub tools: bool,
    /// See [`AssistantSection::folders`].
    #[serde(default)]
    pub documents: Vec<DocumentFolder>,
    /// See [`AssistantSection::encryption_key_file`].
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// See [`AssistantSection::rescan_seconds`].
    #[serde(default = "default_rescan")]
    pub rescan_seconds: u64,
    /// See [`AssistantSection::language`].
    #[serde(default)]
    pub language: Option<String>,
}

impl Default for HearthAssistant {
    fn default() -> Self {
        serde_json::from_value(Value::Object(Default::default()))
            .expect("every field has a default")
    }
}

fn yes() -> bool {
    true
}
fn default_rescan() -> u64 {
    60
}

/// `gateway`.
#[derive(Clone, Debug)]
pub struct GatewaySection {
    /// TCP port (OpenClaw's default 18789).
    pub port: u16,
    /// Where to listen.
    pub bind: Bind,
    /// `local` serves; `remote` describes a client of a gateway elsewhere.
    pub mode: GatewayMode,
    /// Caller authentication.
    pub auth: AuthSection,
    /// Which OpenAI-style HTTP endpoints are on (`gateway.http.endpoints`).
    pub http: HttpEndpoints,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            port: DEFAULT_PORT,
            bind: Bind::Loopback,
            mode: GatewayMode::Local,
            auth: AuthSection::default(),
            http: HttpEndpoints::default(),
        }
    }
}

/// OpenClaw's gateway port.
pub const DEFAULT_PORT: u16 = 18789;

/// `gateway.bind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// 127.0.0.1 (`loopback`, and `auto` outside a container).
    Loopback,
    /// Every interface (`lan`).
    Lan,
    /// The mesh address, and loopback (`tailnet`).
    Tailnet,
    /// One address (`custom` with `customBindHost`, or an IP literal).
    Address(IpAddr),
}

/// `gateway.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayMode {
    /// This machine runs the gateway.
    Local,
    /// The file configures a client of another machine's gateway.
    Remote,
}

/// `gateway.http.endpoints`: off unless enabled, as in OpenClaw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpEndpoints {
    /// `POST /v1/chat/completions` (and `GET /v1/models`, `/v1/embeddings`).
    pub chat_completions: bool,
    /// `POST /v1/responses`.
    pub responses: bool,
}

/// `gateway.auth`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthSection {
    /// Where the shared secret comes from.
    pub secret: TokenSource,
}

/// Where the bearer secret callers present comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TokenSource {
    /// Given (written in the file, from the environment or a secret file),
    /// surrounding whitespace removed.
    Given(String),
    /// Read from this file, which is created (0600) if missing.
    File(PathBuf),
    /// The gateway's own token file in its data directory (the default).
    #[default]
    DataDir,
    /// No secret: `auth.mode: "none"`.
    Off,
}

/// `models`.
#[derive(Clone, Debug, Default)]
pub struct ModelsSection {
    /// Providers by id: the ones Hearth can reach.
    pub providers: BTreeMap<String, ProviderSection>,
}

/// A base URL, or several in rotation (a Hearth extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrls(pub Vec<String>);

impl BaseUrls {
    /// The URLs.
    pub fn list(&self) -> Vec<String> {
        self.0.clone()
    }
}

/// `models.providers.<id>`.
#[derive(Clone, Debug)]
pub struct ProviderSection {
    /// Where it listens (`http://…/v1` for OpenAI-style, `unix:/path.sock`).
    pub base_url: BaseUrls,
    /// How Hearth speaks to it.
    pub api: hearth_llm::Api,
    /// OpenClaw's whole-request limit, seconds; Hearth uses it as the limit
    /// on waiting for the first token and between tokens.
    pub timeout_seconds: u64,
    /// The API key (read, not sent: local backends need none).
    pub api_key: Option<String>,
    /// The models it serves.
    pub models: Vec<ModelSection>,
    /// For `api: "hearth-enclave"`: the attestation policy (JSON) remote
    /// nodes' evidence must pass before anything is sealed to them.
    pub attestation_policy: Option<PathBuf>,
}

/// Seconds a provider may take to start and continue an answer, unless set.
pub const DEFAULT_TIMEOUT: u64 = 60;

/// A model of a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSection {
    /// Model id at the provider.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Tokens of context used: `contextTokens` if given, else `contextWindow`.
    pub context_window: u32,
    /// Most tokens per reply.
    pub max_tokens: u32,
}

/// Context tokens assumed when a model's entry does not say.
pub const DEFAULT_CONTEXT: u32 = 8192;
/// Reply tokens assumed when a model's entry does not say.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// `agents`.
#[derive(Clone, Debug, Default)]
pub struct AgentsSection {
    /// `agents.defaults`.
    pub defaults: AgentDefaults,
    /// `agents.entries`: personas the household can address by id.
    pub entries: BTreeMap<String, AgentEntry>,
}

/// `agents.defaults`.
#[derive(Clone, Debug, Default)]
pub struct AgentDefaults {
    /// The model chain.
    pub model: ModelChain,
    /// The persona folder (SOUL.md, AGENTS.md, IDENTITY.md, USER.md).
    pub workspace: Option<PathBuf>,
    /// The household's time zone (`userTimezone`).
    pub user_timezone: Option<String>,
}

/// `agents.entries.<id>`: a persona with its own workspace and models.
#[derive(Clone, Debug, Default)]
pub struct AgentEntry {
    /// Display name.
    pub name: Option<String>,
    /// Its persona folder (else the default one).
    pub workspace: Option<PathBuf>,
    /// Its model chain (else the default one).
    pub model: Option<ModelChain>,
    /// Answers requests that name no agent.
    pub default: bool,
}

/// A model chain: `model: "p/m"` or `model: { primary, fallbacks }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelChain {
    /// `provider/model` tried first.
    pub primary: Option<String>,
    /// Then these, in order.
    pub fallbacks: Vec<String>,
}

impl ModelChain {
    /// Primary first.
    pub fn list(&self) -> Vec<String> {
        self.primary
            .iter()
            .chain(&self.fallbacks)
            .cloned()
            .collect()
    }
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
    /// The household assistant's own settings.
    #[serde(default)]
    pub assistant: HearthAssistant,
    /// Ollama's API, for apps made for Ollama.
    #[serde(default)]
    pub ollama: OllamaSection,
    /// OpenClaw's Control UI, served at `/` from an installed `openclaw`
    /// package (`…/node_modules/openclaw/dist/control-ui`); Hearth ships none
    /// of its files. Unset: no UI.
    #[serde(default)]
    pub control_ui: Option<PathBuf>,
    /// Open WebUI as a front end acting for members.
    #[serde(default)]
    pub open_web_ui: OpenWebUiSection,
    /// The household's other computers that lend their models: found on
    /// the mesh by a tag (needs `agentSocket`). Unset: none.
    #[serde(default, deserialize_with = "model_servers")]
    pub model_servers: Option<ModelServersSection>,
    /// Speech recognition on the hub: whisper.cpp's server the gateway
    /// sends members' recordings to (`/v1/audio/transcriptions`). Unset:
    /// the hub hears nothing.
    #[serde(default)]
    pub speech: Option<SpeechSection>,
}

/// `hearth.speech`: where the hub's speech recognition runs, and how much
/// one request may hold.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpeechSection {
    /// whisper.cpp's server (`whisper-server`), on the hub itself.
    pub url: String,
    /// The model's name, listed as `speech/<model>` (what grants name);
    /// OpenAI's `whisper-1` is taken to mean it.
    #[serde(default = "default_speech_model")]
    pub model: String,
    /// The longest recording one request may hold, in seconds.
    #[serde(default = "default_speech_seconds")]
    pub max_seconds: u32,
    /// The largest upload, in megabytes (OpenAI's limit is 25).
    #[serde(default = "default_speech_megabytes")]
    pub max_megabytes: u32,
}

fn default_speech_model() -> String {
    "whisper-base".to_owned()
}

fn default_speech_seconds() -> u32 {
    300
}

fn default_speech_megabytes() -> u32 {
    25
}

impl SpeechSection {
    /// The name grants and lists give the speech model.
    pub fn model_id(&self) -> String {
        format!("speech/{}", self.model)
    }
}

/// `hearth.modelServers` as written: the tag alone (`"tag:models"`) or an
/// object; read into a [`ModelServersSection`] with the defaults filled in.
#[derive(Deserialize)]
#[serde(untagged)]
enum ModelServers {
    /// Just the tag; the rest as by default.
    Tag(String),
    /// Every setting.
    Full(ModelServersSection),
}

/// `hearth.modelServers` written out.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelServersSection {
    /// The tag the policy gives model servers' devices.
    pub tag: String,
    /// The ports asked on each, in order: Ollama's, then llama-server's.
    #[serde(default = "default_model_ports")]
    pub ports: Vec<u16>,
    /// Seconds a server has to start a reply, and between its tokens.
    #[serde(default = "default_model_timeout")]
    pub timeout_seconds: u64,
    /// Devices the hub may wake with Wake-on-LAN when one of their models
    /// is asked for while they sleep: device name -> MAC address
    /// (`aa:bb:cc:dd:ee:ff`).
    #[serde(default)]
    pub wake: BTreeMap<String, String>,
    /// Where the magic packets go: the hub's LAN's broadcast address and
    /// the discard port.
    #[serde(default = "default_wake_address")]
    pub wake_address: std::net::SocketAddrV4,
}

fn default_wake_address() -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::BROADCAST, 9)
}

fn default_model_ports() -> Vec<u16> {
    vec![11434, 8080]
}

fn default_model_timeout() -> u64 {
    60
}

fn model_servers<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ModelServersSection>, D::Error> {
    Ok(
        Option::<ModelServers>::deserialize(deserializer)?.map(|written| match written {
            ModelServers::Tag(tag) => ModelServersSection {
                tag,
                ports: default_model_ports(),
                timeout_seconds: default_model_timeout(),
                wake: BTreeMap::new(),
                wake_address: default_wake_address(),
            },
            ModelServers::Full(section) => section,
        }),
    )
}

impl ModelServersSection {
    /// The pool's name, the tag's without `tag:` (`models/<model>` is any
    /// server's `<model>`).
    pub fn pool(&self) -> String {
        self.tag
            .strip_prefix("tag:")
            .unwrap_or(&self.tag)
            .to_owned()
    }
}

/// `hearth.openWebUi`: Open WebUI acting for members (under the policy's
/// `actFor`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenWebUiSection {
    /// The file holding the secret Open WebUI signs its user header with
    /// (its `FORWARD_USER_INFO_HEADER_JWT_SECRET`; not readable by every
    /// user, 16 characters at least). Set: only the signed
    /// `X-OpenWebUI-User-Jwt` names whom it acts for, the plain name
    /// header is refused.
    #[serde(default)]
    pub user_jwt_secret_file: Option<PathBuf>,
    /// Which Open WebUI account is which member: each key an account's id
    /// (the signed header's `sub`, shown in Open WebUI's admin panel) or
    /// its email, each value a member's name. The signed header's `name`,
    /// which users edit on their own profile, is never read.
    #[serde(default)]
    pub members: std::collections::BTreeMap<String, String>,
}

/// `hearth.ollama`: Ollama's API on its own port, on the gateway's
/// address, with the gateway's callers and models.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OllamaSection {
    /// Whether it is served (off unless set: the machine may run Ollama).
    #[serde(default)]
    pub enabled: bool,
    /// Its port (Ollama's own, 11434).
    #[serde(default = "default_ollama_port")]
    pub port: u16,
}

impl Default for OllamaSection {
    fn default() -> Self {
        OllamaSection {
            enabled: false,
            port: default_ollama_port(),
        }
    }
}

fn default_ollama_port() -> u16 {
    11434
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

fn default_max_tokens() -> u32 {
    DEFAULT_MAX_TOKENS
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

/// An invalid configuration: every problem, each with its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl std::fmt::Display for Problems {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.len();
        write!(
            formatter,
            "{count} problem{}:",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(formatter, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A configuration read: what the gateway uses, and what it does not (or
/// reads differently), to be told once at start.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Ignored keys and warnings, each with its path.
    pub notes: Vec<Note>,
}

/// What the command line sets over the file (`serve --port`, or
/// `OPENCLAW_GATEWAY_PORT` as OpenClaw reads it).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// The port.
    pub port: Option<u16>,
    /// `hearth.dataDir`.
    pub data_dir: Option<PathBuf>,
}

/// Reads the configuration file at `path` through `sources`.
pub fn load(path: &Path, sources: &dyn Sources, overrides: &Overrides) -> Result<Loaded, Problems> {
    let text = sources.read(path).map_err(|error| {
        Problems(vec![Problem::new(
            &path.display().to_string(),
            format!("cannot read: {error}"),
        )])
    })?;
    parse(&text, path, sources, overrides)
}

/// Reads configuration `text` (the file at `path`, whose folder bounds its
/// `$include`s) through `sources`.
pub fn parse(
    text: &str,
    path: &Path,
    sources: &dyn Sources,
    overrides: &Overrides,
) -> Result<Loaded, Problems> {
    let document = source::read(text, path, sources).map_err(Problems)?;
    openclaw::read(document, sources, overrides).map_err(Problems)
}

/// Only the environment (as `lookup`), no files: for tests and fuzzing.
struct Lookup<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Sources for Lookup<'_> {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} (no files here)", path.display()),
        ))
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }
}

impl Config {
    /// Reads `text` with variables from `lookup` and no further files.
    pub fn parse_with(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, Problems> {
        parse(
            text,
            Path::new("openclaw.json"),
            &Lookup(lookup),
            &Overrides::default(),
        )
    }

    /// Where the bearer secret comes from, the data directory's default
    /// file made concrete.
    pub fn token_source(&self) -> TokenSource {
        match &self.gateway.auth.secret {
            TokenSource::DataDir => TokenSource::File(self.hearth.data_dir.join("gateway.token")),
            other => other.clone(),
        }
    }

    /// The default model chain, primary first.
    pub fn chain(&self) -> Vec<String> {
        self.agents.defaults.model.list()
    }

    /// The models a reply may fail over along: the default chain, then the
    /// agents' own models (so that a request for an agent can start with
    /// its model and fall back along the chain).
    pub fn failover_chain(&self) -> Vec<String> {
        let mut names = self.chain();
        for entry in self.agents.entries.values() {
            for name in entry.model.iter().flat_map(ModelChain::list) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Every chat model callers can name: the failover chain, then every
    /// other model the providers list (askable by name, never a fallback
    /// for another), leaving out the assistant's embedding model.
    pub fn chat_models(&self) -> Vec<String> {
        let mut names = self.failover_chain();
        for (provider, section) in &self.models.providers {
            for model in &section.models {
                let name = format!("{provider}/{}", model.id);
                if self.assistant.embeddings.as_deref() != Some(name.as_str())
                    && !names.contains(&name)
                {
                    names.push(name);
                }
            }
        }
        names
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
mod fake;
#[cfg(test)]
mod tests;
