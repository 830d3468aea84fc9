//! Control-plane fan-out: what a user waits for when an admin changes
//! something and a thousand devices are connected.
//!
//! A real coordinator process (release build, SQLite, loopback) and one load
//! client holding N map streams over mutual TLS, each with its own node
//! certificate (N = 1,000, then 5,000 on a fresh coordinator; any sizes
//! given as arguments, 10,000 for issue 30's target). Clients whose
//! connection is closed before the coordinator answered (its head deadline,
//! in a storm) try again, as agents do, and are counted. Measured:
//!
//! - a connect storm (every stream opened at once) with uncompressed
//!   streams, the peer measured in the same run, then with zstd streams as
//!   agents open them: the coordinator's CPU until every stream has read
//!   its whole full map, and the ratio;
//! - `policy set` (a filter change for every node) and `nodes approve` (a
//!   new peer for every node): the time from the command to the moment each
//!   stream has the delta, p50 / p99 / max over the streams;
//! - the coordinator's CPU and resident memory at idle with N streams;
//! - how the delay grows from 1,000 to 5,000 streams (the ratio is
//!   printed): no other coordinator can run here to compare with (Headscale
//!   is not in the registries this machine reaches).
//!
//! Run (as root, for the open-file limit):
//! `cargo bench -p hearth-coordinator --bench fanout` (`-- 1000` for one size)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hearth_control::JoinToken;
use hearth_control::compression::{self, Encoding};
use hearth_control::tls::{ClientIdentity, client_config};
use hearth_testkit::control_plane::{Server, request};

mod common;
use common::load::{spread, usage};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_util::task::AbortOnDropHandle;

/// What a stream saw, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    FullMap,
    FilterChanged,
    PeerAdded,
    KeepAlive,
}

/// Connections tried again after the coordinator closed them early.
static RETRIES: AtomicUsize = AtomicUsize::new(0);
/// Body bytes the streams received (compressed, when they are).
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// What starts a full map's line: the map counts as had at the line's end.
const FULL_MAP: &[u8] = br#""type":"full""#;

const MARKERS: [(&[u8], Seen); 3] = [
    (br#""type":"keep_alive""#, Seen::KeepAlive),
    (br#""change":"filter_changed""#, Seen::FilterChanged),
    (br#""change":"peer_added""#, Seen::PeerAdded),
];

/// A registered node's credentials.
struct Node {
    identity: ClientIdentity,
}

/// Registers `count` nodes with `token`, 32 at a time.
async fn register_all(token: &JoinToken, count: usize) -> Vec<Node> {
    let client =
        hearth_control::ControlClient::new(&token.url, token.fingerprint, None).expect("a client");
    let mut nodes = Vec::with_capacity(count);
    let mut next = 0;
    while next < count {
        let batch: Vec<_> = (next..(next + 32).min(count))
            .map(|index| {
                let client = client.clone();
                let (registration, key_pem) = request(token, &format!("load{index}"));
                tokio::spawn(async move {
                    let response = client.register(&registration).await.expect("registered");
                    Node {
                        identity: ClientIdentity {
                            certificate_pem: response.client_certificate_pem,
                            key_pem,
                        },
                    }
                })
            })
            .collect();
        for task in batch {
            nodes.push(task.await.expect("registration task"));
        }
        next += 32;
    }
    nodes
}

/// Opens `node`'s map stream over HTTP/1.1 (in zstd frames when `encoding`
/// says so, as agents ask for it) and reports what it sees on `events`
/// until the connection ends or the task is aborted.
async fn follow(
    address: std::net::SocketAddr,
    fingerprint: hearth_control::Fingerprint,
    node: Arc<Node>,
    id: usize,
    encoding: Encoding,
    events: mpsc::UnboundedSender<(usize, Seen, Instant)>,
) {
    let mut config = client_config(fingerprint, Some(&node.identity)).expect("a TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    // Devices come from many addresses: a thousand streams per loopback
    // source, inside the coordinator's per-source limit.
    let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (id / 1000) as u8);
    let open = || async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((source, 0).into())?;
        let tcp = socket.connect(address).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
        let tls = connector.connect(name, tcp).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        let connection = AbortOnDropHandle::new(tokio::spawn(connection));
        let mut request = hyper::Request::get("/api/v1/map").header("host", "localhost");
        if encoding == Encoding::Zstd {
            request = request.header("accept-encoding", compression::ZSTD);
        }
        let request = request.body(Empty::<Bytes>::new()).expect("a request");
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((response.into_body(), connection))
    };
    let finders = MARKERS.map(|(marker, seen)| (memchr::memmem::Finder::new(marker), seen));
    let full_map = memchr::memmem::Finder::new(FULL_MAP);
    let mut frames = compression::FrameReader::new().expect("a zstd reader");
    let mut plain = BytesMut::new();
    let mut tail: Vec<u8> = Vec::new();
    // Inside a full map's line (3 MB at 10,000 nodes): it counts once its
    // end has arrived, not when it starts.
    let mut in_full_map = false;
    let mut had_map = false;
    let mut stream = None;
    loop {
        let Some((body, _connection)) = stream.as_mut() else {
            // As an agent does: a connection the coordinator closed before
            // it answered (its header deadline, in a storm) is tried again
            // after a pause spread over the streams.
            match open().await {
                Ok(opened) => stream = Some(opened),
                Err(_) => {
                    RETRIES.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500 + (id % 1000) as u64)).await;
                }
            }
            continue;
        };
        let chunk = match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => chunk,
                Err(_) => continue,
            },
            _ if !had_map && !in_full_map => {
                stream = None;
                RETRIES.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500 + (id % 1000) as u64)).await;
                continue;
            }
            _ => return,
        };
        let now = Instant::now();
        RECEIVED.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        match encoding {
            Encoding::Identity => plain.extend_from_slice(&chunk),
            Encoding::Zstd => frames.push(chunk),
        }
        loop {
            if encoding == Encoding::Zstd {
                frames
                    .read_into(&mut plain, 256 * 1024)
                    .expect("the coordinator's zstd frames");
            }
            if plain.is_empty() {
                break;
            }
            // Markers may straddle reads: search the last bytes of the
            // previous read together with this one.
            let before = tail.len();
            tail.extend_from_slice(&plain);
            plain.clear();
            for (finder, seen) in &finders {
                if finder.find(&tail).is_some() {
                    let _ = events.send((id, *seen, now));
                }
            }
            let rest = match full_map.find(&tail) {
                Some(start) if !in_full_map => {
                    in_full_map = true;
                    &tail[start..]
                }
                // The end may straddle reads: from the last bytes kept.
                _ => &tail[before.saturating_sub(2)..],
            };
            // The line's own end: `}}` and its newline.
            if in_full_map && memchr::memmem::find(rest, b"}}\n").is_some() {
                in_full_map = false;
                had_map = true;
                let _ = events.send((id, Seen::FullMap, now));
            }
            let keep = tail.len().saturating_sub(32);
            tail.drain(..keep);
        }
    }
}

