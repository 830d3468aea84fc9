//! Official Tailscale clients behind symmetric NATs (the lab of
//! `tests/nat.rs`): the path between them through a third client's peer
//! relay (UDP) against the path through the coordinator's DERP relay (TCP),
//! measured in the same run, round by round: the relay port is closed
//! (`tailscale set --relay-server-port=`), the clients fall back to DERP,
//! then opened again.
//!
//! Each measurement: 5 s of TCP from alpha to beta through `tailscale nc`
//! (the clients run in userspace networking here, so the stream goes
//! through their LocalAPI and netstack on both paths alike); beta's side is
//! this bench's own binary run in beta's namespace as a sink that counts
//! what arrives. And 20 `tailscale ping`s (disco round trips) on each path.
//!
//! Run (root): `cargo bench -p hearth-agent --bench peer_relay`

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_testkit::bench::median;
use hearth_testkit::{Lab, TailscaleNode, wait_until};

const ROUNDS: usize = 3;
const SECONDS: u64 = 5;
const PORT: u16 = 5201;

/// The sink, in beta's namespace: counts the bytes of the first connection
/// for [`SECONDS`] from its first byte and prints the rate in Mbit/s.
fn sink() {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).expect("the sink's port");
    println!("listening");
    let (mut stream, _) = listener.accept().expect("a connection");
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = stream.read(&mut buffer).expect("the first bytes") as u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(SECONDS) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes += n as u64,
        }
    }
    let mbit = bytes as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e6;
    println!("mbit {mbit:.3}");
}

fn throughput(
    lab: &mut Lab,
    label: &str,
    alpha: &TailscaleNode,
    beta: &TailscaleNode,
    to: IpAddr,
) -> f64 {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut command = lab.command(&beta.host, exe);
    command.arg("--sink");
    let mut sink = lab.spawn(&beta.host, label, command);
    wait_until(Duration::from_secs(10), || {
        sink.log_text().contains("listening")
    })
    .expect("the sink listens");
    let mut nc = alpha
        .command(lab, &["nc", &to.to_string(), &PORT.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // Its "broken pipe" when the sink closes is the end, not news.
        .stderr(Stdio::null())
        .spawn()
        .expect("tailscale nc runs");
    let mut stdin = nc.stdin.take().expect("its stdin");
    let chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(SECONDS * 3);
    // Until the sink has counted its seconds and closed (the write fails).
    while Instant::now() < deadline && stdin.write_all(&chunk).is_ok() {}
    drop(stdin);
    let _ = nc.kill();
    let _ = nc.wait();
    sink.wait(Duration::from_secs(10)).expect("the sink ends");
    let log = sink.log_text();
    log.lines()
        .find_map(|line| line.strip_prefix("mbit "))
        .and_then(|mbit| mbit.trim().parse().ok())
        .unwrap_or_else(|| panic!("the sink said: {log}"))
}

/// Waits until `tailscale ping` goes `via` the path named, and returns
/// 20 round trips (ms) over it.
fn pings_via(lab: &Lab, alpha: &TailscaleNode, to: IpAddr, via: &str) -> Vec<f64> {
    let mut said = String::new();
    let switched = wait_until(Duration::from_secs(90), || {
        let ping = alpha.cli(
            lab,
            &["ping", "--timeout", "3s", "--c", "2", &to.to_string()],
        );
        said = String::from_utf8_lossy(&ping.stdout).into_owned();
        said.lines().last().is_some_and(|line| line.contains(via))
    });
    assert!(switched.is_some(), "not via {via}: {said}");
    let ping = alpha.cli(
        lab,
        &["ping", "--timeout", "3s", "--c", "20", &to.to_string()],
    );
    String::from_utf8_lossy(&ping.stdout)
        .lines()
        .filter(|line| line.contains(via))
        .filter_map(|line| line.rsplit(" in ").next())
        .filter_map(|ms| ms.trim().strip_suffix("ms"))
        .filter_map(|ms| ms.parse().ok())
        .collect()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--sink") {
        return sink();
    }
    let mut lab = Lab::new().expect("root and ip(8)");
    hearth_testkit::require_tools(&["nft"]).expect("tools");
    let client = hearth_testkit::llama::tailscale_client().expect("the official client");
    let (coordinator, key) = lab.start_internet_coordinator();
    let nodes = lab.official_clients_around_a_peer_relay(&coordinator, &client, &key);
    let beta = IpAddr::from(nodes[2].ipv4(&lab).expect("beta's address"));

    // Each path: the relay port that makes alpha take it, what `tailscale
    // ping` says of it, and what was measured on it.
    let mut paths = [
        (
            "derp",
            "--relay-server-port=",
            "via DERP(",
            Vec::new(),
            Vec::new(),
        ),
        (
            "relay",
            "--relay-server-port=40000",
            "via peer-relay(",
            Vec::new(),
            Vec::new(),
        ),
    ];
    for round in 0..ROUNDS {
        for (path, port, via, mbit, ms) in &mut paths {
            let set = nodes[0].cli(&lab, &["set", port]);
            assert!(set.status.success(), "{set:?}");
            ms.extend(pings_via(&lab, &nodes[1], beta, via));
            let label = format!("sink-{path}-{round}");
            mbit.push(throughput(&mut lab, &label, &nodes[1], &nodes[2], beta));
        }
        println!(
            "round {round}: DERP {:.0} Mbit/s, peer relay {:.0} Mbit/s",
            paths[0].3[round], paths[1].3[round]
        );
    }
    let [
        (_, _, _, derp_mbit, derp_ms),
        (_, _, _, relay_mbit, relay_ms),
    ] = &mut paths;
    let (derp, relay) = (median(derp_mbit), median(relay_mbit));
    let (derp_p50, relay_p50) = (median(derp_ms), median(relay_ms));
    println!("| | DERP (coordinator, TCP) | peer relay (UDP) | peer relay / DERP |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| TCP through `tailscale nc`, median of {ROUNDS} × {SECONDS} s | {derp:.0} Mbit/s | {relay:.0} Mbit/s | {:.2} |",
        relay / derp
    );
    println!(
        "| `tailscale ping` p50 ({} / {} pongs) | {derp_p50:.1} ms | {relay_p50:.1} ms | {:+.1} ms |",
        derp_ms.len(),
        relay_ms.len(),
        relay_p50 - derp_p50
    );
}
