//! Fuzzes what a gateway receives and what a client receives: request
//! envelopes (parsed, shape-checked, opened with a fixed gateway key), chat
//! payloads, and reply chunks (parsed and opened). Every input gives a value
//! or an error, never a panic; nothing but the real sender's envelope opens.
#![no_main]

use hearth_e2ee::chunks::ResponseSecrets;
use hearth_e2ee::envelope::check_shape;
use hearth_e2ee::{ChatEnvelope, ChatPayload, ChunkOpener, KeyPair, ReplyEvent, SealedChunk, open_request};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let gateway = KeyPair::from_private(&[7; 32]).unwrap();
    if let Ok(envelope) = serde_json::from_slice::<ChatEnvelope>(data) {
        let _ = check_shape(&envelope);
        // Only an envelope sealed to this key by a real sender opens; the
        // fuzzer cannot forge one, so opening must fail cleanly.
        assert!(open_request(&envelope, &gateway).is_err());
    }
    let _ = serde_json::from_slice::<ChatPayload>(data);
    let _ = serde_json::from_slice::<ReplyEvent>(data);
    if let Ok(chunk) = serde_json::from_slice::<SealedChunk>(data) {
        let secrets = ResponseSecrets { key: Zeroizing::new([1; 32]), nonce: Zeroizing::new([2; 12]) };
        let mut opener = ChunkOpener::new(secrets, "fuzz-request-0000");
        assert!(opener.open(&chunk).is_err(), "a forged chunk opened");
        assert!(opener.finish().is_err());
    }
});
