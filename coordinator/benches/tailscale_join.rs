//! Join time of an official Tailscale client against a `hearth-agent`, in
//! the same run: from `tailscale up` (the daemon already running, as an app
//! that is open) with a pre-approved key to the first packet answered
//! through the tunnel, against `hearth-agent up` with the same kind of key
//! to its first ping reply. Both reach the same `hearth-agent` node; each
//! round is a fresh lab (network namespaces on this machine). Needs root
//! and the cached client (scripts/tailscale-client.sh).
//!
//! Run: `cargo bench -p hearth-coordinator --bench tailscale_join`

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hearth_testkit::llama::tailscale_client;
use hearth_testkit::{Lab, wait_until};

const ROUNDS: usize = 5;

fn round(client: &std::path::Path) -> (Duration, Duration) {
    let mut lab = Lab::new().expect("root and ip(8)");
    let hub = lab.host("hub");
    let target_host = lab.host("target");
    let phone_host = lab.host("phone");
    let laptop_host = lab.host("laptop");
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "alice"]);
    let key = coordinator
        .cli_ok(&[
            "preauthkeys",
            "create",
            "--user",
            "alice",
            "--reusable",
            "--pre-approved",
        ])
        .trim()
        .to_owned();
    let token = lab.dir.path().join("token");
    std::fs::write(&token, &key).expect("token file");
    let target = lab.start_agent(&target_host, &token, &[]);
    let target_ip: IpAddr = target.wait_mesh_ipv4(Duration::from_secs(30)).into();

    // hearth-agent: `up` to the first ping reply.
    let started = Instant::now();
    let _laptop = lab.start_agent(&laptop_host, &token, &[]);
    wait_until(Duration::from_secs(30), || {
        lab.ping(&laptop_host, target_ip, Duration::from_millis(200))
    })
    .expect("the agent reached the target");
    let agent = started.elapsed();

    // tailscale: `up` to the first ICMP reply through the tunnel.
    let phone = lab.start_tailscaled(&phone_host, &coordinator, client);
    let started = Instant::now();
    let up = phone.up(&lab, &coordinator, &key, &["--timeout", "30s"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let target_text = target_ip.to_string();
    wait_until(Duration::from_secs(30), || {
        phone
            .cli(
                &lab,
                &[
                    "ping",
                    "--icmp",
                    "--c",
                    "1",
                    "--timeout",
                    "200ms",
                    &target_text,
                ],
            )
            .status
            .success()
    })
    .expect("the client reached the target");
    let tailscale = started.elapsed();
    (tailscale, agent)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let client = tailscale_client().expect("the official client (scripts/tailscale-client.sh)");
    let mut tailscale = Vec::new();
    let mut agent = Vec::new();
    for index in 0..ROUNDS {
        let (t, a) = round(&client);
        println!(
            "round {}: tailscale up -> first packet {:>7.1} ms, hearth-agent up -> first packet {:>7.1} ms",
            index + 1,
            t.as_secs_f64() * 1e3,
            a.as_secs_f64() * 1e3
        );
        tailscale.push(t);
        agent.push(a);
    }
    tailscale.sort();
    agent.sort();
    let (t, a) = (tailscale[ROUNDS / 2], agent[ROUNDS / 2]);
    println!(
        "median of {ROUNDS}: tailscale {:.1} ms, hearth-agent {:.1} ms, ratio tailscale / hearth-agent {:.2}",
        t.as_secs_f64() * 1e3,
        a.as_secs_f64() * 1e3,
        t.as_secs_f64() / a.as_secs_f64()
    );
}
