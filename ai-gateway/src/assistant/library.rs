//! The household's documents: folders scanned for text, Markdown and PDF
//! files (symbolic links are not followed, at any step of any open), each changed file extracted,
//! cut into passages, embedded, and stored whole in one transaction, or
//! refused with the reason (too large, not text, an unreadable PDF) and
//! nothing of it indexed. PDFs are read by a child process with memory and
//! time limits (`hearth-gateway extract pdf`), so a file built to crash or
//! exhaust a parser costs that child only, and the child is confined to
//! what a reader needs ([`confine_reader`]: an allowlist of system calls
//! that kills at anything else, no new files, no filesystem where
//! namespaces allow), so a parser bug that gets code running has nothing
//! to reach. Nothing of a
//! document's text or path is logged.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use hearth_assistant::chunk;
use hearth_assistant::extract::{self, ExtractError, Format};
use hearth_assistant::search::{Index, Query};
use hearth_files::beneath::{BeneathError, Folder};
use tokio::io::AsyncWriteExt as _;

use super::store::{KnownDocument, NewPassage, StoredPassage};

/// Most files looked at in one folder.
pub const MAX_FILES: usize = 10_000;
/// Deepest folder nesting looked into.
const MAX_DEPTH: usize = 16;
/// Longest a PDF may take to read.
const EXTRACT_TIMEOUT: Duration = Duration::from_secs(60);
/// Memory a PDF reader may use.
pub const EXTRACT_MEMORY: u64 = 1024 * 1024 * 1024;
/// Passages embedded per request to the embedding model.
const EMBED_BATCH: usize = 32;
/// The line before a PDF reader's answer (the parser may print too).
pub const EXTRACT_MARKER: &str = "HEARTH-EXTRACT-ANSWER";

/// A passage as search finds it.
#[derive(Clone, Debug)]
pub struct PassageInfo {
    /// Its folder.
    pub folder: String,
    /// Its document's path within the folder.
    pub path: String,
    /// How an answer cites it.
    pub citation: String,
}

/// The searchable passages: the index and where each passage comes from;
/// their texts stay in the store and are read for the passages found.
#[derive(Default)]
pub struct Library {
    index: Index<i64>,
    passages: HashMap<i64, PassageInfo>,
}

impl Library {
    /// Adds a passage.
    pub fn add(&mut self, passage: StoredPassage) {
        // Its file's name and heading are found by keywords too.
        let searched = format!("{}\n{}", passage.citation, passage.text);
        self.index
            .insert(passage.id, &searched, passage.vector.as_deref(), None);
        self.passages.insert(
            passage.id,
            PassageInfo {
                folder: passage.folder,
                path: passage.path,
                citation: passage.citation,
            },
        );
    }

    /// Gives back the room kept for growth, after the start's loading.
    pub fn shrink_to_fit(&mut self) {
        self.index.shrink_to_fit();
        self.passages.shrink_to_fit();
    }

    /// Removes passages.
    pub fn remove(&mut self, ids: &[i64]) {
        for id in ids {
            self.index.remove(id);
            self.passages.remove(id);
        }
    }

