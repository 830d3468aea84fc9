//! What a hub backup holds and what a restore accepts: a tar archive whose
//! first entry is a manifest naming every other entry with its size and
//! hash, and whose second is the manifest's authentication tag (HMAC-SHA256
//! under a key only the hub or its admin has: the hub's backup key, or one
//! derived from the admin's passphrase with Argon2id). A restore checks the
//! tag before anything else, then takes only entries the manifest names,
//! under the hub's own folders, as regular files and folders, each with the
//! mode and owner Hearth itself gives that path — never the archive's, never
//! setuid, setgid or sticky — and no unit drop-in but the one setup writes:
//! an edited, hand-made or damaged archive is refused before anything on
//! the hub changes. Pure.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The manifest's format (2: authenticated).
pub const FORMAT: u32 = 2;
/// The manifest's name, the archive's first entry.
pub const MANIFEST: &str = "hearth-backup.json";
/// The manifest's tag, the archive's second entry.
pub const TAG: &str = "hearth-backup.mac";
/// What the tag is computed over, before the manifest's bytes.
const TAG_CONTEXT: &[u8] = b"hearth hub backup, format 2\0";
/// The coordinator's own backup (`hearth-coordinator backup`), one entry.
pub const COORDINATOR: &str = "coordinator.tar";
/// The largest manifest read.
pub const MAX_MANIFEST: u64 = 16 << 20;
/// The largest archive entry accepted.
pub const MAX_ENTRY: u64 = 64 << 30;

/// The hub's folders a backup carries, relative to the root, and what
/// each holds. The coordinator's state is carried by its own backup
/// ([`COORDINATOR`]); the model is not carried (it is a package's file or
/// the admin's own).
pub const FOLDERS: [(&str, &str); 7] = [
    ("etc/hearth", "configuration and secrets"),
    (
        "etc/systemd/system/hearth-inference.socket.d",
        "the model's socket's settings",
    ),
    ("var/lib/hearth-agent", "the hub's node identity"),
    (
        "var/lib/hearth-gateway",
        "gateway keys, sessions, memory and reminders",
    ),
    ("var/lib/hearth-messaging", "messaging history"),
    (
        "var/lib/hearth-hub/workspace",
        "the assistant's persona files",
    ),
    ("var/lib/hearth-hub/documents", "the household's documents"),
];

/// Why an archive is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The first entry is not the manifest.
    #[error("this is not a Hearth hub backup (its first entry is not {MANIFEST})")]
    NoManifest,
    /// The manifest does not parse.
    #[error("the backup's manifest cannot be read: {0}")]
    Manifest(String),
    /// A format this version cannot read.
    #[error(
        "the backup is of format {0}; this Hearth reads format {FORMAT} (format 1 backups were not \
         authenticated: take a new backup with this version)"
    )]
    Format(u32),
    /// The tag does not match: edited, or made with another key.
    #[error(
        "the backup is not authentic: it was changed after it was made, or it was made with another \
         key ({0})"
    )]
    NotAuthentic(String),
    /// A file Hearth does not put there (a unit drop-in setup never writes).
    #[error("the backup holds {0:?}, which Hearth never writes there")]
    NotHearths(String),
    /// A name outside the hub's folders, or not a plain relative path.
    #[error("the backup holds {0:?}, which is not inside the hub's folders")]
    Outside(String),
    /// A name twice.
    #[error("the backup names {0:?} twice")]
    Twice(String),
    /// An entry the manifest does not name, or names otherwise.
    #[error("the backup's entry {0:?} is not as its manifest says ({1})")]
    Mismatch(String, String),
    /// A link, a device or another special file.
    #[error("the backup's entry {0:?} is not a regular file or folder")]
    Special(String),
    /// An entry the manifest names is missing.
    #[error("the backup ends before {0:?}, which its manifest names (cut short?)")]
    Missing(String),
}

/// Which of the hub's accounts owns an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// root.
    Root,
    /// The containers' user.
    Container,
}

/// A file or a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A folder.
    Folder,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Its path relative to the root (or [`COORDINATOR`]).
    pub name: String,
    /// File or folder.
    pub kind: Kind,
    /// Its permission bits.
    pub mode: u32,
    /// Its owner.
    pub owner: Owner,
    /// Its size (0 for a folder).
    pub bytes: u64,
    /// SHA-256 of its contents, hex (empty for a folder).
    pub sha256: String,
}

