#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Attacks on the coordinator from the second adversarial review, each
//! performed as described and shown to fail now: bodies sent to the node
//! API without a node's certificate, an expired Tailscale node revived by
//! another user's key, registrations over ts2021 past the burst, pending
//! Tailscale nodes storing endpoints and routes, key-less logins filling
//! every waiting slot, and a member rotating keys and opening map streams
//! without limit; and, from issue 31, a device publishing the ACME
//! challenge of another device's name. (The attacks on `backup`, the
//! database URL and the relay token are in `admin_cli.rs` and `relay.rs`.)

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hearth_control::tls::client_config;
use hearth_testkit::control_plane::{Server, free_port};
use hearth_testkit::ts2021;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x25519_dalek::{PublicKey, StaticSecret};

/// A coordinator with the plain Tailscale listener; its address.
fn start_with_tailscale(dir: &std::path::Path, extra: &[&str]) -> (Server, SocketAddr) {
    let plain = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut builder = Server::builder(dir)
        .arg("--http-listen")
        .arg(&plain.to_string());
    for arg in extra {
        builder = builder.arg(arg);
    }
    let server = builder.start();
    hearth_testkit::wait_until(Duration::from_secs(20), || {
        hearth_testkit::llama::port_answers(plain)
    })
    .expect("the plain listener answers");
    (server, plain)
}

fn node_key_text(key: &[u8; 32]) -> String {
    format!("nodekey:{}", hex::encode(key))
}

/// A device speaking the Tailscale control protocol from `from`.
struct Device {
    sender: hyper::client::conn::http2::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
    node_key: [u8; 32],
}

impl Device {
    async fn connect(plain: SocketAddr, from: IpAddr) -> Device {
        let control = ts2021::control_key(plain).await;
        let session = ts2021::open(from, plain, &control, StaticSecret::random())
            .await
            .unwrap();
        Device {
            sender: ts2021::http2(session).await,
            node_key: PublicKey::from(&StaticSecret::random()).to_bytes(),
        }
    }

    /// `/machine/register` with `auth_key` (none: the key-less login).
    async fn register(&mut self, auth_key: Option<&str>) -> (u16, Value) {
        self.register_as("laptop", auth_key).await
    }

    /// `/machine/register` as the device called `hostname`.
    async fn register_as(&mut self, hostname: &str, auth_key: Option<&str>) -> (u16, Value) {
        let mut request = json!({
            "Version": ts2021::VERSION,
            "NodeKey": node_key_text(&self.node_key),
            "Hostinfo": {"Hostname": hostname, "OS": "linux"},
        });
        if let Some(key) = auth_key {
            request["Auth"] = json!({"AuthKey": key});
        }
        let (status, body) = ts2021::post_json(&mut self.sender, "/machine/register", &request)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A map request that only reports (endpoints, routes), not streamed.
    async fn report(&mut self) -> u16 {
        let request = json!({
            "Version": ts2021::VERSION,
            "NodeKey": node_key_text(&self.node_key),
            "DiscoKey": format!("discokey:{}", hex::encode([7u8; 32])),
            "Endpoints": ["198.51.100.7:41641"],
            "Hostinfo": {"Hostname": "laptop", "OS": "linux", "RoutableIPs": ["192.168.77.0/24"]},
            "OmitPeers": true,
            "Stream": false,
        });
        ts2021::post_json(&mut self.sender, "/machine/map", &request)
            .await
            .unwrap()
            .0
    }
}

fn node_named<'a>(nodes: &'a [Value], key: &[u8; 32]) -> Option<&'a Value> {
    let text = node_key_text(key);
    let short = text.trim_start_matches("nodekey:");
    nodes.iter().find(|node| {
        node["wireguard_key"]
            .as_str()
            .is_some_and(|key| key == text || key.contains(short) || hex_of_base64(key) == short)
    })
}

