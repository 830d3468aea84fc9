//! `hearth status`'s judgement: from what was observed of the hub (units,
//! the model, the coordinator's own health, disk, backups) to the list of
//! things that need the admin, each with what to do. Pure: the time and
//! the observations come in.

use hearth_assistant::language::Language;
use serde::Serialize;

/// Days a certificate may have left before the admin is told.
const CERTIFICATE_WARNING_DAYS: i64 = 14;
/// Days without a backup before the admin is told.
const BACKUP_WARNING_DAYS: i64 = 7;
/// The least free space, in bytes and as a share of the disk.
const LEAST_FREE_BYTES: u64 = 1 << 30;
const LEAST_FREE_PERCENT: u64 = 10;

/// One systemd unit as seen.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceState {
    /// Its name.
    pub unit: String,
    /// `active`, `inactive`, `failed`, `activating`...
    pub state: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether this hub needs it running all the time.
    pub needed: bool,
    /// The version running it (the package's).
    pub version: String,
    /// How its log is read (`journalctl -u UNIT`; `podman logs NAME` for
    /// the hub in Podman alone).
    pub log: String,
}

/// Whether the model answers.
#[derive(Clone, Debug, Serialize)]
pub struct ModelState {
    /// `default`, `file` or `ollama`.
    pub kind: String,
    /// Its id in the gateway.
    pub id: String,
    /// Whether it answered a health check just now.
    pub answers: bool,
    /// What the check saw.
    pub detail: String,
    /// It said it is still loading the model (llama-server's `503 Loading
    /// model` after a start): not answering yet, not broken.
    pub loading: bool,
}

/// A device waiting for an admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// Its id (for `nodes approve`).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Whose it is.
    pub user: String,
}

/// The coordinator as it reports itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CoordinatorReport {
    /// Approved devices connected now.
    pub online: usize,
    /// Approved devices.
    pub devices: usize,
    /// Devices waiting for approval.
    pub pending: Vec<Pending>,
    /// Certificates it serves: name and end of validity (Unix seconds).
    pub certificates: Vec<(String, i64)>,
    /// When the hub's own node key expires (none: never).
    pub hub_key_expiry: Option<i64>,
    /// Its own list of problems.
    pub problems: Vec<CoordinatorProblem>,
}

/// A problem the coordinator reports (`health --output json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoordinatorProblem {
    /// Its kind (`problem_kinds`).
    pub kind: CoordinatorProblemKind,
    /// What it says.
    pub text: String,
}

/// The coordinator's kinds of problem (its `ProblemKind`, as the stable
/// strings it writes); one this Hearth does not know is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorProblemKind {
    /// The database fails its check.
    Database,
    /// A certificate has expired.
    CertificateExpired,
    /// A certificate is near its end.
    CertificateExpiring,
    /// Tagged nodes are not connected.
    ServersOffline,
    /// Keys are near their end.
    KeysOverdue,
    /// Devices wait for approval.
    NodesPending,
    /// Something newer.
    #[serde(other)]
    Other,
}

impl CoordinatorProblemKind {
    /// Whether `hearth status` reports this itself, in its own words (each
    /// waiting device with the command that approves it; each certificate
    /// with its days), so the coordinator's sentence would say it twice.
    fn said_by_the_hub(self) -> bool {
        matches!(
            self,
            CoordinatorProblemKind::NodesPending
                | CoordinatorProblemKind::CertificateExpired
                | CoordinatorProblemKind::CertificateExpiring
        )
    }
}

/// Disk use of the hub's state.
#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    /// The folder measured (`/var/lib`).
    pub path: String,
    /// Bytes the hub's folders hold.
    pub used_by_hub: u64,
    /// Free bytes on that file system.
    pub free: u64,
    /// Its size.
    pub total: u64,
}

/// The last backup.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BackupRecord {
    /// When it was made (Unix seconds).
    pub at: i64,
    /// Where it was written.
    pub file: String,
    /// Its size.
    pub bytes: u64,
}

