//! The Tailscale control protocol's first request, `GET /key?v=N`, on the
//! coordinator's HTTPS listener: the control key (kept 0600 in the state
//! dir, the same across restarts) in Tailscale's `mkey:` form, and old or
//! version-less clients refused with a message naming the minimum.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt as _;

use hearth_control::tls::client_config;
use hearth_testkit::control_plane::Server;
use serde_json::Value;

async fn key(token: &hearth_control::JoinToken, query: &str) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(token.fingerprint, None).unwrap())
        .build()
        .unwrap();
    let response = http
        .get(format!("{}/key{query}", token.url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn clients_fetch_the_control_key_and_old_ones_are_told_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice"]);

    let (status, body) = key(&token, "?v=130").await;
    assert_eq!(status, 200, "{body}");
    let public = body["publicKey"].as_str().unwrap().to_owned();
    assert!(
        public.starts_with("mkey:") && public.len() == 69,
        "{public}"
    );
    assert_ne!(public, format!("mkey:{}", "0".repeat(64)));
    assert_eq!(body["legacyPublicKey"], format!("mkey:{}", "0".repeat(64)));

    let file = dir.path().join("control.key");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let log = server.log_text();
    let secret = std::fs::read_to_string(&file).unwrap();
    assert!(
        !log.contains(secret.trim()),
        "the control key's secret is not logged"
    );

    for query in ["?v=90", ""] {
        let (status, body) = key(&token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "unsupported_client");
    }
    let (_, old) = key(&token, "?v=90").await;
    assert!(old["message"].as_str().unwrap().contains("113"), "{old}");

    // The same key after a restart.
    let server = server.restart();
    let token = server.token(&["--user", "alice"]);
    let (_, again) = key(&token, "?v=133").await;
    assert_eq!(again["publicKey"].as_str().unwrap(), public);
}
