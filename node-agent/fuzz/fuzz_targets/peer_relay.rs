//! The peer relay's server over arbitrary datagrams from anyone who can
//! reach its port: Geneve headers, bind handshakes, data. Two clients hold
//! an endpoint; each input is a run of datagrams, each from one of a few
//! addresses (a client's or a stranger's), some of them well-formed binds
//! and answers sealed with the clients' keys so that the handshake is
//! reached. Invariants: nothing panics; a datagram is forwarded only from
//! one bound address to the other (never back to its sender, never to an
//! address that did not answer a challenge); a reply goes only to the
//! datagram's sender, and never twice to the same datagram (a copied bind
//! sent again, from anywhere, gets nothing).
#![no_main]

// Pure, and depends only on hearth-control, blake2, rand, zeroize and
// thiserror: included by path so the fuzzer builds without the agent.
#[allow(dead_code, unreachable_pub)]
#[path = "../../src/peer_relay/server.rs"]
mod server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use hearth_control::disco::{self, Bind, Boxer, Message};
use hearth_control::geneve::{self, Geneve};
use libfuzzer_sys::fuzz_target;
use server::{Server, Verdict};

fuzz_target!(|data: &[u8]| {
    let secrets = [[1u8; 32], [2u8; 32]];
    let keys = secrets.map(|secret| disco::public_key(&secret));
    let addresses: [SocketAddr; 3] = [
        "198.18.1.2:41641".parse().unwrap(),
        "198.18.2.2:41641".parse().unwrap(),
        "203.0.113.9:1".parse().unwrap(),
    ];
    let mut server = Server::new([9; 32], [8; 32]);
    server.set_addresses(vec!["198.18.0.1:40000".parse().unwrap()]);
    let Ok(endpoint) = server.allocate(keys[0], keys[1], Duration::ZERO) else {
        return;
    };
    // Addresses that got a challenge: only they may ever be bound.
    let mut challenged: HashSet<SocketAddr> = HashSet::new();
    // Each client's last challenge, opened: an answer may echo it (the
    // fuzzer could never guess the keyed hash).
    let mut last_challenge: [Option<Bind>; 2] = [None, None];
    let mut now = Duration::ZERO;
    let mut sealed = 0u64;
    let mut replied: HashSet<Vec<u8>> = HashSet::new();
    let mut rest = data;
    while let [control, length, tail @ ..] = rest {
        let length = usize::from(*length).min(tail.len());
        let (body, next) = tail.split_at(length);
        rest = next;
        now += Duration::from_millis(u64::from(control >> 4) * 100);
        let from = addresses[usize::from(control & 3) % 3];
        let side = usize::from(control >> 2 & 1);
        let datagram = match control >> 3 & 1 {
            // Raw bytes, as anyone could send.
            0 => body.to_vec(),
            // A bind or an answer sealed with a client's key, with fields
            // from the input, or the answer to its last challenge.
            _ => {
                let bind = Bind {
                    vni: endpoint.vni,
                    generation: body.first().map_or(1, |byte| u32::from(*byte)),
                    remote: keys[1 - side],
                    challenge: body
                        .get(1..33)
                        .and_then(|c| c.try_into().ok())
                        .unwrap_or([0; 32]),
                };
                let message = match body.len() {
                    0 => match last_challenge[side] {
                        Some(challenge) => Message::BindRelayAnswer(challenge),
                        None => Message::BindRelay(bind),
                    },
                    1..=33 => Message::BindRelay(bind),
                    _ => Message::BindRelayAnswer(bind),
                };
                let mut packet = Geneve {
                    control: true,
                    protocol: geneve::PROTOCOL_DISCO,
                    vni: endpoint.vni,
                }
                .encode()
                .to_vec();
                // A fresh nonce per message, as a client picks; an input
                // may still send a datagram twice (a copy).
                sealed += 1;
                let mut nonce = [7u8; 24];
                nonce[..8].copy_from_slice(&sealed.to_le_bytes());
                packet.extend(Boxer::new(&secrets[side], &endpoint.server).seal(&nonce, &message));
                packet
            }
        };
        // Sometimes the last datagram again, from this address: a copy.
        let datagram = if control & 0xc0 == 0xc0 && !body.is_empty() {
            replied.iter().next().cloned().unwrap_or(datagram)
        } else {
            datagram
        };
        match server.handle(from, &datagram, now) {
            Verdict::Reply(reply, to) => {
                assert_eq!(to, from, "a reply goes to the sender");
                assert!(replied.insert(datagram.clone()), "a copy was answered again");
                challenged.insert(from);
                let opened =
                    Boxer::new(&secrets[side], &endpoint.server).open(&reply[geneve::HEADER_LEN..]);
                if let Ok(Message::BindRelayChallenge(challenge)) = opened {
                    last_challenge[side] = Some(challenge);
                }
            }
            Verdict::Forward(to) => {
                assert_ne!(to, from, "never back to the sender");
                assert!(challenged.contains(&from) && challenged.contains(&to));
            }
            Verdict::Drop => {}
        }
        if control & 0xf0 == 0xf0 {
            server.expire(now);
        }
    }
});
