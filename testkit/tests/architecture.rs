//! docs/architecture.md's tables against the code. The crate table against
//! the workspace as `cargo metadata` reads it: every crate is in the table,
//! and each row's "depends on" is exactly that crate's normal dependencies
//! among the workspace's crates. The "where is X decided" table against the
//! tree: every file it names exists, and every function or type it names
//! beside a file is defined in that file. A dependency added without the
//! table, a module moved or a function renamed with the table left behind,
//! fails here instead of misleading the next reader.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The workspace's crates and, for each, its dependencies of `kind`
/// (`None`: normal, not dev or build; `Some("dev")`) among them, without
/// the `hearth-` prefix.
fn workspace_dependencies(root: &Path, kind: Option<&str>) -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: BTreeSet<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| package["name"].as_str().unwrap().to_owned())
        .collect();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let depends: BTreeSet<String> = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dependency| dependency["kind"].as_str() == kind)
                .map(|dependency| dependency["name"].as_str().unwrap())
                .filter(|name| members.contains(*name))
                .map(short)
                .collect();
            (package["name"].as_str().unwrap().to_owned(), depends)
        })
        .collect()
}

fn short(name: &str) -> String {
    name.strip_prefix("hearth-").unwrap_or(name).to_owned()
}

/// The table's rows: crate and the crates its "depends on" column names
/// (`—` none; `(dev only)` for the test harness, checked separately).
fn table(text: &str) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let start = text.find("| crate | depends on | holds |").unwrap();
    text[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let depends = match cells[2] {
                "(dev only)" => None,
                "—" => Some(BTreeSet::new()),
                list => Some(list.split(',').map(|item| item.trim().to_owned()).collect()),
            };
            (name, depends)
        })
        .collect()
}

