//! OpenClaw's configuration document read into [`Config`]: each key Hearth
//! implements with OpenClaw's meaning, each it does not noted with why,
//! every problem kept with its path. Pure: secrets named by reference are
//! read through [`Sources`].

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::read::{Reader, child};
use super::source::Document;
use super::{
    AgentEntry, Bind, Config, DEFAULT_CONTEXT, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT, GatewayMode,
    HearthSection, Loaded, ModelChain, ModelSection, Overrides, ProviderSection, Sources,
    TokenSource, ignored,
};
use crate::config::BaseUrls;

/// Characters below which a shared secret is easy to guess.
pub const MIN_SECRET: usize = 16;

/// What the whole document says, or every problem in it.
pub fn read(
    document: Document,
    sources: &dyn Sources,
    overrides: &Overrides,
) -> Result<Loaded, Vec<super::Problem>> {
    let mut reader = Reader::default();
    let Value::Object(root) = &document.value else {
        reader.problem("", "the configuration must be an object");
        return Err(reader.problems);
    };
    let context = Context {
        sources,
        unresolved: &document.unresolved,
        secrets: root
            .get("secrets")
            .and_then(|secrets| secrets.get("providers"))
            .and_then(Value::as_object),
    };
    for (path, name) in &document.unresolved {
        reader.note(
            path,
            format!("warning: ${{{name}}} is not set, so the text stays as written"),
        );
    }
    let mut config = Config::default();
    let mut memory_section = MemorySection::default();
    if sources.var("OPENCLAW_SKIP_CRON").as_deref() == Some("1") {
        config.assistant.cron_enabled = false;
    }
    for (key, value) in root {
        match key.as_str() {
            "gateway" => gateway(&mut reader, &context, value, &mut config),
            "models" => models(&mut reader, &context, value, &mut config),
            "agents" => agents(&mut reader, &context, value, &mut config),
            "hearth" => hearth(&mut reader, value, &mut config),
            "memory" => memory(&mut reader, context.sources, value, &mut memory_section),
            "cron" => cron(&mut reader, value, &mut config),
            "env" => {
                if let Some(env) = reader.object(Some(value), "env") {
                    for key in env.keys().filter(|key| *key == "shellEnv") {
                        reader.note(
                            &child("env", key),
                            "ignored: Hearth reads no login shell's environment",
                        );
                    }
                }
            }
            "secrets" => {
                if let Some(secrets) = reader.object(Some(value), "secrets") {
                    reader.rest(secrets, "secrets", &["providers"], |_| {
                        "ignored: Hearth reads secrets from the environment and files only".into()
                    });
                }
            }
            other if ignored::known_section(other) => {
                let why = ignored::reason(other);
                reader.note(other, why);
            }
            other => reader.problem(
                other,
                "not a section of OpenClaw's configuration, nor Hearth's own (`hearth`)",
            ),
        }
    }
    usable_chains(&mut reader, &mut config);
    assistant(&mut reader, memory_section, &mut config);
    reachable_models(&mut reader, &config);
    if let Some(port) = overrides.port {
        config.gateway.port = port;
    }
    if let Some(data_dir) = &overrides.data_dir {
        config.hearth.data_dir = data_dir.clone();
    }
    if reader.problems.is_empty() {
        Ok(Loaded {
            config,
            notes: reader.notes,
        })
    } else {
        Err(reader.problems)
    }
}

/// What reading a value may need besides the value.
struct Context<'a> {
    sources: &'a dyn Sources,
    unresolved: &'a [(String, String)],
    secrets: Option<&'a Map<String, Value>>,
}

