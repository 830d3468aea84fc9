#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Device admission end to end: a real coordinator process, the real CLI, and
//! devices registering through the agent's client library.

use std::time::Duration;

use hearth_control::tls::client_config;
use hearth_control::{ControlClient, JoinToken, SecretString};
use hearth_testkit::control_plane::{MapView, Server, register, try_register};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approved_nodes_see_each_other_within_a_second_and_deletion_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable"]);

    let laptop = register(&token, "laptop").await;
    let phone = register(&token, "phone").await;
    let states: Vec<String> = server
        .nodes_json()
        .iter()
        .map(|node| node["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["pending", "pending"]);

    server.cli_ok(&["nodes", "approve", &laptop.id().to_string()]);
    let mut laptop_map = MapView::open(&laptop).await;
    assert!(
        laptop_map.peers.is_empty(),
        "a pending node is nobody's peer"
    );

    server.cli_ok(&["nodes", "approve", &phone.id().to_string()]);
    let phone_id = phone.id();
    let elapsed = laptop_map
        .wait_until(Duration::from_secs(1), |view| view.has_peer(phone_id))
        .await;
    println!("laptop saw the phone {elapsed:?} after approval returned");

    let mut phone_map = MapView::open(&phone).await;
    assert!(
        phone_map.has_peer(laptop.id()),
        "the phone's first map holds the laptop"
    );

    server.cli_ok(&["nodes", "delete", &phone_id.to_string()]);
    let elapsed = laptop_map
        .wait_until(Duration::from_secs(1), |view| !view.has_peer(phone_id))
        .await;
    println!("laptop lost the phone {elapsed:?} after deletion returned");
    phone_map
        .wait_until(Duration::from_secs(1), |view| view.revoked)
        .await;

    let error = phone
        .client
        .map_stream()
        .await
        .err()
        .expect("a deleted node gets no map");
    assert_eq!(error.code(), Some("unknown_node"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_are_told_when_a_node_connects_and_when_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let hub = register(&token, "hub").await;
    let gpu = register(&token, "gpu").await;
    let gpu_id = gpu.id();
    let mut hub_map = MapView::open(&hub).await;
    // Right after its full map: the gpu has not connected.
    hub_map
        .wait_until(Duration::from_secs(5), |view| {
            view.online.get(&gpu_id) == Some(&false)
        })
        .await;
    let mut gpu_map = MapView::open(&gpu).await;
    let hub_id = hub.id();
    gpu_map
        .wait_until(Duration::from_secs(5), |view| {
            view.online.get(&hub_id) == Some(&true)
        })
        .await;
    hub_map
        .wait_until(Duration::from_secs(5), |view| {
            view.online.get(&gpu_id) == Some(&true)
        })
        .await;
    // Its stream closes (the agent stopped): the hub hears at once.
    drop(gpu_map);
    let elapsed = hub_map
        .wait_until(Duration::from_secs(5), |view| {
            view.online.get(&gpu_id) == Some(&false)
        })
        .await;
    println!("the hub heard the gpu went {elapsed:?} after its stream closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_use_key_admits_exactly_one_racer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder(&dir.path().join("state"))
        .arg("--register-burst")
        .arg("200")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice"]);

    let racers: Vec<_> = (0..50)
        .map(|index| {
            let token = token.clone();
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
    assert_eq!(admitted, 1);
    assert_eq!(server.nodes_json().len(), 1);
    assert_eq!(server.keys_json()[0]["use_count"], 1);
}

/// Sends raw bodies to the registration endpoint, trusting the pinned certificate.
async fn post_raw(token: &JoinToken, body: &str) -> (u16, serde_json::Value) {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(token.fingerprint, None).unwrap())
        .build()
        .unwrap();
    let response = http
        .post(format!("{}/api/v1/register", token.url))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_registrations_say_why_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let single = server.token(&["--user", "alice"]);
    let reusable = server.token(&["--user", "alice", "--reusable"]);
    let expired = server.token(&["--user", "alice", "--reusable"]);
    let expired_id = server.keys_json()[2]["id"].as_i64().unwrap().to_string();
    server.cli_ok(&["preauthkeys", "expire", &expired_id]);
    let short = server.token(&["--user", "alice", "--expiration", "1s"]);

    register(&single, "first").await;
    let pending = register(&reusable, "pending").await;
    let nodes_before = server.nodes_json();
    let keys_before = server.keys_json();

    let reused = try_register(&single, "second").await.err().unwrap();
    assert_eq!(reused.code(), Some("key_used"));
    assert!(reused.to_string().contains("already used"), "{reused}");

    let expired_error = try_register(&expired, "late").await.err().unwrap();
    assert_eq!(expired_error.code(), Some("key_expired"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        try_register(&short, "late").await.err().unwrap().code(),
        Some("key_expired")
    );

    let mut wrong_secret = reusable.clone();
    let mut text = wrong_secret.key.expose().to_owned();
    text.replace_range(text.len() - 4.., "AAAA");
    wrong_secret.key = SecretString::new(text);
    assert_eq!(
        try_register(&wrong_secret, "thief")
            .await
            .err()
            .unwrap()
            .code(),
        Some("invalid_key")
    );
    let mut garbage = reusable.clone();
    garbage.key = SecretString::new("let me in".into());
    assert_eq!(
        try_register(&garbage, "thief").await.err().unwrap().code(),
        Some("invalid_key")
    );

    for (body, expected) in [
        ("{", "malformed JSON"),
        ("[]", "malformed JSON"),
        (r#"{"auth_key": 5}"#, "malformed JSON"),
        (
            r#"{"auth_key":"k","wireguard_key":"short","hostname":"h","os":"linux","csr_der":""}"#,
            "WireGuard key",
        ),
        (
            r#"{"auth_key":"k","wireguard_key":"YAnz6vFQHYNzJSEJ1IOsRQ9NCR0aNsDVcv7z3cXXSHY=","hostname":"h","os":"linux","csr_der":"","extra":1}"#,
            "unknown field",
        ),
        (
            r#"{"auth_key":"k","wireguard_key":"YAnz6vFQHYNzJSEJ1IOsRQ9NCR0aNsDVcv7z3cXXSHY=","hostname":"h","os":"linux","csr_der":"***"}"#,
            "csr_der is not base64",
        ),
    ] {
        let (status, answer) = post_raw(&reusable, body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"], "bad_request");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{body} -> {answer}"
        );
    }
    // A well-formed body with a valid key but a CSR that is not a CSR is refused before anything is stored.
    let body = serde_json::json!({
        "auth_key": reusable.key.expose(),
        "wireguard_key": "YAnz6vFQHYNzJSEJ1IOsRQ9NCR0aNsDVcv7z3cXXSHY=",
        "hostname": "h", "os": "linux", "csr_der": "AAAA"
    });
    let (status, answer) = post_raw(&reusable, &body.to_string()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request")),
        "{answer}"
    );

    let error = pending
        .client
        .map_stream()
        .await
        .err()
        .expect("a pending node gets no map");
    assert_eq!(error.code(), Some("node_pending"));
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "hearth-coordinator nodes approve {}",
            pending.id()
        )),
        "{text}"
    );

    let error = anonymous_map(&reusable).await;
    assert_eq!(error.code(), Some("unauthenticated"), "{error}");

    assert_eq!(
        server.nodes_json(),
        nodes_before,
        "refusals changed the nodes"
    );
    // `usable` is derived from the clock (the short key ran out meanwhile); the stored facts must not move.
    let stored = |keys: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        keys.into_iter()
            .map(|mut key| {
                key.as_object_mut().unwrap().remove("usable");
                key
            })
            .collect()
    };
    assert_eq!(
        stored(server.keys_json()),
        stored(keys_before),
        "refusals changed the keys"
    );
}

async fn anonymous_map(token: &JoinToken) -> hearth_control::ClientError {
    let client = ControlClient::new(&token.url, token.fingerprint, None).unwrap();
    client
        .map_stream()
        .await
        .err()
        .expect("no map without a client certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wireguard_key_registers_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable"]);
    let (request, _) = hearth_testkit::control_plane::request(&token, "laptop");
    let client = ControlClient::new(&token.url, token.fingerprint, None).unwrap();
    client.register(&request).await.unwrap();
    let error = client.register(&request).await.err().unwrap();
    assert_eq!(error.code(), Some("already_registered"), "{error}");
    assert_eq!(server.nodes_json().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_with_another_certificate_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let mut token = server.token(&["--user", "alice"]);
    token.fingerprint.0[0] ^= 0xff;
    let error = try_register(&token, "laptop").await.err().unwrap();
    assert!(
        error.to_string().contains("not the one in the join token"),
        "{error}"
    );
    assert!(server.nodes_json().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tagged_pre_approved_ephemeral_keys_make_such_nodes_and_idle_ones_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder(&dir.path().join("state"))
        .arg("--ephemeral-timeout")
        .arg("2s")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&[
        "--user",
        "alice",
        "--reusable",
        "--ephemeral",
        "--pre-approved",
        "--tags",
        "tag:server,tag:web",
    ]);
    let stays = register(&token, "stays").await;
    let leaves = register(&token, "leaves").await;
    assert_eq!(stays.response.node.state.as_str(), "approved");
    assert_eq!(stays.response.node.tags, ["tag:server", "tag:web"]);
    assert!(stays.response.node.ephemeral);

    let mut stays_map = MapView::open(&stays).await;
    {
        let leaves_map = MapView::open(&leaves).await;
        assert!(leaves_map.has_peer(stays.id()));
    }
    // `leaves` disconnected; after the timeout it is removed and `stays` hears so.
    let leaves_id = leaves.id();
    stays_map
        .wait_until(Duration::from_secs(8), |view| !view.has_peer(leaves_id))
        .await;
    let names: Vec<String> = server
        .nodes_json()
        .iter()
        .map(|node| node["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["stays"],
        "only the connected ephemeral node remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_is_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder(&dir.path().join("state"))
        .arg("--register-burst")
        .arg("2")
        .arg("--register-period")
        .arg("1h")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable"]);
    register(&token, "one").await;
    register(&token, "two").await;
    let error = try_register(&token, "three").await.err().unwrap();
    assert_eq!(error.code(), Some("rate_limited"), "{error}");
    assert_eq!(server.nodes_json().len(), 2);
}

/// Reads `response`'s body up to `lines` newline-terminated lines, through
/// zstd frames when `zstd`.
async fn first_lines(mut response: reqwest::Response, zstd: bool, lines: usize) -> Vec<String> {
    use hearth_control::compression::FrameReader;
    let mut frames = FrameReader::new().unwrap();
    let mut text = bytes::BytesMut::new();
    while text.iter().filter(|byte| **byte == b'\n').count() < lines {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .expect("the stream stays open");
        if zstd {
            frames.push(chunk);
            frames.read_into(&mut text, usize::MAX).unwrap();
        } else {
            text.extend_from_slice(&chunk);
        }
    }
    String::from_utf8(text.to_vec())
        .unwrap()
        .lines()
        .take(lines)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_map_stream_is_zstd_frames_for_a_client_that_takes_them_and_plain_json_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder(&dir.path().join("state"))
        .arg("--register-burst")
        .arg("100")
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    for index in 0..40 {
        register(&token, &format!("peer{index}")).await;
    }
    // A node whose certificate key this test holds, to speak HTTP itself.
    let (request, key_pem) = hearth_testkit::control_plane::request(&token, "watcher");
    let anonymous = ControlClient::new(&token.url, token.fingerprint, None).unwrap();
    let response = anonymous.register(&request).await.unwrap();
    let identity = hearth_control::tls::ClientIdentity {
        certificate_pem: response.client_certificate_pem,
        key_pem,
    };
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(token.fingerprint, Some(&identity)).unwrap())
        .build()
        .unwrap();
    let open = |accept: Option<&'static str>| {
        let mut request = http.get(format!("{}/api/v1/map", token.url));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        request.send()
    };
    let plain = open(None).await.unwrap();
    let refused = open(Some("zstd;q=0, gzip")).await.unwrap();
    let zstd = open(Some("gzip, zstd")).await.unwrap();
    assert_eq!(plain.headers().get("content-encoding"), None);
    assert_eq!(refused.headers().get("content-encoding"), None);
    assert_eq!(zstd.headers()["content-encoding"], "zstd");

    // After the full map, who of the peers is connected (none); then a
    // change: a third line on every stream.
    let newcomer = register(&token, "newcomer").await;
    let [plain, refused, zstd] = [(plain, false), (refused, false), (zstd, true)]
        .map(|(response, compressed)| first_lines(response, compressed, 3));
    let (plain, refused, zstd) = (plain.await, refused.await, zstd.await);
    assert_eq!(zstd, plain, "the same lines, compressed or not");
    assert_eq!(refused, plain);
    let full: serde_json::Value = serde_json::from_str(&plain[0]).unwrap();
    assert_eq!(full["type"], "full");
    assert_eq!(full["map"]["peers"].as_array().unwrap().len(), 40);
    let presence: serde_json::Value = serde_json::from_str(&plain[1]).unwrap();
    assert_eq!(presence["changes"][0]["change"], "presence");
    assert_eq!(
        presence["changes"][0]["offline"].as_array().unwrap().len(),
        40
    );
    assert!(
        plain[2].contains(&format!("\"id\":{}", newcomer.id())),
        "{}",
        plain[2]
    );
}
