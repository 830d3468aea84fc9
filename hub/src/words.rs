//! What `hearth setup` says to the admin, in English or Korean: its
//! questions, why an answer was refused, the advice on a model that speaks
//! Korean, and the summary at the end. Pure. (`hearth status` speaks
//! through [`crate::health`].)

use hearth_assistant::language::Language;

use crate::answers::AnswerError;

/// A question setup asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Question {
    /// The household's language.
    Language,
    /// The household's name.
    Household,
    /// The public URL.
    Url,
    /// The first admin.
    Admin,
    /// The model.
    Model,
    /// Whether members' apps may use the hub.
    Apps,
}

impl Question {
    /// The question, in `language`.
    pub fn ask(self, language: Language) -> &'static str {
        match (self, language) {
            (Question::Language, _) => "The household's language / 가족의 언어 (en, ko)",
            (Question::Household, Language::English) => "The household's name",
            (Question::Household, Language::Korean) => "가족(집)의 이름",
            (Question::Url, Language::English) => "The address members' devices reach this hub at",
            (Question::Url, Language::Korean) => "가족의 기기가 이 허브에 접속할 주소",
            (Question::Admin, Language::English) => {
                "The first admin's user name (also the first member)"
            }
            (Question::Admin, Language::Korean) => {
                "첫 관리자의 사용자 이름 (첫 번째 가족 구성원이기도 해요)"
            }
            (Question::Model, Language::English) => {
                "The model: default, ollama[:NAME], or a GGUF file's path"
            }
            (Question::Model, Language::Korean) => {
                "모델: default, ollama[:이름], 또는 GGUF 파일 경로"
            }
            (Question::Apps, Language::English) => {
                "May members' apps (Open WebUI, an Ollama app, the OpenAI SDK) use this hub as \
                 their Ollama and OpenAI server, on the mesh only? yes or no"
            }
            (Question::Apps, Language::Korean) => {
                "가족의 앱(Open WebUI, Ollama 앱, OpenAI SDK)이 이 허브를 Ollama·OpenAI 서버로 \
                 쓰게 할까요? 메시 안에서만 열려요. yes 또는 no"
            }
        }
    }
}

/// When an answer was needed and none could be asked for.
pub fn no_answer(language: Language, question: Question) -> String {
    let question = question.ask(language);
    match language {
        Language::English => {
            format!("{question}: no answer given (pass it as a flag; see hearth setup --help)")
        }
        Language::Korean => {
            format!("{question}: 답이 없어요 (옵션으로 주세요. hearth setup --help 참고)")
        }
    }
}

/// When an empty answer has no default.
pub fn answer_needed(language: Language, question: Question) -> String {
    let question = question.ask(language);
    match language {
        Language::English => format!("{question}: an answer is needed"),
        Language::Korean => format!("{question}: 답이 필요해요"),
    }
}

/// Why an answer was refused, in `language`.
pub fn answer_error(language: Language, error: &AnswerError) -> String {
    match language {
        Language::English => error.to_string(),
        Language::Korean => match error {
            AnswerError::Language(text) => {
                format!("언어 {text:?}는 en(영어) 또는 ko(한국어)여야 해요")
            }
            AnswerError::Household(name) => {
                format!("가족 이름 {name:?}는 보이는 글자 1~64자여야 해요")
            }
            AnswerError::Url(text) => format!(
                "공개 주소 {text:?}는 URL이 아니에요: 가족의 기기가 허브에 접속할 주소를 주세요 (예: https://hub.home.example)"
            ),
            AnswerError::UrlHost(text) => format!(
                "공개 주소 {text:?}에 호스트가 없어요: 가족의 기기가 허브에 접속할 이름이나 주소를 주세요 (예: https://hub.home.example)"
            ),
            AnswerError::UrlScheme(text) => format!(
                "공개 주소 {text:?}는 https://로 시작해야 해요 (코디네이터는 HTTPS로 답해요. 인증서를 믿지 못하는 휴대폰은 일반 HTTP 포트를 써요: --http-port)"
            ),
            AnswerError::UrlExtra(text) => {
                format!(
                    "공개 주소 {text:?}는 https://호스트 또는 https://호스트:포트 만이어야 해요"
                )
            }
            AnswerError::Admin => "첫 관리자의 사용자 이름이 없어요".into(),
            AnswerError::AdminName(name) => format!(
                "첫 관리자의 사용자 이름 {name:?}는 로마자(a-z, A-Z)와 숫자, . _ @ + - 로 1~64자여야 해요. \
                 한글 이름은 쓸 수 없어요: 사용자 이름은 접근 정책, 가족 채팅방 주소, SSH 사용자 이름에 \
                 그대로 들어가는데 그곳들이 다른 글자를 받지 않기 때문이에요 (예: jisoo)"
            ),
            AnswerError::Model(text) => format!(
                "모델 {text:?}는 default (작은 모델 패키지), ollama 또는 ollama:이름 (이 컴퓨터의 Ollama), 또는 GGUF 파일 경로여야 해요"
            ),
            AnswerError::HttpPort(text) => {
                format!("일반 HTTP 포트 {text:?}는 포트 번호(1-65535)나 off여야 해요")
            }
            AnswerError::YesNo(text) => format!("{text:?}는 yes(예)나 no(아니요)여야 해요"),
            AnswerError::SamePort(port) => {
                format!("공개 주소의 포트 {port}와 일반 HTTP 포트가 같아요")
            }
        },
    }
}