/// Waits until `count` streams reported `wanted` after `since`, for at most
/// `patience`; their delays.
async fn collect(
    events: &mut mpsc::UnboundedReceiver<(usize, Seen, Instant)>,
    wanted: Seen,
    count: usize,
    since: Instant,
    patience: Duration,
) -> Vec<Duration> {
    let mut seen = vec![None; count];
    let mut left = count;
    let deadline = tokio::time::Instant::now() + patience;
    while left > 0 {
        let Ok(Some((id, kind, when))) = tokio::time::timeout_at(deadline, events.recv()).await
        else {
            panic!("only {} of {count} streams saw {wanted:?}", count - left);
        };
        if kind == wanted && seen[id].is_none() {
            seen[id] = Some(when.saturating_duration_since(since));
            left -= 1;
        }
    }
    seen.into_iter()
        .map(|delay| delay.unwrap_or_default())
        .collect()
}

/// p50, p99 and max of how long after `since` each of `count` streams saw
/// `wanted` (a change's delta: two minutes at most).
async fn delays(
    events: &mut mpsc::UnboundedReceiver<(usize, Seen, Instant)>,
    wanted: Seen,
    count: usize,
    since: Instant,
) -> (f64, f64, f64) {
    let mut times = collect(events, wanted, count, since, Duration::from_secs(120)).await;
    spread(&mut times)
}

