//! The text of a household document: plain text, Markdown or PDF, checked
//! before anything is indexed. A file that is too large, not UTF-8 text,
//! or a PDF that cannot be read is refused with the reason and indexes
//! nothing; a document is indexed whole or not at all.
//!
//! PDF parsing is the riskiest code the assistant runs on files people
//! drop in a folder, so the gateway runs [`extract`] for PDFs in a child
//! process with memory and time limits (`hearth-gateway extract`); a
//! document that crashes or exhausts it is refused like any unreadable one.

use std::path::Path;

/// Largest document indexed (OpenClaw's `maxFileBytes` default).
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Most text kept from one document (a PDF can hold far more text than its
/// bytes suggest once decompressed).
pub const MAX_TEXT_CHARS: usize = 2_000_000;
/// Most pages read from a PDF.
pub const MAX_PAGES: usize = 2_000;

/// Longest name of a file a member shares, in bytes.
pub const MAX_SHARED_NAME: usize = 200;

/// `name` (trimmed) when it names a file a member may share: 1 to
/// [`MAX_SHARED_NAME`] bytes, no folder (`/`, `\`), no control character,
/// not hidden (a leading `.`). Household messaging keeps shared files under
/// it and the gateway the documents shared with the assistant.
pub fn shared_file_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let plain = !name.is_empty()
        && name.len() <= MAX_SHARED_NAME
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && !name.starts_with('.');
    plain.then_some(name)
}

/// The kinds of document indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.txt`, `.text`.
    Text,
    /// `.md`, `.markdown`.
    Markdown,
    /// `.pdf`.
    Pdf,
}

impl Format {
    /// The format of the file at `path`, by its extension; `None` for files
    /// the assistant does not read (they are listed as skipped, not errors).
    pub fn of(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" => Some(Format::Markdown),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

/// Why a symbolic link in a folder is listed and not read.
pub const LINK_REFUSAL: &str =
    "it is a symbolic link, and links are not followed: put the document itself in the folder";

/// Why a file could not be read at all (`: why` may follow).
pub const UNREADABLE: &str = "it cannot be read";

/// Why a document was not indexed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Over [`MAX_FILE_BYTES`].
    #[error("it is {bytes} bytes, over the {max} a document may have")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// A text file that is not UTF-8.
    #[error("it is not UTF-8 text (invalid byte at offset {0})")]
    NotUtf8(usize),
    /// A text file with NUL bytes: a binary file with a text extension.
    #[error("it holds binary data (a NUL byte at offset {0})")]
    Binary(usize),
    /// The PDF cannot be read.
    #[error("the PDF cannot be read: {0}")]
    Pdf(String),
    /// Nothing to index (an empty file, or a scanned PDF without text).
    #[error("it has no text (a scanned PDF needs text recognition first)")]
    Empty,
    /// More text than [`MAX_TEXT_CHARS`].
    #[error("it holds more than {MAX_TEXT_CHARS} characters of text")]
    TooMuchText,
    /// More pages than [`MAX_PAGES`].
    #[error("it has more than {MAX_PAGES} pages")]
    TooManyPages,
}

/// The text of a document, page by page (one page for text and Markdown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The pages' text.
    pub pages: Vec<String>,
}

/// The text of `bytes` read as `format`.
pub fn extract(format: Format, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_FILE_BYTES {
        return Err(ExtractError::TooLarge {
            bytes: size,
            max: MAX_FILE_BYTES,
        });
    }
    let pages = match format {
        Format::Text | Format::Markdown => vec![text(bytes)?],
        Format::Pdf => pdf(bytes)?,
    };
    let total: usize = pages.iter().map(|page| page.chars().count()).sum();
    if total > MAX_TEXT_CHARS {
        return Err(ExtractError::TooMuchText);
    }
    if pages.iter().all(|page| page.trim().is_empty()) {
        return Err(ExtractError::Empty);
    }
    Ok(Extracted { pages })
}

fn text(bytes: &[u8]) -> Result<String, ExtractError> {
    if let Some(offset) = bytes.iter().position(|byte| *byte == 0) {
        return Err(ExtractError::Binary(offset));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|error| ExtractError::NotUtf8(error.valid_up_to()))?;
    // A byte-order mark and Windows line ends are not part of the text.
    Ok(text.trim_start_matches('\u{feff}').replace("\r\n", "\n"))
}

