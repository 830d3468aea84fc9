//! The configuration as OpenClaw's files say it: parsing, defaults, what is
//! ignored and why, and refusals listed all at once.

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

fn parse(text: &str) -> Loaded {
    Config::parse_with(text, &lookup).unwrap()
}

fn problems(text: &str) -> Vec<Problem> {
    Config::parse_with(text, &lookup).unwrap_err().0
}

/// The notes at `path`, joined.
fn note(loaded: &Loaded, path: &str) -> String {
    let found: Vec<&str> = loaded
        .notes
        .iter()
        .filter(|note| note.path == path)
        .map(|note| note.note.as_str())
        .collect();
    assert!(!found.is_empty(), "no note at {path}: {:?}", loaded.notes);
    found.join(" | ")
}

use super::fake::Fake;

fn load(fake: &Fake, text: &str) -> Result<Loaded, Problems> {
    super::parse(
        text,
        Path::new("/etc/openclaw/openclaw.json"),
        fake,
        &Overrides::default(),
    )
}

#[test]
fn the_config_is_looked_for_where_openclaw_keeps_it() {
    assert_eq!(
        config_candidates(Some("/x.json".into()), Some("/y".into()), None),
        [PathBuf::from("/x.json")]
    );
    assert_eq!(
        config_candidates(None, Some("/env.json".into()), Some("/home/ada".into())),
        [
            PathBuf::from("/env.json"),
            PathBuf::from("/home/ada/.openclaw/openclaw.json"),
            PathBuf::from("/etc/hearth/openclaw.json")
        ]
    );
    assert_eq!(
        config_candidates(None, None, None),
        [PathBuf::from("/etc/hearth/openclaw.json")]
    );
}

#[test]
fn an_openclaw_style_config_parses() {
    let loaded = parse(EXAMPLE);
    let config = &loaded.config;
    assert_eq!(config.gateway.port, 18789);
    assert_eq!(config.chain(), ["llamacpp/tiny", "ollama/llama3.2"]);
    assert_eq!(config.models.providers["ollama"].base_url.list().len(), 2);
    assert_eq!(
        config.models.providers["ollama"].api_key.as_deref(),
        Some("secret")
    );
    assert_eq!(config.model("llamacpp", "tiny").unwrap().max_tokens, 128);
    assert_eq!(config.models.providers["llamacpp"].timeout_seconds, 20);
    assert!(
        note(&loaded, "models.providers.llamacpp.timeoutSeconds").contains("whole request"),
        "the difference from OpenClaw's meaning is said"
    );
    assert_eq!(config.hearth.limits.max_concurrent_streams, 8);
    assert_eq!(
        config.hearth.limits.max_tokens, 1024,
        "defaults fill the rest"
    );
    assert_eq!(config.hearth.key_rotation_hours, 24);
    assert_eq!(
        config.gateway.http,
        HttpEndpoints::default(),
        "off unless enabled"
    );
}

