//! What a setup run made, to be taken back when a later step fails: files
//! made or replaced (the old contents kept), units enabled or started (and
//! left failed), the pod and its network when this run made them, and on a
//! first run the state folders the services began (gone if this run made
//! them).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use zeroize::Zeroizing;

use crate::layout::Unit;
use crate::system::{self, Owner, write_file};

/// What setup made, to be taken back if a later step fails.
pub(crate) struct Undo {
    first_run: bool,
    steps: Vec<Step>,
}

enum Step {
    Created(PathBuf),
    Replaced(PathBuf, Zeroizing<Vec<u8>>, u32, Owner),
    Enabled(Unit),
    Started(Unit),
    /// A state folder the services began on this (first) run, and
    /// whether it was there (empty) before.
    Began(PathBuf, bool),
    /// The pod was started for the first time: its containers, and the
    /// network when it was not there before, go.
    PodMade {
        /// This run made the pod's network.
        network: bool,
    },
}

impl Undo {
    pub(crate) fn new(first_run: bool) -> Undo {
        Undo {
            first_run,
            steps: Vec::new(),
        }
    }

    pub(crate) fn forget(&mut self) {
        self.steps.clear();
    }

    pub(crate) fn take_back(&mut self) {
        while let Some(step) = self.steps.pop() {
            let result = match &step {
                Step::Enabled(unit) => crate::manager::current().disable(*unit),
                Step::Started(unit) => crate::manager::current().stop(*unit),
                Step::PodMade { network } => take_back_pod(*network),
                Step::Created(path) => std::fs::remove_file(path)
                    .or_else(|error| match error.kind() {
                        std::io::ErrorKind::NotFound => Ok(()),
                        _ => Err(error),
                    })
                    .map_err(anyhow::Error::from),
                Step::Replaced(path, contents, mode, owner) => {
                    write_file(path, contents, *mode, *owner)
                }
                Step::Began(folder, true) => empty_folder(folder),
                Step::Began(folder, false) => std::fs::remove_dir_all(folder)
                    .or_else(|error| match error.kind() {
                        std::io::ErrorKind::NotFound => Ok(()),
                        _ => Err(error),
                    })
                    .map_err(anyhow::Error::from),
            };
            if let Err(error) = result {
                eprintln!("  could not take back a step: {error:#}");
            }
        }
    }

    /// Writes `contents` unless the file already holds them; whether it wrote.
    pub(crate) fn put(
        &mut self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        owner: Owner,
    ) -> anyhow::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        match std::fs::read(path) {
            Ok(old) if old == contents => return Ok(false),
            Ok(old) => {
                let metadata = std::fs::metadata(path)?;
                self.steps.push(Step::Replaced(
                    path.to_owned(),
                    Zeroizing::new(old),
                    metadata.permissions().mode() & 0o7777,
                    Owner {
                        uid: metadata.uid(),
                        gid: metadata.gid(),
                    },
                ));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.steps.push(Step::Created(path.to_owned()));
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        write_file(path, contents, mode, owner)?;
        Ok(true)
    }

    /// Makes a secret file unless one exists (secrets are never replaced).
    pub(crate) fn secret(
        &mut self,
        path: &Path,
        make: impl FnOnce() -> Zeroizing<Vec<u8>>,
        owner: Owner,
    ) -> anyhow::Result<bool> {
        if path.exists() {
            return Ok(false);
        }
        self.steps.push(Step::Created(path.to_owned()));
        write_file(path, &make(), 0o600, owner)?;
        Ok(true)
    }

    /// Enables and starts `unit` unless it runs; restarts it when `changed`
    /// (through [`crate::manager`]: systemd, or the hub's pod in Podman).
    pub(crate) fn start(&mut self, unit: Unit, changed: bool) -> anyhow::Result<()> {
        let manager = crate::manager::current();
        let (state, enabled) = manager.state(unit);
        if !enabled {
            manager.enable(unit)?;
            // Taken back (disabled) even when it then fails to start.
            self.steps.push(Step::Enabled(unit));
            return manager.start(unit);
        }
        if state != "active" {
            manager.start(unit)?;
            self.steps.push(Step::Started(unit));
        } else if changed {
            manager.restart(unit)?;
        }
        Ok(())
    }

    /// `path` was made by this run (it goes if a later step fails).
    pub(crate) fn created(&mut self, path: &Path) {
        self.steps.push(Step::Created(path.to_owned()));
    }

    /// `path` held `contents` (with `mode` and `owner`) before this run
    /// removed or replaced it: put back if a later step fails.
    pub(crate) fn replaced(
        &mut self,
        path: &Path,
        contents: Zeroizing<Vec<u8>>,
        mode: u32,
        owner: Owner,
    ) {
        self.steps
            .push(Step::Replaced(path.to_owned(), contents, mode, owner));
    }

    /// On a first run, `folder`'s contents are the services' to begin.
    pub(crate) fn began(&mut self, folder: &Path) {
        let empty = std::fs::read_dir(folder).map_or(true, |mut entries| entries.next().is_none());
        if self.first_run && empty {
            self.steps
                .push(Step::Began(folder.to_owned(), folder.exists()));
        }
    }

    /// The pod is about to start: if it has never run here, what starting
    /// it makes (its containers; its network, when missing) is this run's.
    pub(crate) fn pod_starting(&mut self) {
        let exists = |args: &[&str]| {
            system::output(std::process::Command::new("podman").args(args))
                .is_ok_and(|output| output.status.success())
        };
        if !exists(&["pod", "exists", POD]) {
            self.steps.push(Step::PodMade {
                network: !exists(&["network", "exists", POD]),
            });
        }
    }
}

/// The pod's name, and its network's (hearth-pod.service).
const POD: &str = "hearth";

/// The pod's containers, and its network when this run made it.
fn take_back_pod(network: bool) -> anyhow::Result<()> {
    system::run(
        std::process::Command::new("podman").args(["pod", "rm", "--force", "--ignore", POD]),
    )?;
    if network {
        system::run(std::process::Command::new("podman").args(["network", "rm", "--force", POD]))?;
    }
    Ok(())
}

fn empty_folder(folder: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
