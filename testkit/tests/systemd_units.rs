//! Every shipped unit (systemd/, podman/systemd/) passes `systemd-analyze
//! verify` without a single message, and every service stays within the
//! exposure threshold written in its header under `systemd-analyze security
//! --offline=true`. The units name the packages' paths (/usr/bin/hearth*,
//! /usr/lib/hearth/llama-server); here those point at the binaries this
//! workspace built (and the cached llama-server), so verify checks real
//! executables.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_testkit::llama::{llama_server_binary, workspace_root};
use hearth_testkit::{binary, require_tools};

const THRESHOLD: &str = "Exposure threshold (systemd-analyze security --offline=true): ";

fn units() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["systemd", "podman/systemd"] {
        for entry in std::fs::read_dir(workspace_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("service" | "socket")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Copies the units into `dir` with Hearth's binaries' paths pointing at `bin`.
fn stage(units: &[PathBuf], dir: &Path, bin: &Path) -> Vec<PathBuf> {
    units
        .iter()
        .map(|unit| {
            let text = std::fs::read_to_string(unit).unwrap();
            let staged = dir.join(unit.file_name().unwrap());
            std::fs::write(
                &staged,
                text.replace("/usr/bin/hearth", &format!("{}/hearth", bin.display()))
                    .replace("/usr/lib/hearth/", &format!("{}/", bin.display())),
            )
            .unwrap();
            staged
        })
        .collect()
}

fn analyze(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn units_verify_cleanly_and_stay_within_their_thresholds() {
    if require_tools(&["systemd-analyze"]).is_none() {
        return;
    }
    let Some(llama) = llama_server_binary() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    let staged_dir = scratch.path().join("units");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&staged_dir).unwrap();
    for name in [
        "hearth",
        "hearth-agent",
        "hearth-coordinator",
        "hearth-gateway",
    ] {
        std::os::unix::fs::symlink(binary(name), bin.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(llama, bin.join("llama-server")).unwrap();
    let Some(whisper) = hearth_testkit::speech::whisper_server() else {
        return;
    };
    std::os::unix::fs::symlink(whisper, bin.join("whisper-server")).unwrap();

    let units = units();
    assert!(units.len() >= 7, "the shipped units: {units:?}");
    let staged = stage(&units, &staged_dir, &bin);
    check(&staged);
    // Then again with the drop-ins a package adds to another's unit (the
    // hub's to hearth-agent.service) beside them, as systemd reads them.
    let mut with_drop_ins = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("systemd")).unwrap() {
        let folder = entry.unwrap().path();
        let Some(unit) = folder
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".d"))
        else {
            continue;
        };
        let target = staged_dir.join(folder.file_name().unwrap());
        std::fs::create_dir_all(&target).unwrap();
        for conf in std::fs::read_dir(&folder).unwrap() {
            let conf = conf.unwrap().path();
            let text = std::fs::read_to_string(&conf)
                .unwrap()
                .replace("/usr/bin/hearth", &format!("{}/hearth", bin.display()));
            std::fs::write(target.join(conf.file_name().unwrap()), text).unwrap();
        }
        with_drop_ins.push(staged_dir.join(unit));
    }
    assert!(!with_drop_ins.is_empty(), "the hub's drop-in is read");
    check(&with_drop_ins);
}

/// `systemd-analyze verify` says nothing of each unit, and each service is
/// within the threshold its header names.
fn check(staged: &[PathBuf]) {
    for unit in staged {
        let staged_dir = unit.parent().unwrap().to_owned();
        let name = unit.file_name().unwrap().to_str().unwrap().to_owned();
        let verify = analyze(&staged_dir, &["verify", &format!("./{name}")]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(
            verify.status.success() && said.trim().is_empty(),
            "systemd-analyze verify {name}:\n{said}"
        );
        // Units podman generates start a container: its confinement is the
        // container's flags (checked by ai-gateway/tests/container.rs).
        if !name.ends_with(".service") || name.starts_with("container-") {
            continue;
        }
        let text = std::fs::read_to_string(unit).unwrap();
        let threshold: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("# ")?.strip_prefix(THRESHOLD))
            .unwrap_or_else(|| panic!("{name} names no exposure threshold"))
            .trim()
            .parse()
            .unwrap();
        // systemd-analyze takes the threshold in tenths (0 to 100).
        let tenths = format!("--threshold={}", (threshold * 10.0).round() as u32);
        let security = analyze(
            &staged_dir,
            &["security", "--offline=true", &tenths, &format!("./{name}")],
        );
        let report = String::from_utf8_lossy(&security.stdout);
        let level = report
            .lines()
            .find(|line| line.contains("Overall exposure level"))
            .unwrap_or("no level")
            .to_owned();
        println!("{name}: {level} (threshold {threshold})");
        assert!(
            security.status.success(),
            "{name} is above its threshold {threshold}: {level}"
        );
    }
}

#[test]
fn an_unhardened_service_fails_the_check() {
    if require_tools(&["systemd-analyze"]).is_none() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
        scratch.path().join("bare.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    let security = analyze(
        scratch.path(),
        &[
            "security",
            "--offline=true",
            "--threshold=20",
            "./bare.service",
        ],
    );
    assert!(
        !security.status.success(),
        "a unit without sandboxing must not pass 2.0"
    );
}
