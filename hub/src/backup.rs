//! `hearth backup FILE` and `hearth restore FILE`: the whole hub in one
//! file, taken while it runs. The coordinator's state comes from its own
//! backup (a consistent snapshot); each SQLite database of the gateway and
//! the messaging service is snapshotted with `VACUUM INTO` (one
//! transaction's view while the service keeps writing); the rest
//! (configuration, secrets, keys, the agent's identity, the assistant's
//! folders) is copied. What the archive holds and what a restore accepts is
//! [`crate::archive`]'s.
//!
//! A restore reads and checks the whole archive into a private folder
//! before it stops anything; the hub's folders it replaces are kept beside
//! their places (`NAME.before-restore-TIME`), never deleted.

use std::io::{Read, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::archive::{self, COORDINATOR, Entry, FOLDERS, FileRole, Kind, MANIFEST, Manifest};
use crate::health::BackupRecord;
use crate::layout::{CONTAINER_USER, Layout, Unit};
use crate::system::{self, Owner};

/// A private folder under the hub's state, removed when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(layout: &Layout, purpose: &str) -> anyhow::Result<Staging> {
        system::make_folder(&layout.hub_state(), 0o755, Owner::ROOT)?;
        let path = layout
            .hub_state()
            .join(format!("{purpose}-{:016x}", rand::random::<u64>()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot make {}", path.display()))?;
        Ok(Staging { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One thing to put in the archive: where its bytes are now.
struct Source {
    entry: Entry,
    from: Option<PathBuf>,
}

/// Writes the hub's backup to `file` (which must not exist); 0600.
pub fn backup(layout: &Layout, file: &Path) -> anyhow::Result<Manifest> {
    if file.symlink_metadata().is_ok() {
        bail!(
            "{} exists; a backup never overwrites a file",
            file.display()
        );
    }
    let record = crate::setup::read_record(layout)?
        .context("this hub is not set up: there is nothing to back up")?;
    let staging = Staging::new(layout, "backup")?;
    let mut sources = Vec::new();
    // The coordinator's own backup: its database snapshot and identity.
    let coordinator_tar = staging.path.join(COORDINATOR);
    system::run(
        system::coordinator(layout)
            .arg("backup")
            .arg(&coordinator_tar),
    )
    .context("the coordinator's backup")?;
    sources.push(source_file(
        COORDINATOR.into(),
        &coordinator_tar,
        archive::Owner::Root,
        0o600,
    )?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut snapshot = 0;
    for (folder, _) in FOLDERS {
        let path = layout.beneath(folder);
        if path.is_dir() {
            walk(&path, folder, &mut |name, path, metadata| {
                let owner = owner_of(metadata);
                let mode = metadata.permissions().mode() & 0o7777;
                if metadata.is_dir() {
                    sources.push(Source {
                        entry: Entry {
                            name,
                            kind: Kind::Folder,
                            mode,
                            owner,
                            bytes: 0,
                            sha256: String::new(),
                        },
                        from: None,
                    });
                    return Ok(());
                }
                let file_name = path.file_name().unwrap_or_default().to_string_lossy();
                match archive::database_role(&file_name) {
                    FileRole::Skip => Ok(()),
                    FileRole::Copy => {
                        sources.push(source_file(name, path, owner, mode)?);
                        Ok(())
                    }
                    FileRole::Database => {
                        snapshot += 1;
                        let copy = staging.path.join(format!("snapshot-{snapshot}.db"));
                        runtime.block_on(snapshot_database(path, &copy))?;
                        sources.push(source_file(name, &copy, owner, mode)?);
                        Ok(())
                    }
                }
            })?;
        }
    }
    let manifest = Manifest {
        format: archive::FORMAT,
        version: env!("CARGO_PKG_VERSION").into(),
        created_at: hearth_runtime::clock::unix_seconds(),
        household: record.answers.household.clone(),
        entries: sources.iter().map(|source| source.entry.clone()).collect(),
    };
    write_archive(file, &manifest, &sources)?;
    let bytes = std::fs::metadata(file)?.len();
    let record = BackupRecord {
        at: manifest.created_at,
        file: std::path::absolute(file)?.display().to_string(),
        bytes,
    };
    system::write_file(
        &layout.last_backup(),
        serde_json::to_string(&record)?.as_bytes(),
        0o644,
        Owner::ROOT,
    )?;
    Ok(manifest)
}

fn owner_of(metadata: &std::fs::Metadata) -> archive::Owner {
    if metadata.uid() == CONTAINER_USER {
        archive::Owner::Container
    } else {
        archive::Owner::Root
    }
}

fn source_file(
    name: String,
    path: &Path,
    owner: archive::Owner,
    mode: u32,
) -> anyhow::Result<Source> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok(Source {
        entry: Entry {
            name,
            kind: Kind::File,
            mode,
            owner,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        },
        from: Some(path.to_owned()),
    })
}

/// Calls `visit` for `path` and everything beneath it (folders before what
/// they hold, names sorted), never following a link; sockets and other
/// special files are left out.
fn walk(
    path: &Path,
    name: &str,
    visit: &mut dyn FnMut(String, &Path, &std::fs::Metadata) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let metadata = path.symlink_metadata()?;
    if metadata.is_dir() {
        visit(name.to_owned(), path, &metadata)?;
        let mut children: Vec<_> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        children.sort();
        for child in children {
            let child_name = format!("{name}/{}", child.to_string_lossy());
            if child.to_str().is_none() || archive::check_name(&child_name).is_err() {
                eprintln!(
                    "  left out {} (a name a backup cannot carry)",
                    path.join(&child).display()
                );
                continue;
            }
            walk(&path.join(&child), &child_name, visit)?;
        }
    } else if metadata.is_file() {
        visit(name.to_owned(), path, &metadata)?;
    }
    Ok(())
}

/// A consistent copy of the SQLite database at `from` in `to`.
async fn snapshot_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    use sqlx::ConnectOptions as _;
    let before: Vec<PathBuf> = ["-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", from.display())))
        .filter(|side| !side.exists())
        .collect();
    let owner = std::fs::metadata(from)?;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(from)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot open {}", from.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(to.display().to_string())
        .execute(&mut connection)
        .await
        .with_context(|| format!("cannot take a snapshot of {}", from.display()))?;
    drop(connection);
    // Side files SQLite made for this connection belong to the service.
    for side in before {
        if side.exists() {
            std::os::unix::fs::chown(&side, Some(owner.uid()), Some(owner.gid()))?;
        }
    }
    Ok(())
}

/// Writes the archive to a new temporary file beside `file`, then links it
/// into place only if nothing took the name meanwhile.
fn write_archive(file: &Path, manifest: &Manifest, sources: &[Source]) -> anyhow::Result<()> {
    let dir = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = dir.join(format!(
        ".hearth-backup-{:016x}.partial",
        rand::random::<u64>()
    ));
    let result = (|| -> anyhow::Result<()> {
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
        let text = serde_json::to_vec_pretty(manifest)?;
        append(
            &mut builder,
            MANIFEST,
            Kind::File,
            0o600,
            &mut text.as_slice(),
            text.len() as u64,
        )?;
        for source in sources {
            let entry = &source.entry;
            match &source.from {
                Some(path) => {
                    let mut reader = std::fs::File::open(path)?;
                    append(
                        &mut builder,
                        &entry.name,
                        Kind::File,
                        entry.mode,
                        &mut reader,
                        entry.bytes,
                    )?;
                }
                None => append(
                    &mut builder,
                    &entry.name,
                    Kind::Folder,
                    entry.mode,
                    &mut std::io::empty(),
                    0,
                )?,
            }
        }
        let mut out = builder.into_inner()?;
        out.flush()?;
        out.get_ref().sync_all()?;
        std::fs::hard_link(&temporary, file)
            .with_context(|| format!("cannot write {} (does it exist now?)", file.display()))?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&temporary);
    result
}

fn append(
    builder: &mut tar::Builder<impl std::io::Write>,
    name: &str,
    kind: Kind,
    mode: u32,
    data: &mut dyn Read,
    bytes: u64,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(match kind {
        Kind::File => tar::EntryType::Regular,
        Kind::Folder => tar::EntryType::Directory,
    });
    header.set_mode(mode);
    header.set_size(bytes);
    header.set_mtime(0);
    builder.append_data(&mut header, name, data.take(bytes))?;
    Ok(())
}

/// Reads and checks the archive `file` into `staging`: its manifest first,
/// then every entry as the manifest names it, with its hash.
fn unpack(file: &Path, staging: &Path) -> anyhow::Result<Manifest> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(input));
    let mut entries = archive.entries()?;
    let mut first = entries
        .next()
        .ok_or(archive::ArchiveError::NoManifest)?
        .map_err(|_| archive::ArchiveError::NoManifest)?;
    if first.path()?.to_str() != Some(MANIFEST) || first.size() > archive::MAX_MANIFEST {
        bail!(archive::ArchiveError::NoManifest);
    }
    let mut text = Vec::new();
    first.read_to_end(&mut text)?;
    let manifest = archive::read_manifest(&text)?;
    let mut expected = manifest.entries.iter();
    for entry in entries {
        let mut entry = entry.context("the backup is damaged")?;
        let name = entry
            .path()?
            .to_str()
            .map(|name| name.trim_end_matches('/').to_owned())
            .context("the backup holds a name that is not text")?;
        archive::check_name(&name)?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular => Kind::File,
            tar::EntryType::Directory => Kind::Folder,
            _ => bail!(archive::ArchiveError::Special(name)),
        };
        let next = expected.next();
        archive::expect(next, &name, kind, entry.size())?;
        let target = staging.join(&name);
        if kind == Kind::Folder {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = entry.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            out.write_all(&buffer[..read])?;
        }
        let hash = hex::encode(hasher.finalize());
        if next.is_some_and(|expected| expected.sha256 != hash) {
            bail!(archive::ArchiveError::Mismatch(
                name,
                "its contents changed".into()
            ));
        }
    }
    if let Some(missing) = expected.next() {
        bail!(archive::ArchiveError::Missing(missing.name.clone()));
    }
    Ok(manifest)
}

