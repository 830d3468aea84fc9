#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! What survives a crash and a clean stop.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hearth_testkit::control_plane::{MapView, Server, register, try_register};

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
    let mut approved_devices = Vec::new();
    for index in 0..5 {
        let device = register(&token, &format!("approved{index}")).await;
        server.cli_ok(&["nodes", "approve", &device.id().to_string()]);
        approved.insert(device.id());
        approved_devices.push(device);
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
    // A node reconnecting gets its full map: every other approved node.
    let view = MapView::open(&approved_devices[0]).await;
    for id in approved.iter().skip(1) {
        assert!(view.has_peer(*id), "node {id} in the map after the restart");
    }
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

    let mut private = vec![
        ("", 0o700),
        ("admin.sock", 0o600),
        ("tls/server.key", 0o600),
        ("tls/node-ca.key", 0o600),
    ];
    if !hearth_testkit::postgres::selected() {
        private.push(("coordinator.db", 0o600));
    }
    for (path, mode) in private {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_serving_restores_into_a_new_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut server = Server::builder(&state)
        .arg("--database")
        .arg("sqlite")
        .arg("--register-burst")
        .arg("500")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let first = register(&token, "first").await;
    let second = register(&token, "second").await;
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}"#,
    )
    .unwrap();
    server.cli_ok(&["policy", "set", policy.to_str().unwrap()]);

    // Registrations keep going while the backup is taken.
    let busy: Vec<_> = (0..20)
        .map(|index| {
            let token = token.clone();
            tokio::spawn(async move { register(&token, &format!("busy{index}")).await })
        })
        .collect();
    let backup = dir.path().join("hearth.backup");
    server.cli_ok(&["backup", backup.to_str().unwrap()]);
    for task in busy {
        task.await.unwrap();
    }
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let refused = server.cli(&["backup", backup.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "a backup never overwrites a file"
    );
    let in_backup: BTreeSet<u64> = {
        // What the backup holds is a consistent prefix of what was served.
        let nodes = server.nodes_json();
        nodes
            .iter()
            .map(|node| node["id"].as_u64().unwrap())
            .collect()
    };
    assert!(server.sigterm().success());

    let restored_state = dir.path().join("restored");
    let output =
        hearth_testkit::control_plane::cli(&restored_state, &["restore", backup.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again =
        hearth_testkit::control_plane::cli(&restored_state, &["restore", backup.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "a restore never writes over a state dir"
    );
    assert_eq!(integrity_check_sqlite(&restored_state).await, "ok");

    let server = Server::builder(&restored_state)
        .address(server.address)
        .arg("--database")
        .arg("sqlite")
        .start();
    let restored: BTreeSet<u64> = server
        .nodes_json()
        .iter()
        .map(|node| node["id"].as_u64().unwrap())
        .collect();
    assert!(restored.contains(&first.id()) && restored.contains(&second.id()));
    assert!(restored.is_subset(&in_backup));
    // The same identity: certificates issued before the backup still work,
    // and so do join tokens; the policy came back too.
    let view = MapView::open(&first).await;
    assert!(view.has_peer(second.id()));
    let filter = serde_json::to_string(&view.filter).unwrap();
    assert!(
        filter.contains(r#""first":22,"last":22"#),
        "the policy (port 22 only) was restored: {filter}"
    );
    register(&token, "after-restore").await;
}

async fn integrity_check_sqlite(state: &std::path::Path) -> String {
    let db = hearth_coordinator::db::Db::open_sqlite(&state.join("coordinator.db"))
        .await
        .unwrap();
    let result = db.integrity_check().await.unwrap();
    db.close().await;
    result
}

/// The second review: `backup FILE` wrote through a planted `FILE.tmp`
/// (and reused a planted partial file), so in a directory others can write
/// to, the coordinator's keys went into a file of the attacker's choosing
/// (or root overwrote another file with the archive).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_never_writes_through_files_planted_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder(&dir.path().join("state"))
        .arg("--database")
        .arg("sqlite")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    // A directory anyone may write to, and the attacker's plants in it.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let attackers = dir.path().join("attackers-file");
    std::fs::write(&attackers, b"untouched").unwrap();
    std::fs::set_permissions(&attackers, std::fs::Permissions::from_mode(0o666)).unwrap();
    let backup = shared.join("hearth.backup");
    for planted in ["hearth.tmp", "hearth.backup.tmp", "hearth.backup.partial"] {
        std::os::unix::fs::symlink(&attackers, shared.join(planted)).unwrap();
    }
    server.cli_ok(&["backup", backup.to_str().unwrap()]);
    let found = std::fs::read(&attackers).unwrap();
    assert!(
        found == b"untouched",
        "the keys went into the attacker's file ({} bytes)",
        found.len()
    );
    let written = std::fs::symlink_metadata(&backup).unwrap();
    assert!(
        written.file_type().is_file(),
        "the backup is a file of its own"
    );
    assert_eq!(written.permissions().mode() & 0o777, 0o600);
    // A link planted at the backup's own name is not written through either.
    let other = shared.join("second.backup");
    std::os::unix::fs::symlink(&attackers, &other).unwrap();
    assert!(
        !server
            .cli(&["backup", other.to_str().unwrap()])
            .status
            .success()
    );
    assert!(std::fs::read(&attackers).unwrap() == b"untouched");
    let leftovers: Vec<String> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The database's integrity check: `PRAGMA integrity_check` through
/// sqlite3's own library (via sqlx), or on PostgreSQL that it answers.
async fn integrity_check(state: &std::path::Path) -> String {
    let db = if hearth_testkit::postgres::selected() {
        hearth_coordinator::db::Db::open_postgres(
            &hearth_testkit::postgres::database_for_state(state),
            None,
        )
        .await
        .unwrap()
    } else {
        hearth_coordinator::db::Db::open_sqlite(&state.join("coordinator.db"))
            .await
            .unwrap()
    };
    let result = db.integrity_check().await.unwrap();
    db.close().await;
    result
}
