//! The files setup writes, made from its answers: the coordinator's
//! settings, the gateway's model (an `$include` of the gateway's own
//! configuration, which stays the admin's), the assistant's identity, and
//! the pod filled in for this hub. Pure: text in, text out.

use std::collections::BTreeMap;

use serde_json::json;

use hearth_assistant::language::Language;

use crate::answers::{Answers, ModelChoice};

/// The context llama-server is started with (`hearth-llama-server.service`
/// `--ctx-size`): the gateway must not plan for more.
pub const LLAMA_CONTEXT: u32 = 4096;

/// The port Ollama's API is served on for members' apps (Ollama's own).
pub const OLLAMA_PORT: u16 = 11434;

/// The most tokens an answer may take.
pub const ANSWER_TOKENS: u32 = 512;

/// The unit drop-in setup writes when the model is an Ollama on this
/// machine: the model's socket leads to Ollama's proxy. The only drop-in
/// Hearth writes, and the only one a restore puts back.
pub const OLLAMA_DROPIN: &str = "# Written by `hearth setup`: the model's socket leads to Ollama on this machine.\n\
                                 [Socket]\nService=hearth-ollama-proxy.service\n";

/// `setup.env`: the coordinator's settings from the answers (systemd reads
/// it before the admin's `coordinator.env`, which may override each).
pub fn setup_env(answers: &Answers) -> String {
    let http = match answers.http_port {
        Some(port) => format!("[::]:{port}"),
        None => "off".into(),
    };
    format!(
        "# Written by `hearth setup` from its answers; change them by running it again.\n\
         # Settings of your own go in coordinator.env, which is read after this file.\n\
         HEARTH_PUBLIC_URL={}\n\
         HEARTH_LISTEN=[::]:{}\n\
         HEARTH_HTTP_LISTEN={http}\n",
        answers.url,
        answers.url.port(),
    )
}

/// `setup.env` for the hub in Podman alone: the coordinator listens on
/// unprivileged ports inside its pod (8443, 8080), which the pod publishes
/// at the URL's port and the plain-HTTP one on the machine.
pub fn setup_env_in_pod(answers: &Answers) -> String {
    let http = match answers.http_port {
        Some(_) => "[::]:8080",
        None => "off",
    };
    format!(
        "# Written by `hearth setup --podman` from its answers; change them by running it again.\n\
         # Settings of your own go in coordinator.env, which is read after this file.\n\
         HEARTH_PUBLIC_URL={}\n\
         HEARTH_LISTEN=[::]:8443\n\
         HEARTH_HTTP_LISTEN={http}\n",
        answers.url,
    )
}

/// `gateway/hub.json5`: which model answers, through the model's socket,
/// the household's time zone (reminders are read in it), and whether
/// members' apps reach the gateway: then it listens on the pod's network
/// (the pod publishes its ports on the hub's mesh address only), knows
/// callers through the agent's whois socket, and serves the OpenAI,
/// Anthropic and Ollama APIs; else it listens on the pod's loopback, for
/// the messaging service beside it only.
pub fn gateway_model(answers: &Answers, model_id: &str, timezone: &str) -> String {
    gateway_model_in(answers, model_id, timezone, Form::Debian, Beside::default())
}

/// Which hub the configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The Debian packages under systemd: the model behind its socket.
    Debian,
    /// Podman alone: the model a server on the machine, reached from the
    /// pod at `host.containers.internal`.
    Podman,
}

/// The models beside the one that answers, each behind its socket when
/// installed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Beside<'a> {
    /// The search model: memory and documents are then searched by
    /// meaning and keywords, else by keywords alone.
    pub search: Option<&'a str>,
    /// The speech model: members' recordings are heard on the hub.
    pub speech: Option<&'a str>,
}