/// Restores the hub from `file`.
pub fn restore(layout: &Layout, file: &Path) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("hearth restore replaces system services' state: run it as root");
    }
    let staging = Staging::new(layout, "restore")?;
    let manifest = unpack(file, &staging.path)?;
    eprintln!(
        "The backup of {} ({} entries, Hearth {}) is whole; stopping the hub",
        manifest.household,
        manifest.entries.len(),
        manifest.version
    );
    for unit in [
        Unit::Pod,
        Unit::Agent,
        Unit::InferenceSocket,
        Unit::LlamaProxy,
        Unit::OllamaProxy,
        Unit::LlamaServer,
        Unit::Coordinator,
    ] {
        let _ = system::systemctl(&["stop", unit.name()]);
    }
    let now = hearth_runtime::clock::unix_seconds();
    let container = Owner {
        uid: CONTAINER_USER,
        gid: CONTAINER_USER,
    };
    let socket_group = system::group(layout, crate::layout::SOCKET_GROUP).ok();
    let mut kept = Vec::new();
    for (folder, _) in FOLDERS {
        if !manifest.entries.iter().any(|entry| entry.name == folder) {
            continue;
        }
        let place = layout.beneath(folder);
        if place.symlink_metadata().is_ok() {
            let aside = PathBuf::from(format!("{}.before-restore-{now}", place.display()));
            std::fs::rename(&place, &aside)
                .with_context(|| format!("cannot move {} aside", place.display()))?;
            kept.push(aside);
        }
    }
    for entry in &manifest.entries {
        if entry.name == COORDINATOR {
            continue;
        }
        let place = layout.beneath(&entry.name);
        let owner = match entry.owner {
            archive::Owner::Root => Owner::ROOT,
            // A secret of the containers is readable by them and the group
            // of the sockets, as setup makes it.
            archive::Owner::Container => Owner {
                gid: if entry.name.starts_with("etc/") {
                    socket_group.unwrap_or(CONTAINER_USER)
                } else {
                    CONTAINER_USER
                },
                ..container
            },
        };
        match entry.kind {
            Kind::Folder => system::make_folder(&place, entry.mode, owner)?,
            Kind::File => {
                let contents =
                    zeroize::Zeroizing::new(std::fs::read(staging.path.join(&entry.name))?);
                system::write_file(&place, &contents, entry.mode, owner)?;
            }
        }
    }
    // The coordinator's state, through its own restore, into an empty folder.
    let state = layout.coordinator_state();
    if state.symlink_metadata().is_ok() {
        let aside = PathBuf::from(format!("{}.before-restore-{now}", state.display()));
        std::fs::rename(&state, &aside)?;
        kept.push(aside);
    }
    let coordinator_user = Owner {
        uid: system::user(layout, "hearth-coordinator")?,
        gid: system::group(layout, "hearth-coordinator")?,
    };
    system::make_folder(&state, 0o700, coordinator_user)?;
    system::run(
        system::coordinator(layout)
            .arg("restore")
            .arg(staging.path.join(COORDINATOR)),
    )
    .context("the coordinator's restore")?;
    chown_tree(&state, coordinator_user)?;
    drop(staging);
    eprintln!("Starting the hub");
    let record = crate::setup::read_record(layout)?
        .context("the backup has no setup record (etc/hearth/setup.json)")?;
    crate::setup::restart_after_restore(layout, &record.answers)?;
    eprintln!("Restored. What was here before is kept beside it:");
    for aside in kept {
        eprintln!("  {}", aside.display());
    }
    Ok(())
}

