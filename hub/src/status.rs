//! `hearth status`: looks at every part of the hub (units, the model, the
//! coordinator, disk, backups) and hands what it saw to
//! [`crate::health::assess`].

use std::path::Path;

use hearth_assistant::language::Language;

use crate::answers::ModelChoice;
use crate::health::{
    self, BackupRecord, CoordinatorProblem, CoordinatorProblemKind, CoordinatorReport, Disk,
    ModelState, Observations, Pending, ServiceState,
};
use crate::layout::HUB_TAG;
use crate::layout::{Layout, Unit};
use crate::probe::{self, Target};
use crate::record::read_record;
use crate::system;

/// Looks at the hub.
pub fn observe(layout: &Layout) -> Observations {
    let now = hearth_runtime::clock::unix_seconds();
    let record = read_record(layout).ok().flatten();
    let answers = record.as_ref().map(|record| &record.answers);
    let hub_version = package_version("hearth");
    let llama_version = package_version("hearth-llama-server");
    let llama = answers.is_none_or(|answers| answers.model.uses_llama_server());
    let searching = layout.embedding_model().exists();
    let hearing = layout.speech_model().is_some();
    // Asked of dpkg only where the speech units are shown.
    let speech_version = if hearing {
        package_version("hearth-speech")
    } else {
        String::new()
    };
    let manager = crate::manager::current();
    let services = Unit::ALL
        .into_iter()
        .filter(|unit| match unit {
            Unit::LlamaServer | Unit::LlamaProxy => llama,
            Unit::OllamaProxy => !llama,
            Unit::EmbeddingsSocket | Unit::EmbeddingsServer | Unit::EmbeddingsProxy => searching,
            Unit::SpeechSocket | Unit::SpeechServer | Unit::SpeechProxy => hearing,
            _ => true,
        })
        .filter_map(|unit| {
            let (state, enabled) = manager.state(unit);
            (state != "absent").then_some((unit, state, enabled))
        })
        .map(|(unit, state, enabled)| ServiceState {
            unit: unit.name().into(),
            state,
            enabled,
            needed: record.is_some() && unit.always_on(crate::manager::in_podman()),
            version: match unit {
                Unit::LlamaServer
                | Unit::LlamaProxy
                | Unit::EmbeddingsSocket
                | Unit::EmbeddingsServer
                | Unit::EmbeddingsProxy => llama_version.clone(),
                Unit::SpeechSocket | Unit::SpeechServer | Unit::SpeechProxy => {
                    speech_version.clone()
                }
                _ => hub_version.clone(),
            },
            log: manager.log_command(unit),
        })
        .collect();
    let model =
        answers.map(|answers| model_state(layout, &answers.model, &record_model_id(layout)));
    let last_backup = system::read_optional(&layout.last_backup())
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str::<BackupRecord>(&text).ok());
    Observations {
        now,
        version: hub_version,
        set_up_at: record.as_ref().map(|record| record.completed_at),
        household: answers
            .map(|answers| answers.household.clone())
            .unwrap_or_default(),
        services,
        model,
        coordinator: coordinator(layout),
        disk: disk(layout),
        last_backup,
    }
}

