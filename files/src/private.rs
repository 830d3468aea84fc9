//! Files that hold secrets or private state (keys, tokens, identities,
//! databases): created with mode 0600 and written whole or not at all.
//!
//! The temporary file a write goes through is made fresh, under a random
//! name, with `O_EXCL` (a file or symbolic link planted where it will be,
//! even in a directory others can write to, is never opened, followed or
//! reused), then renamed into place.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// A new, empty, 0600 temporary file in `path`'s directory, for `path`.
fn temporary_for(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(directory)
}

/// Writes `contents` to `path` with mode 0600, atomically (a new temporary
/// file beside it, synced, then renamed over it).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = temporary_for(path)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// A file being written that becomes `path`, 0600, only when it is whole
/// ([`PrivateFile::finish`]), and never in place of anything already there.
pub struct PrivateFile {
    file: tempfile::NamedTempFile,
}

impl PrivateFile {
    /// Starts writing what will be `path`.
    pub fn create(path: &Path) -> std::io::Result<PrivateFile> {
        Ok(PrivateFile {
            file: temporary_for(path)?,
        })
    }

    /// Where to write.
    pub fn as_file_mut(&mut self) -> &mut fs::File {
        self.file.as_file_mut()
    }

    /// Syncs it and puts it at `path`, which must not exist (not even as a
    /// link); on failure the partial file is removed.
    pub fn finish(self, path: &Path) -> std::io::Result<()> {
        self.file.as_file().sync_all()?;
        self.file
            .persist_noclobber(path)
            .map_err(|error| error.error)?;
        Ok(())
    }
}

/// Creates `path` empty with mode 0600 unless it exists (before a library
/// such as SQLite opens it: its journal files inherit the mode). A
/// symbolic link at `path` is not followed.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
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
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn planted_temporary_files_and_links_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        let key = dir.path().join("key");
        // What an older writer used as its temporary file, planted as a
        // link to another file and as a file of someone else's.
        std::os::unix::fs::symlink(&victim, key.with_extension("tmp")).unwrap();
        write_private(&key, b"secret").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        assert_eq!(mode(&key), 0o600);

        // A link where a private file is to be created is not followed.
        let database = dir.path().join("database");
        std::os::unix::fs::symlink(&victim, &database).unwrap();
        create_private(&database).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");

        // A finished private file never replaces what is at its path.
        let archive = dir.path().join("backup.tar");
        std::os::unix::fs::symlink(&victim, &archive).unwrap();
        let mut file = PrivateFile::create(&archive).unwrap();
        file.as_file_mut().write_all(b"keys").unwrap();
        assert!(file.finish(&archive).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        let fresh = dir.path().join("fresh.tar");
        let mut file = PrivateFile::create(&fresh).unwrap();
        file.as_file_mut().write_all(b"keys").unwrap();
        file.finish(&fresh).unwrap();
        assert_eq!(fs::read(&fresh).unwrap(), b"keys");
        assert_eq!(mode(&fresh), 0o600);
    }
}