/// When an Ollama answers here: its models.
pub fn ollama_found(language: Language, url: &str, models: &str) -> String {
    match language {
        Language::English => format!("An Ollama answers at {url} with: {models}"),
        Language::Korean => format!("{url}의 Ollama에 있는 모델: {models}"),
    }
}

/// When setup failed and takes back what it made.
pub fn taking_back(language: Language) -> &'static str {
    match language {
        Language::English => "setup failed; taking back what this run made",
        Language::Korean => "설정에 실패해서 이번에 만든 것을 되돌리고 있어요",
    }
}

/// An Ollama model that speaks Korean for a machine with `memory` bytes:
/// its name and download size. EXAONE 3.5 (LG AI Research) is trained on
/// Korean and English.
pub fn korean_model(memory: u64) -> (&'static str, &'static str) {
    const GIB: u64 = 1 << 30;
    if memory >= 12 * GIB {
        ("exaone3.5:7.8b", "4.8 GB")
    } else {
        ("exaone3.5:2.4b", "1.6 GB")
    }
}

/// What a Korean household is told about its model when the one chosen is
/// the packaged small model, which speaks no Korean: the Ollama model to
/// use instead, for this machine's `memory` bytes.
pub fn korean_model_advice(memory: u64) -> String {
    let (name, size) = korean_model(memory);
    let gib = memory >> 30;
    format!(
        "기본 모델(SmolLM2-135M, 패키지 hearth-model-smollm2)은 한국어를 하지 못해요. 패키지 저장소에는 \
         한국어를 하는 작은 대화 모델이 없어요. 한국어로 대화하려면 이 컴퓨터에 Ollama를 설치하고 \
         (https://ollama.com) 메모리({gib} GB)에 맞는 모델을 받으세요:\n\n  \
         ollama pull {name}    # {size}, LG AI Research의 EXAONE 3.5 (한국어·영어, 비상업 라이선스)\n\n\
         또는 Apache 2.0 라이선스의 qwen2.5:3b (1.9 GB). 그다음 모델 질문에 ollama:{name} 라고 답하거나 \
         hearth setup --model ollama:{name} 을 실행하세요. 한국어 기억과 문서 검색은 모델과 상관없이 \
         한국어 형태(조사, 어미)를 알아봐요."
    )
}

/// A member's key to join one device, as the admin hands it over: the
/// key, where the official apps sign in, and Hearth's own agent.
pub struct Invitation<'a> {
    /// Whose devices it joins.
    pub member: &'a str,
    /// The key.
    pub key: &'a str,
    /// The login URL for the official apps.
    pub login: &'a str,
    /// The login URL as a QR code.
    pub qr: &'a str,
    /// Whether the device joins at once (else it waits for `hearth devices approve`).
    pub pre_approved: bool,
}

impl Invitation<'_> {
    /// The text, in `language`.
    pub fn say(&self, language: Language) -> String {
        let Invitation {
            member,
            key,
            login,
            qr,
            pre_approved,
        } = self;
        match (language, pre_approved) {
            (Language::English, _) => format!(
                "{member}'s join key (one device, valid 7 days{}):\n\n  {key}\n\n\
                 Official Tailscale apps: choose \"Use an alternate server\" (or --login-server) with\n\n  \
                 {login}\n\n\
                 and sign in with the key:\n\n  tailscale up --login-server {login} --authkey <the key above>\n\n\
                 {qr}\n\
                 A Linux computer, with the hearth-agent package: the key in /etc/hearth/join-token (root's, 0600), then\n  \
                 systemctl enable --now hearth-agent\n",
                if *pre_approved {
                    ""
                } else {
                    "; the device then waits for `hearth devices approve ID`"
                }
            ),
            (Language::Korean, _) => format!(
                "{member}의 가입 키 (기기 한 대, 7일 동안 유효{}):\n\n  {key}\n\n\
                 공식 Tailscale 앱: \"Use an alternate server\"(또는 --login-server)를 고르고 이 주소를 넣으세요\n\n  \
                 {login}\n\n\
                 그리고 키로 로그인하세요:\n\n  tailscale up --login-server {login} --authkey <위의 키>\n\n\
                 {qr}\n\
                 리눅스 컴퓨터 (hearth-agent 패키지): 키를 /etc/hearth/join-token (root 전용, 0600)에 넣고\n  \
                 systemctl enable --now hearth-agent\n",
                if *pre_approved {
                    ""
                } else {
                    "; 그다음 기기는 `hearth devices approve 번호`를 기다려요"
                }
            ),
        }
    }
}