fn hex_of_base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(hex::encode)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_without_a_nodes_certificate_are_refused_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice"]);
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(token.fingerprint, None).unwrap()));
    for path in [
        hearth_control::wire::ENDPOINTS_PATH,
        hearth_control::wire::ROTATE_PATH,
        hearth_control::wire::ROUTES_PATH,
    ] {
        let tcp = tokio::net::TcpStream::connect(server.address)
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // A body of 60 KiB is announced and never sent: the refusal must
        // come without waiting for it.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: coordinator\r\nContent-Type: application/json\r\nContent-Length: 61440\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(3), tls.read_exact(&mut answer)).await;
        assert!(
            matches!(read, Ok(Ok(_))),
            "{path}: no answer before the body"
        );
        assert_eq!(&answer, b"HTTP/1.1 401", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_tailscale_node_is_not_revived_under_its_owner_by_another_users_key() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain) = start_with_tailscale(dir.path(), &[]);
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "mallory"]);
    let alice = server.token(&["--user", "alice", "--pre-approved"]);
    let mallory = server.token(&["--user", "mallory", "--reusable"]);

    let mut laptop = Device::connect(plain, IpAddr::from([127, 0, 0, 1])).await;
    let (status, answer) = laptop.register(Some(alice.key.expose())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["MachineAuthorized"], true, "{answer}");
    let nodes = server.nodes_json();
    let stolen = node_named(&nodes, &laptop.node_key).unwrap().clone();
    assert_eq!(stolen["user"], "alice");
    let id = stolen["id"].as_u64().unwrap().to_string();
    server.cli_ok(&["nodes", "expire", &id]);

    // The thief logs the stolen laptop in again with their own key.
    let (status, answer) = laptop.register(Some(mallory.key.expose())).await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(
        answer["User"]["DisplayName"], "alice",
        "answered as alice's node: {answer}"
    );
    assert_eq!(answer["MachineAuthorized"], false, "{answer}");
    let nodes = server.nodes_json();
    let now = node_named(&nodes, &laptop.node_key).unwrap();
    assert_eq!(now["user"], "mallory", "{now}");
    assert_eq!(now["state"], "pending", "mallory's key is not pre-approved");
    assert_ne!(
        now["ipv4"], stolen["ipv4"],
        "alice's address is not handed over"
    );
    assert!(
        nodes.iter().all(|node| node["user"] != "alice"),
        "alice's expired node went with the machine: {nodes:#?}"
    );
}