#[test]
fn an_empty_config_has_openclaw_defaults() {
    let loaded = parse("{}");
    let config = &loaded.config;
    assert_eq!(
        (config.gateway.port, config.gateway.bind),
        (18789, Bind::Loopback)
    );
    assert_eq!(
        config.token_source(),
        TokenSource::File(PathBuf::from("/var/lib/hearth-gateway/gateway.token")),
        "local callers need the token the gateway writes"
    );
    assert!(config.chain().is_empty());
    assert!(note(&loaded, "models.providers").starts_with("warning: no model"));
    let open = parse(r#"{ gateway: { auth: { mode: "none" } } }"#);
    assert_eq!(open.config.token_source(), TokenSource::Off);
    let filed = parse(r#"{ gateway: { auth: { tokenFile: "/etc/hearth/token" } } }"#);
    assert_eq!(
        filed.config.token_source(),
        TokenSource::File("/etc/hearth/token".into())
    );
}

#[test]
fn secrets_come_trimmed_from_the_file_the_environment_or_a_secret_file() {
    let text = r#"{ gateway: { bind: "0.0.0.0", auth: { mode: "token", token: "${TOKEN}" } } }"#;
    let from_file = |name: &str| (name == "TOKEN").then(|| "0123456789abcdef0123\n".into());
    let config = Config::parse_with(text, &from_file).unwrap().config;
    assert_eq!(
        config.token_source(),
        TokenSource::Given("0123456789abcdef0123".into())
    );
    let short = |name: &str| (name == "TOKEN").then(|| "short          \n".into());
    let loaded = Config::parse_with(text, &short).unwrap();
    assert_eq!(
        loaded.config.token_source(),
        TokenSource::Given("short".into())
    );
    assert!(
        note(&loaded, "gateway.auth").contains("beyond loopback"),
        "a short secret is a warning here; serve replaces it beyond loopback"
    );

    let fake = Fake::new(
        &[
            (
                "/run/secrets.json",
                r#"{"gateway": {"password": "correct horse battery"}}"#,
            ),
            ("/run/one", "  from-a-single-value-file \n"),
        ],
        &[
            ("GW_TOKEN", "from-the-environment-0123"),
            ("OPENCLAW_GATEWAY_TOKEN", "openclaws-own-variable-99"),
        ],
    );
    let providers = r#"secrets: { providers: {
        vault: { source: "file", path: "/run/secrets.json", mode: "json" },
        one: { source: "file", path: "/run/one", mode: "singleValue" } } }"#;
    let secret = |auth: &str| {
        load(
            &fake,
            &format!("{{ {providers}, gateway: {{ auth: {auth} }} }}"),
        )
        .unwrap()
        .config
        .token_source()
    };
    assert_eq!(
        secret(r#"{ token: { source: "env", provider: "default", id: "GW_TOKEN" } }"#),
        TokenSource::Given("from-the-environment-0123".into())
    );
    assert_eq!(
        secret(
            r#"{ mode: "password", password: { source: "file", provider: "vault", id: "/gateway/password" } }"#
        ),
        TokenSource::Given("correct horse battery".into())
    );
    assert_eq!(
        secret(r#"{ token: { source: "file", provider: "one", id: "value" } }"#),
        TokenSource::Given("from-a-single-value-file".into())
    );
    assert_eq!(
        secret(r#"{ mode: "token" }"#),
        TokenSource::Given("openclaws-own-variable-99".into()),
        "OpenClaw's variable stands in for a missing token"
    );
    let exec = load(&fake, r#"{ gateway: { auth: { mode: "token", token: { source: "exec", provider: "op", id: "x" } } } }"#)
        .unwrap();
    assert_eq!(
        exec.config.token_source(),
        TokenSource::Given("openclaws-own-variable-99".into())
    );
    assert!(note(&exec, "gateway.auth.token").starts_with("warning: not used"));
}

#[test]
fn a_secret_whose_variable_is_unset_is_not_used_as_written() {
    let loaded = parse(
        r#"{ gateway: { auth: { mode: "token", token: "${NOPE}" } }, hearth: { dataDir: "/d" } }"#,
    );
    assert_eq!(
        loaded.config.token_source(),
        TokenSource::File("/d/gateway.token".into()),
        "the literal `${{NOPE}}` is not a secret anyone should hold"
    );
    assert!(note(&loaded, "gateway.auth.token").contains("not used"));
    let loaded = parse(
        r#"{ hearth: { dataDir: "/x/${OLLAMA_KEY}/y" }, agents: { defaults: { workspace: "/w/${NOPE}" } } }"#,
    );
    assert_eq!(loaded.config.hearth.data_dir, PathBuf::from("/x/secret/y"));
    assert_eq!(
        loaded.config.agents.defaults.workspace,
        Some(PathBuf::from("/w/${NOPE}")),
        "as OpenClaw does, the text stays"
    );
    assert!(note(&loaded, "agents.defaults.workspace").starts_with("warning: ${NOPE} is not set"));
}

#[test]
fn keys_hearth_does_not_use_are_noted_with_why_never_fatal() {
    let loaded = parse(
        r#"{
        $schema: "https://openclaw.ai/schema.json",
        meta: { lastTouchedVersion: "2026.9.6" },
        channels: { telegram: { enabled: true } },
        models: { mode: "merge", providers: {
          local: { baseUrl: "http://127.0.0.1:8080/v1",
                   models: [{ id: "m", reasoning: false, input: ["text"], cost: { input: 0 }, contextTokens: 1000, contextWindow: 4096, params: { temperature: 0.2 } }] } } },
        agents: { defaults: { model: "local/m", thinkingDefault: "low" },
                  entries: { main: { default: true, workspace: "/ws/main", identity: { emoji: "x" } } } },
        gateway: { controlUi: { enabled: true }, http: { endpoints: { chatCompletions: { enabled: true } } } },
    }"#,
    );
    let config = &loaded.config;
    assert_eq!(config.chain(), ["local/m"]);
    assert_eq!(
        config.models.providers["local"].api,
        hearth_llm::Api::OpenAiCompletions,
        "OpenClaw's default api"
    );
    assert_eq!(config.model("local", "m").unwrap().context_window, 1000);
    assert!(config.gateway.http.chat_completions && !config.gateway.http.responses);
    assert!(config.agents.entries["main"].default);
    for (path, why) in [
        ("$schema", "editor"),
        ("meta", "bookkeeping"),
        ("channels", "hearth-messaging"),
        ("models.mode", "catalog"),
        ("models.providers.local.models[0].cost", "model setting"),
        ("agents.defaults.thinkingDefault", "agent setting"),
        ("agents.entries.main.identity", "agent setting"),
        ("gateway.controlUi", "Control UI"),
    ] {
        let said = note(&loaded, path);
        assert!(
            said.starts_with("ignored: ") && said.contains(why),
            "{path}: {said}"
        );
    }
}

#[test]
fn every_problem_is_listed_at_once_with_its_path() {
    let found = problems(
        r#"{ gateway: { port: 99999, bind: "everywhere", auth: { mode: "magic" } },
             models: { providers: { x: { baseUrl: "http://a", models: [{ name: "no id" }] } } },
             hearth: { dataDri: "/x" },
             bogus: 1 }"#,
    );
    let paths: Vec<&str> = found.iter().map(|problem| problem.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "gateway.port",
            "gateway.bind",
            "gateway.auth.mode",
            "models.providers.x.models[0].id",
            "hearth.dataDri",
            "bogus",
        ],
        "{found:?}"
    );
    let shown = Problems(found).to_string();
    assert!(
        shown.starts_with("6 problems:\n  gateway.port: "),
        "{shown}"
    );
    assert!(matches!(
        Config::parse_with("{ gateway: ", &lookup).unwrap_err().0.as_slice(),
        [Problem { message, .. }] if message.starts_with("not JSON5")
    ));
}

#[test]
fn binds_keep_openclaws_names() {
    let bind = |text: &str| parse(&format!("{{ gateway: {text} }}"));
    assert_eq!(bind(r#"{ bind: "lan" }"#).config.gateway.bind, Bind::Lan);
    assert_eq!(
        bind(r#"{ bind: "tailnet" }"#).config.gateway.bind,
        Bind::Tailnet
    );
    let auto = bind(r#"{ bind: "auto" }"#);
    assert_eq!(auto.config.gateway.bind, Bind::Loopback);
    assert!(note(&auto, "gateway.bind").contains("lan"));
    assert_eq!(
        bind(r#"{ bind: "custom", customBindHost: "10.1.2.3" }"#)
            .config
            .gateway
            .bind,
        Bind::Address("10.1.2.3".parse().unwrap())
    );
    let unnamed = bind(r#"{ bind: "custom" }"#);
    assert_eq!(
        unnamed.config.gateway.bind,
        Bind::Loopback,
        "never every interface by surprise"
    );
    assert!(note(&unnamed, "gateway.customBindHost").starts_with("warning:"));
    assert_eq!(
        bind(r#"{ bind: "127.0.0.1" }"#).config.gateway.bind,
        Bind::Address("127.0.0.1".parse().unwrap())
    );
    assert_eq!(
        bind(r#"{ mode: "remote" }"#).config.gateway.mode,
        GatewayMode::Remote
    );
}

#[test]
fn providers_hearth_cannot_reach_are_left_out_with_their_models() {
    let loaded = parse(
        r#"{ models: { providers: {
            anthropic: { models: [{ id: "claude" }] },
            bedrock: { baseUrl: "http://127.0.0.1:1", api: "bedrock-converse-stream", models: [{ id: "b" }] },
            hosted: { baseUrl: "https://api.example.com/v1", models: [{ id: "h" }] },
            vllm: { baseUrl: "http://127.0.0.1:8000/v1", api: "openai-responses", models: [{ id: "qwen" }] },
            ollama: { baseUrl: "http://127.0.0.1:11434", api: "ollama", models: [{ id: "llama3.2" }] } } },
          agents: { defaults: { model: { primary: "anthropic/claude", fallbacks: ["hosted/h", "vllm/qwen", "ollama/llama3.2", "alias"] } },
                    entries: { coder: { model: "bedrock/b" } } } }"#,
    );
    let config = &loaded.config;
    assert_eq!(
        config.models.providers.keys().collect::<Vec<_>>(),
        ["ollama", "vllm"]
    );
    assert_eq!(config.chain(), ["vllm/qwen", "ollama/llama3.2"]);
    assert!(config.agents.entries["coder"].model.is_none());
    assert!(note(&loaded, "models.providers.anthropic").contains("hosted"));
    assert!(note(&loaded, "models.providers.hosted").contains("https"));
    assert!(note(&loaded, "models.providers.bedrock").contains("does not speak"));
    assert!(note(&loaded, "models.providers.vllm.api").contains("chat completions"));
    assert!(note(&loaded, "agents.defaults.model").contains("skipped"));

    let first = parse(
        r#"{ models: { providers: { ollama: { baseUrl: "http://127.0.0.1:11434", api: "ollama", models: [{ id: "llama3.2" }] } } } }"#,
    );
    assert_eq!(
        first.config.chain(),
        ["ollama/llama3.2"],
        "no model chosen: the first configured"
    );
}

#[test]
fn only_an_enclave_provider_is_reached_through_an_ohttp_relay() {
    let loaded = parse(
        r#"{ models: { providers: {
            remote: { baseUrl: "ohttp+http://127.0.0.1:8080", api: "hearth-enclave",
                      attestationPolicy: "/etc/hearth/policy.json", models: [{ id: "m" }] },
            plain: { baseUrl: "ohttp+http://127.0.0.1:8081", models: [{ id: "p" }] },
            broken: { baseUrl: "ohttp+ftp://127.0.0.1", api: "hearth-enclave",
                      attestationPolicy: "/etc/hearth/policy.json", models: [{ id: "b" }] } } } }"#,
    );
    assert_eq!(
        loaded.config.models.providers.keys().collect::<Vec<_>>(),
        ["remote"]
    );
    assert_eq!(
        loaded.config.models.providers["remote"].base_url.0,
        ["ohttp+http://127.0.0.1:8080"],
        "the prefix is kept: it tells the provider to go through the relay"
    );
    assert!(note(&loaded, "models.providers.plain").contains("only a hearth-enclave"));
    assert!(note(&loaded, "models.providers.broken").contains("not an http://"));
}

#[test]
fn overrides_win_over_the_file() {
    let loaded = super::parse(
        "{ gateway: { port: 1 } }",
        Path::new("openclaw.json"),
        &Fake::new(&[], &[]),
        &Overrides {
            port: Some(4242),
            data_dir: Some("/tmp/elsewhere".into()),
        },
    )
    .unwrap();
    assert_eq!(loaded.config.gateway.port, 4242);
    assert_eq!(
        loaded.config.hearth.data_dir,
        PathBuf::from("/tmp/elsewhere")
    );
}

#[test]
fn openclaw_s_memory_cron_and_time_zone_keys_set_up_the_assistant() {
    let loaded = parse(
        r#"{
        models: { providers: {
            chat: { baseUrl: "http://127.0.0.1:8080/v1", api: "openai-completions", models: [{ id: "m" }] },
            vectors: { baseUrl: "http://127.0.0.1:8081/v1", api: "openai-completions", models: [{ id: "minilm" }] } } },
        agents: { defaults: { model: "chat/m", userTimezone: "Europe/London" } },
        memory: { search: { provider: "vectors", model: "minilm", query: { maxResults: 4, minScore: 0.5 },
                            extraPaths: ["/srv/notes", { path: "/srv/recipes", pattern: "**/*.md" }], sync: { watch: true } },
                  citations: "off" },
        cron: { enabled: true, skipMissedJobs: true, webhookToken: "x", sessionRetention: "24h" },
        hearth: { assistant: { documents: [{ name: "house", path: "/srv/house" },
                                           { name: "ada", path: "/srv/ada", member: "ada" }] } },
    }"#,
    );
    let assistant = &loaded.config.assistant;
    assert!(
        assistant.enabled && assistant.tools && assistant.cron_enabled && assistant.skip_missed
    );
    assert_eq!(assistant.timezone, "Europe/London");
    assert_eq!(assistant.embeddings.as_deref(), Some("vectors/minilm"));
    assert_eq!((assistant.max_results, assistant.min_score), (4, 0.5));
    assert_eq!(assistant.citations, Citations::Off);
    let names: Vec<&str> = assistant
        .folders
        .iter()
        .map(|folder| folder.name.as_str())
        .collect();
    assert_eq!(names, ["house", "ada", "extra-0", "extra-1"]);
    assert!(note(&loaded, "memory.search.extraPaths[1].pattern").contains("whole folder"));
    assert!(note(&loaded, "memory.search.sync").starts_with("ignored"));
    assert!(note(&loaded, "cron.webhookToken").contains("never to a webhook"));
    assert!(note(&loaded, "cron.sessionRetention").starts_with("ignored"));
}

#[test]
fn openclaw_values_hearth_cannot_use_are_noted_and_its_own_are_checked() {
    let loaded = parse(
        r#"{
        agents: { defaults: { userTimezone: "Middle/Earth" } },
        memory: { search: { provider: "openai", query: { maxResults: 100, minScore: 7 } }, citations: "sometimes" },
        cron: { enabled: false },
    }"#,
    );
    let assistant = &loaded.config.assistant;
    assert_eq!(assistant.timezone, "UTC");
    assert!(note(&loaded, "agents.defaults.userTimezone").contains("Middle/Earth"));
    assert!(note(&loaded, "memory.search.provider").contains("no hosted embedding service"));
    assert_eq!(assistant.embeddings, None);
    assert_eq!(assistant.max_results, 20);
    assert!(note(&loaded, "memory.search.query.minScore").starts_with("ignored"));
    assert!(note(&loaded, "memory.citations").starts_with("ignored"));
    assert!(!assistant.cron_enabled);
    // Hearth's own section is strict, and says every problem.
    let found = problems(
        r#"{ hearth: { assistant: { timezone: "Middle/Earth", documents: [
            { name: "a", path: "/a", room: "kitchen", member: "ada" }, { name: "a", path: "/b" }] } } }"#,
    );
    let paths: Vec<&str> = found.iter().map(|problem| problem.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "hearth.assistant.timezone",
            "hearth.assistant.documents[0]",
            "hearth.assistant.documents[1].name"
        ]
    );
    assert!(
        problems(r#"{ hearth: { assistant: { remember: true } } }"#)[0]
            .to_string()
            .contains("unknown field `remember`")
    );
    let skipped = Config::parse_with(r#"{ cron: { enabled: true } }"#, &|name| {
        (name == "OPENCLAW_SKIP_CRON").then(|| "1".into())
    })
    .unwrap();
    assert!(
        !skipped.config.assistant.cron_enabled,
        "OPENCLAW_SKIP_CRON=1"
    );
}