impl Context<'_> {
    /// A secret: a string, or a SecretRef (`{source: "env"|"file", provider,
    /// id}`). `None`, with a warning, when it cannot be had here.
    fn secret(&self, reader: &mut Reader, value: Option<&Value>, path: &str) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                if self.unresolved.iter().any(|(at, _)| at == path) {
                    reader.note(path, "warning: not used, since a variable in it is not set");
                    return None;
                }
                let text = text.trim();
                (!text.is_empty()).then(|| text.to_owned())
            }
            Some(Value::Object(reference)) => self.reference(reader, reference, path),
            Some(_) => {
                reader.problem(
                    path,
                    "must be a string or a SecretRef ({source, provider, id})",
                );
                None
            }
        }
    }

    fn reference(
        &self,
        reader: &mut Reader,
        reference: &Map<String, Value>,
        path: &str,
    ) -> Option<String> {
        let source = reader.string(reference.get("source"), &child(path, "source"));
        let provider = reader.string(reference.get("provider"), &child(path, "provider"));
        let id = reader.string(reference.get("id"), &child(path, "id"));
        let (Some(source), Some(id)) = (source, id) else {
            reader.problem(path, "a SecretRef needs `source`, `provider` and `id`");
            return None;
        };
        let found = match source.as_str() {
            "env" => self
                .sources
                .var(&id)
                .filter(|value| !value.trim().is_empty()),
            "file" => match self.file_secret(provider.as_deref().unwrap_or("default"), &id) {
                Ok(found) => Some(found),
                Err(why) => {
                    reader.note(path, format!("warning: not used: {why}"));
                    return None;
                }
            },
            "exec" | "store" => {
                reader.note(
                    path,
                    format!(
                        "warning: not used: Hearth reads secrets from the environment and files, \
                         not from {source:?} providers"
                    ),
                );
                return None;
            }
            other => {
                reader.problem(
                    &child(path, "source"),
                    format!("{other:?} is not \"env\", \"file\", \"exec\" or \"store\""),
                );
                return None;
            }
        };
        if found.is_none() {
            reader.note(path, format!("warning: not used: ${id} is not set"));
        }
        found.map(|value| value.trim().to_owned())
    }

    /// The value `id` names in the file provider `provider` (`mode:
    /// "singleValue"`: the whole file; else the JSON pointer `id`).
    fn file_secret(&self, provider: &str, id: &str) -> Result<String, NoSecret> {
        let entry = self
            .secrets
            .and_then(|providers| providers.get(provider))
            .ok_or_else(|| NoSecret::Provider(provider.to_owned()))?;
        let path = entry
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| NoSecret::NoPath(provider.to_owned()))?;
        let path = home(path, self.sources);
        let shown = path.display().to_string();
        let text = self
            .sources
            .read(&path)
            .map_err(|error| NoSecret::Unreadable {
                path: shown.clone(),
                error: error.to_string(),
            })?;
        if entry.get("mode").and_then(Value::as_str) == Some("singleValue") {
            return Ok(text.trim().to_owned());
        }
        let document: Value = serde_json::from_str(&text).map_err(|error| NoSecret::NotJson {
            path: shown.clone(),
            error: error.to_string(),
        })?;
        document
            .pointer(id)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| NoSecret::NoString {
                path: shown,
                id: id.to_owned(),
            })
    }
}

/// Why a file provider's secret could not be had.
#[derive(Debug, thiserror::Error)]
enum NoSecret {
    /// No such provider.
    #[error("secrets.providers.{0} is not configured")]
    Provider(String),
    /// The provider names no file.
    #[error("secrets.providers.{0} has no path")]
    NoPath(String),
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The file is not JSON (and not `singleValue`).
    #[error("{path} is not JSON: {error}")]
    NotJson {
        /// The file.
        path: String,
        /// The parser's words.
        error: String,
    },
    /// Nothing at the pointer.
    #[error("{path} has no string at {id}")]
    NoString {
        /// The file.
        path: String,
        /// The JSON pointer.
        id: String,
    },
}

