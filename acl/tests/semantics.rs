//! The policy language, construct by construct, on a small household:
//! alice (laptop, phone), bob (laptop), a tagged server, a subnet router for
//! the printer network and an exit node. Written from the semantics of
//! Tailscale's policy format, not from the conformance captures.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use hearth_acl::filter::proto;
use hearth_acl::{
    CompiledPolicy, Engine, NodeIdentity, Packet, PeerIdentity, Policy, PolicyError, Topology,
};

const ALICE_LAPTOP: u64 = 1;
const ALICE_PHONE: u64 = 2;
const BOB_LAPTOP: u64 = 3;
const SERVER: u64 = 4;
const ROUTER: u64 = 5;
const EXIT: u64 = 6;
const ALICE_SERVER: u64 = 7; // owned by alice, tagged tag:server

fn node(id: u64, user: &str, tags: &[&str], routes: &[&str]) -> NodeIdentity {
    let routes: Vec<_> = routes.iter().map(|route| route.parse().unwrap()).collect();
    NodeIdentity {
        id,
        user: user.into(),
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        addresses: vec![
            format!("100.64.0.{id}").parse().unwrap(),
            format!("fd7a:115c:a1e0::{id}").parse().unwrap(),
        ],
        advertised_routes: routes.clone(),
        approved_routes: routes,
        services: Vec::new(),
    }
}

fn household() -> Vec<NodeIdentity> {
    vec![
        node(ALICE_LAPTOP, "alice", &[], &[]),
        node(ALICE_PHONE, "alice", &[], &[]),
        node(BOB_LAPTOP, "bob", &[], &[]),
        node(SERVER, "bob", &["tag:server"], &[]),
        node(ROUTER, "bob", &["tag:router"], &["192.168.1.0/24"]),
        node(EXIT, "bob", &["tag:exit"], &["0.0.0.0/0", "::/0"]),
        node(ALICE_SERVER, "alice", &["tag:server"], &[]),
    ]
}

const HEADER: &str = r#"
    "groups": {"group:parents": ["alice@"], "group:everyone": ["alice@", "bob@"]},
    "tagOwners": {"tag:server": ["group:parents"], "tag:router": ["bob@"], "tag:exit": ["bob@"]},
    "hosts": {"printer": "192.168.1.20", "printers": "192.168.1.0/24", "nas": "100.64.0.4"},
"#;

struct World {
    engine: Engine,
    nodes: Vec<NodeIdentity>,
}

fn world(acls: &str) -> World {
    world_from(&format!("{{{HEADER} {acls}}}"))
}

fn world_from(text: &str) -> World {
    let policy = Policy::parse(text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let nodes = household();
    let mut engine = Engine::new(Arc::new(policy.compiled));
    engine.load(nodes.clone());
    World { engine, nodes }
}

impl World {
    fn node(&self, id: u64) -> &NodeIdentity {
        self.nodes.iter().find(|node| node.id == id).unwrap()
    }

    /// Whether `to`'s filter accepts a packet from `from`'s IPv4 address to `address`.
    fn accepts_at(&self, from: u64, to: u64, address: IpAddr, protocol: u8, port: u16) -> bool {
        let sender = self.node(from);
        let receiver = self.node(to);
        let identity = PeerIdentity {
            user: &sender.user,
            tags: &sender.tags,
        };
        let packet = Packet {
            src: sender.addresses[0],
            dst: address,
            protocol,
            port,
        };
        self.engine
            .filter_of(to)
            .unwrap()
            .accepts(&packet, Some(&identity), &receiver.addresses)
    }

    fn reaches(&self, from: u64, to: u64, port: u16) -> bool {
        let address = self.node(to).addresses[0];
        self.accepts_at(from, to, address, proto::TCP, port)
    }

    fn peers(&self, id: u64) -> Vec<u64> {
        self.engine.peers_of(id)
    }
}

fn rejected(text: &str) -> String {
    match Policy::parse(text) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("accepted: {text}"),
    }
}

