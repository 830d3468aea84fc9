//! The hub as an appliance, for its tests and benchmark: the Debian
//! packages built from this tree, `hearth setup` in a [`Machine`], and a
//! phone whose official Tailscale client reaches the household's chat
//! through the mesh.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::lab::{Host, Lab, TailscaleNode, build_lock};
use crate::llama::workspace_root;
use crate::machine::Machine;
use crate::wait_until;

/// The phone's SOCKS5 proxy (its client runs in userspace).
pub const SOCKS: &str = "127.0.0.1:1055";
/// What the phone asks the assistant.
pub const QUESTION: &str = "What should we cook tonight?";

/// The status and body of curl's `output` (run with `-w "\n%{http_code}"`);
/// status 0 with curl's own failure when nothing answered.
fn answered(output: &std::process::Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let status = status.trim().parse().unwrap_or(0);
    if status == 0 {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return (0, format!("curl: {} {stderr}", output.status));
    }
    (status, body.to_owned())
}

/// Builds the seven packages at `version` into `out`; their paths.
/// `quick`: compressed with zstd (the tests'), not xz (what is shipped).
pub fn build_debs(version: &str, out: &Path, quick: bool) -> Vec<PathBuf> {
    let _guard = build_lock();
    let mut command = Command::new(workspace_root().join("packaging/build-debs.sh"));
    command
        .args(["--version", version, "--out"])
        .arg(out)
        .current_dir(workspace_root());
    if quick {
        command.env("HEARTH_DEB_COMPRESSION", "zstd");
    }
    // What `cargo test` set for this package would make some build
    // scripts rerun in the release build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name == "CARGO_CRATE_NAME"
        {
            command.env_remove(name);
        }
    }
    let built = command.output().expect("build-debs.sh runs");
    assert!(
        built.status.success(),
        "build-debs.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    String::from_utf8_lossy(&built.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// `hearth setup` with `args`, never asking; its output.
pub fn setup(machine: &Machine, args: &[&str]) -> std::process::Output {
    let mut all = vec!["hearth", "setup", "--non-interactive"];
    all.extend_from_slice(args);
    machine.exec(&all)
}

/// What `hearth setup` printed that a member needs.
pub struct Printed {
    /// The first member's join key.
    pub key: String,
    /// The household's chat at its service's address
    /// (`http://100.100.0.x:18790`, printed in parentheses).
    pub chat: String,
    /// The household's chat by the name setup prints
    /// (`http://chat.<tailnet>:18790`), which members use.
    pub chat_name: String,
}

impl Printed {
    /// Reads setup's output.
    pub fn read(printed: &str) -> Printed {
        let key = printed_key(printed);
        let url = |starts: &dyn Fn(&str) -> bool| {
            printed
                .split_whitespace()
                .map(|word| word.trim_matches(['(', ')']))
                .find(|word| starts(word))
                .unwrap_or_else(|| panic!("no web chat address: {printed}"))
                .trim_end_matches('/')
                .to_owned()
        };
        let chat = url(&|word| word.starts_with("http://100."));
        let chat_name = url(&|word| word.starts_with("http://chat."));
        Printed {
            key,
            chat,
            chat_name,
        }
    }
}

/// A phone's official client in `host`, in userspace with its SOCKS5
/// proxy at [`SOCKS`], joined at `login` with `key`.
pub fn join_phone(
    lab: &mut Lab,
    host: &Host,
    client: &Path,
    login: &str,
    key: &str,
) -> TailscaleNode {
    let node = start_phone(lab, host, client);
    let joined = node.up_at(lab, login, key, &[]);
    assert!(
        joined.status.success(),
        "tailscale up: {}{}",
        String::from_utf8_lossy(&joined.stdout),
        String::from_utf8_lossy(&joined.stderr)
    );
    node
}

/// A phone's official client in `host`, in userspace with its SOCKS5
/// proxy at [`SOCKS`], not joined yet.
pub fn start_phone(lab: &mut Lab, host: &Host, client: &Path) -> TailscaleNode {
    lab.start_tailscaled_with(
        host,
        None,
        client,
        &[&format!("--socks5-server={SOCKS}")],
        &[],
    )
}

/// The join key in what `hearth setup` or `hearth members add` printed.
pub fn printed_key(printed: &str) -> String {
    printed
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("hearth-join-v1:"))
        .unwrap_or_else(|| panic!("no join key printed: {printed}"))
        .to_owned()
}

