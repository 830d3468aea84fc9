//! Files read from inside a folder whose contents others may change while
//! they are read (a household's shared documents, a configuration's
//! includes): every open starts from the folder's own descriptor and goes
//! one name at a time, refusing symbolic links and `..` at each step
//! (`O_NOFOLLOW`, `O_DIRECTORY`), so a directory swapped for a link to
//! somewhere else between two steps (a rename exchange while a walk is
//! under way) is refused at the step it is met, never followed. Only
//! regular files are read (never a FIFO, a device or `/dev/zero`), opened
//! without blocking, and never more than a limit.

use std::ffi::OsStr;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Why a file beneath a folder was not read.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The path leaves the folder, or names nothing (`..`, `/`, empty).
    #[error("the path leaves its folder")]
    Outside,
    /// A step of the path is a symbolic link.
    #[error("a symbolic link is on the way (links are not followed)")]
    Link,
    /// It is not a regular file (a FIFO, a device, a folder).
    #[error("it is not a regular file")]
    NotAFile,
    /// It is larger than the limit.
    #[error("it is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BeneathError {
    fn of(error: rustix::io::Errno) -> BeneathError {
        if error == rustix::io::Errno::LOOP || error == rustix::io::Errno::NOTDIR {
            // O_NOFOLLOW on a link, or O_DIRECTORY on one.
            BeneathError::Link
        } else {
            BeneathError::Io(error.into())
        }
    }
}

/// An open folder that files are read beneath.
#[derive(Debug)]
pub struct Folder {
    descriptor: OwnedFd,
}

/// An entry of a folder, as a walk finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its path within the walked folder (`/`-separated).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, Unix ms.
    pub modified_ms: i64,
    /// A symbolic link (listed, never followed; its own size and time).
    pub link: bool,
}

/// The names of `relative`, refused if it leaves the folder.
fn steps(relative: &Path) -> Result<Vec<&OsStr>, BeneathError> {
    let mut steps = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => steps.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(BeneathError::Outside);
            }
        }
    }
    if steps.is_empty() {
        return Err(BeneathError::Outside);
    }
    Ok(steps)
}

fn directory_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The regular file at `path` (a link there is followed: it is the file
/// the admin named), whole, if it is at most `limit` bytes: opened without
/// blocking, so a FIFO or a device is refused at once instead of read.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, BeneathError> {
    let descriptor = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|error| BeneathError::Io(error.into()))?;
    read_descriptor(descriptor, limit)
}

