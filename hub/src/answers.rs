//! What `hearth setup` asks, checked before anything is written: each
//! answer is parsed into a type that cannot hold a wrong one, and each
//! refusal says what was wrong and what would do. Pure: the machine's
//! checks (ports, files, Ollama) are the setup shell's.

use std::path::PathBuf;

use hearth_assistant::language::Language;
use serde::{Deserialize, Serialize};

/// A refused answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The household's language.
    #[error("the language {0:?} must be en (English) or ko (Korean)")]
    Language(String),
    /// The household's name.
    #[error("the household's name {0:?} must be 1 to 64 visible characters")]
    Household(String),
    /// The public URL does not parse.
    #[error(
        "the public URL {0:?} is not a URL: give the address members' devices reach the hub at, \
         e.g. https://hub.home.example"
    )]
    Url(String),
    /// The public URL names no host.
    #[error(
        "the public URL {0:?} has no host: give the name or address members' devices reach the \
         hub at, e.g. https://hub.home.example"
    )]
    UrlHost(String),
    /// The public URL is not HTTPS.
    #[error(
        "the public URL {0:?} must start with https:// (the coordinator serves HTTPS; phones that \
         cannot trust its certificate use the plain-HTTP port, --http-port)"
    )]
    UrlScheme(String),
    /// The public URL has more than scheme, host and port.
    #[error("the public URL {0:?} must be only https://HOST or https://HOST:PORT")]
    UrlExtra(String),
    /// The admin's name is empty.
    #[error("the first admin's user name is missing")]
    Admin,
    /// The admin's name is not a user name.
    #[error(
        "the first admin's user name {0:?} must be 1 to 64 of a-z, A-Z, 0-9 and . _ @ + - \
         (Latin letters only: the name is written as it is into the access policy, the \
         household chat's room addresses and SSH's user names, which take no other \
         letters; for example jisoo)"
    )]
    AdminName(String),
    /// The model answer.
    #[error(
        "the model {0:?} is not one of: default (the small model's package), ollama or \
         ollama:NAME (an Ollama on this machine), or the path of a GGUF file"
    )]
    Model(String),
    /// The plain-HTTP port.
    #[error("the plain-HTTP port {0:?} must be a port number (1-65535) or off")]
    HttpPort(String),
    /// Not a yes or a no.
    #[error("{0:?} is not yes or no")]
    YesNo(String),
    /// Two answers want one port.
    #[error("the public URL's port {0} and the plain-HTTP port are the same")]
    SamePort(u16),
}

/// Where members' devices reach the coordinator: `https://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicUrl {
    host: String,
    port: u16,
}

impl PublicUrl {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<PublicUrl, AnswerError> {
        let text = text.trim();
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(url::ParseError::EmptyHost) => return Err(AnswerError::UrlHost(text.into())),
            Err(url::ParseError::RelativeUrlWithoutBase) if !text.contains("://") => {
                // `hub.home.example` alone: say what is missing.
                return Err(AnswerError::UrlScheme(text.into()));
            }
            Err(_) => return Err(AnswerError::Url(text.into())),
        };
        if url.scheme() != "https" {
            return Err(AnswerError::UrlScheme(text.into()));
        }
        let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
            return Err(AnswerError::UrlHost(text.into()));
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || !matches!(url.path(), "" | "/")
        {
            return Err(AnswerError::UrlExtra(text.into()));
        }
        Ok(PublicUrl {
            host: host.to_owned(),
            port: url.port_or_known_default().unwrap_or(443),
        })
    }

    /// Its host (a name, an IPv4 address, or an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://HOST[:PORT]` on the plain-HTTP port.
    pub fn plain(&self, port: u16) -> String {
        if port == 80 {
            format!("http://{}", self.host)
        } else {
            format!("http://{}:{port}", self.host)
        }
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.port == 443 {
            write!(f, "https://{}", self.host)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = AnswerError;
    fn try_from(text: String) -> Result<PublicUrl, AnswerError> {
        PublicUrl::parse(&text)
    }
}

impl From<PublicUrl> for String {
    fn from(url: PublicUrl) -> String {
        url.to_string()
    }
}

/// Which model answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelChoice {
    /// The small model the `hearth-model-smollm2` package carries.
    Default,
    /// A GGUF file, served by the packaged llama-server.
    File {
        /// Where the admin keeps it (setup copies it).
        path: PathBuf,
    },
    /// An Ollama on this machine (127.0.0.1:11434; for the hub in Podman
    /// alone, the machine's own at `host.containers.internal:11434`).
    Ollama {
        /// The model's name there (empty: the first it lists).
        name: String,
    },
    /// An OpenAI-compatible model server (llama-server) at `url`, for the
    /// hub in Podman alone (`server:http://host.containers.internal:8080`).
    Server {
        /// `http://HOST:PORT`.
        url: String,
    },
}