/// `~/…` under `$HOME`, as OpenClaw reads paths.
fn home(path: &str, sources: &dyn Sources) -> PathBuf {
    match (path.strip_prefix("~/"), sources.var("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn gateway(reader: &mut Reader, context: &Context<'_>, value: &Value, config: &mut Config) {
    let Some(map) = reader.object(Some(value), "gateway") else {
        return;
    };
    let section = &mut config.gateway;
    if let Some(port) = reader.integer(map.get("port"), "gateway.port", 1, 65535) {
        section.port = port as u16;
    }
    match reader.string(map.get("mode"), "gateway.mode").as_deref() {
        None | Some("local") => {}
        Some("remote") => section.mode = GatewayMode::Remote,
        Some(other) => reader.problem(
            "gateway.mode",
            format!("{other:?} is not \"local\" or \"remote\""),
        ),
    }
    let custom = reader.string(map.get("customBindHost"), "gateway.customBindHost");
    if let Some(bind) = reader.string(map.get("bind"), "gateway.bind") {
        section.bind = match bind.as_str() {
            "loopback" => Bind::Loopback,
            "auto" => {
                reader.note(
                    "gateway.bind",
                    "\"auto\" binds loopback here, in a container too: use \"lan\" to listen on every interface",
                );
                Bind::Loopback
            }
            "lan" => Bind::Lan,
            "tailnet" => Bind::Tailnet,
            "custom" => match custom.as_deref().map(str::trim).map(str::parse::<IpAddr>) {
                Some(Ok(address)) => Bind::Address(address),
                _ => {
                    reader.note(
                        "gateway.customBindHost",
                        "warning: \"custom\" needs an IP address here; binding loopback instead of every interface",
                    );
                    Bind::Loopback
                }
            },
            literal => match literal.parse::<IpAddr>() {
                Ok(address) => Bind::Address(address),
                Err(_) => {
                    reader.problem(
                        "gateway.bind",
                        format!(
                            "{literal:?} is not auto, lan, loopback, custom, tailnet or an IP address"
                        ),
                    );
                    Bind::Loopback
                }
            },
        };
    }
    auth(reader, context, map.get("auth"), config);
    let section = &mut config.gateway;
    if let Some(http) = reader.object(map.get("http"), "gateway.http") {
        if let Some(endpoints) = reader.object(http.get("endpoints"), "gateway.http.endpoints") {
            for (key, flag) in [
                ("chatCompletions", &mut section.http.chat_completions),
                ("responses", &mut section.http.responses),
            ] {
                let at = format!("gateway.http.endpoints.{key}");
                if let Some(endpoint) = reader.object(endpoints.get(key), &at) {
                    if let Some(enabled) =
                        reader.boolean(endpoint.get("enabled"), &child(&at, "enabled"))
                    {
                        *flag = enabled;
                    }
                    reader.rest(endpoint, &at, &["enabled"], ignored::reason);
                }
            }
            reader.rest(
                endpoints,
                "gateway.http.endpoints",
                &["chatCompletions", "responses"],
                ignored::reason,
            );
        }
        reader.rest(http, "gateway.http", &["endpoints"], ignored::reason);
    }
    reader.rest(
        map,
        "gateway",
        &["port", "mode", "bind", "customBindHost", "auth", "http"],
        ignored::reason,
    );
}

fn auth(reader: &mut Reader, context: &Context<'_>, value: Option<&Value>, config: &mut Config) {
    let map = reader.object(value, "gateway.auth");
    let empty = Map::new();
    let map = map.unwrap_or(&empty);
    let mode = reader.string(map.get("mode"), "gateway.auth.mode");
    let token = context.secret(reader, map.get("token"), "gateway.auth.token");
    let password = context.secret(reader, map.get("password"), "gateway.auth.password");
    let token_file = reader
        .string(map.get("tokenFile"), "gateway.auth.tokenFile")
        .map(|path| home(&path, context.sources));
    let from_env = |name: &str| {
        context
            .sources
            .var(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let given = |secret: Option<String>, variable: &str| {
        secret
            .or_else(|| from_env(variable))
            .map(TokenSource::Given)
    };
    let file_or_default = || {
        token_file
            .clone()
            .map_or(TokenSource::DataDir, TokenSource::File)
    };
    let secret = match mode.as_deref() {
        Some("none") => TokenSource::Off,
        Some("password") => {
            given(password, "OPENCLAW_GATEWAY_PASSWORD").unwrap_or_else(file_or_default)
        }
        Some("token") => given(token, "OPENCLAW_GATEWAY_TOKEN").unwrap_or_else(file_or_default),
        None => token
            .map(TokenSource::Given)
            .or_else(|| password.map(TokenSource::Given))
            .or_else(|| token_file.clone().map(TokenSource::File))
            .or_else(|| given(None, "OPENCLAW_GATEWAY_TOKEN"))
            .unwrap_or(TokenSource::DataDir),
        Some("trusted-proxy") => {
            reader.note(
                "gateway.auth.mode",
                "\"trusted-proxy\": Hearth trusts no proxy's headers; callers present the gateway's token instead",
            );
            file_or_default()
        }
        Some(other) => {
            reader.problem(
                "gateway.auth.mode",
                format!("{other:?} is not \"none\", \"token\", \"password\" or \"trusted-proxy\""),
            );
            TokenSource::DataDir
        }
    };
    if let TokenSource::Given(text) = &secret
        && text.chars().count() < MIN_SECRET
    {
        reader.note(
            "gateway.auth",
            format!(
                "warning: the shared secret has fewer than {MIN_SECRET} characters and is easy to guess; \
                 beyond loopback the gateway wants the token in its data directory instead"
            ),
        );
    }
    config.gateway.auth.secret = secret;
    reader.rest(
        map,
        "gateway.auth",
        &["mode", "token", "password", "tokenFile"],
        ignored::reason,
    );
}

fn models(reader: &mut Reader, context: &Context<'_>, value: &Value, config: &mut Config) {
    let Some(map) = reader.object(Some(value), "models") else {
        return;
    };
    if let Some(providers) = reader.object(map.get("providers"), "models.providers") {
        for (id, value) in providers {
            let path = child("models.providers", id);
            if let Some(provider) = reader.object(Some(value), &path)
                && let Some(section) = provider_section(reader, context, provider, &path)
            {
                config.models.providers.insert(id.clone(), section);
            }
        }
    }
    reader.rest(map, "models", &["providers"], ignored::reason);
}

/// A provider's `api` Hearth does not speak.
#[derive(Debug, thiserror::Error)]
#[error(
    "ignored: Hearth does not speak {0:?} (it speaks openai-completions, openai-responses as completions, ollama and hearth-enclave)"
)]
struct UnknownApi(String);

/// How Hearth speaks a provider's `api`, or why it cannot.
fn api(name: &str) -> Result<(hearth_llm::Api, Option<&'static str>), UnknownApi> {
    use hearth_llm::Api;
    match name {
        "openai-completions" => Ok((Api::OpenAiCompletions, None)),
        "ollama" => Ok((Api::Ollama, None)),
        "hearth-enclave" => Ok((Api::HearthEnclave, None)),
        "openai-responses" | "azure-openai-responses" | "openai-chatgpt-responses" => Ok((
            Api::OpenAiCompletions,
            Some(
                "spoken to with chat completions (`/chat/completions`), which llama.cpp, vLLM and Ollama serve too",
            ),
        )),
        other => Err(UnknownApi(other.to_owned())),
    }
}

/// Why Hearth cannot reach `url` with `api`, if it cannot. A
/// `hearth-enclave` provider may name its config server through an OHTTP
/// relay (`ohttp+http://…`); the address after the prefix must be reachable.
fn unreachable(api: hearth_llm::Api, url: &str) -> Option<String> {
    let url = match url.strip_prefix(crate::remote::OBLIVIOUS_PREFIX) {
        Some(inner) if api == hearth_llm::Api::HearthEnclave => inner,
        Some(_) => {
            return Some(format!(
                "{url:?}: only a hearth-enclave provider is reached through an OHTTP relay"
            ));
        }
        None => url,
    };
    if let Some(path) = url.strip_prefix("unix:") {
        return path
            .trim_start_matches('/')
            .is_empty()
            .then(|| format!("{url:?} names no socket"));
    }
    if url.starts_with("https://") {
        return Some(format!(
            "{url:?} is https: Hearth reaches models on this machine, over the mesh (which encrypts) or a UNIX socket; \
             use http:// with the mesh address"
        ));
    }
    match url
        .strip_prefix("http://")
        .map(|_| reqwest::Url::parse(url))
    {
        Some(Ok(parsed)) if parsed.host_str().is_some() => None,
        _ => Some(format!("{url:?} is not an http:// or unix: address")),
    }
}

fn provider_section(
    reader: &mut Reader,
    context: &Context<'_>,
    provider: &Map<String, Value>,
    path: &str,
) -> Option<ProviderSection> {
    let urls = match provider.get("baseUrl") {
        None | Some(Value::Null) => {
            reader.note(
                path,
                "ignored: no baseUrl, so a hosted provider; Hearth reaches only model servers the household runs",
            );
            return None;
        }
        Some(Value::String(url)) => vec![url.clone()],
        Some(Value::Array(_)) => reader.strings(provider.get("baseUrl"), &child(path, "baseUrl")),
        Some(_) => {
            reader.problem(&child(path, "baseUrl"), "must be a URL or a list of them");
            return None;
        }
    };
    let api_name = reader
        .string(provider.get("api"), &child(path, "api"))
        .unwrap_or_else(|| "openai-completions".into());
    let (api, remark) = match api(&api_name) {
        Ok(found) => found,
        Err(why) => {
            reader.note(path, why.to_string());
            return None;
        }
    };
    if let Some(remark) = remark {
        reader.note(&child(path, "api"), remark);
    }
    if urls.is_empty() {
        reader.problem(&child(path, "baseUrl"), "names no URL");
        return None;
    }
    if let Some(why) = urls.iter().find_map(|url| unreachable(api, url)) {
        reader.note(path, format!("ignored: {why}"));
        return None;
    }
    let timeout_seconds = reader
        .integer(
            provider.get("timeoutSeconds"),
            &child(path, "timeoutSeconds"),
            1,
            86_400,
        )
        .unwrap_or(DEFAULT_TIMEOUT);
    if provider.contains_key("timeoutSeconds") {
        reader.note(
            &child(path, "timeoutSeconds"),
            "OpenClaw limits the whole request; Hearth limits the wait for the first token and between tokens",
        );
    }
    let api_key = context.secret(reader, provider.get("apiKey"), &child(path, "apiKey"));
    let attestation_policy = reader
        .string(
            provider.get("attestationPolicy"),
            &child(path, "attestationPolicy"),
        )
        .map(PathBuf::from);
    let enclave = api == hearth_llm::Api::HearthEnclave;
    if enclave != attestation_policy.is_some() {
        reader.problem(
            &child(path, "attestationPolicy"),
            if enclave {
                "a hearth-enclave provider needs the attestation policy its nodes must pass"
            } else {
                "only a hearth-enclave provider takes an attestation policy"
            },
        );
    }
    let mut models = Vec::new();
    match provider.get("models") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let at = format!("{path}.models[{index}]");
                if let Some(entry) = reader.object(Some(item), &at)
                    && let Some(model) = model_section(reader, entry, &at)
                {
                    models.push(model);
                }
            }
        }
        Some(_) => reader.problem(&child(path, "models"), "must be a list of models"),
    }
    reader.rest(
        provider,
        path,
        &[
            "baseUrl",
            "api",
            "timeoutSeconds",
            "apiKey",
            "models",
            "attestationPolicy",
        ],
        ignored::reason,
    );
    Some(ProviderSection {
        base_url: BaseUrls(urls),
        api,
        timeout_seconds,
        api_key,
        models,
        attestation_policy,
    })
}

