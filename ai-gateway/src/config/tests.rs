//! The configuration's parsing, defaults and refusals.

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
    let text = r#"{ gateway: { bind: "0.0.0.0", auth: { mode: "token", token: "${TOKEN}" } } }"#;
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
    let open = Config::parse_with(r#"{ gateway: { auth: { mode: "none" } } }"#, &lookup).unwrap();
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
    let error = Config::parse_with("{ gateway: { port: 1, bnd: \"lan\" } }", &lookup).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("gateway.bnd: unknown field `bnd`"),
        "{error}"
    );
    let error = Config::parse_with(
        "{ models: { providers: { x: { baseUrl: \"http://a\", api: \"ollama\", model: [] } } } }",
        &lookup,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("models.providers.x") && error.to_string().contains("`model`"),
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
        Config::parse_with(r#"{ hearth: { dataDir: "/x/${OLLAMA_KEY}/y" } }"#, &lookup).unwrap();
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
