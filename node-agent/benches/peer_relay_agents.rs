//! Two `hearth-agent`s behind symmetric NATs (the lab of `tests/nat.rs`):
//! the path through a hub agent's peer relay (UDP) against the path
//! through the coordinator's DERP relay (TCP), measured in the same run,
//! round by round: the policy offers no relay (DERP), then offers the hub
//! (`tailscale.com/cap/relay`), the agents on the userspace data plane.
//!
//! Each round, on each path: iperf3 TCP alpha → beta for 5 s, and 50 pings.
//!
//! Run (root): `cargo bench -p hearth-agent --bench peer_relay_agents`

use std::net::IpAddr;
use std::time::Duration;

use hearth_testkit::bench::{median, percentile};
use hearth_testkit::{Lab, Nat, wait_until};

const ROUNDS: usize = 3;

fn main() {
    let mut lab = Lab::new().expect("root and ip(8)");
    hearth_testkit::require_tools(&["nft", "iperf3", "ping"]).expect("tools");
    let (coordinator, key) = lab.start_internet_coordinator();
    let write = |name: &str, text: &str| {
        let path = lab.dir.path().join(name);
        std::fs::write(&path, text).expect("a policy file");
        path.to_string_lossy().into_owned()
    };
    let open = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]"#;
    let policies = [
        write("derp.json", &format!("{open}}}")),
        write(
            "relay.json",
            &format!(
                r#"{open}, "grants": [{{"src": ["*"], "dst": ["*"], "app": {{"tailscale.com/cap/relay": []}}}}]}}"#
            ),
        ),
    ];
    let mobile = lab.nat_site("mobile", 2, Nat::Symmetric);
    let cafe = lab.nat_site("cafe", 3, Nat::Symmetric);
    let hosts = [
        lab.host("hub"),
        lab.site_host(&mobile, "alpha"),
        lab.site_host(&cafe, "beta"),
    ];
    let userspace = ["--backend", "userspace"];
    let hub = lab.start_agent(
        &hosts[0],
        &key,
        &["--backend", "userspace", "--relay-server-port", "40000"],
    );
    let alpha = lab.start_agent(&hosts[1], &key, &userspace);
    let beta = lab.start_agent(&hosts[2], &key, &userspace);
    for agent in [&hub, &alpha] {
        agent.wait_mesh_ipv4(Duration::from_secs(30));
    }
    let beta_ip = IpAddr::from(beta.wait_mesh_ipv4(Duration::from_secs(30)));

    // Each path: its policy, the path kind alpha's status shows on it, and
    // what was measured.
    let mut paths = [
        (&policies[0], "relay", Vec::new(), Vec::new()),
        (&policies[1], "peer_relay", Vec::new(), Vec::new()),
    ];
    for round in 0..ROUNDS {
        for (policy, kind, mbit, ms) in &mut paths {
            coordinator.cli_ok(&["policy", "set", policy]);
            wait_until(Duration::from_secs(60), || {
                lab.ping(&hosts[1], beta_ip, Duration::from_millis(500))
                    && alpha.path_kind("beta").as_deref() == Some(*kind)
            })
            .unwrap_or_else(|| panic!("not on {kind}: {:?}", alpha.path("beta")));
            mbit.push(lab.iperf(&hosts[1], &hosts[2], beta_ip, 5));
            assert_eq!(
                alpha.path_kind("beta").as_deref(),
                Some(*kind),
                "the path held"
            );
            ms.extend(lab.ping_times(&hosts[1], beta_ip, 50));
        }
        println!(
            "round {round}: DERP {:.0} Mbit/s, peer relay {:.0} Mbit/s",
            paths[0].2[round], paths[1].2[round]
        );
    }
    let [(_, _, derp_mbit, derp_ms), (_, _, relay_mbit, relay_ms)] = &mut paths;
    let (derp, relay) = (median(derp_mbit), median(relay_mbit));
    let (derp_p50, relay_p50) = (median(derp_ms), median(relay_ms));
    let (derp_p99, relay_p99) = (percentile(derp_ms, 0.99), percentile(relay_ms, 0.99));
    println!("| | DERP (coordinator, TCP) | hub agent's peer relay (UDP) | peer relay / DERP |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| iperf3 TCP, median of {ROUNDS} × 5 s | {derp:.0} Mbit/s | {relay:.0} Mbit/s | {:.2} |",
        relay / derp
    );
    println!(
        "| ping RTT p50 / p99 | {derp_p50:.2} / {derp_p99:.2} ms | {relay_p50:.2} / {relay_p99:.2} ms | {:+.2} ms (p50) |",
        relay_p50 - derp_p50
    );
}