fn model_section(
    reader: &mut Reader,
    entry: &Map<String, Value>,
    path: &str,
) -> Option<ModelSection> {
    let Some(id) = reader.string(entry.get("id"), &child(path, "id")) else {
        reader.problem(&child(path, "id"), "a model needs its id");
        return None;
    };
    let name = reader.string(entry.get("name"), &child(path, "name"));
    let window = reader.integer(
        entry.get("contextWindow"),
        &child(path, "contextWindow"),
        1,
        u64::from(u32::MAX),
    );
    let tokens = reader.integer(
        entry.get("contextTokens"),
        &child(path, "contextTokens"),
        1,
        u64::from(u32::MAX),
    );
    let context_window = match (window, tokens) {
        (Some(window), Some(tokens)) => window.min(tokens),
        (window, tokens) => window.or(tokens).unwrap_or(u64::from(DEFAULT_CONTEXT)),
    } as u32;
    let max_tokens = reader
        .integer(
            entry.get("maxTokens"),
            &child(path, "maxTokens"),
            1,
            u64::from(u32::MAX),
        )
        .map_or(DEFAULT_MAX_TOKENS, |tokens| tokens as u32);
    reader.rest(
        entry,
        path,
        &["id", "name", "contextWindow", "contextTokens", "maxTokens"],
        ignored::reason,
    );
    Some(ModelSection {
        id,
        name,
        context_window,
        max_tokens,
    })
}

