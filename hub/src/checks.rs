//! Why the machine cannot host the hub as it was answered (setup's
//! machine checks: the package's parts, the model, the ports, D-Bus), said
//! in English or Korean with the next step. Pure; the checks themselves
//! are [`crate::machine`]'s.

use std::path::PathBuf;

use hearth_assistant::language::Language;

/// Why the machine cannot host the hub as answered: said in this run's
/// language ([`crate::steps::language`]) wherever it is shown, by
/// [`MachineError::say`] in a given one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineError {
    /// The hub was set up with another URL or admin.
    SetUpFor {
        /// The URL it was set up for.
        url: String,
        /// Its admin.
        admin: String,
    },
    /// The coordinator refuses the admin's name (its reason).
    AdminName(String),
    /// A file of the package is missing.
    PackagePart(PathBuf),
    /// A port is held by another program (named when `ss` could).
    PortTaken {
        /// The port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: &'static str,
        /// ` (program)` or nothing.
        holder: String,
    },
    /// D-Bus is not running and did not start (why).
    NoSystemBus(String),
    /// The model package is not installed (its folder).
    NoDefaultModel(PathBuf),
    /// The model file cannot be read (why).
    UnreadableModel {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The model file is not a GGUF.
    NotGguf(PathBuf),
    /// llama-server is missing (its path).
    NoLlamaServer(PathBuf),
    /// Nothing answers at a model server's URL (why).
    ServerSilent {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// A model server answered, not as an OpenAI-compatible one.
    ServerNotOpenAi(String),
    /// A model server lists no model.
    ServerEmpty(String),
    /// No Ollama answers (where, why).
    OllamaSilent {
        /// Where it was asked.
        at: String,
        /// Why.
        detail: String,
    },
    /// The Ollama has no model.
    OllamaEmpty(String),
    /// The Ollama lacks the model named.
    OllamaLacks {
        /// Where it was asked.
        at: String,
        /// The model asked for.
        name: String,
        /// What it has.
        has: String,
    },
}

impl MachineError {
    /// The refusal in `language`, with the next step.
    pub fn say(&self, language: Language) -> String {
        machine_error(language, self)
    }
}

impl std::fmt::Display for MachineError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.say(crate::steps::language()))
    }
}

impl std::error::Error for MachineError {}