/// The version of the installed package `name` (or this program's).
fn package_version(name: &str) -> String {
    system::output(std::process::Command::new("dpkg-query").args([
        "--showformat=${Version}",
        "--show",
        name,
    ]))
    .ok()
    .filter(|output| output.status.success() && !output.stdout.is_empty())
    .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
    .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

/// The model the gateway names, from the file setup wrote.
fn record_model_id(layout: &Layout) -> String {
    system::read_optional(&layout.gateway_config().join("hub.json5"))
        .ok()
        .flatten()
        .and_then(|text| {
            let start = text.find("\"primary\": \"hub/")? + "\"primary\": \"hub/".len();
            let end = text[start..].find('"')?;
            Some(text[start..start + end].to_owned())
        })
        .unwrap_or_default()
}

fn model_state(layout: &Layout, model: &ModelChoice, id: &str) -> ModelState {
    let kind = match model {
        ModelChoice::Default => "default",
        ModelChoice::File { .. } => "file",
        ModelChoice::Ollama { .. } => "ollama",
        ModelChoice::Server { .. } => "server",
    };
    let (target, path) = match model {
        ModelChoice::Default | ModelChoice::File { .. } => {
            (Some(Target::Unix(layout.inference_socket())), "/health")
        }
        ModelChoice::Ollama { .. } if !crate::manager::in_podman() => (
            Some(Target::Unix(layout.inference_socket())),
            "/api/version",
        ),
        _ => match crate::machine::host_model_probe(model) {
            Ok((target, path)) => (Some(target), path),
            Err(_) => (None, "/"),
        },
    };
    let probed = match target {
        Some(target) => probe::get(&target, path).map_err(|error| error.to_string()),
        None => Err("its address does not resolve".to_owned()),
    };
    let (answers, detail, loading) = match probed {
        Ok(answer) if answer.status == 200 => (true, "answers".to_owned(), false),
        Ok(answer) => (
            false,
            format!("its health check answered {}", answer.status),
            // llama-server's answer while it reads the model in.
            answer.status == 503 && String::from_utf8_lossy(&answer.body).contains("Loading model"),
        ),
        Err(error) => (false, error, false),
    };
    ModelState {
        kind: kind.into(),
        id: id.into(),
        answers,
        detail,
        loading,
    }
}

fn coordinator(layout: &Layout) -> Option<CoordinatorReport> {
    let health =
        system::output(system::coordinator(layout).args(["health", "--output", "json"])).ok()?;
    let health: serde_json::Value = serde_json::from_slice(&health.stdout).ok()?;
    let nodes =
        system::run(system::coordinator(layout).args(["nodes", "list", "--output", "json"]))
            .ok()?;
    let nodes: serde_json::Value = serde_json::from_str(&nodes).ok()?;
    let nodes = nodes.as_array().cloned().unwrap_or_default();
    let approved: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|node| node["state"] == "approved")
        .collect();
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(CoordinatorReport {
        online: approved
            .iter()
            .filter(|node| node["online"] == true)
            .count(),
        devices: approved.len(),
        pending: nodes
            .iter()
            .filter(|node| node["state"] == "pending")
            .map(|node| Pending {
                id: node["id"].as_u64().unwrap_or_default(),
                name: node["name"].as_str().unwrap_or_default().into(),
                user: node["user"].as_str().unwrap_or_default().into(),
            })
            .collect(),
        certificates: health["certificates"]
            .as_array()
            .map(|certificates| {
                certificates
                    .iter()
                    .filter_map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default(),
        hub_key_expiry: approved
            .iter()
            .find(|node| strings(&node["tags"]).iter().any(|tag| tag == HUB_TAG))
            .and_then(|node| node["key_expiry"].as_i64()),
        problems: strings(&health["problems"])
            .into_iter()
            .enumerate()
            .map(|(index, text)| CoordinatorProblem {
                kind: serde_json::from_value(health["problem_kinds"][index].clone())
                    .unwrap_or(CoordinatorProblemKind::Other),
                text,
            })
            .collect(),
    })
}

fn disk(layout: &Layout) -> Option<Disk> {
    let measured = layout.coordinator_state().parent()?.to_owned();
    let stats = rustix::fs::statvfs(&measured).ok()?;
    let used_by_hub = layout.state_dirs().iter().map(|dir| size_of(dir)).sum();
    Some(Disk {
        path: measured.display().to_string(),
        used_by_hub,
        free: stats.f_bavail * stats.f_frsize,
        total: stats.f_blocks * stats.f_frsize,
    })
}

/// Bytes of the regular files under `path` (links not followed).
fn size_of(path: &Path) -> u64 {
    let Ok(metadata) = path.symlink_metadata() else {
        return 0;
    };
    if metadata.is_file() {
        return metadata.len();
    }
    if !metadata.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| size_of(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Prints the report, in `language` (else the household's); whether all
/// is well.
pub fn run(layout: &Layout, json: bool, language: Option<Language>) -> anyhow::Result<bool> {
    let language = language.unwrap_or_else(|| crate::record::household_language(layout));
    let report = health::assess(observe(layout));
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", health::render_text(&report, language));
    }
    Ok(report.ok)
}