#[test]
fn the_architecture_crate_table_matches_cargo_metadata() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let rows = table(&text);
    let actual = workspace_dependencies(root, None);
    let mut wrong = Vec::new();
    for (name, depends) in &actual {
        match rows.get(name) {
            None => wrong.push(format!("{name} is not in the table")),
            Some(None) => {
                // The harness: nothing but tests may depend on it.
                for (user, uses) in &actual {
                    if uses.contains(&short(name)) {
                        wrong.push(format!("{user} depends on {name}, which is for tests only"));
                    }
                }
            }
            Some(Some(listed)) if listed != depends => wrong.push(format!(
                "{name}: the table says {listed:?}, Cargo.toml says {depends:?}"
            )),
            Some(Some(_)) => {}
        }
    }
    for name in rows.keys() {
        if !actual.contains_key(name) {
            wrong.push(format!("{name} is in the table but not in the workspace"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/architecture.md's crate table is out of date:\n{}",
        wrong.join("\n")
    );
}

/// The test harness depends on no crate whose tests use it: a crate the
/// harness is built on would otherwise be compiled twice for its own tests
/// (once as itself, once under the harness), and its types would not be
/// the harness's. Crates below the harness test with `hearth-testdata`.
#[test]
fn the_test_harness_is_built_on_no_crate_that_tests_with_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let normal = workspace_dependencies(root, None);
    let dev = workspace_dependencies(root, Some("dev"));
    let mut below: BTreeSet<String> = BTreeSet::new();
    let mut next = vec!["hearth-testkit".to_owned()];
    while let Some(name) = next.pop() {
        for dependency in &normal[&name] {
            if below.insert(dependency.clone()) {
                next.push(format!("hearth-{dependency}"));
            }
        }
    }
    let cycles: Vec<&String> = dev
        .iter()
        .filter(|(name, uses)| uses.contains("testkit") && below.contains(&short(name)))
        .map(|(name, _)| name)
        .collect();
    assert!(
        cycles.is_empty(),
        "the harness is built on crates that test with it: {cycles:?}"
    );
    assert!(
        below.contains("attest"),
        "the walk follows the harness's dependencies"
    );
}

/// What one cell of the "where is X decided" table names: each file
/// (a path without `src/`, such as `chunk.rs` or `userspace/mod.rs`, is
/// beside the file named before it) with the names
/// given in parentheses after it (`Type::function`, `function`, `Type`).
fn named_in(cell: &str) -> Vec<(String, Vec<String>)> {
    let mut named: Vec<(String, Vec<String>)> = Vec::new();
    let mut depth = 0usize;
    let mut rest = cell;
    while let Some(at) = rest.find(['(', ')', '`']) {
        let after = &rest[at..];
        match after.as_bytes()[0] {
            b'(' => {
                depth += 1;
                rest = &after[1..];
            }
            b')' => {
                depth = depth.saturating_sub(1);
                rest = &after[1..];
            }
            _ => {
                let end = after[1..].find('`').unwrap() + 1;
                let token = &after[1..end];
                rest = &after[end + 1..];
                if token.ends_with(".rs") {
                    let path = match (token.contains("src/"), named.last()) {
                        (false, Some((previous, _))) => {
                            let folder = previous.rsplit_once('/').unwrap().0;
                            format!("{folder}/{token}")
                        }
                        _ => token.to_owned(),
                    };
                    named.push((path, Vec::new()));
                } else if depth > 0
                    && let Some((_, names)) = named.last_mut()
                {
                    names.push(token.to_owned());
                }
            }
        }
    }
    named
}

/// Whether `source` defines `name` (a function, type, trait, constant or
/// module of that name).
fn defines(source: &str, name: &str) -> bool {
    [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
    ]
    .iter()
    .any(|kind| {
        source
            .match_indices(&format!("{kind} {name}"))
            .any(|(at, found)| {
                let next = source[at + found.len()..].chars().next();
                let before = source[..at].chars().next_back();
                !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
    })
}

#[test]
fn the_where_is_x_decided_table_names_files_and_functions_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let start = text.find("| question | module |").unwrap();
    let rows: Vec<&str> = text[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(rows.len() > 40, "the table is read: {} rows", rows.len());
    let mut wrong = Vec::new();
    let mut names_checked = 0;
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let named = named_in(cells[2]);
        if named.is_empty() {
            wrong.push(format!("{:?} names no file", cells[1]));
        }
        for (path, names) in named {
            let Ok(source) = std::fs::read_to_string(root.join(&path)) else {
                wrong.push(format!("{path} does not exist"));
                continue;
            };
            for name in names {
                names_checked += 1;
                let parts: Vec<&str> = name.split("::").collect();
                let missing: Vec<&&str> = parts
                    .iter()
                    .filter(|part| {
                        !defines(&source, part) && !source.contains(&format!("impl {part}"))
                    })
                    .collect();
                if !missing.is_empty() {
                    wrong.push(format!("{path} does not define {name}"));
                }
            }
        }
    }
    assert!(names_checked > 30, "the names are read: {names_checked}");
    assert!(
        wrong.is_empty(),
        "docs/architecture.md's \"where is X decided\" table is out of date:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_cell_names_files_beside_each_other_and_the_names_after_them() {
    assert_eq!(
        named_in(
            "`a/src/x.rs` (`T::f`, `g`), from `y.rs` (with `b/src/z.rs`, `w/mod.rs`); `c/src/d.rs` (`h`: note; `K`)"
        ),
        [
            (
                "a/src/x.rs".to_owned(),
                vec!["T::f".to_owned(), "g".to_owned()]
            ),
            ("a/src/y.rs".to_owned(), vec![]),
            ("b/src/z.rs".to_owned(), vec![]),
            ("b/src/w/mod.rs".to_owned(), vec![]),
            (
                "c/src/d.rs".to_owned(),
                vec!["h".to_owned(), "K".to_owned()]
            ),
        ]
    );
    assert!(defines("pub fn assess(x: u8)", "assess"));
    assert!(!defines("pub fn assessment()", "assess"));
    assert!(!defines("let a = reassess();", "assess"));
}

/// The production sources of the workspace: every `.rs` under a crate's
/// `src/` but its unit-test files (`tests.rs`), with its `#[cfg(test)]`
/// modules left out.
fn production_sources(root: &Path) -> Vec<(std::path::PathBuf, String)> {
    let crates: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("src"))
        .filter(|src| src.is_dir() && !src.starts_with(root.join("testkit")))
        .collect();
    let mut found: Vec<(std::path::PathBuf, String)> = rust_files(crates)
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|name| name != "tests.rs"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, without_test_modules(&text))
        })
        .collect();
    found.sort();
    found
}

