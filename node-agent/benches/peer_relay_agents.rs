//! Two `hearth-agent`s behind symmetric NATs (the lab of `tests/nat.rs`),
//! measured in the same run, round by round, on three paths: through the
//! coordinator's DERP relay (TCP; the policy offers no peer relay), through
//! a hub agent's peer relay (UDP; `--relay-server-port`) and, the anchor,
//! through the official `tailscaled`'s peer relay (`tailscale set
//! --relay-server-port`). The policy's `tailscale.com/cap/relay` grant
//! names one relay at a time, by its mesh address; the agents run the
//! userspace data plane.
//!
//! Each round, on each path: iperf3 TCP alpha → beta for 5 s (and the CPU
//! time the relay's process spent meanwhile: the coordinator for DERP, the
//! hub agent or `tailscaled` for a peer relay), and 50 pings.
//!
//! Run (root): `cargo bench -p hearth-agent --bench peer_relay_agents`
//! (needs `scripts/tailscale-client.sh`)

use std::net::IpAddr;
use std::time::Duration;

use hearth_testkit::bench::{cpu_seconds, median, percentile};
use hearth_testkit::{Lab, Nat, wait_until};

const ROUNDS: usize = 3;
const SECONDS: u32 = 5;

/// One path measured: its name, its policy, the relay port alpha's path
/// must show (none: DERP), the relay's process, and what was measured.
struct Path {
    name: &'static str,
    policy: String,
    port: Option<u16>,
    relay_pid: u32,
    mbit: Vec<f64>,
    cpu_per_gbit: Vec<f64>,
    ms: Vec<f64>,
}

fn main() {
    let mut lab = Lab::new().expect("root and ip(8)");
    hearth_testkit::require_tools(&["nft", "iperf3", "ping"]).expect("tools");
    let client = hearth_testkit::llama::tailscale_client()
        .expect("the official Tailscale client (scripts/tailscale-client.sh)");
    let (coordinator, key) = lab.start_internet_coordinator();
    let dir = lab.dir.path().to_owned();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("a policy file");
        path.to_string_lossy().into_owned()
    };
    let open = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]"#;
    let relay_through = |relay: IpAddr| {
        format!(
            r#"{open}, "grants": [{{"src": ["*"], "dst": ["{relay}"], "app": {{"tailscale.com/cap/relay": []}}}}]}}"#
        )
    };
    let mobile = lab.nat_site("mobile", 2, Nat::Symmetric);
    let cafe = lab.nat_site("cafe", 3, Nat::Symmetric);
    let hosts = [
        lab.host("hub"),
        lab.site_host(&mobile, "alpha"),
        lab.site_host(&cafe, "beta"),
        lab.host("tsrelay"),
    ];
    let derp = write("derp.json", &format!("{open}}}"));
    coordinator.cli_ok(&["policy", "set", &derp]);
    let userspace = ["--backend", "userspace"];
    let hub = lab.start_agent(
        &hosts[0],
        &key,
        &["--backend", "userspace", "--relay-server-port", "40000"],
    );
    let official = lab.start_tailscale_relay(&hosts[3], &coordinator, &client, &key, 40001);
    let official_ip = IpAddr::from(official.ipv4(&lab).expect("tailscaled's address"));
    let alpha = lab.start_agent(&hosts[1], &key, &userspace);
    let beta = lab.start_agent(&hosts[2], &key, &userspace);
    let hub_ip = IpAddr::from(hub.wait_mesh_ipv4(Duration::from_secs(30)));
    alpha.wait_mesh_ipv4(Duration::from_secs(30));
    let beta_ip = IpAddr::from(beta.wait_mesh_ipv4(Duration::from_secs(30)));

    let path = |name, policy, port, relay_pid| Path {
        name,
        policy,
        port,
        relay_pid,
        mbit: Vec::new(),
        cpu_per_gbit: Vec::new(),
        ms: Vec::new(),
    };
    let mut paths = [
        path("DERP", derp, None, coordinator.process.child.id()),
        path(
            "hub agent's peer relay",
            write("hub.json", &relay_through(hub_ip)),
            Some(40000),
            hub.process.child.id(),
        ),
        path(
            "tailscaled's peer relay",
            write("official.json", &relay_through(official_ip)),
            Some(40001),
            official.daemon.child.id(),
        ),
    ];
    // Where alpha's packets to beta go now: a peer relay's port, or none.
    let relay_port = || {
        let path = alpha.path("beta")?;
        match path["kind"].as_str()? {
            "peer_relay" => path["relay"]
                .as_str()?
                .parse::<std::net::SocketAddr>()
                .ok()
                .map(|relay| Some(relay.port())),
            "relay" => Some(None),
            _ => None,
        }
    };
    for round in 0..ROUNDS {
        for path in &mut paths {
            coordinator.cli_ok(&["policy", "set", &path.policy]);
            wait_until(Duration::from_secs(90), || {
                lab.ping(&hosts[1], beta_ip, Duration::from_millis(500))
                    && relay_port() == Some(path.port)
            })
            .unwrap_or_else(|| panic!("not through {}: {:?}", path.name, alpha.path("beta")));
            let before = cpu_seconds(path.relay_pid);
            let mbit = lab.iperf(&hosts[1], &hosts[2], beta_ip, SECONDS);
            let spent = cpu_seconds(path.relay_pid) - before;
            assert_eq!(relay_port(), Some(path.port), "the path held");
            path.mbit.push(mbit);
            path.cpu_per_gbit
                .push(spent / (mbit * f64::from(SECONDS) / 1000.0));
            path.ms.extend(lab.ping_times(&hosts[1], beta_ip, 50));
        }
        println!(
            "round {round}: {}",
            paths
                .iter()
                .map(|path| format!(
                    "{} {:.0} Mbit/s ({:.2} CPU s/Gbit)",
                    path.name, path.mbit[round], path.cpu_per_gbit[round]
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let [derp, hub_relay, official_relay] = &mut paths;
    let mbit = |path: &mut Path| median(&mut path.mbit);
    let (derp_mbit, hub_mbit, official_mbit) = (mbit(derp), mbit(hub_relay), mbit(official_relay));
    let cpu = |path: &mut Path| median(&mut path.cpu_per_gbit);
    let (derp_cpu, hub_cpu, official_cpu) = (cpu(derp), cpu(hub_relay), cpu(official_relay));
    let rtt = |path: &mut Path| (median(&mut path.ms), percentile(&mut path.ms, 0.99));
    let (derp_rtt, hub_rtt, official_rtt) = (rtt(derp), rtt(hub_relay), rtt(official_relay));
    println!(
        "| | DERP (coordinator, TCP) | hub agent's peer relay (UDP) | tailscaled's peer relay (UDP) | hub / tailscaled |"
    );
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| iperf3 TCP, median of {ROUNDS} × {SECONDS} s | {derp_mbit:.0} Mbit/s | {hub_mbit:.0} Mbit/s | {official_mbit:.0} Mbit/s | {:.2} |",
        hub_mbit / official_mbit
    );
    println!(
        "| the relay's process, CPU per Gbit (median) | {derp_cpu:.2} s | {hub_cpu:.2} s | {official_cpu:.2} s | {:.2} |",
        hub_cpu / official_cpu
    );
    println!(
        "| ping RTT p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:+.2} ms (p50) |",
        derp_rtt.0,
        derp_rtt.1,
        hub_rtt.0,
        hub_rtt.1,
        official_rtt.0,
        official_rtt.1,
        hub_rtt.0 - official_rtt.0
    );
}
