//! Fuzzes what household documents and imported memory hold: text,
//! Markdown and PDF files read (the PDF parser is the one the gateway's
//! child reader runs), cut into passages, and OpenClaw memory files read
//! into entries. Any bytes give text or a refusal, never a panic; passages
//! keep within their size.
#![no_main]

use hearth_assistant::chunk::{TARGET_CHARS, passages};
use hearth_assistant::extract::{Format, extract};
use hearth_assistant::memory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Text, Format::Markdown, Format::Pdf] {
        if let Ok(extracted) = extract(format, data) {
            for passage in passages(&extracted.pages, format == Format::Markdown, format == Format::Pdf) {
                assert!(passage.text.chars().count() <= 2 * TARGET_CHARS);
                let _ = passage.citation("a.md");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = memory::import("MEMORY.md", text);
        let _ = memory::import("memory/2026-11-24.md", text);
    }
});