/// The regular file open at `descriptor`, whole, within `limit` bytes.
fn read_descriptor(descriptor: OwnedFd, limit: u64) -> Result<Vec<u8>, BeneathError> {
    let stat = rustix::fs::fstat(&descriptor).map_err(BeneathError::of)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(BeneathError::NotAFile);
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > limit {
        return Err(BeneathError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // A file that grows while it is read stops at the limit all the same.
    std::fs::File::from(descriptor)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(BeneathError::TooLarge { limit });
    }
    Ok(bytes)
}

impl Folder {
    /// Opens the folder at `path` (a link there is followed: it is the
    /// folder the admin named; nothing beneath it is).
    pub fn open(path: &Path) -> Result<Folder, BeneathError> {
        let descriptor = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|error| BeneathError::Io(error.into()))?;
        Ok(Folder { descriptor })
    }

    /// Opens the folder `relative` beneath this one.
    fn folder_at(&self, relative: &[&OsStr]) -> Result<Folder, BeneathError> {
        let mut current: Option<OwnedFd> = None;
        for name in relative {
            let from = current.as_ref().unwrap_or(&self.descriptor);
            let next = rustix::fs::openat(from, *name, directory_flags(), Mode::empty())
                .map_err(BeneathError::of)?;
            current = Some(next);
        }
        let descriptor = match current {
            Some(descriptor) => descriptor,
            None => rustix::io::dup(&self.descriptor).map_err(BeneathError::of)?,
        };
        Ok(Folder { descriptor })
    }

    /// The regular file at `relative` beneath this folder, whole, if it is
    /// at most `limit` bytes.
    pub fn read(&self, relative: &Path, limit: u64) -> Result<Vec<u8>, BeneathError> {
        let steps = steps(relative)?;
        let (name, folders) = steps.split_last().ok_or(BeneathError::Outside)?;
        let folder = self.folder_at(folders)?;
        let descriptor = rustix::fs::openat(
            &folder.descriptor,
            *name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(BeneathError::of)?;
        read_descriptor(descriptor, limit)
    }

    /// The regular files beneath this folder (at most `max_files`, folders
    /// at most `max_depth` deep), in path order, with `wanted` saying which
    /// names to list; symbolic links whose names are wanted are listed as
    /// links (so a caller can say why they are not read), never followed.
    pub fn walk(
        &self,
        max_files: usize,
        max_depth: usize,
        wanted: impl Fn(&Path) -> bool,
    ) -> Vec<Entry> {
        let mut found = Vec::new();
        let mut pending = vec![(PathBuf::new(), 0usize)];
        while let Some((relative, depth)) = pending.pop() {
            let steps: Vec<&OsStr> = relative.iter().collect();
            let Ok(folder) = self.folder_at(&steps) else {
                continue;
            };
            let Ok(listing) = rustix::fs::Dir::read_from(&folder.descriptor) else {
                continue;
            };
            for entry in listing.flatten() {
                if found.len() >= max_files {
                    found.sort_by(|one: &Entry, other: &Entry| one.path.cmp(&other.path));
                    return found;
                }
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let name = OsStr::from_bytes(name);
                let Ok(stat) =
                    rustix::fs::statat(&folder.descriptor, name, AtFlags::SYMLINK_NOFOLLOW)
                else {
                    continue;
                };
                let path = relative.join(name);
                let kind = FileType::from_raw_mode(stat.st_mode);
                match kind {
                    FileType::Directory if depth < max_depth => pending.push((path, depth + 1)),
                    FileType::RegularFile | FileType::Symlink if wanted(&path) => {
                        found.push(Entry {
                            path,
                            size: u64::try_from(stat.st_size).unwrap_or(0),
                            modified_ms: stat.st_mtime.saturating_mul(1000).saturating_add(
                                i64::try_from(stat.st_mtime_nsec).unwrap_or(0) / 1_000_000,
                            ),
                            link: kind == FileType::Symlink,
                        });
                    }
                    _ => {}
                }
            }
        }
        found.sort_by(|one, other| one.path.cmp(&other.path));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_beneath_are_read_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("house");
        std::fs::create_dir_all(root.join("kitchen")).unwrap();
        std::fs::write(root.join("kitchen/oven.md"), "# Oven").unwrap();
        let outside = dir.path().join("private");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("diary.md"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.join("diary.md"), root.join("link.md")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("elsewhere")).unwrap();
        let folder = Folder::open(&root).unwrap();
        assert_eq!(
            folder.read(Path::new("kitchen/oven.md"), 100).unwrap(),
            b"# Oven"
        );
        assert!(matches!(
            folder.read(Path::new("link.md"), 100),
            Err(BeneathError::Link)
        ));
        assert!(matches!(
            folder.read(Path::new("elsewhere/diary.md"), 100),
            Err(BeneathError::Link)
        ));
        assert!(matches!(
            folder.read(Path::new("../private/diary.md"), 100),
            Err(BeneathError::Outside)
        ));
        assert!(matches!(
            folder.read(Path::new("/etc/passwd"), 100),
            Err(BeneathError::Outside)
        ));
        assert!(matches!(
            folder.read(Path::new("kitchen/oven.md"), 3),
            Err(BeneathError::TooLarge { limit: 3 })
        ));
        assert!(matches!(
            folder.read(Path::new("kitchen"), 100),
            Err(BeneathError::NotAFile)
        ));
        let listed: Vec<(PathBuf, bool)> = folder
            .walk(100, 16, |_| true)
            .into_iter()
            .map(|entry| (entry.path, entry.link))
            .collect();
        // The links are listed as links (and not followed: nothing of the
        // folder outside, and the linked folder's files are not walked).
        assert_eq!(
            listed,
            [
                (PathBuf::from("elsewhere"), true),
                (PathBuf::from("kitchen/oven.md"), false),
                (PathBuf::from("link.md"), true),
            ]
        );
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json5");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        assert!(matches!(
            folder.read(Path::new("fifo.json5"), 100),
            Err(BeneathError::NotAFile)
        ));
        let dev = Folder::open(Path::new("/dev")).unwrap();
        assert!(matches!(
            dev.read(Path::new("zero"), 100),
            Err(BeneathError::NotAFile)
        ));
    }
}
