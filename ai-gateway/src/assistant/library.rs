//! The household's documents: folders scanned for text, Markdown and PDF
//! files (symbolic links are not followed), each changed file extracted,
//! cut into passages, embedded, and stored whole in one transaction, or
//! refused with the reason (too large, not text, an unreadable PDF) and
//! nothing of it indexed. PDFs are read by a child process with memory and
//! time limits (`hearth-gateway extract pdf`), so a file built to crash or
//! exhaust a parser costs that child only, and a system call filter takes
//! from it what a reader never needs (the network, opening or changing
//! files, starting programs, signalling or tracing other processes), so a
//! parser bug that gets code running has nothing to reach. Nothing of a
//! document's text or path is logged.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_assistant::chunk;
use hearth_assistant::extract::{self, ExtractError, Format};
use hearth_assistant::search::{Index, Query};
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
    /// Where it is.
    pub full: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its modification time, Unix ms.
    pub modified: i64,
    /// How it is read.
    pub format: Format,
}

/// The readable files under `root`, in path order; symbolic links are
/// neither followed nor indexed.
pub fn walk(root: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if found.len() >= MAX_FILES {
                return found;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let full = entry.path();
            if kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    pending.push((full, depth + 1));
                }
                continue;
            }
            let Some(format) = Format::of(&full) else {
                continue;
            };
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let Ok(relative) = full.strip_prefix(root) else {
                continue;
            };
            let modified = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |since| {
                    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
                });
            found.push(Found {
                path: relative.to_string_lossy().replace('\\', "/"),
                full,
                size: metadata.len(),
                modified,
                format,
            });
        }
    }
    found.sort_by(|one, other| one.path.cmp(&other.path));
    found
}

/// Whether `found` is what the store already has for it (indexed or refused).
pub fn unchanged(found: &Found, known: Option<&KnownDocument>) -> bool {
    known.is_some_and(|known| {
        known.size == i64::try_from(found.size).unwrap_or(i64::MAX)
            && known.modified == found.modified
    })
}

/// The text of a found file, page by page: text and Markdown here, PDFs by
/// a child process (`program extract pdf`).
pub async fn extract_text(found: &Found, program: &Path) -> Result<Vec<String>, String> {
    if found.size > extract::MAX_FILE_BYTES {
        return Err(ExtractError::TooLarge {
            bytes: found.size,
            max: extract::MAX_FILE_BYTES,
        }
        .to_string());
    }
    let bytes = tokio::fs::read(&found.full)
        .await
        .map_err(|error| format!("it cannot be read: {}", error.kind()))?;
    match found.format {
        Format::Text | Format::Markdown => extract::extract(found.format, &bytes)
            .map(|extracted| extracted.pages)
            .map_err(|error| error.to_string()),
        Format::Pdf => extract_pdf(&bytes, program).await,
    }
}

/// A PDF's pages, read by a child process under limits.
async fn extract_pdf(bytes: &[u8], program: &Path) -> Result<Vec<String>, String> {
    let mut child = tokio::process::Command::new(program)
        .args(["extract", "pdf"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("the PDF reader could not start: {}", error.kind()))?;
    let mut stdin = child.stdin.take().ok_or("the PDF reader has no input")?;
    let input = bytes.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let output = tokio::time::timeout(EXTRACT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| "the PDF took too long to read".to_owned())?
        .map_err(|error| format!("the PDF reader failed: {}", error.kind()))?;
    writer.abort();
    let text = String::from_utf8_lossy(&output.stdout);
    let Some((_, answer)) = text.rsplit_once(&format!("{EXTRACT_MARKER}\n")) else {
        return Err(
            "the PDF could not be read (the reader stopped: too large or malformed)".into(),
        );
    };
    let answer: serde_json::Value =
        serde_json::from_str(answer.trim()).map_err(|_| "the PDF reader's answer is damaged")?;
    if let Some(error) = answer.get("error").and_then(serde_json::Value::as_str) {
        return Err(error.to_owned());
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
        .ok_or_else(|| "the PDF reader's answer is damaged".into())
}

/// The system calls a document reader is refused (with `EPERM`): it reads
/// standard input, allocates memory and writes standard output, and needs
/// none of these.
fn refused_calls() -> Vec<libc::c_long> {
    let mut calls = vec![
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kill,
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_mkdirat,
        libc::SYS_fchmodat,
        libc::SYS_fchownat,
        libc::SYS_truncate,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_open,
        libc::SYS_creat,
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_mkdir,
        libc::SYS_chmod,
        libc::SYS_chown,
        libc::SYS_link,
        libc::SYS_symlink,
        libc::SYS_fork,
        libc::SYS_vfork,
    ]);
    calls
}

/// Confines the calling thread, and anything it starts, to what a document
/// reader needs: sets `no_new_privs` and installs a seccomp filter refusing
/// [`refused_calls`]. `hearth-gateway extract` calls it before reading its
/// input.
pub fn confine_reader() -> Result<(), String> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|error| format!("no system call filter for this machine: {error}"))?;
    let rules = refused_calls()
        .into_iter()
        .map(|call| (call, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|error| format!("the system call filter is invalid: {error}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|error| format!("the system call filter does not compile: {error}"))?;
    seccompiler::apply_filter(&program)
        .map_err(|error| format!("the system call filter cannot be installed: {error}"))
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
        let found: Vec<String> = walk(root).into_iter().map(|found| found.path).collect();
        assert_eq!(found, ["kitchen/appliances/oven.md", "notes.txt"]);
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

    #[test]
    fn a_confined_reader_reads_a_pdf_and_can_reach_nothing_else() {
        let boiler = include_bytes!("../../../assistant/fuzz/seeds/boiler.pdf");
        let secret = tempfile::NamedTempFile::new().unwrap();
        let secret_path = secret.path().to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // The filter is the thread's own: the rest of the test process
        // keeps every system call.
        let tried = std::thread::spawn(move || {
            let before = std::fs::File::open(&secret_path).is_ok();
            confine_reader().unwrap();
            let answer = extract_answer(Format::Pdf, boiler);
            let refused = |result: std::io::Result<()>| {
                result.is_err_and(|error| error.kind() == std::io::ErrorKind::PermissionDenied)
            };
            (
                before,
                answer,
                refused(std::fs::File::open(&secret_path).map(drop)),
                refused(std::fs::write(secret_path.with_extension("new"), "x")),
                refused(std::net::TcpStream::connect(address).map(drop)),
                refused(std::net::UdpSocket::bind("127.0.0.1:0").map(drop)),
                refused(std::process::Command::new("/bin/true").status().map(drop)),
            )
        })
        .join()
        .unwrap();
        let (before, answer, open, create, connect, socket, program) = tried;
        assert!(before, "the file opens before the filter");
        assert!(answer.contains("boiler"), "the PDF is still read: {answer}");
        assert!(open, "a confined reader opened a file");
        assert!(create, "a confined reader created a file");
        assert!(connect, "a confined reader connected");
        assert!(socket, "a confined reader opened a socket");
        assert!(program, "a confined reader started a program");
        assert!(
            std::fs::File::open(secret.path()).is_ok(),
            "other threads are unconfined"
        );
    }
}
