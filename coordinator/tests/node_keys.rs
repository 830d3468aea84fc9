#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Node keys expire and rotate: an expired node leaves its peers' maps
//! within a second and is refused; a rotation gives the peers the new key
//! and retires the old certificate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_control::ControlClient;
use hearth_control::tls::{ClientIdentity, generate_key_request};
use hearth_control::wire::{RotateRequest, encode_der};
use hearth_testkit::control_plane::{MapView, Server, register, wireguard_key};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn node(nodes: &[serde_json::Value], id: u64) -> &serde_json::Value {
    nodes.iter().find(|node| node["id"] == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_node_leaves_its_peers_within_a_second_until_approved_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let short = server.token(&["--user", "alice", "--pre-approved", "--key-expiry", "3s"]);
    let default = server.token(&["--user", "alice", "--pre-approved", "--reusable"]);
    let tagged = server.token(&["--user", "alice", "--pre-approved", "--tags", "tag:server"]);
    let expiring = register(&short, "expiring").await;
    let watcher = register(&default, "watcher").await;
    let server_node = register(&tagged, "server").await;
    let registered = now();

    let nodes = server.nodes_json();
    let expiry = node(&nodes, expiring.id())["key_expiry"].as_i64().unwrap();
    assert!((expiry as f64 - registered).abs() < 3.5, "3 s lifetime");
    let default_expiry = node(&nodes, watcher.id())["key_expiry"].as_i64().unwrap();
    let days = (default_expiry as f64 - registered) / 86_400.0;
    assert!((days - 180.0).abs() < 0.01, "180 days by default: {days}");
    assert!(
        node(&nodes, server_node.id())["key_expiry"].is_null(),
        "tagged: never"
    );
    assert!(server.cli_ok(&["nodes", "list"]).contains("KEY EXPIRES"));

    let mut view = MapView::open(&watcher).await;
    assert!(view.has_peer(expiring.id()));
    view.wait_until(Duration::from_secs(6), |view| !view.has_peer(expiring.id()))
        .await;
    let late = now() - expiry as f64;
    println!("the expired node left its peer's map {late:.3} s after its keys expired");
    assert!(late < 1.0, "{late} s after the expiry");
    assert_eq!(
        node(&server.nodes_json(), expiring.id())["state"],
        "expired"
    );

    // Its keys are refused: no map, no rotation.
    let refused = expiring.client.map_stream().await.err().unwrap();
    assert_eq!(refused.code(), Some("node_not_admitted"), "{refused}");
    let key_request = generate_key_request("expiring").unwrap();
    let refused = expiring
        .client
        .rotate(&RotateRequest {
            wireguard_key: wireguard_key(),
            csr_der: encode_der(&key_request.csr_der),
        })
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Some("node_not_admitted"), "{refused}");

    // An admin lets it back in: fresh keys' lifetime, peers see it again.
    server.cli_ok(&["nodes", "approve", &expiring.id().to_string()]);
    view.wait_until(Duration::from_secs(1), |view| view.has_peer(expiring.id()))
        .await;
    let renewed = node(&server.nodes_json(), expiring.id())["key_expiry"]
        .as_i64()
        .unwrap();
    assert!(renewed > expiry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_gives_peers_the_new_key_and_retires_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&[
        "--user",
        "alice",
        "--pre-approved",
        "--reusable",
        "--key-expiry",
        "1h",
    ]);
    let rotating = register(&token, "rotating").await;
    let watcher = register(&token, "watcher").await;
    let mut view = MapView::open(&watcher).await;
    let old_key = view.details[&rotating.id()].wireguard_key;
    let old_expiry = node(&server.nodes_json(), rotating.id())["key_expiry"]
        .as_i64()
        .unwrap();

    // Another node's key is refused.
    let key_request = generate_key_request("rotating").unwrap();
    let nodes = server.nodes_json();
    let watcher_key: hearth_control::wire::WireGuardKey =
        node(&nodes, watcher.id())["wireguard_key"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let refused = rotating
        .client
        .rotate(&RotateRequest {
            wireguard_key: watcher_key,
            csr_der: encode_der(&key_request.csr_der),
        })
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Some("already_registered"));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_key = wireguard_key();
    let rotated = rotating
        .client
        .rotate(&RotateRequest {
            wireguard_key: new_key,
            csr_der: encode_der(&key_request.csr_der),
        })
        .await
        .unwrap();
    assert!(
        rotated.node.key_expiry.unwrap() > old_expiry,
        "a fresh lifetime"
    );
    assert_eq!(rotated.node.key_lifetime, Some(3600));

    // The peer learns the new key in a delta.
    view.wait_until(Duration::from_secs(1), |view| {
        view.details[&rotating.id()].wireguard_key == new_key
    })
    .await;
    assert_ne!(old_key, new_key);

    // The old certificate no longer authenticates; the new one does.
    let refused = rotating.client.map_stream().await.err().unwrap();
    assert_eq!(refused.code(), Some("unknown_node"), "{refused}");
    let identity = ClientIdentity {
        certificate_pem: rotated.client_certificate_pem,
        key_pem: key_request.key_pem,
    };
    let client = ControlClient::new(&token.url, token.fingerprint, Some(&identity)).unwrap();
    client.map_stream().await.unwrap();
    // The same client object switches identity for every clone.
    rotating.client.set_identity(&identity).unwrap();
    rotating.client.map_stream().await.unwrap();
}