#[test]
fn without_a_policy_everyone_reaches_everyone() {
    let mut engine = Engine::new(Arc::new(CompiledPolicy::allow_all()));
    engine.load(household());
    assert_eq!(engine.peers_of(ALICE_LAPTOP), vec![2, 3, 4, 5, 6, 7]);
    let world = World {
        engine,
        nodes: household(),
    };
    assert!(world.reaches(BOB_LAPTOP, ALICE_PHONE, 8080));
    assert!(world.accepts_at(
        SERVER,
        ALICE_LAPTOP,
        "fd7a:115c:a1e0::1".parse().unwrap(),
        proto::UDP,
        53
    ));
}

#[test]
fn an_empty_policy_denies_everything() {
    let world = world(r#""acls": []"#);
    assert!(!world.reaches(ALICE_LAPTOP, BOB_LAPTOP, 22));
    assert!(world.peers(ALICE_LAPTOP).is_empty());
}

#[test]
fn groups_name_their_members_and_users_match_by_login() {
    let world =
        world(r#""acls": [{"action": "accept", "src": ["group:parents"], "dst": ["bob@:22"]}]"#);
    assert!(world.reaches(ALICE_LAPTOP, BOB_LAPTOP, 22));
    assert!(world.reaches(ALICE_PHONE, BOB_LAPTOP, 22));
    assert!(
        !world.reaches(ALICE_LAPTOP, BOB_LAPTOP, 23),
        "only the named port"
    );
    assert!(
        !world.reaches(BOB_LAPTOP, ALICE_LAPTOP, 22),
        "accept rules are one-way"
    );
    assert!(
        !world.reaches(ALICE_SERVER, BOB_LAPTOP, 22),
        "a tagged device no longer acts as its user"
    );
    assert!(
        !world.reaches(ALICE_LAPTOP, SERVER, 22),
        "bob@ names bob's untagged devices only"
    );
    // Peers are symmetric: bob's laptop sees alice's devices because they may reach it.
    assert_eq!(world.peers(BOB_LAPTOP), vec![ALICE_LAPTOP, ALICE_PHONE]);
    assert_eq!(world.peers(ALICE_LAPTOP), vec![BOB_LAPTOP]);
    assert!(world.peers(SERVER).is_empty());
}

#[test]
fn tags_name_tagged_devices_and_must_have_owners() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["tag:server"], "dst": ["tag:router:80,443"]}]"#,
    );
    assert!(world.reaches(SERVER, ROUTER, 443));
    assert!(world.reaches(ALICE_SERVER, ROUTER, 80));
    assert!(!world.reaches(SERVER, ROUTER, 22));
    let error = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["tag:ghost"], "dst": ["*:*"]}}]}}"#
    ));
    assert!(error.contains("tag not found: \"tag:ghost\""), "{error}");
}

#[test]
fn autogroup_member_and_tagged_split_the_tailnet() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:tagged:*"]}]"#,
    );
    assert!(world.reaches(BOB_LAPTOP, SERVER, 1));
    assert!(world.reaches(ALICE_PHONE, EXIT, 65535));
    assert!(
        !world.reaches(SERVER, ROUTER, 1),
        "tagged devices are not members"
    );
    assert!(
        !world.reaches(ALICE_LAPTOP, BOB_LAPTOP, 1),
        "members are not tagged"
    );
}

#[test]
fn autogroup_self_reaches_only_the_senders_own_devices() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]"#,
    );
    assert!(world.reaches(ALICE_LAPTOP, ALICE_PHONE, 22));
    assert!(world.reaches(ALICE_PHONE, ALICE_LAPTOP, 22));
    assert!(!world.reaches(BOB_LAPTOP, ALICE_PHONE, 22));
    assert!(
        !world.reaches(ALICE_LAPTOP, ALICE_SERVER, 22),
        "tagged devices are not the user's own"
    );
    assert_eq!(world.peers(ALICE_LAPTOP), vec![ALICE_PHONE]);
    assert!(world.peers(BOB_LAPTOP).is_empty());

    let as_source = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["autogroup:self"], "dst": ["*:*"]}}]}}"#
    ));
    assert!(
        as_source.contains("not valid on the src side"),
        "{as_source}"
    );
    let with_tag = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["tag:server"], "dst": ["autogroup:self:*"]}}]}}"#
    ));
    assert!(
        with_tag.contains("autogroup:self can only be used with users, groups"),
        "{with_tag}"
    );
}

