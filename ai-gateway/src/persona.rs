//! The assistant's persona, from the workspace folder (mounted read-only):
//! SOUL.md, AGENTS.md, IDENTITY.md and USER.md become the system prompt.

use std::path::Path;

/// The workspace files, in the order they appear in the prompt.
pub const FILES: [&str; 4] = ["SOUL.md", "AGENTS.md", "IDENTITY.md", "USER.md"];
/// Characters kept of each file.
pub const PER_FILE: usize = 20_000;
/// Characters kept in all.
pub const TOTAL: usize = 60_000;

fn truncate(text: &str, limit: usize) -> &str {
    match text.char_indices().nth(limit) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// The system prompt made of `files` (name, content), each capped at
/// [`PER_FILE`] characters and all at [`TOTAL`]; `None` when there is nothing.
pub fn system_prompt(files: &[(&str, String)]) -> Option<String> {
    let mut prompt = String::new();
    let mut used = 0;
    for (name, content) in files {
        let content = content.trim();
        if content.is_empty() || used >= TOTAL {
            continue;
        }
        let kept = truncate(content, PER_FILE.min(TOTAL - used));
        used += kept.chars().count();
        if !prompt.is_empty() {
            prompt.push_str("\n\n");
        }
        prompt.push_str(&format!("# {name}\n\n{kept}"));
    }
    (!prompt.is_empty()).then_some(prompt)
}

/// Reads the persona files present in `workspace`.
pub fn load(workspace: &Path) -> std::io::Result<Option<String>> {
    let mut files = Vec::new();
    for name in FILES {
        match std::fs::read_to_string(workspace.join(name)) {
            Ok(content) => files.push((name, content)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(system_prompt(&files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_joined_in_order_under_their_names() {
        let prompt = system_prompt(&[
            ("SOUL.md", "Be kind.".into()),
            ("USER.md", "  The Smiths.\n".into()),
        ])
        .unwrap();
        assert_eq!(prompt, "# SOUL.md\n\nBe kind.\n\n# USER.md\n\nThe Smiths.");
        assert_eq!(system_prompt(&[("SOUL.md", "   ".into())]), None);
    }

    #[test]
    fn each_file_and_the_whole_are_capped() {
        let big = "\u{e9}".repeat(25_000);
        let files: Vec<(&str, String)> = FILES.iter().map(|name| (*name, big.clone())).collect();
        let prompt = system_prompt(&files).unwrap();
        let kept: usize = prompt.matches('\u{e9}').count();
        assert_eq!(kept, TOTAL, "three files of 20,000 fill the 60,000");
        assert!(
            !prompt.contains("# USER.md"),
            "the fourth file does not fit"
        );
        let one = system_prompt(&files[..1]).unwrap();
        assert_eq!(one.matches('\u{e9}').count(), PER_FILE);
    }
}
