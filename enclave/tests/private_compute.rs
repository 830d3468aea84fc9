//! Private compute end to end, between network namespaces: the gateway (as
//! the client) -> the router -> compute nodes in dev evidence mode, each
//! with its own llama-server. The router forwards what it cannot read; a
//! node whose evidence does not match the policy receives nothing; a node
//! that dies mid-reply ends that reply with an error and the next request
//! goes to the other. Needs root (namespaces) and the cached llama-server;
//! outside CI these tests skip without them.
//!
//! Dev evidence stands in for AWS Nitro attestation here (no Nitro Enclave
//! can run on this machine); the policy these tests write allows it, the
//! default policy does not.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hearth_e2ee::envelope::{COMPUTE_INFO, seal_request_to};
use hearth_e2ee::{ChatPayload, ErrorCode, KeyPair, ReplyEvent};
use hearth_pcc::ComputeClient;
use hearth_testkit::compute::{
    IMAGE, Node, ROUTER_PORT, Router, dev_policy, listed_nodes, wait_for_nodes,
};
use hearth_testkit::gateway_process::{GatewayProcess, config};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::{
    Forward, Host, Lab, binary, contains, memory_contains, pcap_frames, wait_until,
};
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

/// A router and nodes in a lab, the policy trusting honest nodes, and a
/// loopback port into the router through the hub (so the gateway's traffic
/// crosses the lab's wire).
struct Compute {
    lab: Lab,
    hub: Host,
    router: Router,
    nodes: Vec<Node>,
    llamas: Vec<LlamaServer>,
    forward: Forward,
    policy: PathBuf,
}

impl Compute {
    /// `honest` nodes stating the trusted image and `tampered` ones stating
    /// another, each with its own llama-server.
    fn start(honest: &[&str], tampered: &[&str]) -> Option<Compute> {
        let mut lab = Lab::new()?;
        let hub = lab.host("hub");
        let router_host = lab.host("router");
        let router = lab.start_router(&router_host);
        let mut nodes = Vec::new();
        let mut llamas = Vec::new();
        for (id, image) in honest
            .iter()
            .map(|id| (*id, IMAGE))
            .chain(tampered.iter().map(|id| (*id, "another image")))
        {
            let llama = LlamaServer::start_unix()?;
            let host = lab.host(id);
            nodes.push(lab.start_node(&host, id, image, &router, &llama.base_url));
            llamas.push(llama);
        }
        let forward = lab.forward(&hub, SocketAddr::from((router_host.address, ROUTER_PORT)));
        let ids: Vec<&str> = honest.iter().chain(tampered).copied().collect();
        wait_for_nodes(&lab, forward, &ids, 30 * SECOND);
        let policy = dev_policy(lab.dir.path(), "policy.json", IMAGE);
        Some(Compute {
            lab,
            hub,
            router,
            nodes,
            llamas,
            forward,
            policy,
        })
    }

    fn router_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.forward.port)
    }

    /// A gateway whose providers are `providers` (`(id, api, url)`), the
    /// remote ones under the test's policy, replies up to `max_tokens`.
    fn gateway(&self, providers: &[(&str, &str, &str)], max_tokens: u32) -> GatewayProcess {
        let mut config = config(providers);
        for (id, api, _) in providers {
            let provider = &mut config["models"]["providers"][*id];
            provider["timeoutSeconds"] = json!(10);
            provider["models"][0]["maxTokens"] = json!(max_tokens);
            if *api == "hearth-enclave" {
                provider["attestationPolicy"] = json!(self.policy);
            }
        }
        GatewayProcess::start(config)
    }

    fn node(&mut self, id: &str) -> &mut Node {
        self.nodes.iter_mut().find(|node| node.id == id).unwrap()
    }
}

fn canary(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("CANARY-{label}-{:08x}{nanos:08x}", std::process::id())
}

fn payload(message: &str, max_tokens: u32) -> ChatPayload {
    ChatPayload {
        message: message.to_owned(),
        channel: None,
        max_tokens: Some(max_tokens),
        temperature: None,
        images: Vec::new(),
        on_behalf_of: None,
    }
}

