//! DNS messages as Hearth's resolvers read and write them: one question in
//! ([`parse_query`]); a reply out ([`reply`]) with address, TXT, NS and SOA
//! records; and a reply read back ([`parse_reply`], for tests and
//! fuzzing). An agent's MagicDNS and the coordinator's ACME challenge
//! server both speak through here.
//!
//! Pure, and free of everything but `std` and `thiserror` (the fuzzer
//! includes this file by path).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record type: an IPv4 address.
pub const TYPE_A: u16 = 1;
/// Record type: a name server.
pub const TYPE_NS: u16 = 2;
/// Record type: a zone's start of authority.
pub const TYPE_SOA: u16 = 6;
/// Record type: text.
pub const TYPE_TXT: u16 = 16;
/// Record type: an IPv6 address.
pub const TYPE_AAAA: u16 = 28;
/// Query type: every type.
pub const TYPE_ANY: u16 = 255;
/// The Internet class.
pub const CLASS_IN: u16 = 1;

/// Response code: no error.
pub const NOERROR: u8 = 0;
/// Response code: the query could not be read.
pub const FORMERR: u8 = 1;
/// Response code: the server failed.
pub const SERVFAIL: u8 = 2;
/// Response code: the name does not exist.
pub const NXDOMAIN: u8 = 3;
/// Response code: not implemented.
pub const NOTIMP: u8 = 4;
/// Response code: refused.
pub const REFUSED: u8 = 5;

/// The largest reply sent over UDP to a query without EDNS (RFC 1035).
pub const UDP_LIMIT: usize = 512;

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
    /// The question section as sent (its case too), echoed in the reply.
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

/// Reads one query from `packet` (records after the question, such as an
/// EDNS option, are ignored).
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

/// A query for `name` of `kind` with `id`, as a stub resolver sends it
/// (one question, recursion desired; labels of at most 63 bytes).
pub fn query(id: u16, name: &str, kind: u16) -> Vec<u8> {
    let mut packet = Vec::with_capacity(18 + name.len());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut packet);
    packet.extend_from_slice(&kind.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    packet
}

/// A zone's start of authority, as negative answers carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// The zone's primary name server.
    pub primary: String,
    /// The responsible person's mailbox, as a name (`hostmaster.zone`).
    pub mailbox: String,
    /// The zone's serial number.
    pub serial: u32,
    /// Seconds a secondary waits before refreshing.
    pub refresh: u32,
    /// Seconds before a failed refresh is retried.
    pub retry: u32,
    /// Seconds after which a secondary stops answering.
    pub expire: u32,
    /// Seconds a negative answer may be cached (RFC 2308).
    pub minimum: u32,
}

/// What a record holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// Text: one string of at most 255 bytes (longer text is cut there).
    Txt(String),
    /// A name server's name.
    Ns(String),
    /// A zone's start of authority.
    Soa(Soa),
}

impl Data {
    /// The record type.
    pub fn kind(&self) -> u16 {
        match self {
            Data::A(_) => TYPE_A,
            Data::Aaaa(_) => TYPE_AAAA,
            Data::Txt(_) => TYPE_TXT,
            Data::Ns(_) => TYPE_NS,
            Data::Soa(_) => TYPE_SOA,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Data::A(address) => out.extend_from_slice(&address.octets()),
            Data::Aaaa(address) => out.extend_from_slice(&address.octets()),
            Data::Txt(text) => {
                let bytes = &text.as_bytes()[..text.len().min(255)];
                out.push(bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
            Data::Ns(name) => encode_name(name, out),
            Data::Soa(soa) => {
                encode_name(&soa.primary, out);
                encode_name(&soa.mailbox, out);
                for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    out.extend_from_slice(&value.to_be_bytes());
                }
            }
        }
    }
}

/// One record of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its name; `None`: the question's (written as a pointer to it).
    pub owner: Option<String>,
    /// Seconds it may be cached.
    pub ttl: u32,
    /// What it holds.
    pub data: Data,
}

impl Record {
    /// A record for the question's name.
    pub fn answer(ttl: u32, data: Data) -> Record {
        Record {
            owner: None,
            ttl,
            data,
        }
    }
}

