//! Fuzzes what the DERP relay reads from a client (frame headers, the
//! client-info login: a key and a NaCl box, send-packet frames) and what a
//! client reads from a relay (its greeting and frames).
//! Every input is accepted or refused, never a panic; a box that opens
//! came from the key it names.
#![no_main]

use hearth_control::derp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, length))) = derp::header(rest, derp::MAX_FRAME) {
        assert!(length <= derp::MAX_FRAME);
        let Some(next) = rest.get(derp::HEADER_LEN + length..) else {
            break;
        };
        let payload = &rest[derp::HEADER_LEN..derp::HEADER_LEN + length];
        let _ = derp::split_send(payload);
        // What a relay sends an agent.
        let _ = derp::server_frame(rest[0], payload);
        let _ = derp::parse_server_key(payload);
        if let Ok((client, _)) = derp::open_client_info(&[3; 32], payload) {
            assert_eq!(&payload[..32], &client);
        }
        rest = next;
    }
    let _ = derp::open(&[3; 32], &[4; 32], data);
});