/// Where a test reads what the hub's services logged.
pub trait HubLogs {
    /// The last lines the container of the hub's pod named `name`
    /// (`hearth-gateway`, `hearth-messaging`) logged.
    fn container_logs(&self, name: &str) -> String;
    /// What every service of the hub logged lately.
    fn service_logs(&self) -> String;
}

impl HubLogs for Machine {
    fn container_logs(&self, name: &str) -> String {
        let output = self.exec(&["podman", "logs", "--tail", "30", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    fn service_logs(&self) -> String {
        self.journal("hearth*")
    }
}

/// The phone's view of the household, through its official client.
pub struct Phone<'a> {
    /// The lab.
    pub lab: &'a Lab,
    /// The hub's machine (a Debian one, or Podman alone), for its logs.
    pub machine: &'a dyn HubLogs,
    /// The phone's host.
    pub host: Host,
    /// Its official client.
    pub node: TailscaleNode,
    /// The household's chat (`http://chat.<tailnet>:18790` as setup
    /// prints it, or an address), reached through the phone's proxy,
    /// which resolves the name.
    pub chat: String,
}

impl Phone<'_> {
    /// `curl` through the client's SOCKS5 proxy; status and body.
    /// `method path` (JSON `body`) through the client's SOCKS5 proxy: the
    /// status (0: curl could not, with its error as the text) and the body.
    pub fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut command = self.lab.command(&self.host, "curl");
        command.args([
            "-sS",
            "-m",
            "20",
            // The proxy resolves names (the service names setup prints).
            "--socks5-hostname",
            SOCKS,
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(body) = body {
            command.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body.to_string(),
            ]);
        }
        command.arg(format!("{}{path}", self.chat));
        answered(&command.output().expect("curl runs"))
    }

    /// `method path` with the file `body` of `content_type`: the status
    /// and the answer's text.
    pub fn upload(
        &self,
        method: &str,
        path: &str,
        body: &Path,
        content_type: &str,
    ) -> (u16, String) {
        let output = self
            .lab
            .command(&self.host, "curl")
            .args(["-sS", "-m", "60", "--socks5-hostname", SOCKS, "-X", method])
            .args(["-w", "\n%{http_code}", "-H"])
            .arg(format!("Content-Type: {content_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("{}{path}", self.chat))
            .output()
            .expect("curl runs");
        answered(&output)
    }

    /// `method path` answered with a success: its JSON.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, text) = self.http(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}\nmessaging: {}\ngateway: {}",
            self.logs("hearth-messaging"),
            self.logs("hearth-gateway")
        );
        serde_json::from_str(&text).expect("the chat answers JSON")
    }

    /// The last lines a container of the hub's pod logged.
    fn logs(&self, container: &str) -> String {
        self.machine.container_logs(container)
    }

    /// Posts a message to the household room, then searches the chat
    /// with a question sharing no word with it, as the hub's search model
    /// is ready to embed it: `Err` with the last first result when the
    /// message did not come first within a minute.
    pub fn chat_finds_by_meaning(&self) -> Result<(), String> {
        self.json(
            "POST",
            "/api/rooms/household/messages",
            Some(&serde_json::json!({"body": "강아지 사료가 다 떨어졌어요"})),
        );
        let search = format!("/api/search?q={}", query_value("반려견 밥 남아 있어?"));
        let mut first = String::new();
        let found = wait_until(Duration::from_secs(60), || {
            first = self.json("GET", &search, None)["messages"][0]["body"].to_string();
            first.contains("강아지 사료")
        });
        found.map(|_| ()).ok_or(first)
    }

    /// The DM with the assistant, opened.
    pub fn assistant_room(&self) -> String {
        let opened = self.json(
            "POST",
            "/api/dm",
            Some(&serde_json::json!({"user": "assistant"})),
        );
        opened["room"].as_str().expect("a room").to_owned()
    }

    /// The room's history, oldest first.
    pub fn messages(&self, room: &str) -> Vec<Value> {
        let history = self.json("GET", &history_path(room), None);
        history["messages"].as_array().cloned().unwrap_or_default()
    }