/// Every `.rs` file beneath `roots`.
fn rust_files(roots: Vec<std::path::PathBuf>) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = roots;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .filter_map(Result::ok)
                    .map(|entry| entry.path()),
            );
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
    found
}

/// `source` without its `#[cfg(test)] mod NAME { … }` blocks (braces in
/// strings, characters and comments are not counted).
fn without_test_modules(source: &str) -> String {
    let mut kept = String::new();
    let mut rest = source;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        // `pub(crate) mod tests` too: a test module other tests use.
        let trimmed = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|visibility| trimmed.strip_prefix(visibility))
            .unwrap_or(trimmed);
        let Some(open) = trimmed
            .strip_prefix("mod ")
            .and_then(|module| module.find(['{', ';']))
            .filter(|open| trimmed["mod ".len() + open..].starts_with('{'))
        else {
            kept.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        };
        kept.push_str(&rest[..at]);
        let body = &trimmed["mod ".len() + open..];
        rest = &body[block_length(body)..];
    }
    kept.push_str(rest);
    kept
}

/// The length of the block `text` starts with (at its `{`), to its `}`.
fn block_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut index) = (0usize, 0usize);
    while index < bytes.len() {
        match bytes[index] {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index += 2;
                while index + 1 < bytes.len() && !(bytes[index] == b'*' && bytes[index + 1] == b'/')
                {
                    index += 1;
                }
                index += 1;
            }
            b'"' => {
                // A raw string's hashes, if any, close it too.
                let hashes = bytes[..index]
                    .iter()
                    .rev()
                    .take_while(|byte| **byte == b'#')
                    .count();
                index += 1;
                while index < bytes.len() {
                    if bytes[index] == b'\\' && hashes == 0 {
                        index += 2;
                        continue;
                    }
                    if bytes[index] == b'"'
                        && bytes[index + 1..]
                            .iter()
                            .take(hashes)
                            .all(|byte| *byte == b'#')
                    {
                        index += hashes;
                        break;
                    }
                    index += 1;
                }
            }
            b'\'' if bytes.get(index + 2) == Some(&b'\'') => index += 2,
            b'\'' if bytes.get(index + 1) == Some(&b'\\') => {
                index += 2;
                while index < bytes.len() && bytes[index] != b'\'' {
                    index += 1;
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return index + 1;
                }
            }
            _ => {}
        }
        index += 1;
    }
    bytes.len()
}

/// The error types of every `Result<T, E>` written in `source` (`E` as
/// written, spaces removed).
fn result_errors(source: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("Result<") {
        let preceding = rest[..at].chars().next_back();
        rest = &rest[at + "Result<".len()..];
        // `SomethingResult<` is another type.
        if preceding.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let (mut depth, mut comma, mut end) = (0i32, None, None);
        for (index, character) in rest.char_indices() {
            match character {
                '<' | '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '>' if depth == 0 => {
                    end = Some(index);
                    break;
                }
                '>' => depth -= 1,
                ',' if depth == 0 => comma = Some(index),
                _ => {}
            }
        }
        if let (Some(comma), Some(end)) = (comma, end) {
            errors.push(rest[comma + 1..end].split_whitespace().collect());
        }
    }
    errors
}

