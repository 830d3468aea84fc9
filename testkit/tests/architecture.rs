//! docs/architecture.md's crate table against the workspace as `cargo
//! metadata` reads it: every crate is in the table, and each row's "depends
//! on" is exactly that crate's normal dependencies among the workspace's
//! crates. A dependency added without the table, or the table left behind,
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
