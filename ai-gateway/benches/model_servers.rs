//! Model servers found on the mesh, measured in one lab run (network
//! namespaces, a real coordinator, real agents on userspace WireGuard, the
//! same llama-server build and tiny model on the hub and on `gpu`):
//!
//! 1. the time from a model server going away to the gateway's model list
//!    (and so its routes: one table) no longer holding it, when its agent
//!    stops (the coordinator sees its map stream close and says so) and
//!    when its machine freezes without a word (`SIGSTOP` of its agent: the
//!    gateway's own check finds it silent);
//! 2. a request's added latency through the mesh: the gateway asked for
//!    `gpu/tiny` against `local/tiny` (the hub's own server), and each
//!    server asked directly (over the mesh, over loopback), interleaved.
//!
//! `cargo build --workspace --bins && cargo bench -p hearth-gateway --bench
//! model_servers` as root (needs the cached llama-server build:
//! scripts/build-llama-server.sh; the tiny model: scripts/python-env.sh).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use hearth_testkit::bench::{median, percentile};
use hearth_testkit::llama::{llama_server_binary, tiny_model};
use hearth_testkit::{Host, Lab, wait_until};
use serde_json::json;

/// Waits for a line on stdin, then asks the gateway's model list until
/// `GONE` (or, with `BACK`, until it is there again) and prints the
/// seconds since the line.
const WATCH: &str = r#"
import json, os, sys, time, urllib.request
token = open(os.environ["TOKEN"]).read().strip()
def listed():
    request = urllib.request.Request(os.environ["GATEWAY"] + "/v1/models", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return [model["id"] for model in json.load(answer)["data"]]
print("ready", flush=True)
sys.stdin.readline()
started = time.monotonic()
while (os.environ["MODEL"] in listed()) != bool(os.environ.get("BACK")):
    if time.monotonic() - started > 60:
        sys.exit("not within 60 s")
    time.sleep(0.01)
print("seconds", time.monotonic() - started, flush=True)
"#;

/// Asks each of the four ways in turn `ROUNDS` times (one token, not
/// streamed) and prints each way's times in milliseconds as JSON.
const LATENCY: &str = r#"
import json, os, time, urllib.request
token = open(os.environ["TOKEN"]).read().strip()
gateway = os.environ["GATEWAY"]
ways = {
    "gateway local/tiny": (gateway + "/v1/chat/completions", "local/tiny", True),
    "gateway gpu/tiny": (gateway + "/v1/chat/completions", "gpu/tiny", True),
    "direct hub loopback": (os.environ["LOCAL"] + "/v1/chat/completions", "tiny", False),
    "direct gpu over the mesh": (os.environ["GPU"] + "/v1/chat/completions", "tiny", False),
}
times = {way: [] for way in ways}
for round in range(int(os.environ["ROUNDS"]) + 3):
    for way, (url, model, auth) in ways.items():
        body = json.dumps({"model": model, "max_tokens": 1, "temperature": 0,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + token
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as answer:
            answer.read()
        if round >= 3:
            times[way].append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"#;

fn python(lab: &Lab, host: &Host, script: &str, env: &[(&str, String)]) -> std::process::Command {
    let mut command = lab.command(host, hearth_testkit::llama::python());
    command.args(["-c", script]);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn main() {
    let Some(mut lab) = Lab::new() else {
        println!("needs root and network namespaces");
        return;
    };
    let (Some(llama), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    let (hub, gpu) = (lab.host("hub"), lab.host("gpu"));
    let coordinator = lab.start_coordinator(&hub);
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "tagOwners": {"tag:models": ["admin@"]},
            "acls": [{"action": "accept", "src": ["home@"], "dst": ["tag:models:8080"]}],
        })
        .to_string(),
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", &policy.to_string_lossy()]);
    let _ = coordinator.cli(&["users", "create", "home"]);
    let _ = coordinator.cli(&["users", "create", "admin"]);
    let hub_token = coordinator.token_file(
        lab.dir.path(),
        "hub.token",
        &["--user", "home", "--pre-approved"],
    );
    let gpu_token = coordinator.token_file(
        lab.dir.path(),
        "gpu.token",
        &[
            "--user",
            "admin",
            "--pre-approved",
            "--reusable",
            "--tags",
            "tag:models",
        ],
    );
    let hub_agent = lab.start_agent(&hub, &hub_token, &["--backend", "userspace"]);
    let mut gpu_agent = lab.start_agent(&gpu, &gpu_token, &["--backend", "userspace"]);
    hub_agent.wait_mesh_ipv4(Duration::from_secs(15));
    let gpu_mesh = gpu_agent.wait_mesh_ipv4(Duration::from_secs(15));
    let servers = [
        lab.start_llama_server(&gpu, &llama, &model, ("0.0.0.0", 8080), "tiny", 512),
        lab.start_llama_server(&hub, &llama, &model, ("127.0.0.1", 18090), "tiny", 512),
    ];
    let data = lab.dir.path().join("gateway-data");
    let config = json!({
        "gateway": {"port": 18789, "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:18090/v1", "api": "openai-completions",
                                           "models": [{"id": "tiny", "contextWindow": 512, "maxTokens": 8}]}}},
        "agents": {"defaults": {"model": {"primary": "local/tiny"}}},
        "hearth": {"dataDir": data, "agentSocket": hub_agent.state.join("agent.sock"), "modelServers": "tag:models",
                   "limits": {"requestsPerMinutePerDevice": 1_000_000, "requestsPerMinutePerIp": 1_000_000}},
    });
    let gateway = lab.serve_gateway(&hub, env!("CARGO_BIN_EXE_hearth-gateway"), &config);
    let env = vec![
        ("TOKEN", data.join("gateway.token").display().to_string()),
        ("GATEWAY", "http://127.0.0.1:18789".to_owned()),
        ("MODEL", "gpu/tiny".to_owned()),
    ];
    let listed = |lab: &Lab| {
        let mut back = env.clone();
        back.push(("BACK", "1".to_owned()));
        let mut child = python(lab, &hub, WATCH, &back)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        child.wait().is_ok_and(|status| status.success())
    };
    assert!(
        wait_until(Duration::from_secs(60), || listed(&lab)).is_some(),
        "the gpu's model was never listed:\n{}",
        gateway.log_text()
    );

    // 2. Added latency, interleaved.
    let output = python(
        &lab,
        &hub,
        LATENCY,
        &[
            env[0].clone(),
            env[1].clone(),
            ("LOCAL", "http://127.0.0.1:18090".to_owned()),
            ("GPU", format!("http://{gpu_mesh}:8080")),
            ("ROUNDS", "40".to_owned()),
        ],
    )
    .output()
    .unwrap();
    let times: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| {
            panic!("{}", String::from_utf8_lossy(&output.stderr));
        });
    let mut p50 = std::collections::BTreeMap::new();
    println!("one-token requests, 40 rounds interleaved (ms):");
    for (way, values) in &times {
        let mut values: Vec<f64> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|value| value.as_f64().unwrap())
            .collect();
        let (middle, high) = (median(&mut values), percentile(&mut values, 0.9));
        println!("  {way:<26} p50 {middle:7.2}  p90 {high:7.2}");
        p50.insert(way.clone(), middle);
    }
    let mesh_added = p50["direct gpu over the mesh"] - p50["direct hub loopback"];
    let gateway_added = p50["gateway gpu/tiny"] - p50["gateway local/tiny"];
    println!(
        "  the mesh adds {mesh_added:.2} ms directly, {gateway_added:.2} ms through the gateway; \
         gateway gpu/tiny / gateway local/tiny = {:.2}",
        p50["gateway gpu/tiny"] / p50["gateway local/tiny"]
    );

    // 1. Time to know a server is gone, three times each way.
    for (how, signal) in [
        ("its agent stops (SIGTERM)", "-TERM"),
        ("it freezes (SIGSTOP of its agent)", "-STOP"),
    ] {
        let mut seconds = Vec::new();
        for _ in 0..3 {
            let mut child = python(&lab, &hub, WATCH, &env)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "ready");
            let pid = gpu_agent.process.child.id().to_string();
            let _ = std::process::Command::new("kill")
                .args([signal, &pid])
                .status();
            child.stdin.take().unwrap().write_all(b"go\n").unwrap();
            let line = lines.next().unwrap().unwrap();
            let _ = child.wait();
            seconds.push(
                line.strip_prefix("seconds ")
                    .unwrap()
                    .parse::<f64>()
                    .unwrap(),
            );
            if signal == "-STOP" {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &pid])
                    .status();
            } else {
                gpu_agent = lab.restart_agent(gpu_agent, &gpu_token);
            }
            assert!(
                wait_until(Duration::from_secs(60), || listed(&lab)).is_some(),
                "the gpu did not come back:\n{}",
                gateway.log_text()
            );
        }
        let values: Vec<String> = seconds.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "time until the lists no longer hold a server when {how}: {} s (median {:.2})",
            values.join(", "),
            median(&mut seconds)
        );
    }
    drop(servers);
}