/// `model`: `"provider/model"` or `{ primary, fallbacks }`.
fn chain(reader: &mut Reader, value: Option<&Value>, path: &str) -> Option<ModelChain> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(model)) => Some(ModelChain {
            primary: Some(model.clone()),
            fallbacks: Vec::new(),
        }),
        Some(Value::Object(map)) => {
            let primary = reader.string(map.get("primary"), &child(path, "primary"));
            let fallbacks = reader.strings(map.get("fallbacks"), &child(path, "fallbacks"));
            reader.rest(map, path, &["primary", "fallbacks"], ignored::reason);
            Some(ModelChain { primary, fallbacks })
        }
        Some(_) => {
            reader.problem(path, "must be \"provider/model\" or { primary, fallbacks }");
            None
        }
    }
}

fn agents(reader: &mut Reader, context: &Context<'_>, value: &Value, config: &mut Config) {
    let Some(map) = reader.object(Some(value), "agents") else {
        return;
    };
    if let Some(defaults) = reader.object(map.get("defaults"), "agents.defaults") {
        if let Some(model) = chain(reader, defaults.get("model"), "agents.defaults.model") {
            config.agents.defaults.model = model;
        }
        config.agents.defaults.workspace = reader
            .string(defaults.get("workspace"), "agents.defaults.workspace")
            .map(|path| home(&path, context.sources));
        config.agents.defaults.user_timezone =
            reader.string(defaults.get("userTimezone"), "agents.defaults.userTimezone");
        reader.rest(
            defaults,
            "agents.defaults",
            &["model", "workspace", "userTimezone"],
            ignored::reason,
        );
    }
    if let Some(entries) = reader.object(map.get("entries"), "agents.entries") {
        for (id, value) in entries {
            let path = child("agents.entries", id);
            if !agent_id(id) {
                reader.problem(
                    &path,
                    "an agent id is 1-64 of a-z, 0-9, _ and -, not starting with -",
                );
                continue;
            }
            let Some(entry) = reader.object(Some(value), &path) else {
                continue;
            };
            let agent = AgentEntry {
                name: reader.string(entry.get("name"), &child(&path, "name")),
                workspace: reader
                    .string(entry.get("workspace"), &child(&path, "workspace"))
                    .map(|path| home(&path, context.sources)),
                model: chain(reader, entry.get("model"), &child(&path, "model")),
                default: reader
                    .boolean(entry.get("default"), &child(&path, "default"))
                    .unwrap_or(false),
            };
            reader.rest(
                entry,
                &path,
                &["name", "workspace", "model", "default"],
                ignored::reason,
            );
            config.agents.entries.insert(id.clone(), agent);
        }
    }
    reader.rest(map, "agents", &["defaults", "entries"], ignored::reason);
}