/// Issue 54: errors are typed. A production `Result<_, String>` is a
/// sentence where a caller needed a reason it can match on (and the
/// count went from 67 to 0 and back to 12 within a week): none is written.
#[test]
fn no_production_code_returns_a_string_as_its_error() {
    let root = hearth_testkit::llama::workspace_root();
    let sources = production_sources(&root);
    // A name given to `String` is `String` (`type Invalid = String;`), and
    // so is a conversion's error (`type Error = String;`).
    let mut strings_by_name = vec!["String".to_owned(), "std::string::String".to_owned()];
    for (_, source) in &sources {
        strings_by_name.extend(string_aliases(source));
    }
    let mut offenders = Vec::new();
    for (path, source) in sources {
        let strings = result_errors(&source)
            .into_iter()
            .filter(|error| strings_by_name.contains(error))
            .count()
            + source
                .lines()
                .map(|line| line.split_whitespace().collect::<String>())
                .filter(|line| {
                    ["typeError=", "typeErr="].iter().any(|start| {
                        line.strip_prefix(start).is_some_and(|rest| {
                            strings_by_name
                                .iter()
                                .any(|name| rest == format!("{name};"))
                        })
                    })
                })
                .count();
        if strings > 0 {
            offenders.push(format!(
                "{} ({strings})",
                path.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "production code returning `Result<_, String>` (give it an error type of its own, with \
         thiserror): {offenders:#?}"
    );
}

#[test]
fn the_guard_leaves_out_test_modules_only() {
    let source = "fn a() -> Result<(), E> {}\n#[cfg(test)]\nmod tests {\n fn t() -> Result<(), String> \
                  { let s = \"}{\"; let c = '}'; // }\n }\n}\nfn b() -> Result<(), String> {}\n\
                  #[cfg(test)]\nfn helper() -> Result<(), String> {}\n#[cfg(test)]\nmod other;\n";
    let kept = without_test_modules(source);
    assert_eq!(result_errors(&kept), ["E", "String", "String"], "{kept}");
    assert!(kept.contains("mod other;") && !kept.contains("fn t()"));
}

/// The names `source` gives `String` (`type NAME = String;`).
fn string_aliases(source: &str) -> Vec<String> {
    source
        .lines()
        .map(|line| line.split_whitespace().collect::<String>())
        .filter_map(|line| {
            let rest = line.strip_prefix("pub").unwrap_or(&line).to_owned();
            let rest = rest.strip_prefix("(crate)").unwrap_or(&rest);
            let (name, target) = rest.strip_prefix("type")?.split_once('=')?;
            (["String;", "std::string::String;"].contains(&target)
                && !["Error", "Err"].contains(&name))
            .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn the_guard_reads_result_types_as_written() {
    let source = "fn a() -> Result<(), String> {}\nfn b() -> std::result::Result<Vec<(u8, String)>, \
                  Error> {}\nfn c() -> Result<HashMap<i64, String>, StoreError>\n\
                  fn d() -> io::Result<()>\nfn e() -> Result<Option<BTreeMap<u8, String>>, \n String>";
    assert_eq!(
        result_errors(source),
        ["String", "Error", "StoreError", "String"]
    );
    assert_eq!(
        string_aliases(
            "pub type Invalid = String;\ntype Name = std::string::String;\ntype Error = String;"
        ),
        ["Invalid", "Name"]
    );
}

/// Issue 54: a reader who meets `Coordinator` or `Gateway` should meet the
/// service's own type. The harness's and the hub's pictures of them are
/// named for what they are (`LabCoordinator`, `GatewayProcess`,
/// `CoordinatorReport`).
#[test]
fn a_services_main_type_has_its_name_to_itself() {
    let root = hearth_testkit::llama::workspace_root();
    let owners = [
        ("Coordinator", "coordinator/src/coordinator/mod.rs"),
        ("Gateway", "ai-gateway/src/gateway/mod.rs"),
        ("Messaging", "messaging-plugin/src/service.rs"),
    ];
    let mut sources = production_sources(&root);
    sources.extend(
        rust_files(vec![root.join("testkit/src")])
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path, text)
            }),
    );
    let mut twins = Vec::new();
    for (path, source) in &sources {
        let relative = path.strip_prefix(&root).unwrap();
        for line in source.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (name, owner) in owners {
                let declares = words.windows(2).any(|pair| {
                    ["struct", "enum", "type", "trait"].contains(&pair[0])
                        && pair[1].trim_end_matches(['{', ';', '<', '(']) == name
                });
                if declares && relative != Path::new(owner) {
                    twins.push(format!("{} declares {name}", relative.display()));
                }
            }
        }
    }
    assert!(
        twins.is_empty(),
        "a second type of a service's name: {twins:#?}"
    );
}

/// A source file's module inside its crate: `src/a/b.rs` and
/// `src/a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` the root (empty).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts
}

/// The module paths `source` names from its own crate: each path after
/// `crate::`, `super::` or `self::` (inside `use` groups too), as
/// absolute paths of names (`in_module`: the file's own module).
fn named_paths(source: &str, in_module: &[String]) -> Vec<Vec<String>> {
    fn identifier(text: &str) -> (&str, &str) {
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        text.split_at(end)
    }
    /// The paths at the start of `text` below `prefix`; the length of
    /// what follows them.
    fn paths(mut text: &str, prefix: Vec<String>, found: &mut Vec<Vec<String>>) -> usize {
        let mut path = prefix;
        loop {
            text = text.trim_start();
            if let Some(group) = text.strip_prefix('{') {
                let mut rest = group;
                loop {
                    let used = paths(rest, path.clone(), found);
                    rest = rest[rest.len() - used..].trim_start();
                    match rest.chars().next() {
                        Some(',') => rest = &rest[1..],
                        Some('}') => {
                            rest = &rest[1..];
                            break;
                        }
                        _ => break,
                    }
                    if rest.trim_start().starts_with('}') {
                        rest = &rest.trim_start()[1..];
                        break;
                    }
                }
                return rest.len();
            }
            let (name, rest) = identifier(text);
            if name.is_empty() {
                found.push(path);
                return text.len();
            }
            path.push(name.to_owned());
            match rest.strip_prefix("::") {
                Some(more) => text = more,
                None => {
                    found.push(path);
                    return rest.len();
                }
            }
        }
    }
    let mut found = Vec::new();
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut at = 0;
    while let Some(offset) = code[at..].find(['c', 's']) {
        at += offset;
        let before = code[..at].chars().next_back();
        let starts_word =
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let rest = &code[at..];
        let base: Option<(usize, Vec<String>)> = if !starts_word {
            None
        } else if rest.starts_with("crate::") {
            Some(("crate::".len(), Vec::new()))
        } else if rest.starts_with("super::") {
            let mut module = in_module.to_vec();
            let mut skip = 0;
            while code[at + skip..].starts_with("super::") {
                module.pop();
                skip += "super::".len();
            }
            Some((skip, module))
        } else if rest.starts_with("self::") {
            Some(("self::".len(), in_module.to_vec()))
        } else {
            None
        };
        match base {
            Some((skip, prefix)) => {
                paths(&code[at + skip..], prefix, &mut found);
                at += skip;
            }
            None => at += 1,
        }
    }
    found
}

/// The circles among the source files of each crate: files that name each
/// other's modules, directly or round a ring (the crate's root, whose
/// re-exports everything names, left out).
fn circles(root: &Path) -> BTreeSet<BTreeSet<String>> {
    let mut by_crate: BTreeMap<std::path::PathBuf, Vec<(std::path::PathBuf, String)>> =
        BTreeMap::new();
    for (path, text) in production_sources(root) {
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let src = root.join(relative.components().next().unwrap()).join("src");
        // A binary's own files (`main.rs`, `src/bin/`) are another crate.
        if path.starts_with(src.join("bin"))
            || (path == src.join("main.rs") && src.join("lib.rs").exists())
        {
            continue;
        }
        by_crate.entry(src).or_default().push((path, text));
    }
    let mut found = BTreeSet::new();
    for (src, files) in by_crate {
        let modules: BTreeMap<Vec<String>, usize> = files
            .iter()
            .enumerate()
            .map(|(index, (path, _))| (module_of(&src, path), index))
            .collect();
        let edges: Vec<BTreeSet<usize>> = files
            .iter()
            .map(|(path, text)| {
                let own = module_of(&src, path);
                named_paths(text, &own)
                    .into_iter()
                    .filter_map(|named| {
                        (1..=named.len())
                            .rev()
                            .find_map(|length| modules.get(&named[..length]))
                            .copied()
                    })
                    .filter(|target| modules.get(&own) != Some(target))
                    .collect()
            })
            .collect();
        // Tarjan's strongly connected components.
        struct Walk<'a> {
            edges: &'a [BTreeSet<usize>],
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            stack: Vec<usize>,
            on_stack: Vec<bool>,
            next: usize,
            components: Vec<Vec<usize>>,
        }
        fn visit(walk: &mut Walk<'_>, node: usize) {
            walk.index[node] = Some(walk.next);
            walk.low[node] = walk.next;
            walk.next += 1;
            walk.stack.push(node);
            walk.on_stack[node] = true;
            for &target in &walk.edges[node] {
                match walk.index[target] {
                    None => {
                        visit(walk, target);
                        walk.low[node] = walk.low[node].min(walk.low[target]);
                    }
                    Some(index) if walk.on_stack[target] => {
                        walk.low[node] = walk.low[node].min(index);
                    }
                    Some(_) => {}
                }
            }
            if Some(walk.low[node]) == walk.index[node] {
                let mut component = Vec::new();
                while let Some(top) = walk.stack.pop() {
                    walk.on_stack[top] = false;
                    component.push(top);
                    if top == node {
                        break;
                    }
                }
                walk.components.push(component);
            }
        }
        let mut walk = Walk {
            edges: &[],
            index: vec![None; files.len()],
            low: vec![0; files.len()],
            stack: Vec::new(),
            on_stack: vec![false; files.len()],
            next: 0,
            components: Vec::new(),
        };
        let roots: Vec<usize> = modules
            .iter()
            .filter(|(module, _)| !module.is_empty())
            .map(|(_, index)| *index)
            .collect();
        // The root is left out: no edge leads to it or from it.
        let root_index = modules.get(&Vec::new()).copied();
        let edges_without_root: Vec<BTreeSet<usize>> = edges
            .iter()
            .enumerate()
            .map(|(index, targets)| {
                if Some(index) == root_index {
                    BTreeSet::new()
                } else {
                    targets
                        .iter()
                        .copied()
                        .filter(|target| Some(*target) != root_index)
                        .collect()
                }
            })
            .collect();
        walk.edges = &edges_without_root;
        for node in roots {
            if walk.index[node].is_none() {
                visit(&mut walk, node);
            }
        }
        for component in walk.components.into_iter().filter(|c| c.len() > 1) {
            found.insert(
                component
                    .into_iter()
                    .map(|index| {
                        files[index]
                            .0
                            .strip_prefix(root)
                            .unwrap()
                            .display()
                            .to_string()
                    })
                    .collect(),
            );
        }
    }
    found
}

