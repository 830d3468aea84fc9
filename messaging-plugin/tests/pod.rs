//! The shipped pod (podman/hearth-pod.yaml, filled in by `hearth pod
//! render` as hearth-pod.service does, played with `podman kube play`) on
//! the hub of a household in network namespaces: the gateway and the
//! messaging service run as containers, the messaging port is published on
//! the hub's mesh address only, the model is llama-server on the hub reached
//! through its socket, callers are named through the agent's whois-only
//! socket. The phone asks the assistant over the mesh and gets its answer;
//! `podman kube down` removes the pod. Real Podman, real WireGuard, real
//! llama-server. Needs root, podman and the musl target; outside CI it skips.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use hearth_testkit::household::SECOND;
use hearth_testkit::household::{Household, Options};
use hearth_testkit::llama::workspace_root;
use hearth_testkit::podman::{self, Cleanup, podman_ok};
use hearth_testkit::{binary, wait_until};
use serde_json::{Value, json};

const GROUP: u32 = 64_124;

#[test]
fn the_pod_serves_the_household_from_containers() {
    if podman::available().is_none() {
        return;
    }
    podman::build_images(&["gateway", "messaging"]);
    let options = Options {
        outsiders: false,
        rooms: vec!["household".into()],
        services: false,
        container_group: Some(GROUP),
        ..Options::default()
    };
    let Some(household) = Household::start(options) else {
        return;
    };
    let dir = household.lab.dir.path().join("pod");
    let (gateway_config, messaging_config, workspace, documents) = (
        dir.join("gateway"),
        dir.join("messaging"),
        dir.join("workspace"),
        dir.join("documents"),
    );
    for made in [&gateway_config, &messaging_config, &workspace, &documents] {
        std::fs::create_dir_all(made).unwrap();
    }
    // A household PDF, read inside the locked-down container by its PDF
    // reader (a child process of the gateway, under limits).
    hearth_testkit::webdriver::print_pdf(
        "<h1>The boiler</h1><p>To reset the boiler, hold the red button for ten seconds.</p>",
        &documents.join("boiler.pdf"),
        &dir.join("chromium"),
    )
    .unwrap();
    std::fs::write(
        gateway_config.join("gateway.json5"),
        json!({
            "gateway": {"port": 18789, "bind": "loopback", "auth": {"tokenFile": "/etc/hearth/gateway.token"}},
            "models": {"providers": {"llamacpp": {"baseUrl": "unix:/run/hearth-inference/inference.sock", "api": "openai-completions",
                "timeoutSeconds": 20, "models": [{"id": "tiny", "contextWindow": 2048, "maxTokens": 24}]}}},
            "agents": {"defaults": {"model": {"primary": "llamacpp/tiny"}, "workspace": "/workspace"}},
            "hearth": {"dataDir": "/var/lib/hearth-gateway",
                       "assistant": {"documents": [{"name": "house", "path": "/documents"}], "rescanSeconds": 1}},
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        messaging_config.join("messaging.json5"),
        json!({
            "listen": "0.0.0.0", "port": 18790,
            "agentSocket": "/run/hearth-whois/whois.sock",
            "dataDir": "/var/lib/hearth-messaging",
            "rooms": ["household"],
            "assistant": {"gatewayUrl": "http://127.0.0.1:18789", "gatewayTokenFile": "/etc/hearth/gateway.token", "maxTokens": 24},
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        workspace.join("SOUL.md"),
        "You are the household's assistant.\n",
    )
    .unwrap();

    // The bearer token between the two containers, one copy in each
    // configuration, readable by the containers' user only (as setup makes it).
    let token = format!("{:032x}", rand::random::<u128>());
    for folder in [&gateway_config, &messaging_config] {
        let path = folder.join("gateway.token");
        std::fs::write(&path, &token).unwrap();
        std::os::unix::fs::chown(&path, Some(65_532), Some(GROUP)).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    let (gateway_data, messaging_data) = (dir.join("gateway-data"), dir.join("messaging-data"));
    for data in [&gateway_data, &messaging_data] {
        std::fs::create_dir_all(data).unwrap();
        std::os::unix::fs::chown(data, Some(65_532), Some(65_532)).unwrap();
        std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
    }

    let pod = format!("hearth-test-{}", std::process::id());
    let rendered = dir.join("pod.yaml");
    let mut cleanup = Cleanup::default();
    cleanup.kube.push(rendered.clone());
    cleanup.pods.push(pod.clone());
    // The pod's own network, as hearth-pod.service makes one.
    let network = format!("hearth-test-{}", std::process::id());
    let made = podman::podman()
        .args(["network", "create", &network])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "podman network create: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    cleanup.networks.push(network.clone());
    let render = Command::new(binary("hearth"))
        .args(["pod", "render", "--output"])
        .arg(&rendered)
        .arg("--template")
        .arg(workspace_root().join("podman/hearth-pod.yaml"))
        .args([
            "--pod",
            &pod,
            "--group",
            &GROUP.to_string(),
            "--admin",
            "ada",
        ])
        .args(["--mesh-address", &household.hub_mesh.to_string()])
        .args(["--gateway-image", "localhost/hearth-gateway:latest"])
        .args(["--messaging-image", "localhost/hearth-messaging:latest"])
        .arg("--gateway-config")
        .arg(&gateway_config)
        .arg("--messaging-config")
        .arg(&messaging_config)
        .arg("--workspace")
        .arg(&workspace)
        .arg("--documents")
        .arg(&documents)
        .arg("--inference")
        .arg(household.inference_dir.clone().unwrap())
        .arg("--whois")
        .arg(household.whois_dir.clone().unwrap())
        .arg("--gateway-data")
        .arg(&gateway_data)
        .arg("--messaging-data")
        .arg(&messaging_data)
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "hearth pod render: {}",
        String::from_utf8_lossy(&render.stderr)
    );
    // Podman runs in the hub's network namespace (nsenter, not `ip netns
    // exec`, which would hide the cgroup file system): the pod's bridge and
    // its published port live there, on the hub's mesh address.
    let deploy = |action: &str| {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", household.hub.namespace))
            .arg("podman")
            .args(["kube", action]);
        if action == "play" {
            command.args(["--network", &network]);
        }
        command.arg(&rendered).env(
            "CONTAINERS_CONF",
            workspace_root().join("podman/test/containers.conf"),
        );
        command.output().unwrap()
    };
    let played = deploy("play");
    assert!(
        played.status.success(),
        "kube play: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    let logs = |container: &str| {
        let output = podman::podman()
            .args(["logs", &format!("{pod}-{container}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    // Both containers serve before anyone asks (the test waits on their
    // own readiness lines, never on time; the assistant would wait for a
    // gateway still starting anyway, see household.rs).
    for (container, ready) in [
        ("gateway", "gateway serving"),
        ("messaging", "messaging serving"),
    ] {
        wait_until(60 * SECOND, || logs(container).contains(ready)).unwrap_or_else(|| {
            panic!(
                "the {container} container did not start: {}",
                logs(container)
            )
        });
    }

    // The laptop reaches the messaging service over the mesh and is known as ada.
    let url = household.url();
    let mut me = String::new();
    let reached = wait_until(30 * SECOND, || {
        let output = household
            .lab
            .command(&household.laptop, "curl")
            .args(["-s", "-m", "2", &format!("{url}/api/me")])
            .output()
            .unwrap();
        me = String::from_utf8_lossy(&output.stdout).into_owned();
        me.contains("\"user\"")
    });
    assert!(
        reached.is_some(),
        "the pod's messaging is not reachable: {me}\n{}",
        logs("messaging")
    );
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(
        (me["user"].as_str(), me["node"].as_str()),
        (Some("ada"), Some("laptop")),
        "named through the whois socket"
    );

    // The phone asks the assistant; the answer comes from llama-server on the hub.
    let asked = household.cli(
        &household.phone,
        &["ask", "--room", "household", "what is for dinner?"],
    );
    assert!(
        asked.status.success(),
        "ask failed: {}\ngateway:\n{}\nmessaging:\n{}",
        String::from_utf8_lossy(&asked.stderr),
        logs("gateway"),
        logs("messaging")
    );
    assert!(!String::from_utf8_lossy(&asked.stdout).trim().is_empty());
    let history = household.cli_ok(
        &household.laptop,
        &["tail", "--room", "household", "--count", "0"],
    );
    assert!(
        history.contains("ben: @assistant what is for dinner?")
            && history.contains("] assistant: "),
        "{history}"
    );

    // The gateway read the household's PDF inside its container, and an
    // answer from it names it.
    let listed = wait_until(60 * SECOND, || {
        household
            .cli_ok(&household.laptop, &["documents", "--room", "household"])
            .contains("house/boiler.pdf")
    });
    assert!(
        listed.is_some(),
        "the PDF was not indexed in the container: {}\n{}",
        household.cli_ok(&household.laptop, &["documents", "--room", "household"]),
        logs("gateway")
    );
    let answer = household.cli_ok(
        &household.laptop,
        &["ask", "--room", "household", "how do I reset the boiler?"],
    );
    assert!(answer.contains("Sources: boiler.pdf, page 1"), "{answer}");

    // Both containers run as the YAML says.
    for container in ["gateway", "messaging"] {
        let inspect: Value =
            serde_json::from_str(&podman_ok(&["inspect", &format!("{pod}-{container}")])).unwrap();
        let host = &inspect[0]["HostConfig"];
        assert_eq!(host["ReadonlyRootfs"], true, "{container}");
        assert!(
            host["SecurityOpt"]
                .to_string()
                .contains("no-new-privileges"),
            "{container}: {host}"
        );
        assert!(
            host["CapDrop"].as_array().unwrap().len() > 5,
            "{container}: {host}"
        );
        assert!(host["Memory"].as_i64().unwrap() > 0, "{container}: {host}");
        assert_eq!(
            inspect[0]["Config"]["User"].as_str().unwrap(),
            format!("65532:{GROUP}"),
            "{container}"
        );
    }

    // Down: the pod is gone.
    let down = deploy("down");
    assert!(
        down.status.success(),
        "kube down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    let exists = podman::podman()
        .args(["pod", "exists", &pod])
        .status()
        .unwrap();
    assert!(!exists.success(), "the pod is still there after kube down");
}
