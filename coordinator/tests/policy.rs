//! Policy on a running coordinator: changes reach connected nodes as deltas,
//! invalid policies are refused and change nothing, routes are auto-approved.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use hearth_control::wire::RoutesReport;
use hearth_testkit::control_plane::{MapView, Server, register};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const NAS_ONLY: &str = r#"{
  // alice may use the NAS's file share; nothing else is allowed.
  "tagOwners": {"tag:nas": ["alice@"]},
  "acls": [{"action": "accept", "src": ["alice@"], "dst": ["tag:nas:445"]}],
  "tests": [{"src": "alice@", "accept": ["tag:nas:445"], "deny": ["tag:nas:22"]}],
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_change_reaches_connected_nodes_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    server.cli_ok(&["users", "create", "bob"]);
    let alice_key = server.token(&["--user", "alice", "--pre-approved"]);
    let bob_key = server.token(&["--user", "bob", "--pre-approved"]);
    let nas_key = server.token(&["--user", "alice", "--pre-approved", "--tags", "tag:nas"]);
    let laptop = register(&alice_key, "laptop").await;
    let tv = register(&bob_key, "tv").await;
    let nas = register(&nas_key, "nas").await;
    let mut laptop_view = MapView::open(&laptop).await;
    let mut tv_view = MapView::open(&tv).await;
    let mut nas_view = MapView::open(&nas).await;
    assert_eq!(tv_view.peers.len(), 2, "no policy: everyone sees everyone");

    let file = write(dir.path(), "policy.hujson", NAS_ONLY);
    let started = std::time::Instant::now();
    server.cli_ok(&["policy", "set", &file]);
    let (laptop_id, nas_id) = (laptop.id(), nas.id());
    tv_view
        .wait_until(Duration::from_secs(1), |view| view.peers.is_empty())
        .await;
    laptop_view
        .wait_until(Duration::from_secs(1), |view| {
            view.peers.len() == 1 && view.has_peer(nas_id) && view.filter_changes == 1
        })
        .await;
    nas_view
        .wait_until(Duration::from_secs(1), |view| {
            view.peers.len() == 1 && view.has_peer(laptop_id) && view.filter_changes == 1
        })
        .await;
    println!(
        "all three maps updated {:?} after `policy set` started",
        started.elapsed()
    );
    assert!(
        laptop_view.filter.rules.is_empty(),
        "nobody may reach the laptop"
    );
    let rule = &nas_view.filter.rules[0];
    assert_eq!(rule.src, vec![hearth_acl::Source::User("alice".into())]);
    assert_eq!(rule.dst[0].ports, hearth_acl::PortRange::single(445));

    assert_eq!(server.cli_ok(&["policy", "get"]), NAS_ONLY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_policy_is_refused_and_the_old_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let key = server.token(&["--user", "alice", "--pre-approved", "--reusable"]);
    let laptop = register(&key, "laptop").await;
    let phone = register(&key, "phone").await;
    let good = write(
        dir.path(),
        "good.json",
        r#"{"acls": [{"action": "accept", "src": ["alice@"], "dst": ["alice@:*"]}]}"#,
    );
    server.cli_ok(&["policy", "set", &good]);
    let mut view = MapView::open(&laptop).await;
    assert!(view.has_peer(phone.id()));

    for (name, text, reason) in [
        (
            "unknown-tag.json",
            r#"{"acls": [{"action": "accept", "src": ["tag:ghost"], "dst": ["*:*"]}]}"#,
            "tag not found",
        ),
        (
            "deny.json",
            r#"{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}"#,
            "not supported",
        ),
        ("typo.json", "{\n \"acl\": []\n}", "unknown field `acl`"),
        ("not-json.json", "{ acls: ", "line 1"),
        (
            "failing-test.json",
            r#"{"acls": [], "tests": [{"src": "alice@", "accept": ["100.64.0.2:22"]}]}"#,
            "alice@ cannot reach 100.64.0.2:22",
        ),
    ] {
        let file = write(dir.path(), name, text);
        for verb in ["set", "check"] {
            let output = server.cli(&["policy", verb, &file]);
            assert!(
                !output.status.success(),
                "{name} was accepted by policy {verb}"
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("policy rejected") && stderr.contains(reason),
                "{name}: {stderr}"
            );
        }
    }
    assert_eq!(
        server.cli_ok(&["policy", "get"]),
        std::fs::read_to_string(&good).unwrap()
    );
    // No delta reached the laptop: the next line is a keep-alive or nothing.
    let quiet = tokio::time::timeout(Duration::from_millis(300), view.next()).await;
    assert!(quiet.is_err(), "a refused policy sent a delta");
    assert!(view.has_peer(phone.id()));

    let valid = write(dir.path(), "valid.json", NAS_ONLY);
    let output = server.cli_ok(&["policy", "check", &valid]);
    assert!(output.contains("is valid"));
    assert_eq!(
        server.cli_ok(&["policy", "get"]),
        std::fs::read_to_string(&good).unwrap(),
        "check stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn advertised_routes_are_approved_by_auto_approvers_or_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("state"));
    server.cli_ok(&["users", "create", "alice"]);
    let policy = write(
        dir.path(),
        "routes.json",
        r#"{"tagOwners": {"tag:router": ["alice@"]},
            "autoApprovers": {"routes": {"192.168.0.0/16": ["tag:router"]}},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
    );
    server.cli_ok(&["policy", "set", &policy]);
    let laptop = register(
        &server.token(&["--user", "alice", "--pre-approved"]),
        "laptop",
    )
    .await;
    let router = register(
        &server.token(&["--user", "alice", "--pre-approved", "--tags", "tag:router"]),
        "router",
    )
    .await;
    let mut view = MapView::open(&laptop).await;
    router
        .client
        .report_routes(&RoutesReport {
            advertised: vec![
                "192.168.1.0/24".parse().unwrap(),
                "10.9.0.0/16".parse().unwrap(),
            ],
            services: Vec::new(),
        })
        .await
        .unwrap();
    let router_id = router.id();
    let lan: ipnet::IpNet = "192.168.1.0/24".parse().unwrap();
    let other: ipnet::IpNet = "10.9.0.0/16".parse().unwrap();
    view.wait_until(Duration::from_secs(1), |view| {
        view.details
            .get(&router_id)
            .is_some_and(|peer| peer.allowed_ips.contains(&lan))
    })
    .await;
    assert!(
        !view.details[&router_id].allowed_ips.contains(&other),
        "10.9.0.0/16 is not auto-approved"
    );
    let nodes = server.nodes_json();
    assert_eq!(
        nodes[1]["approved_routes"],
        serde_json::json!(["192.168.1.0/24"])
    );

    let refused = server.cli(&[
        "nodes",
        "approve-routes",
        &router_id.to_string(),
        "--routes",
        "172.16.0.0/12",
    ]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not advertise 172.16.0.0/12"));
    server.cli_ok(&[
        "nodes",
        "approve-routes",
        &router_id.to_string(),
        "--routes",
        "10.9.0.0/16",
    ]);
    view.wait_until(Duration::from_secs(1), |view| {
        view.details[&router_id].allowed_ips.contains(&other)
    })
    .await;
    assert!(
        view.details[&router_id].allowed_ips.contains(&lan),
        "auto-approved routes stay approved"
    );
}

#[test]
fn preview_prints_each_nodes_filter_and_peers_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "policy.json",
        r#"{"tagOwners": {"tag:nas": ["alice@"]}, "acls": [{"action": "accept", "src": ["alice@"], "dst": ["tag:nas:445"]}]}"#,
    );
    let nodes = write(
        dir.path(),
        "nodes.json",
        r#"{"users": [{"name": "alice"}, {"name": "bob"}],
            "nodes": {"laptop": {"user": "alice", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
                      "tv": {"user": "bob", "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
                      "nas": {"tags": ["tag:nas"], "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3"}}}"#,
    );
    let output = hearth_testkit::control_plane::cli(
        &dir.path().join("no-server"),
        &["policy", "preview", &policy, "--nodes", &nodes],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let preview: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(preview["nas"]["peers"], serde_json::json!(["laptop"]));
    assert_eq!(preview["tv"]["peers"], serde_json::json!([]));
    assert_eq!(
        preview["nas"]["filter"]["rules"][0]["dst"][0]["ports"]["first"],
        445
    );

    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"acls": [{"action": "accept", "src": ["tag:nas"], "dst": ["*:*"]}]}"#,
    );
    let output = hearth_testkit::control_plane::cli(
        &dir.path().join("no-server"),
        &["policy", "preview", &bad, "--nodes", &nodes],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("tag not found"));
}

