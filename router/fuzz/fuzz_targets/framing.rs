//! Fuzzes what the router reads from the network: forward requests (the
//! candidates and their envelopes), heartbeats (fed to a registry), and
//! attestation requests; and what a client reads back from it (node lists).
//! Every input is taken or refused, never a panic; a forward the router
//! accepts names 1 to 3 distinct nodes.
#![no_main]

use std::time::Duration;

use hearth_pcc::protocol::{
    AttestRequest, Forward, Heartbeat, MAX_CANDIDATES, NodeList, check_forward,
};
use hearth_router::registry::Registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(forward) = serde_json::from_slice::<Forward>(data)
        && check_forward(&forward).is_ok()
    {
        assert!((1..=MAX_CANDIDATES).contains(&forward.candidates.len()));
        let registry = Registry::new(Duration::from_secs(15));
        assert!(registry.order(&forward, Duration::from_secs(1)).is_empty());
    }
    if let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(data) {
        let mut registry = Registry::new(Duration::from_secs(15));
        let node = heartbeat.bundle.node.clone();
        if registry.heartbeat(heartbeat, Duration::from_secs(1)).is_ok() {
            assert!(registry.url(&node).is_some_and(|url| url.starts_with("http://")));
            assert_eq!(registry.list(Duration::from_secs(1)).len(), 1);
        }
    }
    let _ = serde_json::from_slice::<AttestRequest>(data);
    let _ = serde_json::from_slice::<NodeList>(data);
});
