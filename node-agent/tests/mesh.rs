//! The mesh end to end, between network namespaces: a real coordinator, real
//! agents with userspace WireGuard, real packets. Needs root; outside CI these
//! tests skip when run without it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hearth_testkit::{Host, Lab, LabCoordinator, wait_until};

const SECOND: Duration = Duration::from_secs(1);

fn write_policy(lab: &Lab, name: &str, text: &str) -> String {
    let path = lab.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Polls until `condition` holds, failing with `what` after `limit`.
fn within(limit: Duration, what: &str, condition: impl FnMut() -> bool) -> Duration {
    wait_until(limit, condition).unwrap_or_else(|| panic!("{what} did not happen within {limit:?}"))
}

#[test]
fn approved_agents_reach_each_other_and_the_policy_decides_who_reaches_whom() {
    let Some(mut lab) = Lab::new() else { return };
    let (hub, a, b, c) = (lab.host("hub"), lab.host("a"), lab.host("b"), lab.host("c"));
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    coordinator.cli_ok(&["users", "create", "bob"]);
    let alice_key = coordinator.token_file(
        lab.dir.path(),
        "alice.token",
        &["--user", "alice", "--reusable"],
    );
    let bob_key = coordinator.token_file(lab.dir.path(), "bob.token", &["--user", "bob"]);
    let agents = [
        lab.start_agent(&a, &alice_key, &["--backend", "userspace"]),
        lab.start_agent(&b, &alice_key, &["--backend", "userspace"]),
        lab.start_agent(&c, &bob_key, &["--backend", "userspace"]),
    ];

    // Pending agents say which command lets them in; an admin runs it.
    for agent in &agents {
        let mut id = None;
        within(10 * SECOND, "registration", || {
            id = coordinator.node_id(&agent.host.name);
            id.is_some()
        });
        let hint = format!("hearth-coordinator nodes approve {}", id.unwrap());
        within(5 * SECOND, "the approval hint", || {
            agent.process.log_text().contains(&hint)
        });
        assert!(agent.mesh_ipv4().is_none(), "a pending node has no map");
        coordinator.cli_ok(&["nodes", "approve", &id.unwrap().to_string()]);
    }
    let addresses: Vec<IpAddr> = agents
        .iter()
        .map(|agent| agent.wait_mesh_ipv4(10 * SECOND).into())
        .collect();
    let servers: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|host| lab.serve_tcp(host, 7000))
        .collect();

    // No policy: every pair pings and moves data both ways.
    for (from, host) in [&a, &b, &c].iter().enumerate() {
        for (to, address) in addresses.iter().enumerate().filter(|(to, _)| *to != from) {
            within(5 * SECOND, &format!("ping {} -> {to}", host.name), || {
                lab.ping(host, *address, SECOND)
            });
            assert_eq!(
                lab.send_tcp(host, *address, 7000, 2 << 20, 2 * SECOND),
                Ok(2 << 20),
                "{} -> {to}",
                host.name
            );
        }
    }

    // alice's devices may reach bob's, bob's may not reach alice's.
    let one_way = write_policy(
        &lab,
        "one-way.json",
        r#"{"acls": [{"action": "accept", "src": ["alice@"], "dst": ["alice@:*", "bob@:*"]},
                     {"action": "accept", "src": ["bob@"], "dst": ["bob@:*"]}]}"#,
    );
    coordinator.cli_ok(&["policy", "set", &one_way]);
    let (alice_a, bob_c) = (addresses[0], addresses[2]);
    within(2 * SECOND, "the deny to apply", || {
        lab.send_tcp(&c, alice_a, 7000, 1024, Duration::from_millis(300))
            .is_err()
    });
    assert_eq!(
        lab.send_tcp(&a, bob_c, 7000, 1 << 20, 2 * SECOND),
        Ok(1 << 20),
        "the allowed direction still works"
    );
    assert!(!lab.ping(&c, alice_a, SECOND), "ICMP is denied too");

    // Flip it: bob may reach alice, alice may no longer reach bob.
    let flipped = write_policy(
        &lab,
        "flipped.json",
        r#"{"acls": [{"action": "accept", "src": ["bob@"], "dst": ["alice@:*", "bob@:*"]},
                     {"action": "accept", "src": ["alice@"], "dst": ["alice@:*"]}]}"#,
    );
    let started = Instant::now();
    coordinator.cli_ok(&["policy", "set", &flipped]);
    within(SECOND, "bob reaching alice after the flip", || {
        lab.send_tcp(&c, alice_a, 7000, 1024, Duration::from_millis(200))
            .is_ok()
    });
    let flip_time = started.elapsed();
    assert!(
        lab.send_tcp(&a, bob_c, 7000, 1024, Duration::from_millis(300))
            .is_err(),
        "alice lost bob"
    );
    println!("policy flip took effect {flip_time:?} after `policy set` started");

    // Deleting a node cuts it off within a second.
    let c_id = coordinator.node_id("c").unwrap();
    let started = Instant::now();
    coordinator.cli_ok(&["nodes", "delete", &c_id.to_string()]);
    within(SECOND, "the deleted node losing the mesh", || {
        !lab.ping(&a, bob_c, Duration::from_millis(200))
    });
    println!(
        "deleted node cut off {:?} after `nodes delete` started",
        started.elapsed()
    );
    within(5 * SECOND, "the deleted agent noticing", || {
        agents[2].process.log_text().contains("deleted")
    });
    drop(servers);
}

