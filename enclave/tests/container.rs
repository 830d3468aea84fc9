//! The router and compute images, deployed by the shipped scripts with the
//! shipped flags into one pod: both locked down (no capabilities, no new
//! privileges, read-only root, not root), the compute node starting its own
//! llama-server from the image, and `hearth-pcc chat` from the host through
//! the pod's loopback port answered end to end under a policy pinning the
//! image's own executable. Dev evidence (no Nitro Enclave can run here).
//! Real Podman, real llama-server. Needs root, podman, the musl target and
//! the cached llama-server; outside CI it skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use hearth_testkit::Forward;
use hearth_testkit::compute::{dev_policy_for, listed_nodes, pcc_chat};
use hearth_testkit::llama::{free_port, llama_server_binary, tiny_model, workspace_root};
use hearth_testkit::podman::{self, Cleanup, podman_ok};
use hearth_testkit::{binary, wait_until};
use serde_json::Value;

fn deploy(script: &str, env: &[(&str, String)]) {
    let output = Command::new(workspace_root().join("podman").join(script))
        .env(
            "CONTAINERS_CONF",
            workspace_root().join("podman/test/containers.conf"),
        )
        .envs(env.iter().map(|(key, value)| (*key, value)))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn logs(name: &str) -> String {
    let output = podman::podman().args(["logs", name]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn the_router_and_compute_images_run_locked_down_and_answer_end_to_end() {
    if podman::available().is_none() {
        return;
    }
    let (Some(_), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    podman::build_images_with(&["router", "compute"], &[("HEARTH_COMPUTE_MODEL", &model)]);
    let probe = podman::static_probe();

    let id = std::process::id();
    let base = format!("hearth-test-compute-{id}");
    let (pod, router, node, secret, credential) = (
        format!("{base}-pod"),
        format!("{base}-router"),
        format!("{base}-node"),
        format!("{base}-token"),
        format!("{base}-credential"),
    );
    let mut cleanup = Cleanup::default();
    cleanup
        .containers
        .extend([router.clone(), node.clone(), format!("{base}-copy")]);
    cleanup.pods.push(pod.clone());
    cleanup.secrets.extend([secret.clone(), credential.clone()]);

    // The router's node key, and the node's own credential made from it
    // (as an admin does with `hearth-router node-token`).
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{:032x}\n", rand::random::<u128>())).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let credential_file =
        hearth_testkit::compute::node_credential_file(&token_file, dir.path(), "pod-node");
    podman_ok(&["secret", "create", &secret, token_file.to_str().unwrap()]);
    podman_ok(&[
        "secret",
        "create",
        &credential,
        credential_file.to_str().unwrap(),
    ]);
    std::fs::remove_file(&token_file).unwrap();
    std::fs::remove_file(&credential_file).unwrap();
    let port = free_port();
    podman_ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--publish",
        &format!("127.0.0.1:{port}:3600"),
    ]);

    let probe_mount = format!("--volume {}:/probe:ro", probe.display());
    deploy(
        "deploy-router.sh",
        &[
            ("HEARTH_NAME", router.clone()),
            ("HEARTH_POD", pod.clone()),
            ("HEARTH_TOKEN_SECRET", secret.clone()),
            // The node shares the pod's network: the router reaches it on loopback.
            ("HEARTH_NODE_NETWORKS", "127.0.0.0/8".into()),
            ("HEARTH_PODMAN_ARGS", probe_mount.clone()),
        ],
    );
    deploy(
        "deploy-compute.sh",
        &[
            ("HEARTH_NAME", node.clone()),
            ("HEARTH_NODE_ID", "pod-node".into()),
            ("HEARTH_MODEL_NAME", "tiny".into()),
            ("HEARTH_POD", pod.clone()),
            ("HEARTH_TOKEN_SECRET", credential.clone()),
            ("HEARTH_ROUTER_URL", "http://127.0.0.1:3600".into()),
            ("HEARTH_ADVERTISE", "http://127.0.0.1:7000".into()),
            ("HEARTH_MEMORY", "1g".into()),
            ("HEARTH_PODMAN_ARGS", probe_mount),
        ],
    );
    // The node reaches the router and is listed to clients.
    let url = format!("http://127.0.0.1:{port}");
    let listed = wait_until(Duration::from_secs(90), || {
        listed_nodes(Forward { port })
            .iter()
            .any(|(node, _)| node == "pod-node")
    });
    assert!(
        listed.is_some(),
        "the node did not register:\n{}\n{}",
        logs(&router),
        logs(&node)
    );

    // Both locked down, as podman was told and as the kernel enforces.
    for (name, writable) in [(&router, None), (&node, Some("/tmp"))] {
        let inspect: Value = serde_json::from_str(&podman_ok(&["inspect", name])).unwrap();
        let host = &inspect[0]["HostConfig"];
        assert_eq!(host["ReadonlyRootfs"], true, "{name}");
        assert!(
            host["CapAdd"].as_array().is_none_or(Vec::is_empty),
            "{name}: {host}"
        );
        assert!(
            host["SecurityOpt"]
                .to_string()
                .contains("no-new-privileges"),
            "{name}: {host}"
        );
        let mut args = vec!["exec", name.as_str(), "/probe", "--write", "/"];
        if let Some(path) = writable {
            args.extend(["--write", path]);
        }
        let report: Value = serde_json::from_str(&podman_ok(&args)).unwrap();
        assert_eq!(
            report["pid1"]["cap_eff"], "0000000000000000",
            "{name}: {report}"
        );
        assert_eq!(report["pid1"]["no_new_privs"], "1", "{name}: {report}");
        assert!(
            report["uid"].as_str().unwrap().starts_with("65532"),
            "{name}: {report}"
        );
        assert!(
            report["writes"]["/"]
                .as_str()
                .unwrap()
                .contains("Read-only"),
            "{name}: {report}"
        );
        if let Some(path) = writable {
            assert_eq!(report["writes"][path], "ok", "{name}: {report}");
        }
    }

    // The policy pins the executable inside the image, copied out of it.
    podman_ok(&[
        "create",
        "--name",
        &format!("{base}-copy"),
        "localhost/hearth-compute:latest",
    ]);
    let executable = dir.path().join("hearth-enclave");
    podman_ok(&[
        "cp",
        &format!("{base}-copy:/usr/local/bin/hearth-enclave"),
        executable.to_str().unwrap(),
    ]);
    let policy = dev_policy_for(&executable, dir.path(), "policy.json", "hearth-enclave");
    let chat = pcc_chat(&url, &policy, "What should we cook tonight?");
    assert!(
        chat.status.success(),
        "hearth-pcc chat: {}\n{}\n{}",
        String::from_utf8_lossy(&chat.stderr),
        logs(&router),
        logs(&node)
    );
    assert!(!String::from_utf8_lossy(&chat.stdout).trim().is_empty());

    // A policy pinning this build's host executable instead: not this image.
    let other = dev_policy_for(
        &binary("hearth-enclave"),
        dir.path(),
        "other.json",
        "hearth-enclave",
    );
    let refused = Command::new(binary("hearth-pcc"))
        .args(["chat", "Hello?", "--router", &url, "--model", "tiny"])
        .arg("--policy")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // SIGTERM stops both cleanly.
    for name in [&node, &router] {
        podman_ok(&["stop", "--time", "15", name]);
        let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", name]);
        assert_eq!(code.trim(), "0", "{name} stopped cleanly:\n{}", logs(name));
    }
}