/// A device registering the node key that expired is told
/// `NodeKeyExpired` (Tailscale clients then make a new key and ask their
/// user to log in), not a bare refusal; a new key without a pre-auth key
/// is still refused, and nothing is revived.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_presenting_its_expired_key_is_told_it_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain) = start_with_tailscale(dir.path(), &[]);
    server.cli_ok(&["users", "create", "alice"]);
    let alice = server.token(&["--user", "alice", "--pre-approved"]);
    let mut laptop = Device::connect(plain, IpAddr::from([127, 0, 0, 1])).await;
    let (status, answer) = laptop.register(Some(alice.key.expose())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["NodeKeyExpired"], false, "{answer}");
    let nodes = server.nodes_json();
    let id = node_named(&nodes, &laptop.node_key).unwrap()["id"]
        .as_u64()
        .unwrap()
        .to_string();
    server.cli_ok(&["nodes", "expire", &id]);

    let (status, answer) = laptop.register(None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["NodeKeyExpired"], true, "{answer}");
    assert_eq!(answer["MachineAuthorized"], false, "{answer}");

    laptop.node_key = PublicKey::from(&StaticSecret::random()).to_bytes();
    let (_, answer) = laptop.register(None).await;
    assert_eq!(answer["MachineAuthorized"], false, "{answer}");
    assert_ne!(answer["NodeKeyExpired"], true, "{answer}");
    let nodes = server.nodes_json();
    assert_eq!(nodes.len(), 1, "{nodes:#?}");
    assert_eq!(nodes[0]["state"], "expired", "{nodes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_over_ts2021_keep_to_the_register_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain) = start_with_tailscale(
        dir.path(),
        &["--register-burst", "5", "--register-period", "1h"],
    );
    server.cli_ok(&["users", "create", "alice"]);
    let key = server.token(&["--user", "alice", "--reusable"]);
    let from = IpAddr::from([127, 0, 0, 3]);
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        let mut device = Device::connect(plain, from).await;
        outcomes.push(device.register(Some(key.key.expose())).await.0);
    }
    assert_eq!(outcomes[..5], [200; 5], "{outcomes:?}");
    assert_eq!(outcomes[5..], [429; 3], "{outcomes:?}");
    // Another address is not held up.
    let mut other = Device::connect(plain, IpAddr::from([127, 0, 0, 4])).await;
    assert_eq!(other.register(Some(key.key.expose())).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_tailscale_nodes_store_no_endpoints_or_routes_until_approved() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain) = start_with_tailscale(dir.path(), &[]);
    server.cli_ok(&["users", "create", "alice"]);
    let key = server.token(&["--user", "alice"]);
    let mut device = Device::connect(plain, IpAddr::from([127, 0, 0, 1])).await;
    let (_, answer) = device.register(Some(key.key.expose())).await;
    assert_eq!(answer["MachineAuthorized"], false);
    assert_eq!(device.report().await, 200);
    let nodes = server.nodes_json();
    let node = node_named(&nodes, &device.node_key).unwrap();
    assert_eq!(node["endpoints"], json!([]), "{node}");
    assert_eq!(node["advertised_routes"], json!([]), "{node}");
    // Approved, what it reported while waiting takes effect (the client
    // does not report again just because it was let in).
    let id = node["id"].as_u64().unwrap().to_string();
    server.cli_ok(&["nodes", "approve", &id]);
    let nodes = server.nodes_json();
    let node = node_named(&nodes, &device.node_key).unwrap();
    assert_eq!(node["endpoints"], json!(["198.51.100.7:41641"]), "{node}");
    assert_eq!(
        node["advertised_routes"],
        json!(["192.168.77.0/24"]),
        "{node}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_few_addresses_cannot_take_every_keyless_login_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, plain) = start_with_tailscale(dir.path(), &[]);
    // The review's attack: sixteen addresses, four waiting devices each.
    let mut waiting = Vec::new();
    for network in 20..36u8 {
        for _ in 0..4 {
            let mut device = Device::connect(plain, IpAddr::from([127, 0, network, 1])).await;
            let (_, answer) = device.register(None).await;
            assert!(
                answer["AuthURL"]
                    .as_str()
                    .is_some_and(|url| !url.is_empty())
            );
            waiting.push(device);
        }
    }
    // A household's phone still gets its login page.
    let mut phone = Device::connect(plain, IpAddr::from([127, 0, 50, 1])).await;
    let (_, answer) = phone.register(None).await;
    assert!(
        answer["AuthURL"]
            .as_str()
            .is_some_and(|url| url.contains("/register/")),
        "the phone got no login URL: {answer}"
    );
    // Many addresses of one network count together.
    let mut from_one_network = 0;
    for host in 1..=32u8 {
        let mut device = Device::connect(plain, IpAddr::from([127, 0, 60, host])).await;
        let (_, answer) = device.register(None).await;
        if answer["AuthURL"]
            .as_str()
            .is_some_and(|url| !url.is_empty())
        {
            from_one_network += 1;
            waiting.push(device);
        }
    }
    assert!(
        from_one_network <= 16,
        "one /24 holds {from_one_network} waiting logins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_member_cannot_rotate_keys_or_open_map_streams_without_limit() {
    use hearth_control::tls::{ClientIdentity, generate_key_request};
    use hearth_control::wire::RotateRequest;
    use hearth_testkit::control_plane::{register, wireguard_key};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--pre-approved", "--reusable"]);
    let member = register(&token, "looping").await;
    let watcher = register(&token, "watcher").await;
    let mut watching = watcher.client.map_stream().await.unwrap();
    watching.next().await.unwrap().unwrap(); // the full map
    watching.next().await.unwrap().unwrap(); // who of its peers is connected

    // Rotating in a loop, as the review did (1,234 times in 15 s).
    let mut rotated = 0;
    let mut refused = 0;
    for _ in 0..50 {
        let request = generate_key_request("looping").unwrap();
        let answer = member
            .client
            .rotate(&RotateRequest {
                wireguard_key: wireguard_key(),
                csr_der: hearth_control::wire::encode_der(&request.csr_der),
            })
            .await;
        match answer {
            Ok(response) => {
                rotated += 1;
                member
                    .client
                    .set_identity(&ClientIdentity {
                        certificate_pem: response.client_certificate_pem,
                        key_pem: request.key_pem,
                    })
                    .unwrap();
            }
            Err(error) => {
                assert_eq!(error.code(), Some("rate_limited"), "{error}");
                refused += 1;
            }
        }
    }
    assert_eq!(
        (rotated, refused),
        (3, 47),
        "a burst of three, then once per tenth of the key lifetime"
    );
    // The watcher heard three key changes, not fifty.
    let mut changes = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(500), watching.next()).await
    {
        if let hearth_control::wire::MapMessage::Delta { changes: delta } = message {
            changes += delta.len();
        }
    }
    assert!(
        (1..=3).contains(&changes),
        "{changes} changes reached the peer"
    );

    // Opening map streams in a loop: the burst, then refusals; no more
    // than four held at once.
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        match member.client.map_stream().await {
            Ok(stream) => streams.push(stream),
            Err(error) => {
                assert_eq!(error.code(), Some("rate_limited"), "{error}");
                refused += 1;
            }
        }
    }
    assert_eq!(streams.len(), 10, "the burst");
    assert_eq!(refused, 10);
    let mut ended = 0;
    for stream in &mut streams {
        // Each begins with its full map and who of its peers is
        // connected; the ones the coordinator let go end right after.
        stream.next().await.unwrap().unwrap();
        stream.next().await.unwrap().unwrap();
        if tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_ok_and(|next| next.is_none())
        {
            ended += 1;
        }
    }
    assert_eq!(ended, 6, "only the four newest streams are held");
}

