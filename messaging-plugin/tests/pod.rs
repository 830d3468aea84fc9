//! The shipped pod (podman/hearth-pod.yaml, deployed by podman/deploy-pod.sh)
//! on the hub of a household in network namespaces: the gateway and the
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
use hearth_testkit::wait_until;
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

    let pod = format!("hearth-test-{}", std::process::id());
    let rendered = dir.join("pod.yaml");
    let mut cleanup = Cleanup::default();
    cleanup.kube.push(rendered.clone());
    cleanup.pods.push(pod.clone());
    cleanup.volumes.extend([
        format!("{pod}-gateway-data"),
        format!("{pod}-messaging-data"),
    ]);
    let kube_network = "podman-default-kube-network";
    if !podman::podman()
        .args(["network", "exists", kube_network])
        .status()
        .unwrap()
        .success()
    {
        cleanup.networks.push(kube_network.to_owned());
    }
    // Podman runs in the hub's network namespace (nsenter, not `ip netns
    // exec`, which would hide the cgroup file system): the pod's bridge and
    // its published port live there, on the hub's mesh address.
    let deploy = |action: &str| {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", household.hub.namespace))
            .arg(workspace_root().join("podman/deploy-pod.sh"))
            .arg(action)
            .env(
                "CONTAINERS_CONF",
                workspace_root().join("podman/test/containers.conf"),
            )
            .env("HEARTH_MESH_ADDRESS", household.hub_mesh.to_string())
            .env("HEARTH_POD_NAME", &pod)
            .env("HEARTH_GATEWAY_CONFIG_DIR", &gateway_config)
            .env("HEARTH_MESSAGING_CONFIG_DIR", &messaging_config)
            .env("HEARTH_WORKSPACE_DIR", &workspace)
            .env("HEARTH_DOCUMENTS_DIR", &documents)
            .env(
                "HEARTH_INFERENCE_DIR",
                household.inference_dir.clone().unwrap(),
            )
            .env("HEARTH_WHOIS_DIR", household.whois_dir.clone().unwrap())
            .env("HEARTH_GROUP", GROUP.to_string())
            .env("HEARTH_RENDERED", &rendered)
            .output()
            .unwrap()
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
