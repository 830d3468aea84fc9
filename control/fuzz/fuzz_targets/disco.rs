//! Fuzzes what a node reads from the network as disco: the Geneve header
//! a peer relay puts in front, the packet header, the box, and the message
//! inside (whatever the box held, as a peer who
//! knows our key could send). Every input is accepted or refused, never a
//! panic; what decodes encodes back to the bytes it was read from, up to
//! what readers are told to ignore.
#![no_main]

use hearth_control::disco::{self, Boxer, Message};
use hearth_control::geneve::{self, Geneve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, header) = geneve::classify(data);
    if let Some(header) = Geneve::decode(data) {
        assert_eq!(Geneve::decode(&header.encode()), Some(header));
    }
    let data = match header {
        Some(_) => &data[geneve::HEADER_LEN..],
        None => data,
    };
    let ours = [3u8; 32];
    if let Some(sender) = disco::sender(data) {
        let _ = Boxer::new(&ours, &sender).open(data);
    }
    if let Ok(message) = Message::decode(data) {
        let encoded = message.encode();
        assert_eq!(Message::decode(&encoded), Ok(message.clone()));
        match &message {
            Message::CallMeMaybe { endpoints } => assert!(endpoints.len() <= disco::MAX_ENDPOINTS),
            Message::CallMeMaybeVia(endpoint) | Message::AllocateRelayAnswer { endpoint, .. } => {
                assert!(!endpoint.addresses.is_empty());
                assert!(endpoint.addresses.len() <= disco::MAX_ENDPOINTS);
            }
            _ => {}
        }
    }
});
