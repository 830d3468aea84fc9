//! Where Hearth's tests find the real data in `../shared/research` (read
//! there, never copied into the project), and how a test that cannot run
//! skips: with a printed reason outside CI, as a failure under `CI=true`.
//!
//! A leaf with no dependencies, so that crates the harness (`hearth-testkit`)
//! itself depends on can use it in their tests without a dependency cycle.

use std::path::{Path, PathBuf};

/// Whether this run is CI (where every skip is a failure).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Skips (outside CI) or fails (in CI) with `reason`; returns `None` to the test.
pub fn skip<T>(reason: &str) -> Option<T> {
    assert!(!in_ci(), "CI=true and this test cannot run: {reason}");
    eprintln!("SKIPPED: {reason}");
    None
}

/// The workspace root (where `scripts/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .expect("testdata sits in the workspace")
}

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
