//! The hub in Podman alone, as on a machine without systemd (a Mac's
//! `podman machine`, a NAS): nothing but Podman's service runs on the
//! "machine", a lab host's network namespace. `podman/hearth-podman setup`
//! (the hub's image, run with its volumes and the service's socket) asks
//! nothing (its flags answer), plays the hub's pod through Podman's API and
//! prints the first member's key; the official Tailscale client on a phone
//! in its own namespace joins with it, reaches the chat by the name setup
//! printed and gets the assistant's answer from a model server on the
//! machine outside the pod (a real llama-server, reached at
//! host.containers.internal as the Mac's own Ollama would be). A backup
//! taken while it runs brings the household back after the pod and every
//! volume are gone: the phone's device, its room and its history. Real
//! Podman (no systemd: this machine has none as PID 1), WireGuard in
//! userspace, llama.cpp, Tailscale. Needs root and podman; outside CI it
//! skips without them.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hearth_testkit::appliance::{HubLogs, Phone, Printed, QUESTION, start_phone};
use hearth_testkit::lab::{Lab, require_tools};
use hearth_testkit::llama::{
    instruct_model, llama_server_binary, tailscale_client, workspace_root,
};
use hearth_testkit::{podman, wait_until};

/// The hub's volumes, by what follows the pod's name.
const VOLUMES: [&str; 15] = [
    "etc",
    "etc-gateway",
    "etc-messaging",
    "coordinator",
    "agent",
    "gateway",
    "messaging",
    "hub",
    "workspace",
    "documents",
    "whois",
    "tmp-coordinator",
    "tmp-agent",
    "tmp-gateway",
    "tmp-messaging",
];

/// The machine: Podman's service in the lab host `hub`'s namespace, and
/// everything the test made through it, removed when dropped.
struct PodmanMachine {
    socket: PathBuf,
    pod: String,
    dir: PathBuf,
}

impl PodmanMachine {
    /// `podman` talking to the machine's service.
    fn podman(&self) -> Command {
        let mut command = podman::podman();
        command
            .arg("--url")
            .arg(format!("unix://{}", self.socket.display()));
        command
    }

    /// `podman/hearth-podman ARGS` on the machine, from the lab's folder.
    fn hearth(&self, args: &[&str]) -> std::process::Output {
        Command::new(workspace_root().join("podman/hearth-podman"))
            .args(args)
            .env(
                "PODMAN",
                format!("podman --url unix://{}", self.socket.display()),
            )
            .env("HEARTH_POD", &self.pod)
            .env("HEARTH_PODMAN_SOCKET", &self.socket)
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    /// [`PodmanMachine::hearth`], which must succeed; what it printed.
    fn hearth_ok(&self, args: &[&str]) -> String {
        let output = self.hearth(args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "hearth-podman {args:?}: {said}\n{}",
            self.service_logs()
        );
        said
    }

    /// Removes the pod and the hub's volumes (what a lost machine loses).
    fn wipe(&self) {
        let _ = self
            .podman()
            .args(["pod", "rm", "--force", &self.pod])
            .output();
        for volume in VOLUMES {
            let _ = self
                .podman()
                .args(["volume", "rm", "--force", &format!("{}-{volume}", self.pod)])
                .output();
        }
    }
}

impl HubLogs for PodmanMachine {
    fn container_logs(&self, name: &str) -> String {
        let name = name.replace("hearth-", &format!("{}-", self.pod));
        let output = self.podman().args(["logs", "--tail", "30", &name]).output();
        output
            .map(|output| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            })
            .unwrap_or_default()
    }

    fn service_logs(&self) -> String {
        ["coordinator", "agent", "gateway", "messaging"]
            .iter()
            .map(|name| {
                format!(
                    "--- {name}\n{}",
                    self.container_logs(&format!("hearth-{name}"))
                )
            })
            .collect()
    }
}

impl Drop for PodmanMachine {
    fn drop(&mut self) {
        if std::env::var_os("HEARTH_TEST_KEEP_POD").is_some() {
            eprintln!("kept: pod {} at {}", self.pod, self.socket.display());
            return;
        }
        self.wipe();
        let _ = self
            .podman()
            .args(["network", "rm", "--force", &self.pod])
            .output();
    }
}