    /// How many passages it holds.
    pub fn len(&self) -> usize {
        self.passages.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The best passages for `query` in the folders named `readable`, best
    /// first: their ids and where they come from.
    pub fn search(&self, query: &Query<'_>, readable: &HashSet<String>) -> Vec<(i64, PassageInfo)> {
        self.index
            .search(query, |id| {
                self.passages
                    .get(id)
                    .is_some_and(|passage| readable.contains(&passage.folder))
            })
            .into_iter()
            .filter_map(|hit| Some((hit.key, self.passages.get(&hit.key)?.clone())))
            .collect()
    }
}

/// A file found in a folder.
#[derive(Clone, Debug)]
pub struct Found {
    /// Its path within the folder (with `/`).
    pub path: String,
    /// The folder it is read from (opened once for the walk).
    pub folder: std::sync::Arc<Folder>,
    /// Its size.
    pub size: u64,
    /// Its modification time, Unix ms.
    pub modified: i64,
    /// How it is read.
    pub format: Format,
    /// A symbolic link: listed as refused, never read.
    pub link: bool,
}

/// The readable files under `root`, in path order. The folder is opened
/// once and everything beneath it is reached one name at a time from its
/// descriptor, refusing symbolic links at every step
/// ([`hearth_files::beneath`]): a folder swapped for a link to a member's
/// private folder while the walk (or a read) is under way is never
/// followed.
pub fn walk(root: &Path) -> Vec<Found> {
    let Ok(folder) = Folder::open(root) else {
        return Vec::new();
    };
    let folder = std::sync::Arc::new(folder);
    folder
        .walk(MAX_FILES, MAX_DEPTH, |path| Format::of(path).is_some())
        .into_iter()
        .filter_map(|entry| {
            Some(Found {
                format: Format::of(&entry.path)?,
                path: entry.path.to_str()?.to_owned(),
                folder: std::sync::Arc::clone(&folder),
                size: entry.size,
                modified: entry.modified_ms,
                link: entry.link,
            })
        })
        .collect()
}

/// Whether `found` is what the store already has for it (indexed or refused).
pub fn unchanged(found: &Found, known: Option<&KnownDocument>) -> bool {
    known.is_some_and(|known| {
        known.size == i64::try_from(found.size).unwrap_or(i64::MAX)
            && known.modified == found.modified
    })
}

/// Why a document was not read (stored as its refusal, shown to members).
#[derive(Debug, thiserror::Error)]
pub enum Unread {
    /// Its content is refused (too large, not text, nothing in it).
    #[error(transparent)]
    Content(#[from] ExtractError),
    /// Reading the file failed.
    #[error("it cannot be read")]
    Lost,
    /// Reading the file failed, for this reason.
    #[error("it cannot be read: {0}")]
    Unreadable(String),
    /// The PDF reader failed, or said why it could not read it.
    #[error("{0}")]
    Pdf(String),
}

/// Why a shared document's name is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharedName {
    /// Not a plain file name.
    #[error(
        "a document's name is a file name of 1 to {} bytes: no folders, no control characters, not hidden",
        extract::MAX_SHARED_NAME
    )]
    NotAFileName,
    /// Not a kind of document the assistant reads.
    #[error("{0} is not a document the assistant reads: PDF, text (.txt) and Markdown (.md) are")]
    NotADocument(String),
}

/// The name a document a member shares is kept under, and how it is read:
/// a plain file name ([`extract::shared_file_name`]) of a kind documents
/// are read in; or why not, for the member.
pub fn shared_name(name: &str) -> Result<(String, Format), SharedName> {
    let name = extract::shared_file_name(name).ok_or(SharedName::NotAFileName)?;
    let format =
        Format::of(Path::new(name)).ok_or_else(|| SharedName::NotADocument(name.to_owned()))?;
    Ok((name.to_owned(), format))
}

/// The text of a found file, page by page: text and Markdown here, PDFs by
/// a child process (`program extract pdf`).
pub async fn extract_text(found: &Found, program: &Path) -> Result<Vec<String>, Unread> {
    let too_large = || ExtractError::TooLarge {
        bytes: found.size,
        max: extract::MAX_FILE_BYTES,
    };
    if found.size > extract::MAX_FILE_BYTES {
        return Err(too_large().into());
    }
    let (folder, path) = (std::sync::Arc::clone(&found.folder), found.path.clone());
    let bytes =
        tokio::task::spawn_blocking(move || folder.read(Path::new(&path), extract::MAX_FILE_BYTES))
            .await
            .map_err(|_| Unread::Lost)?
            .map_err(|error| match error {
                BeneathError::TooLarge { .. } => too_large().into(),
                BeneathError::Io(error) => Unread::Unreadable(error.kind().to_string()),
                other => Unread::Unreadable(other.to_string()),
            })?;
    extract_bytes(found.format, &bytes, program).await
}

/// The text of a document's `bytes` in `format`, page by page.
pub async fn extract_bytes(
    format: Format,
    bytes: &[u8],
    program: &Path,
) -> Result<Vec<String>, Unread> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > extract::MAX_FILE_BYTES {
        return Err(ExtractError::TooLarge {
            bytes: size,
            max: extract::MAX_FILE_BYTES,
        }
        .into());
    }
    match format {
        Format::Text | Format::Markdown => Ok(extract::extract(format, bytes)?.pages),
        Format::Pdf => extract_pdf(bytes, program).await,
    }
}

