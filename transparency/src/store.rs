//! The log on disk: a directory holding its name (`origin`), its signing
//! key (`log.key`, Ed25519 PKCS#8, 0600), its entries (`entries`, one per
//! line, only ever appended) and its latest signed checkpoint
//! (`checkpoint`). The operator appends with `hearth-pcc log add-*`; the
//! config server reads it ([`Snapshot`]) and never needs the key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::entry::Entry;
use crate::merkle::{Hash, consistency_proof, inclusion_proof, leaf_hash, root};
use crate::note::{Checkpoint, NoteError, Signer};

/// Why the log on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key or a note.
    #[error(transparent)]
    Note(#[from] NoteError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Makes a new, empty log named `origin` in `dir`; its verifier key.
pub fn init(dir: &Path, origin: &str) -> Result<String, StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key_path = dir.join("log.key");
    if key_path.exists() {
        return Err(invalid(&key_path, "a log is already there"));
    }
    let (signer, pkcs8) = Signer::generate(origin)?;
    write_private(&key_path, &pkcs8)?;
    std::fs::write(dir.join("origin"), format!("{origin}\n")).map_err(io(dir))?;
    std::fs::write(dir.join("entries"), b"").map_err(io(dir))?;
    let empty = Checkpoint {
        origin: origin.to_owned(),
        size: 0,
        root: root(&[]),
    };
    replace(&dir.join("checkpoint"), signer.sign(&empty).as_bytes())?;
    Ok(signer.verifier())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Writes `path` whole or not at all (a temporary file renamed over it).
fn replace(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(io(&partial))?;
    std::fs::File::open(&partial)
        .and_then(|file| file.sync_all())
        .map_err(io(&partial))?;
    std::fs::rename(&partial, path).map_err(io(path))
}

/// What the log holds as of its latest checkpoint, read without its key.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The entries the checkpoint covers.
    pub entries: Vec<String>,
    leaves: Vec<Hash>,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The checkpoint as signed.
    pub note: String,
}

impl Snapshot {
    /// Reads the log in `dir`. Entries after the checkpoint (appended by a
    /// writer that had not signed yet) are left out; entries that do not
    /// hash to the checkpoint's root are refused.
    pub fn load(dir: &Path) -> Result<Snapshot, StoreError> {
        let origin_path = dir.join("origin");
        let origin = std::fs::read_to_string(&origin_path).map_err(io(&origin_path))?;
        let note_path = dir.join("checkpoint");
        let note = std::fs::read_to_string(&note_path).map_err(io(&note_path))?;
        let checkpoint =
            unverified_checkpoint(&note).ok_or_else(|| invalid(&note_path, "not a checkpoint"))?;
        if checkpoint.origin != origin.trim() {
            return Err(invalid(&note_path, "the checkpoint is another log's"));
        }
        let entries_path = dir.join("entries");
        let text = std::fs::read_to_string(&entries_path).map_err(io(&entries_path))?;
        let entries: Vec<String> = text
            .lines()
            .take(usize::try_from(checkpoint.size).unwrap_or(usize::MAX))
            .map(str::to_owned)
            .collect();
        if (entries.len() as u64) < checkpoint.size {
            return Err(invalid(
                &entries_path,
                "fewer entries than the checkpoint covers",
            ));
        }
        let leaves: Vec<Hash> = entries
            .iter()
            .map(|entry| leaf_hash(entry.as_bytes()))
            .collect();
        if root(&leaves) != checkpoint.root {
            return Err(invalid(
                &entries_path,
                "the entries do not hash to the checkpoint's root",
            ));
        }
        Ok(Snapshot {
            entries,
            leaves,
            checkpoint,
            note,
        })
    }

    /// The proof that entry `index` is in the tree of the checkpoint.
    pub fn inclusion(&self, index: usize) -> Option<Vec<Hash>> {
        inclusion_proof(index, &self.leaves)
    }

    /// The proof that the tree of `first` entries is a prefix of the tree
    /// of `second` (at most the checkpoint's size).
    pub fn consistency(&self, first: u64, second: u64) -> Option<Vec<Hash>> {
        let second = usize::try_from(second)
            .ok()
            .filter(|second| *second <= self.leaves.len())?;
        consistency_proof(usize::try_from(first).ok()?, &self.leaves[..second])
    }

