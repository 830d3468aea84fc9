//! What the hub's commands say as they go (setup's steps and waits, a
//! backup's and a restore's lines), in the household's language: setup's
//! answer, else the recorded one, else the terminal's locale. The texts
//! are pure ([`Step::say`], [`Awaited::name`]); [`announce`] prints one in
//! the language this run speaks, set once it is known ([`use_language`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use hearth_assistant::language::Language;

static KOREAN: AtomicBool = AtomicBool::new(false);

/// Makes `language` the one this run's lines are said in.
pub fn use_language(language: Language) {
    KOREAN.store(language == Language::Korean, Ordering::Relaxed);
}

/// The language this run's lines are said in.
pub fn language() -> Language {
    if KOREAN.load(Ordering::Relaxed) {
        Language::Korean
    } else {
        Language::English
    }
}

/// Prints `step` to the admin's terminal, in this run's language.
pub fn announce(step: Step<'_>) {
    eprintln!("{}", step.say(language()));
}

/// What a step waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Awaited {
    /// The coordinator answering on its admin socket.
    Coordinator,
    /// The hub's agent's mesh address.
    MeshAddress,
    /// The agent answering at the services' addresses.
    ServicesAddresses,
    /// The chat model.
    Model,
    /// The search model.
    SearchModel,
    /// The household's chat (in Podman alone, at the hub's address).
    Chat,
    /// The chat at its service address.
    ChatService,
    /// The assistant's API at its service address.
    AssistantService,
    /// The API for members' apps (in Podman alone, at the hub's address).
    AppsApi,
    /// The gateway in the pod.
    Gateway,
    /// The system's D-Bus.
    SystemBus,
}

impl Awaited {
    /// Its name in `language`, as "waiting for …" says it.
    pub fn name(self, language: Language) -> &'static str {
        let korean = language == Language::Korean;
        match self {
            Awaited::Coordinator if korean => "코디네이터",
            Awaited::Coordinator => "the coordinator",
            Awaited::MeshAddress if korean => "허브 에이전트의 메시 주소",
            Awaited::MeshAddress => "the hub agent's mesh address",
            Awaited::ServicesAddresses if korean => "서비스 주소",
            Awaited::ServicesAddresses => "the services' addresses",
            Awaited::Model if korean => "모델",
            Awaited::Model => "the model",
            Awaited::SearchModel if korean => "검색 모델",
            Awaited::SearchModel => "the search model",
            Awaited::Chat if korean => "가족 채팅",
            Awaited::Chat => "the household's chat",
            Awaited::ChatService if korean => "서비스 주소의 채팅",
            Awaited::ChatService => "the chat at its service address",
            Awaited::AssistantService if korean => "서비스 주소의 비서",
            Awaited::AssistantService => "the assistant at its service address",
            Awaited::AppsApi if korean => "가족 앱을 위한 API",
            Awaited::AppsApi => "the API for members' apps",
            Awaited::Gateway if korean => "게이트웨이",
            Awaited::Gateway => "the gateway",
            Awaited::SystemBus if korean => "시스템 D-Bus",
            Awaited::SystemBus => "the system's D-Bus",
        }
    }

    /// Why waiting for it ended after `seconds` (`last`: what it said
    /// last).
    pub fn not_ready(self, language: Language, seconds: u64, last: &str) -> String {
        let name = self.name(language);
        match language {
            Language::Korean => format!("{name}: {seconds}초가 지나도 준비되지 않았어요: {last}"),
            Language::English => format!("{name} was not ready after {seconds} s: {last}"),
        }
    }
}