#[test]
fn tunnels_survive_the_coordinator_and_agents_resync_when_it_returns() {
    let Some(mut lab) = Lab::new() else { return };
    let (hub, a, b, c) = (lab.host("hub"), lab.host("a"), lab.host("b"), lab.host("c"));
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    let key = coordinator.token_file(
        lab.dir.path(),
        "key.token",
        &["--user", "alice", "--reusable", "--pre-approved"],
    );
    let agent_a = lab.start_agent(&a, &key, &["--backend", "userspace"]);
    let agent_b = lab.start_agent(&b, &key, &["--backend", "userspace"]);
    agent_a.wait_mesh_ipv4(10 * SECOND);
    let b_address = IpAddr::from(agent_b.wait_mesh_ipv4(10 * SECOND));
    within(5 * SECOND, "first ping", || lab.ping(&a, b_address, SECOND));

    // 150 pings over 30 s; the coordinator dies after 2 s.
    let mut pinger = lab.command(&a, "ping");
    pinger.args(["-c", "150", "-i", "0.2", "-W", "1", &b_address.to_string()]);
    let pinger = lab.spawn(&a, "continuous-ping", pinger);
    std::thread::sleep(2 * SECOND);
    let mut coordinator = coordinator;
    coordinator.process.kill();
    within(5 * SECOND, "the agent noticing the outage", || {
        agent_a
            .status()
            .is_some_and(|status| status["coordinator"]["connected"] == false)
    });
    let mut pinger = pinger;
    let status = pinger.wait(40 * SECOND).expect("ping finishes");
    let log = pinger.log_text();
    assert!(
        status.success() && log.contains("150 received, 0% packet loss"),
        "{log}"
    );

    // The coordinator returns: agents resync, and a node approved now reaches them.
    let coordinator = lab.restart_coordinator(coordinator);
    for agent in [&agent_a, &agent_b] {
        within(40 * SECOND, "resync", || {
            agent
                .status()
                .is_some_and(|status| status["coordinator"]["connected"] == true)
        });
    }
    let late_key = coordinator.token_file(lab.dir.path(), "late.token", &["--user", "alice"]);
    let agent_c = lab.start_agent(&c, &late_key, &["--backend", "userspace"]);
    let mut id = None;
    within(10 * SECOND, "late registration", || {
        id = coordinator.node_id("c");
        id.is_some()
    });
    coordinator.cli_ok(&["nodes", "approve", &id.unwrap().to_string()]);
    agent_c.wait_mesh_ipv4(10 * SECOND);
    within(5 * SECOND, "the late node reaching a", || {
        lab.ping(&c, agent_a.mesh_ipv4().unwrap().into(), SECOND)
    });
    within(5 * SECOND, "the late node reaching b", || {
        lab.ping(&c, b_address, SECOND)
    });
}

