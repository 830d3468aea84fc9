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
    #[error("the backup is not authentic: {0}")]
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

/// `text` from an archive as it may be printed on a terminal: control and
/// other hidden characters (escape sequences that write to the clipboard,
/// clear the screen or forge a line) written out as `\u{…}`, at most 200
/// characters.
pub fn escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(200) {
        let hidden = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if hidden {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// How a manifest says it is sealed, read before its tag is checked (the
/// tag's key depends on it): nothing else of an unauthenticated manifest
/// is read.
pub fn sealing_of(text: &[u8]) -> Result<Sealing, ArchiveError> {
    #[derive(Deserialize)]
    struct Sealed {
        sealing: Sealing,
    }
    serde_json::from_slice::<Sealed>(text)
        .map(|sealed| sealed.sealing)
        .map_err(|_| {
            ArchiveError::Manifest(
                "it does not say how it is sealed in a way this Hearth reads".into(),
            )
        })
}

/// The Argon2id settings Hearth seals a passphrase backup with; a manifest
/// asking for more (an edited one can ask for a gigabyte and hours, all
/// spent before its tag can be checked) is refused.
pub const PASSPHRASE_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id's passes for a passphrase's key.
pub const PASSPHRASE_ITERATIONS: u32 = 3;

/// Whether a passphrase backup's key settings are ones Hearth writes (at
/// most [`PASSPHRASE_MEMORY_KIB`] and [`PASSPHRASE_ITERATIONS`]), and its
/// salt 16 bytes of hex.
pub fn check_passphrase_settings(
    salt: &str,
    memory_kib: u32,
    iterations: u32,
) -> Result<(), ArchiveError> {
    if memory_kib > PASSPHRASE_MEMORY_KIB || iterations > PASSPHRASE_ITERATIONS || iterations == 0 {
        return Err(ArchiveError::Manifest(format!(
            "its key settings ({memory_kib} KiB, {iterations} passes) are not ones Hearth makes \
             (at most {PASSPHRASE_MEMORY_KIB} KiB and {PASSPHRASE_ITERATIONS} passes)"
        )));
    }
    if salt.len() != 32 || !salt.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ArchiveError::Manifest(
            "its salt is not 16 bytes of hex".into(),
        ));
    }
    Ok(())
}

/// What a restore tells of a backup's age, and of the hub it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Age {
    /// When the backup was made, in UTC and how long ago ("2026-11-20
    /// 10:00 UTC, 8 days ago").
    pub made: String,
    /// When this hub last changed, if after the backup was made: a restore
    /// would replace what changed since, so it asks first.
    pub hub_newer: Option<String>,
}

