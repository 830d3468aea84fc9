//! The configuration as OpenClaw reads it, before any key means anything:
//! JSON5, `$include` of further files (inside the configuration's folder,
//! ten levels at most, 2 MB each), then `${VAR}` in every string from the
//! process environment or `env.vars` (upper-case names only; `$${VAR}`
//! keeps the text; a variable that is unset or empty stays as written and
//! is reported, as OpenClaw does, rather than refused). Pure: the files and
//! the environment come in through [`Sources`].

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::read::Problem;

/// How deep `$include`s may nest.
const MAX_INCLUDE_DEPTH: usize = 10;
/// The largest included file.
const MAX_INCLUDE_BYTES: usize = 2 << 20;

/// Where files and environment variables come from.
pub trait Sources {
    /// The text of `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The text of the file `relative` beneath the configuration's folder
    /// `root` (an `$include`).
    fn read_include(&self, root: &Path, relative: &Path) -> std::io::Result<String> {
        self.read(&root.join(relative))
    }
    /// The environment variable `name`.
    fn var(&self, name: &str) -> Option<String>;
}

/// The largest file read for the configuration (a workspace's persona
/// files included).
const MAX_FILE_BYTES: u64 = 2 << 20;

/// The machine's files and environment. Only regular files are read
/// (never a FIFO or a device, which would hang or never end), within a
/// limit; an `$include` is reached beneath the configuration's folder one
/// name at a time, never through a symbolic link.
pub struct System;

impl Sources for System {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let bytes = hearth_files::beneath::read_regular(path, MAX_FILE_BYTES)
            .map_err(std::io::Error::other)?;
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    }

    fn read_include(&self, root: &Path, relative: &Path) -> std::io::Result<String> {
        let folder = hearth_files::beneath::Folder::open(root).map_err(std::io::Error::other)?;
        let bytes = folder
            .read(relative, MAX_INCLUDE_BYTES as u64)
            .map_err(std::io::Error::other)?;
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    }

    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// The whole document, its includes resolved and its variables expanded;
/// what could not be expanded.
pub struct Document {
    /// The value.
    pub value: Value,
    /// `${VAR}`s left as written (path, name).
    pub unresolved: Vec<(String, String)>,
}

