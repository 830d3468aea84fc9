//! Fuzzes the DNS codec with what anyone may send: a program on an agent's
//! device to its MagicDNS at 100.100.100.100, or anyone on the internet to
//! the coordinator's ACME challenge server. A query is read or refused,
//! never a panic; a reply made for it carries the query's id and question
//! and reads back with every record; any bytes read as a reply give a
//! reply or an error, never a panic or a loop.
#![no_main]

use hearth_control::dns::{
    Data, NOERROR, Record, Soa, UDP_LIMIT, fit, parse_query, parse_reply, reply,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_reply(data);
    let Ok(query) = parse_query(data) else {
        return;
    };
    let answers = [
        Record::answer(60, Data::A("100.64.0.2".parse().unwrap())),
        Record::answer(60, Data::Aaaa("fd7a:115c:a1e0::2".parse().unwrap())),
        Record::answer(60, Data::Txt(query.name.clone())),
    ];
    let authority = [Record {
        owner: Some(query.name.clone()),
        ttl: 60,
        data: Data::Soa(Soa {
            primary: query.name.clone(),
            mailbox: "hostmaster.example".into(),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 5,
        }),
    }];
    let packet = reply(&query, NOERROR, true, &answers, &authority);
    assert_eq!(packet[..2], data[..2], "the query's id");
    assert_ne!(packet[2] & 0x80, 0, "a response");
    let read = parse_reply(&packet).expect("a reply made here reads back");
    assert_eq!(read.answers.len(), 3);
    assert_eq!(read.authority.len(), 1);
    // As a query again (the response bit cleared), it is the same question.
    let mut again = packet.clone();
    again[2] &= 0x7f;
    let reread = parse_query(&again).expect("a reply reads back as its query");
    assert_eq!(reread.name, query.name);
    assert_eq!(reread.kind, query.kind);
    let cut = fit(packet, query.question.len(), UDP_LIMIT);
    assert!(cut.len() <= UDP_LIMIT.max(12 + query.question.len()));
    parse_reply(&cut).expect("a cut reply reads back");
});