#[test]
fn hosts_and_prefixes_name_addresses() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["100.64.0.1", "fd7a:115c:a1e0::3/128"], "dst": ["nas:445"]}]"#,
    );
    assert!(
        world.reaches(ALICE_LAPTOP, SERVER, 445),
        "nas is the server's address"
    );
    assert!(!world.reaches(ALICE_PHONE, SERVER, 445));
    let bob = world.node(BOB_LAPTOP);
    let server = world.node(SERVER);
    let identity = PeerIdentity {
        user: &bob.user,
        tags: &bob.tags,
    };
    let from_v6 = Packet {
        src: bob.addresses[1],
        dst: server.addresses[0],
        protocol: proto::TCP,
        port: 445,
    };
    assert!(world.engine.filter_of(SERVER).unwrap().accepts(
        &from_v6,
        Some(&identity),
        &server.addresses
    ));
    let error = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["nowhere"], "dst": ["*:*"]}}]}}"#
    ));
    assert!(error.contains("host not found"), "{error}");
}

#[test]
fn ports_accept_wildcards_ranges_and_lists_but_not_names() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:server:22,8000-8010"]}]"#,
    );
    for (port, open) in [
        (22, true),
        (23, false),
        (7999, false),
        (8000, true),
        (8010, true),
        (8011, false),
    ] {
        assert_eq!(world.reaches(BOB_LAPTOP, SERVER, port), open, "port {port}");
    }
    let named = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["*"], "dst": ["tag:server:ssh"]}}]}}"#
    ));
    assert!(named.contains("port range \"ssh\""), "{named}");
}

#[test]
fn protocols_by_name_or_number_and_the_default_set() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["bob@"], "dst": ["tag:server:53"], "proto": "udp"},
                    {"action": "accept", "src": ["bob@"], "dst": ["tag:router:*"], "proto": 1},
                    {"action": "accept", "src": ["alice@"], "dst": ["tag:server:22"]}]"#,
    );
    let server = world.node(SERVER).addresses[0];
    let router = world.node(ROUTER).addresses[0];
    assert!(world.accepts_at(BOB_LAPTOP, SERVER, server, proto::UDP, 53));
    assert!(!world.accepts_at(BOB_LAPTOP, SERVER, server, proto::TCP, 53));
    assert!(world.accepts_at(BOB_LAPTOP, ROUTER, router, proto::ICMP, 0));
    assert!(!world.accepts_at(BOB_LAPTOP, ROUTER, router, proto::TCP, 80));
    // Without proto: TCP, UDP and ICMP; ICMP has no ports, so a port rule lets ping through.
    assert!(world.accepts_at(ALICE_LAPTOP, SERVER, server, proto::UDP, 22));
    assert!(world.accepts_at(ALICE_LAPTOP, SERVER, server, proto::ICMP, 0));
    assert!(!world.accepts_at(ALICE_LAPTOP, SERVER, server, proto::SCTP, 22));
    let bad = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "proto": "carrier-pigeon", "src": ["*"], "dst": ["*:*"]}}]}}"#
    ));
    assert!(bad.contains("not a protocol name"), "{bad}");
}

