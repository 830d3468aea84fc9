//! The router's HTTP edge, on loopback: who may heartbeat, what is refused
//! and how, what clients are shown, and what happens when a chosen node
//! cannot be reached.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
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
async fn only_token_holders_heartbeat_and_clients_see_the_bundle_unchanged() {
    let router = start();
    let http = reqwest::Client::new();
    let beat = heartbeat("node-a", "http://127.0.0.1:9");
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
    let accepted = post(Some(&router.token)).send().await.unwrap();
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
        .bearer_auth(&router.token)
        .json(&named)
        .send()
        .await
        .unwrap();
    assert_eq!(code(refused).await, (400, "malformed".into()));
    let refused = http
        .post(format!("{}/v1/nodes/heartbeat", router.url))
        .bearer_auth(&router.token)
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
        .bearer_auth(&router.token)
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
