//! What setup was told, and when it last completed: the hub's `setup.json`,
//! which the pod's rendering, status, backup and setup itself read.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::answers::Answers;
use crate::layout::Layout;
use crate::system;

/// What setup was told, and when it last completed (`setup.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Record {
    /// What it was told.
    pub answers: Answers,
    /// When setup last completed (Unix seconds).
    pub completed_at: i64,
}

/// The language the hub's commands speak: the household's as setup
/// recorded it, else the terminal's locale's.
pub fn household_language(layout: &Layout) -> hearth_assistant::language::Language {
    read_record(layout)
        .ok()
        .flatten()
        .map(|record| record.answers.language)
        .unwrap_or_else(|| {
            crate::answers::language_of_locale(hearth_runtime::terminal::locale().as_deref())
        })
}

/// The last completed setup's record, if any.
pub fn read_record(layout: &Layout) -> anyhow::Result<Option<Record>> {
    let Some(text) = system::read_optional(&layout.setup_file())? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is damaged", layout.setup_file().display()))
}
