//! Fuzzes what the OHTTP gateway, the relay's clients and the config
//! server's clients read from the network: encapsulated requests (whole and
//! chunked) against a fixed key, chunked responses fed in arbitrary pieces,
//! `application/ohttp-keys` bodies, seeds JSON, and Binary HTTP requests and
//! responses. Every input is taken or refused, never a panic; a decoded
//! Binary HTTP message encodes to bytes that decode to the same message.
#![no_main]

use hearth_ohttp::bhttp::{Request, Response};
use hearth_ohttp::hpke::KeyPair;
use hearth_ohttp::{KeyConfig, Mode, decapsulate, decode_keys, encapsulate, parse_seeds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gateway = KeyPair::derive(&[7; 32]);
    let config = KeyConfig::new(1, &gateway);
    for mode in [Mode::Whole, Mode::Chunked] {
        let _ = decapsulate(data, mode, |id| (id == 1).then_some((&gateway, &config)), None);
    }
    // A chunked response read in pieces cut where the input says.
    if let Some((&cut, body)) = data.split_first()
        && let Ok((_, keys)) = encapsulate(&config, Mode::Chunked, &[b"x"])
    {
        let mut reader = keys.chunked();
        let step = usize::from(cut).max(1);
        for piece in body.chunks(step) {
            if reader.push(piece).is_err() {
                break;
            }
        }
        let _ = reader.finish();
    }
    let _ = decode_keys(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_seeds(text);
    }
    if let Ok(request) = Request::decode(data) {
        let again = Request::decode(&request.encode()).expect("an encoded request decodes");
        assert_eq!(again, request, "a request survives re-encoding");
    }
    if let Ok(response) = Response::decode(data) {
        let again = Response::decode(&response.encode()).expect("an encoded response decodes");
        assert_eq!(again, response, "a response survives re-encoding");
    }
});
