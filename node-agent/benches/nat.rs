//! The mesh across NATs, in network namespaces (the lab of
//! `tests/nat.rs`): a hub behind a home NAT, a laptop behind a café NAT
//! (both endpoint-independent: disco finds a direct path) and a phone behind
//! a symmetric NAT (only the relay works), all `hearth-agent` on the
//! userspace data plane, release builds, the coordinator's embedded relay.
//! In the same run, alternating:
//! - TCP throughput (iperf3, 5 s) laptop → hub (direct) and phone → hub
//!   (relay);
//! - ping round trips (50 at 20 ms) over each path;
//! - the time from starting the laptop's agent (`hearth-agent up`, its
//!   state kept, a new disco key) to `status` saying `direct`, pinging the
//!   hub meanwhile: start-up, the map, the relay, then disco.
//!
//! Run (root): `cargo bench -p hearth-agent --bench nat`

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hearth_testkit::bench::median;
use hearth_testkit::{Lab, Nat, wait_until};

const ROUNDS: usize = 5;

fn main() {
    let mut lab = Lab::new().expect("root and ip(8)");
    hearth_testkit::require_tools(&["nft", "iperf3", "ping"]).expect("tools");
    let (_coordinator, key) = lab.start_internet_coordinator();
    let home = lab.nat_site("home", 1, Nat::EndpointIndependent);
    let cafe = lab.nat_site("cafe", 3, Nat::EndpointIndependent);
    let mobile = lab.nat_site("mobile", 2, Nat::Symmetric);
    let hosts = [
        lab.site_host(&home, "hub"),
        lab.site_host(&cafe, "laptop"),
        lab.site_host(&mobile, "phone"),
    ];
    let userspace = ["--backend", "userspace"];
    let hub = lab.start_agent(&hosts[0], &key, &userspace);
    let mut laptop = lab.start_agent(&hosts[1], &key, &userspace);
    let phone = lab.start_agent(&hosts[2], &key, &userspace);
    let hub_ip = IpAddr::from(hub.wait_mesh_ipv4(Duration::from_secs(30)));
    laptop.wait_mesh_ipv4(Duration::from_secs(30));
    phone.wait_mesh_ipv4(Duration::from_secs(30));

    let (mut upgrades, mut direct_mbit, mut relay_mbit) = (Vec::new(), Vec::new(), Vec::new());
    let (mut direct_rtt, mut relay_rtt) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // A fresh laptop agent (new disco key): from `hearth-agent up` to a
        // direct path, pinging the hub meanwhile.
        laptop = lab.restart_agent(laptop, &key);
        let started = Instant::now();
        wait_until(Duration::from_secs(20), || {
            lab.ping(&hosts[1], hub_ip, Duration::from_millis(200));
            laptop.path_kind("hub").as_deref() == Some("direct")
        })
        .expect("a direct path");
        upgrades.push(started.elapsed().as_secs_f64() * 1000.0);
        wait_until(Duration::from_secs(20), || {
            lab.ping(&hosts[2], hub_ip, Duration::from_millis(500))
        })
        .expect("the phone reaches the hub");
        assert_eq!(phone.path_kind("hub").as_deref(), Some("relay"));

        direct_mbit.push(lab.iperf(&hosts[1], &hosts[0], hub_ip, 5));
        relay_mbit.push(lab.iperf(&hosts[2], &hosts[0], hub_ip, 5));
        direct_rtt.extend(lab.ping_times(&hosts[1], hub_ip, 50));
        relay_rtt.extend(lab.ping_times(&hosts[2], hub_ip, 50));
        println!(
            "round {round}: direct after {:.0} ms; direct {:.0} Mbit/s, relay {:.0} Mbit/s",
            upgrades[round], direct_mbit[round], relay_mbit[round]
        );
    }
    let (direct, relay) = (median(&mut direct_mbit), median(&mut relay_mbit));
    let (direct_ms, relay_ms) = (median(&mut direct_rtt), median(&mut relay_rtt));
    let direct_p99 = hearth_testkit::bench::percentile(&mut direct_rtt, 0.99);
    let relay_p99 = hearth_testkit::bench::percentile(&mut relay_rtt, 0.99);
    println!("| | direct (café ↔ home) | relay (mobile ↔ home) | relay / direct |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| TCP, median of {ROUNDS} × 5 s | {direct:.0} Mbit/s | {relay:.0} Mbit/s | {:.2} |",
        relay / direct
    );
    println!(
        "| ping RTT p50 / p99 | {direct_ms:.2} / {direct_p99:.2} ms | {relay_ms:.2} / {relay_p99:.2} ms | +{:.2} ms (p50) |",
        relay_ms - direct_ms
    );
    let mut sorted = upgrades.clone();
    println!(
        "`hearth-agent up` → direct path: median {:.0} ms, max {:.0} ms (rounds: {:?})",
        median(&mut sorted),
        sorted.last().copied().unwrap_or_default(),
        upgrades.iter().map(|ms| ms.round()).collect::<Vec<_>>()
    );
}