/// Which key authenticates a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Sealing {
    /// The hub's own backup key (`/var/lib/hearth-hub/backup.key`), named
    /// by the first bytes of its hash.
    #[serde(rename_all = "camelCase")]
    HubKey {
        /// Hex SHA-256 of the key, its first 8 bytes.
        key_id: String,
    },
    /// A key derived from the admin's passphrase (Argon2id).
    #[serde(rename_all = "camelCase")]
    Passphrase {
        /// The salt, hex.
        salt: String,
        /// Argon2id memory, KiB.
        memory_kib: u32,
        /// Argon2id passes.
        iterations: u32,
    },
}

/// The manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Which key its tag is made with.
    pub sealing: Sealing,
    /// The Hearth version that made it.
    pub version: String,
    /// When (Unix seconds).
    pub created_at: i64,
    /// The household's name.
    pub household: String,
    /// Every other entry, in archive order.
    pub entries: Vec<Entry>,
}

/// Whether `name` is the coordinator's backup or a plain relative path in
/// one of [`FOLDERS`] (the folder itself included).
pub fn check_name(name: &str) -> Result<(), ArchiveError> {
    if name == COORDINATOR {
        return Ok(());
    }
    let plain = !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !name.chars().any(char::is_control);
    let inside = FOLDERS.iter().any(|(folder, _)| {
        name == *folder
            || name
                .strip_prefix(folder)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if plain && inside {
        Ok(())
    } else {
        Err(ArchiveError::Outside(name.to_owned()))
    }
}

/// The format a manifest says it is, before it is read as this version's.
pub fn format_of(text: &[u8]) -> Option<u32> {
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    serde_json::from_slice::<Format>(text)
        .ok()
        .map(|found| found.format)
}

/// The manifest's tag under `key` (hex).
pub fn tag(key: &[u8; 32], manifest: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(TAG_CONTEXT);
    mac.update(manifest);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is the manifest's tag under `key` (compared in constant
/// time): a backup edited after it was made, or made with another key, is not.
pub fn check_tag(key: &[u8; 32], manifest: &[u8], given: &[u8]) -> Result<(), ArchiveError> {
    let refused = || ArchiveError::NotAuthentic("its tag does not match".into());
    let given = std::str::from_utf8(given)
        .ok()
        .and_then(|text| hex::decode(text.trim()).ok())
        .ok_or_else(refused)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(TAG_CONTEXT);
    mac.update(manifest);
    mac.verify_slice(&given).map_err(|_| refused())
}

/// The id a hub key is named by in a manifest.
pub fn key_id(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    hex::encode(&Sha256::digest(key)[..8])
}

/// Parses and checks a manifest: its format, and every name once, inside.
pub fn read_manifest(text: &[u8]) -> Result<Manifest, ArchiveError> {
    if let Some(format) = format_of(text)
        && format != FORMAT
    {
        return Err(ArchiveError::Format(format));
    }
    let manifest: Manifest =
        serde_json::from_slice(text).map_err(|error| ArchiveError::Manifest(error.to_string()))?;
    if manifest.format != FORMAT {
        return Err(ArchiveError::Format(manifest.format));
    }
    let mut seen = std::collections::BTreeSet::new();
    for entry in &manifest.entries {
        check_name(&entry.name)?;
        if !seen.insert(entry.name.as_str()) {
            return Err(ArchiveError::Twice(entry.name.clone()));
        }
        if entry.bytes > MAX_ENTRY || entry.mode > 0o7777 {
            return Err(ArchiveError::Mismatch(
                entry.name.clone(),
                "size or mode out of range".into(),
            ));
        }
    }
    Ok(manifest)
}

/// Whether the archive's next entry (`name`, `kind`, `bytes`) is the one
/// the manifest names next.
pub fn expect(
    expected: Option<&Entry>,
    name: &str,
    kind: Kind,
    bytes: u64,
) -> Result<(), ArchiveError> {
    let Some(expected) = expected else {
        return Err(ArchiveError::Mismatch(
            name.to_owned(),
            "the manifest does not name it".into(),
        ));
    };
    if expected.name != name {
        return Err(ArchiveError::Mismatch(
            name.to_owned(),
            format!("the manifest names {:?} here", expected.name),
        ));
    }
    if expected.kind != kind || expected.bytes != bytes {
        return Err(ArchiveError::Mismatch(
            name.to_owned(),
            format!(
                "{:?} of {} bytes, not {kind:?} of {bytes}",
                expected.kind, expected.bytes
            ),
        ));
    }
    Ok(())
}

/// Where an entry goes on the hub: the mode and owner Hearth gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Its permission bits (never setuid, setgid or sticky).
    pub mode: u32,
    /// Its owner.
    pub owner: Owner,
}

/// The one unit drop-in setup writes (the model's socket leads to an
/// Ollama on the machine), by its name in a backup.
pub const OLLAMA_DROPIN_NAME: &str = "etc/systemd/system/hearth-inference.socket.d/ollama.conf";

/// The mode and owner Hearth gives `name` (as setup and the services make
/// it), whatever the archive says; a file under the units' drop-in folder
/// other than [`OLLAMA_DROPIN_NAME`] is refused.
pub fn placement(name: &str, kind: Kind) -> Result<Placement, ArchiveError> {
    check_name(name)?;
    let under = |folder: &str| {
        name == folder
            || name
                .strip_prefix(folder)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let (folder_mode, file_mode, owner) = if under("etc/systemd/system/hearth-inference.socket.d") {
        if kind == Kind::File && name != OLLAMA_DROPIN_NAME {
            return Err(ArchiveError::NotHearths(name.to_owned()));
        }
        (0o755, 0o644, Owner::Root)
    } else if under("etc/hearth") {
        match kind {
            Kind::File if name == "etc/hearth/join-token" => (0o755, 0o600, Owner::Root),
            // The containers' secrets: readable by them alone.
            Kind::File
                if (under("etc/hearth/gateway") || under("etc/hearth/messaging"))
                    && (file_name.ends_with(".token") || file_name.ends_with(".key")) =>
            {
                (0o755, 0o600, Owner::Container)
            }
            _ => (0o755, 0o644, Owner::Root),
        }
    } else if under("var/lib/hearth-agent") {
        (0o700, 0o600, Owner::Root)
    } else if under("var/lib/hearth-gateway") || under("var/lib/hearth-messaging") {
        (0o700, 0o600, Owner::Container)
    } else {
        // The assistant's persona files and the household's documents,
        // read by the containers.
        (0o755, 0o644, Owner::Root)
    };
    Ok(Placement {
        mode: match kind {
            Kind::Folder => folder_mode,
            Kind::File => file_mode,
        },
        owner,
    })
}

/// Whether a file in a data folder is a SQLite database to snapshot
/// (`VACUUM INTO`) rather than copy, or one of its side files to leave out.
pub fn database_role(file_name: &str) -> FileRole {
    if file_name.ends_with(".db") {
        FileRole::Database
    } else if ["-wal", "-shm", "-journal"]
        .iter()
        .any(|suffix| file_name.ends_with(&format!(".db{suffix}")))
    {
        FileRole::Skip
    } else {
        FileRole::Copy
    }
}

/// What a backup does with a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// Snapshot it as a database.
    Database,
    /// Copy it.
    Copy,
    /// Leave it out (a database's journal, carried by its snapshot).
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            kind: Kind::File,
            mode: 0o600,
            owner: Owner::Root,
            bytes: 3,
            sha256: "00".into(),
        }
    }

    fn manifest(entries: Vec<Entry>) -> Vec<u8> {
        serde_json::to_vec(&Manifest {
            format: FORMAT,
            sealing: Sealing::HubKey {
                key_id: key_id(&[1; 32]),
            },
            version: "0.1.0".into(),
            created_at: 1,
            household: "Parks".into(),
            entries,
        })
        .unwrap()
    }

    #[test]
    fn only_the_hubs_folders_are_taken() {
        for good in [
            "etc/hearth",
            "etc/hearth/gateway/gateway.json5",
            "var/lib/hearth-gateway/assistant.db",
            "var/lib/hearth-hub/workspace/SOUL.md",
            COORDINATOR,
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "/etc/hearth/x",
            "etc/hearth/../passwd",
            "etc/hearth/./x",
            "etc/hearth//x",
            "etc/hearthx/y",
            "etc/passwd",
            "var/lib/hearth-hub/first-member.token",
            "var/lib/hearth/coordinator.db",
            "",
            "etc/hearth/a\nb",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_manifest_with_a_name_outside_twice_or_of_another_format_is_refused() {
        assert!(read_manifest(&manifest(vec![entry("etc/hearth/setup.json")])).is_ok());
        assert_eq!(
            read_manifest(&manifest(vec![entry("etc/shadow")])),
            Err(ArchiveError::Outside("etc/shadow".into()))
        );
        assert_eq!(
            read_manifest(&manifest(vec![
                entry("etc/hearth/a"),
                entry("etc/hearth/a")
            ])),
            Err(ArchiveError::Twice("etc/hearth/a".into()))
        );
        let other = String::from_utf8(manifest(vec![]))
            .unwrap()
            .replace("\"format\":2", "\"format\":1");
        assert_eq!(
            read_manifest(other.as_bytes()),
            Err(ArchiveError::Format(1))
        );
        assert!(matches!(
            read_manifest(b"{"),
            Err(ArchiveError::Manifest(_))
        ));
    }

    #[test]
    fn a_manifest_edited_or_tagged_with_another_key_is_not_authentic() {
        let key = [7u8; 32];
        let text = manifest(vec![entry("etc/hearth/setup.json")]);
        let good = tag(&key, &text);
        assert_eq!(check_tag(&key, &text, good.as_bytes()), Ok(()));
        // An entry and its sum rewritten together: the tag no longer fits.
        let edited = String::from_utf8(text.clone())
            .unwrap()
            .replace("\"mode\":384", "\"mode\":2541");
        assert_ne!(edited.as_bytes(), text.as_slice());
        assert!(matches!(
            check_tag(&key, edited.as_bytes(), good.as_bytes()),
            Err(ArchiveError::NotAuthentic(_))
        ));
        assert!(check_tag(&[8u8; 32], &text, good.as_bytes()).is_err());
        assert!(check_tag(&key, &text, b"not hex").is_err());
        assert!(check_tag(&key, &text, b"").is_err());
    }

    #[test]
    fn every_path_gets_the_mode_and_owner_hearth_gives_it() {
        let placed = |name: &str, kind| placement(name, kind).unwrap();
        assert_eq!(
            placed("etc/hearth/gateway/gateway.token", Kind::File),
            Placement {
                mode: 0o600,
                owner: Owner::Container
            }
        );
        assert_eq!(placed("etc/hearth/join-token", Kind::File).mode, 0o600);
        assert_eq!(
            placed("etc/hearth/setup.json", Kind::File),
            Placement {
                mode: 0o644,
                owner: Owner::Root
            }
        );
        assert_eq!(
            placed("var/lib/hearth-gateway/sessions.db", Kind::File),
            Placement {
                mode: 0o600,
                owner: Owner::Container
            }
        );
        assert_eq!(placed("var/lib/hearth-agent", Kind::Folder).mode, 0o700);
        assert_eq!(
            placed("var/lib/hearth-hub/documents/a.pdf", Kind::File).mode,
            0o644
        );
        assert_eq!(placed(OLLAMA_DROPIN_NAME, Kind::File).mode, 0o644);
        for name in [
            "etc/systemd/system/hearth-inference.socket.d/zz-exec.conf",
            "etc/systemd/system/hearth-inference.socket.d/ollama.conf.d",
        ] {
            assert!(matches!(
                placement(name, Kind::File),
                Err(ArchiveError::NotHearths(_))
            ));
        }
        // No mode Hearth gives has a special bit.
        for name in [
            "etc/hearth/x",
            "etc/hearth/gateway/assistant.key",
            "var/lib/hearth-messaging/m.db",
            "var/lib/hearth-hub/workspace/SOUL.md",
        ] {
            for kind in [Kind::File, Kind::Folder] {
                assert_eq!(placed(name, kind).mode & 0o7000, 0, "{name}");
            }
        }
    }

    #[test]
    fn entries_must_come_as_the_manifest_says() {
        let named = entry("etc/hearth/a");
        assert_eq!(expect(Some(&named), "etc/hearth/a", Kind::File, 3), Ok(()));
        assert!(expect(Some(&named), "etc/hearth/b", Kind::File, 3).is_err());
        assert!(expect(Some(&named), "etc/hearth/a", Kind::File, 4).is_err());
        assert!(expect(Some(&named), "etc/hearth/a", Kind::Folder, 3).is_err());
        assert!(expect(None, "etc/hearth/a", Kind::File, 3).is_err());
    }

    #[test]
    fn databases_are_snapshotted_and_their_journals_left_out() {
        assert_eq!(database_role("messages.db"), FileRole::Database);
        assert_eq!(database_role("messages.db-wal"), FileRole::Skip);
        assert_eq!(database_role("messages.db-shm"), FileRole::Skip);
        assert_eq!(database_role("keys.json"), FileRole::Copy);
    }
}
