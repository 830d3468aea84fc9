#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Hearth's gateway as a drop-in for OpenClaw's configuration files,
//! checked against the real OpenClaw from npm: every example configuration
//! in OpenClaw's shipped docs that OpenClaw itself accepts is accepted by
//! `hearth-gateway config validate` and starts `hearth-gateway serve`
//! (except those OpenClaw's own gateway will not start either:
//! `gateway.mode: "remote"`), and a file OpenClaw has edited is read too.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hearth_testkit::lab::binary;
use hearth_testkit::openclaw::{self, OpenClaw};
use serde_json::Value;

/// `hearth-gateway config validate --output json` over `files`: each
/// file's line, by path.
fn hearth_verdicts(files: &[PathBuf], home: &Path) -> HashMap<PathBuf, Value> {
    let mut verdicts = HashMap::new();
    // A few hundred files per run keeps the command line short.
    for chunk in files.chunks(256) {
        let output = Command::new(binary("hearth-gateway"))
            .args(["config", "validate", "--output", "json"])
            .args(chunk)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .output()
            .unwrap();
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            verdicts.insert(PathBuf::from(row["path"].as_str().unwrap()), row);
        }
    }
    assert_eq!(verdicts.len(), files.len(), "a verdict for every file");
    verdicts
}

/// Starts `hearth-gateway serve` on `file` (any free port, a data directory
/// of its own) and reads its log until it serves or exits; the last lines
/// when it did not serve.
fn starts(file: &Path, home: &Path) -> Result<(), String> {
    let data = tempfile::tempdir_in(home).unwrap();
    let mut child = Command::new(binary("hearth-gateway"))
        .arg("serve")
        .arg("--config")
        .arg(file)
        .args(["--port", "0", "--data-dir"])
        .arg(data.path().join("data"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("HEARTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut serving = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        serving = line.contains("gateway serving");
        seen.push(line);
        if serving {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if serving {
        Ok(())
    } else {
        Err(seen[seen.len().saturating_sub(3)..].join("\n"))
    }
}

/// How many gateways [`starts`] runs at once.
const STARTING_AT_ONCE: usize = 4;

fn remote(text: &str) -> bool {
    json5::from_str::<Value>(text)
        .is_ok_and(|value| value["gateway"]["mode"].as_str() == Some("remote"))
}

#[test]
fn every_configuration_openclaw_accepts_from_its_docs_starts_hearths_gateway() {
    let Some(openclaw) = openclaw::install() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let examples_dir = home.path().join("examples");
    std::fs::create_dir(&examples_dir).unwrap();
    let examples = openclaw.doc_examples();
    let mut files = Vec::new();
    let mut origin = HashMap::new();
    let mut texts = HashMap::new();
    for (index, (place, text)) in examples.iter().enumerate() {
        let file = examples_dir.join(format!("{index:04}.json5"));
        std::fs::write(&file, text).unwrap();
        origin.insert(file.clone(), place.clone());
        texts.insert(file.clone(), text.clone());
        files.push(file);
    }
    assert!(!files.is_empty(), "OpenClaw's docs show configurations");

    let openclaws = openclaw.validate(&files, home.path());
    let accepted: Vec<PathBuf> = files
        .iter()
        .filter(|file| openclaws[*file])
        .cloned()
        .collect();
    cross_check_with_the_cli(&openclaw, &files, &openclaws, home.path());

    let hearths = hearth_verdicts(&accepted, home.path());
    let refused: Vec<String> = accepted
        .iter()
        .filter(|file| hearths[*file]["valid"] != Value::Bool(true))
        .map(|file| format!("{}: {}", origin[file], hearths[file]["problems"]))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} configurations OpenClaw accepts are refused:\n{}",
        refused.len(),
        accepted.len(),
        refused.join("\n")
    );

    // Started a few at a time: each start waits mostly on its process.
    let started: Vec<(&PathBuf, Result<(), String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = accepted
            .chunks(accepted.len().div_ceil(STARTING_AT_ONCE).max(1))
            .map(|chunk| {
                let home = home.path();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|file| (file, starts(file, home)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    let mut failed = Vec::new();
    let mut remote_files = 0;
    for (file, outcome) in started {
        if remote(&texts[file]) {
            // OpenClaw's gateway will not start on these either (it wants
            // gateway.mode "local"); Hearth's says why.
            remote_files += 1;
            match outcome {
                Err(log) if log.contains("gateway.mode is \"remote\"") => {}
                other => failed.push(format!("{} (remote): {other:?}", origin[file])),
            }
        } else if let Err(log) = outcome {
            failed.push(format!("{}: {log}", origin[file]));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} accepted configurations did not start the gateway:\n{}",
        failed.len(),
        accepted.len(),
        failed.join("\n\n")
    );
    eprintln!(
        "{} example configurations in OpenClaw's docs, {} accepted by OpenClaw, all accepted by Hearth; \
         {} started Hearth's gateway, {} remote ones refused as OpenClaw does",
        files.len(),
        accepted.len(),
        accepted.len() - remote_files,
        remote_files
    );

    // What the issue found refused, each kind among the examples started.
    let has = |test: &dyn Fn(&Value) -> bool| {
        accepted
            .iter()
            .any(|file| json5::from_str::<Value>(&texts[file]).is_ok_and(|value| test(&value)))
    };
    let providers = |value: &Value| -> Vec<Value> {
        value["models"]["providers"]
            .as_object()
            .map(|map| map.values().cloned().collect())
            .unwrap_or_default()
    };
    assert!(has(&|value| providers(value)
        .iter()
        .any(|p| p["api"] == "ollama")));
    assert!(has(&|value| providers(value).iter().any(|p| p["api"]
        == "openai-completions"
        && p["baseUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("http://")))));
    assert!(has(
        &|value| value["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"] == true
    ));
    assert!(has(&|value| value["agents"]["entries"].is_object()));
    assert!(has(
        &|value| value["agents"]["defaults"]["model"].is_string()
    ));
}

/// The in-process verdicts agree with `openclaw config validate --json`
/// itself, on a file it accepts and one it refuses.
fn cross_check_with_the_cli(
    openclaw: &OpenClaw,
    files: &[PathBuf],
    verdicts: &HashMap<PathBuf, bool>,
    home: &Path,
) {
    let valid = files.iter().find(|file| verdicts[*file]).unwrap();
    let invalid = files.iter().find(|file| !verdicts[*file]).unwrap();
    for file in [valid, invalid] {
        let output = openclaw
            .command(home)
            .args(["config", "validate", "--json"])
            .env("OPENCLAW_CONFIG_PATH", file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let answer: Value = text
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| panic!("no JSON from openclaw config validate: {text}"));
        assert_eq!(
            answer["valid"].as_bool(),
            Some(verdicts[file]),
            "the CLI and the in-process check agree on {}",
            file.display()
        );
    }
}

#[test]
fn a_file_openclaw_has_edited_is_read() {
    let Some(openclaw) = openclaw::install() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("openclaw.json");
    std::fs::write(
        &file,
        r#"{ gateway: { mode: "local", port: 18789 }, models: { providers: { local: {
             baseUrl: "http://127.0.0.1:8080/v1", api: "openai-completions",
             models: [{ id: "tiny", name: "Tiny", contextWindow: 2048 }] } } },
           agents: { defaults: { model: "local/tiny" } } }"#,
    )
    .unwrap();
    let status = openclaw
        .command(home.path())
        .args(["config", "set", "gateway.port", "18790"])
        .env("OPENCLAW_CONFIG_PATH", &file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openclaw config set");
    let written: Value = json5::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(written["gateway"]["port"], 18790);
    assert!(written["meta"].is_object(), "OpenClaw notes itself in meta");
    let verdicts = hearth_verdicts(std::slice::from_ref(&file), home.path());
    let verdict = &verdicts[&file];
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert!(
        verdict["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|note| note["path"] == "meta"
                && note["note"].as_str().unwrap().starts_with("ignored:")),
        "{verdict}"
    );
    starts(&file, home.path()).unwrap();
}

#[test]
fn an_invalid_file_is_named_with_every_problem_and_nothing_starts() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("openclaw.json");
    std::fs::write(
        &file,
        r#"{ gateway: { port: "eighteen", bind: "everywhere" }, models: { providers: { x: { baseUrl: 7 } } } }"#,
    )
    .unwrap();
    let output = Command::new(binary("hearth-gateway"))
        .args(["config", "validate"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for path in ["gateway.port", "gateway.bind", "models.providers.x.baseUrl"] {
        assert!(text.contains(&format!("  {path}: ")), "{path} in {text}");
    }
    assert!(text.contains("3 problems"), "{text}");
    let data = home.path().join("data");
    let output = Command::new(binary("hearth-gateway"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("is not a valid configuration: 3 problems"),
        "{log}"
    );
    assert!(!data.exists(), "nothing was started half-configured");
}

#[test]
fn doctor_checks_backends_the_token_file_and_the_workspace() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(llama) = hearth_testkit::llama::LlamaServer::start_tcp() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let token = data.join("gateway.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let workspace = home.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    std::fs::write(workspace.join("SOUL.md"), "Be kind.").unwrap();
    let nobody = hearth_testkit::llama::free_port();
    let write = |providers: Value| {
        let file = home.path().join("openclaw.json");
        let config = serde_json::json!({
            "models": {"providers": providers},
            "agents": {"defaults": {"model": "llamacpp/tiny", "workspace": workspace}},
        });
        std::fs::write(&file, config.to_string()).unwrap();
        file
    };
    let doctor = |file: &Path| {
        let output = Command::new(binary("hearth-gateway"))
            .arg("doctor")
            .arg("--config")
            .arg(file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
        )
    };
    let file = write(serde_json::json!({
        "llamacpp": {"baseUrl": llama.base_url, "models": [{"id": "tiny"}]},
        "gone": {"baseUrl": format!("http://127.0.0.1:{nobody}/v1"), "models": [{"id": "x"}]},
    }));
    let (ok, report) = doctor(&file);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!(
            "ok   backend llamacpp {}: answers",
            llama.base_url
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "FAIL backend gone http://127.0.0.1:{nobody}/v1: does not answer"
        )),
        "{report}"
    );
    assert!(
        report.contains("FAIL token file") && report.contains("mode 0644"),
        "{report}"
    );
    assert!(
        report.contains("ok   workspace of the default agent") && report.contains("SOUL.md"),
        "{report}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = write(serde_json::json!({
        "llamacpp": {"baseUrl": llama.base_url, "models": [{"id": "tiny"}]},
    }));
    let (ok, report) = doctor(&file);
    assert!(ok, "{report}");
    assert!(
        report.contains("ok   token file") && report.contains("mode 0600"),
        "{report}"
    );
}