/// OpenClaw's agent ids: `^[a-z0-9_][a-z0-9_-]{0,63}$`.
pub fn agent_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit() || first == '_')
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Drops from every chain the models of providers Hearth does not reach
/// (each noted); with no default model left, takes the first model of the
/// first provider configured.
fn usable_chains(reader: &mut Reader, config: &mut Config) {
    let providers = &config.models.providers;
    // With model servers on the mesh, any other provider is a device's
    // name (or the pool's): asked while it is there.
    let on_mesh = config.hearth.model_servers.is_some();
    let mut keep = |chain: &mut ModelChain, path: &str| {
        let mut kept = Vec::new();
        for model in chain.list() {
            match model.split_once('/') {
                Some((provider, name)) if providers.contains_key(provider) && !name.is_empty() => {
                    kept.push(model);
                }
                Some((provider, name)) if on_mesh && !provider.is_empty() && !name.is_empty() => {
                    reader.note(
                        path,
                        format!("{model:?}: asked of the mesh's model server {provider:?} while it is there"),
                    );
                    kept.push(model);
                }
                Some((provider, _)) if !provider.is_empty() => reader.note(
                    path,
                    format!(
                        "{model:?} skipped: provider {provider:?} is not one Hearth reaches here"
                    ),
                ),
                _ => reader.note(
                    path,
                    format!("{model:?} skipped: Hearth names models as \"provider/model\""),
                ),
            }
        }
        let mut kept = kept.into_iter();
        *chain = ModelChain {
            primary: kept.next(),
            fallbacks: kept.collect(),
        };
    };
    keep(&mut config.agents.defaults.model, "agents.defaults.model");
    for (id, entry) in &mut config.agents.entries {
        if let Some(model) = &mut entry.model {
            keep(model, &format!("agents.entries.{id}.model"));
            if model.primary.is_none() {
                entry.model = None;
            }
        }
    }
    if config.agents.defaults.model.primary.is_none() {
        let first = providers.iter().find_map(|(id, provider)| {
            provider
                .models
                .first()
                .map(|model| format!("{id}/{}", model.id))
        });
        match first {
            Some(model) => {
                reader.note(
                    "agents.defaults.model",
                    format!("no model Hearth reaches is chosen: using {model:?}, the first configured"),
                );
                config.agents.defaults.model.primary = Some(model);
            }
            None => reader.note(
                "models.providers",
                "warning: no model Hearth can reach is configured: the gateway starts, and answers that no model is available",
            ),
        }
    }
}

/// Warns about a chosen model no caller would get an answer from as the
/// configuration means: the embedding model named for chat (asking it to
/// chat is refused), or one its provider does not list (asked under that
/// id anyway, with the default context).
fn reachable_models(reader: &mut Reader, config: &Config) {
    let mut chains = vec![(
        "agents.defaults.model".to_owned(),
        &config.agents.defaults.model,
    )];
    for (id, entry) in &config.agents.entries {
        if let Some(model) = &entry.model {
            chains.push((format!("agents.entries.{id}.model"), model));
        }
    }
    for (path, chain) in chains {
        for model in chain.list() {
            if config.assistant.embeddings.as_deref() == Some(model.as_str()) {
                reader.note(
                    &path,
                    format!("warning: {model:?} is memory.search's embedding model: chat asked of it is refused, so no one can reach it here"),
                );
            } else if let Some((provider, name)) = model.split_once('/')
                && config.models.providers.contains_key(provider)
                && config.model(provider, name).is_none()
            {
                reader.note(
                    &path,
                    format!("warning: {model:?} is not one of models.providers.{provider}.models: it is asked under that id, with a context of {DEFAULT_CONTEXT} tokens"),
                );
            }
        }
    }
}

fn speech_problems(reader: &mut Reader, speech: &super::SpeechSection) {
    if hearth_speech::whisper::Place::of(&speech.url).is_none() {
        reader.problem(
            "hearth.speech.url",
            format!(
                "{:?} is not an http:// URL of whisper.cpp's server (\"http://127.0.0.1:8178\") nor its socket (\"unix:/run/hearth-inference/speech.sock\")",
                speech.url
            ),
        );
    }
    if speech.model.is_empty() || speech.model.contains('/') || speech.model.len() > 100 {
        reader.problem(
            "hearth.speech.model",
            "a name of 1 to 100 characters without '/' (it is listed as speech/<model>)",
        );
    }
    if !(1..=3600).contains(&speech.max_seconds) {
        reader.problem("hearth.speech.maxSeconds", "from 1 to 3600 seconds");
    }
    if !(1..=100).contains(&speech.max_megabytes) {
        reader.problem("hearth.speech.maxMegabytes", "from 1 to 100 megabytes");
    }
}

