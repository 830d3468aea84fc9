//! Fuzzes what a node reads from the network as disco: the packet header,
//! the box, and the message inside (whatever the box held, as a peer who
//! knows our key could send). Every input is accepted or refused, never a
//! panic; what decodes encodes back to the bytes it was read from, up to
//! what readers are told to ignore.
#![no_main]

use hearth_control::disco::{self, Boxer, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = [3u8; 32];
    if let Some(sender) = disco::sender(data) {
        let _ = Boxer::new(&ours, &sender).open(data);
    }
    if let Ok(message) = Message::decode(data) {
        let encoded = message.encode();
        assert_eq!(Message::decode(&encoded), Ok(message.clone()));
        if let Message::CallMeMaybe { endpoints } = &message {
            assert!(endpoints.len() <= disco::MAX_ENDPOINTS);
        }
    }
});
