//! Private compute benchmarks, each against a peer measured in the same run:
//!
//! - `verify`: evidence verification, cold (chain walk and signatures) and
//!   cached (a REK seen before), for a real Nitro document and dev evidence;
//! - `ttft`: time to first token through the gateway to a remote node
//!   (gateway -> router -> compute node -> llama-server) against the same
//!   gateway to a local llama-server, interleaved;
//! - `streams`: 1,000 concurrent replies through the router against the
//!   same 1,000 straight to the node. The node here is a stand-in (named
//!   so) that streams sealed-sized chunks at a reading pace: one real node
//!   with llama-server cannot hold 1,000 replies on this machine, and what is
//!   measured is the router's forwarding.
//!
//! - `ohttp`: the OHTTP layer per chunk, and the time to first token
//!   through relay and OHTTP gateway beside straight to the router.
//!
//! `HEARTH_BENCH=verify,ttft,ohttp,streams` picks parts. Loopback only.

#![allow(clippy::unwrap_used)] // a benchmark: a failed unwrap is a failed run

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt as _;
use hearth_attest::policy::Policy;
use hearth_attest::{
    EvidenceBundle, Expected, VerifiedKeys, read_input, verify_bundle, verify_nitro,
};
use hearth_e2ee::{ChatPayload, KeyPair, ReplyEvent};
use hearth_testkit::bench::{cpu_seconds, median, peak_rss_mib, per_call, percentile};
use hearth_testkit::compute::{LoopbackRouter, dev_policy, stand_in_heartbeat};
use hearth_testkit::gateway_process::{GatewayProcess, config};
use hearth_testkit::llama::{LlamaServer, free_port};
use hearth_testkit::oblivious::LoopbackServer;
use hearth_testkit::research::attestation_fixture;
use serde_json::{Value, json};

fn verification() {
    println!("## evidence verification, cold and cached");
    // A real, non-debug Nitro document, verified at its own time under a
    // policy pinning its own PCRs.
    let Some(path) = attestation_fixture("blocky-nitrite/nitro_attestation.b64") else {
        return;
    };
    let bytes = std::fs::read(path).unwrap();
    let hearth_attest::evidence::Input::Document(document) = read_input(&bytes).unwrap() else {
        panic!("a raw document")
    };
    let policy: Policy =
        serde_json::from_str(&hearth_pcc::commands::policy_from(&document, "bench").unwrap())
            .unwrap();
    let at = hearth_attest::report::parse_rfc3339("2024-09-07T14:40:00Z").unwrap();
    assert!(verify_nitro(&document, Some(&policy), Expected::at(at)).passed);
    let nitro = per_call(100, |_| {
        std::hint::black_box(verify_nitro(&document, Some(&policy), Expected::at(at)));
    });

    // Dev evidence bound to a REK, through the client's cache.
    let bundle: EvidenceBundle = hearth_enclave::vectors::dev_bundle();
    let policy = hearth_enclave::vectors::policy();
    let at = Duration::from_secs(hearth_enclave::vectors::TIMESTAMP as u64 + 60);
    assert!(verify_bundle(&bundle, Some(&policy), at, None).passed);
    let cold = per_call(100, |_| {
        let mut keys = VerifiedKeys::default();
        assert!(matches!(
            keys.judge(&bundle, &policy, at),
            hearth_attest::Judgement::Verified(_)
        ));
    });
    let mut keys = VerifiedKeys::default();
    keys.judge(&bundle, &policy, at);
    let cached = per_call(100_000, |_| {
        assert!(matches!(
            keys.judge(&bundle, &policy, at),
            hearth_attest::Judgement::Cached
        ));
    });
    println!("| | time |\n| --- | --- |");
    println!(
        "| real Nitro document, cold: COSE, 5-certificate chain, ES384, policy | {:.0} us |",
        nitro / 1000.0
    );
    println!(
        "| dev evidence bundle, cold (one P-384 signature, policy, REK binding) | {:.0} us |",
        cold / 1000.0
    );
    println!(
        "| cached: a REK judged before (the same lookup for any evidence type) | {:.2} us |",
        cached / 1000.0
    );
    println!("| ratio Nitro cold / cached | {:.0}x |", nitro / cached);
}