/// A lab with a coordinator on host "hub", user alice, hosts "a" and "b",
/// and a key file for alice with `flags`.
fn alice_pair(flags: &[&str]) -> Option<(Lab, LabCoordinator, Host, Host, PathBuf)> {
    let mut lab = Lab::new()?;
    let (hub, a, b) = (lab.host("hub"), lab.host("a"), lab.host("b"));
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    let mut args = vec!["--user", "alice"];
    args.extend_from_slice(flags);
    let key = coordinator.token_file(lab.dir.path(), "key.token", &args);
    Some((lab, coordinator, a, b, key))
}

/// Whether this run forces the data plane's fallback path.
fn fallback_forced() -> bool {
    std::env::var("HEARTH_OFFLOADS").is_ok_and(|value| value == "off" || value == "0")
}

#[test]
fn an_offloading_agent_and_a_plain_one_move_bulk_data_both_ways() {
    let Some((mut lab, _coordinator, a, b, key)) = alice_pair(&["--reusable", "--pre-approved"])
    else {
        return;
    };
    // a cuts TSO super-packets and sends UDP GSO runs; b reads and writes
    // packet by packet and sends one datagram per packet, which a receives
    // with GRO and writes to its TUN coalesced.
    let agent_a = lab.start_agent_with_env(
        &a,
        &key,
        &["--backend", "userspace"],
        &[("HEARTH_OFFLOADS", "on")],
    );
    let agent_b = lab.start_agent_with_env(
        &b,
        &key,
        &["--backend", "userspace"],
        &[("HEARTH_OFFLOADS", "off")],
    );
    let a_address = IpAddr::from(agent_a.wait_mesh_ipv4(10 * SECOND));
    let b_address = IpAddr::from(agent_b.wait_mesh_ipv4(10 * SECOND));
    assert!(
        agent_a
            .offloads()
            .is_some_and(|offloads| offloads.contains("udp-gso"))
    );
    assert_eq!(agent_b.offloads().as_deref(), Some("none"));
    let _on_b = lab.serve_tcp(&b, 7000);
    let _on_a = lab.serve_tcp(&a, 7000);
    within(5 * SECOND, "first ping", || lab.ping(&a, b_address, SECOND));
    let size = 32 << 20;
    assert_eq!(
        lab.send_tcp(&a, b_address, 7000, size, 20 * SECOND),
        Ok(size),
        "a to b"
    );
    assert_eq!(
        lab.send_tcp(&b, a_address, 7000, size, 20 * SECOND),
        Ok(size),
        "b to a"
    );
}