#[test]
fn the_hub_in_podman_alone_answers_a_phone_and_comes_back_from_a_backup() {
    if podman::available().is_none() || require_tools(&["curl", "ip"]).is_none() {
        return;
    }
    let (Some(client), Some(llama), Some(model)) =
        (tailscale_client(), llama_server_binary(), instruct_model())
    else {
        return;
    };
    podman::build_images(&["hub", "gateway", "messaging"]);
    let mut lab = Lab::new().unwrap();
    let hub = lab.host("hub");
    let phone_host = lab.host("phone");
    // Podman's service, the machine's only service, in the hub's namespace:
    // its pods' bridges and published ports are the namespace's.
    let socket = lab.dir.path().join("podman.sock");
    // `ip netns exec` would mount a /sys of its own, and with it lose the
    // cgroup file system the runtime needs: only the network is entered.
    let mut service = Command::new("nsenter");
    service
        .arg(format!("--net=/run/netns/{}", hub.namespace))
        .arg("podman")
        .env(
            "CONTAINERS_CONF",
            workspace_root().join("podman/test/containers.conf"),
        )
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()));
    let service = lab.spawn(&hub, "podman-service", service);
    let machine = PodmanMachine {
        socket: socket.clone(),
        pod: format!("hth{}", std::process::id() % 100_000),
        dir: lab.dir.path().to_owned(),
    };
    wait_until(Duration::from_secs(30), || {
        machine
            .podman()
            .args(["info"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
    .unwrap_or_else(|| panic!("Podman's service did not answer: {}", service.log_text()));
    // The model server on the machine, outside the pod.
    let mut server = lab.command(&hub, &llama);
    server.arg("-m").arg(&model).args([
        "--host",
        "0.0.0.0",
        "--port",
        "18080",
        "-c",
        "8192",
        "--parallel",
        "1",
    ]);
    let server = lab.spawn(&hub, "llama-server", server);
    wait_until(Duration::from_secs(60), || {
        lab.try_exec(&hub, &["curl", "-sf", "http://127.0.0.1:18080/health"])
            .status
            .success()
    })
    .unwrap_or_else(|| panic!("llama-server: {}", server.log_text()));

    let url = format!("https://{}", hub.address);
    let printed = machine.hearth_ok(&[
        "setup",
        "--non-interactive",
        "--household",
        "Parks",
        "--url",
        &url,
        "--admin",
        "ada",
        "--model",
        "server:http://host.containers.internal:18080",
        "--lang",
        "en",
    ]);
    let Printed { key, chat_name, .. } = Printed::read(&printed);
    assert_eq!(chat_name, "http://chat.hearth.internal:18790");

    // The phone joins with the printed key over the plain-HTTP login port
    // the pod publishes on the machine.
    let login = format!("http://{}", hub.address);
    let node = start_phone(&mut lab, &phone_host, &client);
    let joined = node.up_at(&lab, &login, &key, &["--timeout", "60s"]);
    assert!(
        joined.status.success(),
        "tailscale up: {}\n{}",
        String::from_utf8_lossy(&joined.stderr),
        machine.service_logs()
    );
    let phone = Phone {
        lab: &lab,
        machine: &machine,
        host: phone_host.clone(),
        node,
        chat: chat_name.clone(),
    };
    let room = wait_for_room(&phone);
    let answer = phone.ask(&room, QUESTION);
    assert!(!answer.trim().is_empty());
    let status = machine.hearth_ok(&["status"]);
    assert!(status.contains("Parks"), "{status}");

    // A backup while it runs; the machine loses the pod and every volume;
    // the backup brings the household back.
    let passphrase = lab.dir.path().join("passphrase");
    std::fs::write(&passphrase, "a passphrase we will remember\n").unwrap();
    machine.hearth_ok(&["backup", "hub.tar", "--passphrase-file", "passphrase"]);
    assert!(lab.dir.path().join("hub.tar").exists());
    machine.wipe();
    let restored = machine.hearth_ok(&[
        "restore",
        "hub.tar",
        "--passphrase-file",
        "passphrase",
        "--yes",
    ]);
    assert!(restored.contains("is whole and authentic"), "{restored}");
    let history = wait_for_history(&phone, &room);
    assert!(
        history.iter().any(|message| message["body"] == QUESTION),
        "the room's history came back: {history:?}"
    );
    let again = phone.ask(&room, "And for dessert?");
    assert!(!again.trim().is_empty());
}

/// The DM with the assistant, once the phone reaches the chat (its client
/// finding the hub, by relay or directly).
fn wait_for_room(phone: &Phone<'_>) -> String {
    let mut said = String::new();
    wait_until(Duration::from_secs(90), || {
        let (status, text) = phone.http("GET", "/api/me", None);
        said = text;
        status == 200
    })
    .unwrap_or_else(|| {
        panic!(
            "the phone never reached the chat: {said}\n{}",
            phone.machine.service_logs()
        )
    });
    phone.assistant_room()
}

/// The room's history, once the restored hub answers again.
fn wait_for_history(phone: &Phone<'_>, room: &str) -> Vec<serde_json::Value> {
    let mut said = String::new();
    wait_until(Duration::from_secs(120), || {
        let (status, text) = phone.http("GET", "/api/me", None);
        said = text;
        status == 200
    })
    .unwrap_or_else(|| {
        let daemon = phone.node.daemon.log_text();
        let tail = &daemon[daemon.len().saturating_sub(4000)..];
        panic!(
            "the phone never reached the restored chat: {said}\n{}\nthe phone's tailscaled:\n{tail}",
            phone.machine.service_logs()
        )
    });
    phone.messages(room)
}
