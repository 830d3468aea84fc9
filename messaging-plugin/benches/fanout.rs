//! Fan-out: 200 WebSocket clients in one room, each its own device (its own
//! loopback source address, so its own identity), and one more that posts.
//! Measured on the real `hearth-messaging` process (identity lookups, SQLite
//! storage, JSON events) and, in the same run, on a bare WebSocket broadcast
//! server (no identity, no storage, no validation: the floor a messenger
//! cannot beat on this machine).
//!
//! 1. latency: messages paced 20 ms apart; for every (message, client) the
//!    time from the sender's write to the client's read; p50, p99, max.
//! 2. throughput: a burst of messages sent back to back; messages per second
//!    until every client has every message.
//! 3. memory: the server's resident size idle, with 50 members connected
//!    (each its own user), and with all 200.
//!
//! The agent is a stand-in that answers only `whois` (it names each loopback
//! source address as a device of its own user): the mesh is not what is
//! measured here, and the real agent refuses loopback callers.
//!
//! `cargo bench -p hearth-messaging --bench fanout`
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hearth_control::agent_api::{WHOIS_PATH, WhoIs};
use hearth_testkit::llama::free_port;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as Frame;

const CLIENTS: usize = 200;
const PACED: usize = 300;
const PACE: Duration = Duration::from_millis(20);
const BURST: usize = 1_000;
const ROOM: &str = "household";

/// Each client's arrival time per message number.
type Arrivals = Arc<Mutex<Vec<HashMap<usize, Instant>>>>;

fn main() {
    if let Ok(port) = std::env::var("HEARTH_FANOUT_BASELINE") {
        baseline_server(port.parse().unwrap());
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut results = Vec::new();
        for target in [Target::Hearth, Target::Baseline] {
            let port = free_port();
            let mut server = start(target, port, dir.path()).await;
            let result = measure(target, port, server.id()).await;
            let _ = server.kill();
            let _ = server.wait();
            print_result(target, &result);
            results.push(result);
        }
        let (hearth, floor) = (&results[0], &results[1]);
        println!(
            "hearth/bare: p50 {:.2}x, p99 {:.2}x, burst msgs/s {:.2}x",
            hearth.p50.as_secs_f64() / floor.p50.as_secs_f64(),
            hearth.p99.as_secs_f64() / floor.p99.as_secs_f64(),
            hearth.burst_rate / floor.burst_rate,
        );
        println!(
            "hearth/bare: memory with {MEMBERS} members {:.2}x",
            hearth.memory[1] as f64 / floor.memory[1] as f64,
        );
        println!(
            "target p99 < 50 ms: {}",
            if hearth.p99 < Duration::from_millis(50) {
                "met"
            } else {
                "NOT met"
            }
        );
    });
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Hearth,
    Baseline,
}

struct Outcome {
    p50: Duration,
    p99: Duration,
    max: Duration,
    samples: usize,
    burst_rate: f64,
    burst_deliveries: f64,
    /// Resident size (KiB): idle, with 50 members connected, with all.
    memory: [u64; 3],
}

/// The resident size of process `pid`, KiB.
fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn print_result(target: Target, outcome: &Outcome) {
    let name = match target {
        Target::Hearth => "hearth-messaging",
        Target::Baseline => "bare broadcast",
    };
    println!(
        "{name:>16}: {CLIENTS} clients, {PACED} messages 20 ms apart: fan-out p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} deliveries); burst of {BURST}: {:.0} msgs/s, {:.0} deliveries/s",
        outcome.p50.as_secs_f64() * 1e3,
        outcome.p99.as_secs_f64() * 1e3,
        outcome.max.as_secs_f64() * 1e3,
        outcome.samples,
        outcome.burst_rate,
        outcome.burst_deliveries,
    );
    let [idle, fifty, all] = outcome.memory.map(|kib| kib as f64 / 1024.0);
    println!(
        "{name:>16}: memory idle {idle:.1} MiB, {MEMBERS} members connected {fifty:.1} MiB, {CLIENTS} connected {all:.1} MiB"
    );
}

/// Members connected when the memory is measured the second time.
const MEMBERS: usize = 50;

/// The source address of client `index` (the sender is index `CLIENTS`).
fn source(index: usize) -> Ipv4Addr {
    let number = u32::try_from(index).unwrap() + 2;
    Ipv4Addr::new(127, 0, (number / 250) as u8 + 1, (number % 250) as u8 + 1)
}

