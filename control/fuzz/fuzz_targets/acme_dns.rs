//! Fuzzes the coordinator's ACME challenge DNS server with what anyone on
//! the internet may send it, over UDP and TCP: a reply or nothing, never a
//! panic; a reply carries the query's id, fits UDP's 512 bytes (or says it
//! was cut), and reads back; nothing outside the zones is answered
//! authoritatively; and a device's `set-dns` check never lets through a
//! name other than its own challenge.
#![no_main]

// The zone module is free of IO and depends only on `hearth_control::dns`:
// included by path so the fuzzer builds without the coordinator.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../coordinator/src/acme/zone.rs"]
mod zone;

use hearth_control::dns::{REFUSED, UDP_LIMIT, parse_reply};
use libfuzzer_sys::fuzz_target;
use zone::{Authority, Challenges, Transport, challenge_name, check_set_dns, handle};

fuzz_target!(|data: &[u8]| {
    let authority = Authority::new(
        vec!["ts.home.example".into(), challenge_name("hub.home.example")],
        "hub.home.example",
    );
    let mut challenges = Challenges::default();
    challenges.set("_acme-challenge.laptop.ts.home.example", "value", 0);
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(reply) = handle(data, &authority, &challenges, 1, transport) else {
            continue;
        };
        assert_eq!(reply[..2], data[..2], "the query's id");
        let read = parse_reply(&reply).expect("a reply made here reads back");
        if transport == Transport::Udp {
            assert!(reply.len() <= UDP_LIMIT || read.truncated || read.answers.is_empty());
        }
        if read.authoritative {
            assert_ne!(read.rcode, REFUSED);
        }
    }
    // As a set-dns request from the laptop: name and value split at the
    // first zero byte.
    let text = String::from_utf8_lossy(data);
    let (name, value) = text.split_once('\0').unwrap_or((&text, "v"));
    if let Ok((published, _)) = check_set_dns("TXT", name, value, "laptop.ts.home.example", &["hub.home.example".to_owned()]) {
        assert_eq!(published, "_acme-challenge.laptop.ts.home.example");
    }
});