#[test]
fn the_underlay_carries_only_wireguard_never_the_payload() {
    let Some((mut lab, _coordinator, a, b, key)) = alice_pair(&["--reusable", "--pre-approved"])
    else {
        return;
    };
    if hearth_testkit::require_tools(&["tcpdump"]).is_none() {
        return;
    }
    let agent_a = lab.start_agent(&a, &key, &["--backend", "userspace"]);
    let agent_b = lab.start_agent(&b, &key, &["--backend", "userspace"]);
    agent_a.wait_mesh_ipv4(10 * SECOND);
    let b_address = IpAddr::from(agent_b.wait_mesh_ipv4(10 * SECOND));
    let _server = lab.serve_tcp(&b, 7000);
    within(5 * SECOND, "first ping", || lab.ping(&a, b_address, SECOND));

    // Capture a's wire (its switch port) while 4 MiB of marked payload cross the tunnel.
    let capture = lab.capture(&a, "underlay", &[]);
    assert_eq!(
        lab.send_tcp(&a, b_address, 7000, 4 << 20, 2 * SECOND),
        Ok(4 << 20)
    );
    let bytes = capture.stop();
    // Which data-plane path carried it: the offloads this kernel has, or
    // the fallback when the run forces it (scripts/test.sh runs the
    // data-plane tests both ways).
    let offloads = agent_a.offloads().expect("status reports the offloads");
    if fallback_forced() {
        assert_eq!(offloads, "none");
    } else {
        for wanted in ["tun-tso", "udp-gso", "udp-gro"] {
            assert!(
                offloads.contains(wanted),
                "{wanted} missing from {offloads:?}"
            );
        }
    }
    let marker = b"HEARTH-PAYLOAD-MARKER-";
    assert!(
        !bytes.windows(marker.len()).any(|window| window == marker),
        "the payload appeared in clear on the underlay"
    );
    // With UDP GSO a captured frame may hold a run of datagrams (the
    // capture sees them before the kernel cuts them): count bytes too.
    let (mut wireguard, mut wireguard_bytes, mut disco, mut control, mut other) =
        (0, 0, 0, 0, Vec::new());
    for frame in hearth_testkit::pcap_frames(&bytes) {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        if ethertype != 0x0800 {
            continue; // ARP and IPv6 neighbor discovery of the underlay itself
        }
        let ip = &frame[14..];
        let header = usize::from(ip[0] & 0x0f) * 4;
        let protocol = ip[9];
        let payload = &ip[header..];
        let ports = (
            u16::from_be_bytes([payload[0], payload[1]]),
            u16::from_be_bytes([payload[2], payload[3]]),
        );
        match protocol {
            17 if ports == (41641, 41641) => {
                let message = &payload[8..];
                if hearth_control::disco::looks_like_disco(message) {
                    // Path discovery: a sealed box between the two disco keys.
                    disco += 1;
                    continue;
                }
                assert!(
                    (1..=4).contains(&message[0]) && message[1..4] == [0, 0, 0],
                    "not a WireGuard message"
                );
                wireguard += 1;
                wireguard_bytes += message.len();
            }
            6 if ports.0 == 8443 || ports.1 == 8443 => control += 1,
            2 => {} // IGMP membership reports of the underlay interface itself
            _ => other.push((protocol, ports)),
        }
    }
    println!(
        "captured {wireguard} WireGuard frames ({wireguard_bytes} bytes), {disco} disco messages \
         and {control} control-plane and relay TLS segments"
    );
    // At least half the 4 MiB (a capture under load may miss frames).
    assert!(
        wireguard_bytes > 2 << 20,
        "the transfer crossed the capture point"
    );
    assert!(
        other.is_empty(),
        "unexpected traffic on the underlay: {other:?}"
    );
}

/// Alice's agent on `host` (userspace data plane, pre-approved), once it
/// has an address and the coordinator has its endpoints.
fn alices_agent(
    lab: &mut Lab,
    coordinator: &LabCoordinator,
    host: &Host,
) -> (hearth_testkit::Agent, IpAddr) {
    let key = coordinator.token_file(
        lab.dir.path(),
        "key.token",
        &["--user", "alice", "--pre-approved"],
    );
    let agent = lab.start_agent(host, &key, &["--backend", "userspace"]);
    let address = IpAddr::from(agent.wait_mesh_ipv4(10 * SECOND));
    within(10 * SECOND, "the agent's endpoint report", || {
        coordinator.nodes().iter().any(|node| {
            node["name"] == host.name.as_str()
                && node["endpoints"]
                    .as_array()
                    .is_some_and(|list| !list.is_empty())
        })
    });
    (agent, address)
}

/// A stock WireGuard device (Debian's wireguard-go and `wg`) set up from a
/// `devices add` config in `host`, as the WireGuard app would be.
struct StockDevice {
    interface: String,
    /// Its mesh address with prefix length, as the config gives it.
    address: String,
    /// wireguard-go's control socket.
    socket: PathBuf,
    _process: hearth_testkit::Process,
}

