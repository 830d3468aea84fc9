//! The whole oblivious path between network namespaces: a device runs
//! `hearth-pcc chat --config` -> relay -> OHTTP gateway -> router -> a
//! compute node (dev evidence) -> llama-server, the reply streaming back.
//! Captures show who sees what: the relay carries no plaintext and no inner
//! request, the OHTTP gateway never sees the device's address, the router
//! sees neither the device nor the prompt; no log holds the prompt. Needs
//! root (namespaces), tcpdump and the cached llama-server; outside CI the
//! test skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hearth_testkit::compute::{IMAGE, ROUTER_PORT, dev_policy, wait_for_nodes};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::oblivious::{AUTH_PORT, GATEWAY_PORT, RELAY_PORT, seeds_json};
use hearth_testkit::{Lab, binary, contains, pcap_frames};

const HOUR: Duration = Duration::from_secs(3600);

/// Whether any IPv4 frame in `capture` comes from or goes to `address`.
fn mentions(capture: &[u8], address: Ipv4Addr) -> bool {
    pcap_frames(capture).iter().any(|frame| {
        // Ethernet, then IPv4: source at 26..30, destination at 30..34.
        frame.len() >= 34
            && frame[12..14] == [0x08, 0x00]
            && (frame[26..30] == address.octets() || frame[30..34] == address.octets())
    })
}

#[test]
fn a_device_reaches_a_node_through_the_relay_and_no_one_sees_both_who_and_what() {
    let Some(mut lab) = Lab::new() else { return };
    let Some(llama) = LlamaServer::start_unix() else {
        return;
    };
    let (device, relay_host, gateway_host, router_host, node_host, auth_host) = (
        lab.host("device"),
        lab.host("relay"),
        lab.host("ohttp"),
        lab.host("router"),
        lab.host("node-a"),
        lab.host("auth"),
    );
    let router = lab.start_router(&router_host);
    let _node = lab.start_node(&node_host, "node-a", IMAGE, &router, &llama.base_url);
    let forward = lab.forward(
        &router_host,
        SocketAddr::from((router_host.address, ROUTER_PORT)),
    );
    wait_for_nodes(&lab, forward, &["node-a"], Duration::from_secs(30));

    let now = hearth_runtime::clock::since_epoch();
    let seeds = seeds_json(&[(1, now - HOUR, now + HOUR)]);
    let router_url = format!("http://{}:{ROUTER_PORT}", router_host.address);
    let gateway_url = format!("http://{}:{GATEWAY_PORT}/gateway", gateway_host.address);
    let relay_url = format!("http://{}:{RELAY_PORT}/", relay_host.address);
    let policy = dev_policy(lab.dir.path(), "policy.json", IMAGE);
    let gateway = lab.start_ohttp_gateway(&gateway_host, &seeds, &format!("{router_url}/v1/"));
    let relay = lab.start_relay(&relay_host, &gateway_url);
    let auth = lab.start_auth(
        &auth_host,
        &seeds,
        [&relay_url, &gateway_url, &router_url],
        &policy,
    );

    let relay_wire = lab.capture(&relay_host, "relay-wire", &["tcp"]);
    let gateway_wire = lab.capture(&gateway_host, "gateway-wire", &["tcp"]);
    let router_wire = lab.capture(&router_host, "router-wire", &["tcp"]);

    let secret = format!("CANARY-oblivious-{:016x}", rand::random::<u64>());
    // The config server publishes a policy that accepts dev evidence: a
    // client without a policy of its own does not take that on its word
    // (the second review), and sends nothing.
    let refused = lab
        .command(&device, binary("hearth-pcc"))
        .args([
            "chat",
            "--config",
            &format!("http://{}:{AUTH_PORT}", auth_host.address),
        ])
        .args(["--model", "tiny", "--max-tokens", "8"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("dev evidence") && said.contains("--policy"),
        "{said}"
    );
    // With its own policy (the same one), the client goes ahead.
    let output = lab
        .command(&device, binary("hearth-pcc"))
        .args([
            "chat",
            "--config",
            &format!("http://{}:{AUTH_PORT}", auth_host.address),
        ])
        .arg("--policy")
        .arg(&policy)
        .args(["--model", "tiny", "--max-tokens", "8"])
        .arg(&secret)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "hearth-pcc chat --config failed: {said}\n{}",
        lab.logs()
    );
    assert!(said.contains("[node node-a]"), "{said}");
    assert!(!output.stdout.is_empty());

    let (relay_seen, gateway_seen, router_seen) =
        (relay_wire.stop(), gateway_wire.stop(), router_wire.stop());
    // The relay carried OHTTP, and nothing it could read.
    assert!(
        contains(&relay_seen, b"message/ohttp-chunked-req"),
        "the relay carried the request"
    );
    assert!(
        !contains(&relay_seen, secret.as_bytes()),
        "the prompt crossed the relay in clear"
    );
    assert!(
        !contains(&relay_seen, b"/v1/compute"),
        "the inner request was readable at the relay"
    );
    assert!(
        !contains(&relay_seen, b"node-a"),
        "the inner request's candidates were readable at the relay"
    );
    // The OHTTP gateway talked with the relay and the router, never the device.
    assert!(
        mentions(&gateway_seen, relay_host.address),
        "the gateway heard from the relay"
    );
    assert!(
        !mentions(&gateway_seen, device.address),
        "the OHTTP gateway saw the device's address"
    );
    assert!(
        !contains(&gateway_seen, secret.as_bytes()),
        "the prompt crossed the gateway's links in clear"
    );
    // The router: the forwarded request, from the gateway, sealed.
    assert!(
        contains(&router_seen, b"POST /v1/compute"),
        "the router got the forward"
    );
    assert!(
        !mentions(&router_seen, device.address),
        "the router saw the device's address"
    );
    assert!(
        !mentions(&router_seen, relay_host.address),
        "the router saw the relay"
    );
    assert!(
        !contains(&router_seen, secret.as_bytes()),
        "the prompt crossed the router's links in clear"
    );
    // No log holds the prompt.
    for (what, log) in [
        ("relay", relay.log_text()),
        ("OHTTP gateway", gateway.log_text()),
        ("router", router.process.log_text()),
        ("config server", auth.log_text()),
    ] {
        assert!(!log.contains(&secret), "the {what}'s log holds the prompt");
    }
}