/// The age of a backup made at `created_at`, restored at `now` onto a hub
/// whose state last changed at `hub_changed_at` (none: a hub not set up),
/// told in `language`.
pub fn age(
    created_at: i64,
    hub_changed_at: Option<i64>,
    now: i64,
    language: hearth_assistant::language::Language,
) -> Age {
    let korean = language == hearth_assistant::language::Language::Korean;
    let when = |at: i64| {
        jiff::Timestamp::from_second(at)
            .map(|at| at.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| format!("{at} (Unix seconds)"))
    };
    let ago = match now.saturating_sub(created_at) {
        seconds if seconds < 0 && korean => "이 컴퓨터의 시계로는 미래".to_owned(),
        seconds if seconds < 0 => "in the future by this machine's clock".to_owned(),
        seconds if seconds < 3_600 && korean => format!("{}분 전", seconds / 60),
        seconds if seconds < 3_600 => format!("{} minutes ago", seconds / 60),
        seconds if seconds < 2 * 86_400 && korean => format!("{}시간 전", seconds / 3_600),
        seconds if seconds < 2 * 86_400 => format!("{} hours ago", seconds / 3_600),
        seconds if korean => format!("{}일 전", seconds / 86_400),
        seconds => format!("{} days ago", seconds / 86_400),
    };
    Age {
        made: format!("{}, {ago}", when(created_at)),
        hub_newer: hub_changed_at
            .filter(|changed| *changed > created_at)
            .map(when),
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
    let refused = || {
        ArchiveError::NotAuthentic(
            "its tag does not match (it was changed after it was made, or made with another key)"
                .into(),
        )
    };
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
    let manifest: Manifest = serde_json::from_slice(text)
        .map_err(|error| ArchiveError::Manifest(escaped(&error.to_string())))?;
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

/// The configuration files Hearth writes under `/etc/hearth` (setup's and
/// the packages'), readable by all; its secrets there are named by
/// [`placement`]'s rules. Any other file there is the admin's own.
pub const HEARTHS_CONFIGURATION: [&str; 7] = [
    "etc/hearth/setup.json",
    "etc/hearth/setup.env",
    "etc/hearth/agent.env",
    "etc/hearth/coordinator.env",
    "etc/hearth/gateway/gateway.json5",
    "etc/hearth/gateway/hub.json5",
    "etc/hearth/messaging/messaging.json5",
];

/// The mode and owner Hearth gives `name` (as setup and the services make
/// it), whatever the archive says; a file under the units' drop-in folder
/// other than [`OLLAMA_DROPIN_NAME`] is refused. A file of the admin's own
/// under `/etc/hearth` (one Hearth does not write, such as Open WebUI's
/// signing secret the docs tell them to keep there at 0600) keeps its
/// archived owner and mode, never wider than 0600: it lies beside secrets.
pub fn placement(
    name: &str,
    kind: Kind,
    archived: (u32, Owner),
) -> Result<Placement, ArchiveError> {
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
            Kind::File if !HEARTHS_CONFIGURATION.contains(&name) => {
                let (mode, owner) = archived;
                (0o755, mode & 0o600, owner)
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
        // What the archive says of a file of Hearth's own is not read.
        let placed = |name: &str, kind| placement(name, kind, (0o777, Owner::Container)).unwrap();
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
                placement(name, Kind::File, (0o644, Owner::Root)),
                Err(ArchiveError::NotHearths(_))
            ));
        }
        // No mode Hearth gives has a special bit.
        for name in [
            "etc/hearth/setup.json",
            "etc/hearth/gateway/assistant.key",
            "var/lib/hearth-messaging/m.db",
            "var/lib/hearth-hub/workspace/SOUL.md",
        ] {
            for kind in [Kind::File, Kind::Folder] {
                assert_eq!(placed(name, kind).mode & 0o7000, 0, "{name}");
            }
        }
    }

    /// Attack (hardening round five, finding 6): the admin keeps Open
    /// WebUI's signing secret at 0600 under /etc/hearth/gateway, as the
    /// docs say; a restore gave it 0644 (readable by every user, and the
    /// gateway then refused to start on it). A file Hearth does not write
    /// keeps its archived owner and mode, never wider than 0600.
    #[test]
    fn the_admins_own_files_beside_secrets_keep_their_mode_and_never_widen() {
        let secret = "etc/hearth/gateway/openwebui-user-jwt.secret";
        assert_eq!(
            placement(secret, Kind::File, (0o600, Owner::Container)),
            Ok(Placement {
                mode: 0o600,
                owner: Owner::Container
            })
        );
        for (archived, kept) in [
            (0o644, 0o600),
            (0o4777, 0o600),
            (0o400, 0o400),
            (0o640, 0o600),
        ] {
            assert_eq!(
                placement(secret, Kind::File, (archived, Owner::Root)).map(|placed| placed.mode),
                Ok(kept),
                "{archived:o}"
            );
            assert_eq!(
                placement(
                    "etc/hearth/admins-notes.txt",
                    Kind::File,
                    (archived, Owner::Root)
                )
                .map(|placed| placed.mode),
                Ok(kept)
            );
        }
        // Hearth's own configuration stays readable by the containers.
        for name in HEARTHS_CONFIGURATION {
            assert_eq!(
                placement(name, Kind::File, (0o600, Owner::Container)),
                Ok(Placement {
                    mode: 0o644,
                    owner: Owner::Root
                }),
                "{name}"
            );
        }
    }

    /// Attack (hardening round five, finding 7): an edited manifest with an
    /// unknown field whose name holds terminal escapes (a clipboard write,
    /// a clear screen, a forged "verified OK" line) was echoed raw in the
    /// refusal. Nothing of the manifest but how it is sealed is read before
    /// its tag, and whatever is printed is escaped.
    #[test]
    fn an_edited_manifest_cannot_write_escapes_to_the_terminal() {
        let evil = "\u{1b}]52;c;ZWNobyBvd25lZA==\u{7}\u{1b}[2J\rbackup verified OK\n";
        let mut value: serde_json::Value =
            serde_json::from_slice(&manifest(vec![entry("etc/hearth/setup.json")])).unwrap();
        value[evil] = serde_json::json!(1);
        let text = serde_json::to_vec(&value).unwrap();
        // Before the tag: only the sealing is read, which says nothing of it.
        assert_eq!(
            sealing_of(&text),
            Ok(Sealing::HubKey {
                key_id: key_id(&[1; 32])
            })
        );
        // Read (an authentic manifest of another version, say): escaped.
        let said = read_manifest(&text).unwrap_err().to_string();
        assert!(!said.chars().any(char::is_control), "{said:?}");
        assert!(said.contains("\\u{1b}"), "{said}");
        assert_eq!(escaped("tab\there"), "tab\\u{9}here");
        assert_eq!(escaped("우리 집"), "우리 집");
        assert_eq!(escaped("a\u{202e}b"), "a\\u{202e}b");
    }

    /// Attack (hardening round five, finding 8): an edited manifest asked
    /// for Argon2id with 1 GiB and 64 passes, all spent before its tag
    /// could be checked (minutes; a genuine backup opens in about 2 s).
    /// Only settings Hearth writes, or less, are taken.
    #[test]
    fn a_manifest_asking_for_more_key_work_than_hearth_does_is_refused() {
        let salt = "00112233445566778899aabbccddeeff";
        assert_eq!(
            check_passphrase_settings(salt, PASSPHRASE_MEMORY_KIB, PASSPHRASE_ITERATIONS),
            Ok(())
        );
        for (memory, passes) in [
            (1024 * 1024, 64),
            (PASSPHRASE_MEMORY_KIB + 1, 3),
            (65_536, 4),
            (65_536, 0),
        ] {
            let refused = check_passphrase_settings(salt, memory, passes).unwrap_err();
            assert!(
                refused.to_string().contains("not ones Hearth makes"),
                "{refused}"
            );
        }
        assert!(check_passphrase_settings("zz", 65_536, 3).is_err());
        assert!(check_passphrase_settings(&"0".repeat(100_000), 65_536, 3).is_err());
    }

    /// Hardening round five, finding 9: a restore says when its backup was
    /// made, and whether the hub changed after it.
    #[test]
    fn a_backups_age_is_told_and_a_newer_hub_is_noticed() {
        let made = 1_795_000_000; // 2026-11-18 11:06:40 UTC
        let english = hearth_assistant::language::Language::English;
        let age = age(
            made,
            Some(made + 10 * 86_400),
            made + 10 * 86_400 + 60,
            english,
        );
        assert_eq!(age.made, "2026-11-18 11:06 UTC, 10 days ago");
        assert_eq!(age.hub_newer.as_deref(), Some("2026-11-28 11:06 UTC"));
        assert_eq!(
            super::age(made, Some(made - 5), made + 7_200, english).hub_newer,
            None
        );
        assert_eq!(
            super::age(made, None, made + 120, english).made,
            "2026-11-18 11:06 UTC, 2 minutes ago"
        );
        let korean = hearth_assistant::language::Language::Korean;
        assert_eq!(
            super::age(made, None, made + 3 * 86_400, korean).made,
            "2026-11-18 11:06 UTC, 3일 전"
        );
        assert_eq!(
            super::age(made, None, made + 7_200, korean).made,
            "2026-11-18 11:06 UTC, 2시간 전"
        );
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