    /// The index of the entry whose bytes are `line`.
    pub fn index_of(&self, line: &str) -> Option<usize> {
        self.entries.iter().position(|entry| entry == line)
    }
}

/// A checkpoint's fields without checking its signature (the log's own
/// files; clients always verify).
fn unverified_checkpoint(note: &str) -> Option<Checkpoint> {
    use base64::Engine as _;
    let mut lines = note.lines();
    let origin = lines.next()?.to_owned();
    let size = lines.next()?.parse().ok()?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines.next()?)
        .ok()?
        .try_into()
        .ok()?;
    Some(Checkpoint { origin, size, root })
}

/// Appends the `entries` the log does not hold yet and signs a new
/// checkpoint; the indexes of the entries added.
pub fn append(dir: &Path, entries: &[Entry]) -> Result<Vec<u64>, StoreError> {
    let snapshot = Snapshot::load(dir)?;
    let key_path = dir.join("log.key");
    let pkcs8 = zeroize::Zeroizing::new(std::fs::read(&key_path).map_err(io(&key_path))?);
    let signer = Signer::from_pkcs8(&snapshot.checkpoint.origin, &pkcs8)?;
    let mut lines = snapshot.entries.clone();
    let mut added = Vec::new();
    for entry in entries {
        let line = entry.to_line();
        if !lines.contains(&line) {
            added.push(lines.len() as u64);
            lines.push(line);
        }
    }
    if added.is_empty() {
        return Ok(added);
    }
    // The entries file is rewritten whole: what the checkpoint covers
    // first, unchanged, then the new entries.
    let mut text = String::new();
    for line in &lines {
        text.push_str(line);
        text.push('\n');
    }
    replace(&dir.join("entries"), text.as_bytes())?;
    let leaves: Vec<Hash> = lines
        .iter()
        .map(|line| leaf_hash(line.as_bytes()))
        .collect();
    let checkpoint = Checkpoint {
        origin: snapshot.checkpoint.origin,
        size: lines.len() as u64,
        root: root(&leaves),
    };
    replace(&dir.join("checkpoint"), signer.sign(&checkpoint).as_bytes())?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::verify_inclusion;
    use crate::note::Verifier;
    use std::collections::BTreeMap;

    fn image(name: &str) -> Entry {
        Entry::Image {
            evidence: "hearth-dev".into(),
            name: name.into(),
            measurements: BTreeMap::from([("pcr0".into(), hex::encode(name))]),
        }
    }

    #[test]
    fn a_log_grows_by_appending_and_proves_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = Verifier::parse(&init(dir.path(), "hearth.test/log").unwrap()).unwrap();
        let mode = std::os::unix::fs::MetadataExt::mode(
            &std::fs::metadata(dir.path().join("log.key")).unwrap(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            append(dir.path(), &[image("a"), image("b")]).unwrap(),
            [0, 1]
        );
        assert_eq!(
            append(dir.path(), &[image("b"), image("c")]).unwrap(),
            [2],
            "no duplicates"
        );
        let snapshot = Snapshot::load(dir.path()).unwrap();
        let checkpoint = verifier.open(&snapshot.note, "hearth.test/log").unwrap();
        assert_eq!(checkpoint.size, 3);
        let line = image("c").to_line();
        let index = snapshot.index_of(&line).unwrap();
        let proof = snapshot.inclusion(index).unwrap();
        assert!(verify_inclusion(
            index as u64,
            3,
            &leaf_hash(line.as_bytes()),
            &proof,
            &checkpoint.root
        ));
        assert!(snapshot.consistency(1, 3).is_some());
        assert!(snapshot.consistency(1, 4).is_none());
        assert!(
            init(dir.path(), "again").is_err(),
            "a log is not made twice"
        );
    }

    #[test]
    fn entries_edited_behind_the_checkpoint_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "log").unwrap();
        append(dir.path(), &[image("a"), image("b")]).unwrap();
        let entries = dir.path().join("entries");
        let text = std::fs::read_to_string(&entries).unwrap();
        std::fs::write(&entries, text.replace("\"a\"", "\"z\"")).unwrap();
        assert!(matches!(
            Snapshot::load(dir.path()),
            Err(StoreError::Invalid { .. })
        ));
    }
}
