//! `hearth backup FILE` and `hearth restore FILE`: the whole hub in one
//! file, taken while it runs. The coordinator's state comes from its own
//! backup (a consistent snapshot); each SQLite database of the gateway and
//! the messaging service is snapshotted with `VACUUM INTO` (one
//! transaction's view while the service keeps writing); the rest
//! (configuration, secrets, keys, the agent's identity, the assistant's
//! folders) is copied, each file opened once and copied aside as it is
//! hashed, so a service rewriting or swapping it meanwhile cannot make the
//! archive disagree with its manifest. What the archive holds and what a
//! restore accepts is [`crate::archive`]'s.
//!
//! A backup is authenticated ([`Seal`]): with the hub's own backup key
//! (`/var/lib/hearth-hub/backup.key`, made at the first backup, 0600), or
//! with a key derived from a passphrase the admin gives (Argon2id), which
//! is what a restore on another machine needs. A restore ([`Opening`])
//! checks the tag before it reads anything else, then reads and checks the
//! whole archive into a private folder before it stops anything; the hub's
//! folders it replaces are kept beside their places
//! (`NAME.before-restore-TIME`), never deleted.

use std::io::{Read, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::archive::{
    self, COORDINATOR, Entry, FOLDERS, FileRole, Kind, MANIFEST, Manifest, Sealing, TAG,
};
use crate::health::BackupRecord;
use crate::layout::{CONTAINER_USER, Layout, Unit};
use crate::steps::{Step, announce};
use crate::system::{self, Owner};

/// What authenticates a backup being made.
pub enum Seal {
    /// The hub's own backup key (restores on this hub, or where a copy of
    /// the key is given).
    HubKey,
    /// A key derived from the admin's passphrase (restores anywhere the
    /// passphrase is given).
    Passphrase(Zeroizing<String>),
}

/// What opens a backup being restored.
pub enum Opening {
    /// The key of the hub it was made on: this hub's own, or a copy given
    /// as a file.
    HubKey(Option<PathBuf>),
    /// The passphrase it was made with.
    Passphrase(Zeroizing<String>),
}

use archive::{PASSPHRASE_ITERATIONS, PASSPHRASE_MEMORY_KIB};
/// The shortest passphrase taken.
pub const MIN_PASSPHRASE: usize = 10;

/// Reads a passphrase from `file` (its first line): never from the
/// command line, where `ps` shows it.
pub fn read_passphrase(file: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the passphrase in {}", file.display()))?,
    );
    let passphrase = Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
    if passphrase.chars().count() < MIN_PASSPHRASE {
        bail!(
            "the passphrase in {} is shorter than {MIN_PASSPHRASE} characters",
            file.display()
        );
    }
    Ok(passphrase)
}