/// Everything `hearth status` looked at.
#[derive(Clone, Debug, Serialize)]
pub struct Observations {
    /// When (Unix seconds).
    pub now: i64,
    /// The installed package's version.
    pub version: String,
    /// When setup last ran (none: not set up).
    pub set_up_at: Option<i64>,
    /// The household's name.
    pub household: String,
    /// The units.
    pub services: Vec<ServiceState>,
    /// The model.
    pub model: Option<ModelState>,
    /// The coordinator's view (none: it did not answer).
    pub coordinator: Option<CoordinatorReport>,
    /// Disk.
    pub disk: Option<Disk>,
    /// The last backup.
    pub last_backup: Option<BackupRecord>,
}

/// Something that needs the admin, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Setup has not run.
    NotSetUp,
    /// A unit is not running that should be, or failed.
    Service {
        /// The unit.
        unit: String,
        /// Its state.
        state: String,
        /// How its log is read.
        log: String,
    },
    /// A unit the hub needs is stopped and disabled (as `apt remove`
    /// leaves them): setup, which keeps everything, brings it back.
    ServiceOff {
        /// The unit.
        unit: String,
    },
    /// The model does not answer.
    ModelSilent {
        /// Its id.
        id: String,
        /// What the check saw.
        detail: String,
    },
    /// The coordinator does not answer.
    CoordinatorSilent,
    /// A device waits for approval.
    Pending(Pending),
    /// A certificate has expired.
    CertificateExpired {
        /// Its name.
        name: String,
    },
    /// A certificate expires soon.
    CertificateExpiring {
        /// Its name.
        name: String,
        /// Days left.
        days: i64,
    },
    /// The hub's own node key expires soon and was not rotated.
    HubKeyExpiring,
    /// A problem the coordinator reports itself (its own words).
    Coordinator(String),
    /// The disk is nearly full.
    DiskLow {
        /// The folder measured.
        path: String,
        /// Free bytes.
        free: u64,
    },
    /// The last backup is old.
    BackupOld {
        /// Its age in days.
        days: i64,
    },
    /// There has never been a backup, a week after setup.
    NeverBackedUp,
}

impl Problem {
    /// What the admin is told, in `language`.
    pub fn say(&self, language: Language) -> String {
        let korean = language == Language::Korean;
        match self {
            Problem::NotSetUp if korean => {
                "이 허브는 아직 설정되지 않았어요: `hearth setup`을 실행하거나, 백업에서 허브를 \
                 되살리려면 `hearth restore 파일`을 실행하세요"
                    .into()
            }
            Problem::NotSetUp => {
                "this hub is not set up yet: run `hearth setup`, or `hearth restore FILE` to \
                 bring back a hub from its backup"
                    .into()
            }
            Problem::Service { unit, state, log } if korean => {
                format!("{unit}의 상태가 {state}예요: `{log}`을 보세요")
            }
            Problem::Service { unit, state, log } => format!("{unit} is {state}: see `{log}`"),
            Problem::ServiceOff { unit } if korean => format!(
                "{unit}이(가) 멈춰 있고 꺼져 있어요: `hearth setup`을 실행하면 (아무것도 지우지 않고) 허브가 다시 돌아와요"
            ),
            Problem::ServiceOff { unit } => format!(
                "{unit} is stopped and disabled: `hearth setup` (which keeps everything) brings the hub back"
            ),
            Problem::ModelSilent { id, detail } if korean => {
                format!("모델({id})이 답하지 않아요: {detail}")
            }
            Problem::ModelSilent { id, detail } => {
                format!("the model ({id}) does not answer: {detail}")
            }
            Problem::CoordinatorSilent if korean => "코디네이터가 관리 소켓에 답하지 않아요: `journalctl -u hearth-coordinator`를 보세요"
                .into(),
            Problem::CoordinatorSilent => "the coordinator does not answer its admin socket: see `journalctl -u hearth-coordinator`"
                .into(),
            Problem::Pending(pending) if korean => format!(
                "{}의 기기 {}가 승인을 기다려요: `hearth devices approve {}` (또는 `remove`)",
                pending.user, pending.name, pending.id
            ),
            Problem::Pending(pending) => format!(
                "device {} ({}'s) waits for approval: `hearth devices approve {}` (or `remove`)",
                pending.name, pending.user, pending.id
            ),
            Problem::CertificateExpired { name } if korean => {
                format!("{name} 인증서가 만료됐어요")
            }
            Problem::CertificateExpired { name } => format!("the {name} certificate has expired"),
            Problem::CertificateExpiring { name, days } if korean => {
                format!("{name} 인증서가 {days}일 뒤에 만료돼요")
            }
            Problem::CertificateExpiring { name, days } => {
                format!("the {name} certificate expires in {days} days")
            }
            Problem::HubKeyExpiring if korean => "허브 자신의 노드 키가 곧 만료되는데 교체되지 \
                                                  않았어요: `journalctl -u hearth-agent`를 보세요"
                .into(),
            Problem::HubKeyExpiring => "the hub's own node key is about to expire and has not \
                                       been rotated: see `journalctl -u hearth-agent`"
                .into(),
            Problem::Coordinator(problem) if korean => format!("코디네이터: {problem}"),
            Problem::Coordinator(problem) => format!("coordinator: {problem}"),
            Problem::DiskLow { path, free } if korean => {
                format!("{path}가 있는 디스크에 남은 공간이 {}뿐이에요", bytes(*free))
            }
            Problem::DiskLow { path, free } => {
                format!("the disk holding {path} has only {} free", bytes(*free))
            }
            Problem::BackupOld { days } if korean => {
                format!("마지막 백업이 {days}일 전이에요: `hearth backup 파일`")
            }
            Problem::BackupOld { days } => {
                format!("the last backup is {days} days old: `hearth backup FILE`")
            }
            Problem::NeverBackedUp if korean => {
                "백업을 한 번도 하지 않았어요: `hearth backup 파일` (이 컴퓨터 밖에 보관하세요)".into()
            }
            Problem::NeverBackedUp => {
                "there has never been a backup: `hearth backup FILE` (keep it off this machine)"
                    .into()
            }
        }
    }
}

