//! Endpoint reports while the policy changes: what a device waits for when
//! it tells the coordinator where it is, at 1,000 reports a second from
//! 1,000 devices, and what the map streams wait for two policy changes
//! made meanwhile.
//!
//! A real coordinator process (release build, SQLite, loopback), 1,000
//! registered devices each reporting over its own mutual-TLS connection (a
//! new endpoint every time, so every report is a change its peers hear of)
//! and 100 of them following their map streams. The reports are sent at a
//! steady 1,000 a second for 12 s; `policy set` runs at 4 s and at 8 s (a
//! filter change for every node). Measured: each report's answer time,
//! p50 / p99 / max, over the whole run and over the reports sent while a
//! policy change was being stored and delivered; each stream's delay from
//! `policy set` to its filter change; the coordinator's CPU. The peer is
//! the same bench on the commit before reports were batched, run the same
//! way (docs/benchmarks.md has both).
//!
//! Run (as root, for the open-file limit):
//! `cargo bench -p hearth-coordinator --bench reports`

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_control::wire::{EndpointReport, MapChange, MapMessage};
use hearth_testkit::control_plane::{Device, try_register};

mod common;
use common::load::{spread, usage};
use tokio::sync::mpsc;

/// Devices reporting.
const DEVICES: usize = 1000;
/// Devices following their map stream.
const STREAMS: usize = 100;
/// Reports a second, across the devices.
const RATE: u64 = 1000;
/// How long reports are sent.
const RUN: Duration = Duration::from_secs(12);
/// When, from the first report, the policy changes.
const CHANGES: [Duration; 2] = [Duration::from_secs(4), Duration::from_secs(8)];

/// Registers `count` devices with `token`, 32 at a time.
async fn register_all(token: &hearth_control::JoinToken, count: usize) -> Vec<Device> {
    let mut devices = Vec::with_capacity(count);
    let mut next = 0;
    while next < count {
        let batch: Vec<_> = (next..(next + 32).min(count))
            .map(|index| {
                let token = token.clone();
                tokio::spawn(async move {
                    try_register(&token, &format!("device{index}"))
                        .await
                        .expect("registered")
                })
            })
            .collect();
        for task in batch {
            devices.push(task.await.expect("registration task"));
        }
        next += 32;
    }
    devices
}

/// Follows `device`'s map stream: says when its full map came, then each
/// filter change, on `events`.
async fn follow(device: Device, index: usize, events: mpsc::UnboundedSender<(usize, Instant)>) {
    let mut stream = device.client.map_stream().await.expect("a map stream");
    while let Some(Ok(message)) = stream.next().await {
        let filter_changed = match message {
            MapMessage::Full { .. } => true,
            MapMessage::Delta { changes } => changes
                .iter()
                .any(|change| matches!(change, MapChange::FilterChanged { .. })),
            _ => false,
        };
        if filter_changed && events.send((index, Instant::now())).is_err() {
            return;
        }
    }
}

/// Waits until every stream has said something after `since`; the delays.
async fn every_stream(
    events: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
    since: Instant,
) -> Vec<Duration> {
    let mut seen = vec![None; STREAMS];
    let mut left = STREAMS;
    while left > 0 {
        let (index, when) = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("every stream hears the change within a minute")
            .expect("the streams go on");
        if when >= since && seen[index].is_none() {
            seen[index] = Some(when - since);
            left -= 1;
        }
    }
    seen.into_iter().flatten().collect()
}

async fn run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = common::load::coordinator(dir.path());
    let pid = server.child.id();
    server.cli_ok(&["users", "create", "load"]);
    let token = server.token(&["--user", "load", "--reusable", "--pre-approved"]);
    let mut devices = register_all(&token, DEVICES).await;
    let reporters: Vec<Arc<hearth_control::ControlClient>> = devices
        .iter()
        .map(|device| Arc::new(device.client.clone()))
        .collect();

    let (events, mut heard) = mpsc::unbounded_channel();
    let followers: Vec<_> = devices
        .drain(..STREAMS)
        .enumerate()
        .map(|(index, device)| tokio::spawn(follow(device, index, events.clone())))
        .collect();
    every_stream(&mut heard, Instant::now() - Duration::from_secs(3600)).await;
    println!("{DEVICES} devices registered, {STREAMS} following their maps");

    // One report every millisecond, each from the next device, each a new
    // endpoint; every answer timed from the moment it was due.
    let started = Instant::now();
    let cpu_before = usage(pid).0;
    let (answers, mut timed) = mpsc::unbounded_channel::<(Duration, Duration)>();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let total = RATE * RUN.as_secs();
        for sent in 0..total {
            tick.tick().await;
            let client = Arc::clone(&reporters[sent as usize % DEVICES]);
            let answers = answers.clone();
            let round = (sent / DEVICES as u64) as u16;
            let index = sent as usize % DEVICES;
            tokio::spawn(async move {
                let due = Instant::now();
                let endpoint = SocketAddr::from((
                    Ipv4Addr::new(10, 1, (index / 250) as u8, (index % 250) as u8 + 1),
                    40000 + round,
                ));
                let report = EndpointReport {
                    listen_port: 40000 + round,
                    local: vec![endpoint],
                    stun: None,
                    disco_key: None,
                    home_relay: None,
                };
                client.report_endpoints(&report).await.expect("reported");
                let _ = answers.send((due - started, due.elapsed()));
            });
        }
    });

    let mut changes = Vec::new();
    for (number, at) in CHANGES.iter().enumerate() {
        tokio::time::sleep_until((started + *at).into()).await;
        let policy = dir.path().join(format!("policy{number}.json"));
        let ports = if number % 2 == 0 { "22,443" } else { "22" };
        std::fs::write(
            &policy,
            format!(r#"{{"acls": [{{"action": "accept", "src": ["*"], "dst": ["*:{ports}"]}}]}}"#),
        )
        .expect("policy written");
        let since = Instant::now();
        server.cli_ok(&["policy", "set", policy.to_str().expect("a path")]);
        let delays = every_stream(&mut heard, since).await;
        let until = since + *delays.iter().max().expect("delays");
        changes.push((since - started, until - started, delays));
    }
    sender.await.expect("the reports were sent");
    let mut all = Vec::new();
    while all.len() < (RATE * RUN.as_secs()) as usize {
        all.push(
            tokio::time::timeout(Duration::from_secs(60), timed.recv())
                .await
                .expect("every report is answered")
                .expect("answers"),
        );
    }
    let cpu = usage(pid).0 - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();

    let mut took: Vec<Duration> = all.iter().map(|(_, took)| *took).collect();
    let (p50, p99, max) = spread(&mut took);
    println!(
        "reports: {} sent at {RATE}/s, answered in p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        all.len()
    );
    for (number, (from, to, mut delays)) in changes.into_iter().enumerate() {
        let mut during: Vec<Duration> = all
            .iter()
            .filter(|(due, _)| *due >= from && *due <= to)
            .map(|(_, took)| *took)
            .collect();
        let count = during.len();
        let (r50, r99, rmax) = spread(&mut during);
        let (d50, d99, dmax) = spread(&mut delays);
        println!(
            "policy change {}: every stream had it in p50 {d50:.0} ms, p99 {d99:.0} ms, max {dmax:.0} ms; the {count} reports sent meanwhile answered in p50 {r50:.1} ms, p99 {r99:.1} ms, max {rmax:.1} ms",
            number + 1
        );
    }
    println!(
        "coordinator CPU {cpu:.1} s in {elapsed:.1} s ({:.0} % of one core)",
        cpu / elapsed * 100.0
    );
    for follower in followers {
        follower.abort();
    }
    drop(server);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}
