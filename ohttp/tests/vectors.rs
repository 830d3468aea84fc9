//! The published vectors, read from `../shared/research/ohttp-vectors`
//! (never copied into the project): RFC 9458 appendix A and the chunked
//! OHTTP draft's example reproduced byte for byte in both directions, the
//! seed-to-key-config vector, and the RFC 9292 examples round-tripped
//! exactly.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use hearth_ohttp::bhttp::{Request, Response};
use hearth_ohttp::hpke::KeyPair;
use hearth_ohttp::{KeyConfig, Mode, decapsulate, encapsulate_with};
use hearth_testdata::research_file;
use serde_json::Value;

fn vector(name: &str) -> Option<Value> {
    let path = research_file(&format!("ohttp-vectors/{name}"))?;
    Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

fn bytes(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

fn key(value: &Value) -> KeyPair {
    KeyPair::from_secret(bytes(value).try_into().unwrap())
}

#[test]
fn rfc_9458_appendix_a_is_reproduced_both_ways() {
    let Some(v) = vector("rfc9458-appendix-a.json") else {
        return;
    };
    let gateway = key(&v["gateway_x25519_secret_key"]);
    let config = KeyConfig::new(1, &gateway);
    assert_eq!(config.encode(), bytes(&v["key_config"]));
    assert_eq!(KeyConfig::decode(&bytes(&v["key_config"])).unwrap(), config);

    let request = bytes(&v["bhttp_request"]);
    let ephemeral = key(&v["client_ephemeral_secret_key"]);
    let (encapsulated, keys) =
        encapsulate_with(&config, Mode::Whole, &[&request], &ephemeral).unwrap();
    assert_eq!(encapsulated, bytes(&v["encapsulated_request"]));

    let nonce = bytes(&v["response_nonce"]);
    let opened = decapsulate(
        &encapsulated,
        Mode::Whole,
        |id| (id == 1).then_some((&gateway, &config)),
        Some(&nonce),
    )
    .unwrap();
    assert_eq!(opened.request.as_slice(), request.as_slice());
    let response = opened.sealer.seal_whole(&bytes(&v["bhttp_response"]));
    assert_eq!(response, bytes(&v["encapsulated_response"]));
    assert_eq!(
        keys.open_whole(&response).unwrap().as_slice(),
        bytes(&v["bhttp_response"]).as_slice()
    );

    // What is inside: GET https://example.com/, and a bare 200.
    let inner = Request::decode(&request).unwrap();
    assert_eq!(
        (
            &inner.method[..],
            &inner.scheme[..],
            &inner.authority[..],
            &inner.path[..]
        ),
        (&b"GET"[..], &b"https"[..], &b"example.com"[..], &b"/"[..])
    );
    assert_eq!(
        Response::decode(&bytes(&v["bhttp_response"]))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn the_chunked_ohttp_example_is_reproduced_both_ways() {
    let Some(v) = vector("chunked-ohttp-example.json") else {
        return;
    };
    let gateway = key(&v["gateway_x25519_secret_key"]);
    let config = KeyConfig::new(1, &gateway);
    assert_eq!(config.encode(), bytes(&v["key_config"]));

    let chunks: Vec<Vec<u8>> = v["request_plaintext_chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(bytes)
        .collect();
    let parts: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let ephemeral = key(&v["client_ephemeral_secret_key"]);
    let (encapsulated, keys) =
        encapsulate_with(&config, Mode::Chunked, &parts, &ephemeral).unwrap();
    assert_eq!(encapsulated, bytes(&v["encapsulated_request"]));

    let nonce = bytes(&v["response_nonce"]);
    let opened = decapsulate(
        &encapsulated,
        Mode::Chunked,
        |id| (id == 1).then_some((&gateway, &config)),
        Some(&nonce),
    )
    .unwrap();
    assert_eq!(
        opened.request.as_slice(),
        bytes(&v["bhttp_request"]).as_slice()
    );
    let mut sealer = opened.sealer;
    let mut response = sealer.start();
    let plain: Vec<Vec<u8>> = v["response_plaintext_chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(bytes)
        .collect();
    for (index, chunk) in plain.iter().enumerate() {
        response.extend(sealer.seal_chunk(chunk, index + 1 == plain.len()).unwrap());
    }
    assert_eq!(response, bytes(&v["encapsulated_response"]));

    // The client reads it as it arrives, in the vector's own parts.
    let mut reader = keys.chunked();
    let mut text = Vec::new();
    for part in v["encapsulated_response_parts"].as_array().unwrap() {
        for chunk in reader.push(&bytes(part)).unwrap() {
            text.extend_from_slice(&chunk);
        }
    }
    text.extend_from_slice(&reader.finish().unwrap());
    assert_eq!(text, bytes(&v["bhttp_response"]));
}

#[test]
fn a_key_config_derived_from_a_seed_matches_the_published_one() {
    let Some(v) = vector("ohttp-keyconfig-derive.json") else {
        return;
    };
    let pair = KeyPair::derive(&bytes(&v["ikm"]));
    assert_eq!(
        pair.secret().as_slice(),
        bytes(&v["derived_secret_key"]).as_slice()
    );
    assert_eq!(
        KeyConfig::new(1, &pair).encode(),
        bytes(&v["expected_key_config"])
    );
}

#[test]
fn the_rfc_9292_examples_round_trip_exactly() {
    let Some(v) = vector("rfc9292-examples.json") else {
        return;
    };
    for name in ["request_known_length", "request_indeterminate_length"] {
        let wire = bytes(&v[name]);
        let request = Request::decode(&wire).unwrap();
        assert_eq!(request.encode(), wire, "{name}");
        assert_eq!(request.path, b"/hello.txt");
        assert_eq!(request.header("host"), Some(&b"www.example.com"[..]));
        assert_eq!(request.header("accept-language"), Some(&b"en, mi"[..]));
    }
    // Up to 12 trailing zero bytes of the indeterminate form can be cut
    // without changing its meaning; the 13th is the header terminator.
    let wire = bytes(&v["request_indeterminate_length"]);
    let whole = Request::decode(&wire).unwrap();
    let cut = Request::decode(&wire[..wire.len() - 12]).unwrap();
    assert_eq!(
        (cut.headers, cut.content, cut.trailers),
        (whole.headers, whole.content, whole.trailers)
    );
    assert!(Request::decode(&wire[..wire.len() - 13]).is_err());

    let wire = bytes(&v["response_indeterminate_length_with_interim"]);
    let response = Response::decode(&wire).unwrap();
    assert_eq!(response.encode(), wire);
    let statuses: Vec<u16> = response
        .interim
        .iter()
        .map(|interim| interim.status)
        .collect();
    assert_eq!((statuses, response.status), (vec![102, 103], 200));
    assert_eq!(
        response.content,
        b"Hello World! My content includes a trailing CRLF.\r\n"
    );
    assert_eq!(response.header("content-length"), Some(&b"51"[..]));

    for name in [
        "chunked_response_known_length",
        "chunked_response_indeterminate_length_from_bhttp_crate_test",
    ] {
        let wire = bytes(&v[name]);
        let response = Response::decode(&wire).unwrap();
        assert_eq!(response.encode(), wire, "{name}");
        assert_eq!(response.content, b"This content contains CRLF.\r\n");
        assert_eq!(
            response.trailers,
            vec![(b"trailer".to_vec(), b"text".to_vec())]
        );
    }
    for (name, expected) in [
        ("minimal_request_rfc9458", true),
        ("minimal_response_rfc9458", false),
    ] {
        let wire =
            hex::decode(v[name].as_str().unwrap().split_whitespace().next().unwrap()).unwrap();
        if expected {
            assert_eq!(Request::decode(&wire).unwrap().encode(), wire);
        } else {
            assert_eq!(Response::decode(&wire).unwrap().encode(), wire);
        }
    }
}
