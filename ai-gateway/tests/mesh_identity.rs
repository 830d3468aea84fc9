//! Mesh callers are known by their tunnel address: the gateway asks its
//! node's agent `whois`. Between network namespaces: a real coordinator, real
//! agents with userspace WireGuard, a real llama-server beside the gateway.
//! Needs root; outside CI it skips without.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_testkit::llama::{llama_server_binary, tiny_model};
use hearth_testkit::{Lab, wait_until};
use serde_json::json;

#[test]
fn mesh_nodes_are_let_in_by_tunnel_address_and_strangers_are_not() {
    let Some(mut lab) = Lab::new() else { return };
    let (Some(llama), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    let (hub, home, phone, stranger) = (
        lab.host("hub"),
        lab.host("home"),
        lab.host("phone"),
        lab.host("stranger"),
    );
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "family"]);
    let token = coordinator.token_file(
        lab.dir.path(),
        "family.token",
        &["--user", "family", "--reusable", "--pre-approved"],
    );
    let home_agent = lab.start_agent(&home, &token, &["--backend", "userspace"]);
    let phone_agent = lab.start_agent(&phone, &token, &["--backend", "userspace"]);
    let home_mesh = home_agent.wait_mesh_ipv4(Duration::from_secs(15));
    phone_agent.wait_mesh_ipv4(Duration::from_secs(15));
    assert!(
        wait_until(Duration::from_secs(10), || lab.ping(
            &phone,
            home_mesh.into(),
            Duration::from_secs(1)
        ))
        .is_some()
    );

    // The model and the gateway run on `home`; the gateway listens on every
    // interface but lets in only callers its agent can name.
    let mut command = lab.command(&home, &llama);
    command.arg("-m").arg(&model).args([
        "--host",
        "127.0.0.1",
        "--port",
        "18090",
        "-c",
        "1024",
        "-t",
        "1",
        "--no-webui",
    ]);
    let _llama = lab.spawn(&home, "llama-server", command);
    let config = json!({
        "gateway": {"bind": "lan", "port": 18789, "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:18090/v1", "api": "openai-completions",
                                           "models": [{"id": "tiny", "contextWindow": 1024, "maxTokens": 16}]}}},
        "agents": {"defaults": {"model": {"primary": "local/tiny"}}},
        "hearth": {"dataDir": lab.dir.path().join("gateway-data"), "agentSocket": home_agent.state.join("agent.sock")},
    });
    let config_path = lab.dir.path().join("gateway.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut command = lab.command(&home, env!("CARGO_BIN_EXE_hearth-gateway"));
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("HEARTH_LOG", "debug");
    let gateway = lab.spawn(&home, "gateway", command);

    let chat = |host: &hearth_testkit::Host, address: String| {
        let key = lab.dir.path().join(format!("{}-device.key", host.name));
        lab.command(host, env!("CARGO_BIN_EXE_hearth-gateway"))
            .args([
                "chat",
                "--url",
                &format!("http://{address}:18789"),
                "--max-tokens",
                "4",
                "--device-key",
            ])
            .arg(key)
            // Identified by the mesh: no token (and none of this machine's).
            .arg("--token-file")
            .arg(lab.dir.path().join("no-token"))
            .arg("hello")
            .output()
            .unwrap()
    };
    let mut answered = None;
    let ready = wait_until(Duration::from_secs(20), || {
        let output = chat(&phone, home_mesh.to_string());
        let ok = output.status.success();
        answered = Some(output);
        ok
    });
    let output = answered.unwrap();
    assert!(
        ready.is_some(),
        "a mesh node is let in: {}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gateway.log_text()
    );
    assert!(!String::from_utf8_lossy(&output.stdout).trim().is_empty());

    // The same phone over the underlay, and a host outside the mesh: refused.
    for (host, why) in [
        (&phone, "a mesh node outside its tunnel"),
        (&stranger, "a host outside the mesh"),
    ] {
        let output = chat(host, home.address.to_string());
        assert!(!output.status.success(), "{why} got in");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("401") && stderr.contains("unauthenticated"),
            "{why}: {stderr}"
        );
    }

    // A local user on the gateway's own host, through its own mesh address:
    // the agent names that address as the host itself, which is anyone local.
    let status = hearth_testkit::http_status_as(
        lab.command(&home, "runuser"),
        "nobody",
        &format!("http://{home_mesh}:18789/v1/models"),
    );
    assert_eq!(status, "401", "a local user is not the hub's user");
}
