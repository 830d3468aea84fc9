//! The DERP relay's cost against a direct path, with 2 and with 200
//! clients, on loopback: a release coordinator (its embedded relay) and, in
//! this process, clients speaking the agent's own relay client. Clients
//! come in pairs; in each pair one sends and the other echoes (latency) or
//! counts (throughput). The direct path is the same pairs over plain UDP
//! sockets on loopback, measured in the same run: what the packets cost
//! without the relay in between. Clients, relay and kernel share the
//! machine's cores.
//!
//! - latency: each sender sends a 128-byte packet, waits for the echo,
//!   pauses 10 ms, for 4 s; round trips' p50 and p99 over all pairs;
//! - throughput: each sender sends 1,200-byte packets (a WireGuard
//!   packet's size) as fast as it can for 3 s; bytes the receivers got.
//!   The relay runs twice: with its default limit of 200 Mbit/s a client,
//!   and with none (what the relay itself can carry).
//!
//! Run: `cargo bench -p hearth-coordinator --bench relay`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hearth_control::JoinToken;
use hearth_control::derp::{self, ServerFrame};
use hearth_control::relay_client::{self, RelayReader, RelayWriter};
use hearth_testkit::bench::percentile;
use hearth_testkit::control_plane::{Server, register_node_key};
use zeroize::Zeroizing;

const LATENCY_FOR: Duration = Duration::from_secs(4);
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);
const PACKET: usize = 1_200;

fn public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}

struct Client {
    key: [u8; 32],
    reader: RelayReader,
    writer: RelayWriter,
}

async fn clients(token: &JoinToken, count: usize, tag: &str) -> Vec<Client> {
    let mut all = Vec::with_capacity(count);
    for index in 0..count {
        let secret: Zeroizing<[u8; 32]> = register_node_key(token, &format!("{tag}{index}")).await;
        let (reader, writer) = relay_client::connect(
            &token.url,
            token.fingerprint,
            &secret,
            Duration::from_secs(10),
        )
        .await
        .expect("the relay lets the node in");
        all.push(Client {
            key: public(&secret),
            reader,
            writer,
        });
    }
    all
}

async fn next_packet(reader: &mut RelayReader) -> Option<([u8; 32], Vec<u8>)> {
    loop {
        let (kind, payload) = reader.next().await.ok()?;
        if let Ok(ServerFrame::Packet { source, packet }) = derp::server_frame(kind, &payload) {
            return Some((source, packet.to_vec()));
        }
    }
}

