//! `hearth status`'s judgement: from what was observed of the hub (units,
//! the model, the coordinator's own health, disk, backups) to the list of
//! things that need the admin, each with what to do. Pure: the time and
//! the observations come in.

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
}

/// A device waiting for an admin.
#[derive(Clone, Debug, Serialize)]
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
    pub problems: Vec<String>,
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

/// What `hearth status` prints: the observations and what needs the admin.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nothing needs the admin.
    pub ok: bool,
    /// What needs the admin, each with what to do.
    pub problems: Vec<String>,
    /// Worth knowing, not wrong.
    pub notes: Vec<String>,
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
        problems.push("this hub is not set up yet: run `hearth setup`".to_owned());
        return Report {
            ok: false,
            problems,
            notes,
            observed,
        };
    };
    for service in &observed.services {
        // A service started on demand may be idle, never failed.
        if (service.needed && service.state != "active") || service.state == "failed" {
            problems.push(format!(
                "{} is {}: see `journalctl -u {}`",
                service.unit, service.state, service.unit
            ));
        }
    }
    match &observed.model {
        Some(model) if !model.answers => problems.push(format!(
            "the model ({}) does not answer: {}",
            model.id, model.detail
        )),
        _ => {}
    }
    match &observed.coordinator {
        None => problems.push(
            "the coordinator does not answer its admin socket: see `journalctl -u hearth-coordinator`"
                .to_owned(),
        ),
        Some(coordinator) => {
            for pending in &coordinator.pending {
                problems.push(format!(
                    "device {} ({}'s) waits for approval: `hearth-coordinator nodes approve {}` \
                     (or `reject`)",
                    pending.name, pending.user, pending.id
                ));
            }
            for (name, not_after) in &coordinator.certificates {
                let days = (not_after - now).div_euclid(86_400);
                if *not_after <= now {
                    problems.push(format!("the {name} certificate has expired"));
                } else if days < CERTIFICATE_WARNING_DAYS {
                    problems.push(format!(
                        "the {name} certificate expires in {days} days"
                    ));
                }
            }
            if let Some(expiry) = coordinator.hub_key_expiry
                && expiry - now < CERTIFICATE_WARNING_DAYS * 86_400
            {
                problems.push(
                    "the hub's own node key is about to expire and has not been rotated: \
                     see `journalctl -u hearth-agent`"
                        .to_owned(),
                );
            }
            for problem in &coordinator.problems {
                if !problems.iter().any(|known| known == problem)
                    && !problem.contains("certificate")
                {
                    problems.push(format!("coordinator: {problem}"));
                }
            }
        }
    }
    if let Some(disk) = &observed.disk
        && disk.total > 0
        && (disk.free < LEAST_FREE_BYTES || disk.free * 100 / disk.total < LEAST_FREE_PERCENT)
    {
        problems.push(format!(
            "the disk holding {} has only {} free",
            disk.path,
            bytes(disk.free)
        ));
    }
    match &observed.last_backup {
        Some(backup) if now - backup.at > BACKUP_WARNING_DAYS * 86_400 => problems.push(format!(
            "the last backup is {} days old: `hearth backup FILE`",
            (now - backup.at) / 86_400
        )),
        Some(_) => {}
        None if now - set_up_at > BACKUP_WARNING_DAYS * 86_400 => problems.push(
            "there has never been a backup: `hearth backup FILE` (keep it off this machine)"
                .to_owned(),
        ),
        None => notes.push("no backup yet: `hearth backup FILE` (keep it off this machine)".into()),
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

/// The report as a screen for a person: problems first, then each part.
pub fn render_text(report: &Report) -> String {
    use std::fmt::Write as _;
    let observed = &report.observed;
    let mut out = String::new();
    let verdict = if report.ok { "all well" } else { "needs you" };
    let household = if observed.household.is_empty() {
        String::new()
    } else {
        format!(" for {}", observed.household)
    };
    let _ = writeln!(out, "Hearth {}{household}: {verdict}", observed.version);
    for problem in &report.problems {
        let _ = writeln!(out, "  ! {problem}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "  - {note}");
    }
    let _ = writeln!(out, "\nServices");
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
                ""
            } else {
                " (not enabled)"
            }
        );
    }
    if let Some(model) = &observed.model {
        let _ = writeln!(
            out,
            "\nModel\n  {}  {} ({}): {}",
            if model.answers { "ok" } else { "!!" },
            model.id,
            model.kind,
            model.detail
        );
    }
    if let Some(coordinator) = &observed.coordinator {
        let _ = writeln!(
            out,
            "\nDevices\n  {} of {} online, {} waiting for approval",
            coordinator.online,
            coordinator.devices,
            coordinator.pending.len()
        );
        let _ = writeln!(out, "\nCertificates and keys");
        for (name, not_after) in &coordinator.certificates {
            let _ = writeln!(
                out,
                "  {name}: {} days left",
                (not_after - observed.now).div_euclid(86_400)
            );
        }
        match coordinator.hub_key_expiry {
            Some(expiry) => {
                let _ = writeln!(
                    out,
                    "  the hub's node key: {} days left (rotated by its agent)",
                    (expiry - observed.now).div_euclid(86_400)
                );
            }
            None => {
                let _ = writeln!(out, "  the hub's node key: does not expire (tagged)");
            }
        }
    }
    if let Some(disk) = &observed.disk {
        let _ = writeln!(
            out,
            "\nDisk\n  the hub's data: {}; {} free of {} on {}",
            bytes(disk.used_by_hub),
            bytes(disk.free),
            bytes(disk.total),
            disk.path
        );
    }
    let _ = writeln!(out, "\nBackup");
    match &observed.last_backup {
        Some(backup) => {
            let _ = writeln!(
                out,
                "  last: {} ({}), {} days ago",
                backup.file,
                bytes(backup.bytes),
                (observed.now - backup.at) / 86_400
            );
        }
        None => {
            let _ = writeln!(out, "  none yet");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn service(unit: &str, state: &str) -> ServiceState {
        ServiceState {
            unit: unit.into(),
            state: state.into(),
            enabled: true,
            needed: true,
            version: "0.1.0".into(),
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
        let text = render_text(&report);
        assert!(
            text.starts_with("Hearth 0.1.0 for Parks: all well\n"),
            "{text}"
        );
        assert!(text.contains("2 of 3 online, 0 waiting"), "{text}");
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
        let all = report.problems.join("\n");
        for expected in [
            "hearth-pod.service is failed: see `journalctl -u hearth-pod.service`",
            "the model (smollm2) does not answer: connection refused",
            "`hearth-coordinator nodes approve 7`",
            "the server certificate expires in 3 days",
            "has only 100.0 MiB free",
            "there has never been a backup",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        assert!(render_text(&report).contains("needs you"));
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
        assert!(report.problems[0].contains("does not answer its admin socket"));
        assert!(report.problems[1].contains("9 days old"));
    }

    #[test]
    fn a_hub_not_set_up_says_so_and_nothing_else() {
        let mut observed = healthy();
        observed.set_up_at = None;
        let report = assess(observed);
        assert_eq!(
            report.problems,
            ["this hub is not set up yet: run `hearth setup`"]
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
            report.problems,
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
    }
}
