#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The admin CLI's verbs, as an admin types them.

use std::time::Duration;

use hearth_control::wire::EndpointReport;
use hearth_testkit::control_plane::{MapView, Server, cli, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_are_created_listed_renamed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "bob"]);
    let duplicate = server.cli(&["users", "create", "alice"]);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let invalid = server.cli(&["users", "create", "tag:x"]);
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("must be 1 to 64 characters"));

    server.cli_ok(&["users", "rename", "bob", "robert"]);
    let table = server.cli_ok(&["users", "list"]);
    assert!(table.starts_with("ID  NAME"), "{table}");
    assert!(
        table.contains("robert") && !table.contains("bob"),
        "{table}"
    );

    let token = server.token(&["--user", "alice"]);
    register(&token, "laptop").await;
    let refused = server.cli(&["users", "delete", "alice"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("still owns 1 node"));
    server.cli_ok(&["users", "delete", "robert"]);
    let users: Vec<serde_json::Value> =
        serde_json::from_str(&server.cli_ok(&["users", "list", "--output", "json"])).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["name"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_list_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "bob"]);
    let token_line = server.cli_ok(&[
        "preauthkeys",
        "create",
        "--user",
        "alice",
        "--reusable",
        "--expiration",
        "1h",
    ]);
    assert_eq!(token_line.lines().count(), 1, "create prints one line");
    assert!(token_line.starts_with("hearth-join-v1:"));
    server.token(&["--user", "bob", "--tags", "tag:server"]);
    let bad_tag = server.cli(&["preauthkeys", "create", "--user", "bob", "--tags", "server"]);
    assert!(String::from_utf8_lossy(&bad_tag.stderr).contains("tag:name"));
    let missing = server.cli(&["preauthkeys", "create", "--user", "nobody"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("user `nobody` not found"));

    let alice_keys: Vec<serde_json::Value> = serde_json::from_str(&server.cli_ok(&[
        "preauthkeys",
        "list",
        "--user",
        "alice",
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(alice_keys.len(), 1);
    assert_eq!(alice_keys[0]["usable"], true);
    assert!(alice_keys[0].get("secret_hash").is_none());
    let table = server.cli_ok(&["preauthkeys", "list"]);
    assert!(
        !table.contains(token_line.trim().split('-').next_back().unwrap()),
        "list never shows secrets"
    );

    server.cli_ok(&["preauthkeys", "expire", &alice_keys[0]["id"].to_string()]);
    let keys = server.keys_json();
    assert_eq!(keys[0]["usable"], false);
    assert!(
        !server
            .cli(&["preauthkeys", "expire", "999"])
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_verbs_change_what_peers_see() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let laptop = register(&token, "Laptop").await;
    let phone = register(&token, "phone").await;
    let mut laptop_view = MapView::open(&laptop).await;
    let phone_id = phone.id();
    assert!(laptop_view.has_peer(phone_id));

    let renamed = server.cli_ok(&["nodes", "rename", &phone_id.to_string(), "kitchen-phone"]);
    assert!(renamed.contains("kitchen-phone"));
    let clash = server.cli(&["nodes", "rename", &phone_id.to_string(), "laptop"]);
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already called"));

    server.cli_ok(&["nodes", "tag", &phone_id.to_string(), "--tags", "tag:iot"]);
    let nodes = server.nodes_json();
    assert_eq!(nodes[1]["tags"][0], "tag:iot");
    assert_eq!(nodes[0]["name"], "laptop", "hostnames become DNS labels");

    server.cli_ok(&["nodes", "expire", &phone_id.to_string()]);
    laptop_view
        .wait_until(Duration::from_secs(1), |view| !view.has_peer(phone_id))
        .await;
    server.cli_ok(&["nodes", "approve", &phone_id.to_string()]);
    laptop_view
        .wait_until(Duration::from_secs(1), |view| view.has_peer(phone_id))
        .await;
    server.cli_ok(&["nodes", "reject", &phone_id.to_string()]);
    laptop_view
        .wait_until(Duration::from_secs(1), |view| !view.has_peer(phone_id))
        .await;
    assert_eq!(server.nodes_json()[1]["state"], "rejected");
    let error = phone.client.map_stream().await.err().unwrap();
    assert_eq!(error.code(), Some("node_not_admitted"));

    let missing = server.cli(&["nodes", "approve", "99"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("node 99 not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoint_reports_reach_peers_and_stun_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let token = server.token(&["--user", "alice", "--reusable", "--pre-approved"]);
    let laptop = register(&token, "laptop").await;
    let phone = register(&token, "phone").await;
    let mut stream = laptop.client.map_stream().await.unwrap();
    stream.next().await.unwrap().unwrap(); // the full map
    stream.next().await.unwrap().unwrap(); // who of its peers is connected

    phone
        .client
        .report_endpoints(&EndpointReport {
            listen_port: 41641,
            local: vec!["192.0.2.10:41641".parse().unwrap()],
            stun: Some("198.51.100.7:41641".parse().unwrap()),
            ..EndpointReport::default()
        })
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(1), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let hearth_control::wire::MapMessage::Delta { changes } = message else {
        panic!("{message:?}")
    };
    let hearth_control::wire::MapChange::PeerChanged { peer } = &changes[0] else {
        panic!("{changes:?}")
    };
    let endpoints: Vec<String> = peer.endpoints.iter().map(ToString::to_string).collect();
    assert_eq!(
        endpoints,
        ["192.0.2.10:41641", "127.0.0.1:41641", "198.51.100.7:41641"]
    );

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let transaction = [7u8; 12];
    socket
        .send_to(
            &hearth_control::stun::binding_request(transaction),
            server.stun,
        )
        .unwrap();
    let mut buffer = [0u8; 128];
    let (length, _) = hearth_testkit::through_signals(|| socket.recv_from(&mut buffer)).unwrap();
    let observed = hearth_control::stun::parse_binding_response(&buffer[..length], transaction);
    assert_eq!(observed, Some(socket.local_addr().unwrap()));
}

#[test]
fn cli_without_a_running_server_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &["nodes", "list"]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("cannot reach the coordinator") && text.contains("--state-dir"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_tells_a_person_what_needs_attention_and_metrics_count_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = hearth_testkit::control_plane::free_port();
    let server = Server::builder(&dir.path().join("state"))
        .arg("--metrics-listen")
        .arg(&format!("127.0.0.1:{metrics_port}"))
        .start();
    server.cli_ok(&["users", "create", "alice"]);
    let servers = server.token(&["--user", "alice", "--pre-approved", "--tags", "tag:server"]);
    let laptops = server.token(&["--user", "alice"]);
    let model_box = register(&servers, "model-box").await;
    register(&laptops, "laptop").await;

    // The tagged server has not connected; a laptop waits for approval.
    let output = server.cli(&["health"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.starts_with("needs attention\n"), "{text}");
    assert!(
        text.contains("1 of 1 tagged nodes (servers) are not connected"),
        "{text}"
    );
    assert!(text.contains("1 nodes wait for `nodes approve`"), "{text}");
    assert!(text.contains("nodes       1 approved, 1 pending"), "{text}");
    assert!(
        text.contains("certificate server: 3649 days left")
            || text.contains("certificate server: 3650 days left"),
        "{text}"
    );

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "hearth_coordinator_nodes{state=\"pending\"} 1",
        "hearth_coordinator_tagged_nodes 1",
        "hearth_coordinator_tagged_nodes_connected 0",
        "hearth_coordinator_database_ok 1",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert!(!metrics.contains("model-box") && !metrics.contains("alice"));

    // The server connects and the laptop is approved (or, here, deleted):
    // all is well.
    let _view = MapView::open(&model_box).await;
    let laptop_id = server
        .nodes_json()
        .iter()
        .find(|node| node["name"] == "laptop")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    server.cli_ok(&["nodes", "delete", &laptop_id.to_string()]);
    let output = server.cli(&["health"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{text}");
    assert!(text.starts_with("healthy\n"), "{text}");
    assert!(
        text.contains("connected   1 of 1 agents (1 of 1 tagged)"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&server.cli_ok(&["health", "--output", "json"])).unwrap();
    assert_eq!(json["database_check"], "ok");
}

/// The second review: a password in the PostgreSQL URL's query
/// (`?password=`) got past the check for passwords in the URL (which any
/// user reads in the process list) and was echoed in the error line.
#[test]
fn a_password_in_the_database_urls_query_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(hearth_testkit::control_plane::coordinator_binary())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--stun-listen",
            "off",
            "--database",
            "postgres://hearth@127.0.0.1:1/hearth?sslmode=disable&password=hunter2",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("--database-password-file"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

#[test]
fn a_dns_config_with_a_mistake_stops_the_start_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("dns.json");
    std::fs::write(
        &settings,
        r#"{"nameservers": {"split": {"corp.example": ["dns.corp.example"]}}}"#,
    )
    .unwrap();
    let output = std::process::Command::new(hearth_testkit::control_plane::coordinator_binary())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["serve", "--listen", "127.0.0.1:0", "--stun-listen", "off"])
        .arg("--dns-config")
        .arg(&settings)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(
            "dns.json: nameservers.split.corp.example: `dns.corp.example` is not an IP address"
        ),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_come_from_the_policy_and_the_admin_and_keep_their_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, hearth_testkit::CHAT_SERVICE_POLICY).unwrap();
    server.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    let listed = |server: &Server| -> Vec<serde_json::Value> {
        serde_json::from_str(&server.cli_ok(&["services", "list", "--output", "json"])).unwrap()
    };
    let services = listed(&server);
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["name"], "svc:chat");
    assert_eq!(services[0]["addresses"][0], "100.100.0.1");
    assert_eq!(services[0]["in_policy"], true);
    assert_eq!(services[0]["placed"], "none");

    let created = server.cli_ok(&["services", "create", "svc:files"]);
    assert!(
        created.contains("files.hearth.internal at 100.100.0.2"),
        "{created}"
    );
    let refused = |args: &[&str]| String::from_utf8_lossy(&server.cli(args).stderr).into_owned();
    assert!(refused(&["services", "create", "svc:files"]).contains("already exists"));
    assert!(refused(&["services", "create", "svc:Files"]).contains("not a service name"));
    assert!(refused(&["services", "create", "files"]).contains("not a service name"));
    assert!(
        refused(&["services", "delete", "svc:chat"]).contains("the policy names svc:chat"),
        "a service the policy names stays"
    );
    assert!(refused(&["services", "move", "svc:chat", "--to", "nosuch"]).contains("nosuch"));
    assert!(refused(&["services", "move", "svc:nosuch", "--to", "1"]).contains("not found"));

    // A hub (tag:hub) advertises svc:chat: autoApprovers make it the host.
    let hub_token = server.token(&["--user", "alice", "--tags", "tag:hub", "--pre-approved"]);
    let hub = register(&hub_token, "hub").await;
    let report = |services: &[&str]| hearth_control::wire::RoutesReport {
        advertised: Vec::new(),
        services: services.iter().map(|name| name.to_string()).collect(),
    };
    let bad = hub.client.report_routes(&report(&["svc:Bad"])).await;
    assert_eq!(bad.err().unwrap().code(), Some("bad_request"));
    hub.client
        .report_routes(&report(&["svc:chat"]))
        .await
        .unwrap();
    let chat = listed(&server)[0].clone();
    assert_eq!(chat["host"], "hub", "{chat}");
    assert_eq!(chat["placed"], "approved");
    assert_eq!(chat["advertised_by"][0], "hub");
    // An untagged device advertising it is not allowed to host it.
    let laptop_token = server.token(&["--user", "alice", "--pre-approved"]);
    let laptop = register(&laptop_token, "laptop").await;
    laptop
        .client
        .report_routes(&report(&["svc:chat"]))
        .await
        .unwrap();
    assert_eq!(listed(&server)[0]["host"], "hub");
    // Unless the admin chooses it.
    let moved = server.cli_ok(&["services", "move", "svc:chat", "--to", "laptop"]);
    assert!(moved.contains("laptop (chosen)"), "{moved}");
    server.cli_ok(&["services", "delete", "svc:files"]);

    // After a restart: the service, its address and the admin's choice.
    server.sigterm();
    let server = server.restart();
    let services = listed(&server);
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["addresses"][0], "100.100.0.1");
    assert_eq!(services[0]["host"], "laptop");
    server.cli_ok(&["services", "move", "svc:chat", "--auto"]);
    assert_eq!(listed(&server)[0]["host"], "hub");
}

/// Attack (hardening round five, finding 1): a member's device registered
/// as `chat` (or renamed so) took over `chat.<tailnet>`, where members'
/// apps reach the household's chat. The services' names are reserved: a
/// registration called so gets another name, a rename to it is refused
/// saying why, and a device already called so when a service of that name
/// is created is renamed away, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_take_a_services_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "bob"]);
    // Before any service: bob's device is called "assistant".
    let token = server.token(&["--user", "bob", "--pre-approved", "--reusable"]);
    let early = register(&token, "assistant").await;
    assert_eq!(early.response.node.name, "assistant");
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, hearth_testkit::CHAT_SERVICE_POLICY).unwrap();
    server.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    // svc:chat exists now: a device registering as "chat" is another name.
    let impostor = register(&token, "chat").await;
    assert_eq!(impostor.response.node.name, "chat-2");
    let nodes = || -> Vec<serde_json::Value> {
        serde_json::from_str(&server.cli_ok(&["nodes", "list", "--output", "json"])).unwrap()
    };
    let name_of = |id: u64| {
        nodes()
            .into_iter()
            .find(|node| node["id"] == id)
            .map(|node| node["name"].as_str().unwrap().to_owned())
    };
    let refused = server.cli(&["nodes", "rename", &impostor.id().to_string(), "chat"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("name of the household's service svc:chat"),
        "{said}"
    );
    assert_eq!(name_of(impostor.id()).as_deref(), Some("chat-2"));
    // The admin creates svc:assistant: bob's device called so is renamed.
    server.cli_ok(&["services", "create", "svc:assistant"]);
    assert_eq!(name_of(early.id()).as_deref(), Some("assistant-2"));
    assert!(
        server
            .log_text()
            .contains("had the name of the household's service"),
        "the log says it: {}",
        server.log_text()
    );
    let refused = server.cli(&["nodes", "rename", &early.id().to_string(), "assistant"]);
    assert!(!refused.status.success());
    // Another name stays free to take.
    server.cli_ok(&["nodes", "rename", &early.id().to_string(), "bobs-box"]);
    assert_eq!(name_of(early.id()).as_deref(), Some("bobs-box"));
}
