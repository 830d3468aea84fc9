//! The gateway image, deployed by the shipped script with the shipped flags,
//! is what it claims: no capabilities, no new privileges, a read-only root
//! and configuration, one writable data volume, a port published on loopback
//! only; and an encrypted chat through that port reaches llama-server on the
//! host (through its UNIX socket, mounted in: no host networking) and streams
//! back. Real Podman, real llama-server. Needs root, podman and the musl
//! target; outside CI it skips without them.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use hearth_testkit::llama::{LlamaServer, free_port, workspace_root};
use hearth_testkit::podman::{self, Cleanup, podman_ok};
use hearth_testkit::wait_until;
use serde_json::Value;

/// The group that may use the inference socket, as the test names it.
const INFERENCE_GID: u32 = 64_123;

#[test]
fn the_gateway_container_is_locked_down_and_answers_through_the_socket() {
    if podman::available().is_none() {
        return;
    }
    let Some(llama) = LlamaServer::start_unix() else {
        return;
    };
    podman::build_images(&["gateway"]);
    let probe = podman::static_probe();

    // The socket's directory and the socket belong to the inference group.
    let socket = llama.socket.clone().unwrap();
    let socket_dir = socket.parent().unwrap();
    std::os::unix::fs::chown(socket_dir, Some(0), Some(INFERENCE_GID)).unwrap();
    std::fs::set_permissions(socket_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&socket, Some(0), Some(INFERENCE_GID)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config");
    let workspace = dir.path().join("workspace");
    let documents = dir.path().join("documents");
    std::fs::create_dir(&documents).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(
        config.join("gateway.json5"),
        r#"{
  gateway: { port: 18789, bind: "0.0.0.0", auth: { mode: "token", token: "${HEARTH_GATEWAY_TOKEN}" } },
  models: { providers: { llamacpp: { baseUrl: "unix:/run/hearth-inference/inference.sock", api: "openai-completions",
    timeoutSeconds: 20, models: [{ id: "tiny", contextWindow: 2048, maxTokens: 24 }] } } },
  agents: { defaults: { model: { primary: "llamacpp/tiny" }, workspace: "/workspace" } },
  hearth: { dataDir: "/var/lib/hearth-gateway" },
}"#,
    )
    .unwrap();
    std::fs::write(
        workspace.join("SOUL.md"),
        "You are the household's assistant.\n",
    )
    .unwrap();
    let token = format!("{:032x}", rand::random::<u128>());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();

    let id = std::process::id();
    let name = format!("hearth-test-gateway-{id}");
    let mut cleanup = Cleanup::default();
    cleanup.containers.push(name.clone());
    cleanup.volumes.push(format!("{name}-data"));
    cleanup.networks.push(format!("{name}-net"));
    cleanup.secrets.push(format!("{name}-token"));
    podman_ok(&[
        "secret",
        "create",
        &format!("{name}-token"),
        token_file.to_str().unwrap(),
    ]);
    std::fs::remove_file(&token_file).unwrap();

    let port = free_port();
    let deploy = Command::new(workspace_root().join("podman/deploy-gateway.sh"))
        .env(
            "CONTAINERS_CONF",
            workspace_root().join("podman/test/containers.conf"),
        )
        .env("HEARTH_NAME", &name)
        .env("HEARTH_CONFIG_DIR", &config)
        .env("HEARTH_WORKSPACE_DIR", &workspace)
        .env("HEARTH_DOCUMENTS_DIR", &documents)
        .env("HEARTH_INFERENCE_DIR", socket_dir)
        .env("HEARTH_INFERENCE_GID", INFERENCE_GID.to_string())
        .env("HEARTH_DATA_VOLUME", format!("{name}-data"))
        .env("HEARTH_PUBLISH", format!("127.0.0.1:{port}"))
        .env("HEARTH_NETWORK", format!("{name}-net"))
        .env("HEARTH_TOKEN_SECRET", format!("{name}-token"))
        .env(
            "HEARTH_PODMAN_ARGS",
            format!("--volume {}:/probe:ro", probe.display()),
        )
        .output()
        .unwrap();
    assert!(
        deploy.status.success(),
        "deploy: {}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    // The gateway logs to stderr; podman gives it back on stderr.
    let logs = || {
        let output = podman::podman().args(["logs", &name]).output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let up = wait_until(Duration::from_secs(20), || {
        hearth_testkit::llama::port_answers(("127.0.0.1", port))
    });
    assert!(up.is_some(), "the gateway did not come up:\n{}", logs());

    // Refusing to publish on every address is part of the script.
    let wide = Command::new(workspace_root().join("podman/deploy-gateway.sh"))
        .env("HEARTH_PUBLISH", "0.0.0.0:18789")
        .output()
        .unwrap();
    assert!(!wide.status.success() && String::from_utf8_lossy(&wide.stderr).contains("refusing"));

    // What podman was told.
    let inspect: Value = serde_json::from_str(&podman_ok(&["inspect", &name])).unwrap();
    let host = &inspect[0]["HostConfig"];
    assert_eq!(host["ReadonlyRootfs"], true);
    assert!(
        host["CapDrop"].as_array().unwrap().len() > 5
            && host["CapAdd"].as_array().is_none_or(Vec::is_empty),
        "{host}"
    );
    assert!(
        host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"),
        "{host}"
    );
    assert!(
        host["Memory"].as_i64().unwrap() > 0 && host["PidsLimit"].as_i64().unwrap() > 0,
        "{host}"
    );
    let bindings = host["PortBindings"].to_string();
    assert!(
        bindings.contains("\"HostIp\":\"127.0.0.1\""),
        "published on loopback only: {bindings}"
    );
    assert_eq!(host["NetworkMode"], "bridge", "not host networking");
    assert!(
        inspect[0]["NetworkSettings"]["Networks"]
            .get(format!("{name}-net"))
            .is_some(),
        "on its own network"
    );

    // What the kernel enforces, seen from inside.
    let report: Value = serde_json::from_str(&podman_ok(&[
        "exec",
        &name,
        "/probe",
        "--write",
        "/",
        "--write",
        "/etc/hearth",
        "--write",
        "/workspace",
        "--write",
        "/var/lib/hearth-gateway",
        "--write",
        "/tmp",
    ]))
    .unwrap();
    for process in [&report, &report["pid1"]] {
        assert_eq!(
            process["cap_eff"], "0000000000000000",
            "no capabilities: {report}"
        );
        assert_eq!(process["no_new_privs"], "1", "no new privileges: {report}");
    }
    assert!(
        report["uid"].as_str().unwrap().starts_with("65532"),
        "not root: {report}"
    );
    for denied in ["/", "/etc/hearth", "/workspace"] {
        assert!(
            report["writes"][denied]
                .as_str()
                .unwrap()
                .contains("Read-only"),
            "{denied}: {report}"
        );
    }
    for allowed in ["/var/lib/hearth-gateway", "/tmp"] {
        assert_eq!(report["writes"][allowed], "ok", "{allowed}: {report}");
    }

    // An encrypted chat through the published port, answered by llama-server.
    let chat = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_hearth-gateway"))
            .args([
                "chat",
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "What should we cook tonight?",
            ])
            .env("HEARTH_GATEWAY_TOKEN", token)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let answered = chat(&token);
    assert!(
        answered.status.success(),
        "chat failed: {}\ngateway log:\n{}",
        String::from_utf8_lossy(&answered.stderr),
        logs()
    );
    assert!(!String::from_utf8_lossy(&answered.stdout).trim().is_empty());
    let refused = chat("not-the-token-at-all");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("401"));

    // SIGTERM stops it cleanly (exit 0, not killed after the timeout).
    podman_ok(&["stop", "--time", "15", &name]);
    let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "0", "stopped cleanly:\n{}", logs());
    drop(llama);
}