/// Address records for the question's name, `ttl` seconds each.
pub fn address_records(addresses: &[IpAddr], ttl: u32) -> Vec<Record> {
    addresses
        .iter()
        .map(|address| {
            Record::answer(
                ttl,
                match address {
                    IpAddr::V4(v4) => Data::A(*v4),
                    IpAddr::V6(v6) => Data::Aaaa(*v6),
                },
            )
        })
        .collect()
}

/// Writes `name` (dots between labels, no trailing dot; empty: the root)
/// as labels. What could not be a name is cut rather than written: a label
/// at 63 bytes, the whole at 255 (names written here come from checked
/// settings, or from questions, whose bytes outside ASCII were read as
/// longer replacement characters).
fn encode_name(name: &str, out: &mut Vec<u8>) {
    let mut length = 0;
    for label in name.split('.').filter(|label| !label.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        if length + bytes.len() + 1 > 255 {
            break;
        }
        length += bytes.len() + 1;
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

/// A reply to `query` with `rcode`, authoritative or not, with `answers`
/// and, in the authority section, `authority` (a zone's SOA for a
/// negative answer).
pub fn reply(
    query: &Query,
    rcode: u8,
    authoritative: bool,
    answers: &[Record],
    authority: &[Record],
) -> Vec<u8> {
    let mut flags: u16 = 0x8000 | 0x0080 | u16::from(rcode & 0xf);
    if authoritative {
        flags |= 0x0400;
    }
    if query.recursion_desired {
        flags |= 0x0100;
    }
    let mut packet = Vec::with_capacity(12 + query.question.len() + answers.len() * 32);
    packet.extend_from_slice(&query.id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    packet.extend_from_slice(&(authority.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&query.question);
    for record in answers.iter().chain(authority) {
        match &record.owner {
            // A pointer to the question's name, at offset 12.
            None => packet.extend_from_slice(&[0xc0, 0x0c]),
            Some(name) => encode_name(name, &mut packet),
        }
        packet.extend_from_slice(&record.data.kind().to_be_bytes());
        packet.extend_from_slice(&CLASS_IN.to_be_bytes());
        packet.extend_from_slice(&record.ttl.to_be_bytes());
        let length_at = packet.len();
        packet.extend_from_slice(&[0, 0]);
        record.data.encode(&mut packet);
        let length = (packet.len() - length_at - 2) as u16;
        packet[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    }
    packet
}

/// `packet` (a reply) as it may go over UDP within `limit` bytes: whole,
/// or, when longer, only its header and question with the truncated flag
/// set, so the asker retries over TCP.
pub fn fit(packet: Vec<u8>, question_len: usize, limit: usize) -> Vec<u8> {
    if packet.len() <= limit || packet.len() < 12 + question_len {
        return packet;
    }
    let mut cut = packet[..12 + question_len].to_vec();
    cut[2] |= 0x02;
    cut[6..12].fill(0);
    cut
}

/// A bare error reply for a query that could not be read past its header.
pub fn error_reply(id: u16, rcode: u8) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&(0x8080u16 | u16::from(rcode & 0xf)).to_be_bytes());
    packet.extend_from_slice(&[0; 8]);
    packet
}

/// A reply as [`parse_reply`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The header's id.
    pub id: u16,
    /// The response code.
    pub rcode: u8,
    /// Whether the server is an authority for the name.
    pub authoritative: bool,
    /// Whether the reply was cut to fit (ask again over TCP).
    pub truncated: bool,
    /// The answer section: owner, TTL, data (types other than those
    /// [`Data`] holds are skipped).
    pub answers: Vec<(String, u32, Data)>,
    /// The authority section, likewise.
    pub authority: Vec<(String, u32, Data)>,
}

/// Why bytes are not a reply [`parse_reply`] can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a DNS reply: {0}")]
pub struct ReplyError(&'static str);

/// Reads a reply: its header, and its answer and authority records
/// (names with compression pointers followed, at most 32 jumps).
pub fn parse_reply(packet: &[u8]) -> Result<Reply, ReplyError> {
    let field = |at: usize| -> Result<u16, ReplyError> {
        packet
            .get(at..at + 2)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
            .ok_or(ReplyError("cut short"))
    };
    if packet.len() < 12 {
        return Err(ReplyError("shorter than a header"));
    }
    let flags = field(2)?;
    if flags & 0x8000 == 0 {
        return Err(ReplyError("a query, not a reply"));
    }
    let (questions, answers, authority) = (field(4)?, field(6)?, field(8)?);
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(packet, at)?.1 + 4;
    }
    let mut sections = [Vec::new(), Vec::new()];
    for (section, count) in sections.iter_mut().zip([answers, authority]) {
        for _ in 0..count {
            let (owner, next) = read_name(packet, at)?;
            let kind = field(next)?;
            let ttl = packet
                .get(next + 4..next + 8)
                .map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
                .ok_or(ReplyError("cut short"))?;
            let length = field(next + 8)? as usize;
            let start = next + 10;
            let data = packet
                .get(start..start + length)
                .ok_or(ReplyError("record data cut short"))?;
            let value = match kind {
                TYPE_A => <[u8; 4]>::try_from(data).ok().map(|b| Data::A(b.into())),
                TYPE_AAAA => <[u8; 16]>::try_from(data)
                    .ok()
                    .map(|b| Data::Aaaa(b.into())),
                TYPE_TXT => {
                    let mut text = Vec::new();
                    let mut inner = 0;
                    while inner < data.len() {
                        let size = data[inner] as usize;
                        let piece = data
                            .get(inner + 1..inner + 1 + size)
                            .ok_or(ReplyError("text cut short"))?;
                        text.extend_from_slice(piece);
                        inner += 1 + size;
                    }
                    Some(Data::Txt(String::from_utf8_lossy(&text).into_owned()))
                }
                TYPE_NS => Some(Data::Ns(read_name(packet, start)?.0)),
                TYPE_SOA => {
                    let (primary, next) = read_name(packet, start)?;
                    let (mailbox, next) = read_name(packet, next)?;
                    let numbers = packet
                        .get(next..next + 20)
                        .ok_or(ReplyError("SOA cut short"))?;
                    let number = |index: usize| {
                        let bytes = &numbers[index * 4..index * 4 + 4];
                        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
                    };
                    Some(Data::Soa(Soa {
                        primary,
                        mailbox,
                        serial: number(0),
                        refresh: number(1),
                        retry: number(2),
                        expire: number(3),
                        minimum: number(4),
                    }))
                }
                _ => None,
            };
            if let Some(value) = value {
                section.push((owner, ttl, value));
            }
            at = start + length;
        }
    }
    let [answers, authority] = sections;
    Ok(Reply {
        id: u16::from_be_bytes([packet[0], packet[1]]),
        rcode: (flags & 0xf) as u8,
        authoritative: flags & 0x0400 != 0,
        truncated: flags & 0x0200 != 0,
        answers,
        authority,
    })
}

/// The name at `at` (lower case, dots between labels) and where what
/// follows it starts.
fn read_name(packet: &[u8], mut at: usize) -> Result<(String, usize), ReplyError> {
    let mut labels = Vec::new();
    let mut after = None;
    let mut jumps = 0;
    let mut length = 0;
    loop {
        let size = *packet.get(at).ok_or(ReplyError("name cut short"))?;
        match size {
            0 => {
                return Ok((labels.join("."), after.unwrap_or(at + 1)));
            }
            1..=63 => {
                let label = packet
                    .get(at + 1..at + 1 + size as usize)
                    .ok_or(ReplyError("label cut short"))?;
                length += label.len() + 1;
                if length > 255 {
                    return Err(ReplyError("a name over 255 bytes"));
                }
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                at += 1 + size as usize;
            }
            0xc0..=0xff => {
                let low = *packet.get(at + 1).ok_or(ReplyError("pointer cut short"))?;
                jumps += 1;
                if jumps > 32 {
                    return Err(ReplyError("too many compression pointers"));
                }
                after.get_or_insert(at + 2);
                at = (usize::from(size & 0x3f) << 8) | usize::from(low);
            }
            _ => return Err(ReplyError("an unknown label type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, kind: u16) -> Vec<u8> {
        super::query(0x1234, name, kind)
    }

    #[test]
    fn a_reply_carries_the_question_and_reads_back_with_every_record() {
        let asked = parse_query(&query("_acme-challenge.Laptop.ts.example", TYPE_TXT)).unwrap();
        assert_eq!(asked.name, "_acme-challenge.laptop.ts.example");
        let soa = Soa {
            primary: "hub.example".into(),
            mailbox: "hostmaster.ts.example".into(),
            serial: 7,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 60,
        };
        let packet = reply(
            &asked,
            NOERROR,
            true,
            &[
                Record::answer(60, Data::Txt("abc".into())),
                Record::answer(60, Data::A("100.64.0.1".parse().unwrap())),
                Record::answer(60, Data::Aaaa("fd7a::1".parse().unwrap())),
                Record::answer(60, Data::Ns("hub.example".into())),
            ],
            &[Record {
                owner: Some("ts.example".into()),
                ttl: 60,
                data: Data::Soa(soa.clone()),
            }],
        );
        // The question goes back as it was asked, case and all.
        assert!(packet.windows(6).any(|window| window == b"Laptop"));
        let read = parse_reply(&packet).unwrap();
        assert_eq!(read.id, 0x1234);
        assert!(read.authoritative && !read.truncated);
        assert_eq!(read.rcode, NOERROR);
        let owner = "_acme-challenge.laptop.ts.example".to_owned();
        assert_eq!(
            read.answers,
            vec![
                (owner.clone(), 60, Data::Txt("abc".into())),
                (owner.clone(), 60, Data::A("100.64.0.1".parse().unwrap())),
                (owner.clone(), 60, Data::Aaaa("fd7a::1".parse().unwrap())),
                (owner, 60, Data::Ns("hub.example".into())),
            ]
        );
        assert_eq!(
            read.authority,
            vec![("ts.example".into(), 60, Data::Soa(soa))]
        );
    }

    #[test]
    fn a_reply_too_long_for_udp_is_cut_to_its_question_and_flagged() {
        let asked = parse_query(&query("many.example", TYPE_TXT)).unwrap();
        let answers: Vec<Record> = (0..20)
            .map(|index| Record::answer(60, Data::Txt(format!("{index:043}"))))
            .collect();
        let whole = reply(&asked, NOERROR, true, &answers, &[]);
        assert!(whole.len() > UDP_LIMIT);
        let cut = fit(whole.clone(), asked.question.len(), UDP_LIMIT);
        let read = parse_reply(&cut).unwrap();
        assert!(read.truncated);
        assert!(read.answers.is_empty());
        let small = reply(&asked, NOERROR, true, &answers[..2], &[]);
        assert_eq!(fit(small.clone(), asked.question.len(), UDP_LIMIT), small);
    }

    #[test]
    fn malformed_queries_are_refused_or_dropped() {
        assert_eq!(parse_query(&[0; 5]), Err(QueryError::Short));
        let mut response = query("a.example", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(parse_query(&response), Err(QueryError::NotQuery));
        let mut compressed = query("a.example", TYPE_A);
        compressed[12] = 0xc0;
        assert!(matches!(
            parse_query(&compressed),
            Err(QueryError::Refused { rcode: FORMERR, .. })
        ));
        let whole = query("a.example", TYPE_A);
        for end in 12..whole.len() {
            assert!(parse_query(&whole[..end]).is_err(), "cut at {end}");
        }
        let mut chaos = query("a.example", TYPE_A);
        let last = chaos.len() - 1;
        chaos[last] = 3;
        assert!(matches!(
            parse_query(&chaos),
            Err(QueryError::Refused { rcode: NOTIMP, .. })
        ));
        assert_eq!(error_reply(7, FORMERR)[3] & 0xf, FORMERR);
    }

    #[test]
    fn a_name_that_could_not_be_written_is_cut_to_one_that_can() {
        // Bytes outside ASCII are read as three-byte replacement characters:
        // a question of 255 bytes becomes a longer name.
        let mut packet = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..4 {
            packet.push(62);
            packet.extend_from_slice(&[0xff; 62]);
        }
        packet.extend_from_slice(&[0, 0, 16, 0, 1]);
        let asked = parse_query(&packet).unwrap();
        assert!(asked.name.len() > 255);
        let written = reply(
            &asked,
            NOERROR,
            true,
            &[Record {
                owner: Some(asked.name.clone()),
                ttl: 1,
                data: Data::Ns(asked.name.clone()),
            }],
            &[],
        );
        let read = parse_reply(&written).unwrap();
        assert!(read.answers[0].0.len() <= 255);
    }

    #[test]
    fn a_reply_whose_pointers_loop_is_refused() {
        let mut packet = error_reply(1, NOERROR);
        packet[7] = 1; // one answer
        packet.extend_from_slice(&[0xc0, 12]); // its name points at itself
        packet.extend_from_slice(&[0; 10]);
        assert!(parse_reply(&packet).is_err());
    }
}