/// The router the benchmarks use: quick heartbeats, no per-source limit.
fn bench_router() -> LoopbackRouter {
    LoopbackRouter::start(&[
        "--heartbeat-seconds",
        "1",
        "--node-timeout-seconds",
        "30",
        "--per-source-rate",
        "0",
    ])
}

/// A compute node (dev evidence) answering from `backend`, registered with
/// `router`; killed on drop. Its port too.
fn bench_node(router: &LoopbackRouter, backend: &str) -> (Killed, u16) {
    let port = free_port();
    let node = Killed(
        router
            .node_command("bench-node", port)
            .args(["--backend", backend, "--timeout-seconds", "10"])
            .env("HEARTH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    hearth_testkit::wait_until(Duration::from_secs(30), || {
        router.log_text().contains("bench-node")
    })
    .expect("the node registered");
    (node, port)
}

/// A process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gateway(providers: &[(&str, &str, &str)], policy: Option<&PathBuf>) -> GatewayProcess {
    let mut config = config(providers);
    config["hearth"]["limits"] =
        json!({"requestsPerMinutePerDevice": 1_000_000, "requestsPerMinutePerIp": 1_000_000});
    for (id, api, _) in providers {
        let provider = &mut config["models"]["providers"][*id];
        provider["timeoutSeconds"] = json!(10);
        if *api == "hearth-enclave" {
            provider["attestationPolicy"] = json!(policy.unwrap());
        }
    }
    let mut gateway = GatewayProcess::prepare(config);
    gateway.env.push(("HEARTH_LOG".into(), "warn".into()));
    gateway.launch();
    gateway
}

/// One chat through `gateway`: the time to the first text.
async fn first_token(client: &hearth_chat_client::ChatClient) -> f64 {
    let payload = ChatPayload {
        message: "hello".into(),
        // A new session each time: the conversation stays one message long.
        channel: Some(format!("bench-{}", rand::random::<u64>())),
        max_tokens: Some(2),
        temperature: None,
        images: Vec::new(),
        on_behalf_of: None,
    };
    let start = Instant::now();
    let mut first = None;
    client
        .chat(&payload, |event| match event {
            ReplyEvent::Delta { .. } => {
                first.get_or_insert_with(|| start.elapsed());
            }
            ReplyEvent::Error { code, message } => panic!("{code:?}: {message}"),
            _ => {}
        })
        .await
        .unwrap();
    first.expect("a reply with text").as_secs_f64() * 1e6
}