impl ModelChoice {
    /// Parses `default`, `ollama`, `ollama:NAME` or a path.
    pub fn parse(text: &str) -> Result<ModelChoice, AnswerError> {
        let text = text.trim();
        match text {
            "" => Err(AnswerError::Model(text.into())),
            "default" => Ok(ModelChoice::Default),
            "ollama" => Ok(ModelChoice::Ollama {
                name: String::new(),
            }),
            _ => {
                if let Some(name) = text.strip_prefix("ollama:") {
                    return if ollama_name(name) {
                        Ok(ModelChoice::Ollama { name: name.into() })
                    } else {
                        Err(AnswerError::Model(text.into()))
                    };
                }
                if let Some(url) = text.strip_prefix("server:") {
                    return server_url(url)
                        .map(|url| ModelChoice::Server { url })
                        .ok_or_else(|| AnswerError::Model(text.into()));
                }
                if text.chars().any(char::is_control) {
                    return Err(AnswerError::Model(text.into()));
                }
                Ok(ModelChoice::File { path: text.into() })
            }
        }
    }

    /// The model's id in the gateway's configuration.
    pub fn id(&self, default_model_file: &str) -> String {
        match self {
            ModelChoice::Default => model_id(default_model_file),
            ModelChoice::File { path } => {
                model_id(&path.file_name().unwrap_or_default().to_string_lossy())
            }
            ModelChoice::Ollama { name } => name.clone(),
            ModelChoice::Server { .. } => model_id(default_model_file),
        }
    }

    /// Whether the packaged llama-server serves it (rather than Ollama or
    /// a server of the admin's).
    pub fn uses_llama_server(&self) -> bool {
        matches!(self, ModelChoice::Default | ModelChoice::File { .. })
    }
}

/// `http://HOST:PORT` (a host name or an address, and a port), without a
/// trailing `/`.
fn server_url(text: &str) -> Option<String> {
    let rest = text.strip_prefix("http://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
    let port_ok = port.parse::<u16>().is_ok_and(|port| port > 0);
    (host_ok && port_ok).then(|| format!("http://{host}:{port}"))
}

/// Whether `name` reads as an Ollama model name (`llama3.2`, `qwen2.5:7b`,
/// `library/gemma3:4b-it-q4_K_M`).
fn ollama_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c))
}

/// A model id as the gateway names it, from a server's own name for it.
pub fn model_id_of(name: &str) -> String {
    model_id(name.rsplit('/').next().unwrap_or(name))
}

/// A model id from a GGUF file's name: lower-case letters, digits, `.`
/// and `-`, without the extension (`SmolLM2-135M-Instruct.Q4_1.gguf` ->
/// `smollm2-135m-instruct.q4-1`).
fn model_id(file_name: &str) -> String {
    let stem = file_name
        .strip_suffix(".gguf")
        .or_else(|| file_name.strip_suffix(".GGUF"))
        .unwrap_or(file_name);
    let id: String = stem
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            _ => '-',
        })
        .take(64)
        .collect();
    let id = id.trim_matches(['-', '.']).to_owned();
    if id.is_empty() { "local".into() } else { id }
}

