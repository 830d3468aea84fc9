#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Coordinators on PostgreSQL (a real server from Debian, started by the
//! test): two coordinator processes sharing one database, and a SQLite
//! state moved into PostgreSQL with `db migrate-to`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use hearth_control::JoinToken;
use hearth_testkit::control_plane::{MapView, Server, register, try_register};

/// A coordinator on `state` keeping its state in the database at `url`.
fn start_on(state: &Path, url: &str) -> Server {
    Server::builder(state)
        .arg("--database")
        .arg(url)
        .arg("--register-burst")
        .arg("500")
        .start()
}

/// `token`, pointed at `server` instead (the same certificate: shared identity).
fn via(token: &JoinToken, server: &Server) -> JoinToken {
    let mut token = token.clone();
    token.url = format!("https://{}", server.address);
    token
}

/// Polls `server`'s node list until `done` holds (within 5 s).
fn wait_for_nodes(
    server: &Server,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let nodes = server.nodes_json();
        if done(&nodes) {
            return nodes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node list never got there: {nodes:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two coordinators sharing one fresh database (and an identity) in `dir`.
fn two_on_one_database(
    cluster: &hearth_testkit::postgres::Cluster,
    dir: &Path,
) -> (Server, Server) {
    let url = cluster.fresh_database();
    let (state_a, state_b) = (dir.join("a"), dir.join("b"));
    let a = start_on(&state_a, &url);
    share_identity(&state_a, &state_b);
    let b = start_on(&state_b, &url);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_coordinators_on_one_database_admit_a_single_use_key_once_and_follow_each_other() {
    let Some(cluster) = hearth_testkit::postgres::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_on_one_database(cluster, dir.path());
    a.cli_ok(&["users", "create", "alice"]);

    // 50 racers on one single-use key, split between the two processes.
    let single = a.token(&["--user", "alice"]);
    let racers: Vec<_> = (0..50)
        .map(|index| {
            let token = if index % 2 == 0 {
                single.clone()
            } else {
                via(&single, &b)
            };
            tokio::spawn(async move { try_register(&token, &format!("racer{index}")).await })
        })
        .collect();
    let mut admitted = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(error) => assert_eq!(error.code(), Some("key_used"), "{error}"),
        }
    }
    assert_eq!(admitted, 1, "exactly one racer is admitted");
    assert_eq!(wait_for_nodes(&a, |nodes| nodes.len() == 1).len(), 1);
    assert_eq!(wait_for_nodes(&b, |nodes| nodes.len() == 1).len(), 1);
    assert_eq!(b.keys_json()[0]["use_count"], 1);

    // Registrations at the same moment on both pick clashing ids and
    // addresses; the loser reads the other's node and tries again.
    let reusable = a.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let devices: Vec<_> = (0..40)
        .map(|index| {
            let token = if index % 2 == 0 {
                reusable.clone()
            } else {
                via(&reusable, &b)
            };
            tokio::spawn(async move { register(&token, &format!("both{index}")).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for device in devices {
        ids.insert(device.await.unwrap().id());
    }
    assert_eq!(ids.len(), 40, "every registration got its own id");
    for server in [&a, &b] {
        let nodes = wait_for_nodes(server, |nodes| nodes.len() == 41);
        let addresses: BTreeSet<&str> = nodes
            .iter()
            .map(|node| node["ipv4"].as_str().unwrap())
            .collect();
        assert_eq!(addresses.len(), 41, "no address is given twice");
    }

    // A node streaming from A hears, within a second, of changes made on B.
    let watcher = register(&reusable, "watcher").await;
    let mut view = MapView::open(&watcher).await;
    let newcomer = register(&via(&reusable, &b), "newcomer").await;
    let took = view
        .wait_until(Duration::from_secs(1), |view| view.has_peer(newcomer.id()))
        .await;
    println!("a node registered on B reached A's stream in {took:?}");
    b.cli_ok(&["nodes", "delete", &newcomer.id().to_string()]);
    view.wait_until(Duration::from_secs(1), |view| !view.has_peer(newcomer.id()))
        .await;
    // A policy set on B is A's too.
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"acls": []}"#).unwrap();
    b.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    view.wait_until(Duration::from_secs(1), |view| view.peers.is_empty())
        .await;
}

/// The fourth review, reading the coordinator: users were never announced
/// between coordinators sharing a database (only nodes, the policy and
/// relays were), so a user renamed on one kept the old name on the other:
/// in its node list, in whois, and in the policy its nodes' maps follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_renamed_on_one_coordinator_is_renamed_on_the_other() {
    let Some(cluster) = hearth_testkit::postgres::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_on_one_database(cluster, dir.path());
    a.cli_ok(&["users", "create", "alice"]);
    a.cli_ok(&["users", "create", "bob"]);
    let alices = a.token(&["--user", "alice", "--pre-approved"]);
    let bobs = a.token(&["--user", "bob", "--pre-approved"]);
    let laptop = register(&alices, "laptop").await;
    let server = register(&bobs, "server").await;
    // The laptop follows its map from A; the policy names the new name.
    let mut view = MapView::open(&laptop).await;
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["ada@"], "dst": ["bob@:*"]}]}"#,
    )
    .unwrap();
    b.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    view.wait_until(Duration::from_secs(2), |view| view.peers.is_empty())
        .await;

    // Renamed on B: A names the laptop's user ada, and its map follows.
    b.cli_ok(&["users", "rename", "alice", "ada"]);
    let nodes = wait_for_nodes(&a, |nodes| {
        nodes
            .iter()
            .any(|node| node["name"] == "laptop" && node["user"] == "ada")
    });
    assert!(
        nodes.iter().all(|node| node["user"] != "alice"),
        "{nodes:#?}"
    );
    view.wait_until(Duration::from_secs(2), |view| view.has_peer(server.id()))
        .await;
}