/// In JSON a problem is its English sentence.
impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.say(Language::English))
    }
}

/// Worth knowing, not wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// No backup yet, within a week of setup.
    NoBackupYet,
    /// A unit is still starting (systemd says `activating`).
    Starting {
        /// The unit.
        unit: String,
    },
    /// The model is still loading.
    ModelLoading {
        /// Its id.
        id: String,
    },
}

impl Note {
    /// What the admin is told, in `language`.
    pub fn say(&self, language: Language) -> String {
        match (self, language) {
            (Note::NoBackupYet, Language::English) => {
                "no backup yet: `hearth backup FILE` (keep it off this machine)".into()
            }
            (Note::NoBackupYet, Language::Korean) => {
                "아직 백업이 없어요: `hearth backup 파일` (이 컴퓨터 밖에 보관하세요)".into()
            }
            (Note::Starting { unit }, Language::English) => {
                format!("{unit} is starting: ask again in a moment")
            }
            (Note::Starting { unit }, Language::Korean) => {
                format!("{unit}이(가) 시작하는 중이에요: 잠시 뒤에 다시 확인하세요")
            }
            (Note::ModelLoading { id }, Language::English) => {
                format!("the model ({id}) is still loading: ask again in a moment")
            }
            (Note::ModelLoading { id }, Language::Korean) => {
                format!("모델({id})을 아직 불러오는 중이에요: 잠시 뒤에 다시 확인하세요")
            }
        }
    }

    /// Whether the hub is still coming up.
    pub fn is_starting(&self) -> bool {
        matches!(self, Note::Starting { .. } | Note::ModelLoading { .. })
    }
}

impl Serialize for Note {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.say(Language::English))
    }
}

/// What `hearth status` prints: the observations and what needs the admin.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nothing needs the admin.
    pub ok: bool,
    /// What needs the admin, each with what to do.
    pub problems: Vec<Problem>,
    /// Worth knowing, not wrong.
    pub notes: Vec<Note>,
    /// What was seen.
    #[serde(flatten)]
    pub observed: Observations,
}