/// The plain-HTTP port: a number, or `off`.
pub fn parse_http_port(text: &str) -> Result<Option<u16>, AnswerError> {
    match text.trim() {
        "off" => Ok(None),
        number => number
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .map(Some)
            .ok_or_else(|| AnswerError::HttpPort(text.into())),
    }
}

/// Checks the household's name: 1 to 64 characters a reader sees as
/// written (no control characters, no direction overrides or zero-width
/// characters).
pub fn check_household(name: &str) -> Result<String, AnswerError> {
    let name = name.trim();
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    };
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(hidden) {
        return Err(AnswerError::Household(name.into()));
    }
    Ok(name.to_owned())
}

/// Everything setup was told, as `setup.json` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Answers {
    /// The household's name (the assistant's persona names it).
    pub household: String,
    /// Where devices reach the coordinator.
    pub url: PublicUrl,
    /// The first admin (also the first member).
    pub admin: String,
    /// Which model answers.
    pub model: ModelChoice,
    /// Port for Tailscale's control protocol over plain HTTP (official
    /// apps on phones that cannot trust the hub's own certificate), or none.
    pub http_port: Option<u16>,
    /// This hub's name in the mesh.
    pub hostname: String,
    /// The household's language: what setup and `hearth status` speak,
    /// and the assistant's persona is written in (English for a record
    /// from before it was asked).
    #[serde(default)]
    pub language: Language,
    /// Whether members' apps may use the hub as their Ollama and OpenAI
    /// server, on the mesh only (yes for a record from before it was asked).
    #[serde(default = "yes")]
    pub apps: bool,
}

fn yes() -> bool {
    true
}

/// `yes` or `no`, as setup shows an answer.
pub fn yes_no(answer: bool) -> &'static str {
    if answer { "yes" } else { "no" }
}

/// A yes or no: `yes`, `y`, `no`, `n` (any case), `true`, `false`, `on`,
/// `off`, or Korean's 예/네/응 and 아니요/아니오/아니.
pub fn parse_yes_no(text: &str) -> Result<bool, AnswerError> {
    match text.trim().to_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "예" | "네" | "응" => Ok(true),
        "no" | "n" | "false" | "off" | "아니요" | "아니오" | "아니" => Ok(false),
        _ => Err(AnswerError::YesNo(text.into())),
    }
}

/// The household's language from setup's answer: `en`, `ko`, or their names.
pub fn parse_language(text: &str) -> Result<Language, AnswerError> {
    match text.trim().to_lowercase().as_str() {
        "en" | "english" | "영어" => Ok(Language::English),
        "ko" | "kr" | "korean" | "한국어" | "ko-kr" => Ok(Language::Korean),
        _ => Err(AnswerError::Language(text.into())),
    }
}

/// The language of a locale as `LANG` names it (`ko_KR.UTF-8`): Korean for
/// Korean, English for any other or none.
pub fn language_of_locale(locale: Option<&str>) -> Language {
    match locale {
        Some(locale) if locale.to_lowercase().starts_with("ko") => Language::Korean,
        _ => Language::English,
    }
}

impl Answers {
    /// Checks the answers against each other.
    pub fn check(&self) -> Result<(), AnswerError> {
        check_household(&self.household)?;
        if self.admin.trim().is_empty() {
            return Err(AnswerError::Admin);
        }
        if !hearth_roster::valid_member(&self.admin) {
            return Err(AnswerError::AdminName(self.admin.clone()));
        }
        if self.http_port == Some(self.url.port()) {
            return Err(AnswerError::SamePort(self.url.port()));
        }
        Ok(())
    }

