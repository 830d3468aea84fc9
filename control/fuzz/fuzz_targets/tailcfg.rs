//! Fuzzes what the coordinator reads from an official Tailscale client
//! inside a ts2021 session: `/machine/register`, `/machine/map`,
//! `/machine/set-dns` and `/machine/feature/query` bodies,
//! and map frames (length-prefixed, zstd or plain) as a client would read
//! them back, and a client's answer to a control-to-node request
//! (`GET /vip-services`, posted back as a raw HTTP response). Every input
//! is decoded or refused, never a panic.
#![no_main]

use hearth_control::tailcfg::{self, MapRequest, QueryFeatureRequest, RegisterRequest, SetDnsRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<RegisterRequest>(data) {
        let _ = request.is_logout();
        let _ = request.node_key.to_string();
    }
    if let Ok(request) = serde_json::from_slice::<MapRequest>(data) {
        let _ = request.endpoints.len();
        let _ = request.disco_key.is_zero();
    }
    if let Ok(request) = serde_json::from_slice::<SetDnsRequest>(data) {
        let _ = request.node_key.to_string();
    }
    let _ = serde_json::from_slice::<QueryFeatureRequest>(data);
    if let Ok(services) = hearth_control::c2n::parse_vip_services(data) {
        assert!(services.active.len() <= hearth_control::c2n::MAX_SERVICES);
    }
    for compressed in [false, true] {
        let mut rest = data;
        while let Ok(Some((message, next))) = tailcfg::read_frame(rest, compressed) {
            assert!(message.len() <= tailcfg::MAX_FRAME * 8);
            if next.len() >= rest.len() {
                break;
            }
            rest = next;
        }
    }
    // What the server frames, it can read back.
    if data.len() <= 4096 {
        let framed = tailcfg::frame(data, true).unwrap();
        let (message, rest) = tailcfg::read_frame(&framed, true).unwrap().unwrap();
        assert_eq!(message, data);
        assert!(rest.is_empty());
    }
});