fn hearth(reader: &mut Reader, value: &Value, config: &mut Config) {
    match serde_path_to_error::deserialize::<_, HearthSection>(value.clone()) {
        Ok(section) => {
            if let Some(servers) = &section.model_servers {
                if !servers.tag.starts_with("tag:") || servers.tag.len() < 5 {
                    reader.problem(
                        "hearth.modelServers",
                        format!(
                            "{:?} is not a tag: write it as the policy does, \"tag:models\"",
                            servers.tag
                        ),
                    );
                }
                if servers.ports.is_empty() {
                    reader.problem("hearth.modelServers.ports", "names no port to ask");
                }
                for (device, mac) in &servers.wake {
                    if let Err(why) = crate::model_servers::parse_mac(mac) {
                        reader.problem(
                            &format!("hearth.modelServers.wake.{device}"),
                            why.to_string(),
                        );
                    }
                }
                if section.agent_socket.is_none() {
                    reader.problem(
                        "hearth.modelServers",
                        "model servers are found through this node's agent: set hearth.agentSocket",
                    );
                }
            }
            if let Some(speech) = &section.speech {
                speech_problems(reader, speech);
            }
            config.hearth = section;
        }
        Err(error) => {
            let inner = error.path().to_string();
            let path = if inner == "." {
                "hearth".to_owned()
            } else {
                format!("hearth.{inner}")
            };
            reader.problem(&path, error.inner().to_string());
        }
    }
}

/// What `memory` says, kept until the providers are known.
#[derive(Default)]
struct MemorySection {
    /// `memory.search.provider` and `model`.
    provider: Option<(String, Option<String>)>,
    /// `memory.search.enabled: false`.
    search_off: bool,
    /// `memory.search.query.maxResults`.
    max_results: Option<u64>,
    /// `memory.search.query.minScore`.
    min_score: Option<f64>,
    /// `memory.search.extraPaths`.
    extra_paths: Vec<PathBuf>,
    /// `memory.citations`.
    citations: Option<super::Citations>,
}

/// OpenClaw's `memory`: the search provider and model, how many results
/// and how good, extra folders, citations. Hosted embedding services are
/// not used: the provider must be one of `models.providers`.
fn memory(reader: &mut Reader, sources: &dyn Sources, value: &Value, section: &mut MemorySection) {
    let Some(map) = reader.object(Some(value), "memory") else {
        return;
    };
    let unused = |_: &str| "ignored: a memory setting Hearth's assistant does not use".to_owned();
    if let Some(search) = reader.object(map.get("search"), "memory.search") {
        if reader.boolean(search.get("enabled"), "memory.search.enabled") == Some(false) {
            section.search_off = true;
        }
        if let Some(provider) = reader.string(search.get("provider"), "memory.search.provider") {
            let model = reader.string(search.get("model"), "memory.search.model");
            section.provider = Some((provider, model));
        }
        if let Some(query) = reader.object(search.get("query"), "memory.search.query") {
            // OpenClaw's values are noted when Hearth cannot use them, never fatal.
            match query.get("maxResults").map(Value::as_u64) {
                Some(Some(most)) if (1..=20).contains(&most) => section.max_results = Some(most),
                Some(Some(_)) => {
                    section.max_results = Some(20);
                    reader.note(
                        "memory.search.query.maxResults",
                        "Hearth's assistant gives at most 20 results",
                    );
                }
                Some(None) => reader.note(
                    "memory.search.query.maxResults",
                    "ignored: not a whole number; 6 results",
                ),
                None => {}
            }
            match query.get("minScore").map(Value::as_f64) {
                Some(Some(score)) if (0.0..=1.0).contains(&score) => {
                    section.min_score = Some(score);
                }
                Some(_) => reader.note(
                    "memory.search.query.minScore",
                    "ignored: a score is from 0 to 1; 0.35",
                ),
                None => {}
            }
            reader.rest(
                query,
                "memory.search.query",
                &["maxResults", "minScore"],
                unused,
            );
        }
        match search.get("extraPaths") {
            None | Some(Value::Null) => {}
            Some(Value::Array(paths)) => {
                for (index, entry) in paths.iter().enumerate() {
                    let at = format!("memory.search.extraPaths[{index}]");
                    let path = match entry {
                        Value::String(path) => Some(path.clone()),
                        Value::Object(object) => {
                            if object.contains_key("pattern") {
                                reader.note(
                                    &child(&at, "pattern"),
                                    "ignored: the whole folder is indexed",
                                );
                            }
                            reader.string(object.get("path"), &child(&at, "path"))
                        }
                        _ => {
                            reader.problem(&at, "must be a path or {path, pattern}");
                            None
                        }
                    };
                    if let Some(path) = path {
                        section.extra_paths.push(home(&path, sources));
                    }
                }
            }
            Some(_) => reader.problem("memory.search.extraPaths", "must be a list"),
        }
        reader.rest(
            search,
            "memory.search",
            &["enabled", "provider", "model", "query", "extraPaths"],
            unused,
        );
    }
    if let Some(citations) = map.get("citations") {
        section.citations = match citations.as_str() {
            Some("auto") => Some(super::Citations::Auto),
            Some("on") => Some(super::Citations::On),
            Some("off") => Some(super::Citations::Off),
            _ => {
                reader.note(
                    "memory.citations",
                    "ignored: Hearth knows \"auto\", \"on\" and \"off\"; sources are named",
                );
                None
            }
        };
    }
    reader.rest(map, "memory", &["search", "citations"], unused);
}

