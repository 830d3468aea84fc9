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

use std::time::Duration;

use hearth_testkit::appliance::{HubLogs, Phone, Printed, QUESTION, start_phone};
use hearth_testkit::lab::{Lab, require_tools};
use hearth_testkit::llama::{instruct_model, llama_server_binary, tailscale_client};
use hearth_testkit::podman_hub::{MODEL_PORT, PodmanMachine, model_server};
use hearth_testkit::{podman, wait_until};

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
    // Podman's service, the machine's only service, and the model server
    // on the machine, outside the pod.
    let (machine, _service) = PodmanMachine::start(&mut lab, &hub);
    let mut server = model_server(&mut lab, &hub, &llama, &model);

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
        &format!("server:http://host.containers.internal:{MODEL_PORT}"),
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
    let report = machine.all_well();
    assert_eq!(report["household"], "Parks", "{report}");
    // The image's search model runs in the pod, as locked down as
    // llama-server's; the chat (and the assistant) search by meaning.
    unprivileged(&machine, "embeddings");
    if let Err(first) = phone.chat_finds_by_meaning() {
        panic!("chat search by meaning in the pod: {first}");
    }

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

    // The household moves its model into the pod: setup again, with the
    // packaged small model, which llama-server serves in the pod on the
    // model's socket. The machine's own model server is gone: the next
    // answer can only come from the pod.
    server.terminate(Duration::from_secs(10));
    let moved = machine.hearth_ok(&["setup", "--non-interactive", "--model", "default"]);
    assert!(moved.contains("Starting the model"), "{moved}");
    let report = machine.all_well();
    assert_eq!(report["model"]["kind"], "default", "{report}");
    assert_eq!(report["model"]["answers"], true, "{report}");
    unprivileged(&machine, "llama");
    // (A new container in the pod plays it again: the phone's client
    // finds the hub's agent again first.)
    assert_eq!(wait_for_room(&phone), room);
    let third = phone.ask(&room, "What shall we cook tomorrow?");
    assert!(!third.trim().is_empty());
}

/// Asserts that the pod's container `name` runs unprivileged, read-only,
/// without capabilities.
fn unprivileged(machine: &PodmanMachine, name: &str) {
    let seen = machine.podman_ok(&[
        "container",
        "inspect",
        "--format",
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.EffectiveCaps}}",
        &format!("{}-{name}", machine.pod),
    ]);
    assert!(
        seen.trim() == "65532:65532 true []" || seen.trim() == "65532 true []",
        "{name}'s container is unprivileged, read-only, without capabilities: {seen}"
    );
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