fn passphrase_key(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(memory_kib, iterations, 1, Some(32))
        .map_err(|error| anyhow::anyhow!("the backup's key settings: {error}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
        .map_err(|error| anyhow::anyhow!("cannot derive the backup's key: {error}"))?;
    Ok(key)
}

/// The hub's backup key, made (0600, root) when `create` and there is none.
fn hub_key(layout: &Layout, create: bool) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let path = layout.backup_key();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            key_of(&text).with_context(|| format!("{} is not a backup key", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = Zeroizing::new([0u8; 32]);
            rand::fill(&mut key[..]);
            system::make_folder(&layout.hub_state(), 0o755, Owner::ROOT)?;
            let text = Zeroizing::new(format!("{}\n", hex::encode(&key[..])));
            system::write_file(&path, text.as_bytes(), 0o600, Owner::ROOT)?;
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn key_of(text: &str) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(hex::decode(text.trim()).context("not hex")?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        bail!("not 32 bytes");
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// The key and how the manifest names it, for a backup sealed by `seal`.
fn sealing_key(layout: &Layout, seal: &Seal) -> anyhow::Result<(Sealing, Zeroizing<[u8; 32]>)> {
    match seal {
        Seal::HubKey => {
            let key = hub_key(layout, true)?;
            let key_id = archive::key_id(&key);
            Ok((Sealing::HubKey { key_id }, key))
        }
        Seal::Passphrase(passphrase) => {
            let salt: [u8; 16] = rand::random();
            let key = passphrase_key(
                passphrase,
                &salt,
                PASSPHRASE_MEMORY_KIB,
                PASSPHRASE_ITERATIONS,
            )?;
            let sealing = Sealing::Passphrase {
                salt: hex::encode(salt),
                memory_kib: PASSPHRASE_MEMORY_KIB,
                iterations: PASSPHRASE_ITERATIONS,
            };
            Ok((sealing, key))
        }
    }
}

/// The key that opens a backup sealed as `sealing`, from `opening`.
fn opening_key(
    layout: &Layout,
    sealing: &Sealing,
    opening: &Opening,
) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    match (sealing, opening) {
        (Sealing::HubKey { key_id }, Opening::HubKey(file)) => {
            let key = match file {
                Some(file) => key_of(
                    &std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                )
                .with_context(|| format!("{} is not a backup key", file.display()))?,
                None => hub_key(layout, false).with_context(|| {
                    "this backup was made with a hub's backup key and this machine has none: give \
                     that hub's key with --key-file"
                })?,
            };
            if archive::key_id(&key) != *key_id {
                bail!(archive::ArchiveError::NotAuthentic(format!(
                    "it was made with the backup key {}, not this one; give that hub's \
                     /var/lib/hearth-hub/backup.key with --key-file",
                    archive::escaped(key_id)
                )));
            }
            Ok(key)
        }
        (
            Sealing::Passphrase {
                salt,
                memory_kib,
                iterations,
            },
            Opening::Passphrase(passphrase),
        ) => {
            archive::check_passphrase_settings(salt, *memory_kib, *iterations)?;
            let salt = hex::decode(salt).context("the backup's salt is not hex")?;
            passphrase_key(passphrase, &salt, *memory_kib, *iterations)
        }
        (Sealing::Passphrase { .. }, Opening::HubKey(_)) => {
            bail!("this backup is sealed with a passphrase: give it with --passphrase-file")
        }
        (Sealing::HubKey { .. }, Opening::Passphrase(_)) => bail!(
            "this backup is sealed with a hub's backup key, not a passphrase: restore it without \
             --passphrase-file (on the hub that made it), or give that hub's key with --key-file"
        ),
    }
}

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

/// One thing to put in the archive: where its bytes are now (a copy in the
/// staging folder, made as it was hashed).
struct Source {
    entry: Entry,
    from: Option<PathBuf>,
}

/// Writes the hub's backup to `file` (which must not exist), sealed by
/// `seal`; 0600.
pub fn backup(layout: &Layout, file: &Path, seal: &Seal) -> anyhow::Result<Manifest> {
    if file.symlink_metadata().is_ok() {
        bail!(
            "{} exists; a backup never overwrites a file",
            file.display()
        );
    }
    let record = crate::record::read_record(layout)?
        .context("this hub is not set up: there is nothing to back up")?;
    let (sealing, key) = sealing_key(layout, seal)?;
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
    let mut copies = 0;
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
                copies += 1;
                let copy = staging.path.join(format!("copy-{copies}"));
                match archive::database_role(&file_name) {
                    FileRole::Skip => Ok(()),
                    FileRole::Copy => {
                        sources.extend(copied_file(name, path, &copy, owner, mode)?);
                        Ok(())
                    }
                    FileRole::Database => {
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
        sealing,
        version: env!("CARGO_PKG_VERSION").into(),
        created_at: hearth_runtime::clock::unix_seconds(),
        household: record.answers.household.clone(),
        entries: sources.iter().map(|source| source.entry.clone()).collect(),
    };
    write_archive(file, &manifest, &key, &sources)?;
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

/// `path` copied to `copy` (a private file) as it is hashed, from one
/// opening of it (never through a link): what the archive holds is what
/// was hashed, however the service changes the file meanwhile.
fn copied_file(
    name: String,
    path: &Path,
    copy: &Path,
    owner: archive::Owner,
    mode: u32,
) -> anyhow::Result<Option<Source>> {
    let mut input = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)
    {
        Ok(input) => input,
        // Removed since it was listed, as in `walk`.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(copy)
        .with_context(|| format!("cannot write {}", copy.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = input.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        output.write_all(&buffer[..read])?;
        bytes += read as u64;
    }
    output.sync_all()?;
    Ok(Some(Source {
        entry: Entry {
            name,
            kind: Kind::File,
            mode,
            owner,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        },
        from: Some(copy.to_owned()),
    }))
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Calls `visit` for `path` and everything beneath it (folders before what
/// they hold, names sorted), never following a link; sockets and other
/// special files are left out.
fn walk(
    path: &Path,
    name: &str,
    visit: &mut dyn FnMut(String, &Path, &std::fs::Metadata) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let metadata = match path.symlink_metadata() {
        Ok(metadata) => metadata,
        // Removed since its folder was listed (a live hub's temporary and
        // journal files come and go): there is nothing of it to keep.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    if metadata.is_dir() {
        visit(name.to_owned(), path, &metadata)?;
        let mut children: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        children.sort();
        for child in children {
            let child_name = format!("{name}/{}", child.to_string_lossy());
            if child.to_str().is_none() || archive::check_name(&child_name).is_err() {
                announce(Step::LeftOut(&path.join(&child)));
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
fn write_archive(
    file: &Path,
    manifest: &Manifest,
    key: &[u8; 32],
    sources: &[Source],
) -> anyhow::Result<()> {
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
        let tag = archive::tag(key, &text);
        append(
            &mut builder,
            TAG,
            Kind::File,
            0o600,
            &mut tag.as_bytes(),
            tag.len() as u64,
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

/// Reads and checks the archive `file` into `staging`: its manifest and its
/// tag first (the key from `opening`; nothing else is read from an archive
/// that is not authentic), then every entry as the manifest names it, with
/// its hash, and only where Hearth puts such a file.
fn unpack(
    layout: &Layout,
    file: &Path,
    opening: &Opening,
    staging: &Path,
) -> anyhow::Result<Manifest> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(input));
    let mut entries = archive.entries()?;
    let mut read_first = |name: &str, limit: u64| -> anyhow::Result<Vec<u8>> {
        let mut entry = entries
            .next()
            .ok_or(archive::ArchiveError::NoManifest)?
            .map_err(|_| archive::ArchiveError::NoManifest)?;
        if entry.path()?.to_str() != Some(name) || entry.size() > limit {
            bail!(archive::ArchiveError::NoManifest);
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text)?;
        Ok(text)
    };
    let text = read_first(MANIFEST, archive::MAX_MANIFEST)?;
    if let Some(format) = archive::format_of(&text)
        && format != archive::FORMAT
    {
        bail!(archive::ArchiveError::Format(format));
    }
    let given = read_first(TAG, 1024)?;
    // Only how it is sealed is read before the tag is checked: nothing
    // else an edited manifest says reaches the admin's terminal or costs
    // the machine anything.
    let sealing = archive::sealing_of(&text)?;
    let key = opening_key(layout, &sealing, opening)?;
    archive::check_tag(&key, &text, &given).map_err(|refused| match opening {
        Opening::Passphrase(_) => archive::ArchiveError::NotAuthentic(
            "the passphrase is not the one it was made with, or it was changed after it was made"
                .into(),
        ),
        Opening::HubKey(_) => refused,
    })?;
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
        if let Some(expected) = next
            && name != COORDINATOR
        {
            archive::placement(&name, kind, (expected.mode, expected.owner))?;
        }
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
        // The one unit drop-in Hearth writes, word for word.
        if name == archive::OLLAMA_DROPIN_NAME
            && std::fs::read(&target)? != crate::render::OLLAMA_DROPIN.as_bytes()
        {
            bail!(archive::ArchiveError::NotHearths(name));
        }
    }
    if let Some(missing) = expected.next() {
        bail!(archive::ArchiveError::Missing(missing.name.clone()));
    }
    Ok(manifest)
}

/// Puts the checked entries of `manifest` from `staging` in their places,
/// each with the mode and owner Hearth gives its path
/// ([`archive::placement`]), whatever the archive said.
fn place(layout: &Layout, manifest: &Manifest, staging: &Path) -> anyhow::Result<()> {
    let socket_group = system::group(layout, crate::layout::SOCKET_GROUP).ok();
    for entry in &manifest.entries {
        if entry.name == COORDINATOR {
            continue;
        }
        let placed = archive::placement(&entry.name, entry.kind, (entry.mode, entry.owner))?;
        let place = layout.beneath(&entry.name);
        let owner = match placed.owner {
            archive::Owner::Root => Owner::ROOT,
            // A secret of the containers is readable by them and the group
            // of the sockets, as setup makes it.
            archive::Owner::Container => Owner {
                uid: CONTAINER_USER,
                gid: if entry.name.starts_with("etc/") {
                    socket_group.unwrap_or(CONTAINER_USER)
                } else {
                    CONTAINER_USER
                },
            },
        };
        match entry.kind {
            Kind::Folder => system::make_folder(&place, placed.mode, owner)?,
            Kind::File => {
                let contents = Zeroizing::new(std::fs::read(staging.join(&entry.name))?);
                system::write_file(&place, &contents, placed.mode, owner)?;
            }
        }
    }
    Ok(())
}

/// Whether a restore may replace a hub that changed after the backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// Ask the admin at the terminal (refused without one).
    Ask,
    /// Replace it (`--yes`).
    Yes,
}

/// When this hub's state last changed, if it is set up: its setup record
/// and its services' databases and identities (a hub not set up has
/// nothing a restore would lose).
fn hub_changed_at(layout: &Layout) -> Option<i64> {
    let changed = |path: &Path| {
        path.metadata()
            .ok()
            .and_then(|metadata| metadata.modified().ok())
            .and_then(|modified| modified.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|since| i64::try_from(since.as_secs()).ok())
    };
    let mut newest = changed(&layout.setup_file())?;
    for folder in [
        layout.coordinator_state(),
        layout.agent_state(),
        layout.gateway_data(),
        layout.messaging_data(),
    ] {
        let Ok(files) = std::fs::read_dir(&folder) else {
            continue;
        };
        for file in files.flatten() {
            if let Some(at) = changed(&file.path()) {
                newest = newest.max(at);
            }
        }
    }
    Some(newest)
}

/// Says how old the backup is and, when this hub changed after it was
/// made, asks before replacing it: at the terminal (`input`), or refused
/// without one unless `confirm` is [`Confirm::Yes`].
fn confirm_replacing(
    layout: &Layout,
    manifest: &Manifest,
    confirm: Confirm,
    now: i64,
    terminal: Option<&mut dyn std::io::BufRead>,
) -> anyhow::Result<()> {
    let language = crate::steps::language();
    let age = archive::age(manifest.created_at, hub_changed_at(layout), now, language);
    announce(Step::BackupAuthentic {
        household: &archive::escaped(&manifest.household),
        made: &age.made,
        entries: manifest.entries.len(),
        version: &archive::escaped(&manifest.version),
    });
    let Some(changed) = age.hub_newer else {
        return Ok(());
    };
    let warning = Step::HubNewer(&changed).say(language);
    let note = crate::steps::note(language, &warning);
    if confirm == Confirm::Yes {
        eprintln!("{note}; {}", Step::GoingAhead.say(language));
        return Ok(());
    }
    let Some(input) = terminal else {
        bail!("{warning}. {}", Step::AskYes.say(language));
    };
    eprint!("{note}.\n{}", Step::RestoreAnyway.say(language));
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    if matches!(
        answer.trim().to_lowercase().as_str(),
        "y" | "yes" | "예" | "네" | "응"
    ) {
        Ok(())
    } else {
        bail!("{}", Step::NotRestored.say(language))
    }
}

/// Restores the hub from `file`, opened by `opening`; when the hub changed
/// after the backup was made, only as `confirm` says.
pub fn restore(
    layout: &Layout,
    file: &Path,
    opening: &Opening,
    confirm: Confirm,
) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !rustix::process::geteuid().is_root() {
        bail!("{}", Step::RestoreNeedsRoot.say(crate::steps::language()));
    }
    let staging = Staging::new(layout, "restore")?;
    let manifest = unpack(layout, file, opening, &staging.path)?;
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let terminal: Option<&mut dyn std::io::BufRead> = if stdin.is_terminal() {
        Some(&mut lock)
    } else {
        None
    };
    confirm_replacing(
        layout,
        &manifest,
        confirm,
        hearth_runtime::clock::unix_seconds(),
        terminal,
    )?;
    if !crate::manager::in_podman() {
        crate::machine::ensure_system_bus(layout)?;
    }
    announce(Step::StoppingHub);
    let manager = crate::manager::current();
    let running: Vec<Unit> = HUB_UNITS
        .into_iter()
        .filter(|unit| manager.state(*unit).0 == "active")
        .collect();
    stop_hub();
    let now = hearth_runtime::clock::unix_seconds();
    let mut moved = Moved::default();
    match put_in_place(layout, &manifest, &staging.path, now, &mut moved) {
        Ok(()) => {
            drop(staging);
            if moved.aside.is_empty() {
                announce(Step::Restored);
                return Ok(());
            }
            announce(Step::RestoredAside);
            let mut paths = Vec::new();
            for (_, aside) in &moved.aside {
                eprintln!("  {}", aside.display());
                paths.push(aside.display().to_string());
            }
            eprintln!("  rm -rf {}", paths.join(" "));
            Ok(())
        }
        Err(error) => {
            announce(Step::RestoreFailed);
            stop_hub();
            moved.put_back();
            for unit in running {
                if let Err(again) = manager.start(unit) {
                    eprintln!("  {} did not start again: {again:#}", unit.name());
                }
            }
            Err(error)
        }
    }
}

/// The hub's units, in the order they stop.
const HUB_UNITS: [Unit; 13] = [
    Unit::Pod,
    Unit::Agent,
    Unit::InferenceSocket,
    Unit::LlamaProxy,
    Unit::OllamaProxy,
    Unit::LlamaServer,
    Unit::EmbeddingsSocket,
    Unit::EmbeddingsProxy,
    Unit::EmbeddingsServer,
    Unit::SpeechSocket,
    Unit::SpeechProxy,
    Unit::SpeechServer,
    Unit::Coordinator,
];

fn stop_hub() {
    let manager = crate::manager::current();
    for unit in HUB_UNITS {
        let _ = manager.stop(unit);
    }
}

/// What a restore moved: the folders it put aside (to put back if it
/// fails) and the places it filled that were empty before.
#[derive(Default)]
struct Moved {
    aside: Vec<(PathBuf, PathBuf)>,
    filled: Vec<PathBuf>,
}

impl Moved {
    /// Moves `place` aside, if it is there; either way it is the restore's.
    /// A folder that is a mount point (a volume of the hub in Podman
    /// alone) cannot move: its contents are copied aside under the hub's
    /// own state (`/var/lib/hearth-hub/before-restore-TIME/...`, which no
    /// backup replaces) and it is emptied in place.
    fn set_aside(&mut self, layout: &Layout, place: &Path, now: i64) -> anyhow::Result<()> {
        if place.symlink_metadata().is_err() {
            self.filled.push(place.to_owned());
            return Ok(());
        }
        if is_mount_point(place) {
            let relative = place.strip_prefix("/").unwrap_or(place);
            let aside = layout
                .hub_state()
                .join(format!("before-restore-{now}"))
                .join(relative);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&aside)?;
            copy_tree(place, &aside)
                .with_context(|| format!("cannot copy {} aside", place.display()))?;
            empty_tree(place)?;
            self.aside.push((place.to_owned(), aside));
            return Ok(());
        }
        let aside = PathBuf::from(format!("{}.before-restore-{now}", place.display()));
        std::fs::rename(place, &aside)
            .with_context(|| format!("cannot move {} aside", place.display()))?;
        self.aside.push((place.to_owned(), aside));
        Ok(())
    }

    /// The restore's folders go, and what was there comes back.
    fn put_back(self) {
        for (place, aside) in self.aside.into_iter().rev() {
            let back = if is_mount_point(&place) {
                empty_tree(&place).and_then(|()| copy_tree(&aside, &place))
            } else {
                remove_tree(&place)
                    .and_then(|()| std::fs::rename(&aside, &place).map_err(anyhow::Error::from))
            };
            if let Err(error) = back {
                eprintln!("  could not put back {}: {error:#}", place.display());
            }
        }
        for place in self.filled {
            let removed = if is_mount_point(&place) {
                empty_tree(&place)
            } else {
                remove_tree(&place)
            };
            if let Err(error) = removed {
                eprintln!("  could not remove {}: {error:#}", place.display());
            }
        }
    }
}

/// Whether `path` is a mount point: listed as one in this process's
/// mount table (two volumes on one disk share a device, so the device
/// alone cannot tell), else on another device than its parent.
fn is_mount_point(path: &Path) -> bool {
    if let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") {
        return mount_points(&table).any(|point| Path::new(&point) == path);
    }
    let device = |path: &Path| path.symlink_metadata().map(|metadata| metadata.dev()).ok();
    match (device(path), path.parent().and_then(device)) {
        (Some(own), Some(parent)) => own != parent,
        _ => false,
    }
}

/// The mount points in `/proc/self/mountinfo`'s text (its fifth field,
/// with the kernel's octal escapes read back).
fn mount_points(table: &str) -> impl Iterator<Item = String> + '_ {
    table.lines().filter_map(|line| {
        let field = line.split(' ').nth(4)?;
        let mut point = Vec::with_capacity(field.len());
        let bytes = field.as_bytes();
        let mut index = 0;
        while index < bytes.len() {
            let escaped = bytes.get(index + 1..index + 4).and_then(|digits| {
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|digits| u8::from_str_radix(digits, 8).ok())
            });
            match (bytes[index], escaped) {
                (b'\\', Some(byte)) => {
                    point.push(byte);
                    index += 4;
                }
                (byte, _) => {
                    point.push(byte);
                    index += 1;
                }
            }
        }
        String::from_utf8(point).ok()
    })
}

/// Removes everything inside `path`, leaving the folder.
fn empty_tree(path: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?.path();
        if entry.symlink_metadata()?.is_dir() && !is_mount_point(&entry) {
            std::fs::remove_dir_all(&entry)?;
        } else if entry.symlink_metadata()?.is_dir() {
            empty_tree(&entry)?;
        } else {
            std::fs::remove_file(&entry)?;
        }
    }
    Ok(())
}

/// Copies what is inside `from` into `to` (an existing folder): folders,
/// regular files and links, each with its mode and owner.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let metadata = source.symlink_metadata()?;
        if metadata.is_dir() {
            std::fs::DirBuilder::new()
                .mode(metadata.permissions().mode() & 0o7777)
                .create(&target)
                .or_else(|error| match error.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(error),
                })?;
            copy_tree(&source, &target)?;
        } else if metadata.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
        } else if metadata.is_file() {
            std::fs::copy(&source, &target)?;
            std::fs::set_permissions(
                &target,
                std::fs::Permissions::from_mode(metadata.permissions().mode() & 0o7777),
            )?;
        } else {
            // A socket or a FIFO (a service's): made again when it starts.
            continue;
        }
        std::os::unix::fs::lchown(&target, Some(metadata.uid()), Some(metadata.gid()))?;
    }
    Ok(())
}

fn remove_tree(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// Everything a restore does once the hub is stopped: the folders in the
/// backup in place of the hub's, the coordinator's own restore, the hub
/// started and waited for.
fn put_in_place(
    layout: &Layout,
    manifest: &Manifest,
    staging: &Path,
    now: i64,
    moved: &mut Moved,
) -> anyhow::Result<()> {
    for (folder, _) in FOLDERS {
        if manifest.entries.iter().any(|entry| entry.name == folder) {
            moved.set_aside(layout, &layout.beneath(folder), now)?;
        }
    }
    place(layout, manifest, staging)?;
    // The coordinator's state, through its own restore, into an empty folder.
    let state = layout.coordinator_state();
    moved.set_aside(layout, &state, now)?;
    // In Podman alone the coordinator's container runs as the pod's user.
    let coordinator_user = if crate::manager::in_podman() {
        Owner {
            uid: CONTAINER_USER,
            gid: CONTAINER_USER,
        }
    } else {
        Owner {
            uid: system::user(layout, "hearth-coordinator")?,
            gid: system::group(layout, "hearth-coordinator")?,
        }
    };
    system::make_folder(&state, 0o700, coordinator_user)?;
    system::run(
        system::coordinator(layout)
            .arg("restore")
            .arg(staging.join(COORDINATOR)),
    )
    .context("the coordinator's restore")?;
    chown_tree(&state, coordinator_user)?;
    announce(Step::StartingHub);
    let record = crate::record::read_record(layout)?
        .context("the backup has no setup record (etc/hearth/setup.json)")?;
    crate::services::restart_after_restore(layout, &record.answers)?;
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

    const KEY: [u8; 32] = [7; 32];

    /// A live hub's files come and go while a backup walks them (a
    /// database's journal, a temporary file): one removed after its folder
    /// was listed is left out, not the end of the backup (it was, on a
    /// clean server: "hearth: No such file or directory").
    #[test]
    fn a_file_removed_while_the_backup_walks_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.db", "a.db-journal", "b.json"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let mut seen = Vec::new();
        walk(
            dir.path(),
            "var/lib/hearth-gateway",
            &mut |name, path, _| {
                if name == "var/lib/hearth-gateway/a.db" {
                    std::fs::remove_file(path.with_file_name("a.db-journal")).unwrap();
                }
                seen.push(name);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            [
                "var/lib/hearth-gateway",
                "var/lib/hearth-gateway/a.db",
                "var/lib/hearth-gateway/b.json"
            ]
        );
        let gone = dir.path().join("gone");
        let copied = copied_file(
            "var/lib/hearth-gateway/gone".into(),
            &gone,
            &dir.path().join("copy"),
            archive::Owner::Root,
            0o600,
        )
        .unwrap();
        assert!(copied.is_none());
    }

    fn manifest_for(entries: Vec<Entry>) -> Manifest {
        Manifest {
            format: archive::FORMAT,
            sealing: Sealing::HubKey {
                key_id: archive::key_id(&KEY),
            },
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

    /// A layout whose hub key is [`KEY`], in `dir`.
    fn hub_with_key(dir: &Path) -> Layout {
        let layout = Layout::under(dir);
        std::fs::create_dir_all(layout.hub_state()).unwrap();
        std::fs::write(layout.backup_key(), hex::encode(KEY)).unwrap();
        layout
    }

    /// An archive at `path` with `text` as its manifest, tagged with `tag`.
    fn begun_with(path: &Path, text: &[u8], tag: &str) -> tar::Builder<std::fs::File> {
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        let length = text.len() as u64;
        append(
            &mut builder,
            MANIFEST,
            Kind::File,
            0o600,
            &mut &text[..],
            length,
        )
        .unwrap();
        append(
            &mut builder,
            TAG,
            Kind::File,
            0o600,
            &mut tag.as_bytes(),
            tag.len() as u64,
        )
        .unwrap();
        builder
    }

    /// An archive at `path` with `manifest` first, tagged under [`KEY`].
    fn begun(path: &Path, manifest: &Manifest) -> tar::Builder<std::fs::File> {
        let text = serde_json::to_vec(manifest).unwrap();
        begun_with(path, &text, &archive::tag(&KEY, &text))
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

    /// Why `unpack` refuses `file`, opened with `opening`, in `layout`.
    fn refusal(layout: &Layout, file: &Path, opening: &Opening, dir: &Path) -> String {
        unpack(layout, file, opening, &staging_in(dir))
            .unwrap_err()
            .to_string()
    }

    fn staging_in(dir: &Path) -> PathBuf {
        let staging = dir.join(format!("s{:x}", rand::random::<u32>()));
        std::fs::create_dir(&staging).unwrap();
        staging
    }

    #[test]
    fn an_archive_as_its_manifest_says_unpacks_whole() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
        let entries = [
            ("etc/hearth/setup.json", &b"{}"[..]),
            (COORDINATOR, &b"tar"[..]),
        ];
        let manifest = manifest_for(entries.iter().map(|(n, c)| file_entry(n, c)).collect());
        let file = archive_of(dir.path(), &manifest, &entries);
        let staging = staging_in(dir.path());
        let opened = unpack(&layout, &file, &Opening::HubKey(None), &staging).unwrap();
        assert_eq!(opened, manifest);
        assert_eq!(
            std::fs::read(staging.join("etc/hearth/setup.json")).unwrap(),
            b"{}"
        );
    }

    #[test]
    fn a_changed_extra_missing_or_outside_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
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
            let refused = refusal(&layout, &file, &Opening::HubKey(None), dir.path());
            assert!(refused.contains(says), "{refused} (expected {says:?})");
        }
    }

    /// The review's attack: whoever can write the backup file rewrites an
    /// entry and its sum together (a setuid file, a world-writable token).
    /// The tag, made with a key the attacker does not have, no longer fits.
    #[test]
    fn a_backup_edited_entry_and_sum_together_is_not_authentic() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
        let honest = b"#!/bin/sh\nexit 0\n";
        let manifest = manifest_for(vec![file_entry("etc/hearth/hook", honest)]);
        let text = serde_json::to_vec(&manifest).unwrap();
        let tag = archive::tag(&KEY, &text);
        let evil = b"#!/bin/sh\nid > /tmp/owned\n";
        let mut edited = manifest.clone();
        edited.entries[0] = Entry {
            mode: 0o4755,
            ..file_entry("etc/hearth/hook", evil)
        };
        let edited_text = serde_json::to_vec(&edited).unwrap();
        let path = dir.path().join("edited.tar");
        let mut builder = begun_with(&path, &edited_text, &tag);
        append(
            &mut builder,
            "etc/hearth/hook",
            Kind::File,
            0o4755,
            &mut &evil[..],
            evil.len() as u64,
        )
        .unwrap();
        builder.into_inner().unwrap();
        let staging = staging_in(dir.path());
        let refused = unpack(&layout, &path, &Opening::HubKey(None), &staging)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("not authentic"), "{refused}");
        assert!(
            !staging.join("etc/hearth/hook").exists(),
            "nothing is unpacked from an archive that is not authentic"
        );

        // Made with another hub's key: refused too, and told which is needed.
        let other = Layout::under(&dir.path().join("other"));
        std::fs::create_dir_all(other.hub_state()).unwrap();
        std::fs::write(other.backup_key(), hex::encode([9u8; 32])).unwrap();
        let file = archive_of(dir.path(), &manifest, &[("etc/hearth/hook", honest)]);
        let refused = refusal(&other, &file, &Opening::HubKey(None), dir.path());
        assert!(refused.contains("--key-file"), "{refused}");
        // Given that hub's key as a file, it opens.
        let key_file = dir.path().join("their.key");
        std::fs::write(&key_file, hex::encode(KEY)).unwrap();
        assert!(
            unpack(
                &other,
                &file,
                &Opening::HubKey(Some(key_file)),
                &staging_in(dir.path())
            )
            .is_ok()
        );
    }

    #[test]
    fn a_passphrase_backup_opens_with_its_passphrase_alone() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::under(dir.path());
        let seal = Seal::Passphrase(Zeroizing::new("correct horse battery".into()));
        let (sealing, key) = sealing_key(&layout, &seal).unwrap();
        assert!(matches!(sealing, Sealing::Passphrase { .. }));
        assert!(
            !layout.backup_key().exists(),
            "no hub key is needed or made"
        );
        let manifest = Manifest {
            sealing,
            ..manifest_for(vec![file_entry("etc/hearth/setup.json", b"{}")])
        };
        let text = serde_json::to_vec(&manifest).unwrap();
        let path = dir.path().join("sealed.tar");
        let mut builder = begun_with(&path, &text, &archive::tag(&key, &text));
        append(
            &mut builder,
            "etc/hearth/setup.json",
            Kind::File,
            0o644,
            &mut &b"{}"[..],
            2,
        )
        .unwrap();
        builder.into_inner().unwrap();
        let right = Opening::Passphrase(Zeroizing::new("correct horse battery".into()));
        assert!(unpack(&layout, &path, &right, &staging_in(dir.path())).is_ok());
        let wrong = Opening::Passphrase(Zeroizing::new("correct horse battery!".into()));
        let refused = refusal(&layout, &path, &wrong, dir.path());
        assert!(refused.contains("not authentic"), "{refused}");
        // Hardening round five, finding 19: a wrong passphrase says so.
        assert!(
            refused.contains("the passphrase is not the one it was made with"),
            "{refused}"
        );
        let refused = refusal(&layout, &path, &Opening::HubKey(None), dir.path());
        assert!(refused.contains("--passphrase-file"), "{refused}");
    }

    #[test]
    fn mount_points_are_read_from_the_mount_table() {
        let table = "36 35 98:0 /mnt1 /etc/hearth rw,noatime master:1 - ext3 /dev/root rw\n\
                     37 35 98:0 /a /var/lib/my\\040docs rw - ext4 /dev/vda rw\n";
        let points: Vec<String> = mount_points(table).collect();
        assert_eq!(points, ["/etc/hearth", "/var/lib/my docs"]);
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self")));
    }

    /// Attacks (hardening round five, findings 7 and 8) on the whole
    /// unpacking: an edited manifest's unknown field full of terminal
    /// escapes, and Argon2id settings of 1 GiB and 64 passes. Both are
    /// refused before any key work or any of their text is printed: the
    /// refusal holds no control character, and comes at once.
    #[test]
    fn an_edited_manifest_is_refused_before_its_words_or_its_key_work() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::under(dir.path());
        let passphrase = Opening::Passphrase(Zeroizing::new("correct horse battery".into()));
        let mut value = serde_json::to_value(manifest_for(vec![])).unwrap();
        value["sealing"] = serde_json::json!({"kind": "passphrase",
            "salt": "00112233445566778899aabbccddeeff", "memoryKib": 1_048_576, "iterations": 64});
        let text = serde_json::to_vec(&value).unwrap();
        let path = dir.path().join("costly.tar");
        begun_with(&path, &text, "00").into_inner().unwrap();
        let started = std::time::Instant::now();
        let refused = refusal(&layout, &path, &passphrase, dir.path());
        assert!(refused.contains("not ones Hearth makes"), "{refused}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        let evil = "\u{1b}]52;c;b3duZWQ=\u{7}\u{1b}[2J\rbackup verified OK";
        let mut value = serde_json::to_value(manifest_for(vec![])).unwrap();
        value[evil] = serde_json::json!(1);
        let text = serde_json::to_vec(&value).unwrap();
        let layout = hub_with_key(dir.path());
        // Tagged with another key (an edit): refused as not authentic, and
        // nothing of the field was read.
        let path = dir.path().join("evil.tar");
        begun_with(&path, &text, &archive::tag(&[9; 32], &text))
            .into_inner()
            .unwrap();
        let refused = refusal(&layout, &path, &Opening::HubKey(None), dir.path());
        assert!(refused.contains("not authentic"), "{refused}");
        assert!(!refused.contains("verified OK"), "{refused}");
        // Even tagged right, what is printed is escaped.
        let path = dir.path().join("tagged.tar");
        begun_with(&path, &text, &archive::tag(&KEY, &text))
            .into_inner()
            .unwrap();
        let refused = refusal(&layout, &path, &Opening::HubKey(None), dir.path());
        assert!(!refused.chars().any(char::is_control), "{refused:?}");
    }

    /// Hardening round five, finding 9: an older backup restored onto a
    /// hub that changed since is not taken without the admin's word: said
    /// how old it is, refused without a terminal unless `--yes`, asked at
    /// one. A hub not set up (a fresh install) is not asked about.
    #[test]
    fn an_older_backup_asks_before_replacing_a_newer_hub() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::under(dir.path());
        let manifest = Manifest {
            created_at: hearth_runtime::clock::unix_seconds() - 8 * 86_400,
            ..manifest_for(vec![])
        };
        let now = hearth_runtime::clock::unix_seconds();
        // A fresh install: nothing to lose.
        assert!(confirm_replacing(&layout, &manifest, Confirm::Ask, now, None).is_ok());
        std::fs::create_dir_all(layout.config_dir()).unwrap();
        std::fs::write(layout.setup_file(), "{}").unwrap();
        std::fs::create_dir_all(layout.gateway_data()).unwrap();
        std::fs::write(layout.gateway_data().join("sessions.db"), "db").unwrap();
        let refused = confirm_replacing(&layout, &manifest, Confirm::Ask, now, None)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("changed after the backup was made") && refused.contains("--yes"),
            "{refused}"
        );
        let mut no = std::io::Cursor::new(b"n\n".to_vec());
        assert!(confirm_replacing(&layout, &manifest, Confirm::Ask, now, Some(&mut no)).is_err());
        let mut yes = std::io::Cursor::new(b"y\n".to_vec());
        assert!(confirm_replacing(&layout, &manifest, Confirm::Ask, now, Some(&mut yes)).is_ok());
        assert!(confirm_replacing(&layout, &manifest, Confirm::Yes, now, None).is_ok());
        // A backup newer than every change here: nothing to ask.
        let newer = Manifest {
            created_at: now + 60,
            ..manifest.clone()
        };
        assert!(confirm_replacing(&layout, &newer, Confirm::Ask, now, None).is_ok());
    }

    #[test]
    fn a_backup_of_the_old_unauthenticated_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
        let old =
            br#"{"format":1,"version":"0.1.0","createdAt":1,"household":"Parks","entries":[]}"#;
        let path = dir.path().join("old.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        append(
            &mut builder,
            MANIFEST,
            Kind::File,
            0o600,
            &mut &old[..],
            old.len() as u64,
        )
        .unwrap();
        builder.into_inner().unwrap();
        let refused = refusal(&layout, &path, &Opening::HubKey(None), dir.path());
        assert!(refused.contains("format 1"), "{refused}");
    }

    /// The review's attack, as the admin's own backup could carry it: modes
    /// with special bits, a world-writable secret, a unit drop-in that runs
    /// a command. A restore gives every path Hearth's own mode and owner,
    /// and takes no drop-in but setup's own, word for word.
    #[test]
    fn a_restore_gives_hearths_modes_and_takes_no_foreign_unit_drop_in() {
        if !rustix::process::geteuid().is_root() {
            hearth_testdata::skip::<()>("placing files under their owners needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
        let entries: [(&str, &[u8], u32); 3] = [
            ("etc/hearth/setup.json", b"{}", 0o4755),
            ("etc/hearth/gateway/gateway.token", b"secret", 0o666),
            ("var/lib/hearth-gateway/sessions.db", b"db", 0o2777),
        ];
        let folders = ["etc/hearth", "etc/hearth/gateway", "var/lib/hearth-gateway"];
        let manifest = manifest_for(
            folders
                .iter()
                .map(|name| Entry {
                    name: (*name).into(),
                    kind: Kind::Folder,
                    mode: 0o1777,
                    owner: archive::Owner::Root,
                    bytes: 0,
                    sha256: String::new(),
                })
                .chain(entries.iter().map(|(name, contents, mode)| Entry {
                    mode: *mode,
                    ..file_entry(name, contents)
                }))
                .collect(),
        );
        let file = dir.path().join("modes.tar");
        let mut builder = begun(&file, &manifest);
        for name in folders {
            append(
                &mut builder,
                name,
                Kind::Folder,
                0o1777,
                &mut std::io::empty(),
                0,
            )
            .unwrap();
        }
        for (name, contents, mode) in entries {
            append(
                &mut builder,
                name,
                Kind::File,
                mode,
                &mut &contents[..],
                contents.len() as u64,
            )
            .unwrap();
        }
        builder.into_inner().unwrap();
        let staging = staging_in(dir.path());
        let opened = unpack(&layout, &file, &Opening::HubKey(None), &staging).unwrap();
        place(&layout, &opened, &staging).unwrap();
        let mode_of = |name: &str| {
            let metadata = std::fs::metadata(layout.beneath(name)).unwrap();
            (metadata.permissions().mode() & 0o7777, metadata.uid())
        };
        assert_eq!(mode_of("etc/hearth"), (0o755, 0));
        assert_eq!(mode_of("etc/hearth/setup.json"), (0o644, 0));
        assert_eq!(
            mode_of("etc/hearth/gateway/gateway.token"),
            (0o600, CONTAINER_USER)
        );
        assert_eq!(
            mode_of("var/lib/hearth-gateway/sessions.db"),
            (0o600, CONTAINER_USER)
        );

        // A drop-in of the attacker's, or setup's own name with other words.
        let foreign = "etc/systemd/system/hearth-inference.socket.d/zz-exec.conf";
        let exec = b"[Socket]\nExecStartPre=/bin/sh -c 'id > /tmp/owned'\n";
        for (name, contents) in [
            (foreign, &exec[..]),
            (archive::OLLAMA_DROPIN_NAME, &exec[..]),
        ] {
            let manifest = manifest_for(vec![file_entry(name, contents)]);
            let file = archive_of(dir.path(), &manifest, &[(name, contents)]);
            let refused = refusal(&layout, &file, &Opening::HubKey(None), dir.path());
            assert!(refused.contains("Hearth never writes"), "{refused}");
        }
        // Setup's own, word for word, is taken.
        let ours = crate::render::OLLAMA_DROPIN.as_bytes();
        let name = archive::OLLAMA_DROPIN_NAME;
        let manifest = manifest_for(vec![file_entry(name, ours)]);
        let file = archive_of(dir.path(), &manifest, &[(name, ours)]);
        assert!(
            unpack(
                &layout,
                &file,
                &Opening::HubKey(None),
                &staging_in(dir.path())
            )
            .is_ok()
        );
    }

    /// The review saw a service rewrite a file between the backup hashing
    /// it and reading it again: the archive disagreed with its manifest,
    /// and the backup said it succeeded. What is archived is the copy made
    /// as it was hashed.
    #[test]
    fn a_file_rewritten_while_it_is_backed_up_cannot_spoil_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
        let original = dir.path().join("keys.json");
        std::fs::write(&original, b"{\"key\": 1}").unwrap();
        let source = copied_file(
            "var/lib/hearth-gateway/keys.json".into(),
            &original,
            &dir.path().join("copy"),
            archive::Owner::Container,
            0o600,
        )
        .unwrap()
        .unwrap();
        // The service rewrites it, then swaps another file in.
        std::fs::write(&original, b"{\"key\": 2, \"more\": true}").unwrap();
        let swapped = dir.path().join("swapped");
        std::fs::write(&swapped, b"x").unwrap();
        std::fs::rename(&swapped, &original).unwrap();
        let manifest = manifest_for(vec![source.entry.clone()]);
        let file = dir.path().join("hub.tar");
        write_archive(&file, &manifest, &KEY, &[source]).unwrap();
        let staging = staging_in(dir.path());
        unpack(&layout, &file, &Opening::HubKey(None), &staging).unwrap();
        assert_eq!(
            std::fs::read(staging.join("var/lib/hearth-gateway/keys.json")).unwrap(),
            b"{\"key\": 1}"
        );
        // Never through a link.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
        assert!(
            copied_file(
                "etc/hearth/x".into(),
                &link,
                &dir.path().join("copy2"),
                archive::Owner::Root,
                0o600
            )
            .is_err()
        );
    }

    #[test]
    fn an_archive_without_a_manifest_first_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
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
        let refused = unpack(&layout, &path, &Opening::HubKey(None), dir.path())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("not a Hearth hub backup"), "{refused}");
    }

    #[test]
    fn a_link_in_the_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = hub_with_key(dir.path());
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
        let refused = unpack(&layout, &path, &Opening::HubKey(None), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("not a regular file or folder"),
            "{refused}"
        );
    }
}
