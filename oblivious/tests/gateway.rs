//! The OHTTP gateway, the config server and the relay on loopback, with a
//! stand-in inner target (a TCP listener that counts what reaches it: the
//! point is what the gateway forwards, not what answers): key rotation
//! with overlapping seeds, the same keys published by the gateway and the
//! config server, and each refusal clear with nothing forwarded.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use hearth_ohttp::bhttp;
use hearth_ohttp::{KeyConfig, Mode};
use hearth_testkit::compute::dev_policy;
use hearth_testkit::oblivious::{LoopbackServer, seeds_json};
use serde_json::Value;

const HOUR: Duration = Duration::from_secs(3600);

fn start(name: &str, args: &[&str], seeds: &str) -> (LoopbackServer, String) {
    let server = LoopbackServer::start(name, args, seeds);
    let url = server.url.clone();
    (server, url)
}

/// A stand-in inner target: answers every request `{}` and counts them,
/// keeping the last request's bytes.
fn target() -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (count, last) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let (counted, kept) = (Arc::clone(&count), Arc::clone(&last));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut request = vec![0u8; 65536];
            let read = hearth_testkit::through_signals(|| stream.read(&mut request)).unwrap_or(0);
            *kept.lock().unwrap() = request[..read].to_vec();
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (port, count, last)
}

