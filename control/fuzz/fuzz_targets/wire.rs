//! Fuzzes what arrives from the network or the user on the control plane:
//! registration and key-rotation bodies, endpoint and route reports, map and approval stream
//! lines, a zstd-compressed map stream's frames, and join tokens. Parsing
//! gives a value or an error, never a panic, a parsed map message survives
//! re-encoding, and decompression never outgrows what was asked for.
#![no_main]

use bytes::BytesMut;
use hearth_control::JoinToken;
use hearth_control::compression::FrameReader;
use hearth_control::wire::{
    ApprovalMessage, EndpointReport, MapMessage, RegisterRequest, RotateRequest, RotateResponse,
    RoutesReport,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<RegisterRequest>(data).map(|request| request.csr_bytes());
    let _ = serde_json::from_slice::<RotateRequest>(data).map(|request| request.csr_bytes());
    let _ = serde_json::from_slice::<RotateResponse>(data);
    let _ = serde_json::from_slice::<EndpointReport>(data);
    let _ = serde_json::from_slice::<RoutesReport>(data);
    let _ = serde_json::from_slice::<ApprovalMessage>(data);
    if let Ok(message) = serde_json::from_slice::<MapMessage>(data) {
        let again = serde_json::to_vec(&message).unwrap();
        assert_eq!(serde_json::from_slice::<MapMessage>(&again).unwrap(), message);
    }
    let mut frames = FrameReader::new().unwrap();
    frames.push(bytes::Bytes::copy_from_slice(data));
    let mut out = BytesMut::new();
    while frames.has_more() {
        match frames.read_into(&mut out, 4096) {
            Ok(_) => assert!(out.len() <= 4096 + 64 * 1024),
            Err(_) => break,
        }
        out.clear();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = JoinToken::decode(text);
    }
});
