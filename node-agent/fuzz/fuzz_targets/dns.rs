//! Fuzzes MagicDNS's message reader with what any local program may send
//! to 100.100.100.100: a query is read or refused, never a panic; a reply
//! made for it carries the query's id and question and reads back.
#![no_main]

// The module is free of IO and depends only on `thiserror`: included by
// path so the fuzzer builds without the agent's network stack.
#[allow(dead_code, unreachable_pub)]
#[path = "../../src/dns/message.rs"]
mod message;

use libfuzzer_sys::fuzz_target;
use message::{NOERROR, parse_query, reply};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = parse_query(data) else {
        return;
    };
    let answers = ["100.64.0.2".parse().unwrap(), "fd7a:115c:a1e0::2".parse().unwrap()];
    let packet = reply(&query, NOERROR, true, &answers);
    assert_eq!(packet[..2], data[..2], "the query's id");
    assert_ne!(packet[2] & 0x80, 0, "a response");
    // As a query again (the response bit cleared), it is the same question.
    let mut again = packet.clone();
    again[2] &= 0x7f;
    let reread = parse_query(&again).expect("a reply reads back");
    assert_eq!(reread.name, query.name);
    assert_eq!(reread.kind, query.kind);
});