async fn start(target: Target, port: u16, dir: &std::path::Path) -> Child {
    let child = match target {
        Target::Hearth => {
            let socket = dir.join("agent.sock");
            let _ = std::fs::remove_file(&socket);
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            tokio::spawn(async move {
                let app = axum::Router::new().route(WHOIS_PATH, get(whois_stand_in));
                axum::serve(listener, app).await.unwrap();
            });
            let data = dir.join("data");
            let config = dir.join("messaging.json5");
            std::fs::write(
                &config,
                json!({
                    "listen": "loopback",
                    "port": port,
                    "agentSocket": socket,
                    "dataDir": data,
                    "rooms": [ROOM],
                    // One sender posts every message: no per-person limit
                    // is what is measured.
                    "limits": {"postsPerMinute": 1_000_000, "postBurst": 100_000},
                })
                .to_string(),
            )
            .unwrap();
            Command::new(env!("CARGO_BIN_EXE_hearth-messaging"))
                .args(["serve", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        }
        Target::Baseline => Command::new(std::env::current_exe().unwrap())
            .env("HEARTH_FANOUT_BASELINE", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

#[derive(serde::Deserialize)]
struct WhoisQuery {
    ip: IpAddr,
}

/// Stand-in for the agent's `whois`: 127.0.A.B is device `dev-A-B` of user `user-A-B`.
async fn whois_stand_in(Query(query): Query<WhoisQuery>) -> Response {
    match query.ip {
        IpAddr::V4(ip) if ip.octets()[0] == 127 => {
            let [_, _, a, b] = ip.octets();
            axum::Json(WhoIs {
                id: u64::from(a) * 256 + u64::from(b),
                name: format!("dev-{a}-{b}"),
                user: format!("user-{a}-{b}"),
                tags: Vec::new(),
                addresses: vec![query.ip],
                is_self: false,
                capabilities: Default::default(),
                online: None,
            })
            .into_response()
        }
        _ => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(index: usize, port: u16) -> Socket {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(source(index)), 0))
        .unwrap();
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/ws"), stream)
        .await
        .unwrap();
    socket
}

/// The message number of a frame that carries one of ours (`client_id` `bN`).
fn number(text: &str) -> Option<usize> {
    if !text.contains("\"b") {
        return None;
    }
    let event: Value = serde_json::from_str(text).ok()?;
    let id = event["message"]["client_id"]
        .as_str()
        .or_else(|| event["client_id"].as_str())?;
    id.strip_prefix('b')?.parse().ok()
}

async fn measure(target: Target, port: u16, pid: u32) -> Outcome {
    let arrivals: Arrivals = Arc::new(Mutex::new(vec![HashMap::new(); CLIENTS]));
    let total = PACED + BURST;
    let mut readers = Vec::new();
    let mut ready: Vec<tokio::sync::oneshot::Receiver<()>> = Vec::new();
    let mut memory = [resident_kib(pid), 0, 0];
    for index in 0..CLIENTS {
        if index == MEMBERS {
            for receiver in ready.drain(..) {
                receiver.await.unwrap();
            }
            memory[1] = resident_kib(pid);
        }
        let mut socket = connect(index, port).await;
        let arrivals = Arc::clone(&arrivals);
        let (ready_sender, ready_receiver) = tokio::sync::oneshot::channel();
        ready.push(ready_receiver);
        readers.push(tokio::spawn(async move {
            let mut ready_sender = Some(ready_sender);
            let mut mine = HashMap::with_capacity(total);
            if target == Target::Baseline {
                let _ = ready_sender.take().map(|sender| sender.send(()));
            }
            while let Some(Ok(frame)) = socket.next().await {
                let now = Instant::now();
                let Frame::Text(text) = frame else { continue };
                if text.contains("\"hello\"") {
                    let _ = ready_sender.take().map(|sender| sender.send(()));
                    continue;
                }
                if let Some(number) = number(&text) {
                    mine.insert(number, now);
                    if mine.len() == total {
                        break;
                    }
                }
            }
            arrivals.lock().await[index] = mine;
        }));
    }
    for receiver in ready {
        receiver.await.unwrap();
    }
    memory[2] = resident_kib(pid);
    let sender = connect(CLIENTS, port).await;
    let mut sent = HashMap::with_capacity(total);
    let frame = |number: usize| {
        Frame::text(
            json!({"type": "send", "room": ROOM, "body": format!("message {number}"), "client_id": format!("b{number}")})
                .to_string(),
        )
    };
    // Drain what the server says to the sender (hello, its own copies).
    let (mut sink, mut stream) = sender.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });

    let mut ticker = tokio::time::interval(PACE);
    for number in 0..PACED {
        ticker.tick().await;
        sent.insert(number, Instant::now());
        sink.send(frame(number)).await.unwrap();
    }
    // Let the paced phase settle before the burst.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let burst_start = Instant::now();
    for number in PACED..total {
        sink.feed(frame(number)).await.unwrap();
    }
    sink.flush().await.unwrap();
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(120), reader)
            .await
            .expect("every client gets every message")
            .unwrap();
    }
    drain.abort();
    drop(sink);

    let arrivals = arrivals.lock().await;
    let mut latencies = Vec::with_capacity(CLIENTS * PACED);
    let mut burst_end = burst_start;
    for client in arrivals.iter() {
        for number in 0..PACED {
            latencies.push(client[&number].duration_since(sent[&number]));
        }
        for number in PACED..total {
            burst_end = burst_end.max(client[&number]);
        }
    }
    latencies.sort();
    let at = |fraction: f64| {
        latencies[((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1)]
    };
    let burst = burst_end.duration_since(burst_start).as_secs_f64();
    Outcome {
        p50: at(0.50),
        p99: at(0.99),
        max: *latencies.last().unwrap(),
        samples: latencies.len(),
        burst_rate: BURST as f64 / burst,
        burst_deliveries: (BURST * CLIENTS) as f64 / burst,
        memory,
    }
}

/// The floor: a bare WebSocket broadcast server (every text frame goes to
/// every connection as it is), run as a child process of this bench.
fn baseline_server(port: u16) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (everyone, _) = tokio::sync::broadcast::channel::<Frame>(4096);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let everyone = everyone.clone();
            tokio::spawn(async move {
                let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut stream) = socket.split();
                let mut inbox = everyone.subscribe();
                let outgoing = tokio::spawn(async move {
                    while let Ok(frame) = inbox.recv().await {
                        if sink.send(frame).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(frame)) = stream.next().await {
                    if frame.is_text() {
                        let _ = everyone.send(frame);
                    }
                }
                outgoing.abort();
            });
        }
    });
}