#[test]
fn every_chat_model_is_listed_and_only_the_chain_is_a_fallback() {
    let loaded = parse(
        r#"{
        models: { providers: {
          local: { baseUrl: "http://127.0.0.1:8080/v1", api: "openai-completions",
                   models: [{ id: "tiny" }, { id: "second" }] },
          vectors: { baseUrl: "http://127.0.0.1:8081/v1", api: "openai-completions", models: [{ id: "minilm" }] },
        } },
        agents: { defaults: { model: { primary: "local/tiny" } } },
        memory: { search: { provider: "vectors", model: "minilm" } },
    }"#,
    );
    let config = &loaded.config;
    assert_eq!(config.failover_chain(), ["local/tiny"]);
    // The second model is listed (askable by name); the embedding model is not a chat model.
    assert_eq!(config.chat_models(), ["local/tiny", "local/second"]);
    assert!(
        loaded
            .notes
            .iter()
            .all(|note| !note.note.contains("warning")),
        "{:?}",
        loaded.notes
    );
}

#[test]
fn a_chosen_model_no_one_can_reach_is_warned_about() {
    let loaded = parse(
        r#"{
        models: { providers: {
          local: { baseUrl: "http://127.0.0.1:8080/v1", api: "openai-completions", models: [{ id: "tiny" }] },
          vectors: { baseUrl: "http://127.0.0.1:8081/v1", api: "openai-completions", models: [{ id: "minilm" }] },
        } },
        agents: { defaults: { model: { primary: "local/tiny", fallbacks: ["local/tyni", "vectors/minilm"] } } },
        memory: { search: { provider: "vectors", model: "minilm" } },
    }"#,
    );
    let said = note(&loaded, "agents.defaults.model");
    assert!(
        said.contains("\"local/tyni\" is not one of models.providers.local.models"),
        "{said}"
    );
    assert!(
        said.contains("\"vectors/minilm\" is memory.search's embedding model"),
        "{said}"
    );
    assert!(!said.contains("local/tiny\""), "{said}");
}