/// Every node's map, as the node sees it: peers and filter, as JSON.
async fn maps(
    devices: &[hearth_testkit::control_plane::Device],
) -> BTreeMap<u64, serde_json::Value> {
    let mut maps = BTreeMap::new();
    for device in devices {
        let view = MapView::open(device).await;
        let peers: Vec<serde_json::Value> = view
            .details
            .values()
            .map(|peer| {
                let mut peer = serde_json::to_value(peer).unwrap();
                // Whether it is online right now is not state.
                peer.as_object_mut().unwrap().remove("online");
                peer
            })
            .collect();
        // The test harness gives the restarted server a fresh STUN port.
        let relays: Vec<(u16, String, String)> = view
            .relays
            .iter()
            .map(|relay| (relay.id, relay.code.clone(), relay.url.clone()))
            .collect();
        maps.insert(
            device.id(),
            serde_json::json!({"peers": peers, "filter": view.filter, "relays": relays}),
        );
    }
    maps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_to_moves_a_populated_sqlite_state_and_the_same_maps_are_served() {
    let Some(cluster) = hearth_testkit::postgres::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut server = Server::builder(&state)
        .arg("--database")
        .arg("sqlite")
        .start();
    for user in ["alice", "bob"] {
        server.cli_ok(&["users", "create", user]);
    }
    let alice = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let bob = server.token(&["--user", "bob", "--reusable"]);
    let servers = server.token(&[
        "--user",
        "alice",
        "--reusable",
        "--pre-approved",
        "--tags",
        "tag:server",
    ]);
    let mut devices = Vec::new();
    for index in 0..3 {
        devices.push(register(&alice, &format!("alice{index}")).await);
    }
    for index in 0..2 {
        let device = register(&bob, &format!("bob{index}")).await;
        server.cli_ok(&["nodes", "approve", &device.id().to_string()]);
        devices.push(device);
    }
    devices.push(register(&servers, "server").await);
    let pending = register(&bob, "pending").await;
    server.cli_ok(&["users", "create", "carol"]);
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"tagOwners": {"tag:server": ["alice@"]},
            "acls": [
              {"action": "accept", "src": ["alice@"], "dst": ["*:*"]},
              {"action": "accept", "src": ["bob@"], "dst": ["tag:server:443"]}
            ]}"#,
    )
    .unwrap();
    server.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    let nodes_before = server.nodes_json();
    let keys_before = server.keys_json();
    let users_before = server.cli_ok(&["users", "list", "--output", "json"]);
    let maps_before = maps(&devices).await;
    assert!(server.sigterm().success());

    let url = cluster.fresh_database();
    let output = hearth_testkit::control_plane::cli(&state, &["db", "migrate-to", &url]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(report.contains("nodes: 7 rows"), "{report}");
    // A second copy into the now-populated database is refused.
    let again = hearth_testkit::control_plane::cli(&state, &["db", "migrate-to", &url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let server = Server::builder(&state)
        .address(server.address)
        .arg("--database")
        .arg(&url)
        .start();
    let strip = |nodes: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        nodes
            .into_iter()
            .map(|mut node| {
                node.as_object_mut().unwrap().remove("online");
                node
            })
            .collect()
    };
    assert_eq!(strip(server.nodes_json()), strip(nodes_before));
    assert_eq!(server.keys_json(), keys_before);
    assert_eq!(
        server.cli_ok(&["users", "list", "--output", "json"]),
        users_before
    );
    assert_eq!(
        maps(&devices).await,
        maps_before,
        "the same maps are served"
    );
    // The copied state keeps working: the pending node can be approved, a
    // new user's node registers with the next free id and address.
    server.cli_ok(&["nodes", "approve", &pending.id().to_string()]);
    let carol = server.token(&["--user", "carol"]);
    let newcomer = register(&carol, "newcomer").await;
    assert!(newcomer.id() > pending.id());
}

/// Gives state dir `to` the identity (certificates, keys) of `from`, as a
/// second coordinator on the same PostgreSQL database needs.
fn share_identity(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for dir in [to.to_owned(), to.join("tls")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    for name in hearth_coordinator::state_dir::IDENTITY_FILES {
        let contents = std::fs::read(from.join(name)).unwrap();
        hearth_coordinator::state_dir::write_private(&to.join(name), &contents).unwrap();
    }
}
