//! The router's HTTP edge, on loopback: who may heartbeat, what is refused
//! and how, what clients are shown, and what happens when a chosen node
//! cannot be reached. The second review's attacks: a node credential (then
//! one token for every node) taking another node's id, node URLs making
//! the router a client of any address, a node list bloated past what
//! clients read, and every oblivious client sharing one per-source budget.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hearth_pcc::protocol::Heartbeat;
use hearth_testkit::binary;
use hearth_testkit::compute::{LoopbackRouter, stand_in_heartbeat};
use hearth_testkit::llama::free_port;
use serde_json::{Value, json};

fn start() -> LoopbackRouter {
    let router = LoopbackRouter::start(&["--node-timeout-seconds", "2"]);
    let mode = std::fs::metadata(&router.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    router
}

fn heartbeat(node: &str, url: &str) -> Heartbeat {
    stand_in_heartbeat(node, url, 4)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn only_credential_holders_heartbeat_and_clients_see_the_bundle_unchanged() {
    let router = start();
    let http = reqwest::Client::new();
    let beat = heartbeat("node-a", "http://127.0.0.1:9");
    let credential = router.credential("node-a");
    let post = |token: Option<&str>| {
        let request = http
            .post(format!("{}/v1/nodes/heartbeat", router.url))
            .json(&beat);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    assert_eq!(
        code(post(None).send().await.unwrap()).await,
        (401, "unauthenticated".into())
    );
    assert_eq!(
        code(post(Some("a-guess-of-the-token-000")).send().await.unwrap()).await,
        (401, "unauthenticated".into())
    );
    // The router's key is what credentials are made from, not one.
    assert_eq!(
        code(post(Some(&router.token)).send().await.unwrap()).await,
        (401, "unauthenticated".into())
    );
    let accepted = post(Some(&credential)).send().await.unwrap();
    assert_eq!(accepted.status(), 200);
    let reply: Value = accepted.json().await.unwrap();
    assert_eq!(reply["interval_seconds"], 5);

    let listed: Value = get_json(&http, &format!("{}/v1/nodes", router.url)).await;
    assert_eq!(listed["nodes"][0]["node"], "node-a");
    assert_eq!(
        listed["nodes"][0]["bundle"],
        serde_json::to_value(&beat.bundle).unwrap()
    );

    // A heartbeat naming a host instead of an address, or not JSON.
    let mut named = heartbeat("node-b", "http://node-b.example:7000");
    named.models = vec!["tiny".into()];
    let refused = http
        .post(format!("{}/v1/nodes/heartbeat", router.url))
        .bearer_auth(router.credential("node-b"))
        .json(&named)
        .send()
        .await
        .unwrap();
    assert_eq!(code(refused).await, (400, "malformed".into()));
    let refused = http
        .post(format!("{}/v1/nodes/heartbeat", router.url))
        .bearer_auth(&credential)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(code(refused).await, (415, "unsupported_media_type".into()));

    // Silent for longer than the timeout (2 s): out of rotation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let health: Value = get_json(&http, &format!("{}/health", router.url)).await;
        if health["nodes"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent node stayed: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn forwards_are_refused_clearly_and_an_unreachable_node_leaves_rotation() {
    let router = start();
    let http = reqwest::Client::new();
    let compute = |body: Value| {
        http.post(format!("{}/v1/compute", router.url))
            .json(&body)
            .send()
    };
    let envelope = json!({"v": 1, "key_id": "k", "device_key": "d", "enc": "e", "timestamp": 1,
                          "request_id": "r", "aad": "a", "ciphertext": "c"});

    assert_eq!(
        code(compute(json!({"candidates": []})).await.unwrap()).await,
        (400, "malformed".into())
    );
    let four: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|node| json!({"node": node, "envelope": envelope}))
        .collect();
    assert_eq!(
        code(compute(json!({"candidates": four})).await.unwrap()).await,
        (400, "malformed".into())
    );
    assert_eq!(
        code(
            compute(json!({"candidates": [{"node": "ghost", "envelope": envelope}]}))
                .await
                .unwrap()
        )
        .await,
        (503, "no_node".into())
    );
    assert_eq!(
        code(compute(json!({"nonsense": true})).await.unwrap()).await,
        (400, "malformed".into())
    );
    let get = http
        .get(format!("{}/v1/compute", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(code(get).await, (405, "method_not_allowed".into()));
    let nowhere = http
        .get(format!("{}/nowhere", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(code(nowhere).await, (404, "not_found".into()));

    // A node that registered but listens nowhere: the forward fails as
    // node_failed, and the node leaves rotation at once.
    let dead = format!("http://127.0.0.1:{}", free_port());
    http.post(format!("{}/v1/nodes/heartbeat", router.url))
        .bearer_auth(router.credential("node-a"))
        .json(&heartbeat("node-a", &dead))
        .send()
        .await
        .unwrap();
    let forwarded = compute(json!({"candidates": [{"node": "node-a", "envelope": envelope}]}))
        .await
        .unwrap();
    assert_eq!(code(forwarded).await, (502, "node_failed".into()));
    let listed: Value = get_json(&http, &format!("{}/v1/nodes", router.url)).await;
    assert_eq!(listed["nodes"], json!([]));
}

#[test]
fn a_node_token_others_can_read_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("node.token");
    std::fs::write(&token_file, "a-token-of-enough-characters\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = Command::new(binary("hearth-router"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--node-token-file")
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("open to every user"), "{said}");
}

/// Posts `beat` with `credential`; the status and error code.
async fn beat_with(router: &LoopbackRouter, credential: &str, beat: &Heartbeat) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/nodes/heartbeat", router.url))
        .bearer_auth(credential)
        .json(beat)
        .send()
        .await
        .unwrap();
    if response.status() == 200 {
        return (200, String::new());
    }
    code(response).await
}

#[tokio::test]
async fn a_node_cannot_take_another_nodes_id() {
    let router = start();
    // node-a is in rotation.
    let honest = heartbeat("node-a", "http://127.0.0.1:9");
    assert_eq!(
        beat_with(&router, &router.credential("node-a"), &honest)
            .await
            .0,
        200
    );
    // Another node's holder heartbeats as node-a, with its own credential
    // and with what every node used to share: both refused.
    let mut hijack = heartbeat("node-a", "http://127.0.0.1:10");
    hijack.models = vec!["tiny".into()];
    assert_eq!(
        beat_with(&router, &router.credential("node-evil"), &hijack).await,
        (403, "unauthenticated".into())
    );
    assert_eq!(
        beat_with(&router, &router.token, &hijack).await,
        (401, "unauthenticated".into())
    );
    // The listed node-a is still the honest one.
    let listed: Value =
        get_json(&reqwest::Client::new(), &format!("{}/v1/nodes", router.url)).await;
    assert_eq!(listed["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(
        listed["nodes"][0]["bundle"],
        serde_json::to_value(&honest.bundle).unwrap()
    );
}

/// A stand-in for a service on the router's machine (or the cloud's
/// metadata service): counts the requests that reach it.
fn victim() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{\"a\":\"b\"}",
            );
        }
    });
    (port, count)
}

#[tokio::test]
async fn the_router_sends_only_to_node_addresses_an_admin_allowed() {
    // Nodes live in 10.0.0.0/8 here; loopback is the router's own machine.
    let router = LoopbackRouter::start(&["--node-networks", "10.0.0.0/8"]);
    let (port, reached) = victim();
    let http = reqwest::Client::new();
    for url in [
        format!("http://127.0.0.1:{port}"),
        "http://169.254.169.254:80".into(),
        "http://[::1]:22".into(),
    ] {
        let beat = heartbeat("node-a", &url);
        assert_eq!(
            beat_with(&router, &router.credential("node-a"), &beat).await,
            (400, "malformed".into()),
            "{url}"
        );
    }
    // The unauthenticated attest endpoint cannot send it anywhere either.
    let nonce = "AAAAAAAAAAAAAAAAAAAAAA";
    let answer = http
        .post(format!("{}/v1/nodes/node-a/attest", router.url))
        .json(&json!({"nonce": nonce}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(answer).await, (503, "no_node".into()));
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the router reached it");
}

#[tokio::test]
async fn the_node_list_stays_readable_however_many_nodes_join() {
    let router = start();
    let http = reqwest::Client::new();
    // Nodes with bundles near the largest allowed, until the router is full.
    let mut joined = 0;
    for index in 0..300 {
        let node = format!("bulk-{index}");
        let mut beat = heartbeat(&node, "http://127.0.0.1:9");
        beat.bundle =
            hearth_attest::EvidenceBundle::new(&node, &[9; 32], "hearth-dev", &vec![7u8; 150_000]);
        match beat_with(&router, &router.credential(&node), &beat).await.0 {
            200 => joined += 1,
            _ => break,
        }
    }
    assert!(joined > 0);
    // A bundle over the limit is refused on its own.
    let mut huge = heartbeat("huge", "http://127.0.0.1:9");
    huge.bundle =
        hearth_attest::EvidenceBundle::new("huge", &[9; 32], "hearth-dev", &vec![7u8; 300_000]);
    assert_eq!(
        beat_with(&router, &router.credential("huge"), &huge)
            .await
            .0,
        400
    );
    // Clients still read the whole list.
    let list = http
        .get(format!("{}/v1/nodes", router.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        list.len() <= hearth_pcc::client::MAX_NODE_LIST,
        "{joined} nodes made a list of {} bytes",
        list.len()
    );
    let parsed: hearth_pcc::protocol::NodeList = serde_json::from_slice(&list).unwrap();
    assert_eq!(parsed.nodes.len(), joined);
}

#[tokio::test]
async fn an_ohttp_gateway_is_not_held_to_one_clients_budget() {
    let router = LoopbackRouter::start(&[
        "--per-source-rate",
        "1",
        "--per-source-burst",
        "3",
        "--forwarder",
        "127.0.0.2",
    ]);
    let address: std::net::SocketAddr = router.url.trim_start_matches("http://").parse().unwrap();
    let statuses = |from: [u8; 4]| async move {
        let mut statuses = Vec::new();
        for _ in 0..8 {
            let mut stream =
                hearth_testkit::ts2021::connect_from(std::net::IpAddr::from(from), address)
                    .await
                    .unwrap();
            tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"GET /v1/nodes HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
            let mut answer = [0u8; 12];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut answer)
                .await
                .unwrap();
            statuses.push(String::from_utf8_lossy(&answer[9..12]).into_owned());
        }
        statuses
    };
    // The gateway speaks for every oblivious client: not limited as one.
    assert!(
        statuses([127, 0, 0, 2])
            .await
            .iter()
            .all(|status| status == "200")
    );
    // Any other address is.
    let other = statuses([127, 0, 0, 3]).await;
    assert_eq!(other[..3], ["200", "200", "200"], "{other:?}");
    assert!(other[3..].iter().all(|status| status == "429"), "{other:?}");
}
