//! The hub as an appliance, measured (docs/benchmarks.md, "The hub as an
//! appliance"): the packages' sizes as shipped (xz); from `apt-get install`
//! on a clean Debian bookworm server (debootstrap's, Podman not installed)
//! to the first answer on a phone (install, `hearth setup`, the official
//! client joining, the assistant answering); and the hub's resident memory
//! idle, every Hearth service without the model, against OpenClaw's
//! gateway (npm's `openclaw` on Node 24, run as its docs' daemon runs it,
//! `openclaw gateway`) idle in the same run; and the same hub in Podman
//! alone (`podman/hearth-podman setup`, no systemd, the model a server on
//! the machine), its phone answered, idle beside the Debian form's figures.
//!
//!   cargo bench -p hearth-hub --bench appliance      # as root

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::appliance::{
    HubLogs, Phone, Printed, QUESTION, build_debs, join_phone, running, setup,
};
use hearth_testkit::bench::{Tree, tree_rss_mib};
use hearth_testkit::lab::{Host, Lab, is_root};
use hearth_testkit::llama::{
    LlamaServer, free_port, instruct_model, llama_server_binary, tailscale_client,
};
use hearth_testkit::machine::{Machine, debian_root};
use hearth_testkit::podman_hub::{MODEL_PORT, PodmanMachine, model_server};
use hearth_testkit::{podman, wait_until};
use serde_json::json;

/// How long a service sits without a request before its memory is read.
const IDLE: Duration = Duration::from_secs(30);

/// The Hearth processes of a hub (the model's server and its proxy aside).
const SERVICES: [&str; 4] = [
    "hearth-coordinator",
    "hearth-agent",
    "hearth-gateway",
    "hearth-messaging",
];

