//! Files and environment variables made up for a test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Sources;

/// Files by path and variables by name.
pub struct Fake {
    files: HashMap<PathBuf, String>,
    vars: HashMap<String, String>,
}

impl Fake {
    /// `files` (path, text) and `vars` (name, value).
    pub fn new(files: &[(&str, &str)], vars: &[(&str, &str)]) -> Fake {
        Fake {
            files: files
                .iter()
                .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
                .collect(),
            vars: vars
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }
}

impl Sources for Fake {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}