    /// The login URL for the official Tailscale apps: plain HTTP when the
    /// hub offers it (any phone can use it), else the HTTPS URL.
    pub fn login_url(&self) -> String {
        match self.http_port {
            Some(port) => self.url.plain(port),
            None => self.url.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_host_is_taken_with_its_port() {
        let url = PublicUrl::parse("https://hub.home.example").unwrap();
        assert_eq!((url.host(), url.port()), ("hub.home.example", 443));
        assert_eq!(url.to_string(), "https://hub.home.example");
        let url = PublicUrl::parse(" https://10.0.0.5:8443/ ").unwrap();
        assert_eq!((url.host(), url.port()), ("10.0.0.5", 8443));
        assert_eq!(url.to_string(), "https://10.0.0.5:8443");
        assert_eq!(url.plain(80), "http://10.0.0.5");
        assert_eq!(url.plain(8080), "http://10.0.0.5:8080");
        let url = PublicUrl::parse("https://[fd00::1]").unwrap();
        assert_eq!(url.to_string(), "https://[fd00::1]");
    }

    #[test]
    fn a_url_without_a_host_is_refused_saying_so() {
        for text in ["https://", "https://:443", "https:///"] {
            let refused = PublicUrl::parse(text).unwrap_err();
            assert!(
                matches!(refused, AnswerError::UrlHost(_) | AnswerError::Url(_)),
                "{text}: {refused:?}"
            );
            assert!(
                refused
                    .to_string()
                    .contains("e.g. https://hub.home.example")
            );
        }
        assert_eq!(
            PublicUrl::parse("https://").unwrap_err(),
            AnswerError::UrlHost("https://".into())
        );
    }

    #[test]
    fn other_schemes_and_extra_parts_are_refused() {
        assert!(matches!(
            PublicUrl::parse("hub.home.example"),
            Err(AnswerError::UrlScheme(_))
        ));
        assert!(matches!(
            PublicUrl::parse("http://hub.home.example"),
            Err(AnswerError::UrlScheme(_))
        ));
        for text in [
            "https://hub.example/path",
            "https://hub.example/?q=1",
            "https://admin:pw@hub.example",
            "https://hub.example/#x",
        ] {
            assert!(
                matches!(PublicUrl::parse(text), Err(AnswerError::UrlExtra(_))),
                "{text}"
            );
        }
        assert!(matches!(
            PublicUrl::parse("https://hub example"),
            Err(AnswerError::Url(_))
        ));
    }

    #[test]
    fn models_are_the_default_a_file_or_ollama() {
        assert_eq!(ModelChoice::parse("default"), Ok(ModelChoice::Default));
        assert_eq!(
            ModelChoice::parse("ollama:qwen2.5:7b"),
            Ok(ModelChoice::Ollama {
                name: "qwen2.5:7b".into()
            })
        );
        assert_eq!(
            ModelChoice::parse("ollama"),
            Ok(ModelChoice::Ollama {
                name: String::new()
            })
        );
        assert_eq!(
            ModelChoice::parse("/srv/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf"),
            Ok(ModelChoice::File {
                path: "/srv/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf".into()
            })
        );
        assert!(ModelChoice::parse("ollama:bad name").is_err());
        assert!(ModelChoice::parse("").is_err());
        assert!(ModelChoice::parse("/srv/a\nb").is_err());
        assert_eq!(
            ModelChoice::parse("server:http://host.containers.internal:8080/"),
            Ok(ModelChoice::Server {
                url: "http://host.containers.internal:8080".into()
            })
        );
        for bad in [
            "server:https://x:1",
            "server:http://x",
            "server:http://:80",
            "server:http://a b:1",
        ] {
            assert!(ModelChoice::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_model_id_comes_from_the_file_name() {
        let file = ModelChoice::File {
            path: "/srv/Llama-3.2-3B-Instruct-Q4_K_M.gguf".into(),
        };
        assert_eq!(file.id(""), "llama-3.2-3b-instruct-q4-k-m");
        assert_eq!(
            ModelChoice::Default.id("SmolLM2-135M-Instruct.Q4_1.gguf"),
            "smollm2-135m-instruct.q4-1"
        );
        let odd = ModelChoice::File {
            path: "/srv/__.gguf".into(),
        };
        assert_eq!(odd.id(""), "local");
    }

    #[test]
    fn household_names_are_visible_text() {
        assert_eq!(check_household("  The Parks "), Ok("The Parks".into()));
        assert_eq!(check_household("박씨네"), Ok("박씨네".into()));
        for bad in ["", "   ", "a\u{202e}b", "a\nb", &"x".repeat(65)] {
            assert!(check_household(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_plain_port_is_a_number_or_off_and_not_the_https_one() {
        assert_eq!(parse_http_port("off"), Ok(None));
        assert_eq!(parse_http_port("80"), Ok(Some(80)));
        assert!(parse_http_port("0").is_err());
        assert!(parse_http_port("http").is_err());
        let answers = Answers {
            household: "Parks".into(),
            url: PublicUrl::parse("https://hub.example:8080").unwrap(),
            admin: "ada".into(),
            model: ModelChoice::Default,
            http_port: Some(8080),
            hostname: "hub".into(),
            language: Language::English,
            apps: true,
        };
        assert_eq!(answers.check(), Err(AnswerError::SamePort(8080)));
        // A Hangul admin name is refused, saying why (the policy, room
        // addresses and SSH take only Latin letters), in either language.
        let hangul = Answers {
            admin: "지수".into(),
            http_port: None,
            ..answers
        };
        let refused = hangul.check().unwrap_err();
        assert_eq!(refused, AnswerError::AdminName("지수".into()));
        assert!(
            refused.to_string().contains("Latin letters only"),
            "{refused}"
        );
        let korean = crate::words::answer_error(Language::Korean, &refused);
        assert!(korean.contains("한글 이름은 쓸 수 없어요"), "{korean}");
        let fine = Answers {
            admin: "jisoo".into(),
            ..hangul
        };
        assert_eq!(fine.check(), Ok(()));
    }

    #[test]
    fn answers_round_trip_through_their_file() {
        let answers = Answers {
            household: "Parks".into(),
            url: PublicUrl::parse("https://hub.example").unwrap(),
            admin: "ada".into(),
            model: ModelChoice::Ollama {
                name: "llama3.2".into(),
            },
            http_port: Some(80),
            hostname: "hub".into(),
            language: Language::English,
            apps: true,
        };
        let text = serde_json::to_string(&answers).unwrap();
        assert!(text.contains(r#""url":"https://hub.example""#), "{text}");
        assert_eq!(serde_json::from_str::<Answers>(&text).unwrap(), answers);
        assert_eq!(answers.login_url(), "http://hub.example");
        let bad = text.replace("https://hub.example", "https://");
        assert!(serde_json::from_str::<Answers>(&bad).is_err());
    }

    #[test]
    fn the_households_language_is_read_from_the_answer_or_the_locale() {
        assert_eq!(parse_language("ko"), Ok(Language::Korean));
        assert_eq!(parse_language(" 한국어 "), Ok(Language::Korean));
        assert_eq!(parse_language("EN"), Ok(Language::English));
        assert_eq!(
            parse_language("fr"),
            Err(AnswerError::Language("fr".into()))
        );
        assert_eq!(language_of_locale(Some("ko_KR.UTF-8")), Language::Korean);
        assert_eq!(language_of_locale(Some("C.UTF-8")), Language::English);
        assert_eq!(language_of_locale(None), Language::English);
        // A record from before the language was asked reads as English.
        let old = r#"{"household":"Parks","url":"https://hub","admin":"ada","model":{"kind":"default"},"httpPort":80,"hostname":"hub"}"#;
        let answers: Answers = serde_json::from_str(old).unwrap();
        assert_eq!(answers.language, Language::English);
    }
}