/// The TXT values the DNS server at `server` answers for `name` (UDP;
/// none when it refuses a name outside its zones).
fn txt_values(server: SocketAddr, name: &str) -> Vec<String> {
    let query = hearth_control::dns::query(0x517e, name, hearth_control::dns::TYPE_TXT);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&query, server).unwrap();
    let mut buffer = [0u8; 1500];
    let (size, _) = hearth_testkit::through_signals(|| socket.recv_from(&mut buffer)).unwrap();
    let reply = hearth_control::dns::parse_reply(&buffer[..size]).unwrap();
    reply
        .answers
        .into_iter()
        .filter_map(|(_, _, data)| match data {
            hearth_control::dns::Data::Txt(text) => Some(text),
            _ => None,
        })
        .collect()
}

/// A coordinator with the plain Tailscale listener and ACME on: its CA at
/// a dead address (the tests here need only its DNS server), `domain` its
/// own name when given, `base_domain` the MagicDNS domain. The server, its
/// plain listener and its DNS server's address.
fn start_with_acme(
    dir: &std::path::Path,
    domain: Option<&str>,
    base_domain: &str,
) -> (Server, SocketAddr, SocketAddr) {
    let dns = SocketAddr::from(([127, 0, 0, 1], hearth_testkit::control_plane::free_port()));
    let mut acme = json!({
        "directory": "https://127.0.0.1:9/dir",
        "terms_of_service_agreed": true,
        "dns_listen": [dns.to_string()],
    });
    if let Some(domain) = domain {
        acme["domain"] = json!(domain);
    }
    let config = dir.join("acme.json");
    std::fs::write(&config, acme.to_string()).unwrap();
    let (server, plain) = start_with_tailscale(
        &dir.join("state"),
        &[
            "--base-domain",
            base_domain,
            "--acme-config",
            config.to_str().unwrap(),
        ],
    );
    (server, plain, dns)
}

