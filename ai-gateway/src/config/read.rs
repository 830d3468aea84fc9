//! Reading a configuration value by value, every problem noted with its
//! path and the reading carried on, so that an invalid file is reported
//! whole at once; and every key the gateway does not use noted once, with
//! why. Pure.

use serde_json::{Map, Value};

/// Something wrong with the configuration, at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where (`gateway.auth.mode`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: &str, message: impl Into<String>) -> Problem {
        Problem {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.path, self.message)
    }
}

/// A key the gateway reads past, or a note about one it reads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// Where.
    pub path: String,
    /// What it means here.
    pub note: String,
}

/// Reads values, collecting problems and notes.
#[derive(Debug, Default)]
pub struct Reader {
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// What is not used, and other remarks.
    pub notes: Vec<Note>,
}

/// `path.key`.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Reader {
    /// Notes a problem.
    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// Notes a remark.
    pub fn note(&mut self, path: &str, note: impl Into<String>) {
        self.notes.push(Note {
            path: path.to_owned(),
            note: note.into(),
        });
    }

    /// `value` as an object (an absent or null value reads as empty).
    pub fn object<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
    ) -> Option<&'a Map<String, Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                self.problem(path, "must be an object");
                None
            }
        }
    }

    /// `value` as a string.
    pub fn string(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.problem(path, "must be a string");
                None
            }
        }
    }

    /// `value` as a boolean.
    pub fn boolean(&mut self, value: Option<&Value>, path: &str) -> Option<bool> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Bool(flag)) => Some(*flag),
            Some(_) => {
                self.problem(path, "must be true or false");
                None
            }
        }
    }

    /// `value` as a whole number from `min` to `max`.
    pub fn integer(
        &mut self,
        value: Option<&Value>,
        path: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => {
                let whole = number.as_u64().or_else(|| {
                    number
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                });
                match whole {
                    Some(whole) if (min..=max).contains(&whole) => Some(whole),
                    _ => {
                        self.problem(path, format!("must be a whole number from {min} to {max}"));
                        None
                    }
                }
            }
            Some(_) => {
                self.problem(path, format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    /// `value` as a list of strings.
    pub fn strings(&mut self, value: Option<&Value>, path: &str) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| self.string(Some(item), &format!("{path}[{index}]")))
                .collect(),
            Some(_) => {
                self.problem(path, "must be a list of strings");
                Vec::new()
            }
        }
    }

    /// Notes every key of `map` (at `path`) that is not in `used`: each
    /// gets the reason `why` gives for it.
    pub fn rest(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        used: &[&str],
        why: impl Fn(&str) -> String,
    ) {
        for key in map.keys() {
            if !used.contains(&key.as_str()) {
                let at = child(path, key);
                let reason = why(&at);
                self.note(&at, reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_kept_with_its_path() {
        let value = json!({"port": "x", "flag": 2, "list": ["a", 3], "n": 70000});
        let mut reader = Reader::default();
        assert_eq!(
            reader.string(value.get("port"), "gateway.port"),
            Some("x".into())
        );
        assert_eq!(reader.boolean(value.get("flag"), "gateway.flag"), None);
        assert_eq!(reader.strings(value.get("list"), "gateway.list"), ["a"]);
        assert_eq!(reader.integer(value.get("n"), "gateway.n", 1, 65535), None);
        assert_eq!(reader.integer(Some(&json!(8.0)), "x", 1, 10), Some(8));
        assert_eq!(
            reader
                .problems
                .iter()
                .map(|problem| problem.path.as_str())
                .collect::<Vec<_>>(),
            ["gateway.flag", "gateway.list[1]", "gateway.n"]
        );
        let map = value.as_object().unwrap();
        reader.rest(map, "gateway", &["port", "flag"], |key| {
            format!("{key} unused")
        });
        assert_eq!(reader.notes.len(), 2);
        assert_eq!(reader.notes[0].note, "gateway.list unused");
    }
}
