//! The real data in `../shared/research`, read where it is (never copied
//! into the project): attestation documents from public projects, and the
//! OHTTP and Binary HTTP vectors.

use std::path::PathBuf;

use crate::lab::skip;
use crate::llama::workspace_root;

/// `name` inside the attestation fixtures (`HEARTH_ATTESTATION_FIXTURES`,
/// else `attestation-fixtures` in the research data), or a skip (a failure
/// under `CI=true`) when they are not there.
pub fn attestation_fixture(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HEARTH_ATTESTATION_FIXTURES").map_or_else(
        || research_dir().join("attestation-fixtures"),
        PathBuf::from,
    );
    if dir.is_dir() {
        return Some(dir.join(name));
    }
    skip(&format!(
        "attestation fixtures not found at {} (set HEARTH_ATTESTATION_FIXTURES)",
        dir.display()
    ))
}

/// `path` inside the research data (`HEARTH_RESEARCH_DIR`, else
/// `../shared/research` beside the workspace), or a skip (a failure under
/// `CI=true`) when it is not there.
pub fn research_file(path: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HEARTH_RESEARCH_DIR").map_or_else(
        || workspace_root().join("../shared/research"),
        PathBuf::from,
    );
    let file = dir.join(path);
    if file.exists() {
        return Some(file);
    }
    skip(&format!(
        "{} not found (set HEARTH_RESEARCH_DIR)",
        file.display()
    ))
}

/// The research data: `HEARTH_RESEARCH_DIR`, else `../shared/research`
/// beside the workspace.
fn research_dir() -> PathBuf {
    std::env::var_os("HEARTH_RESEARCH_DIR").map_or_else(
        || workspace_root().join("../shared/research"),
        PathBuf::from,
    )
}
