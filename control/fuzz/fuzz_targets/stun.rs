//! Fuzzes the STUN codec the coordinator's UDP responder and the agent run on
//! untrusted datagrams: parsing never panics, and whatever parses as a
//! request gets a response that parses back to the same address.
#![no_main]

use hearth_control::stun;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(transaction) = stun::parse_binding_request(data) {
        let observed: std::net::SocketAddr = "203.0.113.9:4242".parse().unwrap();
        let response = stun::binding_response(transaction, observed);
        assert_eq!(stun::parse_binding_response(&response, transaction), Some(observed));
    }
    if data.len() >= 12 {
        let transaction: stun::TransactionId = data[..12].try_into().unwrap();
        let _ = stun::parse_binding_response(&data[12..], transaction);
        let _ = stun::parse_binding_response(data, transaction);
    }
});
