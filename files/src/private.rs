//! Files that hold secrets or private state (keys, tokens, identities,
//! databases): created with mode 0600 and written whole or not at all.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Writes `contents` to `path` with mode 0600, atomically (a temporary file
/// beside it, synced, then renamed over it).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

/// Creates `path` empty with mode 0600 unless it exists (before a library
/// such as SQLite opens it: its journal files inherit the mode).
pub fn create_private(path: &Path) -> std::io::Result<()> {
    if !path.exists() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    }
    Ok(())
}

/// Sets mode 0600 on `path` if it exists (files others create, like SQLite's).
pub fn restrict(path: &Path) -> std::io::Result<()> {
    match fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Creates the directory `path` (and its parents) and makes it 0700.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert!(!path.with_extension("tmp").exists());
        let db = dir.path().join("db");
        create_private(&db).unwrap();
        fs::write(&db, b"kept").unwrap();
        create_private(&db).unwrap();
        assert_eq!(fs::read(&db).unwrap(), b"kept");
        assert_eq!(mode(&db), 0o600);
        let open = dir.path().join("open");
        fs::write(&open, b"").unwrap();
        restrict(&open).unwrap();
        assert_eq!(mode(&open), 0o600);
        restrict(&dir.path().join("absent")).unwrap();
        private_dir(&dir.path().join("a/b")).unwrap();
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    }
}