#[test]
fn no_crate_has_a_circle_among_its_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let found = circles(root);
    assert!(
        found.is_empty(),
        "circles among a crate's files (move the vocabulary they share down into a module of its own): {found:#?}"
    );
}

/// The gateway's doors: each translates its wire to the conversation use
/// case and back, on one floor; none calls another (what two share lives
/// below them, in `edge.rs` or the use case).
const GATEWAY_ADAPTERS: &[&str] = &[
    "openai_http",
    "anthropic_http",
    "ollama_http",
    "sealed",
    "claw",
];

#[test]
fn no_gateway_adapter_calls_another() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let src = root.join("ai-gateway/src");
    let mut calls = Vec::new();
    for (path, text) in production_sources(root) {
        if !path.starts_with(&src) {
            continue;
        }
        let own = module_of(&src, &path);
        let Some(adapter) = own
            .first()
            .filter(|first| GATEWAY_ADAPTERS.contains(&first.as_str()))
        else {
            continue;
        };
        for named in named_paths(&text, &own) {
            if let Some(other) = named.first()
                && other != adapter
                && GATEWAY_ADAPTERS.contains(&other.as_str())
            {
                calls.push(format!("{} names {}", path.display(), named.join("::")));
            }
        }
    }
    assert!(
        calls.is_empty(),
        "a gateway adapter calls another: {calls:#?}"
    );
}

#[test]
fn paths_are_read_from_use_groups_and_relative_names() {
    let own = vec!["gateway".to_owned(), "ask".to_owned()];
    let named = named_paths(
        "use crate::{a::b::{C, d}, e};\nuse super::turns::Route;\nlet x = self::f::g();\n// crate::comment\nlet y = not_crate::z;",
        &own,
    );
    let text: BTreeSet<String> = named.iter().map(|path| path.join("::")).collect();
    for expected in [
        "a::b::C",
        "a::b::d",
        "e",
        "gateway::turns::Route",
        "gateway::ask::f::g",
    ] {
        assert!(text.contains(expected), "{expected} in {text:?}");
    }
    assert!(
        !text
            .iter()
            .any(|path| path.contains("comment") || path == "z"),
        "{text:?}"
    );
}