/// OpenClaw's `cron`: whether scheduled jobs run, and whether recurring
/// ones skip what they missed while the gateway was down.
fn cron(reader: &mut Reader, value: &Value, config: &mut Config) {
    let Some(map) = reader.object(Some(value), "cron") else {
        return;
    };
    if reader.boolean(map.get("enabled"), "cron.enabled") == Some(false) {
        config.assistant.cron_enabled = false;
    }
    if let Some(skip) = reader.boolean(map.get("skipMissedJobs"), "cron.skipMissedJobs") {
        config.assistant.skip_missed = skip;
    }
    reader.rest(map, "cron", &["enabled", "skipMissedJobs"], |path| {
        if path.starts_with("cron.webhook") {
            "ignored: Hearth's scheduled jobs post to the household's rooms, never to a webhook"
                .into()
        } else if path.starts_with("cron.triggers") {
            "ignored: Hearth's scheduled jobs run no commands".into()
        } else {
            "ignored: a scheduler setting Hearth's assistant does not use".into()
        }
    });
}

/// The assistant's settings, once every section is read: `hearth.assistant`
/// over OpenClaw's keys (which are noted, never fatal, when Hearth cannot
/// use them); the embedding provider must be one of `models.providers`.
fn assistant(reader: &mut Reader, memory: MemorySection, config: &mut Config) {
    let own = config.hearth.assistant.clone();
    let section = &mut config.assistant;
    section.enabled = own.enabled;
    section.tools = own.tools;
    section.encryption_key_file = own.encryption_key_file;
    section.rescan_seconds = own.rescan_seconds.max(1);
    section.language = own
        .language
        .as_deref()
        .map(hearth_assistant::language::Language::from_tag)
        .unwrap_or_default();
    if let Some(most) = memory.max_results {
        section.max_results = usize::try_from(most).unwrap_or(50);
    }
    if let Some(score) = memory.min_score {
        section.min_score = score as f32;
    }
    if let Some(citations) = memory.citations {
        section.citations = citations;
    }
    match (&own.timezone, &config.agents.defaults.user_timezone) {
        (Some(zone), _) => match hearth_assistant::schedule::zone(zone) {
            Ok(_) => section.timezone = zone.clone(),
            Err(error) => reader.problem("hearth.assistant.timezone", error.to_string()),
        },
        // OpenClaw's key: noted, never fatal.
        (None, Some(zone)) => match hearth_assistant::schedule::zone(zone) {
            Ok(_) => section.timezone = zone.clone(),
            Err(error) => reader.note(
                "agents.defaults.userTimezone",
                format!("ignored: {error}; reminders use UTC"),
            ),
        },
        (None, None) => {}
    }
    if let Some((provider, model)) = memory.provider
        && !memory.search_off
    {
        match (config.models.providers.get(&provider), model) {
            (Some(_), Some(model)) => section.embeddings = Some(format!("{provider}/{model}")),
            (Some(_), None) => reader.note(
                "memory.search.provider",
                "ignored without memory.search.model (the embedding model it serves): search is by keywords",
            ),
            (None, _) => reader.note(
                "memory.search.provider",
                format!(
                    "ignored: {provider:?} is not one of models.providers; Hearth uses no hosted embedding service, so search is by keywords"
                ),
            ),
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (index, folder) in own.documents.iter().enumerate() {
        let at = format!("hearth.assistant.documents[{index}]");
        let limits = usize::from(folder.room.is_some())
            + usize::from(folder.member.is_some())
            + usize::from(folder.granted);
        if limits > 1 {
            reader.problem(&at, "give at most one of room, member and granted");
        }
        if folder.name.trim().is_empty() || !names.insert(folder.name.clone()) {
            reader.problem(&child(&at, "name"), "each folder needs a name of its own");
        }
        if folder
            .name
            .starts_with(hearth_assistant::scope::SHARED_PREFIX)
        {
            reader.problem(
                &child(&at, "name"),
                "names starting with \"shared:\" are the documents members share with the assistant",
            );
        }
    }
    section.folders = own.documents;
    for (index, path) in memory.extra_paths.into_iter().enumerate() {
        section.folders.push(super::DocumentFolder {
            name: format!("extra-{index}"),
            path,
            room: None,
            member: None,
            granted: false,
        });
    }
}