/// Reads the configuration in `text` (the file at `path`, whose folder
/// bounds its includes).
pub fn read(text: &str, path: &Path, sources: &dyn Sources) -> Result<Document, Vec<Problem>> {
    let root = path.parent().map(Path::to_owned).unwrap_or_default();
    let mut value = parse(text, &path.display().to_string())?;
    let mut problems = Vec::new();
    resolve_includes(&mut value, path, &root, sources, 0, &mut problems, "");
    if !problems.is_empty() {
        return Err(problems);
    }
    // `env.vars`, and `env`'s own string entries, fill in what the process
    // environment lacks.
    let env = value.get("env").and_then(Value::as_object);
    let mut inline: Map<String, Value> = env
        .map(|env| {
            env.iter()
                .filter(|(key, item)| item.is_string() && variable_name(key))
                .map(|(key, item)| (key.clone(), item.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(vars) = env
        .and_then(|env| env.get("vars"))
        .and_then(Value::as_object)
    {
        inline.extend(vars.iter().map(|(key, item)| (key.clone(), item.clone())));
    }
    let lookup = |name: &str| {
        sources
            .var(name)
            .filter(|found| !found.is_empty())
            .or_else(|| {
                inline
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|found| !found.is_empty())
                    .map(str::to_owned)
            })
    };
    let mut unresolved = Vec::new();
    expand_all(&mut value, "", &lookup, &mut unresolved);
    Ok(Document { value, unresolved })
}

/// The JSON5 value of `text` (the file `name`). A mistake is placed by
/// line and column only: the parser's own message quotes the line, and a
/// file read for the configuration may hold what must not be shown.
fn parse(text: &str, name: &str) -> Result<Value, Vec<Problem>> {
    json5::from_str(text).map_err(|error| {
        let json5::Error::Message { location, .. } = error;
        let message = match location {
            Some(at) => format!("not JSON5 (line {}, column {})", at.line, at.column),
            None => "not JSON5".to_owned(),
        };
        vec![Problem {
            path: name.to_owned(),
            message,
        }]
    })
}

/// Replaces every `$include` under `value` (found in the file at `file`)
/// by what it names, merged as OpenClaw does: one file replaces the
/// object, several are deep-merged in order, and sibling keys override.
fn resolve_includes(
    value: &mut Value,
    file: &Path,
    root: &Path,
    sources: &dyn Sources,
    depth: usize,
    problems: &mut Vec<Problem>,
    path: &str,
) {
    match value {
        Value::Object(map) => {
            if let Some(include) = map.remove("$include") {
                let included = include_files(&include, file, root, sources, depth, problems, path);
                let mut merged = Value::Object(Map::new());
                for part in included {
                    deep_merge(&mut merged, part);
                }
                let siblings = std::mem::take(map);
                deep_merge(&mut merged, Value::Object(siblings));
                *value = merged;
                if let Value::Object(map) = value {
                    for (key, child) in map.iter_mut() {
                        if key != "$include" {
                            let child_path = join(path, key);
                            resolve_includes(
                                child,
                                file,
                                root,
                                sources,
                                depth,
                                problems,
                                &child_path,
                            );
                        }
                    }
                }
                return;
            }
            for (key, child) in map.iter_mut() {
                let child_path = join(path, key);
                resolve_includes(child, file, root, sources, depth, problems, &child_path);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                let child_path = format!("{path}[{index}]");
                resolve_includes(child, file, root, sources, depth, problems, &child_path);
            }
        }
        _ => {}
    }
}

fn include_files(
    include: &Value,
    file: &Path,
    root: &Path,
    sources: &dyn Sources,
    depth: usize,
    problems: &mut Vec<Problem>,
    path: &str,
) -> Vec<Value> {
    let at = join(path, "$include");
    let names: Vec<&str> = match include {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => {
            problems.push(Problem::new(&at, "must be a file name or a list of them"));
            return Vec::new();
        }
    };
    if depth >= MAX_INCLUDE_DEPTH {
        problems.push(Problem::new(
            &at,
            format!("includes nest more than {MAX_INCLUDE_DEPTH} levels (a loop?)"),
        ));
        return Vec::new();
    }
    let mut values = Vec::new();
    for name in names {
        let Some(target) = confined(file, root, name) else {
            problems.push(Problem::new(
                &at,
                format!("{name:?} is outside the configuration's folder"),
            ));
            continue;
        };
        let relative = target.strip_prefix(root).unwrap_or(&target);
        let text = match sources.read_include(root, relative) {
            Ok(text) if text.len() <= MAX_INCLUDE_BYTES => text,
            Ok(_) => {
                problems.push(Problem::new(&at, format!("{name:?} is larger than 2 MB")));
                continue;
            }
            Err(error) => {
                problems.push(Problem::new(&at, format!("cannot read {name:?}: {error}")));
                continue;
            }
        };
        match parse(&text, &target.display().to_string()) {
            Ok(mut value) => {
                resolve_includes(
                    &mut value,
                    &target,
                    root,
                    sources,
                    depth + 1,
                    problems,
                    path,
                );
                values.push(value);
            }
            Err(mut parse_problems) => problems.append(&mut parse_problems),
        }
    }
    values
}

/// `name` resolved against `file`'s folder, when it stays inside `root`.
fn confined(file: &Path, root: &Path, name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains('\0') || name.len() >= 4096 {
        return None;
    }
    let base = file.parent().unwrap_or(root);
    let mut resolved = if Path::new(name).is_absolute() {
        PathBuf::new()
    } else {
        base.to_owned()
    };
    for component in Path::new(name).components() {
        match component {
            Component::RootDir => resolved.push("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(part) => resolved.push(part),
        }
    }
    resolved.starts_with(root).then_some(resolved)
}

/// Merges `from` into `into`: objects key by key, anything else replaced.
fn deep_merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        deep_merge(existing, value);
                    }
                    _ => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn expand_all(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unresolved: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(text) => {
            let (expanded, missing) = expand(text, lookup);
            *text = expanded;
            unresolved.extend(missing.into_iter().map(|name| (path.to_owned(), name)));
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                expand_all(item, &format!("{path}[{index}]"), lookup, unresolved);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_all(item, &join(path, key), lookup, unresolved);
            }
        }
        _ => {}
    }
}

/// Whether `name` is a variable name OpenClaw substitutes.
fn variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_uppercase() || first == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `text` with each `${NAME}` replaced, `$${NAME}` kept as `${NAME}`, and
/// the names that had no (non-empty) value, which stay as written.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let escaped = rest[..start].ends_with('$');
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + length];
        let whole = &rest[start..start + 3 + length];
        if escaped {
            out.push_str(&rest[..start - 1]);
            out.push_str(whole);
        } else if !variable_name(name) {
            out.push_str(&rest[..start]);
            out.push_str(whole);
        } else {
            out.push_str(&rest[..start]);
            match lookup(name) {
                Some(found) => out.push_str(&found),
                None => {
                    out.push_str(whole);
                    missing.push(name.to_owned());
                }
            }
        }
        rest = &rest[start + 3 + length..];
    }
    out.push_str(rest);
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fake::Fake;

    fn fake(files: &[(&str, &str)], vars: &[(&str, &str)]) -> Fake {
        Fake::new(files, vars)
    }

    #[test]
    fn variables_expand_as_openclaw_does() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            expand("a ${TOKEN} b", &lookup),
            ("a s3cret b".into(), vec![])
        );
        assert_eq!(
            expand("${MISSING}", &lookup),
            ("${MISSING}".into(), vec!["MISSING".to_owned()]),
            "left as written and reported"
        );
        assert_eq!(expand("$${TOKEN}", &lookup), ("${TOKEN}".into(), vec![]));
        assert_eq!(
            expand("${lower} ${1X}", &lookup),
            ("${lower} ${1X}".into(), vec![]),
            "only upper-case names"
        );
        assert_eq!(expand("${UNCLOSED", &lookup), ("${UNCLOSED".into(), vec![]));
    }

    #[test]
    fn includes_merge_and_stay_inside_the_folder() {
        let sources = fake(
            &[
                (
                    "/etc/oc/agents.json5",
                    "{ defaults: { workspace: '/ws', timeoutSeconds: 5 } }",
                ),
                ("/etc/oc/more.json5", "{ defaults: { timeoutSeconds: 9 } }"),
                ("/etc/secret.json5", "{}"),
            ],
            &[("PORT", "1234")],
        );
        let text = "{ gateway: { port: '${PORT}' }, agents: { $include: ['./agents.json5', 'more.json5'], entries: {} } }";
        let document = read(text, Path::new("/etc/oc/openclaw.json"), &sources).unwrap();
        assert_eq!(document.value["gateway"]["port"], "1234");
        assert_eq!(document.value["agents"]["defaults"]["workspace"], "/ws");
        assert_eq!(document.value["agents"]["defaults"]["timeoutSeconds"], 9);
        assert!(document.value["agents"]["entries"].is_object());
        let escape = read(
            "{ agents: { $include: '../secret.json5' } }",
            Path::new("/etc/oc/openclaw.json"),
            &sources,
        );
        assert!(escape.is_err(), "outside the configuration's folder");
        let missing = read(
            "{ agents: { $include: 'nope.json5' } }",
            Path::new("/etc/oc/openclaw.json"),
            &sources,
        )
        .err()
        .unwrap();
        assert_eq!(missing[0].path, "agents.$include");
    }

    #[test]
    fn inline_env_vars_fill_in_what_the_process_lacks() {
        let sources = fake(&[], &[("A", "from process")]);
        let document = read(
            "{ env: { vars: { A: 'inline', B: 'inline b' } }, x: '${A} ${B} ${C}' }",
            Path::new("/c/openclaw.json"),
            &sources,
        )
        .unwrap();
        assert_eq!(document.value["x"], "from process inline b ${C}");
        assert_eq!(document.unresolved, [("x".to_owned(), "C".to_owned())]);
    }
}