/// [`gateway_model`] for the hub in `form`, with the models `beside` it.
pub fn gateway_model_in(
    answers: &Answers,
    model_id: &str,
    timezone: &str,
    form: Form,
    beside: Beside<'_>,
) -> String {
    let socket = "unix:/run/hearth-inference/inference.sock";
    let (base_url, api) = match (&answers.model, form) {
        (ModelChoice::Ollama { .. }, Form::Debian) => (socket.to_owned(), "ollama"),
        (ModelChoice::Ollama { .. }, Form::Podman) => (
            format!("http://{}", crate::layout::OLLAMA_FROM_PODMAN),
            "ollama",
        ),
        (ModelChoice::Server { url }, _) => (url.clone(), "openai-completions"),
        (ModelChoice::Default | ModelChoice::File { .. }, _) => {
            (socket.to_owned(), "openai-completions")
        }
    };
    let provider = json!({
        "baseUrl": base_url,
        "api": api,
        "timeoutSeconds": 300,
        "models": [{"id": model_id, "contextWindow": LLAMA_CONTEXT, "maxTokens": ANSWER_TOKENS}],
    });
    let mut document = json!({
        "gateway": {"bind": "loopback"},
        "models": {"providers": {"hub": provider}},
        "agents": {"defaults": {
            "model": {"primary": format!("hub/{model_id}")},
            "userTimezone": timezone,
        }},
    });
    if let Some(search) = beside.search {
        document["models"]["providers"]["search"] = json!({
            "baseUrl": "unix:/run/hearth-inference/embeddings.sock",
            "api": "openai-completions",
            "timeoutSeconds": 30,
            "models": [{"id": search}],
        });
        document["memory"] = json!({"search": {"provider": "search", "model": search}});
    }
    if answers.apps {
        document["gateway"] = json!({
            "bind": "lan",
            "http": {"endpoints": {"chatCompletions": {"enabled": true}, "responses": {"enabled": true}}},
        });
        document["hearth"] = json!({
            "agentSocket": "/run/hearth-whois/whois.sock",
            "ollama": {"enabled": true, "port": OLLAMA_PORT},
        });
    }
    // The household's language: what the assistant speaks when neither a
    // member's app nor their message says (a listing from the CLI).
    document["hearth"]["assistant"]["language"] = json!(answers.language.tag());
    if let Some(speech) = beside.speech {
        document["hearth"]["speech"] = json!({
            "url": "unix:/run/hearth-inference/speech.sock",
            "model": speech,
        });
    }
    let body = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
    format!(
        "// Written by `hearth setup`: which model answers, which one searches, and\n\
         // whether members' apps reach the gateway. Run setup again to change them;\n\
         // gateway.json5 (yours to edit) includes this file.\n{body}\n"
    )
}

/// The time zone named in `/etc/timezone`'s text, or UTC.
pub fn timezone(etc_timezone: Option<&str>) -> String {
    etc_timezone
        .map(str::trim)
        .filter(|zone| {
            !zone.is_empty()
                && zone
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
        })
        .unwrap_or("UTC")
        .to_owned()
}

/// `IDENTITY.md` in the assistant's workspace, when there is none yet, in
/// the household's `language` (the model reads it as its persona).
pub fn identity(household: &str, language: Language) -> String {
    if language == Language::Korean {
        return format!(
            "# Identity\n\n\
             - Name: Hearth\n\
             - Household: {household}\n\
             - Role: {household} 가족의 집 허브에서 돌아가는 가족의 어시스턴트.\n\
             - Language: 한국어. 가족이 다른 언어로 물으면 그 언어로 답해요.\n\
             \n\
             당신은 {household} 가족의 구성원들을 도와요. 가족이 말한 것은 집 안에만 머물러요. 한국어로 답하세요.\n"
        );
    }
    format!(
        "# Identity\n\n\
         - Name: Hearth\n\
         - Household: {household}\n\
         - Role: the {household} household's assistant, running on the household's own hub.\n\
         \n\
         You help the members of the {household} household. What they tell you stays in the house.\n"
    )
}