async fn keys_of(url: &str) -> Vec<u8> {
    reqwest::get(format!("{url}/ohttp-keys"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn config_of(url: &str) -> Value {
    reqwest::get(format!("{url}/api/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sends an inner `POST authority/path` sealed to `key` (whole mode) and
/// returns the gateway's status and the inner response, if it opened.
async fn ask(
    gateway: &str,
    key: &KeyConfig,
    authority: &str,
    path: &str,
) -> (u16, Option<bhttp::Response>) {
    let mut inner = bhttp::Request::new("POST", "http", authority, path);
    inner
        .headers
        .push((b"content-type".to_vec(), b"application/json".to_vec()));
    inner.content = b"{\"sealed\":\"to a node\"}".to_vec();
    let (sealed, keys) = hearth_ohttp::encapsulate(key, Mode::Whole, &[&inner.encode()]).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{gateway}/gateway"))
        .header("content-type", "message/ohttp-req")
        .body(sealed)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let opened = keys
        .open_whole(&body)
        .ok()
        .map(|bytes| bhttp::Response::decode(&bytes).unwrap());
    (status, opened)
}

#[tokio::test]
async fn keys_rotate_with_overlap_and_both_servers_publish_the_same_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (port, count, last) = target();
    let now = hearth_runtime::clock::since_epoch();
    let old_until = now + Duration::from_secs(6);
    let seeds = seeds_json(&[
        (1, now - HOUR, old_until),
        (2, now - Duration::from_secs(60), now + HOUR),
    ]);
    let allow = format!("http://127.0.0.1:{port}/v1/");
    let (_gateway, gateway) = start("hearth-ohttp-gateway", &["--allow", &allow], &seeds);
    let policy = dev_policy(dir.path(), "policy.json", "hearth-enclave");
    let policy = policy.to_str().unwrap();
    let (_auth, auth) = start(
        "hearth-pcc-auth",
        &[
            "--relay-url",
            "http://127.0.0.1:9/",
            "--gateway-url",
            &gateway,
            "--router-url",
            "http://127.0.0.1:3600",
            "--policy",
            policy,
        ],
        &seeds,
    );

    // During the overlap: both keys listed, the same bytes from both servers.
    let config = config_of(&auth).await;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(config["ohttp_key_configs_bundle"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        keys_of(&gateway).await,
        bundle,
        "the gateway and the config server publish the same keys"
    );
    let keys = hearth_ohttp::decode_keys(&bundle).unwrap();
    assert_eq!(
        keys.iter().map(|key| key.key_id).collect::<Vec<_>>(),
        vec![2, 1],
        "newest first"
    );
    let periods: Vec<u64> = config["ohttp_key_rotation_periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|period| period["key_id"].as_u64().unwrap())
        .collect();
    assert_eq!(periods, vec![2, 1]);
    assert_eq!(config["version"], "0.002");
    assert_eq!(
        config["features"]["real_attestation"], false,
        "the policy allows dev evidence"
    );
    for key in &keys {
        let (status, inner) = ask(&gateway, key, &format!("127.0.0.1:{port}"), "/v1/compute").await;
        assert_eq!(status, 200);
        assert_eq!(
            inner.unwrap().status,
            200,
            "key {} works during the overlap",
            key.key_id
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let forwarded = String::from_utf8_lossy(&last.lock().unwrap()).into_owned();
    assert!(forwarded.starts_with("POST /v1/compute"), "{forwarded}");
    assert!(
        forwarded.contains("{\"sealed\":\"to a node\"}"),
        "{forwarded}"
    );

    // After the old key's active_until: refused with the key problem type,
    // and no longer published by either server.
    let wait =
        old_until.saturating_sub(hearth_runtime::clock::since_epoch()) + Duration::from_millis(500);
    tokio::time::sleep(wait).await;
    let (status, inner) = ask(
        &gateway,
        &keys[1],
        &format!("127.0.0.1:{port}"),
        "/v1/compute",
    )
    .await;
    assert_eq!((status, inner.is_none()), (400, true));
    let problem: Value = reqwest::Client::new()
        .post(format!("{gateway}/gateway"))
        .header("content-type", "message/ohttp-req")
        .body(
            hearth_ohttp::encapsulate(&keys[1], Mode::Whole, &[b"x"])
                .unwrap()
                .0,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(problem["type"], hearth_oblivious::gateway::KEY_PROBLEM);
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "nothing forwarded under the old key"
    );
    let config = config_of(&auth).await;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(config["ohttp_key_configs_bundle"].as_str().unwrap())
        .unwrap();
    assert_eq!(keys_of(&gateway).await, bundle);
    assert_eq!(
        hearth_ohttp::decode_keys(&bundle).unwrap(),
        vec![keys[0].clone()]
    );
    assert_eq!(
        config["ohttp_key_rotation_periods"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn targets_off_the_list_unknown_keys_and_cut_requests_are_refused_and_nothing_is_forwarded() {
    let (port, count, _) = target();
    let (other_port, other_count, _) = target();
    let now = hearth_runtime::clock::since_epoch();
    let seeds = seeds_json(&[(5, now - HOUR, now + HOUR)]);
    let (_gateway, gateway) = start(
        "hearth-ohttp-gateway",
        &["--allow", &format!("http://127.0.0.1:{port}/v1/")],
        &seeds,
    );
    let key = hearth_ohttp::decode_keys(&keys_of(&gateway).await)
        .unwrap()
        .remove(0);

    // Another target, another path on the allowed one, another scheme;
    // and (the second review) `..` with a TAB, CR or LF inside, which URL
    // parsers drop, so `/v1/.\t./admin` became `/admin`.
    for (authority, path) in [
        (format!("127.0.0.1:{other_port}"), "/v1/compute"),
        (format!("127.0.0.1:{port}"), "/admin"),
        (format!("127.0.0.1:{port}"), "/v1/../admin"),
        (format!("127.0.0.1:{port}"), "/v1/.\t./admin"),
        (format!("127.0.0.1:{port}"), "/v1/.\r./admin"),
        (format!("127.0.0.1:{port}"), "/v1/\n../admin"),
        (format!("127.0.0.1:{port}"), "/v1/ ../admin"),
        (format!("127.0.0.1:{port}\t"), "/v1/compute"),
    ] {
        let (status, inner) = ask(&gateway, &key, &authority, path).await;
        let inner = inner.expect("the refusal is sealed to the client");
        assert_eq!((status, inner.status), (200, 403), "{authority}{path}");
        assert!(String::from_utf8_lossy(&inner.content).contains("target_not_allowed"));
    }

    // A key id the gateway does not have.
    let mut unknown = key.clone();
    unknown.key_id = 9;
    let (status, _) = ask(
        &gateway,
        &unknown,
        &format!("127.0.0.1:{port}"),
        "/v1/compute",
    )
    .await;
    assert_eq!(status, 400);

    // A chunked request cut before its final chunk, and one altered.
    let inner =
        bhttp::Request::new("POST", "http", &format!("127.0.0.1:{port}"), "/v1/compute").encode();
    let (sealed, _) =
        hearth_ohttp::encapsulate(&key, Mode::Chunked, &[&inner[..4], &inner[4..], b""]).unwrap();
    let http = reqwest::Client::new();
    for (what, body) in [
        ("cut", sealed[..sealed.len() - 18].to_vec()),
        ("altered", {
            let mut altered = sealed.clone();
            let last = altered.len() - 1;
            altered[last] ^= 1;
            altered
        }),
    ] {
        let response = http
            .post(format!("{gateway}/gateway"))
            .header("content-type", "message/ohttp-chunked-req")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["title"].as_str().unwrap().contains("did not open"),
            "{what}: {problem}"
        );
    }
    // The wrong media type.
    let response = http
        .post(format!("{gateway}/gateway"))
        .body(sealed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "nothing reached the allowed target"
    );
    assert_eq!(
        other_count.load(Ordering::SeqCst),
        0,
        "nothing reached the other target"
    );
}

#[tokio::test]
async fn the_relay_passes_only_the_body_and_its_type_and_streams_the_answer() {
    // A stand-in gateway that records what the relay sends it.
    let (port, count, last) = target();
    let (_relay, relay) = start(
        "hearth-ohttp-relay",
        &["--gateway", &format!("http://127.0.0.1:{port}/gateway")],
        "",
    );
    let http = reqwest::Client::new();
    let answered = http
        .post(format!("{relay}/"))
        .header("content-type", "message/ohttp-chunked-req")
        .header("cookie", "session=device-secret")
        .header("user-agent", "device-agent/1.0")
        .header("x-forwarded-for", "192.0.2.7")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.bytes().await.unwrap().as_ref(), b"{}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let forwarded = String::from_utf8_lossy(&last.lock().unwrap()).to_ascii_lowercase();
    assert!(
        forwarded.contains("content-type: message/ohttp-chunked-req"),
        "{forwarded}"
    );
    for leaked in [
        "cookie",
        "device-agent",
        "x-forwarded-for",
        "192.0.2.7",
        "forwarded:",
    ] {
        assert!(
            !forwarded.contains(leaked),
            "the relay passed on {leaked}: {forwarded}"
        );
    }
    // Anything but OHTTP is refused, and not sent on.
    let refused = http
        .post(format!("{relay}/"))
        .body("GET /")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