/// wireguard-go leaves its socket in /run/wireguard: removed with the
/// device, whether the test passed or not.
impl Drop for StockDevice {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl StockDevice {
    fn start(lab: &mut Lab, host: &Host, config: &str) -> StockDevice {
        let interface = hearth_testkit::unique_interface();
        let address = config
            .lines()
            .find_map(|line| line.strip_prefix("Address = "))
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .trim()
            .to_owned();
        let wg_config: String = config
            .lines()
            .filter(|line| !line.starts_with("Address") && !line.starts_with("MTU"))
            .map(|line| format!("{line}\n"))
            .collect();
        let config_file = lab.dir.path().join(format!("{}.conf", host.name));
        std::fs::write(&config_file, wg_config).unwrap();
        let mut wireguard_go = lab.command(host, "wireguard-go");
        wireguard_go.args(["-f", &interface]);
        let process = lab.spawn(host, "wireguard-go", wireguard_go);
        let socket = PathBuf::from(format!("/var/run/wireguard/{interface}.sock"));
        within(5 * SECOND, "wireguard-go to start", || socket.exists());
        lab.exec(
            host,
            &["wg", "setconf", &interface, config_file.to_str().unwrap()],
        );
        lab.exec(host, &["ip", "addr", "add", &address, "dev", &interface]);
        lab.exec(
            host,
            &["ip", "link", "set", &interface, "mtu", "1280", "up"],
        );
        lab.exec(
            host,
            &["ip", "route", "add", "100.64.0.0/10", "dev", &interface],
        );
        StockDevice {
            interface,
            address,
            socket,
            _process: process,
        }
    }
}

#[test]
fn a_stock_wireguard_go_device_joins_with_devices_add_and_the_policy_applies() {
    let Some(mut lab) = Lab::new() else { return };
    if hearth_testkit::require_tools(&["wireguard-go", "wg"]).is_none() {
        return;
    }
    let (hub, a, phone) = (lab.host("hub"), lab.host("a"), lab.host("phone"));
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    coordinator.cli_ok(&["users", "create", "kids"]);
    let policy = write_policy(
        &lab,
        "kids.json",
        r#"{"acls": [{"action": "accept", "src": ["kids@"], "dst": ["alice@:7000"]},
                     {"action": "accept", "src": ["alice@"], "dst": ["*:*"]}]}"#,
    );
    coordinator.cli_ok(&["policy", "set", &policy]);
    let (agent, agent_address) = alices_agent(&mut lab, &coordinator, &a);
    let _open = lab.serve_tcp(&a, 7000);
    let _closed = lab.serve_tcp(&a, 7001);

    let config = coordinator.cli_ok(&[
        "devices", "add", "--user", "kids", "--name", "phone", "--output", "config",
    ]);
    assert!(
        config.contains("[Interface]")
            && config.contains("PrivateKey = ")
            && config.contains("Endpoint = 10.77.0."),
        "{config}"
    );
    let both = coordinator.cli(&["devices", "add", "--user", "kids", "--name", "tablet"]);
    assert!(
        String::from_utf8_lossy(&both.stdout).contains('█'),
        "a QR code is printed"
    );

    // Configure wireguard-go from the printed config, as the WireGuard app would.
    let device = StockDevice::start(&mut lab, &phone, &config);
    let address = device.address.clone();

    within(10 * SECOND, "the phone reaching the agent", || {
        lab.ping(&phone, agent_address, SECOND)
    });
    assert_eq!(
        lab.send_tcp(&phone, agent_address, 7000, 1 << 20, 2 * SECOND),
        Ok(1 << 20)
    );
    assert!(
        lab.send_tcp(&phone, agent_address, 7001, 1024, SECOND)
            .is_err(),
        "the policy opens only port 7000 to kids"
    );
    let phone_address: IpAddr = address.split('/').next().unwrap().parse().unwrap();
    let who = agent.cli(&["whois", &phone_address.to_string(), "--output", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(
        (who["name"].as_str(), who["user"].as_str()),
        (Some("phone"), Some("kids"))
    );
}

#[test]
fn a_restarted_agent_keeps_its_identity_and_a_stopped_one_cleans_up() {
    let Some((mut lab, coordinator, a, b, key)) = alice_pair(&["--pre-approved"]) else {
        return;
    };
    let agent_a = lab.start_agent(&a, &key, &["--backend", "userspace"]);
    let first = agent_a.wait_mesh_ipv4(10 * SECOND);
    // The key was single-use: a second registration would be refused.
    let agent_a = lab.restart_agent(agent_a, &key);
    assert_eq!(agent_a.wait_mesh_ipv4(10 * SECOND), first);
    assert_eq!(coordinator.nodes().len(), 1, "no second registration");
    let second_key = coordinator.token_file(
        lab.dir.path(),
        "second.token",
        &["--user", "alice", "--pre-approved"],
    );
    let agent_b = lab.start_agent(&b, &second_key, &["--backend", "userspace"]);
    let b_address = IpAddr::from(agent_b.wait_mesh_ipv4(10 * SECOND));
    within(5 * SECOND, "ping after restart", || {
        lab.ping(&a, b_address, SECOND)
    });

    let ping = agent_a.cli(&["ping", "b", "--count", "2"]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stderr)
    );
    assert!(String::from_utf8_lossy(&ping.stdout).contains("reply from b"));
    let status = agent_a.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("coordinator https://10.77.0.2:8443 connected") && text.contains(" b "),
        "{text}"
    );

    let interface = agent_a.interface.clone();
    let mut agent_a = agent_a;
    let exit = agent_a
        .process
        .terminate(10 * SECOND)
        .expect("the agent stops on SIGTERM");
    assert!(exit.success(), "{}", agent_a.process.log_text());
    let links = lab.exec(&a, &["ip", "link"]);
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&interface),
        "the interface is gone"
    );
    let tables = lab.exec(&a, &["nft", "list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("hearth"),
        "the firewall table is gone"
    );
    assert!(!agent_a.state.join("agent.sock").exists());
}

