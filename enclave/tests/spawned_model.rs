//! The node as the compute image runs it: it starts its own llama-server
//! (`--llama-server`, `--llama-model`) on a private socket, registers with
//! a router on loopback, answers `hearth-pcc chat` from a device end to end,
//! and takes the model server down with it. Needs the cached llama-server;
//! outside CI the test skips without it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use hearth_testkit::compute::{IMAGE, LoopbackRouter, dev_policy, pcc_chat};
use hearth_testkit::llama::{free_port, llama_server_binary, tiny_model};
use hearth_testkit::{binary, wait_until};

/// The pids of `parent`'s children, from /proc.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

#[test]
fn the_node_runs_its_own_model_server_and_stops_it_when_it_stops() {
    let (Some(server), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    let router = LoopbackRouter::start(&["--heartbeat-seconds", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let output = std::fs::File::create(&log).unwrap();
    let mut node = router
        .node_command("solo", free_port())
        .arg("--llama-server")
        .arg(&server)
        .arg("--llama-model")
        .arg(&model)
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    let node_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(60), || {
        router.log_text().contains("solo")
    })
    .unwrap_or_else(|| {
        panic!(
            "the node did not register: {}\n{}",
            node_log(),
            router.log_text()
        )
    });
    let model_servers = children(node.id());
    assert_eq!(
        model_servers.len(),
        1,
        "one model server under the node: {model_servers:?}"
    );
    let model_server = model_servers[0];
    let command_line = std::fs::read(format!("/proc/{model_server}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&command_line).contains("inference.sock"));

    let policy = dev_policy(dir.path(), "policy.json", IMAGE);
    let chat = pcc_chat(&router.url, &policy, "Say something.");
    let said =
        String::from_utf8_lossy(&chat.stdout).into_owned() + &String::from_utf8_lossy(&chat.stderr);
    assert!(
        chat.status.success(),
        "hearth-pcc chat failed: {said}\n{}",
        node_log()
    );
    assert!(
        !String::from_utf8_lossy(&chat.stdout).trim().is_empty(),
        "{said}"
    );

    // SIGTERM: the node stops, and its model server with it.
    assert!(
        Command::new("kill")
            .arg(node.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = node.wait().unwrap();
    assert!(status.success(), "{status}: {}", node_log());
    wait_until(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{model_server}")).exists()
            || std::fs::read_to_string(format!("/proc/{model_server}/stat"))
                .is_ok_and(|stat| stat.contains(") Z "))
    })
    .expect("the model server stopped with the node");
}

#[test]
fn a_model_that_will_not_load_stops_the_node_with_a_reason() {
    let Some(server) = llama_server_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("node.token");
    std::fs::write(&token, "a-token-of-enough-characters-0000\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let not_a_model = dir.path().join("model.gguf");
    std::fs::write(&not_a_model, b"not a model").unwrap();
    let output = Command::new(binary("hearth-enclave"))
        .args([
            "serve",
            "--node-id",
            "solo",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args([
            "--router",
            "http://127.0.0.1:9",
            "--evidence",
            "dev",
            "--model",
            "tiny",
        ])
        .arg("--router-token-file")
        .arg(&token)
        .arg("--llama-server")
        .arg(&server)
        .arg("--llama-model")
        .arg(&not_a_model)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("exited before it was ready"), "{said}");
}
