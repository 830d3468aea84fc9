//! `hearth-coordinator backup FILE` and `restore FILE`: the coordinator's
//! whole state in one file, taken while it runs.
//!
//! A backup is a tar archive (0600: it holds private keys) of a consistent
//! snapshot of the SQLite database (`VACUUM INTO`, which reads one
//! transaction's view while the coordinator keeps writing) and the identity
//! files ([`IDENTITY_FILES`]): without the node CA's key, restored nodes'
//! certificates would mean nothing. With PostgreSQL the database is backed
//! up with PostgreSQL's own tools (`pg_dump`); the archive then holds the
//! identity files only.
//!
//! Restoring writes into a new state directory, never over a live one.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::db::Db;
use crate::state_dir::{IDENTITY_FILES, StateDir, write_private};
use hearth_files::private::PrivateFile;

/// The database's name inside an archive.
const DATABASE_ENTRY: &str = "coordinator.db";

/// The largest entry a restore accepts (a database of many thousand nodes
/// is a few megabytes).
const MAX_ENTRY: u64 = 1 << 30;

/// What a backup holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Archived {
    /// The entries, by name.
    pub entries: Vec<String>,
}

/// Writes a backup of `state` (whose database is `db`, SQLite or not) to
/// `file`, which must not exist yet (not even as a link). The file appears
/// whole or not at all, 0600: it is written to a new temporary file of a
/// random name beside it (never one found there: the directory may be
/// writable by others) and linked into place only if nothing took the name.
pub async fn backup(state: &StateDir, db: Option<&Db>, file: &Path) -> anyhow::Result<Archived> {
    if file.symlink_metadata().is_ok() {
        bail!(
            "{} exists; a backup never overwrites a file",
            file.display()
        );
    }
    let snapshot = state
        .root()
        .join(format!("backup-{:016x}.db", rand::random::<u64>()));
    let result = async {
        let mut entries: Vec<(String, PathBuf)> = Vec::new();
        if let Some(db) = db {
            write_private(&snapshot, b"")?;
            db.snapshot_into(&snapshot)
                .await
                .context("cannot take a snapshot of the database")?;
            entries.push((DATABASE_ENTRY.to_owned(), snapshot.clone()));
        }
        for name in IDENTITY_FILES {
            let path = state.root().join(name);
            if path.exists() {
                entries.push(((*name).to_owned(), path));
            }
        }
        let mut output = PrivateFile::create(file)
            .with_context(|| format!("cannot write beside {}", file.display()))?;
        let mut archive = tar::Builder::new(output.as_file_mut());
        archive.mode(tar::HeaderMode::Deterministic);
        for (name, path) in &entries {
            archive
                .append_path_with_name(path, name)
                .with_context(|| format!("cannot archive {}", path.display()))?;
        }
        archive.finish()?;
        drop(archive);
        output.finish(file).with_context(|| {
            format!(
                "cannot write {} (a backup never overwrites a file)",
                file.display()
            )
        })?;
        Ok(Archived {
            entries: entries.into_iter().map(|(name, _)| name).collect(),
        })
    }
    .await;
    let _ = std::fs::remove_file(&snapshot);
    result
}

/// Restores the backup `file` into `state`, which must hold no database or
/// identity yet; the restored database is checked before this returns.
pub async fn restore(state: &StateDir, file: &Path) -> anyhow::Result<Archived> {
    for name in std::iter::once(DATABASE_ENTRY).chain(IDENTITY_FILES.iter().copied()) {
        if state.root().join(name).exists() {
            bail!(
                "{} already holds {name}; restore into a new, empty state directory",
                state.root().display()
            );
        }
    }
    state.prepare()?;
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = tar::Archive::new(input);
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        // Only the names a backup writes; nothing outside the state dir.
        let known = name == DATABASE_ENTRY || IDENTITY_FILES.contains(&name.as_str());
        if !known || entries.contains(&name) {
            bail!(
                "{} is not a Hearth backup: unexpected entry `{name}`",
                file.display()
            );
        }
        if entry.size() > MAX_ENTRY {
            bail!(
                "{} is not a Hearth backup: `{name}` is too large",
                file.display()
            );
        }
        let mut contents = zeroize::Zeroizing::new(Vec::new());
        entry.read_to_end(&mut contents)?;
        write_private(&state.root().join(&name), &contents)?;
        entries.push(name);
    }
    if entries.iter().any(|name| name == DATABASE_ENTRY) {
        let db = Db::open_sqlite(&state.database()).await?;
        let check = db.integrity_check().await?;
        db.close().await;
        if check != "ok" {
            bail!("the restored database fails its integrity check: {check}");
        }
    }
    Ok(Archived { entries })
}
