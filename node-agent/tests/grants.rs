//! Policy `grants` on real agents in network namespaces: `via` steering a
//! subnet that two routers offer through the named one, and application
//! capabilities reaching the destination's `whois`.
//!
//! Two routers (tags `tag:a` and `tag:b`) both offer 10.99.0.0/24, each
//! with 10.99.0.5 as an address of its own; router a serves TCP on
//! 10.99.0.5:7000, router b on 10.99.0.5:7001. Alice's grant steers the
//! subnet through `tag:a`; a second grant lets everyone reach the subnet
//! through any router, so router b's filter would let alice in: only the
//! route decides which router her packets meet.
//!
//! Needs root and `nft`; outside CI the test skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;
use std::time::Duration;

use hearth_testkit::{Lab, wait_until};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_via_grant_steers_a_shared_subnet_through_the_named_router() {
    let Some(mut lab) = Lab::new() else { return };
    if hearth_testkit::require_tools(&["nft"]).is_none() {
        return;
    }
    let (hub, laptop, router_a, router_b) = (
        lab.host("hub"),
        lab.host("laptop"),
        lab.host("router-a"),
        lab.host("router-b"),
    );
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    coordinator.cli_ok(&["users", "create", "ops"]);
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"tagOwners": {"tag:a": ["ops@"], "tag:b": ["ops@"]},
            "autoApprovers": {"routes": {"10.99.0.0/24": ["tag:a", "tag:b"]}},
            "grants": [
              {"src": ["alice@"], "dst": ["10.99.0.0/24"], "ip": ["tcp:7000-7001"], "via": ["tag:a"]},
              {"src": ["*"], "dst": ["10.99.0.0/24"], "ip": ["tcp:7000-7001"]},
              {"src": ["alice@"], "dst": ["tag:a"], "ip": ["icmp:*"],
               "app": {"hearth.example/cap/assistant": [{"models": ["*"]}]}}
            ]}"#,
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", policy.to_str().unwrap()]);

    for (host, port) in [(&router_a, 7000), (&router_b, 7001)] {
        lab.exec(host, &["ip", "addr", "add", "10.99.0.5/32", "dev", "lo"]);
        lab.serve_tcp(host, port);
    }
    let dir = lab.dir.path().to_owned();
    let token = |name: &str, args: &[&str]| {
        let mut all = vec!["--pre-approved"];
        all.extend_from_slice(args);
        coordinator.token_file(&dir, name, &all)
    };
    let (a_token, b_token, alice_token) = (
        token("a.token", &["--user", "ops", "--tags", "tag:a"]),
        token("b.token", &["--user", "ops", "--tags", "tag:b"]),
        token("alice.token", &["--user", "alice"]),
    );
    let routes = ["--advertise-routes", "10.99.0.0/24"];
    let target: IpAddr = "10.99.0.5".parse().unwrap();
    let reached = |lab: &Lab, port: u16| {
        lab.send_tcp(&laptop, target, port, 1024, Duration::from_millis(500))
            .is_ok()
    };
    // Router b comes last, so that without `via` its offer of the subnet
    // would be the one alice's data plane took.
    let agent_a = lab.start_agent(&router_a, &a_token, &routes);
    agent_a.wait_mesh_ipv4(20 * SECOND);
    let alice = lab.start_agent(&laptop, &alice_token, &[]);
    let alice_ip = IpAddr::from(alice.wait_mesh_ipv4(20 * SECOND));
    wait_until(20 * SECOND, || reached(&lab, 7000))
        .unwrap_or_else(|| panic!("alice never reached router a\n{}", lab.logs()));
    let agent_b = lab.start_agent(&router_b, &b_token, &routes);
    agent_b.wait_mesh_ipv4(20 * SECOND);
    wait_until(20 * SECOND, || {
        alice.peer_names().contains(&"router-b".to_owned())
    })
    .expect("alice sees router b");
    // Router b's route approval (autoApprovers) and its endpoints reach
    // alice's map within a moment.
    std::thread::sleep(3 * SECOND);
    assert!(
        reached(&lab, 7000),
        "alice's packets for the subnet no longer reach router a"
    );
    assert!(
        !reached(&lab, 7001),
        "alice's packets for the subnet went to router b"
    );

    // The capability granted to alice at tag:a reaches router a's whois.
    let output = agent_a.cli(&["whois", &alice_ip.to_string(), "--output", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        who["capabilities"]["hearth.example/cap/assistant"],
        serde_json::json!([{"models": ["*"]}]),
        "{who}"
    );
    let output = agent_b.cli(&["whois", &alice_ip.to_string(), "--output", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        who.get("capabilities").is_none(),
        "not granted at router b: {who}"
    );
}
