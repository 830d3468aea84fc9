//! What the log holds, one JSON object per entry (each entry's bytes are
//! its leaf): the measurements of a compute image a client may trust, or
//! an OHTTP key configuration with the period it is used in. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest entry accepted, in bytes.
pub const MAX_ENTRY: usize = 16 * 1024;

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Entry {
    /// A compute image's measurements.
    Image {
        /// The kind of evidence they are read from (`aws-nitro`,
        /// `amd-sev-snp`, `intel-tdx`, `hearth-dev`).
        evidence: String,
        /// A name for people.
        name: String,
        /// The measurements by name (`pcr0`, `measurement`, `mrtd`, ...),
        /// lowercase hex.
        measurements: BTreeMap<String, String>,
    },
    /// An OHTTP gateway's key configuration and when it is used.
    OhttpKey {
        /// The configuration's id.
        key_id: u8,
        /// The configuration (RFC 9458, 3.1), base64.
        config: String,
        /// RFC 3339.
        active_from: String,
        /// RFC 3339.
        active_until: String,
    },
}

/// Why a line is not a log entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Longer than [`MAX_ENTRY`].
    #[error("an entry of {0} bytes, more than {MAX_ENTRY}")]
    TooLong(usize),
    /// Not an entry's JSON.
    #[error("not a log entry: {0}")]
    NotAnEntry(#[from] serde_json::Error),
}

impl Entry {
    /// Its bytes in the log (one line, no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("entries serialize")
    }

    /// Reads an entry's bytes.
    pub fn parse(line: &str) -> Result<Entry, EntryError> {
        if line.len() > MAX_ENTRY {
            return Err(EntryError::TooLong(line.len()));
        }
        Ok(serde_json::from_str(line)?)
    }

    /// Whether this is an image entry for `evidence` with exactly these
    /// measurements (names and values compared without regard to case).
    pub fn is_image(&self, evidence: &str, measurements: &BTreeMap<String, String>) -> bool {
        match self {
            Entry::Image {
                evidence: logged,
                measurements: values,
                ..
            } => {
                logged == evidence
                    && values.len() == measurements.len()
                    && values
                        .iter()
                        .zip(measurements)
                        .all(|((name, value), (other, wanted))| {
                            name.eq_ignore_ascii_case(other) && value.eq_ignore_ascii_case(wanted)
                        })
            }
            Entry::OhttpKey { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_and_unknown_shapes_are_refused() {
        let image = Entry::Image {
            evidence: "aws-nitro".into(),
            name: "hearth-enclave 0.1".into(),
            measurements: BTreeMap::from([("pcr0".into(), "ab".into())]),
        };
        let line = image.to_line();
        assert!(line.starts_with(r#"{"type":"image""#), "{line}");
        assert_eq!(Entry::parse(&line).unwrap(), image);
        assert!(image.is_image("aws-nitro", &BTreeMap::from([("PCR0".into(), "AB".into())])));
        assert!(!image.is_image("intel-tdx", &BTreeMap::from([("pcr0".into(), "ab".into())])));
        assert!(!image.is_image("aws-nitro", &BTreeMap::new()));
        let key = Entry::OhttpKey {
            key_id: 1,
            config: "AQ==".into(),
            active_from: "2026-01-01T00:00:00Z".into(),
            active_until: "2026-02-01T00:00:00Z".into(),
        };
        assert_eq!(Entry::parse(&key.to_line()).unwrap(), key);
        assert!(
            Entry::parse(
                r#"{"type":"image","evidence":"x","name":"n","measurements":{},"extra":1}"#
            )
            .is_err()
        );
        assert!(Entry::parse(&"x".repeat(MAX_ENTRY + 1)).is_err());
    }
}
