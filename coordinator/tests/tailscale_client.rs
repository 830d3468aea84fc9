//! The official Tailscale client (tailscaled 1.96.4, userspace networking,
//! logs off) joining a Hearth coordinator in network namespaces, beside a
//! `hearth-agent` node: registration with pre-auth keys (pre-approved, and
//! pending until `nodes approve`), MagicDNS names in `tailscale status`,
//! paths between the clients and to the agent, the policy enforced on the
//! Tailscale side, deletion. Needs root (namespaces) and the cached client
//! (scripts/tailscale-client.sh); outside CI the test skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use hearth_testkit::llama::tailscale_client;
use hearth_testkit::{Lab, wait_until};

fn key(coordinator: &hearth_testkit::LabCoordinator, args: &[&str]) -> String {
    let mut all = vec!["preauthkeys", "create", "--user", "alice"];
    all.extend_from_slice(args);
    coordinator.cli_ok(&all).trim().to_owned()
}

/// A lab with a coordinator in host `hub` (plain HTTP on port 80 too when
/// `http`) and user alice, and the official client; `None` (skipped)
/// without root or the client.
fn lab_with_alice(http: bool) -> Option<(Lab, std::path::PathBuf, hearth_testkit::LabCoordinator)> {
    let mut lab = Lab::new()?;
    let client = tailscale_client()?;
    let hub = lab.host("hub");
    let listen = format!("{}:80", hub.address);
    let extra: &[&str] = if http {
        &["--http-listen", &listen]
    } else {
        &[]
    };
    let coordinator = lab.start_coordinator_with(&hub, extra);
    coordinator.cli_ok(&["users", "create", "alice"]);
    Some((lab, client, coordinator))
}

/// Starts `tailscaled` in a new host `name` and brings it up with `key`,
/// failing the test if it does not come up.
fn join(
    lab: &mut Lab,
    name: &str,
    client: &std::path::Path,
    coordinator: &hearth_testkit::LabCoordinator,
    key: &str,
) -> hearth_testkit::TailscaleNode {
    let host = lab.host(name);
    let device = lab.start_tailscaled(&host, coordinator, client);
    up_ok(
        lab,
        &device,
        &format!("https://{}", coordinator.address),
        key,
    );
    device
}

/// `tailscale up` on `device` at `login` with `key`, failing the test if
/// it does not come up.
fn up_ok(lab: &Lab, device: &hearth_testkit::TailscaleNode, login: &str, key: &str) {
    let up = device.up_at(lab, login, key, &["--timeout", "30s"]);
    assert!(
        up.status.success(),
        "tailscale up {}: {}\ntailscaled:\n{}",
        device.host.name,
        String::from_utf8_lossy(&up.stderr),
        device.daemon.log_text()
    );
}