#[test]
fn subnet_routes_are_reached_through_their_router() {
    let world =
        world(r#""acls": [{"action": "accept", "src": ["alice@"], "dst": ["printer:631"]}]"#);
    let printer: IpAddr = "192.168.1.20".parse().unwrap();
    assert!(world.accepts_at(ALICE_LAPTOP, ROUTER, printer, proto::TCP, 631));
    assert!(!world.accepts_at(ALICE_LAPTOP, ROUTER, printer, proto::TCP, 22));
    assert!(
        !world.reaches(ALICE_LAPTOP, ROUTER, 631),
        "the router's own address is not the printer"
    );
    assert_eq!(world.peers(ROUTER), vec![ALICE_LAPTOP, ALICE_PHONE]);
    assert!(
        world.peers(EXIT).is_empty(),
        "the exit node's default route is not the printer subnet"
    );
}

#[test]
fn autogroup_internet_reaches_exit_nodes_only() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["group:everyone"], "dst": ["autogroup:internet:*"]}]"#,
    );
    let outside: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(world.accepts_at(BOB_LAPTOP, EXIT, outside, proto::TCP, 443));
    assert!(
        !world.reaches(BOB_LAPTOP, EXIT, 22),
        "the exit node's own address is not the internet"
    );
    let private: IpAddr = "192.168.7.7".parse().unwrap();
    assert!(
        !world.accepts_at(BOB_LAPTOP, EXIT, private, proto::TCP, 443),
        "private ranges are not the internet"
    );
    let outside_v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert!(world.accepts_at(BOB_LAPTOP, EXIT, outside_v6, proto::TCP, 443));
    assert_eq!(
        world.peers(EXIT),
        vec![ALICE_LAPTOP, ALICE_PHONE, BOB_LAPTOP]
    );
    assert!(world.peers(ROUTER).is_empty());
    let as_source = rejected(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["autogroup:internet"], "dst": ["*:*"]}}]}}"#
    ));
    assert!(
        as_source.contains("not valid on the src side"),
        "{as_source}"
    );
}

#[test]
fn autogroup_danger_all_is_everything() {
    let world = world(
        r#""acls": [{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["tag:server:80"]}]"#,
    );
    assert!(world.reaches(EXIT, SERVER, 80));
    assert_eq!(world.peers(SERVER).len(), 6);
}

