//! The one-shot deploy of private compute (podman/deploy-private-compute.sh)
//! into one pod from the shipped images: the seeds are checked before
//! anything starts, each stage prints what the next needs, every container
//! is locked down, and `hearth-pcc chat --config` from the host goes through
//! the relay and the OHTTP gateway to the compute node and back. Dev
//! evidence (no Nitro Enclave can run here). Real Podman, real llama-server.
//! Needs root, podman, the musl target and the cached llama-server; outside
//! CI it skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use hearth_testkit::compute::dev_policy_for;
use hearth_testkit::llama::{free_port, llama_server_binary, tiny_model, workspace_root};
use hearth_testkit::oblivious::seeds_json;
use hearth_testkit::podman::{self, Cleanup, podman_ok};
use hearth_testkit::{binary, wait_until};
use serde_json::Value;

const HOUR: Duration = Duration::from_secs(3600);

fn deploy(env: &[(&str, String)]) -> std::process::Output {
    Command::new(workspace_root().join("podman/deploy-private-compute.sh"))
        .env(
            "CONTAINERS_CONF",
            workspace_root().join("podman/test/containers.conf"),
        )
        .envs(env.iter().map(|(key, value)| (*key, value)))
        .output()
        .unwrap()
}

#[test]
fn the_one_shot_deploy_checks_the_seeds_and_serves_a_device_through_the_relay() {
    if podman::available().is_none() {
        return;
    }
    let (Some(_), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    podman::build_images_with(
        &["router", "compute", "ohttp-gateway", "relay", "auth"],
        &[("HEARTH_COMPUTE_MODEL", &model)],
    );
    let probe = podman::static_probe();
    let id = std::process::id();
    let prefix = format!("hearth-test-pcc-{id}");
    let pod = format!("{prefix}-pod");
    let mut cleanup = Cleanup::default();
    for part in [
        "router",
        "ohttp-gateway",
        "relay",
        "auth",
        "compute",
        "copy",
    ] {
        cleanup.containers.push(format!("{prefix}-{part}"));
    }
    cleanup.pods.push(pod.clone());
    cleanup.secrets.extend([
        format!("{prefix}-seeds"),
        format!("{prefix}-bad-seeds"),
        format!("{prefix}-token"),
        // The compute node's own credential, which the deploy makes.
        format!("{prefix}-token-{prefix}-compute-1"),
    ]);

    let dir = tempfile::tempdir().unwrap();
    podman_ok(&[
        "create",
        "--name",
        &format!("{prefix}-copy"),
        "localhost/hearth-compute:latest",
    ]);
    let executable = dir.path().join("hearth-enclave");
    podman_ok(&[
        "cp",
        &format!("{prefix}-copy:/usr/local/bin/hearth-enclave"),
        executable.to_str().unwrap(),
    ]);
    let policy = dev_policy_for(&executable, dir.path(), "policy.json", "hearth-enclave");

    let (relay_port, auth_port) = (free_port(), free_port());
    let base = |seeds_file: &std::path::Path, secret: &str| {
        vec![
            ("OHTTP_SEEDS_FILE", seeds_file.display().to_string()),
            ("HEARTH_SEEDS_SECRET", secret.to_owned()),
            ("HEARTH_TOKEN_SECRET", format!("{prefix}-token")),
            ("HEARTH_POLICY_FILE", policy.display().to_string()),
            (
                "HEARTH_PUBLIC_RELAY_URL",
                format!("http://127.0.0.1:{relay_port}/"),
            ),
            ("HEARTH_POD", pod.clone()),
            ("HEARTH_PREFIX", prefix.clone()),
            ("HEARTH_MODEL_NAME", "tiny".to_owned()),
            (
                "HEARTH_PODMAN_ARGS",
                format!("--volume {}:/probe:ro", probe.display()),
            ),
        ]
    };

    // Seeds that overlap under one key id: refused before anything runs.
    let now = hearth_runtime::clock::since_epoch();
    let bad = dir.path().join("bad-seeds.json");
    std::fs::write(
        &bad,
        seeds_json(&[(1, now - HOUR, now + HOUR), (1, now, now + 2 * HOUR)]),
    )
    .unwrap();
    let refused = deploy(&base(&bad, &format!("{prefix}-bad-seeds")));
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing was started"));
    let running = podman_ok(&[
        "ps",
        "--all",
        "--filter",
        &format!("name={prefix}-"),
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        !running.contains("router"),
        "a stage ran with bad seeds: {running}"
    );

    podman_ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--publish",
        &format!("127.0.0.1:{relay_port}:3100"),
        "--publish",
        &format!("127.0.0.1:{auth_port}:8080"),
    ]);
    let seeds = dir.path().join("seeds.json");
    std::fs::write(&seeds, seeds_json(&[(1, now - HOUR, now + HOUR)])).unwrap();
    let deployed = deploy(&base(&seeds, &format!("{prefix}-seeds")));
    let said = String::from_utf8_lossy(&deployed.stdout).into_owned();
    assert!(
        deployed.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    for line in [
        "SERVER1_ROUTER_URL=http://127.0.0.1:3600",
        "SERVER1_GATEWAY_URL=http://127.0.0.1:3200/gateway",
        &format!("SERVER4_RELAY_URL=http://127.0.0.1:{relay_port}/"),
        "SERVER3_CONFIG_URL=http://127.0.0.1:8080",
    ] {
        assert!(
            said.contains(line),
            "the deploy did not print {line}: {said}"
        );
    }

    // Locked down: every container of the oblivious layer.
    for part in ["ohttp-gateway", "relay", "auth"] {
        let name = format!("{prefix}-{part}");
        let inspect: Value = serde_json::from_str(&podman_ok(&["inspect", &name])).unwrap();
        assert_eq!(inspect[0]["HostConfig"]["ReadonlyRootfs"], true, "{name}");
        let report: Value =
            serde_json::from_str(&podman_ok(&["exec", &name, "/probe", "--write", "/"])).unwrap();
        assert_eq!(
            report["pid1"]["cap_eff"], "0000000000000000",
            "{name}: {report}"
        );
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
    }

    // A device on the host: config, relay, OHTTP gateway, router, node
    // (with its own copy of the lab policy: one accepting dev evidence is
    // never taken on the config server's word).
    let config = format!("http://127.0.0.1:{auth_port}");
    let answered = wait_until(Duration::from_secs(90), || {
        Command::new(binary("hearth-pcc"))
            .args([
                "chat",
                "What should we cook tonight?",
                "--config",
                &config,
                "--model",
                "tiny",
                "--max-tokens",
                "8",
            ])
            .arg("--policy")
            .arg(&policy)
            .output()
            .is_ok_and(|output| output.status.success() && !output.stdout.is_empty())
    });
    let logs = || {
        ["router", "ohttp-gateway", "relay", "auth", "compute"]
            .iter()
            .map(|part| {
                let output = podman::podman()
                    .args(["logs", &format!("{prefix}-{part}")])
                    .output()
                    .unwrap();
                format!("== {part}\n{}", String::from_utf8_lossy(&output.stderr))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        answered.is_some(),
        "no answer through the relay:\n{}",
        logs()
    );
}