async fn time_to_first_token() {
    const SAMPLES: usize = 300;
    println!(
        "## time to first token: remote node versus local llama-server, {SAMPLES} samples each, interleaved"
    );
    let Some(llama) = LlamaServer::start_tcp() else {
        println!("skipped: llama-server is not built (scripts/build-llama-server.sh)");
        return;
    };
    let router = bench_router();
    let (node, node_port) = bench_node(&router, &llama.base_url);
    let dir = tempfile::tempdir().unwrap();
    let policy = dev_policy(dir.path(), "policy.json", "hearth-enclave");
    let http = reqwest::Client::new();
    let local = gateway(&[("local", "openai-completions", &llama.base_url)], None);
    let remote = gateway(&[("remote", "hearth-enclave", &router.url)], Some(&policy));
    let (local_client, remote_client) = (
        local.client(KeyPair::generate()),
        remote.client(KeyPair::generate()),
    );
    for _ in 0..20 {
        first_token(&local_client).await;
        first_token(&remote_client).await;
    }
    let (mut near, mut far, mut added) = (Vec::new(), Vec::new(), Vec::new());
    let (mut router_hop, mut node_hop) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let one = first_token(&local_client).await;
        let other = first_token(&remote_client).await;
        near.push(one);
        far.push(other);
        added.push(other - one);
        let start = Instant::now();
        http.get(format!("{}/health", router.url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        router_hop.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        http.get(format!("http://127.0.0.1:{node_port}/health"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        node_hop.push(start.elapsed().as_secs_f64() * 1e6);
    }
    paired_table(
        "gateway -> local llama-server",
        &mut near,
        "gateway -> router -> compute node -> llama-server",
        &mut far,
        &mut added,
    );
    println!(
        "| for scale: a bare HTTP exchange with the router / with the node, p50 | {:.0} / {:.0} us |",
        median(&mut router_hop),
        median(&mut node_hop)
    );
    drop(node);
}

/// A sealed chunk's size on the wire for a one-token delta (as the gateway
/// and the node send them), as an SSE event.
fn sealed_sized_event() -> Bytes {
    let filler = "A".repeat(150);
    Bytes::from(format!(
        "data: {{\"seq\":0,\"nonce\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"{filler}\"}}\n\n"
    ))
}

/// The stand-in compute node: every POST /v1/compute gets `tokens`
/// sealed-sized events `gap` apart.
async fn stand_in_node(tokens: usize, gap: Duration) -> String {
    let event = sealed_sized_event();
    let app = axum::Router::new().route(
        "/v1/compute",
        post(move || {
            let event = event.clone();
            async move {
                let stream = futures_util::stream::unfold(0usize, move |sent| {
                    let event = event.clone();
                    async move {
                        if sent == tokens {
                            return None;
                        }
                        tokio::time::sleep(gap).await;
                        Some((Ok::<Bytes, Infallible>(event), sent + 1))
                    }
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// Posts `body` to `url` and counts the SSE events of the reply.
async fn count_events(http: reqwest::Client, url: String, body: Arc<Value>) -> usize {
    let response = http.post(url).json(&*body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut tail = Vec::new();
    let mut events = 0;
    while let Some(piece) = stream.next().await {
        tail.extend_from_slice(&piece.unwrap());
        while let Some(end) = tail.windows(2).position(|window| window == b"\n\n") {
            tail.drain(..end + 2);
            events += 1;
        }
    }
    events
}

/// `streams` replies from `url` at once: the events received and their rate.
async fn round_of(
    http: &reqwest::Client,
    streams: usize,
    url: &str,
    body: &Arc<Value>,
) -> (usize, f64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| tokio::spawn(count_events(http.clone(), url.to_owned(), Arc::clone(body))))
        .collect();
    let mut events = 0;
    for task in tasks {
        events += task.await.unwrap();
    }
    (events, events as f64 / start.elapsed().as_secs_f64())
}

async fn concurrent_streams(gap: Duration) {
    const STREAMS: usize = 1000;
    const TOKENS: usize = 50;
    println!(
        "## {STREAMS} concurrent streams through the router, {TOKENS} chunks each, {} ms apart (stand-in node)",
        gap.as_millis()
    );
    let node = stand_in_node(TOKENS, gap).await;
    let router = bench_router();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(STREAMS)
        .build()
        .unwrap();
    let beat = stand_in_heartbeat("bench-node", &node, STREAMS as u32);
    let heartbeats = {
        let (http, url, token) = (
            http.clone(),
            format!("{}/v1/nodes/heartbeat", router.url),
            router.credential("bench-node"),
        );
        tokio::spawn(async move {
            loop {
                let sent = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&beat)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(sent.status(), 200);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let envelope = json!({"v": 1, "key_id": "rek-0000000000000000", "device_key": "A".repeat(43),
                          "enc": "A".repeat(43), "timestamp": 1, "request_id": "A".repeat(22),
                          "aad": "A".repeat(180), "ciphertext": "A".repeat(400)});
    let direct_body = Arc::new(envelope.clone());
    let forward_body =
        Arc::new(json!({"candidates": [{"node": "bench-node", "envelope": envelope}]}));
    let pid = router.pid();
    let mut losses = Vec::new();
    for round in 0..4 {
        let (direct, direct_rate) =
            round_of(&http, STREAMS, &format!("{node}/v1/compute"), &direct_body).await;
        let cpu_before = cpu_seconds(pid);
        let (routed, routed_rate) = round_of(
            &http,
            STREAMS,
            &format!("{}/v1/compute", router.url),
            &forward_body,
        )
        .await;
        let cpu_per_chunk = (cpu_seconds(pid) - cpu_before) / routed as f64 * 1e6;
        assert_eq!(direct, STREAMS * TOKENS);
        assert_eq!(routed, STREAMS * TOKENS);
        println!(
            "| round {round}: straight to the node / through the router | {direct_rate:.0} / {routed_rate:.0} chunks/s (router CPU {cpu_per_chunk:.1} us per chunk) |"
        );
        if round > 0 {
            losses.push(1.0 - routed_rate / direct_rate);
        }
    }
    println!(
        "| throughput loss through the router, median of rounds 1-3 | {:.1} % |",
        median(&mut losses) * 100.0
    );
    println!(
        "| the router's peak resident memory | {:.1} MiB |",
        peak_rss_mib(pid)
    );
    heartbeats.abort();
}

/// The OHTTP layer's cost: per chunk (the OHTTP gateway's seal of one
/// streamed piece, and the client's open), beside the node's own sealing of
/// that piece (the peer: work the path does anyway); and the time to first
/// token through relay and OHTTP gateway beside straight to the router.
async fn oblivious() {
    const SAMPLES: usize = 200;
    println!("## Oblivious HTTP: per chunk, and time to first token through the relay");
    // One reply event as the node seals it: the bytes the OHTTP gateway
    // then seals again, as a Binary HTTP content chunk.
    let event = ReplyEvent::Delta {
        text: " home".into(),
    };
    let secrets = hearth_e2ee::chunks::ResponseSecrets {
        key: zeroize::Zeroizing::new([7; 32]),
        nonce: zeroize::Zeroizing::new([9; 12]),
    };
    let mut node_sealer = hearth_e2ee::ChunkSealer::new(secrets, "bench");
    let piece = hearth_e2ee::chunks::sse_chunk(&mut node_sealer, &event);
    let node = per_call(20_000, |_| {
        std::hint::black_box(hearth_e2ee::chunks::sse_chunk(&mut node_sealer, &event));
    });
    let gateway_pair = hearth_ohttp::hpke::KeyPair::generate();
    let config = hearth_ohttp::KeyConfig::new(1, &gateway_pair);
    let (request, keys) =
        hearth_ohttp::encapsulate(&config, hearth_ohttp::Mode::Chunked, &[b"x"]).unwrap();
    let opened = hearth_ohttp::decapsulate(
        &request,
        hearth_ohttp::Mode::Chunked,
        |_| Some((&gateway_pair, &config)),
        None,
    )
    .unwrap();
    let mut sealer = opened.sealer;
    let mut wire = sealer.start();
    wire.extend(
        sealer
            .seal_chunk(&hearth_ohttp::bhttp::response_head(200, &[]), false)
            .unwrap(),
    );
    // The client: open each chunk and read the Binary HTTP content.
    let mut reader = keys.chunked();
    let mut stream = hearth_ohttp::bhttp::ResponseStream::new();
    for chunk in reader.push(&wire).unwrap() {
        stream.push(&chunk).unwrap();
    }
    // Chunks for the client to open, in sequence (7 runs of 20,000).
    let chunks: Vec<Vec<u8>> = (0..140_000)
        .map(|_| {
            sealer
                .seal_chunk(&hearth_ohttp::bhttp::content_chunk(piece.as_bytes()), false)
                .unwrap()
        })
        .collect();
    let mut next = 0;
    let open = per_call(20_000, |_| {
        let mut events = 0;
        for chunk in reader.push(&chunks[next]).unwrap() {
            events += stream.push(&chunk).unwrap().len();
        }
        next += 1;
        assert_eq!(events, 1);
    });
    let seal = per_call(20_000, |_| {
        std::hint::black_box(
            sealer
                .seal_chunk(&hearth_ohttp::bhttp::content_chunk(piece.as_bytes()), false)
                .unwrap(),
        );
    });

    println!("| | time |\n| --- | --- |");
    println!("| the node: seal one reply event as an SSE chunk (the peer) | {node:.0} ns |");
    println!(
        "| OHTTP gateway: frame it as Binary HTTP content and seal it as a chunk | {seal:.0} ns |"
    );
    println!("| client: open the OHTTP chunk and read the content | {open:.0} ns |");
    println!(
        "| ratio OHTTP gateway seal / node seal | {:.2} |",
        seal / node
    );

    let Some(llama) = LlamaServer::start_tcp() else {
        println!("skipped: llama-server is not built (scripts/build-llama-server.sh)");
        return;
    };
    let router = bench_router();
    let (_node, _) = bench_node(&router, &llama.base_url);
    let now = hearth_runtime::clock::since_epoch();
    let hour = Duration::from_secs(3600);
    let seeds = hearth_testkit::oblivious::seeds_json(&[(1, now - hour, now + hour)]);
    let (gateway, relay) =
        LoopbackServer::gateway_and_relay(&router.url, &seeds, &["--per-source-rate", "0"]);
    let key = hearth_ohttp::decode_keys(
        &reqwest::get(format!("{}/ohttp-keys", gateway.url))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap()
    .remove(0);
    let dir = tempfile::tempdir().unwrap();
    let policy: Policy = serde_json::from_str(
        &std::fs::read_to_string(dev_policy(dir.path(), "policy.json", "hearth-enclave")).unwrap(),
    )
    .unwrap();
    let direct = hearth_pcc::ComputeClient::new(&router.url, policy.clone(), KeyPair::generate());
    let link =
        hearth_pcc::oblivious::ObliviousLink::new(&format!("{}/", relay.url), key, &router.url)
            .unwrap();
    let through = hearth_pcc::ComputeClient::oblivious(link, policy, KeyPair::generate());
    let request = hearth_pcc::ComputeRequest {
        model: "tiny".into(),
        messages: vec![hearth_pcc::ComputeMessage {
            role: "user".into(),
            content: "hello".into(),
        }],
        max_tokens: Some(2),
        temperature: None,
    };
    for _ in 0..20 {
        first_text(&direct, &request).await;
        first_text(&through, &request).await;
    }
    let (mut near, mut far, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let one = first_text(&direct, &request).await;
        let other = first_text(&through, &request).await;
        near.push(one);
        far.push(other);
        added.push(other - one);
    }
    paired_table(
        "device -> router -> node -> llama-server",
        &mut near,
        "device -> relay -> OHTTP gateway -> router -> node -> llama-server",
        &mut far,
        &mut added,
    );
}

/// Prints the p50/p90 of a near and a far arm, and the paired added time.
fn paired_table(
    near_label: &str,
    near: &mut [f64],
    far_label: &str,
    far: &mut [f64],
    added: &mut [f64],
) {
    println!("| | p50 / p90 |\n| --- | --- |");
    println!(
        "| {near_label} | {:.0} / {:.0} us |",
        median(near),
        percentile(near, 0.9)
    );
    println!(
        "| {far_label} | {:.0} / {:.0} us |",
        median(far),
        percentile(far, 0.9)
    );
    println!(
        "| added, p50 of the paired differences | {:.0} us |",
        median(added)
    );
    println!(
        "| ratio far / near, p50 | {:.2} |",
        median(far) / median(near)
    );
}

/// Microseconds from opening `request` with `client` to its first text.
async fn first_text(
    client: &hearth_pcc::ComputeClient,
    request: &hearth_pcc::ComputeRequest,
) -> f64 {
    let start = Instant::now();
    let mut reply = client
        .open(request, hearth_runtime::clock::since_epoch())
        .await
        .unwrap();
    let mut first = None;
    while let Some(event) = reply.next().await {
        if let ReplyEvent::Delta { .. } = event.unwrap() {
            first.get_or_insert_with(|| start.elapsed());
        }
    }
    first.expect("a reply with text").as_secs_f64() * 1e6
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let parts =
        std::env::var("HEARTH_BENCH").unwrap_or_else(|_| "verify,ttft,ohttp,streams".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if parts.contains("verify") {
        verification();
    }
    if parts.contains("ttft") {
        runtime.block_on(time_to_first_token());
    }
    if parts.contains("ohttp") {
        runtime.block_on(oblivious());
    }
    if parts.contains("streams") {
        runtime.block_on(concurrent_streams(Duration::from_millis(50)));
        runtime.block_on(concurrent_streams(Duration::from_millis(20)));
    }
}