    /// [`Phone::messages`], or `None` when the phone could not reach the
    /// chat at all (its client moving the path to the hub, relay to
    /// direct); an answer of the service's that is no success fails.
    fn messages_if_reached(&self, room: &str) -> Option<Vec<Value>> {
        let (status, text) = self.http("GET", &history_path(room), None);
        if status == 0 {
            return None;
        }
        assert!((200..300).contains(&status), "the history: {status} {text}");
        let history: Value = serde_json::from_str(&text).expect("the chat answers JSON");
        Some(history["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Says `text` in `room` and waits for the assistant's finished reply.
    pub fn ask(&self, room: &str, text: &str) -> String {
        let before = self
            .messages(room)
            .iter()
            .filter(|message| message["sender"] == "assistant")
            .count();
        self.json(
            "POST",
            &format!("/api/rooms/{}/messages", encode(room)),
            Some(&serde_json::json!({"body": text})),
        );
        let mut answer = String::new();
        let answered = wait_until(Duration::from_secs(180), || {
            // A look that could not be made is looked again.
            let Some(history) = self.messages_if_reached(room) else {
                return false;
            };
            let replies: Vec<Value> = history
                .into_iter()
                .filter(|message| message["sender"] == "assistant")
                .collect();
            match replies.get(before) {
                Some(reply) if reply["status"] == "done" => {
                    answer = reply["body"].as_str().unwrap_or_default().to_owned();
                    true
                }
                _ => false,
            }
        });
        assert!(
            answered.is_some(),
            "no answer to {text:?}: {:?}\n{}",
            self.messages(room),
            self.machine.service_logs()
        );
        answer
    }
}

/// The path of `room`'s recent history.
fn history_path(room: &str) -> String {
    format!("/api/rooms/{}/messages?limit=200", encode(room))
}

/// `text` as a URL's query value (every byte but the unreserved ones
/// percent-encoded).
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A room's id as a path segment (`dm:ada,assistant`).
pub fn encode(room: &str) -> String {
    room.replace(':', "%3A").replace(',', "%2C")
}

/// `hearth status --output json`, required all well. The machine's disk is
/// this machine's: when it is really as full as `hearth status` warns of
/// (under 10 % or 1 GiB free), that one warning is expected and the rest
/// must be well.
pub fn all_well(machine: &Machine) -> Value {
    well_reported(
        || machine.exec(&["hearth", "status", "--output", "json"]),
        || {
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&machine.exec(&["hearth", "status"]).stdout),
                machine.journal("hearth*")
            )
        },
    )
}

/// Waits (two minutes at most) for the report `status` prints (`hearth
/// status --output json`, in whichever form the hub runs) to be all well,
/// or to speak only of this machine's own full disk; the report. On
/// failure, says what `diagnose` gathers.
pub fn well_reported(
    status: impl Fn() -> std::process::Output,
    diagnose: impl FnOnce() -> String,
) -> Value {
    let disk_low = host_disk_low();
    let mut report = Value::Null;
    let well = wait_until(Duration::from_secs(120), || {
        let output = status();
        report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let only_the_disk = disk_low
            && report["problems"].as_array().is_some_and(|problems| {
                problems.iter().all(|problem| {
                    problem
                        .as_str()
                        .is_some_and(|text| text.starts_with("the disk holding "))
                })
            });
        (output.status.success() && report["ok"] == true) || only_the_disk
    });
    assert!(
        well.is_some(),
        "hearth status is not all well: {report:#}\n{}",
        diagnose()
    );
    report
}

/// Waits for the phone's official client to be in the mesh and to reach
/// the household's chat through it, as ada.
pub fn running(phone: &Phone<'_>) {
    running_as(phone, "ada");
}

/// The phone is in the mesh and the household's chat knows it as `member`'s.
pub fn running_as(phone: &Phone<'_>, member: &str) {
    let up = wait_until(Duration::from_secs(90), || {
        phone.node.backend_state(phone.lab) == "Running"
    });
    assert!(
        up.is_some(),
        "the phone is not in the mesh: {}",
        phone.node.daemon.log_text()
    );
    let mut last = String::new();
    let reached = wait_until(Duration::from_secs(120), || {
        let (status, text) = phone.http("GET", "/api/me", None);
        last = text;
        status == 200
    });
    assert!(
        reached.is_some(),
        "the phone does not reach the household's chat: {last}\n{}",
        phone.node.daemon.log_text()
    );
    let me: Value = serde_json::from_str(&last).expect("/api/me answers JSON");
    assert_eq!(me["user"], member, "{me}");
}

/// Whether this machine's disk under `/var/lib` is as full as `hearth
/// status` warns of: under 10 % or 1 GiB free.
fn host_disk_low() -> bool {
    let output = std::process::Command::new("df")
        .args(["-B1", "--output=avail,size", "/var/lib"])
        .output()
        .expect("df runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    let [free, total] = numbers[..] else {
        panic!("df's answer: {text}");
    };
    free < 1 << 30 || free * 100 / total.max(1) < 10
}
