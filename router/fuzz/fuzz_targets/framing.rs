//! Fuzzes what the router reads from the network: forward requests (the
//! candidates and their envelopes), heartbeats (fed to a registry), node
//! credentials, node URLs, and attestation requests; and what a client
//! reads back from it (node lists). Every input is taken or refused, never
//! a panic; a forward the router accepts names 1 to 3 distinct nodes; a
//! URL it takes is in an allowed network; a credential it takes was made
//! for the node it names.
#![no_main]

use std::time::Duration;

use hearth_pcc::protocol::{
    AttestRequest, Forward, Heartbeat, MAX_CANDIDATES, NodeList, check_forward,
};
use hearth_router::reach::NodeNetworks;
use hearth_router::registry::Registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(forward) = serde_json::from_slice::<Forward>(data)
        && check_forward(&forward).is_ok()
    {
        assert!((1..=MAX_CANDIDATES).contains(&forward.candidates.len()));
        let registry = Registry::new(Duration::from_secs(15), NodeNetworks::default());
        assert!(registry.order(&forward, Duration::from_secs(1)).is_empty());
    }
    if let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(data) {
        let mut registry = Registry::new(Duration::from_secs(15), NodeNetworks::default());
        let node = heartbeat.bundle.node.clone();
        if registry.heartbeat(heartbeat, Duration::from_secs(1)).is_ok() {
            assert!(registry.url(&node).is_some_and(|url| url.starts_with("http://")));
            assert_eq!(registry.list(Duration::from_secs(1)).len(), 1);
        }
    }
    let _ = serde_json::from_slice::<AttestRequest>(data);
    let _ = serde_json::from_slice::<NodeList>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let key = b"a router's node key for the fuzzer";
        if let Ok(node) = hearth_router::credential::verify(key, text) {
            assert_eq!(*hearth_router::credential::credential(key, node), text);
        }
        if let Ok(address) = NodeNetworks::default().check(text) {
            let private: [ipnet::IpNet; 5] = [
                "10.0.0.0/8".parse().unwrap(),
                "172.16.0.0/12".parse().unwrap(),
                "192.168.0.0/16".parse().unwrap(),
                "100.64.0.0/10".parse().unwrap(),
                "fc00::/7".parse().unwrap(),
            ];
            let ip = address.ip().to_canonical();
            assert!(private.iter().any(|network| network.contains(&ip)), "{text}");
            assert!(!ip.is_loopback());
        }
    }
});