#[test]
fn model_servers_on_the_mesh_are_one_line_and_their_models_may_lead_a_chain() {
    let loaded = parse(
        r#"{
  models: { providers: { local: { baseUrl: "http://127.0.0.1:8080/v1", api: "openai-completions", models: [{ id: "tiny" }] } } },
  agents: { defaults: { model: { primary: "gaming-pc/qwen3:8b", fallbacks: ["local/tiny"] } } },
  hearth: { agentSocket: "/run/hearth/agent.sock", modelServers: "tag:models" },
}"#,
    );
    let servers = loaded.config.hearth.model_servers.as_ref().unwrap();
    assert_eq!(servers.pool(), "models");
    assert_eq!(servers.ports, [11434, 8080]);
    assert_eq!(
        loaded.config.agents.defaults.model.list(),
        ["gaming-pc/qwen3:8b", "local/tiny"],
        "a device's model is kept, asked while the device is there"
    );
    assert!(note(&loaded, "agents.defaults.model").contains("model server \"gaming-pc\""));

    let written_out = parse(
        r#"{ hearth: { agentSocket: "/a.sock", modelServers: { tag: "tag:gpu", ports: [11434], timeoutSeconds: 90 } } }"#,
    );
    let section = written_out.config.hearth.model_servers.unwrap();
    assert_eq!((section.ports, section.timeout_seconds), (vec![11434], 90));

    let waking = parse(
        r#"{ hearth: { agentSocket: "/a.sock", modelServers: { tag: "tag:models", wake: { "gaming-pc": "AA:bb:cc:00:11:22" }, wakeAddress: "192.168.1.255:9" } } }"#,
    );
    let section = waking.config.hearth.model_servers.unwrap();
    assert_eq!(section.wake["gaming-pc"], "AA:bb:cc:00:11:22");
    assert_eq!(section.wake_address.to_string(), "192.168.1.255:9");
    let bad_mac = problems(
        r#"{ hearth: { agentSocket: "/a.sock", modelServers: { tag: "tag:models", wake: { "pc": "aa:bb" } } } }"#,
    );
    assert_eq!(
        bad_mac[0].path, "hearth.modelServers.wake.pc",
        "{bad_mac:?}"
    );

    let wrong = problems(r#"{ hearth: { modelServers: "models" } }"#);
    let text: Vec<String> = wrong.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|problem| problem.contains("is not a tag")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|problem| problem.contains("hearth.agentSocket")),
        "{text:?}"
    );
}