#[test]
fn grants_preview_in_tailscale_s_form_and_check_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "grants.json",
        r#"{"tagOwners": {"tag:hub": ["alice@"]},
            "grants": [{"src": ["alice@"], "dst": ["tag:hub"], "ip": ["tcp:18789"],
                        "app": {"hearth.example/cap/assistant": [{"models": ["*"]}]}}]}"#,
    );
    let nodes = write(
        dir.path(),
        "nodes.json",
        r#"{"users": [{"name": "alice"}, {"name": "bob"}],
            "nodes": {"laptop": {"user": "alice", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
                      "tv": {"user": "bob", "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
                      "hub": {"tags": ["tag:hub"], "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3"}}}"#,
    );
    let no_server = dir.path().join("no-server");
    let output = hearth_testkit::control_plane::cli(
        &no_server,
        &["policy", "preview", &policy, "--nodes", &nodes],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let preview: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let hub = &preview["hub"]["tailscale_filter"];
    assert_eq!(
        hub[0]["SrcIPs"],
        serde_json::json!(["100.64.0.1", "fd7a:115c:a1e0::1"]),
        "sources resolved to alice's laptop: {hub}"
    );
    assert_eq!(hub[0]["DstPorts"][0]["Ports"]["First"], 18789);
    assert_eq!(hub[0]["IPProto"], serde_json::json!([6]));
    assert_eq!(
        hub[1]["CapGrant"][0]["CapMap"]["hearth.example/cap/assistant"],
        serde_json::json!([{"models": ["*"]}])
    );
    assert_eq!(
        hub[1]["CapGrant"][0]["Dsts"],
        serde_json::json!(["100.64.0.3/32", "fd7a:115c:a1e0::3/128"])
    );
    assert_eq!(preview["hub"]["peers"], serde_json::json!(["laptop"]));

    // `policy check` needs no server either; a bad grant names its field.
    let output = hearth_testkit::control_plane::cli(&no_server, &["policy", "check", &policy]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("tests were not run"));
    let output = hearth_testkit::control_plane::cli(
        &no_server,
        &["policy", "check", &policy, "--nodes", &nodes],
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("its tests pass"));
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/funnel": [{}]}}]}"#,
    );
    let output = hearth_testkit::control_plane::cli(&no_server, &["policy", "check", &bad]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("grants[0]") && said.contains("tailscale.com domain"),
        "{said}"
    );
}