/// What the admin is told at the end, in `language`.
pub struct Summary<'a> {
    /// The household's name.
    pub household: &'a str,
    /// The first admin.
    pub admin: &'a str,
    /// Their join key.
    pub key: &'a str,
    /// The login URL for the official apps.
    pub login: &'a str,
    /// The login URL as a QR code.
    pub qr: &'a str,
    /// The chat's address on the mesh.
    pub chat: &'a str,
    /// Where members' apps reach the hub, when they may.
    pub apps: Option<AppsAt>,
}

/// Where members' apps reach the hub on the mesh: Ollama's API and the
/// OpenAI (and Anthropic) API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppsAt {
    /// `http://assistant.<tailnet>:11434 (ADDRESS)`.
    pub ollama: String,
    /// `http://assistant.<tailnet>:18789/v1`.
    pub openai: String,
}

impl AppsAt {
    /// The addresses at `host` (the assistant's service name), which is
    /// at `address`.
    pub fn new(host: &str, address: std::net::Ipv4Addr) -> AppsAt {
        AppsAt {
            ollama: format!("http://{host}:{} ({address})", crate::render::OLLAMA_PORT),
            openai: format!("http://{host}:{}/v1", crate::layout::GATEWAY_PORT),
        }
    }

    /// The line setup prints, in `language`.
    pub fn say(&self, language: Language) -> String {
        let AppsAt { ollama, openai } = self;
        match language {
            Language::English => format!(
                "Members' apps (Open WebUI, Ollama apps, the OpenAI SDK), from a device in the mesh: \
                 Ollama at {ollama}, OpenAI at {openai} (any API key)\n"
            ),
            Language::Korean => format!(
                "가족의 앱 (Open WebUI, Ollama 앱, OpenAI SDK), 메시 안의 기기에서: \
                 Ollama는 {ollama}, OpenAI는 {openai} (API 키는 아무거나)\n"
            ),
        }
    }
}

impl Summary<'_> {
    /// The text, in `language`.
    pub fn say(&self, language: Language) -> String {
        let Summary {
            household,
            admin,
            key,
            login,
            qr,
            chat,
            apps,
        } = self;
        let apps = apps
            .as_ref()
            .map_or_else(String::new, |apps| apps.say(language));
        let invitation = Invitation {
            member: admin,
            key,
            login,
            qr,
            pre_approved: true,
        }
        .say(language);
        match language {
            Language::English => format!(
                "\nHearth is ready: {household}.\n\n\
                 First member: {invitation}\n\
                 The household's chat, from a device in the mesh: {chat}\n{apps}\n\
                 More members and devices: hearth members add NAME, hearth invite NAME, hearth devices.\n\
                 How the hub is doing: hearth status. Back it up: hearth backup FILE."
            ),
            Language::Korean => format!(
                "\nHearth가 준비됐어요: {household}.\n\n\
                 첫 번째 구성원: {invitation}\n\
                 가족 채팅 (메시 안의 기기에서): {chat}\n{apps}\n\
                 구성원과 기기 추가: hearth members add 이름, hearth invite 이름, hearth devices.\n\
                 허브 상태: hearth status. 백업: hearth backup 파일.\n\
                 한국어 안내서: /usr/share/doc/hearth/ko/ (저장소의 docs/ko/)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_korean_household_is_asked_and_told_in_korean() {
        assert_eq!(Question::Household.ask(Language::Korean), "가족(집)의 이름");
        assert_eq!(
            answer_error(Language::Korean, &AnswerError::Admin),
            "첫 관리자의 사용자 이름이 없어요"
        );
        assert_eq!(
            answer_error(Language::English, &AnswerError::Admin),
            "the first admin's user name is missing"
        );
        assert!(no_answer(Language::Korean, Question::Url).contains("답이 없어요"));
        let summary = Summary {
            household: "김씨네",
            admin: "jisu",
            key: "KEY",
            login: "http://hub",
            qr: "",
            chat: "http://chat.hearth.internal:18790/ (http://100.100.0.1:18790/)",
            apps: Some(AppsAt::new(
                "assistant.hearth.internal",
                std::net::Ipv4Addr::new(100, 100, 0, 2),
            )),
        };
        assert!(
            summary
                .say(Language::Korean)
                .starts_with("\nHearth가 준비됐어요: 김씨네.")
        );
        assert!(
            summary
                .say(Language::Korean)
                .contains("Ollama는 http://assistant.hearth.internal:11434 (100.100.0.2), OpenAI는 http://assistant.hearth.internal:18789/v1")
        );
        assert!(
            summary
                .say(Language::English)
                .starts_with("\nHearth is ready: 김씨네.")
        );
    }

    #[test]
    fn the_korean_model_fits_the_machines_memory() {
        assert_eq!(korean_model(4 << 30).0, "exaone3.5:2.4b");
        assert_eq!(korean_model(8 << 30).0, "exaone3.5:2.4b");
        assert_eq!(korean_model(16 << 30).0, "exaone3.5:7.8b");
        let advice = korean_model_advice(16 << 30);
        assert!(advice.contains("ollama pull exaone3.5:7.8b"), "{advice}");
        assert!(advice.contains("16 GB"), "{advice}");
    }
}