/// The agent's MagicDNS at 100.100.100.100 is for programs on its own
/// device. The attack: a peer (here a stock WireGuard device whose owner
/// edits its allowed IPs) sends a query for 100.100.100.100 through its
/// tunnel to the agent, to use it as a resolver (its split domains lead
/// into the household's own DNS). It must get no answer.
#[test]
fn a_peer_cannot_use_an_agents_magicdns_through_the_tunnel() {
    let Some(mut lab) = Lab::new() else { return };
    if hearth_testkit::require_tools(&["wireguard-go", "wg", "dig"]).is_none() {
        return;
    }
    let (hub, a, phone) = (lab.host("hub"), lab.host("a"), lab.host("phone"));
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    let (_agent, agent_address) = alices_agent(&mut lab, &coordinator, &a);
    // On the agent's own device, its resolver answers.
    let dig = |lab: &Lab, host: &Host, name: &str| {
        let output = lab
            .command(host, "dig")
            .args([
                "@100.100.100.100",
                "+short",
                "+time=1",
                "+tries=1",
                name,
                "A",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    within(10 * SECOND, "MagicDNS on the agent's device", || {
        dig(&lab, &a, "a.hearth.internal") == agent_address.to_string()
    });

    // A stock WireGuard device of the same user, allowed everywhere by the
    // default policy, routes 100.100.100.100 to the agent.
    let config = coordinator.cli_ok(&[
        "devices", "add", "--user", "alice", "--name", "phone", "--output", "config",
    ]);
    let device = StockDevice::start(&mut lab, &phone, &config);
    let interface = device.interface.clone();
    within(10 * SECOND, "the phone reaching the agent", || {
        lab.ping(&phone, agent_address, SECOND)
    });
    let agent_key = String::from_utf8_lossy(
        &lab.exec(&phone, &["wg", "show", &interface, "peers"])
            .stdout,
    )
    .lines()
    .next()
    .unwrap()
    .to_owned();
    lab.exec(
        &phone,
        &[
            "wg",
            "set",
            &interface,
            "peer",
            &agent_key,
            "allowed-ips",
            &format!("{agent_address}/32,100.100.100.100/32"),
        ],
    );
    for _ in 0..3 {
        let said = dig(&lab, &phone, "a.hearth.internal");
        assert!(
            !said.contains(&agent_address.to_string()) && said.contains("timed out"),
            "a peer got an answer from the agent's MagicDNS: {said}"
        );
    }
}