/// Asks the gateway; the model that answered, the text, and the final event.
async fn ask(
    gateway: &GatewayProcess,
    message: &str,
    max_tokens: u32,
) -> (String, String, ReplyEvent) {
    let (mut model, mut text, mut last) = (String::new(), String::new(), None);
    gateway
        .client(KeyPair::generate())
        .chat(&payload(message, max_tokens), |event| match event {
            ReplyEvent::Meta { model: named, .. } => model = named.clone(),
            ReplyEvent::Delta { text: more } => text.push_str(more),
            other => last = Some(other.clone()),
        })
        .await
        .unwrap_or_else(|error| panic!("the chat failed: {error}\n{}", gateway.log_text()));
    (model, text, last.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_through_the_router_is_read_only_by_an_attested_node() {
    let Some(mut compute) = Compute::start(&["node-a", "node-b"], &["node-c"]) else {
        return;
    };
    let policy =
        hearth_attest::Policy::parse(&std::fs::read_to_string(&compute.policy).unwrap()).unwrap();

    // The client's view: the honest nodes verify, the tampered one is
    // refused with the measurement it failed named.
    let client = ComputeClient::new(&compute.router_url(), policy.clone(), KeyPair::generate());
    let judged = client
        .judged_nodes(hearth_runtime::clock::since_epoch())
        .await
        .unwrap();
    for node in &judged {
        let trusted = node.judgement.trusted();
        assert_eq!(
            trusted,
            node.entry.node != "node-c",
            "{}: {:?}",
            node.entry.node,
            node.judgement
        );
    }
    let refused = hearth_pcc::commands::nodes(&judged, hearth_pcc::commands::Output::Text);
    assert!(refused.contains("FAIL  measurements  PCR2 is"), "{refused}");

    let router_host = compute.router.host.clone();
    let tampered_host = compute.node("node-c").host.clone();
    let wire = compute.lab.capture(&router_host, "router-wire", &[]);
    let tampered_wire =
        compute
            .lab
            .capture(&tampered_host, "tampered-wire", &["tcp", "port", "7000"]);

    // Through the gateway: the device seals to the gateway, the gateway to a node.
    let gateway = compute.gateway(&[("remote", "hearth-enclave", &compute.router_url())], 24);
    let secret = canary("gateway");
    let mut replies = Vec::new();
    for _ in 0..3 {
        let (model, text, last) = ask(&gateway, &secret, 24).await;
        assert_eq!(model, "remote/tiny");
        assert!(matches!(last, ReplyEvent::Done { .. }), "{last:?}");
        assert!(!text.is_empty());
        replies.push(text);
    }

    // From a device in the lab with hearth-pcc: sealed on the device, so
    // neither the hub nor the router can read it.
    let device_secret = canary("device");
    let output = compute
        .lab
        .command(&compute.hub, binary("hearth-pcc"))
        .args([
            "chat",
            "--router",
            &compute.router.url,
            "--model",
            "tiny",
            "--max-tokens",
            "8",
        ])
        .arg("--policy")
        .arg(&compute.policy)
        .arg(&device_secret)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hearth-pcc chat failed: {said}");
    assert!(
        said.contains("[node node-a]") || said.contains("[node node-b]"),
        "{said}"
    );
    assert!(!output.stdout.is_empty());

    let seen = wire.stop();
    let tampered_seen = tampered_wire.stop();
    assert!(
        contains(&seen, b"POST /v1/compute"),
        "the capture saw the forwarded requests ({} frames, {} bytes): {}",
        pcap_frames(&seen).len(),
        seen.len(),
        compute.lab.logs()
    );
    assert!(
        contains(&seen, b"event: chunk"),
        "the capture saw the sealed replies"
    );
    for secret in [&secret, &device_secret] {
        assert!(
            !contains(&seen, secret.as_bytes()),
            "the prompt crossed the router's links in clear"
        );
    }
    for reply in replies.iter().filter(|reply| reply.len() >= 16) {
        assert!(
            !contains(&seen, reply.as_bytes()),
            "a reply crossed the router's links in clear"
        );
    }
    assert!(
        pcap_frames(&tampered_seen).is_empty(),
        "the node whose evidence failed the policy was sent something"
    );

    // What the router logs and holds in memory.
    let log = compute.router.process.log_text();
    assert!(log.contains("compute node joined"), "{log}");
    let pid = compute.router.process.child.id();
    let token = std::fs::read_to_string(&compute.router.token_file).unwrap();
    assert!(
        memory_contains(pid, token.trim().as_bytes()),
        "the memory scan reads the router's memory"
    );
    for secret in [&secret, &device_secret] {
        assert!(!log.contains(secret.as_str()));
        assert!(
            !memory_contains(pid, secret.as_bytes()),
            "the prompt is in the router's memory"
        );
    }

    // Nothing the router keeps opens a request sealed to a node: not its
    // files, not any 32-byte window of them.
    let rek = judged
        .iter()
        .find(|node| node.entry.node == "node-a")
        .unwrap()
        .entry
        .bundle
        .rek_bytes()
        .unwrap();
    let (envelope, _) = seal_request_to(
        COMPUTE_INFO,
        &rek,
        &hearth_pcc::key_id(&rek),
        &KeyPair::generate(),
        b"{\"model\":\"tiny\",\"messages\":[]}",
        0,
    )
    .unwrap();
    let mut tried = 0;
    for entry in std::fs::read_dir(&compute.router.state).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for window in bytes.windows(32) {
            let Ok(key) = KeyPair::from_private(window) else {
                continue;
            };
            let opened = hearth_e2ee::envelope::open_request_with(
                &envelope,
                &key.receiver_for(COMPUTE_INFO),
            );
            assert!(
                opened.is_err(),
                "a key from the router's files opened a request"
            );
            tried += 1;
        }
    }
    assert!(tried > 0, "the router's state was read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_reply_ends_that_reply_with_an_error_and_the_next_goes_to_the_other() {
    let Some(mut compute) = Compute::start(&["node-a", "node-b"], &[]) else {
        return;
    };
    let gateway = compute.gateway(&[("remote", "hearth-enclave", &compute.router_url())], 1000);
    let forward = compute.forward;
    let mut killed = None;
    let mut events = Vec::new();
    gateway
        .client(KeyPair::generate())
        .chat(&payload("tell me a long story", 1000), |event| {
            if matches!(event, ReplyEvent::Delta { .. }) && killed.is_none() {
                // Hold both models where they are, find the node answering,
                // and kill it.
                for llama in &compute.llamas {
                    llama.freeze();
                }
                let busy = listed_nodes(forward)
                    .into_iter()
                    .find(|(_, active)| *active > 0)
                    .map(|(id, _)| id)
                    .expect("a node is answering");
                compute.node(&busy).process.kill();
                for llama in &compute.llamas {
                    llama.thaw();
                }
                killed = Some(busy);
            }
            events.push(event.clone());
        })
        .await
        .unwrap();
    let killed = killed.expect("the reply streamed");
    let last = events.last().unwrap();
    assert!(
        matches!(
            last,
            ReplyEvent::Error {
                code: ErrorCode::BackendFailed,
                ..
            }
        ),
        "the cut reply ends with a clear error, not silently: {last:?}"
    );

    // The next request goes to the node still alive, at once.
    let survivor = if killed == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    let (model, text, last) = ask(&gateway, "and another", 16).await;
    assert_eq!(model, "remote/tiny");
    assert!(
        matches!(last, ReplyEvent::Done { .. }) && !text.is_empty(),
        "{last:?}"
    );
    let served = wait_until(5 * SECOND, || {
        listed_nodes(forward)
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
            == [survivor]
    });
    assert!(
        served.is_some(),
        "the killed node left rotation: {:?}",
        listed_nodes(forward)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_node_and_a_local_model_fail_over_to_each_other() {
    let Some(compute) = Compute::start(&["node-a"], &[]) else {
        return;
    };
    let Some(mut local) = LlamaServer::start_tcp() else {
        return;
    };
    let remote_url = compute.router_url();

    // Remote primary, local fallback: a policy no node passes sends
    // nothing remote and the local model answers.
    let refusing = dev_policy(
        compute.lab.dir.path(),
        "refusing.json",
        "an image no node runs",
    );
    let mut config = config(&[
        ("remote", "hearth-enclave", &remote_url),
        ("local", "openai-completions", &local.base_url),
    ]);
    config["models"]["providers"]["remote"]["attestationPolicy"] = json!(refusing);
    let gateway = GatewayProcess::start(config);
    let (model, _, last) = ask(&gateway, "hello", 8).await;
    assert_eq!(model, "local/tiny", "{}", gateway.log_text());
    assert!(matches!(last, ReplyEvent::Done { .. }));
    drop(gateway);

    // Remote primary that passes: it answers.
    let gateway = compute.gateway(
        &[
            ("remote", "hearth-enclave", &remote_url),
            ("local", "openai-completions", &local.base_url),
        ],
        8,
    );
    assert_eq!(ask(&gateway, "hello", 8).await.0, "remote/tiny");
    drop(gateway);

    // Local primary down, remote fallback: the remote node answers.
    let gateway = compute.gateway(
        &[
            ("local", "openai-completions", &local.base_url),
            ("remote", "hearth-enclave", &remote_url),
        ],
        8,
    );
    assert_eq!(ask(&gateway, "hello", 8).await.0, "local/tiny");
    local.kill();
    let (model, _, last) = ask(&gateway, "hello again", 8).await;
    assert_eq!(model, "remote/tiny", "{}", gateway.log_text());
    assert!(matches!(last, ReplyEvent::Done { .. }));
}
