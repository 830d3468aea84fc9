//! OpenClaw's own CLI (npm's `openclaw`, Node 24) on a member's device,
//! against Hearth's gateway on the hub, between network namespaces: a real
//! coordinator, agents and userspace WireGuard, llama-server, the messaging
//! service. The device waits until the admin approves it with Hearth's CLI,
//! then `openclaw health`, `openclaw agent` (the member's assistant
//! answers) and `openclaw cron add/list/run/rm` (the reminder arrives in the
//! member's DM in Hearth's chat) work; the paired key copied to another
//! member's device is refused.
// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use hearth_testkit::household::{Household, Options, SECOND};
use hearth_testkit::lab::{Host, binary, wait_until};
use hearth_testkit::openclaw::{self, OpenClaw};
use hearth_testkit::terminal::Terminal;
use hearth_testkit::webdriver::{Session, start_driver};
use serde_json::json;

/// A member's device running OpenClaw's CLI, configured for the hub.
struct Device<'a> {
    openclaw: &'a OpenClaw,
    host: Host,
    home: PathBuf,
    config: PathBuf,
}

impl Device<'_> {
    fn new<'a>(
        openclaw: &'a OpenClaw,
        household: &Household,
        host: &Host,
        home: &Path,
    ) -> Device<'a> {
        // The mesh says who the device is: OpenClaw's CLI is told the
        // gateway needs no shared secret (its own `auth.mode: "none"`).
        let gateway = json!({"mode": "remote", "remote": {"url": format!("ws://{}:18789", household.hub_mesh)},
                             "auth": {"mode": "none"}});
        Device::for_gateway(openclaw, host, home, gateway)
    }

    /// A device whose `openclaw.json` has this `gateway` section.
    fn for_gateway<'a>(
        openclaw: &'a OpenClaw,
        host: &Host,
        home: &Path,
        gateway: serde_json::Value,
    ) -> Device<'a> {
        std::fs::create_dir_all(home).unwrap();
        let config = home.join("openclaw.json");
        std::fs::write(
            &config,
            json!({"gateway": gateway, "update": {"checkOnStart": false}}).to_string(),
        )
        .unwrap();
        Device {
            openclaw,
            host: host.clone(),
            home: home.to_owned(),
            config,
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.openclaw.command_in(&self.home, &self.host.namespace);
        command.env("OPENCLAW_CONFIG_PATH", &self.config).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `openclaw ARGS`, which must succeed: what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "openclaw {args:?} failed: {text}");
        text
    }

    /// `openclaw ARGS`, which must fail: what it printed.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !output.status.success(),
            "openclaw {args:?} was let through: {text}"
        );
        text
    }
}

/// `hearth-gateway ARGS` on the hub, as its admin (the gateway's token file).
fn admin(household: &Household, args: &[&str]) -> String {
    let token = household.lab.dir.path().join("gateway-data/gateway.token");
    let mut command = household
        .lab
        .command(&household.hub, binary("hearth-gateway"));
    command
        .args(args)
        .args(["--url", "http://127.0.0.1:18789", "--token-file"])
        .arg(&token);
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "hearth-gateway {args:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// OpenClaw's CLI on the hub as its admin: `gateway.remote.token` is the
/// gateway's token (read from its file), as the admin configures it.
fn hub_admin<'a>(openclaw: &'a OpenClaw, household: &Household, home: &Path) -> Device<'a> {
    let token =
        std::fs::read_to_string(household.lab.dir.path().join("gateway-data/gateway.token"))
            .unwrap();
    let gateway =
        json!({"mode": "remote", "remote": {"url": "ws://127.0.0.1:18789", "token": token.trim()}});
    Device::for_gateway(openclaw, &household.hub, home, gateway)
}

/// The request id in OpenClaw's "device pairing required (requestId: …)".
fn request_id(text: &str) -> String {
    let rest = text
        .split("requestId: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no pairing request in: {text}"));
    rest.chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect()
}

