//! DNS messages as MagicDNS reads and writes them: one question in, a
//! reply with address records out. Pure, and free of everything but `std`
//! and `thiserror` (the fuzzer includes this file by path).

use std::net::IpAddr;

/// How long answers from the map may be cached.
const TTL: u32 = 600;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

/// Response codes.
pub const SERVFAIL: u8 = 2;
pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;

/// A query's one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The header's id, which the reply repeats.
    pub id: u16,
    recursion_desired: bool,
    /// The name, lower case, labels joined by dots, no trailing dot.
    pub name: String,
    /// The record type asked for.
    pub kind: u16,
    /// The question section as sent, echoed in the reply.
    pub question: Vec<u8>,
}

/// Why bytes are not a query this resolver answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Too short to hold a header: dropped.
    #[error("shorter than a DNS header")]
    Short,
    /// A response, not a query: dropped.
    #[error("not a query")]
    NotQuery,
    /// Malformed or unsupported after the header: answered with `rcode`.
    #[error("{reason}")]
    Refused {
        /// The header's id, to answer with.
        id: u16,
        /// The code to answer with.
        rcode: u8,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Reads one query from `packet`.
pub fn parse_query(packet: &[u8]) -> Result<Query, QueryError> {
    if packet.len() < 12 {
        return Err(QueryError::Short);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 != 0 {
        return Err(QueryError::NotQuery);
    }
    let refused = |rcode, reason| QueryError::Refused { id, rcode, reason };
    if (flags >> 11) & 0xf != 0 {
        return Err(refused(NOTIMP, "only standard queries"));
    }
    if u16::from_be_bytes([packet[4], packet[5]]) != 1 {
        return Err(refused(FORMERR, "exactly one question"));
    }
    let mut at = 12;
    let mut labels = Vec::new();
    let mut length = 0;
    loop {
        let size = *packet
            .get(at)
            .ok_or(refused(FORMERR, "the name is cut short"))? as usize;
        at += 1;
        if size == 0 {
            break;
        }
        if size > 63 {
            return Err(refused(
                FORMERR,
                "a label over 63 bytes or a compressed name",
            ));
        }
        let label = packet
            .get(at..at + size)
            .ok_or(refused(FORMERR, "the name is cut short"))?;
        length += size + 1;
        if length > 255 {
            return Err(refused(FORMERR, "a name over 255 bytes"));
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += size;
    }
    let fixed = packet
        .get(at..at + 4)
        .ok_or(refused(FORMERR, "the question is cut short"))?;
    let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    if class != CLASS_IN {
        return Err(refused(NOTIMP, "only the Internet class"));
    }
    Ok(Query {
        id,
        recursion_desired: flags & 0x0100 != 0,
        name: labels.join("."),
        kind,
        question: packet[12..at + 4].to_vec(),
    })
}

/// A reply to `query` with `rcode` and `answers`, authoritative or not.
pub fn reply(query: &Query, rcode: u8, authoritative: bool, answers: &[IpAddr]) -> Vec<u8> {
    let mut flags: u16 = 0x8000 | 0x0080 | u16::from(rcode);
    if authoritative {
        flags |= 0x0400;
    }
    if query.recursion_desired {
        flags |= 0x0100;
    }
    let mut packet = Vec::with_capacity(12 + query.question.len() + answers.len() * 28);
    packet.extend_from_slice(&query.id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0]);
    packet.extend_from_slice(&query.question);
    for address in answers {
        // The name: a pointer to the question's, at offset 12.
        packet.extend_from_slice(&[0xc0, 0x0c]);
        let (kind, data) = match address {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        packet.extend_from_slice(&kind.to_be_bytes());
        packet.extend_from_slice(&CLASS_IN.to_be_bytes());
        packet.extend_from_slice(&TTL.to_be_bytes());
        packet.extend_from_slice(&(data.len() as u16).to_be_bytes());
        packet.extend_from_slice(&data);
    }
    packet
}

/// A bare error reply for a query that could not be read past its header.
pub fn error_reply(id: u16, rcode: u8) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&(0x8080u16 | u16::from(rcode)).to_be_bytes());
    packet.extend_from_slice(&[0; 8]);
    packet
}