/// Judges `observed`.
pub fn assess(observed: Observations) -> Report {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let now = observed.now;
    let Some(set_up_at) = observed.set_up_at else {
        problems.push(Problem::NotSetUp);
        return Report {
            ok: false,
            problems,
            notes,
            observed,
        };
    };
    for service in &observed.services {
        if service.needed && matches!(service.state.as_str(), "activating" | "reloading") {
            // Coming up (after a boot, a restart): not yet wrong.
            notes.push(Note::Starting {
                unit: service.unit.clone(),
            });
            continue;
        }
        if service.needed && !service.enabled && service.state == "inactive" {
            problems.push(Problem::ServiceOff {
                unit: service.unit.clone(),
            });
            continue;
        }
        // A service started on demand may be idle, never failed.
        if (service.needed && service.state != "active") || service.state == "failed" {
            problems.push(Problem::Service {
                unit: service.unit.clone(),
                state: service.state.clone(),
                log: service.log.clone(),
            });
        }
    }
    match &observed.model {
        Some(model) if !model.answers && model.loading => notes.push(Note::ModelLoading {
            id: model.id.clone(),
        }),
        Some(model) if !model.answers => problems.push(Problem::ModelSilent {
            id: model.id.clone(),
            detail: model.detail.clone(),
        }),
        _ => {}
    }
    match &observed.coordinator {
        None => problems.push(Problem::CoordinatorSilent),
        Some(coordinator) => {
            for pending in &coordinator.pending {
                problems.push(Problem::Pending(pending.clone()));
            }
            for (name, not_after) in &coordinator.certificates {
                let days = (not_after - now).div_euclid(86_400);
                if *not_after <= now {
                    problems.push(Problem::CertificateExpired { name: name.clone() });
                } else if days < CERTIFICATE_WARNING_DAYS {
                    problems.push(Problem::CertificateExpiring {
                        name: name.clone(),
                        days,
                    });
                }
            }
            if let Some(expiry) = coordinator.hub_key_expiry
                && expiry - now < CERTIFICATE_WARNING_DAYS * 86_400
            {
                problems.push(Problem::HubKeyExpiring);
            }
            for problem in &coordinator.problems {
                if !problem.kind.said_by_the_hub() {
                    problems.push(Problem::Coordinator(problem.text.clone()));
                }
            }
        }
    }
    if let Some(disk) = &observed.disk
        && disk.total > 0
        && (disk.free < LEAST_FREE_BYTES || disk.free * 100 / disk.total < LEAST_FREE_PERCENT)
    {
        problems.push(Problem::DiskLow {
            path: disk.path.clone(),
            free: disk.free,
        });
    }
    match &observed.last_backup {
        Some(backup) if now - backup.at > BACKUP_WARNING_DAYS * 86_400 => {
            problems.push(Problem::BackupOld {
                days: (now - backup.at) / 86_400,
            });
        }
        Some(_) => {}
        None if now - set_up_at > BACKUP_WARNING_DAYS * 86_400 => {
            problems.push(Problem::NeverBackedUp);
        }
        None => notes.push(Note::NoBackupYet),
    }
    Report {
        ok: problems.is_empty(),
        problems,
        notes,
        observed,
    }
}

