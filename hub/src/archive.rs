//! What a hub backup holds and what a restore accepts: a tar archive whose
//! first entry is a manifest naming every other entry with its size, hash,
//! mode and owner. A restore takes only entries the manifest names, under
//! the hub's own folders, as regular files and folders: a hand-made or
//! damaged archive is refused before anything on the hub changes. Pure.

use serde::{Deserialize, Serialize};

/// The manifest's format.
pub const FORMAT: u32 = 1;
/// The manifest's name, the archive's first entry.
pub const MANIFEST: &str = "hearth-backup.json";
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
    #[error("the backup is of format {0}; this Hearth reads format {FORMAT}")]
    Format(u32),
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

/// The manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
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

/// Parses and checks a manifest: its format, and every name once, inside.
pub fn read_manifest(text: &[u8]) -> Result<Manifest, ArchiveError> {
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
            .replace("\"format\":1", "\"format\":2");
        assert_eq!(
            read_manifest(other.as_bytes()),
            Err(ArchiveError::Format(2))
        );
        assert!(matches!(
            read_manifest(b"{"),
            Err(ArchiveError::Manifest(_))
        ));
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