/// The policy-change p99 and max, for the scaling ratio.
async fn measure(streams: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = common::load::coordinator(dir.path());
    let pid = server.child.id();
    server.cli_ok(&["users", "create", "load"]);
    let token = server.token(&["--user", "load", "--reusable", "--pre-approved"]);
    let started = Instant::now();
    let nodes = register_all(&token, streams).await;
    println!(
        "{streams} streams: registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The peer in this run: the same storm with uncompressed streams (as
    // before agents asked for zstd); then the storm agents make now, whose
    // streams stay for the rest.
    let nodes: Vec<Arc<Node>> = nodes.into_iter().map(Arc::new).collect();
    let (plain_tasks, _, plain_cpu) = storm(&server, &token, &nodes, Encoding::Identity).await;
    drop(plain_tasks);
    settle(pid).await;
    let (_tasks, mut seen, zstd_cpu) = storm(&server, &token, &nodes, Encoding::Zstd).await;
    println!(
        "  storm CPU, zstd streams against uncompressed ones in this run: {:.2}x",
        zstd_cpu / plain_cpu
    );

    // Idle: keep-alives only. The window is one whole keep-alive period
    // (the default 50 s), so every stream sends exactly one in it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu_before, _) = usage(pid);
    let idle = Duration::from_secs(50);
    tokio::time::sleep(idle).await;
    let (cpu_after, rss) = usage(pid);
    let idle_cpu = (cpu_after - cpu_before) / idle.as_secs_f64() * 100.0;
    let mut keepalives = 0;
    while let Ok((_, kind, _)) = seen.try_recv() {
        keepalives += usize::from(kind == Seen::KeepAlive);
    }
    println!(
        "  idle with {streams} streams: CPU {idle_cpu:.2} % of one core, resident {:.1} MiB ({keepalives} keep-alives sent in the {} s window)",
        rss as f64 / 1024.0,
        idle.as_secs()
    );

    // A policy change: every node's filter changes.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22,443"]}]}"#,
    )
    .expect("policy written");
    let since = Instant::now();
    server.cli_ok(&["policy", "set", policy.to_str().expect("a path")]);
    let (p50, p99, max) = delays(&mut seen, Seen::FilterChanged, streams, since).await;
    println!(
        "  policy set -> every stream has the delta: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms (target p99 < {} ms)",
        if streams <= 1000 { 1000 } else { 2000 }
    );

    // A node approval: every node gets a new peer.
    let pending = server.token(&["--user", "load"]);
    let newcomer = hearth_testkit::control_plane::register(&pending, "newcomer").await;
    let since = Instant::now();
    server.cli_ok(&["nodes", "approve", &newcomer.id().to_string()]);
    let (a50, a99, amax) = delays(&mut seen, Seen::PeerAdded, streams, since).await;
    println!(
        "  nodes approve -> every stream has the new peer: p50 {a50:.0} ms, p99 {a99:.0} ms, max {amax:.0} ms"
    );
    let (cpu_end, rss_end) = usage(pid);
    println!(
        "  coordinator CPU for both changes {:.2} s, resident after {:.1} MiB",
        cpu_end - cpu_after,
        rss_end as f64 / 1024.0
    );
    drop(server);
    (p99, max)
}

/// A connect storm: every node opens its map stream in `encoding` at
/// once. Returns the streams' tasks (dropping them closes the streams),
/// what they report, and the coordinator's CPU seconds until every stream
/// had read its whole full map.
async fn storm(
    server: &Server,
    token: &JoinToken,
    nodes: &[Arc<Node>],
    encoding: Encoding,
) -> (
    Vec<AbortOnDropHandle<()>>,
    mpsc::UnboundedReceiver<(usize, Seen, Instant)>,
    f64,
) {
    let streams = nodes.len();
    let pid = server.child.id();
    let (events, mut seen) = mpsc::unbounded_channel();
    RECEIVED.store(0, Ordering::Relaxed);
    let (cpu_start, _) = usage(pid);
    let started = Instant::now();
    let tasks = nodes
        .iter()
        .enumerate()
        .map(|(id, node)| {
            AbortOnDropHandle::new(tokio::spawn(follow(
                server.address,
                token.fingerprint,
                Arc::clone(node),
                id,
                encoding,
                events.clone(),
            )))
        })
        .collect();
    // Every full map holds every other node (allow-all): the storm sends
    // streams² peers, about 30 GB of JSON at 10,000, so it gets time.
    let patience = Duration::from_secs(120.max(streams as u64 / 10));
    let mut connect = collect(&mut seen, Seen::FullMap, streams, started, patience).await;
    let (_, _, all_connected) = spread(&mut connect);
    let (cpu_connected, _) = usage(pid);
    let cpu = cpu_connected - cpu_start;
    println!(
        "  {encoding:?} streams: all {streams} had their full map {all_connected:.0} ms after the first connect; coordinator CPU {cpu:.1} s ({:.2} ms per stream), {:.2} GB received, {} connections closed before their request was whole and tried again",
        cpu * 1000.0 / streams as f64,
        RECEIVED.load(Ordering::Relaxed) as f64 / 1e9,
        RETRIES.swap(0, Ordering::Relaxed)
    );
    (tasks, seen, cpu)
}

/// Waits until the coordinator is quiet again (under 5 % of a core over a
/// second) after streams closed.
async fn settle(pid: u32) {
    loop {
        let (before, _) = usage(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (after, _) = usage(pid);
        if after - before < 0.05 {
            return;
        }
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut results = Vec::new();
    for streams in sizes {
        results.push((streams, runtime.block_on(measure(streams))));
    }
    if let [
        (small, (small_p99, small_max)),
        (large, (large_p99, large_max)),
    ] = results[..]
    {
        println!(
            "scaling {small} -> {large} streams ({:.1}x): policy delta p99 {:.2}x, max {:.2}x",
            large as f64 / small as f64,
            large_p99 / small_p99,
            large_max / small_max
        );
    }
}
