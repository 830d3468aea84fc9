#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! What survives a crash and a clean stop.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hearth_testkit::control_plane::{MapView, Server, integrity_check, register, try_register};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_during_registrations_loses_no_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut server = Server::builder(&state)
        .arg("--register-burst")
        .arg("500")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable"]);
    for index in 0..3 {
        server.token(&[
            "--user",
            "alice",
            "--expiration",
            "2h",
            "--tags",
            &format!("tag:t{index}"),
        ]);
    }
    let mut approved = BTreeSet::new();
    for index in 0..5 {
        let device = register(&token, &format!("approved{index}")).await;
        server.cli_ok(&["nodes", "approve", &device.id().to_string()]);
        approved.insert(device.id());
    }
    let keys_before = server.keys_json().len();

    // A stream of concurrent registrations; the server dies in the middle of it.
    let racers: Vec<_> = (0..60)
        .map(|index| {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(index * 5)).await;
                try_register(&token, &format!("racer{index}")).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(120)).await;
    server.kill9();
    let mut acknowledged = BTreeSet::new();
    for racer in racers {
        if let Ok(device) = racer.await.unwrap() {
            acknowledged.insert(device.id());
        }
    }
    println!(
        "{} registrations were acknowledged before the kill",
        acknowledged.len()
    );
    assert_eq!(integrity_check(&state).await, "ok");

    let server = server.restart();
    let nodes = server.nodes_json();
    let present: BTreeSet<u64> = nodes
        .iter()
        .map(|node| node["id"].as_u64().unwrap())
        .collect();
    for id in &approved {
        let node = nodes
            .iter()
            .find(|node| node["id"] == *id)
            .expect("approved node survives");
        assert_eq!(node["state"], "approved");
    }
    assert!(
        acknowledged.is_subset(&present),
        "every acknowledged registration survives"
    );
    assert_eq!(server.keys_json().len(), keys_before);
    // The restarted coordinator still serves the same identity: old tokens and certificates work.
    register(&token, "after-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_streams_and_exits_cleanly_and_state_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut server = Server::start(&state);
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--pre-approved"]);
    let device = register(&token, "laptop").await;
    let mut view = MapView::open(&device).await;

    for (path, mode) in [
        ("", 0o700),
        ("admin.sock", 0o600),
        ("coordinator.db", 0o600),
        ("tls/server.key", 0o600),
        ("tls/node-ca.key", 0o600),
    ] {
        let metadata = std::fs::metadata(state.join(path)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, mode, "{path}");
    }

    let status = server.sigterm();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        server.log_text()
    );
    assert!(!state.join("admin.sock").exists(), "admin socket removed");
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while view.next().await {} }).await;
    assert!(ended.is_ok(), "the map stream ended with the server");
    assert!(server.log_text().contains("stopped"));
    assert_eq!(integrity_check(&state).await, "ok");

    // Same certificate after restart: the device's identity still works.
    let server = server.restart();
    let view = MapView::open(&device).await;
    assert!(view.peers.is_empty());
    drop(server);
    assert!(try_register(&token, "x").await.is_err());
}