fn chown_tree(path: &Path, owner: Owner) -> anyhow::Result<()> {
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))?;
    if path.symlink_metadata()?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_for(entries: Vec<Entry>) -> Manifest {
        Manifest {
            format: archive::FORMAT,
            version: "0.1.0".into(),
            created_at: 1,
            household: "Parks".into(),
            entries,
        }
    }

    fn file_entry(name: &str, contents: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            kind: Kind::File,
            mode: 0o640,
            owner: archive::Owner::Root,
            bytes: contents.len() as u64,
            sha256: hex::encode(Sha256::digest(contents)),
        }
    }

    /// An archive at `path` with `manifest` written first.
    fn begun(path: &Path, manifest: &Manifest) -> tar::Builder<std::fs::File> {
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        let text = serde_json::to_vec(manifest).unwrap();
        let length = text.len() as u64;
        append(
            &mut builder,
            MANIFEST,
            Kind::File,
            0o600,
            &mut text.as_slice(),
            length,
        )
        .unwrap();
        builder
    }

    /// An archive of `entries` (name, contents) with `manifest` first.
    fn archive_of(dir: &Path, manifest: &Manifest, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(format!("{:x}.tar", rand::random::<u32>()));
        let mut builder = begun(&path, manifest);
        for (name, contents) in entries {
            let mut data = *contents;
            append(
                &mut builder,
                name,
                Kind::File,
                0o600,
                &mut data,
                contents.len() as u64,
            )
            .unwrap();
        }
        builder.into_inner().unwrap();
        path
    }

    #[test]
    fn an_archive_as_its_manifest_says_unpacks_whole() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [
            ("etc/hearth/setup.json", &b"{}"[..]),
            (COORDINATOR, &b"tar"[..]),
        ];
        let manifest = manifest_for(entries.iter().map(|(n, c)| file_entry(n, c)).collect());
        let file = archive_of(dir.path(), &manifest, &entries);
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        assert_eq!(unpack(&file, &staging).unwrap(), manifest);
        assert_eq!(
            std::fs::read(staging.join("etc/hearth/setup.json")).unwrap(),
            b"{}"
        );
    }

    #[test]
    fn a_changed_extra_missing_or_outside_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = file_entry("etc/hearth/setup.json", b"{}");
        type Case<'a> = (Manifest, Vec<(&'a str, &'a [u8])>, &'a str);
        let cases: [Case; 4] = [
            (
                manifest_for(vec![good.clone()]),
                vec![("etc/hearth/setup.json", b"{!")],
                "its contents changed",
            ),
            (
                manifest_for(vec![good.clone()]),
                vec![("etc/hearth/setup.json", b"{}"), ("etc/hearth/extra", b"x")],
                "the manifest does not name it",
            ),
            (
                manifest_for(vec![good.clone(), file_entry("etc/hearth/more", b"x")]),
                vec![("etc/hearth/setup.json", b"{}")],
                "cut short",
            ),
            (
                manifest_for(vec![good.clone()]),
                vec![("etc/cron.d/evil", b"{}")],
                "not inside the hub's folders",
            ),
        ];
        for (manifest, entries, says) in cases {
            let file = archive_of(dir.path(), &manifest, &entries);
            let staging = dir.path().join(format!("s{:x}", rand::random::<u32>()));
            std::fs::create_dir(&staging).unwrap();
            let refused = unpack(&file, &staging).unwrap_err().to_string();
            assert!(refused.contains(says), "{refused} (expected {says:?})");
        }
    }

    #[test]
    fn an_archive_without_a_manifest_first_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        append(
            &mut builder,
            "etc/hearth/x",
            Kind::File,
            0o600,
            &mut &b"x"[..],
            1,
        )
        .unwrap();
        builder.into_inner().unwrap();
        let refused = unpack(&path, dir.path()).unwrap_err().to_string();
        assert!(refused.contains("not a Hearth hub backup"), "{refused}");
    }

    #[test]
    fn a_link_in_the_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest_for(vec![file_entry("etc/hearth/x", b"")]);
        let path = dir.path().join("link.tar");
        let mut builder = begun(&path, &manifest);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "etc/hearth/x", "/etc/shadow")
            .unwrap();
        builder.into_inner().unwrap();
        let refused = unpack(&path, dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains("not a regular file or folder"),
            "{refused}"
        );
    }
}