/// A PDF's pages, read by a child process under limits.
async fn extract_pdf(bytes: &[u8], program: &Path) -> Result<Vec<String>, Unread> {
    let damaged = || Unread::Pdf("the PDF reader's answer is damaged".into());
    let mut child = tokio::process::Command::new(program)
        .args(["extract", "pdf"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            Unread::Pdf(format!("the PDF reader could not start: {}", error.kind()))
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Unread::Pdf("the PDF reader has no input".into()))?;
    let input = bytes.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let output = tokio::time::timeout(EXTRACT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| Unread::Pdf("the PDF took too long to read".into()))?
        .map_err(|error| Unread::Pdf(format!("the PDF reader failed: {}", error.kind())))?;
    writer.abort();
    let text = String::from_utf8_lossy(&output.stdout);
    let Some((_, answer)) = text.rsplit_once(&format!("{EXTRACT_MARKER}\n")) else {
        return Err(Unread::Pdf(
            "the PDF could not be read (the reader stopped: too large or malformed)".into(),
        ));
    };
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).map_err(|_| damaged())?;
    if let Some(error) = answer.get("error").and_then(serde_json::Value::as_str) {
        return Err(Unread::Pdf(error.to_owned()));
    }
    answer
        .get("pages")
        .and_then(serde_json::Value::as_array)
        .map(|pages| {
            pages
                .iter()
                .map(|page| page.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .ok_or_else(damaged)
}

/// Why the reader could not be confined (it then reads nothing).
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A step of the confinement failed.
    #[error("{what}: {error}")]
    Step {
        /// The step.
        what: String,
        /// What the system said.
        error: String,
    },
    /// No directory to mount the empty root on.
    #[error("no folder to mount on")]
    NoMountPoint,
}

/// The system calls a document reader may make once confined: it reads
/// standard input, allocates memory (never executable), writes standard
/// output and error, and exits. Anything else (opening files, sockets,
/// io_uring, handles, pidfds, signals to others, new processes) ends the
/// process ([`confine_reader`]). A call listed with conditions is allowed
/// only when they all hold (a call listed twice: when either set does).
fn allowed_calls() -> Vec<(libc::c_long, Vec<Condition>)> {
    use Condition::{Equals, Without};
    let prot = 2; // mmap and mprotect: the protection argument
    vec![
        (libc::SYS_read, vec![Equals(0, 0)]),
        (libc::SYS_write, vec![Equals(0, 1)]),
        (libc::SYS_write, vec![Equals(0, 2)]),
        (libc::SYS_brk, vec![]),
        (libc::SYS_mmap, vec![Without(prot, libc::PROT_EXEC as u64)]),
        (
            libc::SYS_mprotect,
            vec![Without(prot, libc::PROT_EXEC as u64)],
        ),
        (libc::SYS_munmap, vec![]),
        (libc::SYS_mremap, vec![]),
        (libc::SYS_madvise, vec![]),
        (libc::SYS_futex, vec![]),
        (libc::SYS_getrandom, vec![]),
        (libc::SYS_clock_gettime, vec![]),
        (libc::SYS_sched_yield, vec![]),
        (libc::SYS_sigaltstack, vec![]),
        (libc::SYS_rt_sigprocmask, vec![]),
        (libc::SYS_rt_sigreturn, vec![]),
        (libc::SYS_close, vec![]),
        (libc::SYS_exit, vec![]),
        (libc::SYS_exit_group, vec![]),
    ]
}

/// A condition on a system call's argument.
#[derive(Clone, Copy, Debug)]
enum Condition {
    /// Argument `.0` equals `.1`.
    Equals(u8, u64),
    /// Argument `.0` has none of the bits of `.1`.
    Without(u8, u64),
}

/// Confines the calling process, which must have no other thread, to what
/// a document reader needs, so that a parser bug that gets code running
/// reaches nothing: where unprivileged user namespaces are available, an
/// empty filesystem (a new user and mount namespace whose root is an empty
/// tmpfs); no new descriptors at all (`RLIMIT_NOFILE` at the three
/// standard ones), no new processes; `no_new_privs`; and a
/// system call filter that allows [`allowed_calls`] only and kills the
/// process at any other. `hearth-gateway extract` calls it before reading
/// its input.
pub fn confine_reader() -> Result<(), ConfineError> {
    // Where user namespaces are off (a container's seccomp profile, a
    // sysctl) the filter below still holds.
    let _ = empty_filesystem();
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let three = rustix::process::Rlimit {
        current: Some(3),
        maximum: Some(3),
    };
    for (resource, limit) in [
        (rustix::process::Resource::Nofile, three),
        (rustix::process::Resource::Nproc, none),
    ] {
        rustix::process::setrlimit(resource, limit).map_err(|error| ConfineError::Step {
            what: format!("cannot limit the reader ({resource:?})"),
            error: error.to_string(),
        })?;
    }
    install_filter()
}

/// Moves the process (which must have one thread) into new user and mount
/// namespaces whose root is an empty tmpfs: no file of the machine has a
/// path any more. Fails where unprivileged user namespaces are off.
#[allow(unsafe_code)] // unshare(2): rustix's wrapper is unsafe too
pub fn empty_filesystem() -> Result<(), ConfineError> {
    use rustix::mount::{MountFlags, MountPropagationFlags};
    fn step(what: &'static str) -> impl Fn(rustix::io::Errno) -> ConfineError {
        move |error| ConfineError::Step {
            what: what.into(),
            error: error.to_string(),
        }
    }
    // SAFETY: the reader's process has one thread (`extract` runs before
    // any runtime), which is what unsharing these namespaces asks; no
    // state of the process refers to the namespaces it leaves.
    unsafe {
        rustix::thread::unshare_unsafe(
            rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS,
        )
    }
    .map_err(step("unshare"))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(step("private mounts"))?;
    let base = ["/tmp", "/proc", "/dev"]
        .into_iter()
        .find(|dir| Path::new(dir).is_dir())
        .ok_or(ConfineError::NoMountPoint)?;
    rustix::mount::mount(
        "none",
        base,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY,
        Some(c"size=4k,mode=0555"),
    )
    .map_err(step("tmpfs"))?;
    rustix::process::chdir(base).map_err(step("chdir"))?;
    rustix::process::chroot(".").map_err(step("chroot"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))?;
    Ok(())
}

/// Installs the allowlist filter of [`allowed_calls`] (default: kill the
/// process), on every thread of the process.
fn install_filter() -> Result<(), ConfineError> {
    let invalid = |error: &dyn std::fmt::Display| ConfineError::Step {
        what: "the system call filter is invalid".into(),
        error: error.to_string(),
    };
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|error| ConfineError::Step {
            what: "no system call filter for this machine".into(),
            error: format!("{error}"),
        })?;
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> = Default::default();
    for (call, conditions) in allowed_calls() {
        let conditions = conditions
            .into_iter()
            .map(|condition| match condition {
                Condition::Equals(argument, value) => SeccompCondition::new(
                    argument,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::Eq,
                    value,
                ),
                Condition::Without(argument, bits) => SeccompCondition::new(
                    argument,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(bits),
                    0,
                ),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid(&error))?;
        let entry = rules.entry(call).or_default();
        if !conditions.is_empty() {
            entry.push(SeccompRule::new(conditions).map_err(|error| invalid(&error))?);
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(|error| invalid(&error))?;
    let program: BpfProgram = filter.try_into().map_err(|error| ConfineError::Step {
        what: "the system call filter does not compile".into(),
        error: format!("{error}"),
    })?;
    seccompiler::apply_filter_all_threads(&program).map_err(|error| ConfineError::Step {
        what: "the system call filter cannot be installed".into(),
        error: error.to_string(),
    })
}

/// What `hearth-gateway extract FORMAT` prints for `bytes` (after limiting
/// its own memory and CPU): the marker line, then `{"pages": […]}` or
/// `{"error": "…"}`.
pub fn extract_answer(format: Format, bytes: &[u8]) -> String {
    let answer = match extract::extract(format, bytes) {
        Ok(extracted) => serde_json::json!({"pages": extracted.pages}),
        Err(error) => serde_json::json!({"error": error.to_string()}),
    };
    format!("{EXTRACT_MARKER}\n{answer}\n")
}

/// The passages of a document's pages, ready to store (embeddings added by
/// the caller).
pub fn passages_of(path: &str, format: Format, pages: &[String]) -> Vec<NewPassage> {
    chunk::passages(pages, format == Format::Markdown, format == Format::Pdf)
        .into_iter()
        .map(|passage| NewPassage {
            citation: passage.citation(path),
            text: passage.text,
            vector: None,
        })
        .collect()
}

/// Passages per embedding request.
pub fn batches(texts: &[String]) -> impl Iterator<Item = &[String]> {
    texts.chunks(EMBED_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons a file is not read are the ones the assistant's words
    /// know (`hearth_assistant::say::document_refusal` says them in
    /// Korean).
    #[test]
    fn unreadable_files_are_refused_in_the_words_the_assistant_knows() {
        use hearth_assistant::extract::UNREADABLE;
        assert_eq!(Unread::Lost.to_string(), UNREADABLE);
        assert_eq!(
            Unread::Unreadable("Permission denied".into()).to_string(),
            format!("{UNREADABLE}: Permission denied")
        );
    }

    #[test]
    fn folders_are_walked_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("kitchen/appliances")).unwrap();
        std::fs::write(root.join("kitchen/appliances/oven.md"), "# Oven").unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::write(root.join("photo.jpg"), "x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.md"), "not the household's").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.md"), root.join("link.md")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("elsewhere")).unwrap();
        let found: Vec<(String, bool)> = walk(root)
            .into_iter()
            .map(|found| (found.path, found.link))
            .collect();
        // The link with a document's name is listed as a link (to be
        // refused with why); the linked folder is not walked.
        assert_eq!(
            found,
            [
                ("kitchen/appliances/oven.md".to_owned(), false),
                ("link.md".to_owned(), true),
                ("notes.txt".to_owned(), false),
            ]
        );
    }

    #[tokio::test]
    async fn a_link_is_never_read_even_if_asked_to() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("house");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.path().join("secret.md"), "CANARY-SECRET").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.md"), root.join("link.md")).unwrap();
        let [link] = &walk(&root)[..] else {
            panic!("one entry");
        };
        assert!(link.link);
        let read = extract_text(link, Path::new("/nonexistent-pdf-reader")).await;
        assert!(matches!(read, Err(Unread::Unreadable(_))), "{read:?}");
    }

    /// Issue 41's review: a directory in a household folder swapped for a
    /// link to a member's private folder (a rename exchange, over and over)
    /// while the indexer walks and reads got that member's diary indexed
    /// into the household's documents within about a second. Nothing of
    /// the private folder is ever found or read now.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_folder_swapped_for_a_link_mid_walk_never_lets_a_private_file_in() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("house");
        std::fs::create_dir_all(root.join("notes")).unwrap();
        std::fs::write(root.join("notes/shopping.md"), "milk").unwrap();
        let private = dir.path().join("ada-private");
        std::fs::create_dir(&private).unwrap();
        std::fs::write(private.join("diary.md"), "CANARY-DIARY").unwrap();
        std::os::unix::fs::symlink(&private, root.join("swap")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = Arc::clone(&stop);
            let (notes, swap) = (root.join("notes"), root.join("swap"));
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &notes,
                        rustix::fs::CWD,
                        &swap,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let program = Path::new("/nonexistent-pdf-reader");
        for _ in 0..2_000 {
            for found in walk(&root) {
                assert_ne!(
                    found.path, "notes/diary.md",
                    "the private folder was walked"
                );
                if let Ok(pages) = extract_text(&found, program).await {
                    assert!(
                        !pages.concat().contains("CANARY-DIARY"),
                        "the diary was read as {}",
                        found.path
                    );
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(swapper.join().unwrap() > 0);
    }

    #[test]
    fn passages_carry_their_citations() {
        let pages = vec!["# Boiler\n\nHold the red button.\n".to_owned()];
        let passages = passages_of("house/boiler.md", Format::Markdown, &pages);
        assert_eq!(passages.len(), 1);
        assert_eq!(passages[0].citation, "house/boiler.md › Boiler, line 3");
    }

    #[test]
    fn the_reader_s_answer_is_framed_after_anything_the_parser_printed() {
        let answer = extract_answer(Format::Text, b"hello");
        assert!(answer.starts_with(EXTRACT_MARKER));
        assert!(answer.contains(r#""pages":["hello"]"#));
        assert!(extract_answer(Format::Text, b"\xff").contains("not UTF-8"));
    }
}