/// `bytes` for a person: `512 B`, `3.1 MiB`, `20.4 GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The report as a screen for a person, in `language`: problems first,
/// then each part.
pub fn render_text(report: &Report, language: Language) -> String {
    use std::fmt::Write as _;
    let korean = language == Language::Korean;
    let say = |english: &str, korean_text: &str| -> String {
        if korean {
            korean_text.to_owned()
        } else {
            english.to_owned()
        }
    };
    let observed = &report.observed;
    let mut out = String::new();
    let starting = report.notes.iter().any(Note::is_starting);
    let verdict = match (report.ok, starting, korean) {
        (true, false, false) => "all well",
        (true, true, false) => "starting",
        (false, _, false) => "needs you",
        (true, false, true) => "모두 괜찮아요",
        (true, true, true) => "시작하는 중이에요",
        (false, _, true) => "확인이 필요해요",
    };
    let household = match (observed.household.is_empty(), korean) {
        (true, _) => String::new(),
        (false, false) => format!(" for {}", observed.household),
        (false, true) => format!(" ({})", observed.household),
    };
    let _ = writeln!(out, "Hearth {}{household}: {verdict}", observed.version);
    for problem in &report.problems {
        let _ = writeln!(out, "  ! {}", problem.say(language));
    }
    for note in &report.notes {
        let _ = writeln!(out, "  - {}", note.say(language));
    }
    let _ = writeln!(out, "\n{}", say("Services", "서비스"));
    for service in &observed.services {
        let mark = if service.state == "active" || !service.needed {
            "ok"
        } else {
            "!!"
        };
        let _ = writeln!(
            out,
            "  {mark}  {:<30} {:<12} {}{}",
            service.unit,
            service.state,
            service.version,
            if service.enabled {
                String::new()
            } else {
                say(" (not enabled)", " (사용 안 함)")
            }
        );
    }
    if let Some(model) = &observed.model {
        let _ = writeln!(
            out,
            "\n{}\n  {}  {} ({}): {}",
            say("Model", "모델"),
            if model.answers { "ok" } else { "!!" },
            model.id,
            model.kind,
            model.detail
        );
    }
    if let Some(coordinator) = &observed.coordinator {
        let devices = if korean {
            format!(
                "기기 {}대 중 {}대 접속 중, {}대 승인 대기",
                coordinator.devices,
                coordinator.online,
                coordinator.pending.len()
            )
        } else {
            format!(
                "{} of {} online, {} waiting for approval",
                coordinator.online,
                coordinator.devices,
                coordinator.pending.len()
            )
        };
        let _ = writeln!(out, "\n{}\n  {devices}", say("Devices", "기기"));
        let _ = writeln!(out, "\n{}", say("Certificates and keys", "인증서와 키"));
        for (name, not_after) in &coordinator.certificates {
            let days = (not_after - observed.now).div_euclid(86_400);
            let left = if korean {
                format!("{days}일 남음")
            } else {
                format!("{days} days left")
            };
            let _ = writeln!(out, "  {name}: {left}");
        }
        let key = match coordinator.hub_key_expiry {
            Some(expiry) => {
                let days = (expiry - observed.now).div_euclid(86_400);
                if korean {
                    format!("허브의 노드 키: {days}일 남음 (에이전트가 교체해요)")
                } else {
                    format!("the hub's node key: {days} days left (rotated by its agent)")
                }
            }
            None => say(
                "the hub's node key: does not expire (tagged)",
                "허브의 노드 키: 만료되지 않아요 (태그됨)",
            ),
        };
        let _ = writeln!(out, "  {key}");
    }
    if let Some(disk) = &observed.disk {
        let line = if korean {
            format!(
                "허브 데이터: {}; {}의 {} 중 {} 남음",
                bytes(disk.used_by_hub),
                disk.path,
                bytes(disk.total),
                bytes(disk.free)
            )
        } else {
            format!(
                "the hub's data: {}; {} free of {} on {}",
                bytes(disk.used_by_hub),
                bytes(disk.free),
                bytes(disk.total),
                disk.path
            )
        };
        let _ = writeln!(out, "\n{}\n  {line}", say("Disk", "디스크"));
    }
    let _ = writeln!(out, "\n{}", say("Backup", "백업"));
    let line = match &observed.last_backup {
        Some(backup) => {
            let days = (observed.now - backup.at) / 86_400;
            if korean {
                format!(
                    "마지막: {} ({}), {days}일 전",
                    backup.file,
                    bytes(backup.bytes)
                )
            } else {
                format!(
                    "last: {} ({}), {days} days ago",
                    backup.file,
                    bytes(backup.bytes)
                )
            }
        }
        None => say("none yet", "아직 없음"),
    };
    let _ = writeln!(out, "  {line}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn texts(report: &Report) -> Vec<String> {
        report
            .problems
            .iter()
            .map(|problem| problem.say(Language::English))
            .collect()
    }
    const DAY: i64 = 86_400;

    fn service(unit: &str, state: &str) -> ServiceState {
        ServiceState {
            unit: unit.into(),
            state: state.into(),
            enabled: true,
            needed: true,
            version: "0.1.0".into(),
            log: format!("journalctl -u {unit}"),
        }
    }

    fn healthy() -> Observations {
        Observations {
            now: NOW,
            version: "0.1.0".into(),
            set_up_at: Some(NOW - DAY),
            household: "Parks".into(),
            services: vec![
                service("hearth-coordinator.service", "active"),
                service("hearth-pod.service", "active"),
            ],
            model: Some(ModelState {
                kind: "default".into(),
                id: "smollm2".into(),
                answers: true,
                detail: "ready".into(),
                loading: false,
            }),
            coordinator: Some(CoordinatorReport {
                online: 2,
                devices: 3,
                certificates: vec![("server".into(), NOW + 300 * DAY)],
                ..CoordinatorReport::default()
            }),
            disk: Some(Disk {
                path: "/var/lib".into(),
                used_by_hub: 10 << 20,
                free: 50 << 30,
                total: 100 << 30,
            }),
            last_backup: None,
        }
    }

    #[test]
    fn a_fresh_healthy_hub_is_all_well_with_a_note_about_backups() {
        let report = assess(healthy());
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!(report.notes.len(), 1);
        let text = render_text(&report, Language::English);
        assert!(
            text.starts_with("Hearth 0.1.0 for Parks: all well\n"),
            "{text}"
        );
        assert!(text.contains("2 of 3 online, 0 waiting"), "{text}");
    }

    #[test]
    fn a_hub_whose_units_were_disabled_is_told_to_run_setup() {
        let mut observed = healthy();
        observed.services[1].state = "inactive".into();
        observed.services[1].enabled = false;
        let report = assess(observed);
        assert!(!report.ok);
        let all = texts(&report).join("\n");
        assert!(
            all.contains(
                "hearth-pod.service is stopped and disabled: `hearth setup` (which keeps everything) brings the hub back"
            ),
            "{all}"
        );
        // Stopped but still enabled is something else: its journal says why.
        let mut observed = healthy();
        observed.services[1].state = "inactive".into();
        let all = texts(&assess(observed)).join("\n");
        assert!(all.contains("journalctl -u hearth-pod.service"), "{all}");
    }

    #[test]
    fn a_hub_still_coming_up_is_starting_not_in_need() {
        let mut observed = healthy();
        observed.services[1].state = "activating".into();
        let model = observed.model.as_mut().unwrap();
        model.answers = false;
        model.loading = true;
        model.detail = "its health check answered 503".into();
        let report = assess(observed);
        assert!(report.ok, "{:?}", report.problems);
        let text = render_text(&report, Language::English);
        assert!(
            text.starts_with("Hearth 0.1.0 for Parks: starting\n"),
            "{text}"
        );
        assert!(text.contains("hearth-pod.service is starting"), "{text}");
        assert!(
            text.contains("the model (smollm2) is still loading"),
            "{text}"
        );
        assert!(render_text(&report, Language::Korean).contains("시작하는 중이에요"));
        // A model that does not answer and does not say it is loading is a problem.
        let mut observed = healthy();
        observed.model.as_mut().unwrap().answers = false;
        assert!(!assess(observed).ok);
    }

    #[test]
    fn each_thing_that_needs_the_admin_is_named_with_what_to_do() {
        let mut observed = healthy();
        observed.services[1].state = "failed".into();
        observed.model.as_mut().unwrap().answers = false;
        observed.model.as_mut().unwrap().detail = "connection refused".into();
        let coordinator = observed.coordinator.as_mut().unwrap();
        coordinator.pending.push(Pending {
            id: 7,
            name: "bens-phone".into(),
            user: "ben".into(),
        });
        coordinator.certificates[0].1 = NOW + 3 * DAY;
        observed.disk.as_mut().unwrap().free = 100 << 20;
        observed.set_up_at = Some(NOW - 30 * DAY);
        let report = assess(observed);
        assert!(!report.ok);
        let all = texts(&report).join("\n");
        for expected in [
            "hearth-pod.service is failed: see `journalctl -u hearth-pod.service`",
            "the model (smollm2) does not answer: connection refused",
            "`hearth devices approve 7`",
            "the server certificate expires in 3 days",
            "has only 100.0 MiB free",
            "there has never been a backup",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        assert!(render_text(&report, Language::English).contains("needs you"));
        let korean = render_text(&report, Language::Korean);
        for expected in [
            "확인이 필요해요",
            "hearth-pod.service의 상태가 failed예요",
            "`hearth devices approve 7`",
            "server 인증서가 3일 뒤에 만료돼요",
            "백업을 한 번도 하지 않았어요",
        ] {
            assert!(
                korean.contains(expected),
                "missing {expected:?} in\n{korean}"
            );
        }
    }

    /// Hardening round five, finding 19: a waiting device was shown twice
    /// (`hearth devices approve 2`, and the coordinator's "1 nodes wait
    /// for `nodes approve`"). The hub names each waiting device once; the
    /// coordinator's other problems still show.
    #[test]
    fn a_waiting_device_is_named_once() {
        let mut observed = healthy();
        let coordinator = observed.coordinator.as_mut().unwrap();
        coordinator.pending.push(Pending {
            id: 2,
            name: "bens-phone".into(),
            user: "ben".into(),
        });
        coordinator.problems = vec![
            CoordinatorProblem {
                kind: CoordinatorProblemKind::NodesPending,
                text: "1 nodes wait for `nodes approve`".into(),
            },
            CoordinatorProblem {
                kind: CoordinatorProblemKind::KeysOverdue,
                text: "2 nodes' keys are near their end and have not rotated".into(),
            },
        ];
        let all = texts(&assess(observed)).join("\n");
        assert_eq!(all.matches("approve").count(), 1, "{all}");
        assert!(all.contains("`hearth devices approve 2`"), "{all}");
        assert!(all.contains("keys are near their end"), "{all}");
        let kinds: Vec<CoordinatorProblemKind> =
            serde_json::from_str(r#"["nodes_pending", "keys_overdue", "something_new"]"#).unwrap();
        assert_eq!(
            kinds,
            [
                CoordinatorProblemKind::NodesPending,
                CoordinatorProblemKind::KeysOverdue,
                CoordinatorProblemKind::Other
            ]
        );
    }

    #[test]
    fn an_old_backup_and_a_silent_coordinator_need_the_admin() {
        let mut observed = healthy();
        observed.last_backup = Some(BackupRecord {
            at: NOW - 9 * DAY,
            file: "/srv/hub.tar".into(),
            bytes: 4096,
        });
        observed.coordinator = None;
        let report = assess(observed);
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert_eq!(
            report.problems,
            [Problem::CoordinatorSilent, Problem::BackupOld { days: 9 }]
        );
        assert!(texts(&report)[1].contains("9 days old"));
    }

    #[test]
    fn a_hub_not_set_up_says_so_and_nothing_else() {
        let mut observed = healthy();
        observed.set_up_at = None;
        let report = assess(observed);
        // Hardening round five, finding 19: a fresh server is offered a
        // restore too, not setup alone.
        assert_eq!(
            texts(&report),
            [
                "this hub is not set up yet: run `hearth setup`, or `hearth restore FILE` to bring \
                 back a hub from its backup"
            ]
        );
    }

    #[test]
    fn services_not_needed_may_be_idle_but_not_failed() {
        let mut observed = healthy();
        let mut idle = service("hearth-llama-server.service", "inactive");
        idle.needed = false;
        observed.services.push(idle);
        assert!(assess(observed.clone()).ok);
        observed.services[2].state = "failed".into();
        let report = assess(observed);
        assert_eq!(
            texts(&report),
            [
                "hearth-llama-server.service is failed: see `journalctl -u hearth-llama-server.service`"
            ]
        );
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(20 << 30), "20.0 GiB");
    }

    #[test]
    fn the_json_form_carries_the_verdict_and_what_was_seen() {
        let value = serde_json::to_value(assess(healthy())).unwrap();
        assert_eq!(value["ok"], true);
        assert_eq!(value["services"][0]["unit"], "hearth-coordinator.service");
        assert_eq!(value["model"]["answers"], true);
        assert_eq!(
            value["notes"][0],
            "no backup yet: `hearth backup FILE` (keep it off this machine)"
        );
    }
}
