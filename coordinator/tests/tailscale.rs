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
    let mut server = Server::start(dir.path());
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
    assert_eq!(server.sigterm().code(), Some(0));
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

/// A DERP client over raw TLS: logs in with `secret`; the connection after
/// the login, or what the relay sent before closing it.
async fn derp_login(
    token: &hearth_control::JoinToken,
    secret: [u8; 32],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Vec<u8>> {
    use hearth_control::derp;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        client_config(token.fingerprint, None).unwrap(),
    ));
    let address = token.url.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("hearth-coordinator").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!(
        "GET /derp HTTP/1.1\r\nHost: {address}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    // The 101 head, then the server's key frame (45 bytes).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tls.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut greeting = [0u8; derp::HEADER_LEN + 40];
    tls.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting[0], derp::kind::SERVER_KEY);
    let server: [u8; 32] = greeting[derp::HEADER_LEN + 8..].try_into().unwrap();
    let public =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes();
    let sealed = derp::seal(&secret, &server, &rand::random(), br#"{"version":2}"#);
    tls.write_all(&derp::frame(derp::kind::CLIENT_INFO, &[&public, &sealed]))
        .await
        .unwrap();
    let mut header = [0u8; derp::HEADER_LEN];
    let mut rest = Vec::new();
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tls.read_exact(&mut header),
    )
    .await
    {
        Ok(Ok(_)) if header[0] == derp::kind::SERVER_INFO => {
            let (_, length) = derp::header(&header, derp::MAX_FRAME).unwrap().unwrap();
            let mut info = vec![0u8; length];
            tls.read_exact(&mut info).await.unwrap();
            let opened = derp::open(&secret, &server, &info).unwrap();
            assert_eq!(opened, br#"{"version":2}"#);
            Ok(tls)
        }
        _ => {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                tls.read_to_end(&mut rest),
            )
            .await;
            Err(rest)
        }
    }
}

#[tokio::test]
async fn the_relay_serves_admitted_nodes_only_and_carries_packets_between_them() {
    use hearth_control::derp;
    use hearth_control::wire::WireGuardKey;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.cli_ok(&["users", "create", "alice"]);
    let approved = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let pending = server.token(&["--user", "alice"]);

    // Three nodes whose WireGuard secrets the test holds: two admitted, one pending.
    let mut secrets = Vec::new();
    for (token, name) in [(&approved, "a"), (&approved, "b"), (&pending, "c")] {
        let secret: [u8; 32] = rand::random();
        let (mut request, _) = hearth_testkit::control_plane::request(token, name);
        request.wireguard_key = WireGuardKey(
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes(),
        );
        let anonymous =
            hearth_control::ControlClient::new(&token.url, token.fingerprint, None).unwrap();
        anonymous.register(&request).await.unwrap();
        secrets.push(secret);
    }

    // The attack: a key of no node, and a pending node's key, get no session.
    for (who, secret) in [
        ("an unknown key", rand::random()),
        ("a pending node", secrets[2]),
    ] {
        let refused = derp_login(&approved, secret).await;
        assert!(refused.is_err(), "{who} was let in to the relay");
    }

    let mut a = derp_login(&approved, secrets[0]).await.unwrap();
    let mut b = derp_login(&approved, secrets[1]).await.unwrap();
    let key_of = |secret: [u8; 32]| {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes()
    };
    let packet = b"a WireGuard packet, opaque to the relay";
    a.write_all(&derp::frame(
        derp::kind::SEND_PACKET,
        &[&key_of(secrets[1]), packet],
    ))
    .await
    .unwrap();
    let mut header = [0u8; derp::HEADER_LEN];
    b.read_exact(&mut header).await.unwrap();
    let (kind, length) = derp::header(&header, derp::MAX_FRAME).unwrap().unwrap();
    assert_eq!(kind, derp::kind::RECV_PACKET);
    let mut payload = vec![0u8; length];
    b.read_exact(&mut payload).await.unwrap();
    assert_eq!(
        payload[..32],
        key_of(secrets[0]),
        "the sender's key comes first"
    );
    assert_eq!(&payload[32..], packet);

    // A packet for a node not connected here: the sender is told it is gone.
    a.write_all(&derp::frame(
        derp::kind::SEND_PACKET,
        &[&key_of(secrets[2]), packet],
    ))
    .await
    .unwrap();
    a.read_exact(&mut header).await.unwrap();
    assert_eq!(header[0], derp::kind::PEER_GONE);

    // Deleting node a closes its relay connection within a second.
    let nodes = server.nodes_json();
    let a_id = nodes.iter().find(|node| node["name"] == "a").unwrap()["id"]
        .as_u64()
        .unwrap()
        .to_string();
    server.cli_ok(&["nodes", "delete", &a_id]);
    let deleted = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(3), a.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the deleted node kept its relay connection");
    assert!(
        deleted.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        deleted.elapsed()
    );
    let _ = b.write_all(&derp::keep_alive()).await;
}