#[test]
fn official_clients_and_an_agent_join_one_mesh() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let phone_host = lab.host("phone");
    let laptop_host = lab.host("laptop");
    let server_host = lab.host("server");
    let approved = key(&coordinator, &["--reusable", "--pre-approved"]);
    let pending = key(&coordinator, &[]);

    // A hearth-agent node with the same kind of key.
    let token = lab.dir.path().join("server.token");
    std::fs::write(&token, &approved).unwrap();
    let agent = lab.start_agent(&server_host, &token, &[]);
    let agent_ip = agent.wait_mesh_ipv4(Duration::from_secs(30));

    // A pre-approved key brings the phone up.
    let phone = lab.start_tailscaled(&phone_host, &coordinator, &client);
    let up = phone.up(&lab, &coordinator, &approved, &["--timeout", "30s"]);
    assert!(
        up.status.success(),
        "tailscale up: {}\ncoordinator:\n{}\ntailscaled:\n{}",
        String::from_utf8_lossy(&up.stderr),
        coordinator.process.log_text(),
        phone.daemon.log_text()
    );
    assert_eq!(phone.backend_state(&lab), "Running");

    // A normal key leaves the laptop waiting until an admin approves it.
    let laptop = lab.start_tailscaled(&laptop_host, &coordinator, &client);
    let waiting = laptop.up(&lab, &coordinator, &pending, &["--timeout", "5s"]);
    assert!(!waiting.status.success(), "a pending device is not up yet");
    assert_eq!(laptop.backend_state(&lab), "NeedsMachineAuth");
    // The official client sends the admin to a page of the login server;
    // it says what to run instead of a 404.
    let told = String::from_utf8_lossy(&waiting.stderr).into_owned()
        + &String::from_utf8_lossy(&waiting.stdout);
    let admin_url = told
        .split_whitespace()
        .find(|word| word.contains("/admin"))
        .unwrap_or_else(|| panic!("tailscale up names no admin page: {told}"))
        .to_owned();
    let admin = lab
        .command(&laptop_host, "curl")
        .args(["-sk", "-w", "\n%{http_code}", &admin_url])
        .output()
        .unwrap();
    let admin = String::from_utf8_lossy(&admin.stdout);
    assert!(
        admin.ends_with("\n200")
            && admin.contains("hearth-coordinator nodes approve ID")
            && admin.contains("--pre-approved"),
        "{admin_url}: {admin}"
    );
    let nodes = coordinator.nodes();
    let laptop_node = nodes.iter().find(|node| node["name"] == "laptop").unwrap();
    assert_eq!(laptop_node["state"], "pending");
    assert_eq!(laptop_node["client"], "tailscale 1.96.4");
    let laptop_id = laptop_node["id"].as_u64().unwrap().to_string();
    coordinator.cli_ok(&["nodes", "approve", &laptop_id]);
    let approved_at = Instant::now();
    wait_until(Duration::from_secs(10), || {
        laptop.backend_state(&lab) == "Running"
    })
    .unwrap_or_else(|| {
        panic!(
            "the laptop did not come up after approval:\n{}",
            laptop.daemon.log_text()
        )
    });
    eprintln!("laptop running {:?} after approval", approved_at.elapsed());
    assert!(approved_at.elapsed() < Duration::from_secs(2));

    // Each client lists the other two by MagicDNS name.
    let expected_phone = ["laptop.hearth.internal.", "server.hearth.internal."];
    wait_until(Duration::from_secs(10), || {
        phone.peer_dns_names(&lab) == expected_phone
    })
    .unwrap_or_else(|| panic!("phone peers: {:?}", phone.peer_dns_names(&lab)));
    let expected_laptop = ["phone.hearth.internal.", "server.hearth.internal."];
    wait_until(Duration::from_secs(10), || {
        laptop.peer_dns_names(&lab) == expected_laptop
    })
    .unwrap_or_else(|| panic!("laptop peers: {:?}", laptop.peer_dns_names(&lab)));
    wait_until(Duration::from_secs(10), || agent.peer_names().len() == 2)
        .unwrap_or_else(|| panic!("agent peers: {:?}", agent.peer_names()));

    // Packets: client to client (disco, direct), client to agent (plain WireGuard).
    let laptop_ip = laptop.ipv4(&lab).unwrap().to_string();
    let ping = phone.cli(&lab, &["ping", "--timeout", "5s", "--c", "10", &laptop_ip]);
    eprintln!("phone -> laptop: {}", String::from_utf8_lossy(&ping.stdout));
    assert!(
        ping.status.success(),
        "phone -> laptop: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    let ping = phone.cli(
        &lab,
        &[
            "ping",
            "--icmp",
            "--timeout",
            "5s",
            "--c",
            "10",
            &agent_ip.to_string(),
        ],
    );
    assert!(
        ping.status.success(),
        "phone -> agent: {}{}\nagent:\n{}\ntailscaled:\n{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr),
        agent.process.log_text(),
        phone.daemon.log_text()
    );
    eprintln!("phone -> agent: {}", String::from_utf8_lossy(&ping.stdout));

    // The agent reaches both clients: TCP to a listener behind each
    // client's userspace network stack (inbound connections to a client's
    // mesh address are handed to the same port on its loopback).
    let phone_ip: std::net::IpAddr = phone.ipv4(&lab).unwrap().into();
    let laptop_ip: std::net::IpAddr = laptop_ip.parse().unwrap();
    let _servers = [
        lab.serve_tcp(&phone_host, 7000),
        lab.serve_tcp(&phone_host, 7001),
        lab.serve_tcp(&laptop_host, 7000),
    ];
    for (name, address) in [("phone", phone_ip), ("laptop", laptop_ip)] {
        let mut sent = Err(String::new());
        wait_until(Duration::from_secs(10), || {
            sent = lab.send_tcp(&server_host, address, 7000, 1 << 20, Duration::from_secs(2));
            sent.is_ok()
        });
        assert_eq!(sent, Ok(1 << 20), "agent -> {name}:7000");
    }
    assert_eq!(
        lab.send_tcp(&server_host, phone_ip, 7001, 1024, Duration::from_secs(2)),
        Ok(1024),
        "no policy: every port is open"
    );

    // The policy is enforced on the Tailscale side: only port 7000 of
    // alice's devices, then only 7001, each in force within a second.
    let policy = |port: u16| {
        let path = lab.dir.path().join(format!("policy-{port}.json"));
        std::fs::write(
            &path,
            format!(r#"{{"acls": [{{"action": "accept", "src": ["alice@"], "dst": ["alice@:{port}"]}}]}}"#),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let reaches = |port: u16| {
        lab.send_tcp(
            &server_host,
            phone_ip,
            port,
            1024,
            Duration::from_millis(300),
        )
        .is_ok()
    };
    for (open, closed) in [(7000, 7001), (7001, 7000)] {
        let started = Instant::now();
        coordinator.cli_ok(&["policy", "set", &policy(open)]);
        wait_until(Duration::from_secs(5), || reaches(open) && !reaches(closed))
            .unwrap_or_else(|| panic!("port {open} open and {closed} closed on the phone"));
        eprintln!(
            "policy allowing {open} in force on the phone after {:?}",
            started.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    coordinator.cli_ok(&["policy", "set", &{
        let path = lab.dir.path().join("policy-all.json");
        std::fs::write(
            &path,
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    }]);

    // The agent's `whois` names a Tailscale peer and its user.
    let who = agent.cli(&["whois", &phone_ip.to_string(), "--output", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(
        (who["name"].as_str(), who["user"].as_str()),
        (Some("phone"), Some("alice"))
    );

    // `nodes list` shows both kinds of client in one mesh.
    let nodes = coordinator.nodes();
    let client_of = |name: &str| {
        nodes
            .iter()
            .find(|node| node["name"] == name)
            .map(|node| node["client"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(client_of("phone"), "tailscale 1.96.4");
    assert_eq!(client_of("server"), "hearth-agent");

    // Deleting the laptop removes it from everyone's map and refuses it.
    coordinator.cli_ok(&["nodes", "delete", &laptop_id]);
    let deleted_at = Instant::now();
    wait_until(Duration::from_secs(5), || {
        phone.peer_dns_names(&lab) == ["server.hearth.internal."]
    })
    .unwrap_or_else(|| panic!("phone peers after delete: {:?}", phone.peer_dns_names(&lab)));
    eprintln!(
        "laptop gone from the phone's map after {:?}",
        deleted_at.elapsed()
    );
    wait_until(Duration::from_secs(5), || agent.peer_names() == ["phone"])
        .unwrap_or_else(|| panic!("agent peers after delete: {:?}", agent.peer_names()));
    wait_until(Duration::from_secs(30), || {
        coordinator
            .process
            .log_text()
            .contains("a Tailscale map request was refused")
    })
    .unwrap_or_else(|| {
        panic!(
            "the deleted laptop was not refused:\n{}",
            coordinator.process.log_text()
        )
    });
    drop(agent);
}

#[test]
fn a_single_use_key_raced_by_a_tailscale_client_and_an_agent_admits_one() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let phone_host = lab.host("phone");
    let server_host = lab.host("server");
    let single = key(&coordinator, &["--pre-approved"]);
    let phone = lab.start_tailscaled(&phone_host, &coordinator, &client);
    let token = lab.dir.path().join("server.token");
    std::fs::write(&token, &single).unwrap();

    let racing = {
        let mut command = phone.command(
            &lab,
            &[
                "up",
                "--login-server",
                &format!("https://{}", coordinator.address),
                "--authkey",
                &single,
                "--hostname",
                "phone",
                "--timeout",
                "20s",
            ],
        );
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let agent = lab.start_agent(&server_host, &token, &[]);
    let up = racing.wait_with_output().unwrap();
    wait_until(Duration::from_secs(20), || {
        !agent.process.log_text().is_empty() && coordinator.nodes().len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    let nodes = coordinator.nodes();
    assert_eq!(nodes.len(), 1, "exactly one admitted: {nodes:?}");
    let winner = nodes[0]["client"].as_str().unwrap().to_owned();
    eprintln!("the single-use key went to {winner}");
    if winner == "hearth-agent" {
        assert!(!up.status.success());
        let said = String::from_utf8_lossy(&up.stderr);
        assert!(said.contains("already used"), "tailscale up said: {said}");
    } else {
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        wait_until(Duration::from_secs(10), || {
            agent.process.log_text().contains("already used")
        })
        .unwrap_or_else(|| panic!("the agent was not told:\n{}", agent.process.log_text()));
    }
}

#[test]
fn routes_reauth_and_logout_go_through_the_same_admission() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let router_host = lab.host("router");
    let reusable = key(&coordinator, &["--reusable", "--pre-approved"]);
    let router = lab.start_tailscaled(&router_host, &coordinator, &client);
    // Nothing else in the mesh yet: the client is healthy through the relay.
    let up = router.up(
        &lab,
        &coordinator,
        &reusable,
        &["--advertise-routes", "10.99.0.0/24", "--timeout", "30s"],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let node = |coordinator: &hearth_testkit::LabCoordinator| {
        coordinator
            .nodes()
            .into_iter()
            .find(|node| node["name"] == "router")
            .unwrap()
    };
    wait_until(Duration::from_secs(10), || {
        node(&coordinator)["advertised_routes"] == serde_json::json!(["10.99.0.0/24"])
    })
    .unwrap_or_else(|| panic!("routes not advertised: {}", node(&coordinator)));
    assert_eq!(node(&coordinator)["approved_routes"], serde_json::json!([]));
    let id = node(&coordinator)["id"].as_u64().unwrap().to_string();
    coordinator.cli_ok(&["nodes", "approve-routes", &id, "--routes", "10.99.0.0/24"]);
    assert_eq!(
        node(&coordinator)["approved_routes"],
        serde_json::json!(["10.99.0.0/24"])
    );

    // --force-reauth: a new node key, the same node.
    let key_before = node(&coordinator)["wireguard_key"].clone();
    let up = router.up(
        &lab,
        &coordinator,
        &reusable,
        &[
            "--advertise-routes",
            "10.99.0.0/24",
            "--force-reauth",
            "--timeout",
            "30s",
        ],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let after = node(&coordinator);
    assert_eq!(after["id"].as_u64().unwrap().to_string(), id);
    assert_ne!(
        after["wireguard_key"], key_before,
        "the node key was replaced"
    );
    assert_eq!(after["state"], "approved");
    assert_eq!(coordinator.nodes().len(), 1);

    // Logout expires the node; a key brings the same node back.
    let logout = router.cli(&lab, &["logout"]);
    assert!(
        logout.status.success(),
        "{}",
        String::from_utf8_lossy(&logout.stderr)
    );
    wait_until(Duration::from_secs(5), || {
        node(&coordinator)["state"] == "expired"
    })
    .unwrap_or_else(|| panic!("after logout: {}", node(&coordinator)));
    let up = router.up(&lab, &coordinator, &reusable, &["--timeout", "30s"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let back = node(&coordinator);
    assert_eq!(back["state"], "approved");
    assert_eq!(back["id"].as_u64().unwrap().to_string(), id);
}

#[test]
fn a_client_joins_over_plain_http_on_port_80() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(true) else {
        return;
    };
    let phone_host = lab.host("phone");
    let http = format!("{}:80", coordinator.host.address);
    let approved = key(&coordinator, &["--pre-approved"]);
    let phone = lab.start_tailscaled(&phone_host, &coordinator, &client);
    let up = phone.up_at(
        &lab,
        &format!("http://{http}"),
        &approved,
        &["--timeout", "30s"],
    );
    assert!(
        up.status.success(),
        "tailscale up over http: {}\n{}",
        String::from_utf8_lossy(&up.stderr),
        coordinator.process.log_text()
    );
    assert_eq!(phone.backend_state(&lab), "Running");
    let log = coordinator.process.log_text();
    assert!(
        log.contains("Tailscale control protocol on plain HTTP"),
        "{log}"
    );
    assert!(log.contains("Tailscale node registered"), "{log}");
}

#[test]
fn phones_that_trust_no_installed_certificate_join_over_http_and_meet_through_the_relay() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(true) else {
        return;
    };
    let login = format!("http://{}:80", coordinator.host.address);
    let approved = key(&coordinator, &["--pre-approved", "--reusable"]);
    let mut phones = Vec::new();
    for name in ["phone", "tablet"] {
        let host = lab.host(name);
        // Only the system's authorities: the coordinator's self-signed
        // certificate is not among them.
        let phone = lab.start_tailscaled_trusting(&host, None, &client);
        up_ok(&lab, &phone, &login, &approved);
        phones.push(phone);
    }
    let [phone, tablet] = &phones[..] else {
        unreachable!("two phones")
    };
    // No direct path between them: UDP between the two is dropped, so
    // their packets can only go through the coordinator's relay (DERP over
    // HTTPS, its certificate pinned by the map, not trusted by the device).
    drop_udp_between(&lab, &phone.host, &tablet.host);
    pings_through_the_relay(&lab, phone, tablet);
}

/// Waits until `from` pings `to` (whose direct path is cut) through the
/// coordinator's relay, and checks it says so.
fn pings_through_the_relay(
    lab: &Lab,
    from: &hearth_testkit::TailscaleNode,
    to: &hearth_testkit::TailscaleNode,
) {
    let to_ip = to.ipv4(lab).unwrap().to_string();
    let ping = || {
        from.cli(
            lab,
            &[
                "ping",
                "--until-direct=false",
                "--timeout",
                "3s",
                "--c",
                "3",
                &to_ip,
            ],
        )
    };
    wait_until(Duration::from_secs(30), || ping().status.success()).unwrap_or_else(|| {
        let last = ping();
        panic!(
            "{} -> {} through the relay: {}{}\n{}:\n{}",
            from.host.name,
            to.host.name,
            String::from_utf8_lossy(&last.stdout),
            String::from_utf8_lossy(&last.stderr),
            from.host.name,
            from.daemon.log_text()
        )
    });
    let said = String::from_utf8_lossy(&ping().stdout).into_owned();
    assert!(said.contains("via DERP(hub)"), "through the relay: {said}");
}

/// Drops UDP between hosts `a` and `b` both ways: their devices can meet
/// only through a relay.
fn drop_udp_between(lab: &Lab, a: &hearth_testkit::Host, b: &hearth_testkit::Host) {
    for (from, to) in [(a, b), (b, a)] {
        let to = to.address.to_string();
        lab.exec(from, &["nft", "add", "table", "inet", "cut"]);
        lab.exec(
            from,
            &[
                "nft",
                "add chain inet cut out { type filter hook output priority 0; }",
            ],
        );
        lab.exec(
            from,
            &[
                "nft", "add", "rule", "inet", "cut", "out", "ip", "daddr", &to, "meta", "l4proto",
                "udp", "drop",
            ],
        );
    }
}

/// Runs `tailscale up` without a key on `device`; the running command and
/// the login URL it printed.
fn up_without_a_key(
    lab: &Lab,
    device: &hearth_testkit::TailscaleNode,
    login: &str,
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut up = device.command(
        lab,
        &[
            "up",
            "--login-server",
            login,
            "--hostname",
            &device.host.name,
            "--timeout",
            "120s",
        ],
    );
    up.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = up.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let url = loop {
        let line = said
            .recv_timeout(Duration::from_secs(30))
            .expect("tailscale up printed a login URL");
        if let Some(at) = line.find("https://") {
            break line[at..].trim().to_owned();
        }
    };
    (child, url)
}

#[test]
fn a_device_without_a_key_waits_on_its_login_page_until_an_admin_registers_it() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let phone_host = lab.host("phone");
    let phone = lab.start_tailscaled(&phone_host, &coordinator, &client);
    let login = format!("https://{}", coordinator.address);
    let (mut child, url) = up_without_a_key(&lab, &phone, &login);
    let code = url.rsplit('/').next().unwrap().to_owned();
    assert!(url.starts_with(&format!("{login}/register/")), "{url}");

    // The page names the device and the command; nothing is registered yet.
    let certificate = coordinator.state.join("tls/server.crt");
    let page = lab.exec(
        &phone_host,
        &[
            "curl",
            "-sS",
            "--cacert",
            certificate.to_str().unwrap(),
            &url,
        ],
    );
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(
        page.contains(&format!(
            "hearth-coordinator nodes register --user USER {code}"
        )),
        "{page}"
    );
    assert!(page.contains("phone"), "{page}");
    assert!(coordinator.nodes().is_empty());
    assert_eq!(phone.backend_state(&lab), "NeedsLogin");

    // A wrong code is refused; the right one brings the device up at once.
    let wrong = coordinator.cli(&["nodes", "register", "--user", "alice", &"0".repeat(40)]);
    assert!(!wrong.status.success());
    coordinator.cli_ok(&["nodes", "register", "--user", "alice", &code]);
    let registered_at = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "tailscale up ended with {status}");
    eprintln!(
        "tailscale up finished {:?} after `nodes register`",
        registered_at.elapsed()
    );
    assert_eq!(phone.backend_state(&lab), "Running");
    let nodes = coordinator.nodes();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0]["name"].as_str(), nodes[0]["user"].as_str()),
        (Some("phone"), Some("alice"))
    );
    assert_eq!(nodes[0]["state"], "approved");
    // The code is spent.
    let again = coordinator.cli(&["nodes", "register", "--user", "alice", &code]);
    assert!(!again.status.success());
}

/// Key expiry reaches the official client: `tailscale status` shows when
/// its node key expires, exactly as the coordinator lists it; once it has,
/// the client stops and asks for a login (NeedsLogin) rather than failing
/// quietly, and a fresh pre-auth key brings the same node back with a new
/// expiry.
#[test]
fn a_client_sees_its_key_expiry_and_asks_for_a_login_once_it_passes() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let phone_host = lab.host("phone");
    let short = key(&coordinator, &["--pre-approved", "--key-expiry", "20s"]);
    let phone = lab.start_tailscaled(&phone_host, &coordinator, &client);
    let up = phone.up(&lab, &coordinator, &short, &["--timeout", "30s"]);
    assert!(
        up.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&up.stderr),
        coordinator.process.log_text()
    );
    let node = |coordinator: &hearth_testkit::LabCoordinator| {
        coordinator
            .nodes()
            .into_iter()
            .find(|node| node["name"] == "phone")
            .unwrap()
    };
    let listed = node(&coordinator);
    let expiry = listed["key_expiry"].as_i64().unwrap();
    let status = phone.status(&lab).unwrap();
    let shown = status["Self"]["KeyExpiry"].as_str().unwrap_or_default();
    let shown = time::OffsetDateTime::parse(shown, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|error| panic!("KeyExpiry {shown:?}: {error}; status: {status}"));
    assert_eq!(
        shown.unix_timestamp(),
        expiry,
        "the expiry the client shows"
    );

    // Once the key has expired the client asks its user to log in again.
    wait_until(Duration::from_secs(120), || {
        phone.backend_state(&lab) == "NeedsLogin"
    })
    .unwrap_or_else(|| {
        panic!(
            "still {:?} after the key expired; coordinator:\n{}",
            phone.backend_state(&lab),
            coordinator.process.log_text()
        )
    });
    assert_eq!(node(&coordinator)["state"], "expired");

    // A fresh key: the same node, in the mesh again, with a new expiry.
    let fresh = key(&coordinator, &["--pre-approved"]);
    let up = phone.up(
        &lab,
        &coordinator,
        &fresh,
        &["--force-reauth", "--timeout", "30s"],
    );
    assert!(
        up.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&up.stderr),
        coordinator.process.log_text()
    );
    wait_until(Duration::from_secs(30), || {
        phone.backend_state(&lab) == "Running"
    })
    .unwrap_or_else(|| panic!("not running again: {}", phone.backend_state(&lab)));
    let back = node(&coordinator);
    assert_eq!(back["id"], listed["id"], "the same node");
    assert_eq!(back["state"], "approved");
    assert!(back["key_expiry"].as_i64().unwrap() > expiry);
}

#[test]
fn taildrop_moves_a_file_between_one_users_devices_and_not_to_another_users() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    coordinator.cli_ok(&["users", "create", "bob"]);
    let alice_key = key(&coordinator, &["--reusable", "--pre-approved"]);
    let bob_key = coordinator
        .cli_ok(&["preauthkeys", "create", "--user", "bob", "--pre-approved"])
        .trim()
        .to_owned();
    let mut devices = Vec::new();
    for (name, key) in [
        ("phone", &alice_key),
        ("laptop", &alice_key),
        ("tv", &bob_key),
    ] {
        devices.push(join(&mut lab, name, &client, &coordinator, key));
    }
    let [phone, laptop, tv] = &devices[..] else {
        unreachable!("three devices")
    };
    let laptop_ip = laptop.ipv4(&lab).unwrap().to_string();
    let tv_ip = tv.ipv4(&lab).unwrap().to_string();

    // The laptop is a target once the phone's map has its peer API port;
    // bob's tv never is.
    wait_until(Duration::from_secs(20), || {
        let targets = phone.cli(&lab, &["file", "cp", "--targets"]);
        String::from_utf8_lossy(&targets.stdout).contains(&laptop_ip)
    })
    .unwrap_or_else(|| {
        let targets = phone.cli(&lab, &["file", "cp", "--targets"]);
        panic!(
            "the laptop is no Taildrop target: {}{}\nstatus: {:#}",
            String::from_utf8_lossy(&targets.stdout),
            String::from_utf8_lossy(&targets.stderr),
            phone.status(&lab).unwrap_or_default()
        )
    });
    let targets = phone.cli(&lab, &["file", "cp", "--targets"]);
    assert!(
        !String::from_utf8_lossy(&targets.stdout).contains(&tv_ip),
        "bob's device is not alice's target: {}",
        String::from_utf8_lossy(&targets.stdout)
    );

    // A photo, sent and received.
    let photo: Vec<u8> = (0..300_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let path = lab.dir.path().join("holiday.jpg");
    std::fs::write(&path, &photo).unwrap();
    let send = |to: &str| {
        phone.cli(
            &lab,
            &["file", "cp", path.to_str().unwrap(), &format!("{to}:")],
        )
    };
    let sent = send(&laptop_ip);
    assert!(
        sent.status.success(),
        "file cp: {}{}\nphone:\n{}",
        String::from_utf8_lossy(&sent.stdout),
        String::from_utf8_lossy(&sent.stderr),
        phone.daemon.log_text()
    );
    let inbox = lab.dir.path().join("laptop-downloads");
    std::fs::create_dir_all(&inbox).unwrap();
    let got = laptop.cli(&lab, &["file", "get", "--wait", inbox.to_str().unwrap()]);
    assert!(
        got.status.success(),
        "file get: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        std::fs::read(inbox.join("holiday.jpg")).unwrap(),
        photo,
        "the laptop has the photo, byte for byte"
    );

    // To another user's device: refused, and nothing arrives.
    let refused = send(&tv_ip);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("owned by a different user"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The apps show who is online: the laptop going down is seen by the
    // phone (and Taildrop, which sends to online peers only, says so).
    let online = |status: &serde_json::Value| {
        status["Peer"].as_object().and_then(|peers| {
            peers
                .values()
                .find(|peer| peer["HostName"] == "laptop")
                .and_then(|peer| peer["Online"].as_bool())
        })
    };
    assert_eq!(online(&phone.status(&lab).unwrap()), Some(true));
    let down = laptop.cli(&lab, &["down"]);
    assert!(down.status.success());
    wait_until(Duration::from_secs(10), || {
        online(&phone.status(&lab).unwrap_or_default()) == Some(false)
    })
    .unwrap_or_else(|| panic!("the phone still sees the laptop online"));
    let offline = send(&laptop_ip);
    assert!(
        String::from_utf8_lossy(&offline.stderr).contains("offline"),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
}

#[test]
fn split_dns_extra_records_and_search_domains_reach_the_apps() {
    if hearth_testkit::require_tools(&["dnsmasq", "dig"]).is_none() {
        return;
    }
    let Some(mut lab) = Lab::new() else {
        return;
    };
    let Some(client) = tailscale_client() else {
        return;
    };
    let hub = lab.host("hub");
    // The household's own DNS server for corp.example (a real one: dnsmasq),
    // beside the coordinator.
    let mut dnsmasq = lab.command(&hub, "dnsmasq");
    dnsmasq.args([
        "--keep-in-foreground",
        "--log-facility=-",
        "--log-queries",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--port=53",
        "--address=/corp.example/10.20.30.40",
    ]);
    dnsmasq.arg(format!("--listen-address={}", hub.address));
    let dns_server = lab.spawn(&hub, "dnsmasq", dnsmasq);
    wait_until(Duration::from_secs(10), || {
        dns_server.log_text().contains("started, version")
    })
    .unwrap_or_else(|| panic!("dnsmasq did not start:\n{}", dns_server.log_text()));

    let settings = lab.dir.path().join("dns.json");
    std::fs::write(
        &settings,
        format!(
            r#"{{"nameservers": {{"split": {{"corp.example": ["{}"]}}}},
                "search_domains": ["corp.example"],
                "extra_records": [{{"name": "nas.home.arpa", "type": "A", "value": "100.64.0.99"}}]}}"#,
            hub.address
        ),
    )
    .unwrap();
    let coordinator =
        lab.start_coordinator_with(&hub, &["--dns-config", settings.to_str().unwrap()]);
    coordinator.cli_ok(&["users", "create", "alice"]);
    let approved = key(&coordinator, &["--pre-approved", "--reusable"]);
    let phone = join(&mut lab, "phone", &client, &coordinator, &approved);
    let phone_ip = phone.ipv4(&lab).unwrap().to_string();

    // A hearth-agent device answers the same names at its own
    // 100.100.100.100, asked by a real DNS client.
    let server_host = lab.host("server");
    let token = lab.dir.path().join("server.token");
    std::fs::write(&token, &approved).unwrap();
    let agent = lab.start_agent(&server_host, &token, &[]);
    let server_ip = agent.wait_mesh_ipv4(Duration::from_secs(30)).to_string();
    let dig = |name: &str, kind: &str| {
        let output = lab
            .command(&server_host, "dig")
            .args([
                "@100.100.100.100",
                "+short",
                "+time=2",
                "+tries=1",
                name,
                kind,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    wait_until(Duration::from_secs(10), || {
        dig("phone.hearth.internal", "A") == phone_ip
    })
    .unwrap_or_else(|| {
        panic!(
            "the agent's MagicDNS: {:?}\nagent:\n{}",
            dig("phone.hearth.internal", "A"),
            agent.process.log_text()
        )
    });
    assert_eq!(dig("server.hearth.internal", "A"), server_ip);
    assert_eq!(dig("nas.home.arpa", "A"), "100.64.0.99");
    assert_eq!(
        dig("scanner.corp.example", "A"),
        "10.20.30.40",
        "split DNS through dnsmasq"
    );
    assert!(dns_server.log_text().contains("scanner.corp.example"));
    assert_eq!(dig("example.com", "A"), "", "nothing else is answered");

    let query = |name: &str| {
        let output = phone.cli(&lab, &["dns", "query", name, "A"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    // Split DNS: the phone's resolver asks the household's server.
    let answer = query("printer.corp.example");
    assert!(answer.contains("10.20.30.40"), "{answer}");
    assert!(
        dns_server.log_text().contains("printer.corp.example"),
        "dnsmasq answered it:\n{}",
        dns_server.log_text()
    );
    // An extra record, answered from the map.
    let answer = query("nas.home.arpa");
    assert!(answer.contains("100.64.0.99"), "{answer}");
    assert!(!dns_server.log_text().contains("nas.home.arpa"));
    // The search domains: MagicDNS's and the household's.
    let status = phone.cli(&lab, &["dns", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    let search = status
        .split("Search Domains:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    assert!(
        search.contains("- hearth.internal") && search.contains("- corp.example"),
        "{status}"
    );
}

#[test]
fn node_attrs_reach_the_apps_as_capabilities_and_funnel_is_refused() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let approved = key(&coordinator, &["--pre-approved"]);
    let phone = join(&mut lab, "phone", &client, &coordinator, &approved);
    let capabilities = |lab: &Lab| -> Vec<String> {
        phone.status(lab).unwrap_or_default()["Self"]["CapMap"]
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    };
    let docs = lab.dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let share = |lab: &Lab| phone.cli(lab, &["drive", "share", "docs", docs.to_str().unwrap()]);
    assert!(!capabilities(&lab).contains(&"drive:share".to_owned()));
    let refused = share(&lab);
    assert!(
        !refused.status.success(),
        "no Taildrive sharing without the attribute"
    );

    // A policy change gives alice's devices Taildrive sharing: the running
    // client hears it and can share.
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
            "nodeAttrs": [{"target": ["alice@"], "attr": ["drive:share", "drive:access"]}]}"#,
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    wait_until(Duration::from_secs(10), || {
        capabilities(&lab).contains(&"drive:share".to_owned())
    })
    .unwrap_or_else(|| panic!("capabilities: {:?}", capabilities(&lab)));
    let shared = share(&lab);
    assert!(
        shared.status.success(),
        "drive share: {}",
        String::from_utf8_lossy(&shared.stderr)
    );
    let list = phone.cli(&lab, &["drive", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("docs"));

    // Funnel cannot be offered: the policy is refused, saying why.
    std::fs::write(
        &policy,
        r#"{"nodeAttrs": [{"target": ["*"], "attr": ["funnel"]}]}"#,
    )
    .unwrap();
    let refused = coordinator.cli(&["policy", "set", policy.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("Funnel publishes a device on the internet"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn tailscale_ssh_lets_in_whom_the_policy_names_as_the_users_it_names() {
    if hearth_testkit::require_tools(&["ssh"]).is_none() {
        return;
    }
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    coordinator.cli_ok(&["users", "create", "bob"]);
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
            "ssh": [{"action": "accept", "src": ["alice@"], "dst": ["autogroup:self"], "users": ["root"]}]}"#,
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    let alice_key = key(&coordinator, &["--pre-approved", "--reusable"]);
    let bob_key = coordinator
        .cli_ok(&["preauthkeys", "create", "--user", "bob", "--pre-approved"])
        .trim()
        .to_owned();
    let laptop = join(&mut lab, "laptop", &client, &coordinator, &alice_key);
    let up = laptop.cli(&lab, &["set", "--ssh"]);
    assert!(
        up.status.success(),
        "tailscale set --ssh: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let phone = join(&mut lab, "phone", &client, &coordinator, &alice_key);
    let tv = join(&mut lab, "tv", &client, &coordinator, &bob_key);
    let laptop_ip = laptop.ipv4(&lab).unwrap().to_string();
    let ssh = |device: &hearth_testkit::TailscaleNode, user: &str| {
        let output = device
            .command(
                &lab,
                &[
                    "ssh",
                    &format!("{user}@{laptop_ip}"),
                    "echo",
                    "hello-from-laptop",
                ],
            )
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    // The phone (alice's) logs in as root once the laptop's host key has
    // reached its map.
    wait_until(Duration::from_secs(20), || ssh(&phone, "root").0).unwrap_or_else(|| {
        panic!(
            "alice's phone -> laptop: {}\nlaptop:\n{}",
            ssh(&phone, "root").1,
            laptop.daemon.log_text()
        )
    });
    assert!(ssh(&phone, "root").1.contains("hello-from-laptop"));
    // Not as another local user, and bob's device not at all.
    let (as_nobody, said) = ssh(&phone, "nobody");
    assert!(!as_nobody, "{said}");
    let (from_tv, said) = ssh(&tv, "root");
    assert!(!from_tv, "{said}");
}

#[test]
fn a_check_rule_holds_tailscale_ssh_until_an_admin_approves_it_from_the_cli() {
    if hearth_testkit::require_tools(&["ssh"]).is_none() {
        return;
    }
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
            "ssh": [{"action": "check", "src": ["alice@"], "dst": ["autogroup:self"],
                     "users": ["root"], "checkPeriod": "1h"}]}"#,
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    let alice_key = key(&coordinator, &["--pre-approved", "--reusable"]);
    let laptop = join(&mut lab, "laptop", &client, &coordinator, &alice_key);
    assert!(laptop.cli(&lab, &["set", "--ssh"]).status.success());
    let phone = join(&mut lab, "phone", &client, &coordinator, &alice_key);
    let tablet = join(&mut lab, "tablet", &client, &coordinator, &alice_key);
    let laptop_ip = laptop.ipv4(&lab).unwrap().to_string();
    // An SSH session in the background; its output once it ends.
    let start = |device: &hearth_testkit::TailscaleNode| {
        let child = device
            .command(
                &lab,
                &["ssh", &format!("root@{laptop_ip}"), "echo", "checked-in"],
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        ended
    };
    let waiting = || -> Vec<serde_json::Value> {
        serde_json::from_str(&coordinator.cli_ok(&["ssh", "checks", "--output", "json"])).unwrap()
    };
    let node_id = |name: &str| {
        coordinator
            .nodes()
            .iter()
            .find(|node| node["name"] == name)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };

    // The phone's session waits; the admin sees it and approves it.
    let session = start(&phone);
    wait_until(Duration::from_secs(30), || !waiting().is_empty())
        .unwrap_or_else(|| panic!("no check waits\nlaptop:\n{}", laptop.daemon.log_text()));
    let check = waiting().remove(0);
    assert_eq!(check["from"], node_id("phone"));
    assert_eq!(check["to"], node_id("laptop"));
    assert_eq!(check["local_user"], "root");
    assert!(
        session.recv_timeout(Duration::from_secs(2)).is_err(),
        "held until the admin decides"
    );
    let id = check["id"].to_string();
    coordinator.cli_ok(&["ssh", "approve", &id]);
    let output = session
        .recv_timeout(Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("checked-in"),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Within the check period the phone gets in without asking again.
    let again = start(&phone)
        .recv_timeout(Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(again.status.success());
    assert!(waiting().is_empty());

    // The tablet's session is its own check; denied, it is turned away.
    let session = start(&tablet);
    wait_until(Duration::from_secs(30), || !waiting().is_empty()).expect("the tablet's check");
    let id = waiting()[0]["id"].to_string();
    coordinator.cli_ok(&["ssh", "deny", &id]);
    let output = session
        .recv_timeout(Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("checked-in"));
}

/// Signs in at `url` (a device's login URL) as `login` in a fresh browser
/// profile through the driver at `port`: the coordinator's page, the
/// provider's login and consent pages (as they come: a browser signed in
/// at the provider skips its login), and back. The text the coordinator's
/// last page shows (`#joined` or `#why`), or what the browser showed
/// instead. Chromium aborts a page it is loading when it sees its network
/// change (ERR_NETWORK_CHANGED, which a lab namespace can show while its
/// addresses settle); a person starts again from the device's link, and so
/// does this, twice at most.
fn sign_in_in_a_browser(
    port: u16,
    profile: &std::path::Path,
    url: &str,
    login: &str,
) -> Result<String, String> {
    use hearth_testkit::webdriver::Session;
    let step = |what: &'static str| move |error: String| format!("{what}: {error}");
    // The hub's and the provider's certificates are self-signed; the
    // browser stands in for one that trusts them.
    let browser = Session::chromium_with(port, profile, 900, 800, &["--ignore-certificate-errors"])
        .map_err(step("no browser"))?;
    let limit = Duration::from_secs(30);
    let where_now = "if (document.body && document.body.innerText.includes('ERR_NETWORK_CHANGED')) \
           return 'network changed'; \
         const done = document.getElementById('joined') || document.getElementById('why'); \
         if (done) return 'done:' + done.textContent; \
         if (document.querySelector('input[name=prompt][value=consent]')) return 'consent'; \
         if (document.querySelector('input[name=login]')) return 'login'; \
         if (document.getElementById('sign-in')) return 'device'; \
         return false";
    let mut restarts = 0;
    let mut logged_in = false;
    // The pages seen so far, for the message when a step fails.
    let mut seen: Vec<String> = Vec::new();
    browser.open(url).map_err(step("the device's link"))?;
    loop {
        let page = browser
            .wait_for(where_now, limit)
            .map_err(|error| format!("no page this sign-in knows after {seen:?}: {error}"))?;
        let page = page.as_str().unwrap_or_default().to_owned();
        seen.push(page.clone());
        match page.as_str() {
            "network changed" if restarts < 2 => {
                restarts += 1;
                browser.open(url).map_err(step("the device's link again"))?;
            }
            "network changed" => return Err("the browser's network changed three times".into()),
            "device" => browser
                .click("#sign-in")
                .map_err(step("the sign-in button"))?,
            "login" if !logged_in => {
                browser
                    .type_into("input[name=login]", login)
                    .and_then(|()| browser.type_into("input[name=password]", "any"))
                    .and_then(|()| browser.click("button[type=submit]"))
                    .map_err(step("the login form"))?;
                logged_in = true;
            }
            "login" => return Err("the provider asked for the login again".into()),
            "consent" => browser
                .click("button[type=submit]")
                .map_err(step("the consent form"))?,
            done => {
                return done
                    .strip_prefix("done:")
                    .map(str::to_owned)
                    .ok_or_else(|| format!("an unknown page: {done}"));
            }
        }
        // The page moves on; wait for it to leave this one.
        let left = format!("const now = (() => {{ {where_now} }})(); return now !== {page:?}");
        browser
            .wait_for(&left, limit)
            .map_err(step("the page did not move on"))?;
    }
}

/// A lab for signing in: a real OpenID Connect provider (npm's
/// `oidc-provider`, OpenID Certified) over HTTPS in host `hub` with
/// `accounts` (its clock `ahead` seconds ahead), a coordinator there using
/// it (`--oidc-config` with `config`'s fields added), and chromedriver on
/// a host of its own. The person's browser is on a host of its own: on a
/// host whose tailscaled is configuring its interface and routes, Chromium
/// aborts the page it is loading with ERR_NETWORK_CHANGED (as a phone's
/// does when its VPN comes up; a person reloads, a test would not).
struct SignInLab {
    lab: Lab,
    client: std::path::PathBuf,
    coordinator: hearth_testkit::LabCoordinator,
    /// The coordinator's login URL base (`https://HUB:8443`).
    login: String,
    driver: hearth_testkit::webdriver::Driver,
    /// Where each person's browser profile is kept.
    profiles: std::path::PathBuf,
    _provider: hearth_testkit::identity_provider::IdentityProvider,
}

impl SignInLab {
    fn start(
        accounts: serde_json::Value,
        config: serde_json::Value,
        ahead: u64,
    ) -> Option<SignInLab> {
        use hearth_testkit::identity_provider::{self, Client};
        hearth_testkit::require_tools(&["chromium", "chromedriver"])?;
        let mut lab = Lab::new()?;
        let client = tailscale_client()?;
        let hub = lab.host("hub");
        let login = format!("https://{}:8443", hub.address);
        let secret = lab.dir.path().join("oidc-client-secret");
        std::fs::write(&secret, hex::encode(rand::random::<[u8; 24]>())).unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let redirect = format!("{login}/oidc/callback");
        let provider = identity_provider::start_with_clock(
            &mut lab,
            &hub,
            &Client {
                id: "hearth",
                secret_file: &secret,
                redirect_uri: &redirect,
            },
            &accounts,
            ahead,
        )?;
        let mut settings = serde_json::json!({
            "issuer": provider.issuer,
            "client_id": "hearth",
            "client_secret_file": secret,
            "scopes": ["profile", "email", "groups"],
            "groups_claim": "groups",
            "ca_file": provider.certificate,
        });
        for (key, value) in config.as_object().into_iter().flatten() {
            settings[key] = value.clone();
        }
        let path = lab.dir.path().join("oidc.json");
        std::fs::write(&path, settings.to_string()).unwrap();
        let coordinator =
            lab.start_coordinator_with(&hub, &["--oidc-config", path.to_str().unwrap()]);
        let browser_host = lab.host("browser");
        let driver = hearth_testkit::webdriver::start_driver(&mut lab, &browser_host);
        let profiles = lab.dir.path().join("browser-profiles");
        Some(SignInLab {
            lab,
            client,
            coordinator,
            login,
            driver,
            profiles,
            _provider: provider,
        })
    }

    /// A new device `name` running `tailscale up` without a key: the device,
    /// the running `up`, and its login URL.
    fn device_waiting(
        &mut self,
        name: &str,
    ) -> (hearth_testkit::TailscaleNode, std::process::Child, String) {
        let host = self.lab.host(name);
        let device = self
            .lab
            .start_tailscaled(&host, &self.coordinator, &self.client);
        let (up, url) = up_without_a_key(&self.lab, &device, &self.login);
        (device, up, url)
    }

    /// `login` signs in at `url` in their own browser profile: what the
    /// coordinator's last page says.
    fn sign_in(&self, url: &str, login: &str) -> String {
        sign_in_in_a_browser(
            self.driver.forward.port,
            &self.profiles.join(login),
            url,
            login,
        )
        .unwrap_or_else(|error| panic!("{login} signing in: {error}\n{}", self.lab.logs()))
    }
}

/// Sign-in through the household's identity provider ([`SignInLab`]): a
/// phone without a key shows its login URL; the person opens it in a real
/// Chromium, confirms the device, signs in at the provider and consents;
/// the device joins as their user (made at the first sign-in), approved.
/// The provider's groups fill the policy's group of the same name: ada (in
/// `family`) reaches alice's laptop, ben (in `guests`) does not; eve (in
/// neither allowed group) is refused and her device keeps waiting. A
/// callback not started in the same browser is refused.
#[test]
fn devices_join_by_signing_in_with_the_households_provider_whose_groups_fill_the_policy() {
    let accounts = serde_json::json!({
        "ada": {"groups": ["family", "readers"]},
        "ben": {"groups": ["guests"]},
        "eve": {"groups": ["neighbours"]},
    });
    let Some(mut signing) = SignInLab::start(
        accounts,
        serde_json::json!({"allowed_groups": ["family", "guests"]}),
        0,
    ) else {
        return;
    };
    signing.coordinator.cli_ok(&["users", "create", "alice"]);
    // Only the family may reach alice's laptop; `group:family` lists no
    // one itself: the provider fills it.
    let policy = signing.lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"groups": {"group:family": []},
            "acls": [{"action": "accept", "src": ["group:family"], "dst": ["alice@:*"]}]}"#,
    )
    .unwrap();
    signing
        .coordinator
        .cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    let laptop_key = key(&signing.coordinator, &["--pre-approved"]);
    let laptop = join(
        &mut signing.lab,
        "laptop",
        &signing.client.clone(),
        &signing.coordinator,
        &laptop_key,
    );
    let lab = &signing.lab;
    assert!(laptop.peer_dns_names(lab).is_empty());

    // A callback this browser did not start is refused (login CSRF).
    let forged = lab.exec(
        &laptop.host,
        &[
            "curl",
            "-sk",
            &format!(
                "{}/oidc/callback?state=someone-elses&code=abc",
                signing.login
            ),
        ],
    );
    assert!(
        String::from_utf8_lossy(&forged.stdout).contains("not started in this browser"),
        "{}",
        String::from_utf8_lossy(&forged.stdout)
    );

    // ada signs in on her phone: it joins as hers, and the family rule
    // lets it reach alice's laptop.
    let (phone, mut up, url) = signing.device_waiting("phone");
    let said = signing.sign_in(&url, "ada");
    let lab = &signing.lab;
    assert!(
        said.contains("phone joined the network as ada's device"),
        "{said}"
    );
    assert!(up.wait().unwrap().success(), "tailscale up on the phone");
    assert_eq!(phone.backend_state(lab), "Running");
    let nodes = signing.coordinator.nodes();
    let phone_node = nodes.iter().find(|node| node["name"] == "phone").unwrap();
    assert_eq!(phone_node["user"], "ada");
    assert_eq!(phone_node["state"], "approved");
    wait_until(Duration::from_secs(20), || {
        laptop
            .peer_dns_names(lab)
            .iter()
            .any(|name| name.starts_with("phone."))
    })
    .unwrap_or_else(|| {
        panic!(
            "the laptop never saw ada's phone: {:?}",
            laptop.peer_dns_names(lab)
        )
    });
    let laptop_ip = laptop.ipv4(lab).unwrap().to_string();
    let ping = phone.cli(lab, &["ping", "--c", "3", "--timeout", "10s", &laptop_ip]);
    assert!(
        String::from_utf8_lossy(&ping.stdout).contains("pong"),
        "ada's phone reaches the laptop: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // ben (a guest) signs in on a tablet: it joins as his, sees nobody and
    // nobody sees it.
    let (tablet, mut up, url) = signing.device_waiting("tablet");
    let said = signing.sign_in(&url, "ben");
    let lab = &signing.lab;
    assert!(
        said.contains("tablet joined the network as ben's device"),
        "{said}"
    );
    assert!(up.wait().unwrap().success(), "tailscale up on the tablet");
    assert_eq!(tablet.backend_state(lab), "Running");
    assert!(
        tablet.peer_dns_names(lab).is_empty(),
        "{:?}",
        tablet.peer_dns_names(lab)
    );
    assert!(
        !laptop
            .peer_dns_names(lab)
            .iter()
            .any(|name| name.starts_with("tablet.")),
        "{:?}",
        laptop.peer_dns_names(lab)
    );

    // eve is in no allowed group: refused, and her device still waits.
    let (other, mut up, url) = signing.device_waiting("other");
    let said = signing.sign_in(&url, "eve");
    assert!(said.contains("eve is not allowed to add devices"), "{said}");
    assert_eq!(other.backend_state(&signing.lab), "NeedsLogin");
    let _ = up.kill();
    let _ = up.wait();

    let users = signing.coordinator.cli_ok(&["users", "list"]);
    assert!(users.contains("ada") && users.contains("ben"), "{users}");
    assert!(
        !users.contains("eve"),
        "a refused person gets no user: {users}"
    );
    assert_eq!(
        signing.coordinator.nodes().len(),
        3,
        "laptop, phone, tablet"
    );
}

/// Serves `pages` (file name -> HTML) over plain HTTP on port 8000 of a
/// new host `name`: another site, as far as a browser can tell. Its base
/// URL.
fn another_site(lab: &mut Lab, name: &str, pages: &[(&str, String)]) -> String {
    let host = lab.host(name);
    let dir = lab.dir.path().join(format!("{name}-pages"));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, html) in pages {
        std::fs::write(dir.join(file), html).unwrap();
    }
    let address = host.address.to_string();
    let mut command = lab.command(&host, "python3");
    command
        .args([
            "-u",
            "-m",
            "http.server",
            "8000",
            "--bind",
            &address,
            "--directory",
        ])
        .arg(&dir);
    let server = lab.spawn(&host, &format!("{name}-site"), command);
    wait_until(Duration::from_secs(20), || {
        server.log_text().contains("Serving HTTP")
    })
    .unwrap_or_else(|| panic!("the other site did not start:\n{}", server.log_text()));
    format!("http://{address}:8000")
}

/// Whether a device (by name) has joined the network.
fn joined(coordinator: &hearth_testkit::LabCoordinator, name: &str) -> bool {
    coordinator.nodes().iter().any(|node| node["name"] == name)
}

/// The review's attacks on signing in (issue 41), each failing before its
/// fix: a page on another site sends ada's browser, signed in at the
/// provider, to the sign-in of the attacker's device (by a link it opens
/// for her, and by a form it sends), and the provider's single sign-on
/// would complete it; an account whose provider name is `alice` would
/// claim the user an admin made for alice, and one named `assistant`
/// would become the assistant's name; one address begins the sign-in of
/// one link 256 times to fill every slot. After them the real alice, whom
/// the admin linked by her email address, signs in as alice.
#[test]
fn signing_in_resists_other_sites_chosen_names_and_a_flood_of_one_link() {
    let accounts = serde_json::json!({
        "ada": {"groups": ["family"]},
        // Anyone may choose their name at many providers.
        "mallory": {"username": "alice", "email": "mallory@evil.example"},
        "helper": {"username": "assistant"},
        "alice-smith": {"username": "alice.smith", "email": "Alice@Home.Example"},
    });
    let Some(mut signing) = SignInLab::start(accounts, serde_json::json!({}), 0) else {
        return;
    };
    signing
        .coordinator
        .cli_ok(&["users", "create", "alice", "--email", "alice@home.example"]);

    // ada joins her phone, and her browser keeps her provider session.
    let (_phone, mut up, url) = signing.device_waiting("phone");
    let said = signing.sign_in(&url, "ada");
    assert!(
        said.contains("joined the network as ada's device"),
        "{said}"
    );
    assert!(up.wait().unwrap().success());

    // The attacker's device waits for a sign-in; their site sends ada's
    // browser to it: a page that moves on to the old sign-in link, and one
    // that sends the device page's form.
    let (_evil, mut evil_up, evil_url) = signing.device_waiting("evil");
    let evil_sign_in = format!("{evil_url}/sign-in");
    let site = another_site(
        &mut signing.lab,
        "evil-site",
        &[
            (
                "link.html",
                format!(
                    "<!doctype html><meta http-equiv=\"refresh\" content=\"0;url={evil_sign_in}\">\
                     <p id=\"lure\">Loading…</p>"
                ),
            ),
            (
                "form.html",
                format!(
                    "<!doctype html><form method=\"post\" action=\"{evil_sign_in}\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"guess\"></form>\
                     <script>document.forms[0].submit()</script>"
                ),
            ),
        ],
    );
    for page in ["link.html", "form.html"] {
        let browser = hearth_testkit::webdriver::Session::chromium_with(
            signing.driver.forward.port,
            &signing.profiles.join("ada"),
            900,
            800,
            &["--ignore-certificate-errors"],
        )
        .unwrap();
        browser.open(&format!("{site}/{page}")).unwrap();
        // Where the browser ends up: the device's page (its form not sent),
        // a refusal, or (before the fix) the page saying it joined.
        let landed = browser
            .wait_for(
                "const done = document.getElementById('joined') || document.getElementById('why') \
                   || document.getElementById('sign-in'); \
                 return done ? done.id + ': ' + document.body.textContent : false",
                Duration::from_secs(30),
            )
            .unwrap_or_else(|error| panic!("{page}: {error}\n{}", signing.lab.logs()));
        let landed = landed.as_str().unwrap_or_default().to_owned();
        drop(browser);
        assert!(
            !landed.starts_with("joined"),
            "{page}: the attacker's device joined as ada's: {landed}"
        );
        assert!(
            !joined(&signing.coordinator, "evil"),
            "{page}: the attacker's device joined"
        );
    }

    // The flood: one address opens the link of one device 256 times (the
    // link, and the device page's form with a token it got itself).
    let (_flooded, mut flooded_up, flooded_url) = signing.device_waiting("flooded");
    let flooder = signing.lab.host("flooder");
    let jar = signing.lab.dir.path().join("flooder-cookies");
    let script = format!(
        "page='{flooded_url}'; jar='{jar}'; \
         token=$(curl -sk -c \"$jar\" \"$page\" | grep -o 'name=\"csrf\" value=\"[0-9a-f]*\"' | cut -d'\"' -f4); \
         began=0; for i in $(seq 256); do \
           curl -sk -o /dev/null \"$page/sign-in\"; \
           code=$(curl -sk -o /dev/null -w '%{{http_code}}' -b \"$jar\" -H \"Origin: {origin}\" \
             --data \"csrf=$token\" \"$page/sign-in\"); \
           [ \"$code\" = 303 ] && began=$((began+1)); \
         done; echo began=$began",
        jar = jar.display(),
        origin = signing.login,
    );
    let flood = signing.lab.exec(&flooder, &["sh", "-c", &script]);
    let said = String::from_utf8_lossy(&flood.stdout).to_string();
    let began: usize = said
        .trim()
        .strip_prefix("began=")
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the flood: {said} {}",
                String::from_utf8_lossy(&flood.stderr)
            )
        });
    assert!(began >= 1, "the device's own page still begins a sign-in");
    assert!(began <= 4, "one link began {began} sign-ins");
    let _ = flooded_up.kill();
    let _ = flooded_up.wait();

    // mallory, whom the provider calls alice, cannot take the user alice
    // the admin made; an account called `assistant` gets no user.
    let (_mallorys, mut up, url) = signing.device_waiting("mallorys");
    let said = signing.sign_in(&url, "mallory");
    assert!(
        said.contains("the user alice exists already and is not linked"),
        "{said}"
    );
    let _ = up.kill();
    let _ = up.wait();
    let (_helpers, mut up, url) = signing.device_waiting("helpers");
    let said = signing.sign_in(&url, "helper");
    assert!(said.contains("cannot be a user name"), "{said}");
    let _ = up.kill();
    let _ = up.wait();

    // The real alice signs in with the address the admin recorded, after
    // the flood: her device joins as alice.
    let (_alices, mut up, url) = signing.device_waiting("alices");
    let said = signing.sign_in(&url, "alice-smith");
    assert!(
        said.contains("alices joined the network as alice's device"),
        "{said}"
    );
    assert!(up.wait().unwrap().success());

    let users = signing
        .coordinator
        .cli_ok(&["users", "list", "--output", "json"]);
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|user| user["name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "ada"], "no user for mallory or the helper");
    assert!(!joined(&signing.coordinator, "evil"));
    let _ = evil_up.kill();
    let _ = evil_up.wait();
}

/// An ID token issued a day ahead (a provider whose clock runs ahead, or
/// one whose key someone holds, minting tokens for later) is refused.
#[test]
fn an_id_token_from_the_future_is_refused() {
    let accounts = serde_json::json!({"ada": {"groups": []}});
    let Some(mut signing) = SignInLab::start(accounts, serde_json::json!({}), 86_400) else {
        return;
    };
    let (device, mut up, url) = signing.device_waiting("phone");
    let said = signing.sign_in(&url, "ada");
    assert!(
        said.contains("issued") && said.contains("in the future"),
        "{said}"
    );
    assert_eq!(device.backend_state(&signing.lab), "NeedsLogin");
    assert!(!joined(&signing.coordinator, "phone"));
    let _ = up.kill();
    let _ = up.wait();
}

/// Certificates from an ACME CA, Let's Encrypt's test server Pebble in its
/// own host, which checks DNS-01 challenges by asking the coordinator's
/// DNS server (as Let's Encrypt would through the household's delegation):
/// the coordinator gets a certificate for its own name and serves it to
/// whoever asks for that name, so official clients that trust only
/// Pebble's root (not the coordinator's own certificate) log in at
/// `https://hub.home.example`, while an agent, which pins the
/// coordinator's own certificate, still joins by the same name; then
/// `tailscale cert` gets the laptop a certificate Pebble issued for its
/// MagicDNS name (the client publishing its challenge through the
/// coordinator), and `tailscale serve` serves HTTPS with it, which the
/// phone fetches checking it against Pebble's root.
#[test]
fn the_coordinator_and_its_devices_get_certificates_from_an_acme_ca() {
    if hearth_testkit::require_tools(&["pebble", "curl", "python3"]).is_none() {
        return;
    }
    let Some(mut lab) = Lab::new() else {
        return;
    };
    let Some(client) = tailscale_client() else {
        return;
    };
    let hub = lab.host("hub");
    let ca = lab.host("ca");
    // Public DNS, as the household's provider would answer it.
    lab.name_hosts(&[("hub.home.example", hub.address)]);
    let dns = std::net::SocketAddr::from((hub.address, 53));
    let Some(pebble) = hearth_testkit::acme_ca::start(&mut lab, &ca, dns) else {
        return;
    };
    let config = lab.dir.path().join("acme.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "directory": pebble.directory,
            "terms_of_service_agreed": true,
            "contact": ["admin@home.example"],
            "domain": "hub.home.example",
            "dns_listen": [dns.to_string()],
            "ca_file": pebble.tls_certificate,
        })
        .to_string(),
    )
    .unwrap();
    let login = "https://hub.home.example:8443";
    let coordinator = lab.start_coordinator_with(
        &hub,
        &[
            "--public-url",
            login,
            "--base-domain",
            "ts.home.example",
            "--acme-config",
            config.to_str().unwrap(),
        ],
    );
    wait_until(Duration::from_secs(90), || {
        coordinator
            .process
            .log_text()
            .contains("certificate obtained from the ACME CA")
    })
    .unwrap_or_else(|| {
        panic!(
            "no certificate for the coordinator:\n{}\nPebble:\n{}",
            coordinator.process.log_text(),
            pebble.process.log_text()
        )
    });
    // Trust Pebble's root (made at its start) and its own listeners' certificate.
    let root = lab.dir.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.root(&lab, &ca)).unwrap();
    let trust = lab.dir.path().join("trust.pem");
    std::fs::write(
        &trust,
        format!(
            "{}{}",
            std::fs::read_to_string(&root).unwrap(),
            std::fs::read_to_string(&pebble.tls_certificate).unwrap()
        ),
    )
    .unwrap();
    let root_path = root.to_str().unwrap();
    // Whoever asks for the coordinator's name gets Pebble's certificate.
    let key_page = lab.try_exec(
        &ca,
        &[
            "curl",
            "-sS",
            "--cacert",
            root_path,
            &format!("{login}/key?v=133"),
        ],
    );
    assert!(
        key_page.status.success(),
        "the coordinator's name is served a certificate from Pebble's root: {}",
        String::from_utf8_lossy(&key_page.stderr)
    );

    coordinator.cli_ok(&["users", "create", "alice"]);
    let alice_key = key(&coordinator, &["--reusable", "--pre-approved"]);
    // An agent pins the coordinator's own certificate and joins by the
    // same name.
    let token = lab.dir.path().join("agent.token");
    std::fs::write(&token, &alice_key).unwrap();
    let nas = lab.host("nas");
    let agent = lab.start_agent(&nas, &token, &[]);
    agent.wait_mesh_ipv4(Duration::from_secs(30));

    // Official clients trusting Pebble (not the coordinator's own
    // certificate) log in by name; they ask Pebble for certificates.
    let acme_directory = pebble.directory.clone();
    let env = [("TS_DEBUG_ACME_DIRECTORY_URL", acme_directory.as_str())];
    let mut devices = Vec::new();
    for (name, extra) in [
        ("laptop", &[][..]),
        ("phone", &["--socks5-server=127.0.0.1:1055"][..]),
    ] {
        let host = lab.host(name);
        let device = lab.start_tailscaled_with(&host, Some(trust.clone()), &client, extra, &env);
        up_ok(&lab, &device, login, &alice_key);
        devices.push(device);
    }
    let [laptop, phone] = &devices[..] else {
        unreachable!("two devices")
    };
    // They meet only through the coordinator's relay, at its name: its
    // certificate, Pebble's, is checked as any other, not pinned.
    drop_udp_between(&lab, &laptop.host, &phone.host);
    pings_through_the_relay(&lab, phone, laptop);

    // `tailscale cert` for the laptop's MagicDNS name.
    let domain = "laptop.ts.home.example";
    let cert_file = lab.dir.path().join("laptop.crt");
    let key_file = lab.dir.path().join("laptop.key");
    let cert = laptop.cli(
        &lab,
        &[
            "cert",
            "--cert-file",
            cert_file.to_str().unwrap(),
            "--key-file",
            key_file.to_str().unwrap(),
            domain,
        ],
    );
    assert!(
        cert.status.success(),
        "tailscale cert: {}{}\ntailscaled:\n{}\ncoordinator:\n{}",
        String::from_utf8_lossy(&cert.stdout),
        String::from_utf8_lossy(&cert.stderr),
        laptop.daemon.log_text(),
        coordinator.process.log_text()
    );
    let chain = std::fs::read_to_string(&cert_file).unwrap();
    assert!(chain.matches("BEGIN CERTIFICATE").count() >= 2, "{chain}");
    let names = lab.exec(
        &laptop.host,
        &[
            "openssl",
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            cert_file.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&names.stdout).contains(&format!("DNS:{domain}")),
        "{}",
        String::from_utf8_lossy(&names.stdout)
    );
    // Another device's name is not the laptop's to ask for.
    let other = laptop.cli(&lab, &["cert", "phone.ts.home.example"]);
    assert!(!other.status.success());

    // `tailscale serve` over HTTPS with that certificate; the phone
    // fetches through the mesh, checking it against Pebble's root.
    web_server(
        &mut lab,
        &laptop.host,
        "127.0.0.1",
        8080,
        "served by the laptop\n",
    );
    let serve = laptop.cli(&lab, &["serve", "--bg", "http://127.0.0.1:8080"]);
    assert!(
        serve.status.success(),
        "tailscale serve: {}{}",
        String::from_utf8_lossy(&serve.stdout),
        String::from_utf8_lossy(&serve.stderr)
    );
    let url = format!("https://{domain}/hello.txt");
    let mut fetched = Vec::new();
    wait_until(Duration::from_secs(30), || {
        let output = lab.try_exec(
            &phone.host,
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--socks5-hostname",
                "127.0.0.1:1055",
                "--cacert",
                root_path,
                &url,
            ],
        );
        fetched = output.stdout;
        output.status.success()
    })
    .unwrap_or_else(|| {
        panic!(
            "the phone never fetched {url}:\nlaptop:\n{}",
            laptop.daemon.log_text()
        )
    });
    assert_eq!(String::from_utf8_lossy(&fetched), "served by the laptop\n");
}

/// A web server in `host`'s namespace on `bind`, port `port`, whose
/// `/hello.txt` says `text`; waited for until it answers.
fn web_server(lab: &mut Lab, host: &hearth_testkit::Host, bind: &str, port: u16, text: &str) {
    let site = lab.dir.path().join(format!("{}-site", host.name));
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), text).unwrap();
    let mut server = lab.command(host, "python3");
    server
        .args(["-m", "http.server", &port.to_string(), "--bind", bind])
        .arg("--directory")
        .arg(&site);
    let label = format!("{}-web", host.name);
    let web = lab.spawn(host, &label, server);
    let url = format!("http://127.0.0.1:{port}/hello.txt");
    wait_until(Duration::from_secs(20), || {
        lab.try_exec(host, &["curl", "-sf", &url]).status.success()
    })
    .unwrap_or_else(|| panic!("{label} did not start:\n{}", web.log_text()));
}

/// What an app on `device` gets at `http://chat.hearth.internal/hello.txt`:
/// the name resolved by the device's MagicDNS (`tailscale dns query`),
/// then fetched from that address through its client (SOCKS5: userspace
/// networking here; the proxy resolves the name itself too, see the
/// test's use of `fetch_through` by name). `None` when the name does not
/// resolve or nothing answers.
fn reach_chat(lab: &Lab, device: &hearth_testkit::TailscaleNode) -> Option<String> {
    let query = device.cli(lab, &["dns", "query", "chat.hearth.internal", "A"]);
    let answer = String::from_utf8_lossy(&query.stdout).into_owned();
    let address = answer
        .split_whitespace()
        .find(|word| word.parse::<std::net::Ipv4Addr>().is_ok())?;
    fetch_through(lab, device, &format!("http://{address}/hello.txt"))
}

/// What `url` gives `device` through its client's SOCKS5 proxy; `None`
/// when it cannot fetch it.
fn fetch_through(lab: &Lab, device: &hearth_testkit::TailscaleNode, url: &str) -> Option<String> {
    let output = lab.try_exec(
        &device.host,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--socks5-hostname",
            "127.0.0.1:1055",
            url,
        ],
    );
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_phone_reaches_the_households_chat_by_its_service_name_wherever_the_admin_hosts_it() {
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    coordinator.cli_ok(&["users", "create", "bob"]);
    // alice's devices may reach svc:chat on port 80; bob's may not. Hub
    // devices (tag:hub) may host it when they advertise it.
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(&policy, hearth_testkit::CHAT_SERVICE_POLICY).unwrap();
    coordinator.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    // Setting the policy created the service, with its own addresses.
    let listed = |coordinator: &hearth_testkit::LabCoordinator| -> serde_json::Value {
        serde_json::from_str(&coordinator.cli_ok(&["services", "list", "-o", "json"])).unwrap()
    };
    let services = listed(&coordinator);
    assert_eq!(services[0]["name"], "svc:chat", "{services}");
    assert_eq!(services[0]["dns_name"], "chat.hearth.internal");
    assert_eq!(services[0]["placed"], "none");
    let addresses = services[0]["addresses"].clone();
    assert_eq!(addresses[0], "100.100.0.1", "{services}");

    let hub_key = key(&coordinator, &["--pre-approved", "--tags", "tag:hub"]);
    let den_key = key(&coordinator, &["--pre-approved", "--tags", "tag:hub"]);
    let phone_key = key(&coordinator, &["--pre-approved"]);
    let guest_key = coordinator
        .cli_ok(&["preauthkeys", "create", "--user", "bob", "--pre-approved"])
        .trim()
        .to_owned();
    let hub = join(&mut lab, "hub-device", &client, &coordinator, &hub_key);
    let den = join(&mut lab, "den", &client, &coordinator, &den_key);
    let login = format!("https://{}", coordinator.address);
    let socks = ["--socks5-server=127.0.0.1:1055"];
    let mut phones = Vec::new();
    for (name, key) in [("phone", &phone_key), ("guest", &guest_key)] {
        let host = lab.host(name);
        let certificate = coordinator.state.join("tls/server.crt");
        let device = lab.start_tailscaled_with(&host, Some(certificate), &client, &socks, &[]);
        // Attack (hardening round five, finding 1): bob's device asks to
        // be called "chat", the household's chat's name.
        let hostname = if name == "guest" { "chat" } else { name };
        let up = device.up_as(&lab, &login, key, hostname, &["--timeout", "30s"]);
        assert!(
            up.status.success(),
            "tailscale up {name}: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        phones.push(device);
    }
    let [phone, guest] = &phones[..] else {
        unreachable!("two phones")
    };
    web_server(
        &mut lab,
        &hub.host,
        "127.0.0.1",
        8080,
        "served by the hub\n",
    );
    web_server(
        &mut lab,
        &den.host,
        "127.0.0.1",
        8080,
        "served by the den\n",
    );

    // The hub serves the household's chat as svc:chat.
    let serve = |device: &hearth_testkit::TailscaleNode| {
        let output = device.cli(
            &lab,
            &[
                "serve",
                "--service=svc:chat",
                "--bg",
                "--http=80",
                "http://127.0.0.1:8080",
            ],
        );
        assert!(
            output.status.success(),
            "tailscale serve on {}: {}{}",
            device.host.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    serve(&hub);
    let mut said = None;
    wait_until(Duration::from_secs(60), || {
        said = reach_chat(&lab, phone);
        said.is_some()
    })
    .unwrap_or_else(|| {
        panic!(
            "the phone never reached chat.hearth.internal: {}\nhub:\n{}\nphone:\n{}",
            listed(&coordinator),
            hub.daemon.log_text(),
            phone.daemon.log_text(),
        )
    });
    assert_eq!(said.as_deref(), Some("served by the hub\n"));
    // Bob's device asked for "chat" and is "chat-2": the name is the
    // service's, and the phone's resolver answers it with the service's
    // address alone, on IPv4 (finding 17: the hub's pod publishes there).
    let bobs = guest.status(&lab).unwrap();
    assert_eq!(bobs["Self"]["DNSName"], "chat-2.hearth.internal.", "{bobs}");
    let answered = |kind: &str| {
        let query = phone.cli(&lab, &["dns", "query", "chat.hearth.internal", kind]);
        String::from_utf8_lossy(&query.stdout)
            .split_whitespace()
            .filter(|word| word.parse::<std::net::IpAddr>().is_ok())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(answered("A"), ["100.100.0.1"]);
    assert!(answered("AAAA").is_empty(), "{:?}", answered("AAAA"));
    // Finding 16: an app the client carries through its SOCKS5 proxy
    // reaches the service by its name (the proxy resolves it too).
    assert_eq!(
        fetch_through(&lab, phone, "http://chat.hearth.internal/hello.txt").as_deref(),
        Some("served by the hub\n")
    );
    let services = listed(&coordinator);
    assert_eq!(services[0]["host"], "hub-device", "{services}");
    assert_eq!(services[0]["placed"], "approved");
    // At the service's own address too, not the hub's.
    assert_eq!(
        fetch_through(&lab, phone, "http://100.100.0.1/hello.txt").as_deref(),
        Some("served by the hub\n")
    );
    // bob's phone is not granted the service: neither its name nor its
    // address reaches it.
    assert_eq!(reach_chat(&lab, guest), None);
    assert_eq!(
        fetch_through(&lab, guest, "http://100.100.0.1/hello.txt"),
        None
    );

    // The den advertises it too; the admin moves it there. The phone
    // changes nothing and reaches the den at the same name and address.
    serve(&den);
    wait_until(Duration::from_secs(30), || {
        listed(&coordinator)[0]["advertised_by"]
            .as_array()
            .is_some_and(|devices| devices.len() == 2)
    })
    .unwrap_or_else(|| panic!("the den never advertised it: {}", listed(&coordinator)));
    coordinator.cli_ok(&["services", "move", "svc:chat", "--to", "den"]);
    let services = listed(&coordinator);
    assert_eq!(services[0]["host"], "den", "{services}");
    assert_eq!(services[0]["placed"], "chosen");
    assert_eq!(services[0]["addresses"], addresses);
    let mut said = None;
    wait_until(Duration::from_secs(60), || {
        said = reach_chat(&lab, phone);
        said.as_deref() == Some("served by the den\n")
    })
    .unwrap_or_else(|| panic!("the phone never reached the den: {said:?}"));
    assert_eq!(reach_chat(&lab, guest), None);
}

/// A device `name` whose agent (joined with `token`) advertises svc:chat,
/// and a web server on every address of its own (the lab stops it) whose
/// `/hello.txt` says "served by the {who}".
fn chat_host_agent(
    lab: &mut Lab,
    name: &str,
    token: &std::path::Path,
    who: &str,
) -> (hearth_testkit::Host, hearth_testkit::Agent) {
    let host = lab.host(name);
    web_server(lab, &host, "0.0.0.0", 80, &format!("served by the {who}\n"));
    let agent = lab.start_agent(
        &host,
        token,
        &["--backend", "userspace", "--advertise-services", "svc:chat"],
    );
    agent.wait_mesh_ipv4(Duration::from_secs(30));
    (host, agent)
}

#[test]
fn hub_agents_host_the_households_chat_for_official_clients_and_agents_and_hand_it_on() {
    if hearth_testkit::require_tools(&["dig"]).is_none() {
        return;
    }
    let Some((mut lab, client, coordinator)) = lab_with_alice(false) else {
        return;
    };
    coordinator.cli_ok(&["users", "create", "bob"]);
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(&policy, hearth_testkit::CHAT_SERVICE_POLICY).unwrap();
    coordinator.cli_ok(&["policy", "set", policy.to_str().unwrap()]);
    let token = |name: &str, user: &str, extra: &[&str]| {
        let mut args = vec!["preauthkeys", "create", "--user", user, "--pre-approved"];
        args.extend_from_slice(extra);
        let path = lab.dir.path().join(format!("{name}.token"));
        std::fs::write(&path, coordinator.cli_ok(&args).trim()).unwrap();
        path
    };
    let hub_token = token("hub", "alice", &["--tags", "tag:hub"]);
    let laptop_token = token("laptop", "alice", &[]);
    let phone_token = token("phone", "alice", &[]);
    let guest_token = token("guest", "bob", &[]);
    let new_token = token("new-hub", "alice", &["--tags", "tag:hub"]);

    // The hub's agent serves svc:chat.
    let (hub_host, hub) = chat_host_agent(&mut lab, "hub-agent", &hub_token, "hub's agent");
    let placed = wait_until(Duration::from_secs(20), || {
        let list = coordinator.cli_ok(&["services", "list", "-o", "json"]);
        let services: serde_json::Value = serde_json::from_str(&list).unwrap();
        services[0]["host"] == "hub-agent"
    });
    assert!(placed.is_some(), "the hub never hosted svc:chat");
    wait_until(Duration::from_secs(20), || {
        hub.process.log_text().contains("hosting services")
    })
    .unwrap_or_else(|| {
        panic!(
            "the agent never took the address:\n{}",
            hub.process.log_text()
        )
    });

    // alice's phone (the official client) reaches it by name.
    let phone_host = lab.host("phone");
    let certificate = coordinator.state.join("tls/server.crt");
    let socks = ["--socks5-server=127.0.0.1:1055"];
    let phone = lab.start_tailscaled_with(&phone_host, Some(certificate), &client, &socks, &[]);
    let login = format!("https://{}", coordinator.address);
    let phone_key = std::fs::read_to_string(&phone_token).unwrap();
    up_ok(&lab, &phone, &login, &phone_key);
    let mut said = None;
    wait_until(Duration::from_secs(60), || {
        said = reach_chat(&lab, &phone);
        said.is_some()
    })
    .unwrap_or_else(|| {
        panic!(
            "the phone never reached the hub's chat\nhub:\n{}\nphone:\n{}",
            hub.process.log_text(),
            phone.daemon.log_text()
        )
    });
    assert_eq!(said.as_deref(), Some("served by the hub's agent\n"));

    // alice's laptop (an agent) too: its MagicDNS answers the name.
    let dig_and_fetch = |lab: &Lab, host: &hearth_testkit::Host| -> (String, Option<String>) {
        let dig = lab
            .command(host, "dig")
            .args(["@100.100.100.100", "+short", "+time=2", "+tries=1"])
            .args(["chat.hearth.internal", "A"])
            .output()
            .unwrap();
        let address = String::from_utf8_lossy(&dig.stdout).trim().to_owned();
        let fetched = lab.try_exec(
            host,
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--resolve",
                "chat.hearth.internal:80:100.100.0.1",
                "http://chat.hearth.internal/hello.txt",
            ],
        );
        let body = fetched
            .status
            .success()
            .then(|| String::from_utf8_lossy(&fetched.stdout).into_owned());
        (address, body)
    };
    let laptop_host = lab.host("laptop");
    let laptop = lab.start_agent(&laptop_host, &laptop_token, &["--backend", "userspace"]);
    laptop.wait_mesh_ipv4(Duration::from_secs(30));
    let mut seen = (String::new(), None);
    wait_until(Duration::from_secs(30), || {
        seen = dig_and_fetch(&lab, &laptop_host);
        seen.1.is_some()
    })
    .unwrap_or_else(|| panic!("the laptop never reached the hub's chat: {seen:?}"));
    assert_eq!(seen.0, "100.100.0.1");
    assert_eq!(seen.1.as_deref(), Some("served by the hub's agent\n"));

    // bob's agent is not granted it: no name, and nothing at the address.
    let guest_host = lab.host("guest");
    let guest = lab.start_agent(&guest_host, &guest_token, &["--backend", "userspace"]);
    guest.wait_mesh_ipv4(Duration::from_secs(30));
    assert_eq!(dig_and_fetch(&lab, &guest_host), (String::new(), None));

    // A new hub joins and advertises it too; the admin moves the service
    // there. The old hub stops answering at its address, and the phone and
    // the laptop reach the new one by the same name and address.
    let (new_host, new_hub) = chat_host_agent(&mut lab, "new-hub", &new_token, "new hub");
    coordinator.cli_ok(&["services", "move", "svc:chat", "--to", "new-hub"]);
    let answers_at = |host: &hearth_testkit::Host| {
        let shown = lab.try_exec(host, &["ip", "-o", "-4", "addr", "show"]);
        String::from_utf8_lossy(&shown.stdout).contains(" 100.100.0.1/32 ")
    };
    wait_until(Duration::from_secs(20), || {
        answers_at(&new_host) && !answers_at(&hub_host)
    })
    .unwrap_or_else(|| {
        panic!(
            "the address did not move: old {} new {}\nnew hub:\n{}",
            answers_at(&hub_host),
            answers_at(&new_host),
            new_hub.process.log_text()
        )
    });
    let mut said = None;
    wait_until(Duration::from_secs(30), || {
        said = reach_chat(&lab, &phone);
        said.as_deref() == Some("served by the new hub\n")
    })
    .unwrap_or_else(|| panic!("the phone never reached the new hub: {said:?}"));
    wait_until(Duration::from_secs(30), || {
        seen = dig_and_fetch(&lab, &laptop_host);
        seen.1.as_deref() == Some("served by the new hub\n")
    })
    .unwrap_or_else(|| panic!("the laptop never reached the new hub: {seen:?}"));
    assert_eq!(seen.0, "100.100.0.1");
}