fn main() {
    if !is_root() {
        println!("needs root (network namespaces, a machine in a container): skipped");
        return;
    }
    let (Some(model), Some(client), Some(openclaw), Some(system), Some(llama)) = (
        instruct_model(),
        tailscale_client(),
        hearth_testkit::openclaw::install(),
        debian_root(),
        llama_server_binary(),
    ) else {
        println!(
            "the model, the Tailscale client, OpenClaw or a Debian root could not be had: skipped"
        );
        return;
    };
    let mut lab = Lab::new().expect("a lab");
    let debs = lab.dir.path().join("debs");
    let version = env!("CARGO_PKG_VERSION");
    println!("## The hub as an appliance (Hearth {version})\n");
    println!("| package (xz) | bytes |\n| --- | --- |");
    for deb in build_debs(version, &debs, false) {
        let bytes = std::fs::metadata(&deb).expect("a package").len();
        println!(
            "| {} | {bytes} ({:.1} MB) |",
            deb.file_name().unwrap_or_default().to_string_lossy(),
            bytes as f64 / 1e6
        );
    }
    podman::build_images(&["hub", "gateway", "messaging"]);
    let hub = lab.host("hub");
    let phone_host = lab.host("phone");
    let alone_host = lab.host("alone");
    let alone_phone_host = lab.host("phone2");
    let machine = Machine::boot_on(
        &system,
        &lab.dir.path().join("machine"),
        &format!("hearth-bench-{}", std::process::id()),
        Some(&hub.namespace),
        &[(&debs, "/srv/debs")],
    );
    let started = Instant::now();
    machine.exec_ok(&[
        "bash",
        "-c",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y /srv/debs/*.deb",
    ]);
    let installed = started.elapsed();
    let url = format!("https://{}", hub.address);
    let output = setup(&machine, &household(&url, "default"));
    assert!(
        output.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let set_up = started.elapsed();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let phone = answered_phone(&mut lab, &machine, &phone_host, &client, &hub, &printed);
    let answered = started.elapsed();
    println!("\n| from `apt-get install` | seconds |\n| --- | --- |");
    println!("| packages installed | {:.1} |", installed.as_secs_f64());
    println!(
        "| `hearth setup` done (every service answering) | {:.1} |",
        set_up.as_secs_f64()
    );
    println!(
        "| the phone's first answer (its client joined with the printed key) | {:.1} |",
        answered.as_secs_f64()
    );

    // Idle: nothing asked for a while.
    std::thread::sleep(IDLE);
    let mut hearth_total = 0.0;
    let mut rows = Vec::new();
    for service in SERVICES {
        let mib = machine_rss_of(&machine, service);
        hearth_total += mib;
        rows.push((service, mib));
    }
    // Podman's part in the Debian form: the pod's infra process and a
    // conmon for each container.
    let debian_podman = machine_rss_of(&machine, "conmon") + machine_rss_of(&machine, "catatonit");
    drop(phone);
    drop(machine);

    // The same household's hub in Podman alone, in the same run.
    let (alone, _service) = PodmanMachine::start(&mut lab, &alone_host);
    let _server = model_server(&mut lab, &alone_host, &llama, &model);
    let mut answers = vec!["setup", "--non-interactive"];
    let alone_url = format!("https://{}", alone_host.address);
    let host_model = format!("server:http://host.containers.internal:{MODEL_PORT}");
    answers.extend(household(&alone_url, &host_model));
    let printed = alone.hearth_ok(&answers);
    let phone = answered_phone(
        &mut lab,
        &alone,
        &alone_phone_host,
        &client,
        &alone_host,
        &printed,
    );
    std::thread::sleep(IDLE);
    let mut alone_total = 0.0;
    let mut alone_podman = 0.0;
    let mut alone_rows = Vec::new();
    for (service, container) in
        SERVICES
            .iter()
            .zip(["coordinator", "agent", "gateway", "messaging"])
    {
        let (pid, conmon) = alone.pids(container);
        let mib = tree_rss_mib(pid);
        alone_total += mib;
        alone_podman += tree_rss_mib(conmon) - mib;
        alone_rows.push((*service, mib));
    }
    let infra = alone
        .podman()
        .args([
            "pod",
            "inspect",
            "--format",
            "{{.InfraContainerID}}",
            &alone.pod,
        ])
        .output()
        .expect("podman runs");
    let infra = String::from_utf8_lossy(&infra.stdout).trim().to_owned();
    // The infra process is its conmon's child.
    let (_, conmon) = alone.pids_of(&infra);
    alone_podman += tree_rss_mib(conmon);
    drop(phone);
    drop(alone);

    // OpenClaw's gateway, as its daemon runs it, with a model to name.
    let llama = LlamaServer::start_model(&model, &["-c", "4096"]).expect("llama-server");
    let home = tempfile::tempdir().expect("a folder");
    let port = free_port();
    let config = json!({
        "gateway": {"mode": "local", "port": port, "bind": "loopback",
                    "auth": {"mode": "token", "token": "bench-token-0123456789abcdef0123"}},
        "models": {"catalogRefresh": {"enabled": false}, "providers": {"local": {
            "baseUrl": llama.base_url, "api": "openai-completions", "apiKey": "none",
            "models": [{"id": "smollm2", "name": "SmolLM2-135M-Instruct", "contextWindow": 4096, "maxTokens": 512}]}}},
        "agents": {"defaults": {"model": {"primary": "local/smollm2"}}},
        // Nothing may leave the machine: no hosted catalog, no update check.
        "update": {"checkOnStart": false},
    });
    let file = home.path().join("openclaw.json");
    std::fs::write(&file, config.to_string()).expect("OpenClaw's configuration");
    let openclaw_home = home.path().join("home");
    std::fs::create_dir(&openclaw_home).expect("OpenClaw's home");
    let claw = Tree(
        openclaw
            .command(&openclaw_home)
            .args(["gateway", "run"])
            .env("OPENCLAW_CONFIG_PATH", &file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("OpenClaw starts"),
    );
    let ready = wait_until(Duration::from_secs(120), || {
        Command::new("curl")
            .args(["-sf", "-m", "2", &format!("http://127.0.0.1:{port}/readyz")])
            .output()
            .is_ok_and(|output| output.status.success())
    });
    assert!(ready.is_some(), "OpenClaw's gateway did not get ready");
    std::thread::sleep(IDLE);
    let claw_mib = tree_rss_mib(claw.id());
    println!(
        "\n| resident memory, idle {} s | MiB |\n| --- | --- |",
        IDLE.as_secs()
    );
    for (service, mib) in &rows {
        println!("| {service} | {mib:.1} |");
    }
    println!("| **the hub, every Hearth service** | **{hearth_total:.1}** |");
    println!("| OpenClaw's gateway (`openclaw gateway`, process tree) | {claw_mib:.1} |");
    println!(
        "| ratio OpenClaw / Hearth | {:.1}x |",
        claw_mib / hearth_total.max(0.1)
    );
    drop(claw);

    println!(
        "\n| resident memory, idle {} s, MiB | Debian form (systemd) | Podman alone |\n| --- | --- | --- |",
        IDLE.as_secs()
    );
    for ((service, debian), (_, podman)) in rows.iter().zip(&alone_rows) {
        println!("| {service} | {debian:.1} | {podman:.1} |");
    }
    println!("| **every Hearth service** | **{hearth_total:.1}** | **{alone_total:.1}** |");
    println!(
        "| Podman's processes for the pod (conmon, the infra process) | {debian_podman:.1} | {alone_podman:.1} |"
    );
    println!(
        "| ratio Podman alone / Debian form, with Podman's processes | | {:.2}x |",
        (alone_total + alone_podman) / (hearth_total + debian_podman).max(0.1)
    );
}

/// The resident memory of `machine`'s processes whose program is `name`.
fn machine_rss_of(machine: &Machine, name: &str) -> f64 {
    // From /proc: a server's minimal system has no `ps`.
    let rss = machine.exec_ok(&[
        "sh",
        "-c",
        "for process in /proc/[0-9]*; do \
         [ \"$(basename \"$(readlink $process/exe)\")\" = \"$1\" ] && \
         sed -n 's/^VmRSS:[[:space:]]*\\([0-9]*\\) kB/\\1/p' $process/status; done; true",
        "rss",
        name,
    ]);
    rss.lines()
        .filter_map(|line| line.trim().parse::<f64>().ok())
        .sum::<f64>()
        / 1024.0
}

/// The bench household's answers to setup (both forms), with its `url`
/// and `model`.
fn household<'a>(url: &'a str, model: &'a str) -> [&'a str; 10] {
    [
        "--household",
        "Bench",
        "--admin",
        "ada",
        "--hostname",
        "hub",
        "--url",
        url,
        "--model",
        model,
    ]
}

/// A phone on `host` joined with the key setup `printed`, once the
/// assistant answered its first question in their DM.
fn answered_phone<'a>(
    lab: &'a mut Lab,
    machine: &'a dyn HubLogs,
    host: &Host,
    client: &Path,
    hub: &Host,
    printed: &str,
) -> Phone<'a> {
    let Printed { key, chat, .. } = Printed::read(printed);
    let login = format!("http://{}", hub.address);
    let node = join_phone(lab, host, client, &login, &key);
    let phone = Phone {
        lab,
        machine,
        host: host.clone(),
        node,
        chat,
    };
    running(&phone);
    let room = phone.assistant_room();
    phone.ask(&room, QUESTION);
    phone
}
