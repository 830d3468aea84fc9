//! Hearth's gateway and the real OpenClaw gateway, side by side, each
//! serving OpenClaw's own clients: 20 Control UI sessions (tabs of one
//! headless Chromium, the UI from OpenClaw's package) and one `openclaw tui`
//! in a terminal, all connected with the gateway's token on loopback.
//! Measured in the same run: each gateway's memory (resident, its whole
//! process tree) idle and with the clients connected, and its CPU time to
//! take the clients in and over a minute of them staying connected.
//!
//!   cargo bench -p hearth-gateway --bench clients
//!
//! Needs OpenClaw (scripts/openclaw.sh), llama-server and the tiny model,
//! Chromium with chromedriver, and tmux.
// A benchmark: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::bench::{Tree, tree_cpu_seconds, tree_rss_mib};
use hearth_testkit::llama::{LlamaServer, free_port, tiny_model};
use hearth_testkit::openclaw::OpenClaw;
use hearth_testkit::terminal::Terminal;
use hearth_testkit::webdriver::Session;
use serde_json::json;

const SESSIONS: usize = 20;
const TOKEN: &str = "bench-clients-token-0123456789abcdef";
const COMPOSER: &str = "return !!document.querySelector(\"textarea[aria-label='Chat composer']\")";

fn wait(limit: Duration, mut done: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answers(url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", url])
        .status()
        .is_ok_and(|status| status.success())
}

/// `openclaw tui` for the gateway on `port`, in a terminal of the bench's
/// own, once it says it is connected.
fn start_tui(openclaw: &OpenClaw, dir: &Path, port: u16) -> Terminal {
    let home = dir.join(format!("tui-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("openclaw.json");
    std::fs::write(
        &config,
        json!({"gateway": {"mode": "remote", "remote": {"url": format!("ws://127.0.0.1:{port}"), "token": TOKEN}},
               "update": {"checkOnStart": false}})
        .to_string(),
    )
    .unwrap();
    let mut command = openclaw.command(&home);
    command.env("OPENCLAW_CONFIG_PATH", &config).arg("tui");
    let terminal = Terminal::start(&home.join("terminal"), &command);
    terminal.wait_for("connected |", Duration::from_secs(60));
    terminal
}

/// What one gateway cost.
struct Cost {
    idle_mib: f64,
    connected_mib: f64,
    connect_cpu: f64,
    minute_cpu: f64,
}

/// Connects the 20 Control UI sessions and the TUI to the gateway `pid`
/// on `port`; what it cost.
fn measure(openclaw: &OpenClaw, driver_port: u16, dir: &Path, pid: u32, port: u16) -> Cost {
    std::thread::sleep(Duration::from_secs(5));
    let idle_mib = tree_rss_mib(pid);
    let cpu_before = tree_cpu_seconds(pid);
    let browser = Session::chromium(
        driver_port,
        &dir.join(format!("chromium-{port}")),
        1280,
        900,
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/#token={TOKEN}");
    for index in 0..SESSIONS {
        if index > 0 {
            browser.new_tab().unwrap();
        }
        browser.open(&url).unwrap();
        browser
            .wait_for(COMPOSER, Duration::from_secs(120))
            .unwrap();
    }
    let terminal = start_tui(openclaw, dir, port);
    let connect_cpu = tree_cpu_seconds(pid) - cpu_before;
    std::thread::sleep(Duration::from_secs(10));
    let cpu_start = tree_cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(60));
    let minute_cpu = tree_cpu_seconds(pid) - cpu_start;
    let connected_mib = tree_rss_mib(pid);
    assert!(
        terminal.screen().contains("connected"),
        "the TUI stayed connected"
    );
    drop(terminal);
    drop(browser);
    Cost {
        idle_mib,
        connected_mib,
        connect_cpu,
        minute_cpu,
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let Some(openclaw) = hearth_testkit::openclaw::install() else {
        println!("OpenClaw could not be installed (scripts/openclaw.sh): skipped");
        return;
    };
    let model = tiny_model().expect("the tiny model (scripts/make-tiny-model.py)");
    let llama = LlamaServer::start_model(
        &model,
        &[
            "-c",
            "32768",
            "--override-kv",
            "llama.context_length=int:32768",
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    std::fs::write(
        workspace.join("SOUL.md"),
        "You are the household's helpful assistant.",
    )
    .unwrap();
    let (hearth_port, claw_port, driver_port) = (free_port(), free_port(), free_port());
    let config = |port: u16| {
        json!({
            "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN}},
            "models": {"catalogRefresh": {"enabled": false}, "providers": {"local": {"baseUrl": llama.base_url, "api": "openai-completions",
                       "apiKey": "none", "models": [{"id": "tiny", "name": "tiny", "contextWindow": 32768, "maxTokens": 16}]}}},
            "agents": {"defaults": {"model": {"primary": "local/tiny"}, "workspace": workspace}},
            "update": {"checkOnStart": false},
        })
    };
    let mut hearth_config = config(hearth_port);
    hearth_config["hearth"] = json!({
        "controlUi": openclaw.package().join("dist/control-ui"),
        "limits": {"requestsPerMinutePerDevice": 100_000, "requestsPerMinutePerIp": 100_000},
    });
    let hearth_file = dir.path().join("hearth.json");
    std::fs::write(&hearth_file, hearth_config.to_string()).unwrap();
    let claw_file = dir.path().join("openclaw.json");
    std::fs::write(&claw_file, config(claw_port).to_string()).unwrap();

    let hearth = Tree(
        Command::new(env!("CARGO_BIN_EXE_hearth-gateway"))
            .args(["serve", "--config"])
            .arg(&hearth_file)
            .arg("--data-dir")
            .arg(dir.path().join("hearth-data"))
            .env("HEARTH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait(
        Duration::from_secs(30),
        || answers(&format!("http://127.0.0.1:{hearth_port}/readyz")),
        "Hearth starting",
    );
    let claw_home = dir.path().join("openclaw-home");
    std::fs::create_dir(&claw_home).unwrap();
    let claw = Tree(
        openclaw
            .command(&claw_home)
            .args(["gateway", "run"])
            .env("OPENCLAW_CONFIG_PATH", &claw_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait(
        Duration::from_secs(120),
        || answers(&format!("http://127.0.0.1:{claw_port}/readyz")),
        "OpenClaw starting",
    );
    let browser_home = dir.path().join("browser-home");
    let driver = Tree(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .arg("--allowed-ips=127.0.0.1")
            .env("HOME", &browser_home)
            .env("XDG_CONFIG_HOME", browser_home.join("config"))
            .env("XDG_CACHE_HOME", browser_home.join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait(
        Duration::from_secs(15),
        || hearth_testkit::webdriver::ready(driver_port),
        "chromedriver starting",
    );

    let on_hearth = measure(&openclaw, driver_port, dir.path(), hearth.id(), hearth_port);
    let on_claw = measure(&openclaw, driver_port, dir.path(), claw.id(), claw_port);
    println!("| {SESSIONS} Control UI sessions + 1 TUI | Hearth | OpenClaw | OpenClaw / Hearth |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, hearth: f64, claw: f64, unit: &str| {
        println!(
            "| {name} | {hearth:.1} {unit} | {claw:.1} {unit} | {:.1}x |",
            claw / hearth.max(0.001)
        );
    };
    row("memory, idle", on_hearth.idle_mib, on_claw.idle_mib, "MiB");
    row(
        "memory, clients connected",
        on_hearth.connected_mib,
        on_claw.connected_mib,
        "MiB",
    );
    row(
        "CPU to take the clients in",
        on_hearth.connect_cpu,
        on_claw.connect_cpu,
        "s",
    );
    row(
        "CPU over a minute connected",
        on_hearth.minute_cpu,
        on_claw.minute_cpu,
        "s",
    );
    drop(driver);
    drop(claw);
    drop(hearth);
}