/// Why the machine cannot host the hub as answered, in `language`, with
/// the next step.
fn machine_error(language: Language, error: &MachineError) -> String {
    let korean = language == Language::Korean;
    match error {
        MachineError::SetUpFor { url, admin } if korean => format!(
            "이 허브는 {url}, 관리자 {admin}(으)로 설정되었고 기기들의 키가 그 주소를 가리켜요. \
             처음부터 다시 하려면 백업하고(hearth backup 파일) `apt purge hearth` 뒤에 다시 \
             설치하세요"
        ),
        MachineError::SetUpFor { url, admin } => format!(
            "this hub was set up for {url} with admin {admin}; its devices' keys name that URL. \
             To start over, back it up (hearth backup FILE), then `apt purge hearth` and install \
             it again"
        ),
        MachineError::AdminName(reason) if korean => {
            format!("관리자 이름을 코디네이터가 받지 않아요: {reason}")
        }
        MachineError::AdminName(reason) => format!("the admin's name: {reason}"),
        MachineError::PackagePart(path) if korean => format!(
            "{}이(가) 없어요: hearth 패키지가 설치되어 있나요?",
            path.display()
        ),
        MachineError::PackagePart(path) => format!(
            "{} is missing: is the hearth package installed?",
            path.display()
        ),
        MachineError::PortTaken {
            port,
            protocol,
            holder,
        } if korean => format!(
            "포트 {port}/{protocol}을(를) 다른 프로그램이 쓰고 있어요{holder}. 그 프로그램을 \
             멈추거나 허브에 다른 포트를 주세요 (--url https://호스트:포트, --http-port 포트|off)"
        ),
        MachineError::PortTaken {
            port,
            protocol,
            holder,
        } => format!(
            "port {port}/{protocol} is taken by another program{holder}: stop it, or give the \
             hub another port (--url https://HOST:PORT, --http-port PORT|off)"
        ),
        MachineError::NoSystemBus(why) if korean => format!(
            "시스템 D-Bus가 실행 중이 아니고 시작되지도 않았어요 ({why}). 파드에 필요해요. \
             설치하고 시작한 뒤(apt install dbus; systemctl start dbus) 다시 실행하세요"
        ),
        MachineError::NoSystemBus(why) => format!(
            "the system's D-Bus is not running and did not start ({why}): the pod needs it. \
             Install and start it (apt install dbus; systemctl start dbus), then run this again"
        ),
        MachineError::NoDefaultModel(folder) if korean => format!(
            "기본 모델이 설치되어 있지 않아요 ({}이(가) 비어 있어요). hearth-model-smollm2 \
             패키지를 설치하거나 --model ollama 또는 --model 파일.gguf 를 고르세요",
            folder.display()
        ),
        MachineError::NoDefaultModel(folder) => format!(
            "the default model is not installed ({} is empty): install the hearth-model-smollm2 \
             package, or choose --model ollama or --model FILE.gguf",
            folder.display()
        ),
        MachineError::UnreadableModel { path, detail } if korean => {
            format!(
                "모델 파일 {}을(를) 읽을 수 없어요: {detail}",
                path.display()
            )
        }
        MachineError::UnreadableModel { path, detail } => {
            format!("cannot read the model file {}: {detail}", path.display())
        }
        MachineError::NotGguf(path) if korean => format!(
            "{}은(는) GGUF 모델 파일이 아니에요 (llama.cpp의 형식: .gguf로 끝나는 파일)",
            path.display()
        ),
        MachineError::NotGguf(path) => format!(
            "{} is not a GGUF model file (llama.cpp's format: a file ending in .gguf)",
            path.display()
        ),
        MachineError::NoLlamaServer(path) if korean => format!(
            "{}이(가) 없어요: hearth-llama-server 패키지를 설치하거나 --model ollama 를 고르세요",
            path.display()
        ),
        MachineError::NoLlamaServer(path) => format!(
            "{} is missing: install the hearth-llama-server package, or choose --model ollama",
            path.display()
        ),
        MachineError::ServerSilent { url, detail } if korean => format!(
            "{url}에서 아무것도 답하지 않아요 ({detail}). 모델 서버를 시작하거나 다른 모델을 \
             고르세요"
        ),
        MachineError::ServerSilent { url, detail } => format!(
            "nothing answers at {url} ({detail}): start the model server, or choose another model"
        ),
        MachineError::ServerNotOpenAi(url) if korean => {
            format!("{url}/v1/models 가 OpenAI 호환 서버로 답하지 않았어요")
        }
        MachineError::ServerNotOpenAi(url) => {
            format!("{url}/v1/models did not answer as an OpenAI-compatible server")
        }
        MachineError::ServerEmpty(url) if korean => {
            format!("{url}의 모델 서버에 모델이 없어요")
        }
        MachineError::ServerEmpty(url) => format!("the model server at {url} lists no model"),
        MachineError::OllamaSilent { at, detail } if korean => format!(
            "{at}에서 Ollama가 답하지 않아요 ({detail}). Ollama를 시작하거나 다른 모델을 고르세요"
        ),
        MachineError::OllamaSilent { at, detail } => {
            format!("no Ollama answers at {at} ({detail}): start it, or choose another model")
        }
        MachineError::OllamaEmpty(at) if korean => {
            format!("{at}의 Ollama에 모델이 없어요: 먼저 `ollama pull 이름`을 하세요")
        }
        MachineError::OllamaEmpty(at) => {
            format!("the Ollama at {at} has no model: `ollama pull NAME` first")
        }
        MachineError::OllamaLacks { at, name, has } if korean => {
            format!("{at}의 Ollama에 {name} 모델이 없어요 (있는 모델: {has})")
        }
        MachineError::OllamaLacks { at, name, has } => {
            format!("the Ollama at {at} has no model {name} (it has: {has})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening of issue 67's item 4: setup's machine checks said in
    /// Korean to a Korean household, each with the same facts (paths,
    /// ports, names) and a next step as the English.
    #[test]
    fn each_machine_refusal_is_said_in_both_languages() {
        use std::path::PathBuf;
        let file = || PathBuf::from("/srv/models/qwen.gguf");
        let refusals = [
            MachineError::SetUpFor {
                url: "https://hub.parks".into(),
                admin: "jisoo".into(),
            },
            MachineError::AdminName("names are 1-64 letters".into()),
            MachineError::PackagePart(file()),
            MachineError::PortTaken {
                port: 443,
                protocol: "tcp",
                holder: " (\"nginx\")".into(),
            },
            MachineError::NoSystemBus("dbus.service failed".into()),
            MachineError::NoDefaultModel(file()),
            MachineError::UnreadableModel {
                path: file(),
                detail: "Permission denied".into(),
            },
            MachineError::NotGguf(file()),
            MachineError::NoLlamaServer(file()),
            MachineError::ServerSilent {
                url: "http://gpu:8080".into(),
                detail: "refused".into(),
            },
            MachineError::ServerNotOpenAi("http://gpu:8080".into()),
            MachineError::ServerEmpty("http://gpu:8080".into()),
            MachineError::OllamaSilent {
                at: "127.0.0.1:11434".into(),
                detail: "refused".into(),
            },
            MachineError::OllamaEmpty("127.0.0.1:11434".into()),
            MachineError::OllamaLacks {
                at: "127.0.0.1:11434".into(),
                name: "qwen3".into(),
                has: "llama3".into(),
            },
        ];
        let facts = [
            "https://hub.parks",
            "jisoo",
            "/srv/models/qwen.gguf",
            "443",
            "nginx",
            "http://gpu:8080",
            "127.0.0.1:11434",
            "qwen3",
            "llama3",
            "hearth-",
            "--model",
            "--url",
        ];
        for refusal in refusals {
            let english = refusal.say(Language::English);
            let korean = refusal.say(Language::Korean);
            assert!(
                korean.chars().any(hearth_assistant::language::is_hangul),
                "{korean}"
            );
            for fact in facts {
                assert_eq!(
                    english.contains(fact),
                    korean.contains(fact),
                    "{fact}: {english:?} / {korean:?}"
                );
            }
        }
    }
}