/// With device certificates on, a device asks the coordinator over its
/// control session to publish its ACME DNS-01 challenge (`tailscale
/// cert`). A device that could publish the challenge of another device's
/// name would get a certificate for it from a public CA, and could pass
/// as that device to every other over HTTPS; one that could publish the
/// coordinator's own would pass as the coordinator to every phone. Each
/// way of trying is refused, and the coordinator's DNS server answers
/// only what the owner published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_cannot_publish_the_certificate_challenge_of_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain, dns) = start_with_acme(dir.path(), None, "ts.home.example");
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "mallory"]);
    let alice = server.token(&["--user", "alice", "--pre-approved"]);
    let mallory = server.token(&["--user", "mallory", "--pre-approved"]);
    let waiting = server.token(&["--user", "mallory"]);
    let from = IpAddr::from([127, 0, 0, 1]);
    let mut laptop = Device::connect(plain, from).await;
    assert_eq!(
        laptop
            .register_as("laptop", Some(alice.key.expose()))
            .await
            .0,
        200
    );
    let mut intruder = Device::connect(plain, from).await;
    assert_eq!(
        intruder
            .register_as("intruder", Some(mallory.key.expose()))
            .await
            .0,
        200
    );

    let set_dns = |node_key: [u8; 32], name: &str, value: &str| {
        json!({
            "Version": 1,
            "NodeKey": node_key_text(&node_key),
            "Name": name,
            "Type": "TXT",
            "Value": value,
        })
    };
    let laptops = "_acme-challenge.laptop.ts.home.example";
    let forged = "forged-by-the-intruder-0000000000000000000";
    let attempts = [
        // The laptop's name, from the intruder's session and node key.
        (set_dns(intruder.node_key, laptops, forged), "its own name"),
        // The same with the laptop's node key, from the intruder's session.
        (set_dns(laptop.node_key, laptops, forged), "node key"),
        // A name outside the device names: the coordinator's, or the zone.
        (
            set_dns(
                intruder.node_key,
                "_acme-challenge.hub.home.example",
                forged,
            ),
            "its own name",
        ),
        (
            set_dns(intruder.node_key, "_acme-challenge.ts.home.example", forged),
            "its own name",
        ),
        // Another record type at its own name.
        (
            json!({"Version": 1, "NodeKey": node_key_text(&intruder.node_key),
                   "Name": "_acme-challenge.intruder.ts.home.example", "Type": "A", "Value": "100.64.0.9"}),
            "only TXT",
        ),
    ];
    for (request, why) in attempts {
        let (status, body) = ts2021::post_json(&mut intruder.sender, "/machine/set-dns", &request)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{request}: {body}");
        assert!(body.contains(why), "{request}: {body}");
    }
    assert!(
        txt_values(dns, laptops).is_empty(),
        "nothing was published for the laptop"
    );
    assert!(txt_values(dns, "_acme-challenge.hub.home.example").is_empty());

    // A device not yet approved publishes nothing, not even for itself.
    let mut pending = Device::connect(plain, from).await;
    assert_eq!(
        pending
            .register_as("pending", Some(waiting.key.expose()))
            .await
            .0,
        200
    );
    let request = set_dns(
        pending.node_key,
        "_acme-challenge.pending.ts.home.example",
        "pending-value",
    );
    let (status, _) = ts2021::post_json(&mut pending.sender, "/machine/set-dns", &request)
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(txt_values(dns, "_acme-challenge.pending.ts.home.example").is_empty());

    // The owner's own challenge is published and answered.
    let value = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    let (status, body) = ts2021::post_json(
        &mut laptop.sender,
        "/machine/set-dns",
        &set_dns(
            laptop.node_key,
            "_acme-challenge.Laptop.ts.home.example.",
            value,
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(txt_values(dns, laptops), [value]);
}

/// Issue 41's review: with the MagicDNS domain `home.example` and the
/// coordinator's own ACME name `hub.home.example`, a guest's device called
/// `hub` would be given that name, publish `_acme-challenge.hub.home.example`
/// through set-dns, and get a certificate for the coordinator's name from
/// the CA. A device is never given one of the coordinator's names (the
/// guest's `hub` becomes `hub-2`, and an admin cannot rename a device to
/// it), and set-dns never publishes the challenge of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_named_as_the_coordinator_gets_neither_its_name_nor_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain, dns) =
        start_with_acme(dir.path(), Some("hub.home.example"), "home.example");
    server.cli_ok(&["users", "create", "guest"]);
    let key = server.token(&["--user", "guest", "--pre-approved"]);
    let mut device = Device::connect(plain, IpAddr::from([127, 0, 0, 1])).await;
    assert_eq!(
        device.register_as("hub", Some(key.key.expose())).await.0,
        200
    );
    let nodes = server.nodes_json();
    let node = node_named(&nodes, &device.node_key).expect("the guest's device");
    assert_ne!(
        node["name"], "hub",
        "the coordinator's name went to a device"
    );
    let id = node["id"].to_string();
    let renamed = server.cli(&["nodes", "rename", &id, "hub"]);
    assert!(
        !renamed.status.success(),
        "an admin renamed a device to the coordinator's name"
    );

    let challenge = "_acme-challenge.hub.home.example";
    let request = json!({
        "Version": 1,
        "NodeKey": node_key_text(&device.node_key),
        "Name": challenge,
        "Type": "TXT",
        "Value": "the-guests-value-00000000000000000000000000",
    });
    let (status, body) = ts2021::post_json(&mut device.sender, "/machine/set-dns", &request)
        .await
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        txt_values(dns, challenge).is_empty(),
        "the coordinator's challenge was published for a guest"
    );
}

/// The node id of `device`.
fn id_of(server: &Server, device: &Device) -> u64 {
    node_named(&server.nodes_json(), &device.node_key).expect("the device is a node")["id"]
        .as_u64()
        .expect("an id")
}