/// Round trips (ms) through the relay, all pairs at once.
async fn relay_latency(clients: Vec<Client>) -> Vec<f64> {
    let mut senders = Vec::new();
    let mut echoes = Vec::new();
    let mut iter = clients.into_iter();
    while let (Some(mut sender), Some(mut echo)) = (iter.next(), iter.next()) {
        let sender_key = sender.key;
        echoes.push(tokio::spawn(async move {
            while let Some((_, packet)) = next_packet(&mut echo.reader).await {
                if echo
                    .writer
                    .send(&derp::send_packet(&sender_key, &packet))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
        let to = echo.key;
        senders.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let started = Instant::now();
            let mut sequence = 0u64;
            while started.elapsed() < LATENCY_FOR {
                let mut packet = vec![0u8; 128];
                packet[..8].copy_from_slice(&sequence.to_be_bytes());
                let sent = Instant::now();
                sender
                    .writer
                    .send(&derp::send_packet(&to, &packet))
                    .await
                    .expect("the relay takes the packet");
                loop {
                    let (_, echoed) = next_packet(&mut sender.reader).await.expect("an echo");
                    if echoed[..8] == sequence.to_be_bytes() {
                        break;
                    }
                }
                samples.push(sent.elapsed().as_secs_f64() * 1000.0);
                sequence += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for sender in senders {
        all.extend(sender.await.expect("a sender"));
    }
    for echo in echoes {
        echo.abort();
    }
    all
}

/// Bytes a second through the relay, all pairs at once.
async fn relay_throughput(clients: Vec<Client>) -> f64 {
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut iter = clients.into_iter();
    while let (Some(mut sender), Some(mut receiver)) = (iter.next(), iter.next()) {
        let counted = Arc::clone(&received);
        tasks.push(tokio::spawn(async move {
            while let Some((_, packet)) = next_packet(&mut receiver.reader).await {
                counted.fetch_add(packet.len() as u64, Ordering::Relaxed);
            }
        }));
        let (to, stop) = (receiver.key, Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let frames: Vec<Vec<u8>> = (0..32)
                .map(|_| derp::send_packet(&to, &[0x5a; PACKET]))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                if sender.writer.send_all(&frames).await.is_err() {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = received.load(Ordering::Relaxed);
    tokio::time::sleep(THROUGHPUT_FOR).await;
    let bytes = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    bytes as f64 / THROUGHPUT_FOR.as_secs_f64()
}

async fn udp_pair() -> (tokio::net::UdpSocket, tokio::net::UdpSocket) {
    let a = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a socket");
    let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a socket");
    a.connect(b.local_addr().expect("bound"))
        .await
        .expect("connects");
    b.connect(a.local_addr().expect("bound"))
        .await
        .expect("connects");
    (a, b)
}

/// Round trips (ms) over plain UDP, `pairs` at once.
async fn direct_latency(pairs: usize) -> Vec<f64> {
    let mut senders = Vec::new();
    let mut echoes = Vec::new();
    for _ in 0..pairs {
        let (sender, echo) = udp_pair().await;
        echoes.push(tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            while let Ok(read) = echo.recv(&mut buffer).await {
                let _ = echo.send(&buffer[..read]).await;
            }
        }));
        senders.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let started = Instant::now();
            let mut buffer = [0u8; 2048];
            let mut sequence = 0u64;
            while started.elapsed() < LATENCY_FOR {
                let mut packet = vec![0u8; 128];
                packet[..8].copy_from_slice(&sequence.to_be_bytes());
                let sent = Instant::now();
                sender.send(&packet).await.expect("sends");
                loop {
                    let read = sender.recv(&mut buffer).await.expect("an echo");
                    if read >= 8 && buffer[..8] == sequence.to_be_bytes() {
                        break;
                    }
                }
                samples.push(sent.elapsed().as_secs_f64() * 1000.0);
                sequence += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for sender in senders {
        all.extend(sender.await.expect("a sender"));
    }
    for echo in echoes {
        echo.abort();
    }
    all
}

/// Bytes a second over plain UDP, `pairs` at once.
async fn direct_throughput(pairs: usize) -> f64 {
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..pairs {
        let (sender, receiver) = udp_pair().await;
        let counted = Arc::clone(&received);
        tasks.push(tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            while let Ok(read) = receiver.recv(&mut buffer).await {
                counted.fetch_add(read as u64, Ordering::Relaxed);
            }
        }));
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let packet = [0x5a; PACKET];
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..32 {
                    let _ = sender.send(&packet).await;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = received.load(Ordering::Relaxed);
    tokio::time::sleep(THROUGHPUT_FOR).await;
    let bytes = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    bytes as f64 / THROUGHPUT_FOR.as_secs_f64()
}

fn coordinator(state: &std::path::Path, limit_mbit: &str) -> (Server, JoinToken) {
    let server = Server::builder(state)
        .arg("--register-burst")
        .arg("1000")
        .arg("--relay-client-mbit")
        .arg(limit_mbit)
        .start();
    server.cli_ok(&["users", "create", "bench"]);
    let token = server.token(&["--user", "bench", "--reusable", "--pre-approved"]);
    (server, token)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        println!("relay on loopback vs direct UDP on loopback, same run");
        println!(
            "| clients | path | RTT p50 | RTT p99 | throughput (default limit) | throughput (no limit) |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for count in [2usize, 200] {
            let pairs = count / 2;
            let dir = tempfile::tempdir().expect("a temporary directory");
            let (server, token) = coordinator(&dir.path().join("limited"), "200");
            let mut relay_rtt =
                relay_latency(clients(&token, count, "latency").await).await;
            let limited = relay_throughput(clients(&token, count, "limited").await).await;
            drop(server);
            let (server, token) = coordinator(&dir.path().join("unlimited"), "0");
            let unlimited = relay_throughput(clients(&token, count, "unlimited").await).await;
            drop(server);
            let mut direct_rtt = direct_latency(pairs).await;
            let direct = direct_throughput(pairs).await;
            let (relay_p50, relay_p99) =
                (percentile(&mut relay_rtt, 0.5), percentile(&mut relay_rtt, 0.99));
            let (direct_p50, direct_p99) =
                (percentile(&mut direct_rtt, 0.5), percentile(&mut direct_rtt, 0.99));
            println!(
                "| {count} | relay | {relay_p50:.3} ms | {relay_p99:.3} ms | {:.0} MB/s | {:.0} MB/s |",
                limited / 1e6,
                unlimited / 1e6
            );
            println!(
                "| {count} | direct UDP | {direct_p50:.3} ms | {direct_p99:.3} ms | {:.0} MB/s | |",
                direct / 1e6
            );
            println!(
                "| {count} | relay − direct | +{:.3} ms | +{:.3} ms | {:.2}× | {:.2}× |",
                relay_p50 - direct_p50,
                relay_p99 - direct_p99,
                limited / direct,
                unlimited / direct
            );
        }
    });
}
