//! The userspace data plane's offload code over arbitrary bytes: packets
//! from the TUN device with arbitrary virtio-net headers (cut into
//! segments), and arbitrary decrypted packets from a peer (grouped and
//! coalesced). Invariants: nothing panics; every segment fits its buffer;
//! a coalesced group, cut again the way the kernel would, gives back
//! exactly the packets that went into it.
#![no_main]

// The module is free of IO and depends only on `thiserror`: included by
// path so the fuzzer builds without the agent's network stack.
#[allow(dead_code, unreachable_pub)]
#[path = "../../src/userspace/offload.rs"]
mod offload;

use libfuzzer_sys::fuzz_target;
use offload::{GroPlan, MAX_PACKET, VNET_HDR_LEN, VnetHeader, Write};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // A read from the TUN device: header, then packet.
        let Ok(header) = VnetHeader::parse(rest) else {
            return;
        };
        let mut packet = rest[VNET_HDR_LEN..].to_vec();
        let mut scratch = vec![0u8; usize::from(mode) * 16 + 64];
        let limit = scratch.len();
        let _ = offload::segment(&header, &mut packet, &mut scratch, |segment| {
            assert!(segment.len() <= limit.max(rest.len()));
        });
        return;
    }
    // Decrypted packets: two-byte lengths, then the bytes.
    let mut packets = Vec::new();
    let mut rest = rest;
    while rest.len() >= 2 && packets.len() < 128 {
        let length = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % 2048;
        rest = &rest[2..];
        let length = length.min(rest.len());
        packets.push(rest[..length].to_vec());
        rest = &rest[length..];
    }
    let mut plan = GroPlan::default();
    plan.plan(packets.len(), |index| &packets[index]);
    let mut out = vec![0u8; VNET_HDR_LEN + MAX_PACKET];
    let mut written = vec![0u32; packets.len()];
    for write in plan.writes() {
        match write {
            Write::Single(index) => written[index as usize] += 1,
            Write::Group(group) => {
                let members: Vec<usize> = plan.members(group).collect();
                assert!(members.len() >= 2);
                assert!(
                    members.windows(2).all(|pair| pair[0] < pair[1]),
                    "a flow keeps its order"
                );
                let length = plan.assemble(group, |index| &packets[index], &mut out);
                let header = VnetHeader::parse(&out).expect("a header was written");
                let mut packet = out[VNET_HDR_LEN..length].to_vec();
                let mut scratch = vec![0u8; MAX_PACKET];
                let mut again = Vec::new();
                offload::segment(&header, &mut packet, &mut scratch, |segment| {
                    again.push(segment.to_vec())
                })
                .expect("a coalesced packet cuts back");
                // Cut the way the kernel would, the group gives back its
                // members: same lengths, same payloads.
                let headers = usize::from(header.hdr_len);
                assert_eq!(again.len(), members.len());
                for (segment, &member) in again.iter().zip(&members) {
                    assert_eq!(segment.len(), packets[member].len());
                    assert_eq!(segment[headers..], packets[member][headers..]);
                    written[member] += 1;
                }
            }
        }
    }
    assert!(
        written.iter().all(|&count| count == 1),
        "every packet is written once"
    );
});
