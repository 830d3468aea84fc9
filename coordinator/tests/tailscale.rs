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

#[tokio::test]
async fn garbled_handshakes_and_old_clients_are_refused_and_others_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice"]);
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(token.fingerprint, None).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        client_config(token.fingerprint, None).unwrap(),
    ));
    let address = token.url.trim_start_matches("https://").to_owned();
    // A raw HTTP/1.1 upgrade request, as Tailscale's client writes it; the
    // status and the body of the answer.
    let upgrade = |handshake: String| {
        let (connector, address) = (connector.clone(), address.clone());
        async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("hearth-coordinator").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let request = format!(
                "POST /ts2021 HTTP/1.1\r\nHost: {address}\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\nX-Tailscale-Handshake: {handshake}\r\nContent-Length: 0\r\n\r\n"
            );
            tls.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tls.read_to_end(&mut answer),
            )
            .await;
            let text = String::from_utf8_lossy(&answer).into_owned();
            let status: u16 = text
                .split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            (status, text)
        }
    };
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    // Random bytes shaped as an initiation: the handshake does not open.
    let mut garbled = vec![0u8, 130, 1, 0, 96];
    garbled.extend((0..96).map(|_| rand::random::<u8>()));
    let (status, text) = upgrade(encode(&garbled)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("did not open"), "{text}");
    // Not an initiation at all, and not base64.
    assert_eq!(upgrade(encode(b"hello")).await.0, 400);
    assert_eq!(upgrade("%%%".into()).await.0, 400);
    // An old client (capability version 90): told the minimum.
    let mut old = garbled.clone();
    old[..2].copy_from_slice(&90u16.to_be_bytes());
    let (status, text) = upgrade(encode(&old)).await;
    assert_eq!(status, 400);
    assert!(text.contains("113"), "{text}");

    // Everyone else is still served.
    let health = http
        .get(format!("{}/health", token.url))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
    assert!(!server.nodes_json().iter().any(|node| node.is_null()));
}