#[test]
fn deny_rules_and_unknown_keys_are_refused() {
    let deny = rejected(r#"{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}"#);
    assert!(deny.contains("action=\"deny\" is not supported"), "{deny}");
    let unknown = rejected("{\n  \"acls\": [],\n  \"derp\": {}\n}");
    assert!(
        unknown.contains("line 3") && unknown.contains("unknown field `derp`"),
        "{unknown}"
    );
    let group_of_groups = rejected(r#"{"groups": {"group:a": ["group:b"], "group:b": ["x@"]}}"#);
    assert!(
        group_of_groups.contains("is not a user login"),
        "{group_of_groups}"
    );
    let bad_host = rejected(r#"{"hosts": {"nas": "not-an-ip"}}"#);
    assert!(bad_host.contains("not an IP address"), "{bad_host}");
}

#[test]
fn grants_filter_by_their_ip_capabilities() {
    let world = world(
        r#""grants": [{"src": ["bob@"], "dst": ["tag:server"], "ip": ["tcp:22", "udp:1000-1001"]},
                                    {"src": ["alice@"], "dst": ["tag:router"], "ip": ["*"]}]"#,
    );
    let server = world.node(SERVER).addresses[0];
    assert!(world.accepts_at(BOB_LAPTOP, SERVER, server, proto::TCP, 22));
    assert!(!world.accepts_at(BOB_LAPTOP, SERVER, server, proto::UDP, 22));
    assert!(world.accepts_at(BOB_LAPTOP, SERVER, server, proto::UDP, 1001));
    assert!(world.reaches(ALICE_PHONE, ROUTER, 9));
}

#[test]
fn the_tests_block_must_pass_for_the_policy_to_be_valid() {
    let topology = Topology {
        users: vec!["alice".into(), "bob".into()],
        nodes: household(),
    };
    let passing = Policy::parse(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["group:parents"], "dst": ["tag:server:22"]}}],
            "tests": [{{"src": "alice@", "accept": ["tag:server:22", "nas:22"], "deny": ["tag:server:80", "bob@:22"]}}]}}"#
    ))
    .unwrap();
    assert_eq!(passing.check_tests(&topology), Ok(()));

    let failing = Policy::parse(&format!(
        r#"{{{HEADER} "acls": [{{"action": "accept", "src": ["group:parents"], "dst": ["tag:server:22"]}}],
            "tests": [{{"src": "bob@", "accept": ["tag:server:22"]}}, {{"src": "alice@", "deny": ["nas:22"]}}]}}"#
    ))
    .unwrap();
    let Err(PolicyError::TestsFailed(failures)) = failures_of(&failing, &topology) else {
        panic!()
    };
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].contains("bob@ cannot reach tag:server:22"),
        "{failures:?}"
    );
    assert!(
        failures[1].contains("alice@ can reach nas:22"),
        "{failures:?}"
    );

    let unknown_user =
        Policy::parse(r#"{"tests": [{"src": "carol@", "accept": ["100.64.0.1:22"]}]}"#).unwrap();
    assert!(
        unknown_user
            .check_tests(&topology)
            .unwrap_err()
            .to_string()
            .contains("user not found")
    );
    let range = rejected(r#"{"tests": [{"src": "alice@", "accept": ["100.64.0.1:1-2"]}]}"#);
    assert!(range.contains("one port"), "{range}");
}

fn failures_of(policy: &Policy, topology: &Topology) -> Result<(), PolicyError> {
    policy.check_tests(topology)
}

#[test]
fn auto_approvers_approve_routes_inside_their_prefixes_and_exit_nodes() {
    let policy = Policy::parse(&format!(
        r#"{{{HEADER} "autoApprovers": {{"routes": {{"192.168.0.0/16": ["tag:router"], "10.0.0.0/8": ["group:parents"]}},
                                          "exitNode": ["tag:exit"]}}}}"#
    ))
    .unwrap();
    let routes = |list: &[&str]| -> Vec<ipnet::IpNet> {
        list.iter().map(|route| route.parse().unwrap()).collect()
    };
    let tags =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|tag| tag.to_string()).collect() };
    let advertised = routes(&[
        "192.168.1.0/24",
        "10.1.0.0/16",
        "172.16.0.0/12",
        "0.0.0.0/0",
        "::/0",
    ]);
    assert_eq!(
        policy.auto_approved_routes("bob", &tags(&["tag:router"]), &advertised),
        routes(&["192.168.1.0/24"])
    );
    assert_eq!(
        policy.auto_approved_routes("alice", &tags(&[]), &advertised),
        routes(&["10.1.0.0/16"])
    );
    assert_eq!(
        policy.auto_approved_routes("bob", &tags(&["tag:exit"]), &advertised),
        routes(&["0.0.0.0/0", "::/0"])
    );
    assert!(
        policy
            .auto_approved_routes("bob", &tags(&[]), &advertised)
            .is_empty()
    );
    let bad = rejected(r#"{"autoApprovers": {"routes": {"10.0.0.0/8": ["tag:nobody"]}}}"#);
    assert!(bad.contains("tag not found"), "{bad}");
}

#[test]
fn hujson_comments_and_trailing_commas_are_fine() {
    let world = world_from(&format!(
        "{{ {HEADER}\n // alice may ssh to the server\n \"acls\": [\n  {{\"action\": \"accept\", \"src\": [\"alice@\"], \"dst\": [\"tag:server:22\"],}}, /* end */\n ],\n}}"
    ));
    assert!(world.reaches(ALICE_LAPTOP, SERVER, 22));
}

