//! `hearth-gateway doctor`: what `serve` would meet, checked before it
//! does: warnings from the configuration, the token file's mode, the data
//! directory, the workspace files of each persona, whether the address can
//! be had, and whether every backend answers. Judging is pure
//! ([`token_file`], [`data_dir`], [`workspace`]); [`run`] looks.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::config::{Loaded, TokenSource};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but look.
    Warn,
    /// `serve` would fail, or callers would.
    Fail,
}

/// One check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub status: Status,
    /// Why.
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }
}

impl fmt::Display for Check {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(formatter, "{status} {}: {}", self.name, self.detail)
    }
}

/// The token file at `path`, whose mode (if it exists) is `mode`.
pub fn token_file(path: &Path, mode: Option<u32>) -> Check {
    let name = format!("token file {}", path.display());
    match mode {
        None => Check::new(
            name,
            Status::Warn,
            "missing: serve creates it (0600) on first start",
        ),
        Some(mode) if mode & 0o077 == 0 => Check::new(name, Status::Ok, format!("mode {mode:04o}")),
        Some(mode) if hearth_files::token::private_enough(mode) => Check::new(
            name,
            Status::Warn,
            format!(
                "mode {mode:04o}: its group can read the token; 0600 keeps it to the gateway's user"
            ),
        ),
        Some(mode) => Check::new(
            name,
            Status::Fail,
            format!("mode {mode:04o}: every user of this machine can read the token (chmod 600)"),
        ),
    }
}

/// The data directory at `path`, whose mode (if it exists) is `mode`.
pub fn data_dir(path: &Path, mode: Option<u32>) -> Check {
    let name = format!("data directory {}", path.display());
    match mode {
        None => Check::new(name, Status::Warn, "missing: serve creates it (0700)"),
        Some(mode) if mode & 0o077 == 0 => Check::new(name, Status::Ok, format!("mode {mode:04o}")),
        Some(mode) => Check::new(
            name,
            Status::Warn,
            format!("mode {mode:04o}: others can list the gateway's keys and sessions (chmod 700)"),
        ),
    }
}

/// The workspace of `persona` at `path`, holding `present` of the persona
/// files (`None`: the folder is missing).
pub fn workspace(persona: &str, path: &Path, present: Option<&[&str]>) -> Check {
    let name = format!("workspace of {persona} {}", path.display());
    match present {
        None => Check::new(
            name,
            Status::Warn,
            "missing: this persona has no system prompt",
        ),
        Some([]) => Check::new(
            name,
            Status::Warn,
            format!(
                "none of {} is there: this persona has no system prompt",
                crate::persona::FILES.join(", ")
            ),
        ),
        Some(files) => Check::new(name, Status::Ok, files.join(", ")),
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|metadata| metadata.permissions().mode() & 0o7777)
}

fn persona_files(path: &Path) -> Option<Vec<&'static str>> {
    path.is_dir().then(|| {
        crate::persona::FILES
            .into_iter()
            .filter(|name| path.join(name).is_file())
            .collect()
    })
}

/// Every check, for the configuration `loaded`.
pub async fn run(loaded: &Loaded) -> Vec<Check> {
    let config = &loaded.config;
    let mut checks: Vec<Check> = loaded
        .notes
        .iter()
        .filter(|note| note.note.starts_with("warning:"))
        .map(|note| Check::new(note.path.clone(), Status::Warn, note.note.clone()))
        .collect();
    let ignored = loaded
        .notes
        .iter()
        .filter(|note| note.note.starts_with("ignored:"))
        .count();
    if ignored > 0 {
        checks.push(Check::new(
            "configuration",
            Status::Ok,
            format!("{ignored} key(s) ignored (`hearth-gateway config validate` lists them)"),
        ));
    }
    match config.token_source() {
        TokenSource::File(path) => checks.push(token_file(&path, mode_of(&path))),
        TokenSource::Given(_) => checks.push(Check::new(
            "shared secret",
            Status::Ok,
            "given by the configuration or the environment",
        )),
        TokenSource::Off | TokenSource::DataDir => checks.push(Check::new(
            "shared secret",
            Status::Warn,
            "none (auth.mode \"none\"): every user of this machine can use the gateway",
        )),
    }
    checks.push(data_dir(
        &config.hearth.data_dir,
        mode_of(&config.hearth.data_dir),
    ));
    let mut workspaces: Vec<(String, PathBuf)> = config
        .agents
        .defaults
        .workspace
        .iter()
        .map(|path| ("the default agent".to_owned(), path.clone()))
        .collect();
    for (id, entry) in &config.agents.entries {
        if let Some(path) = &entry.workspace {
            workspaces.push((format!("agent {id}"), path.clone()));
        }
    }
    for (persona, path) in workspaces {
        let present = persona_files(&path);
        checks.push(workspace(&persona, &path, present.as_deref()));
    }
    match crate::server::bind_address(config) {
        Ok((address, _)) => checks.push(Check::new("address", Status::Ok, address.to_string())),
        Err(error) => checks.push(Check::new("address", Status::Fail, format!("{error:#}"))),
    }
    match crate::build_router(config) {
        Err(error) => checks.push(Check::new("models", Status::Fail, error.to_string())),
        Ok(router) if router.chain().is_empty() => checks.push(Check::new(
            "models",
            Status::Fail,
            "no model Hearth can reach is configured (models.providers, agents.defaults.model)",
        )),
        Ok(router) => {
            router.probe_all().await;
            for status in router.status() {
                checks.push(Check::new(
                    format!("backend {} {}", status.provider, status.endpoint),
                    if status.healthy {
                        Status::Ok
                    } else {
                        Status::Fail
                    },
                    if status.healthy {
                        "answers"
                    } else {
                        "does not answer"
                    },
                ));
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_judged_by_who_else_can_read() {
        let path = Path::new("/x/gateway.token");
        assert_eq!(token_file(path, Some(0o600)).status, Status::Ok);
        assert_eq!(token_file(path, Some(0o640)).status, Status::Warn);
        assert_eq!(token_file(path, Some(0o644)).status, Status::Fail);
        assert_eq!(token_file(path, None).status, Status::Warn);
        assert_eq!(data_dir(path, Some(0o700)).status, Status::Ok);
        assert_eq!(data_dir(path, Some(0o755)).status, Status::Warn);
        assert_eq!(
            workspace("a", path, Some(&["SOUL.md"])).to_string(),
            "ok   workspace of a /x/gateway.token: SOUL.md"
        );
        assert_eq!(workspace("a", path, Some(&[])).status, Status::Warn);
    }
}