/// A placeholder in the pod's template with no value, or a value that
/// would change the YAML around it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// The template names a value nobody gave.
    #[error("the pod's template needs @{0}@, which has no value")]
    Missing(String),
    /// A value is not plain text.
    #[error("the value of @{0}@ ({1:?}) has characters the pod's YAML cannot hold")]
    Unsafe(String, String),
    /// A given value is not in the template (a stale template).
    #[error("the pod's template has no @{0}@ (an older template?)")]
    Unused(String),
}

/// The marker of a template line kept only when a switch is on:
/// `# only with NAME` at the line's end.
const ONLY_WITH: &str = "# only with ";

/// The pod's template with each line marked `# only with NAME` kept when
/// `switches` turns NAME on and left out otherwise (an unknown NAME is
/// off).
pub fn only_with(template: &str, switches: &BTreeMap<&str, bool>) -> String {
    template
        .lines()
        .filter(|line| {
            line.rfind(ONLY_WITH).is_none_or(|at| {
                let name = line[at + ONLY_WITH.len()..].trim();
                switches.get(name).copied().unwrap_or(false)
            })
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The pod's template (`podman/hearth-pod.yaml`) with every `@NAME@`
/// replaced by its value. Values are paths, addresses, image names and user
/// names: anything with a quote, a backslash, a `#`, a bracket or a
/// control character is refused rather than written into the YAML.
pub fn pod(template: &str, values: &BTreeMap<&str, String>) -> Result<String, PodError> {
    for (name, value) in values {
        let plain = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_control() || "\"'\\#{}[]".contains(c));
        if !plain {
            return Err(PodError::Unsafe((*name).to_owned(), value.clone()));
        }
        if !template.contains(&format!("@{name}@")) {
            return Err(PodError::Unused((*name).to_owned()));
        }
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name_length = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        out.push_str(&rest[..start]);
        if name_length > 0 && after[name_length..].starts_with('@') {
            let name = &after[..name_length];
            let value = values
                .get(name)
                .ok_or_else(|| PodError::Missing(name.to_owned()))?;
            out.push_str(value);
            rest = &after[name_length + 1..];
        } else {
            out.push('@');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::PublicUrl;

    fn answers(model: ModelChoice, http_port: Option<u16>) -> Answers {
        Answers {
            household: "Parks".into(),
            url: PublicUrl::parse("https://hub.home.example:8443").unwrap(),
            admin: "ada".into(),
            model,
            http_port,
            hostname: "hub".into(),
            language: Language::English,
            apps: true,
        }
    }

    #[test]
    fn the_coordinator_hears_the_url_and_its_ports() {
        let env = setup_env(&answers(ModelChoice::Default, Some(80)));
        assert!(env.contains("HEARTH_PUBLIC_URL=https://hub.home.example:8443\n"));
        assert!(env.contains("HEARTH_LISTEN=[::]:8443\n"));
        assert!(env.contains("HEARTH_HTTP_LISTEN=[::]:80\n"));
        let env = setup_env(&answers(ModelChoice::Default, None));
        assert!(env.contains("HEARTH_HTTP_LISTEN=off\n"));
    }

    /// The JSON after the comment lines.
    fn body(text: &str) -> serde_json::Value {
        let json: String = text
            .lines()
            .filter(|line| !line.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn the_gateway_asks_the_chosen_model_through_the_socket() {
        let llama = body(&gateway_model(
            &answers(ModelChoice::Default, None),
            "smollm2",
            "Asia/Seoul",
        ));
        let provider = &llama["models"]["providers"]["hub"];
        assert_eq!(provider["api"], "openai-completions");
        assert_eq!(
            provider["baseUrl"],
            "unix:/run/hearth-inference/inference.sock"
        );
        assert_eq!(provider["models"][0]["contextWindow"], LLAMA_CONTEXT);
        assert_eq!(
            llama["agents"]["defaults"]["model"]["primary"],
            "hub/smollm2"
        );
        assert_eq!(llama["agents"]["defaults"]["userTimezone"], "Asia/Seoul");
        assert!(llama.get("memory").is_none(), "no search model: keywords");
        assert_eq!(llama["hearth"]["assistant"]["language"], "en");
        let searching = body(&gateway_model_in(
            &answers(ModelChoice::Default, None),
            "smollm2",
            "Asia/Seoul",
            Form::Debian,
            Beside {
                search: Some(crate::layout::SEARCH_MODEL),
                speech: Some(crate::layout::SPEECH_MODEL),
            },
        ));
        let search = &searching["models"]["providers"]["search"];
        assert_eq!(
            search["baseUrl"],
            "unix:/run/hearth-inference/embeddings.sock"
        );
        assert_eq!(search["models"][0]["id"], "multilingual-e5-small");
        assert_eq!(
            searching["memory"]["search"],
            serde_json::json!({"provider": "search", "model": "multilingual-e5-small"})
        );
        assert!(llama["hearth"].get("speech").is_none(), "no speech model");
        assert_eq!(
            searching["hearth"]["speech"],
            serde_json::json!({"url": "unix:/run/hearth-inference/speech.sock", "model": "whisper-base"})
        );
        let ollama = body(&gateway_model(
            &answers(
                ModelChoice::Ollama {
                    name: "llama3.2".into(),
                },
                None,
            ),
            "llama3.2",
            "UTC",
        ));
        assert_eq!(ollama["models"]["providers"]["hub"]["api"], "ollama");
        assert_eq!(
            ollama["agents"]["defaults"]["model"]["primary"],
            "hub/llama3.2"
        );
    }

    #[test]
    fn members_apps_reach_the_gateway_only_when_setup_says_so() {
        let mut asked = answers(ModelChoice::Default, None);
        let served = body(&gateway_model(&asked, "smollm2", "UTC"));
        assert_eq!(served["gateway"]["bind"], "lan");
        assert_eq!(
            served["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"],
            true
        );
        assert_eq!(
            served["hearth"]["ollama"],
            json!({"enabled": true, "port": 11434})
        );
        assert_eq!(
            served["hearth"]["agentSocket"],
            "/run/hearth-whois/whois.sock"
        );
        asked.apps = false;
        let closed = body(&gateway_model(&asked, "smollm2", "UTC"));
        assert_eq!(closed["gateway"], json!({"bind": "loopback"}));
        assert_eq!(
            closed["hearth"],
            json!({"assistant": {"language": "en"}}),
            "{closed}"
        );
        asked.language = Language::Korean;
        let korean = body(&gateway_model(&asked, "smollm2", "UTC"));
        assert_eq!(korean["hearth"]["assistant"]["language"], "ko");
        assert_eq!(korean["hearth"]["agentSocket"], serde_json::Value::Null);
    }

    #[test]
    fn a_marked_line_is_kept_only_with_its_switch_on() {
        let template =
            "a\nports:   # only with APPS\n  - 1   # only with APPS\nb   # only with OTHER\nc\n";
        let on = only_with(template, &BTreeMap::from([("APPS", true)]));
        assert_eq!(
            on,
            "a\nports:   # only with APPS\n  - 1   # only with APPS\nc\n"
        );
        let off = only_with(template, &BTreeMap::from([("APPS", false)]));
        assert_eq!(off, "a\nc\n");
    }

    #[test]
    fn a_time_zone_is_read_or_utc() {
        assert_eq!(timezone(Some("Europe/London\n")), "Europe/London");
        assert_eq!(timezone(Some("")), "UTC");
        assert_eq!(timezone(Some("x\"; rm")), "UTC");
        assert_eq!(timezone(None), "UTC");
    }

    fn values(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect()
    }

    #[test]
    fn every_placeholder_is_filled_and_nothing_else_changes() {
        let template = "hostIP: \"@MESH@\"\nrunAsGroup: @GROUP@\nemail: a@b # @ not a name\n";
        let filled = pod(
            template,
            &values(&[("MESH", "100.64.0.1"), ("GROUP", "996")]),
        )
        .unwrap();
        assert_eq!(
            filled,
            "hostIP: \"100.64.0.1\"\nrunAsGroup: 996\nemail: a@b # @ not a name\n"
        );
        assert_eq!(
            pod(template, &values(&[("MESH", "100.64.0.1")])),
            Err(PodError::Missing("GROUP".into()))
        );
        assert_eq!(
            pod(
                template,
                &values(&[("MESH", "1"), ("GROUP", "2"), ("OTHER", "3")])
            ),
            Err(PodError::Unused("OTHER".into()))
        );
    }

    #[test]
    fn values_that_would_change_the_yaml_are_refused() {
        let template = "path: \"@P@\"\n";
        for bad in ["a\"b", "a\nb", "a#b", "", "{x}", "a\\b"] {
            assert!(
                matches!(
                    pod(template, &values(&[("P", bad)])),
                    Err(PodError::Unsafe(..))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_shipped_template_fills_with_the_hubs_values() {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../podman/hearth-pod.yaml"),
        )
        .unwrap();
        let mut settings = crate::pod::Settings::example();
        let closed = only_with(&template, &settings.switches());
        let filled = pod(&closed, &settings.values()).unwrap();
        assert!(!filled.contains("containerPort: 11434"), "{filled}");
        settings.apps = true;
        let open = only_with(&template, &settings.switches());
        let filled = pod(&open, &settings.values()).unwrap();
        for port in [18789, 11434] {
            assert!(
                filled.contains(&format!(
                    "{{ containerPort: {port}, hostPort: {port}, hostIP: \"100.64.0.1\", protocol: TCP }}"
                )),
                "{filled}"
            );
        }
        assert!(!filled.contains("@"), "{filled}");
        assert!(filled.contains("hostIP: \"100.64.0.1\""), "{filled}");
        assert!(
            filled.contains("localhost/hearth-gateway:0.1.0"),
            "{filled}"
        );
        assert!(
            filled.contains("path: \"/var/lib/hearth-gateway\""),
            "{filled}"
        );
        assert!(
            !filled.contains("100.100.0."),
            "no service hosted yet: {filled}"
        );
        // Hosting svc:chat and svc:assistant: their ports at their addresses
        // too, and both containers answer to their names.
        settings.allowed_hosts = vec!["hub.hearth.internal".into(), "chat.hearth.internal".into()];
        settings.chat_address = Some(std::net::Ipv4Addr::new(100, 100, 0, 1));
        settings.assistant_address = Some(std::net::Ipv4Addr::new(100, 100, 0, 2));
        let hosting = only_with(&template, &settings.switches());
        let filled = pod(&hosting, &settings.values()).unwrap();
        for (port, address) in [
            (18790, "100.100.0.1"),
            (18789, "100.100.0.2"),
            (11434, "100.100.0.2"),
        ] {
            assert!(
                filled.contains(&format!(
                    "{{ containerPort: {port}, hostPort: {port}, hostIP: \"{address}\", protocol: TCP }}"
                )),
                "{port}: {filled}"
            );
        }
        assert_eq!(
            filled
                .matches("{ name: HEARTH_ALLOWED_HOSTS, value: \"localhost,hub.hearth.internal,chat.hearth.internal\" }")
                .count(),
            2,
            "the gateway and messaging: {filled}"
        );
        // Without members' apps, the assistant's service publishes nothing.
        settings.apps = false;
        let chat_only = only_with(&template, &settings.switches());
        let filled = pod(&chat_only, &settings.values()).unwrap();
        assert!(filled.contains("hostIP: \"100.100.0.1\""), "{filled}");
        assert!(!filled.contains("100.100.0.2"), "{filled}");
    }
}