fn assistant_lines(household: &Household, host: &Host) -> Vec<String> {
    household
        .assistant_dm(host)
        .lines()
        .filter(|line| line.contains("] assistant: "))
        .map(str::to_owned)
        .collect()
}

/// `find` polled until it finds something, for at most `limit`.
fn poll<T>(limit: std::time::Duration, mut find: impl FnMut() -> Option<T>) -> Option<T> {
    let mut found = None;
    wait_until(limit, || {
        found = find();
        found.is_some()
    });
    found
}

#[test]
fn openclaws_cli_on_a_members_device_pairs_through_hearth_and_reaches_her_assistant() {
    let Some(openclaw) = openclaw::install() else {
        return;
    };
    let Some(mut household) = Household::start(Options {
        outsiders: false,
        gateway_on_mesh: true,
        control_ui: Some(openclaw.package().join("dist/control-ui")),
        ..Options::default()
    }) else {
        return;
    };
    household.start_messaging();
    // In the lab's folder, which goes after its processes have stopped (a
    // temporary folder of its own went first, while OpenClaw's processes
    // still wrote into it, and was left behind).
    let homes = household.lab.dir.path().join("homes");
    let laptop = household.laptop.clone();
    let ada = Device::new(&openclaw, &household, &laptop, &homes.join("ada"));

    // A new device waits for the admin; nothing is served to it meanwhile.
    let waiting = ada.refused(&["cron", "list"]);
    assert!(waiting.contains("device pairing required"), "{waiting}");
    let request = request_id(&waiting);
    let listed = admin(&household, &["devices", "list"]);
    let line = listed
        .lines()
        .find(|line| line.contains(&request))
        .unwrap_or_else(|| panic!("the request is not listed: {listed}"));
    assert!(line.contains("ada") && line.contains("cli"), "{line}");
    let approved = admin(&household, &["devices", "approve", &request]);
    assert!(approved.contains("acts as ada"), "{approved}");

    let health = ada.ok(&["health"]);
    assert!(health.contains("Agents: main (default)"), "{health}");
    // The models her grants allow, from the gateway's published catalog.
    let models = ada.ok(&["models", "list"]);
    assert!(models.contains("local/tiny"), "{models}");

    // The member's assistant answers: an everyday request is carried out
    // and is in her memory on Hearth's own chat too.
    let said = ada.ok(&[
        "agent",
        "--message",
        "Remember that the wifi password is tulip-42.",
    ]);
    assert!(said.contains("I'll remember that."), "{said}");
    let memory = household.cli_ok(&laptop, &["memory"]);
    assert!(memory.contains("tulip-42"), "{memory}");
    let said = ada.ok(&["agent", "--message", "What should we cook tonight?"]);
    assert!(!said.trim().is_empty(), "no answer");

    // Automations are her reminders: added, listed, run now (it arrives in
    // her DM in Hearth's chat), removed.
    let added = ada.ok(&[
        "cron",
        "add",
        "--name",
        "tea",
        "--at",
        "20m",
        "--system-event",
        "Put the kettle on",
    ]);
    let job: serde_json::Value = serde_json::from_str(&added[added.find('{').unwrap()..]).unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let listed = ada.ok(&["cron", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("Put the kettle on"),
        "{listed}"
    );
    let reminders = household.cli_ok(&laptop, &["reminders"]);
    assert!(reminders.contains("Put the kettle on"), "{reminders}");
    ada.ok(&["cron", "run", &id]);
    let arrived = wait_until(30 * SECOND, || {
        assistant_lines(&household, &laptop)
            .iter()
            .any(|line| line.contains("Put the kettle on"))
    });
    assert!(
        arrived.is_some(),
        "the reminder did not arrive in ada's DM; messaging log:\n{}",
        household.messaging_log()
    );
    let added = ada.ok(&[
        "cron",
        "add",
        "--name",
        "bins",
        "--cron",
        "0 7 * * 2",
        "--system-event",
        "Bins out",
    ]);
    let job: serde_json::Value = serde_json::from_str(&added[added.find('{').unwrap()..]).unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let removed = ada.ok(&["cron", "rm", &id]);
    assert!(removed.contains("\"removed\": true"), "{removed}");
    let listed = ada.ok(&["cron", "list"]);
    assert!(!listed.contains("Bins out"), "{listed}");

    // Ada's paired key copied to ben's phone is not ada there.
    let phone = household.phone.clone();
    let copied = homes.join("copied");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(homes.join("ada"))
        .arg(&copied)
        .status()
        .unwrap();
    assert!(status.success());
    let thief = Device::new(&openclaw, &household, &phone, &copied);
    let refused = thief.refused(&["cron", "list"]);
    assert!(refused.contains("paired to ada"), "{refused}");

    // `openclaw tui` on the same device, driven in a terminal: a question
    // answered on screen.
    let terminal = Terminal::start(&homes.join("tui"), &ada.command(&["tui"]));
    terminal.wait_for("connected", 60 * SECOND);
    terminal.keys(&["Remember that the bike lock code is 4711.", "Enter"]);
    // The assistant's answer shows below the question.
    let screen = terminal.wait_until(60 * SECOND, |screen| {
        screen
            .rfind("bike lock code is 4711")
            .is_some_and(|at| screen[at..].contains("I'll remember that."))
    });
    assert!(!screen.contains("not connected"), "{screen}");
    let remembered = wait_until(60 * SECOND, || {
        household.cli_ok(&laptop, &["memory"]).contains("4711")
    });
    assert!(
        remembered.is_some(),
        "the TUI's request was not carried out:\n{}",
        terminal.screen()
    );
    drop(terminal);

    // The Control UI, served by Hearth from OpenClaw's package, in Chromium
    // on ada's laptop. Its device identity needs a secure context (as with
    // OpenClaw: HTTPS or this host): the hub's address is taken as one.
    let origin = format!("http://{}:18789", household.hub_mesh);
    let driver = start_driver(&mut household.lab, &laptop);
    let browser = Session::chromium_with(
        driver.forward.port,
        &homes.join("chromium"),
        1280,
        900,
        &[&format!(
            "--unsafely-treat-insecure-origin-as-secure={origin}"
        )],
    )
    .unwrap();
    browser.open(&format!("{origin}/")).unwrap();
    // The browser is a new device: it waits for the admin too.
    let pending = poll(60 * SECOND, || {
        admin(&household, &["devices", "list"])
            .lines()
            .find(|line| line.contains("openclaw-control-ui"))
            .map(|line| line.split_whitespace().next().unwrap_or("").to_owned())
    });
    let request = pending.unwrap_or_else(|| panic!("the browser asked for no pairing"));
    // As the Control UI tells the admin: `openclaw devices approve` on the
    // gateway's host, with OpenClaw's own CLI.
    let hub = hub_admin(&openclaw, &household, &homes.join("hub-admin"));
    let listed = hub.ok(&["devices", "list", "--json"]);
    let listed: serde_json::Value =
        serde_json::from_str(&listed[listed.find('{').unwrap()..]).unwrap();
    let waiting = listed["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pending| pending["requestId"] == request.as_str())
        .unwrap_or_else(|| panic!("openclaw devices list does not show {request}: {listed}"));
    assert_eq!(waiting["clientId"], "openclaw-control-ui", "{waiting}");
    assert_eq!(waiting["member"], "ada", "{waiting}");
    let approved = hub.ok(&["devices", "approve", &request]);
    assert!(approved.contains("Approved"), "{approved}");
    browser.open(&format!("{origin}/")).unwrap();
    let composer = "textarea[aria-label='Chat composer']";
    browser
        .wait_for(
            &format!("return document.querySelector(\"{composer}\")"),
            60 * SECOND,
        )
        .unwrap();
    browser
        .type_into(composer, "Remember that the gate code is 2580.\u{E007}")
        .unwrap();
    browser
        .wait_for("return document.body.innerText.includes('gate code is 2580') && document.body.innerText.split(\"I'll remember that.\").length > 3", 60 * SECOND)
        .unwrap();
    let memory = household.cli_ok(&laptop, &["memory"]);
    assert!(memory.contains("2580"), "{memory}");
    // After a reload the history is still there, and the sessions list
    // has the one ada's CLI opened.
    ada.ok(&[
        "agent",
        "--session-key",
        "agent:main:groceries",
        "--message",
        "Remember that we need oat milk.",
    ]);
    browser.open(&format!("{origin}/")).unwrap();
    browser
        .wait_for(
            "return document.body.innerText.includes('gate code is 2580')",
            60 * SECOND,
        )
        .unwrap();
    browser
        .wait_for(
            "return document.body.innerText.includes('groceries')",
            60 * SECOND,
        )
        .unwrap();

    drop(browser);
    drop(driver);

    // The same commands against the real OpenClaw gateway on the hub show
    // the same outcomes.
    let hearth = homes.join("same-hearth");
    let hearth_device = Device::new(&openclaw, &household, &laptop, &hearth);
    let on_hearth = outcomes(&hearth_device, |request| {
        let approved = hub.ok(&["devices", "approve", request]);
        assert!(approved.contains("Approved"), "{approved}");
    });
    let claw = RealOpenClaw::start(&openclaw, &mut household, &homes);
    let claw_device = Device::for_gateway(
        &openclaw,
        &laptop,
        &homes.join("same-openclaw"),
        json!({"mode": "remote", "remote": {"url": format!("ws://{}:{}", household.hub_mesh, RealOpenClaw::PORT),
                                            "token": RealOpenClaw::TOKEN}}),
    );
    let on_openclaw = outcomes(&claw_device, |request| claw.approve(&household, request));
    assert_eq!(
        on_hearth, on_openclaw,
        "the outcomes differ (left: Hearth, right: OpenClaw)"
    );
}

/// The real OpenClaw gateway on the hub (its own llama-server: OpenClaw's
/// prompt needs a long context).
struct RealOpenClaw<'a> {
    openclaw: &'a OpenClaw,
    home: PathBuf,
    config: PathBuf,
}

impl<'a> RealOpenClaw<'a> {
    const PORT: u16 = 18799;
    const TOKEN: &'static str = "openclaw-side-by-side-0123456789";

    fn start(openclaw: &'a OpenClaw, household: &mut Household, dir: &Path) -> RealOpenClaw<'a> {
        let hub = household.hub.clone();
        // The tiny random model: OpenClaw's own prompt is some 8,600 tokens,
        // which a real model here reads in about a minute.
        let model = hearth_testkit::llama::tiny_model().expect("the tiny model");
        let mut llama = household
            .lab
            .command(&hub, hearth_testkit::llama::llama_server_binary().unwrap());
        llama
            .arg("-m")
            .arg(&model)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "18092",
                "-c",
                "32768",
                "-t",
                "2",
                "--temp",
                "0",
                "--no-webui",
            ])
            .args(["--override-kv", "llama.context_length=int:32768"]);
        let llama = household.lab.spawn(&hub, "openclaw-llama", llama);
        let loaded = wait_until(60 * SECOND, || llama.log_text().contains("model loaded"));
        assert!(loaded.is_some(), "llama-server: {}", llama.log_text());
        std::mem::forget(llama); // stopped with the lab
        let home = dir.join("openclaw-gateway");
        let workspace = home.join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(
            workspace.join("SOUL.md"),
            "You are the household's helpful assistant. Answer briefly.",
        )
        .unwrap();
        let config = home.join("openclaw.json");
        std::fs::write(
            &config,
            json!({
                "gateway": {"mode": "local", "port": Self::PORT, "bind": "lan", "auth": {"mode": "token", "token": Self::TOKEN}},
                "models": {"catalogRefresh": {"enabled": false}, "providers": {"local": {"baseUrl": "http://127.0.0.1:18092/v1",
                           "api": "openai-completions", "apiKey": "none",
                           "models": [{"id": "smollm2", "name": "SmolLM2-135M-Instruct", "contextWindow": 32768, "maxTokens": 8}]}}},
                "agents": {"defaults": {"model": {"primary": "local/smollm2"}, "workspace": workspace}},
                "update": {"checkOnStart": false},
            })
            .to_string(),
        )
        .unwrap();
        let mut command = openclaw.command_in(&home, &hub.namespace);
        command
            .env("OPENCLAW_CONFIG_PATH", &config)
            .args(["gateway", "run"]);
        let gateway = household.lab.spawn(&hub, "openclaw-gateway", command);
        let url = format!("http://127.0.0.1:{}/readyz", Self::PORT);
        let ready = wait_until(120 * SECOND, || {
            household
                .lab
                .try_exec(&hub, &["curl", "-sf", "-o", "/dev/null", &url])
                .status
                .success()
        });
        assert!(
            ready.is_some(),
            "OpenClaw's gateway did not start: {}",
            gateway.log_text()
        );
        std::mem::forget(gateway); // stopped with the lab
        RealOpenClaw {
            openclaw,
            home,
            config,
        }
    }

    /// `openclaw devices approve REQUEST` on the hub, as its owner.
    fn approve(&self, household: &Household, request: &str) {
        let output = self
            .openclaw
            .command_in(&self.home, &household.hub.namespace)
            .env("OPENCLAW_CONFIG_PATH", &self.config)
            .args(["devices", "approve", request])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openclaw devices approve: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// What a user sees of each command, reduced to what must be the same on
/// either gateway (the texts of a model's answers differ). A command that
/// asks for more than the device was approved for waits for the admin
/// again (OpenClaw approves scopes as they are first asked for): it is
/// approved and run again, and the outcome is the second run's.
fn outcomes(device: &Device, approve: impl Fn(&str)) -> Vec<(String, bool, String)> {
    let text = |output: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let run = |args: &[&str]| {
        let output = device.run(args);
        let shown = text(&output);
        let waits = shown.contains("pairing required") || shown.contains("pending approval");
        if !output.status.success() && waits && shown.contains("requestId") {
            approve(&request_id(&shown));
            let output = device.run(args);
            let shown = text(&output);
            return (output, shown);
        }
        (output, shown)
    };
    let mut seen = Vec::new();
    let mut shown_all = String::new();
    let mut note = |label: &str, output: &Output, shown: &str, outcome: bool| {
        shown_all.push_str(&format!("--- {label}: {shown}\n"));
        seen.push((
            label.to_owned(),
            output.status.success(),
            outcome.to_string(),
        ));
    };
    let waiting = device.run(&["cron", "list"]);
    let shown = text(&waiting);
    note(
        "cron list, unpaired",
        &waiting,
        &shown,
        shown.contains("device pairing required"),
    );
    approve(&request_id(&shown));
    let (health, shown) = run(&["health"]);
    note(
        "health",
        &health,
        &shown,
        shown.contains("Agents: main (default)"),
    );
    let (answered, shown) = run(&["agent", "--message", "Say hello."]);
    note(
        "agent",
        &answered,
        &shown,
        !String::from_utf8_lossy(&answered.stdout).trim().is_empty(),
    );
    let (added, shown) = run(&[
        "cron",
        "add",
        "--name",
        "Put the kettle on",
        "--at",
        "20m",
        "--system-event",
        "Put the kettle on",
    ]);
    let id = shown
        .find('{')
        .and_then(|start| serde_json::from_str::<serde_json::Value>(&shown[start..]).ok())
        .and_then(|job| job["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    note("cron add", &added, &shown, !id.is_empty());
    let (listed, shown) = run(&["cron", "list"]);
    note(
        "cron list",
        &listed,
        &shown,
        shown.contains(&id) && shown.contains("Put the kettle on"),
    );
    let (removed, shown) = run(&["cron", "rm", &id]);
    note(
        "cron rm",
        &removed,
        &shown,
        shown.contains("\"removed\": true"),
    );
    let (listed, shown) = run(&["cron", "list"]);
    note("cron list after rm", &listed, &shown, !shown.contains(&id));
    eprintln!("{shown_all}");
    seen
}