/// `device` asks about a Tailscale SSH session from node `from` to itself
/// (node `to`) as `local_user` (with `check`: collecting that check's
/// decision): the status and the answer.
async fn ssh_action(
    device: &mut Device,
    from: u64,
    to: u64,
    local_user: &str,
    check: Option<u64>,
) -> (u16, Value) {
    let mut path = format!(
        "/machine/ssh/action/from/{from}/to/{to}?ssh_user=root&local_user={}&period=3600",
        percent(local_user)
    );
    if let Some(check) = check {
        path.push_str(&format!("&check={check}"));
    }
    let (status, body) = ts2021::get(&mut device.sender, &path).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn percent(text: &str) -> String {
    text.bytes().map(|byte| format!("%{byte:02X}")).collect()
}

/// The check number a waiting session was given.
fn check_number(answer: &Value) -> u64 {
    let url = answer["holdAndDelegate"].as_str().unwrap_or_default();
    url.rsplit_once("check=")
        .and_then(|(_, id)| id.parse().ok())
        .unwrap_or_else(|| panic!("no check number in {answer}"))
}

/// Issue 41's review of Tailscale SSH `check` sessions: one node invented
/// 70 checks and took every waiting slot, so a real check elsewhere was
/// refused; a node polling another node's check number collected its
/// approval (and the real node was then told it was denied); and a
/// device's local user with terminal escapes reached the admin's terminal
/// through `ssh checks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_checks_hold_against_a_flood_a_thief_and_terminal_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, plain) = start_with_tailscale(dir.path(), &[]);
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "mallory"]);
    let alice = server.token(&["--user", "alice", "--pre-approved", "--reusable"]);
    let mallory = server.token(&["--user", "mallory", "--pre-approved"]);
    let from = IpAddr::from([127, 0, 0, 1]);
    let mut server_node = Device::connect(plain, from).await;
    assert_eq!(
        server_node
            .register_as("nas", Some(alice.key.expose()))
            .await
            .0,
        200
    );
    let mut laptop = Device::connect(plain, from).await;
    assert_eq!(
        laptop
            .register_as("laptop", Some(alice.key.expose()))
            .await
            .0,
        200
    );
    let mut thief = Device::connect(plain, from).await;
    assert_eq!(
        thief
            .register_as("thief", Some(mallory.key.expose()))
            .await
            .0,
        200
    );
    let (nas, laptop_id, thief_id) = (
        id_of(&server, &server_node),
        id_of(&server, &laptop),
        id_of(&server, &thief),
    );

    // The thief's node invents checks to itself until it is refused.
    let mut refused = 0;
    for index in 0..70 {
        let (status, _) = ssh_action(
            &mut thief,
            laptop_id,
            thief_id,
            &format!("user{index}"),
            None,
        )
        .await;
        if status != 200 {
            refused += 1;
        }
    }
    assert!(refused > 0, "one node kept 70 checks waiting");
    // A real session to the NAS still waits for the admin.
    let (status, answer) = ssh_action(&mut server_node, laptop_id, nas, "root", None).await;
    assert_eq!(status, 200, "{answer}");
    let real = check_number(&answer);

    // The admin approves it; the thief asks for its decision first.
    server.cli_ok(&["ssh", "approve", &real.to_string()]);
    let (status, stolen) = ssh_action(&mut thief, laptop_id, thief_id, "root", Some(real)).await;
    assert!(
        status != 200 || stolen["accept"] != true,
        "the thief collected the approval: {stolen}"
    );
    let (status, answer) = ssh_action(&mut server_node, laptop_id, nas, "root", Some(real)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accept"], true,
        "the NAS lets the approved session in: {answer}"
    );

    // A local user that writes to the admin's terminal.
    let hostile = "root\u{1b}]0;owned\u{7}\u{1b}[2J\nforged line";
    let (status, _) = ssh_action(&mut thief, laptop_id, thief_id, hostile, None).await;
    assert_eq!(status, 400, "a local user with terminal controls was taken");
    let listed = server.cli_ok(&["ssh", "checks"]);
    assert!(
        !listed.chars().any(|c| c.is_control() && c != '\n'),
        "the admin's terminal got control characters: {listed:?}"
    );
    assert!(!listed.contains("forged line"), "{listed}");
}