#[test]
fn speech_is_one_line_with_limits_written_out_and_bad_values_named() {
    let loaded = parse(r#"{ hearth: { speech: { url: "http://127.0.0.1:8178" } } }"#);
    let speech = loaded.config.hearth.speech.as_ref().unwrap();
    assert_eq!(speech.model_id(), "speech/whisper-base");
    // A packaged hub's: the socket its pod mounts.
    let packaged =
        parse(r#"{ hearth: { speech: { url: "unix:/run/hearth-inference/speech.sock" } } }"#);
    assert!(packaged.config.hearth.speech.is_some());
    assert_eq!((speech.max_seconds, speech.max_megabytes), (300, 25));
    let wrong = problems(
        r#"{ hearth: { speech: { url: "https://127.0.0.1:8178", model: "a/b", maxSeconds: 0, maxMegabytes: 500 } } }"#,
    );
    let paths: Vec<&str> = wrong.iter().map(|problem| problem.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "hearth.speech.url",
            "hearth.speech.model",
            "hearth.speech.maxSeconds",
            "hearth.speech.maxMegabytes"
        ],
        "{wrong:?}"
    );
    let unknown =
        problems(r#"{ hearth: { speech: { url: "http://127.0.0.1:8178", voice: "x" } } }"#);
    assert!(unknown[0].to_string().contains("voice"), "{unknown:?}");
}