#[test]
fn node_attrs_go_to_the_nodes_their_targets_name_and_funnel_is_refused_saying_why() {
    let policy = hearth_acl::Policy::parse(
        r#"{"groups": {"group:family": ["alice@"]},
            "tagOwners": {"tag:nas": ["alice@"]},
            "nodeAttrs": [
              {"target": ["group:family"], "attr": ["drive:share", "drive:access"]},
              {"target": ["tag:nas"], "attr": ["drive:share"]},
              {"target": ["100.64.0.7"], "attr": ["magicdns-aaaa"]}
            ]}"#,
    )
    .unwrap();
    let attrs = |user: &str, tags: &[&str], address: &str| {
        let tags: BTreeSet<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        let address: std::net::IpAddr = address.parse().unwrap();
        policy
            .compiled
            .attrs_of(user, &tags, &[address])
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        attrs("alice", &[], "100.64.0.2"),
        ["drive:access", "drive:share"]
    );
    assert_eq!(
        attrs("alice", &["tag:nas"], "100.64.0.3"),
        ["drive:share"],
        "a tagged device is its tag's, not its user's"
    );
    assert_eq!(attrs("bob", &[], "100.64.0.7"), ["magicdns-aaaa"]);
    assert!(attrs("bob", &[], "100.64.0.8").is_empty());

    for (text, expected) in [
        (
            r#"{"nodeAttrs": [{"target": ["*"], "attr": ["funnel"]}]}"#,
            "nodeAttrs[0]: attr=\"funnel\" is not offered: Funnel publishes",
        ),
        (
            r#"{"nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [{}]}}]}"#,
            "app connectors",
        ),
        (
            r#"{"nodeAttrs": [{"target": ["group:none"], "attr": ["drive:share"]}]}"#,
            "group not found",
        ),
        (
            r#"{"nodeAttrs": [{"target": ["*"], "attrs": ["drive:share"]}]}"#,
            "attrs",
        ),
    ] {
        let error = hearth_acl::Policy::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn ssh_rules_go_to_the_nodes_they_name_and_ssh_tests_check_them() {
    let topology = Topology {
        users: vec!["alice".into(), "bob".into()],
        nodes: household(),
    };
    let policy = Policy::parse(&format!(
        r#"{{{HEADER}
            "ssh": [
              {{"action": "accept", "src": ["alice@"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]}},
              {{"action": "check", "src": ["group:parents"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "2h"}}
            ],
            "sshTests": [
              {{"src": "alice@", "dst": ["alice@"], "accept": ["alice"], "deny": ["root"]}},
              {{"src": "alice@", "dst": ["tag:server"], "check": ["root"], "deny": ["alice"]}},
              {{"src": "bob@", "dst": ["tag:server", "alice@"], "deny": ["root", "bob"]}}
            ]}}"#
    ))
    .unwrap();
    assert_eq!(policy.check_tests(&topology), Ok(()));

    let server = household()
        .into_iter()
        .find(|node| node.id == SERVER)
        .unwrap();
    let rules = policy
        .compiled
        .ssh_rules_for(&server.user, &server.tags, &server.addresses);
    assert_eq!(rules.len(), 1, "only the check rule names the server");
    assert_eq!(rules[0].check_period, Some(7200));
    let laptop = household()
        .into_iter()
        .find(|node| node.id == ALICE_LAPTOP)
        .unwrap();
    let rules = policy
        .compiled
        .ssh_rules_for(&laptop.user, &laptop.tags, &laptop.addresses);
    assert_eq!(rules.len(), 1);
    assert!(
        rules[0].same_user,
        "autogroup:self: only alice's own devices"
    );

    // A test the rules contradict fails, saying which.
    let wrong = Policy::parse(&format!(
        r#"{{{HEADER}
            "ssh": [{{"action": "accept", "src": ["alice@"], "dst": ["autogroup:self"], "users": ["root"]}}],
            "sshTests": [{{"src": "bob@", "dst": ["alice@"], "accept": ["root"]}}]}}"#
    ))
    .unwrap();
    let Err(PolicyError::TestsFailed(failures)) = wrong.check_tests(&topology) else {
        panic!("bob is not let in to alice's devices")
    };
    assert!(
        failures[0].contains("as \"root\" is not accept"),
        "{failures:?}"
    );

    for (text, expected) in [
        (
            r#"{"ssh": [{"action": "allow", "src": ["alice@"], "dst": ["alice@"], "users": ["root"]}]}"#,
            "action=\"allow\"",
        ),
        (
            r#"{"ssh": [{"action": "accept", "src": ["alice@"], "dst": ["*"], "users": ["root"]}]}"#,
            "name the nodes",
        ),
        (
            r#"{"ssh": [{"action": "accept", "src": ["alice@"], "dst": ["alice@"], "users": []}]}"#,
            "no local user",
        ),
        (
            r#"{"ssh": [{"action": "check", "src": ["alice@"], "dst": ["alice@"], "users": ["root"], "checkPeriod": "soon"}]}"#,
            "checkPeriod",
        ),
        (
            r#"{"sshTests": [{"src": "alice@", "dst": ["alice@"]}]}"#,
            "accept, check or deny",
        ),
    ] {
        let error = Policy::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

/// The household with svc:chat (100.100.0.1, fd7a:115c:a1e0::6464:1)
/// hosted by `host`.
fn world_with_chat_on(host: u64, text: &str) -> World {
    let policy = Policy::parse(text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let mut nodes = household();
    for node in &mut nodes {
        if node.id == host {
            node.services = vec![hearth_acl::HostedService {
                name: "svc:chat".into(),
                addresses: vec![
                    "100.100.0.1".parse().unwrap(),
                    "fd7a:115c:a1e0::6464:1".parse().unwrap(),
                ],
            }];
        }
    }
    let mut engine = Engine::new(Arc::new(policy.compiled));
    engine.load(nodes.clone());
    World { engine, nodes }
}

#[test]
fn a_service_is_reached_at_its_own_address_on_whichever_device_hosts_it() {
    let text = format!(
        r#"{{{HEADER} "grants": [{{"src": ["group:parents"], "dst": ["svc:chat"], "ip": ["tcp:80"]}}],
            "autoApprovers": {{"services": {{"svc:chat": ["tag:server"]}}}}}}"#
    );
    let chat: IpAddr = "100.100.0.1".parse().unwrap();
    for host in [SERVER, ALICE_SERVER] {
        let world = world_with_chat_on(host, &text);
        // alice reaches the service's address on its host, and sees the host.
        assert!(world.accepts_at(ALICE_LAPTOP, host, chat, proto::TCP, 80));
        assert!(world.peers(ALICE_LAPTOP).contains(&host));
        // Only the port granted, only at the service's address.
        assert!(!world.accepts_at(ALICE_LAPTOP, host, chat, proto::TCP, 22));
        assert!(!world.reaches(ALICE_LAPTOP, host, 80));
        // bob is not granted the service.
        assert!(!world.accepts_at(BOB_LAPTOP, host, chat, proto::TCP, 80));
    }
    // No device hosts it: the grant opens nothing anywhere.
    let world = world_from(&text);
    assert!(!world.accepts_at(ALICE_LAPTOP, SERVER, chat, proto::TCP, 80));
    assert!(!world.peers(ALICE_LAPTOP).contains(&SERVER));

    let policy = Policy::parse(&text).unwrap();
    let tags =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|tag| tag.to_string()).collect() };
    assert_eq!(
        policy.service_names().into_iter().collect::<Vec<_>>(),
        vec!["svc:chat".to_owned()]
    );
    assert!(policy.may_host("svc:chat", "bob", &tags(&["tag:server"])));
    assert!(!policy.may_host("svc:chat", "bob", &BTreeSet::new()));
    assert!(!policy.may_host("svc:other", "bob", &tags(&["tag:server"])));
}

#[test]
fn a_service_is_only_a_destination_and_its_name_a_dns_label() {
    let as_source = rejected(&format!(
        r#"{{{HEADER} "grants": [{{"src": ["svc:chat"], "dst": ["*"], "ip": ["*"]}}]}}"#
    ));
    assert!(as_source.contains("src side"), "{as_source}");
    for name in ["svc:Chat", "svc:", "svc:-chat", "svc:chat.home"] {
        let error = rejected(&format!(
            r#"{{{HEADER} "grants": [{{"src": ["*"], "dst": ["{name}"], "ip": ["*"]}}]}}"#
        ));
        assert!(error.contains("not a service name"), "{name}: {error}");
    }
    let approver = rejected(&format!(
        r#"{{{HEADER} "autoApprovers": {{"services": {{"svc:chat": ["tag:nobody"]}}}}}}"#
    ));
    assert!(approver.contains("autoApprovers.services"), "{approver}");
}