/// A TCP connection from `from` to `server`.
async fn connect_from(from: IpAddr, server: SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    socket.connect(server).await.ok()
}

/// One DNS query over TCP from `from` to `server`: the TXT values, or
/// `None` when the server does not answer (closes, or nothing in 5 s).
async fn txt_over_tcp(from: IpAddr, server: SocketAddr, name: &str) -> Option<Vec<String>> {
    use std::io::{Read, Write};
    let mut stream = connect_from(from, server).await?.into_std().ok()?;
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let query = hearth_control::dns::query(0x7c9, name, hearth_control::dns::TYPE_TXT);
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).ok()?;
    let mut length = [0u8; 2];
    hearth_testkit::through_signals(|| stream.read_exact(&mut length)).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    hearth_testkit::through_signals(|| stream.read_exact(&mut reply)).ok()?;
    let reply = hearth_control::dns::parse_reply(&reply).ok()?;
    Some(
        reply
            .answers
            .into_iter()
            .filter_map(|(_, _, data)| match data {
                hearth_control::dns::Data::Txt(text) => Some(text),
                _ => None,
            })
            .collect(),
    )
}

/// Issue 41's review: the ACME zone's TCP side held 64 connections for
/// everyone, and one address took them all (connections it kept busy, or
/// never read from), so the CA's own queries over TCP were refused. One
/// address now holds a few; another is answered; a connection that keeps
/// asking is closed after its share of queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_cannot_hold_every_dns_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _plain, dns) =
        start_with_acme(dir.path(), Some("hub.home.example"), "ts.home.example");
    let name = "_acme-challenge.hub.home.example";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while txt_over_tcp(IpAddr::from([127, 0, 0, 3]), dns, name)
        .await
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the DNS server never answered over TCP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The attacker opens 64 connections and sends nothing on them.
    let attacker = IpAddr::from([127, 0, 0, 2]);
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(connect_from(attacker, dns).await.unwrap());
    }
    assert!(
        txt_over_tcp(IpAddr::from([127, 0, 0, 4]), dns, name)
            .await
            .is_some(),
        "the CA's query was refused while one address held the connections"
    );

    // A connection that keeps asking is closed after its share.
    use std::io::{Read, Write};
    let mut busy = std::net::TcpStream::connect(dns).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let query = hearth_control::dns::query(0x7ca, name, hearth_control::dns::TYPE_TXT);
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let mut answered = 0;
    for _ in 0..64 {
        if busy.write_all(&framed).is_err() {
            break;
        }
        let mut length = [0u8; 2];
        if hearth_testkit::through_signals(|| busy.read_exact(&mut length)).is_err() {
            break;
        }
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if hearth_testkit::through_signals(|| busy.read_exact(&mut reply)).is_err() {
            break;
        }
        answered += 1;
    }
    assert!(
        answered < 64,
        "one connection was answered {answered} times"
    );
    assert!(answered >= 1);
    drop(held);
}

/// The fourth review: a device's certificate orders were counted in memory
/// only (a restart forgot them) and only when the CA issued one (a failed
/// order, which costs the CA as much, was free), so a device could make the
/// coordinator order without end. Every order counts, and the count is the
/// database's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_certificate_orders_count_failed_or_not_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Its CA is at a dead address: every order fails.
    let (mut server, _plain, _dns) = start_with_acme(dir.path(), None, "ts.home.example");
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--pre-approved"]);
    let laptop = hearth_testkit::control_plane::register(&token, "laptop").await;
    let order = || {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["laptop.ts.home.example".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        hearth_control::wire::CertRequest {
            csr_der: hearth_control::wire::encode_der(
                params.serialize_request(&key).unwrap().der(),
            ),
        }
    };
    let week = hearth_coordinator::acme::DEVICE_CERTIFICATES_PER_WEEK;
    for _ in 0..week - 1 {
        let failed = laptop.client.certificate(&order()).await.unwrap_err();
        assert!(!failed.to_string().contains("this week"), "{failed}");
    }
    // A restart forgets none of them.
    server.sigterm();
    let server = server.restart();
    let failed = laptop.client.certificate(&order()).await.unwrap_err();
    assert!(!failed.to_string().contains("this week"), "{failed}");
    let refused = laptop.client.certificate(&order()).await.unwrap_err();
    assert!(refused.to_string().contains("this week"), "{refused}");
    drop(server);
}