fn pdf(bytes: &[u8]) -> Result<Vec<String>, ExtractError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ExtractError::Pdf("it does not start with %PDF-".into()));
    }
    pdf_pages(bytes)
}

#[cfg(not(feature = "pdf"))]
fn pdf_pages(_bytes: &[u8]) -> Result<Vec<String>, ExtractError> {
    Err(ExtractError::Pdf(
        "this build reads no PDF (feature `pdf`)".into(),
    ))
}

#[cfg(feature = "pdf")]
fn pdf_pages(bytes: &[u8]) -> Result<Vec<String>, ExtractError> {
    // The parser can panic on malformed files; that is a refusal too.
    let read = std::panic::catch_unwind(|| -> Result<Vec<String>, ExtractError> {
        let document = lopdf::Document::load_mem(bytes)
            .map_err(|error| ExtractError::Pdf(first_line(&error.to_string())))?;
        if document.is_encrypted() {
            return Err(ExtractError::Pdf("it is encrypted".into()));
        }
        let pages: Vec<u32> = document.get_pages().keys().copied().collect();
        if pages.len() > MAX_PAGES {
            return Err(ExtractError::TooManyPages);
        }
        let mut texts = Vec::with_capacity(pages.len());
        let mut total = 0;
        for page in pages {
            // A page whose text cannot be read counts as one without text.
            let text = document
                .extract_text(&[page])
                .unwrap_or_default()
                .replace('\u{0}', "");
            total += text.chars().count();
            if total > MAX_TEXT_CHARS {
                return Err(ExtractError::TooMuchText);
            }
            texts.push(text);
        }
        Ok(texts)
    });
    read.map_err(|_| ExtractError::Pdf("the file is malformed".into()))?
}

#[cfg(feature = "pdf")]
fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::of(Path::new("a/Boiler.MD")), Some(Format::Markdown));
        assert_eq!(Format::of(Path::new("notes.txt")), Some(Format::Text));
        assert_eq!(Format::of(Path::new("manual.pdf")), Some(Format::Pdf));
        assert_eq!(Format::of(Path::new("photo.jpg")), None);
        assert_eq!(Format::of(Path::new("README")), None);
    }

    #[test]
    fn text_is_taken_as_written_and_bad_bytes_are_refused() {
        let got = extract(
            Format::Markdown,
            "\u{feff}# Boiler\r\nReset it.\r\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(got.pages, ["# Boiler\nReset it.\n"]);
        assert_eq!(
            extract(Format::Text, b"caf\xe9"),
            Err(ExtractError::NotUtf8(3))
        );
        assert_eq!(
            extract(Format::Text, b"ab\0cd"),
            Err(ExtractError::Binary(2))
        );
        assert_eq!(extract(Format::Text, b"  \n\n "), Err(ExtractError::Empty));
        let big = vec![b'a'; usize::try_from(MAX_FILE_BYTES).unwrap() + 1];
        assert!(matches!(
            extract(Format::Text, &big),
            Err(ExtractError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_a_pdf_is_refused_with_why() {
        let error = extract(Format::Pdf, b"<html>not a pdf</html>").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the PDF cannot be read: it does not start with %PDF-"
        );
        assert!(matches!(
            extract(Format::Pdf, b"%PDF-1.7\n garbage that ends early"),
            Err(ExtractError::Pdf(_))
        ));
        assert!(matches!(
            extract(
                Format::Pdf,
                &[b"%PDF-1.4\n".as_slice(), &[0xff; 64]].concat()
            ),
            Err(ExtractError::Pdf(_))
        ));
    }

    #[test]
    fn a_shared_file_is_named_by_a_plain_file_name() {
        assert_eq!(shared_file_name(" boiler.pdf "), Some("boiler.pdf"));
        assert_eq!(shared_file_name("보일러.md"), Some("보일러.md"));
        for name in [
            "",
            "  ",
            "a/b.txt",
            "a\\b.txt",
            ".hidden.txt",
            "a\nb.txt",
            &"a".repeat(201),
        ] {
            assert_eq!(shared_file_name(name), None, "{name:?}");
        }
    }
}