/// A line a hub command says as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// Setup writes the configuration.
    WritingConfiguration,
    /// Setup copies a model file the admin gave.
    CopyingModel(&'a Path),
    /// Setup starts the coordinator.
    StartingCoordinator,
    /// Setup joins the hub's agent to the mesh.
    Joining,
    /// Setup makes the hub the host of the household's services.
    Hosting,
    /// Setup starts the chat model.
    StartingModel,
    /// Setup starts the search model.
    StartingSearchModel,
    /// Setup asks the model server on this machine.
    AskingModel,
    /// Setup starts the pod.
    StartingAssistant,
    /// The system's D-Bus was not running and now is.
    StartedSystemBus,
    /// The pod is played again.
    PodChanged,
    /// The pod is played again: it lacks the named container.
    PodIncomplete(&'a str),
    /// Begins waiting (printed without an end of line).
    Waiting(Awaited),
    /// Ends a wait after `seconds`.
    Ready(u64),
    /// A backup leaves out a file whose name it cannot carry.
    LeftOut(&'a Path),
    /// A backup was written.
    BackupWritten {
        /// Where.
        file: &'a Path,
        /// How many entries it holds.
        entries: usize,
    },
    /// A backup sealed with the hub's own key, kept at this path.
    SealedWithHubKey(&'a Path),
    /// A restore checked the backup.
    BackupAuthentic {
        /// The household it is of (escaped).
        household: &'a str,
        /// When it was made, as said.
        made: &'a str,
        /// How many entries.
        entries: usize,
        /// Hearth's version that made it (escaped).
        version: &'a str,
    },
    /// This hub changed after the backup (at this time, said): restoring
    /// replaces what changed.
    HubNewer(&'a str),
    /// … and `--yes` says go ahead.
    GoingAhead,
    /// … asked at the terminal.
    RestoreAnyway,
    /// … without `--yes` or a terminal.
    AskYes,
    /// … and the admin said no.
    NotRestored,
    /// A restore stops the hub.
    StoppingHub,
    /// A restore starts it again.
    StartingHub,
    /// Restored, nothing set aside.
    Restored,
    /// Restored, what was there set aside (the folders follow).
    RestoredAside,
    /// A restore failed after it began.
    RestoreFailed,
    /// A restore must run as root.
    RestoreNeedsRoot,
}

impl Step<'_> {
    /// The line in `language`.
    pub fn say(&self, language: Language) -> String {
        match language {
            Language::English => self.english(),
            Language::Korean => self.korean(),
        }
    }

    fn english(&self) -> String {
        match *self {
            Step::WritingConfiguration => "Writing the configuration".into(),
            Step::CopyingModel(file) => format!("  copying {} (once)", file.display()),
            Step::StartingCoordinator => "Starting the coordinator".into(),
            Step::Joining => "Joining this hub to its mesh".into(),
            Step::Hosting => "Hosting the household's services".into(),
            Step::StartingModel => "Starting the model".into(),
            Step::StartingSearchModel => "Starting the search model".into(),
            Step::AskingModel => "Asking the model on this machine".into(),
            Step::StartingAssistant => "Starting the assistant and the household's chat".into(),
            Step::StartedSystemBus => {
                "Started the system's D-Bus (the pod's containers need it)".into()
            }
            Step::PodChanged => {
                "The pod's settings changed: playing it again (its volumes stay)".into()
            }
            Step::PodIncomplete(name) => {
                format!("The pod has no {name} container: playing it again (its volumes stay)")
            }
            Step::Waiting(awaited) => {
                format!("  waiting for {}...", awaited.name(Language::English))
            }
            Step::Ready(seconds) => format!(" ready ({seconds} s)"),
            Step::LeftOut(path) => format!(
                "  left out {} (a name a backup cannot carry)",
                path.display()
            ),
            Step::BackupWritten { file, entries } => format!(
                "wrote {} ({entries} entries; keep it off this machine, it holds the hub's keys)",
                file.display()
            ),
            Step::SealedWithHubKey(key) => format!(
                "sealed with this hub's backup key ({}): a restore on another machine needs a \
                 copy of it (hearth restore --key-file), or back up with --passphrase-file",
                key.display()
            ),
            Step::BackupAuthentic {
                household,
                made,
                entries,
                version,
            } => format!(
                "The backup of {household} made {made} ({entries} entries, Hearth {version}) is \
                 whole and authentic"
            ),
            Step::HubNewer(changed) => format!(
                "this hub changed after the backup was made (last at {changed}): restoring it \
                 replaces what changed since (devices, messages, memory, reminders) with the \
                 backup's"
            ),
            Step::GoingAhead => "going ahead (--yes)".into(),
            Step::RestoreAnyway => "Restore it anyway? [y/N] ".into(),
            Step::AskYes => {
                "Run it again with --yes to do that, or at a terminal to be asked".into()
            }
            Step::NotRestored => "not restored: the hub is as it was".into(),
            Step::StoppingHub => "Stopping the hub".into(),
            Step::StartingHub => "Starting the hub".into(),
            Step::Restored => "Restored.".into(),
            Step::RestoredAside => "Restored. What was here before is kept beside it, readable \
                                    by root only: it holds the old hub's secrets and keys (join \
                                    keys, the gateway's token, the agent's identity). Once the \
                                    hub works, remove it:"
                .into(),
            Step::RestoreFailed => "The restore failed; putting the hub back as it was".into(),
            Step::RestoreNeedsRoot => {
                "hearth restore replaces system services' state: run it as root".into()
            }
        }
    }

    fn korean(&self) -> String {
        match *self {
            Step::WritingConfiguration => "설정을 쓰고 있어요".into(),
            Step::CopyingModel(file) => format!("  {}을(를) 복사해요 (한 번만)", file.display()),
            Step::StartingCoordinator => "코디네이터를 시작해요".into(),
            Step::Joining => "이 허브를 메시에 참여시켜요".into(),
            Step::Hosting => "가족의 서비스를 이 허브에 열어요".into(),
            Step::StartingModel => "모델을 시작해요".into(),
            Step::StartingSearchModel => "검색 모델을 시작해요".into(),
            Step::AskingModel => "이 컴퓨터의 모델 서버에 물어봐요".into(),
            Step::StartingAssistant => "비서와 가족 채팅을 시작해요".into(),
            Step::StartedSystemBus => {
                "시스템 D-Bus를 시작했어요 (파드의 컨테이너에 필요해요)".into()
            }
            Step::PodChanged => "파드 설정이 바뀌어서 다시 띄워요 (볼륨은 그대로예요)".into(),
            Step::PodIncomplete(name) => {
                format!("파드에 {name} 컨테이너가 없어서 다시 띄워요 (볼륨은 그대로예요)")
            }
            Step::Waiting(awaited) => {
                format!("  {}을(를) 기다리는 중...", awaited.name(Language::Korean))
            }
            Step::Ready(seconds) => format!(" 준비됐어요 ({seconds}초)"),
            Step::LeftOut(path) => format!(
                "  {}은(는) 뺐어요 (백업에 담을 수 없는 이름이에요)",
                path.display()
            ),
            Step::BackupWritten { file, entries } => format!(
                "{}을(를) 썼어요 (항목 {entries}개). 허브의 키가 들어 있으니 이 컴퓨터 밖에 \
                 보관하세요",
                file.display()
            ),
            Step::SealedWithHubKey(key) => format!(
                "이 허브의 백업 키({})로 봉인했어요. 다른 컴퓨터에서 복원하려면 이 키의 사본이 \
                 필요해요 (hearth restore --key-file). 또는 --passphrase-file로 백업하세요",
                key.display()
            ),
            Step::BackupAuthentic {
                household,
                made,
                entries,
                version,
            } => format!(
                "{household}의 백업({made}에 만듦, 항목 {entries}개, Hearth {version})은 온전하고 \
                 진짜예요"
            ),
            Step::HubNewer(changed) => format!(
                "이 허브는 백업을 만든 뒤에 바뀌었어요 (마지막: {changed}). 복원하면 그 뒤에 바뀐 \
                 것(기기, 메시지, 기억, 알림)이 백업의 것으로 바뀌어요"
            ),
            Step::GoingAhead => "그대로 진행해요 (--yes)".into(),
            Step::RestoreAnyway => "그래도 복원할까요? [y/N] ".into(),
            Step::AskYes => {
                "그렇게 하려면 --yes를 붙여 다시 실행하거나, 터미널에서 실행해 답하세요".into()
            }
            Step::NotRestored => "복원하지 않았어요. 허브는 그대로예요".into(),
            Step::StoppingHub => "허브를 멈춰요".into(),
            Step::StartingHub => "허브를 시작해요".into(),
            Step::Restored => "복원했어요.".into(),
            Step::RestoredAside => "복원했어요. 전에 있던 것은 옆에 root만 읽을 수 있게 남겨 \
                                    두었어요. 예전 허브의 비밀과 키(참여 키, 게이트웨이 토큰, \
                                    에이전트 신원)가 들어 있으니, 허브가 잘 동작하면 지우세요:"
                .into(),
            Step::RestoreFailed => "복원에 실패해서 허브를 원래대로 되돌려요".into(),
            Step::RestoreNeedsRoot => {
                "hearth restore는 시스템 서비스의 상태를 바꿔요: root로 실행하세요".into()
            }
        }
    }
}

/// A note before a warning: `Note: …` or `참고: …`.
pub fn note(language: Language, text: &str) -> String {
    match language {
        Language::English => format!("Note: {text}"),
        Language::Korean => format!("참고: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line a Korean household's admin sees as setup or a restore
    /// goes is Korean, and says the same things (paths, numbers) as the
    /// English.
    #[test]
    fn each_step_is_said_in_both_languages_with_the_same_facts() {
        let file = Path::new("/srv/backups/hub.hearth");
        let steps = [
            Step::WritingConfiguration,
            Step::CopyingModel(file),
            Step::StartingCoordinator,
            Step::Joining,
            Step::Hosting,
            Step::StartingModel,
            Step::StartingSearchModel,
            Step::AskingModel,
            Step::StartingAssistant,
            Step::StartedSystemBus,
            Step::PodChanged,
            Step::PodIncomplete("hth7-coordinator"),
            Step::Waiting(Awaited::SearchModel),
            Step::Ready(12),
            Step::LeftOut(file),
            Step::BackupWritten { file, entries: 41 },
            Step::SealedWithHubKey(file),
            Step::BackupAuthentic {
                household: "The Parks",
                made: "2026-11-20 09:00 UTC (8 days ago)",
                entries: 41,
                version: "0.9.0",
            },
            Step::HubNewer("2026-11-27 10:00 UTC"),
            Step::GoingAhead,
            Step::RestoreAnyway,
            Step::AskYes,
            Step::NotRestored,
            Step::StoppingHub,
            Step::StartingHub,
            Step::Restored,
            Step::RestoredAside,
            Step::RestoreFailed,
            Step::RestoreNeedsRoot,
        ];
        let hangul = |text: &str| text.chars().any(|c| ('가'..='힣').contains(&c));
        for step in steps {
            let (english, korean) = (step.say(Language::English), step.say(Language::Korean));
            assert!(!hangul(&english), "{english}");
            assert!(hangul(&korean), "{step:?} is not said in Korean: {korean}");
            for fact in [
                "/srv/backups/hub.hearth",
                "41",
                "12",
                "The Parks",
                "0.9.0",
                "hth7-coordinator",
            ] {
                assert_eq!(
                    english.contains(fact),
                    korean.contains(fact),
                    "{fact} in {english:?} and {korean:?}"
                );
            }
        }
        assert_eq!(
            Awaited::Model.not_ready(Language::Korean, 600, "it answered 503 (loading?)"),
            "모델: 600초가 지나도 준비되지 않았어요: it answered 503 (loading?)"
        );
    }
}
