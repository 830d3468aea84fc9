//! The subset of STUN (RFC 8489) Hearth uses: a Binding request, and a Binding
//! success response carrying XOR-MAPPED-ADDRESS. Both sides, pure functions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const HEADER: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// The 96-bit transaction id that pairs a response with its request.
pub type TransactionId = [u8; 12];

/// A Binding request with `transaction`.
pub fn binding_request(transaction: TransactionId) -> [u8; HEADER] {
    let mut message = [0u8; HEADER];
    message[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    message[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message[8..20].copy_from_slice(&transaction);
    message
}

/// A parsed STUN header: its type, and its transaction id.
fn header(packet: &[u8]) -> Option<(u16, TransactionId, &[u8])> {
    if packet.len() < HEADER || packet[0] & 0xC0 != 0 {
        return None;
    }
    let message_type = u16::from_be_bytes([packet[0], packet[1]]);
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let cookie = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    if cookie != MAGIC_COOKIE || length % 4 != 0 || packet.len() != HEADER + length {
        return None;
    }
    let transaction: TransactionId = packet[8..20].try_into().ok()?;
    Some((message_type, transaction, &packet[HEADER..]))
}

/// The transaction id of a well-formed Binding request; `None` for anything else.
pub fn parse_binding_request(packet: &[u8]) -> Option<TransactionId> {
    let (message_type, transaction, attributes) = header(packet)?;
    (message_type == BINDING_REQUEST && attributes_well_formed(attributes)).then_some(transaction)
}

fn attributes_well_formed(mut attributes: &[u8]) -> bool {
    while !attributes.is_empty() {
        let Some(length) = attributes
            .get(2..4)
            .map(|bytes| usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
        else {
            return false;
        };
        let padded = 4 + length.div_ceil(4) * 4;
        if attributes.len() < padded {
            return false;
        }
        attributes = &attributes[padded..];
    }
    true
}

/// A Binding success response telling the requester it was seen at `observed`.
pub fn binding_response(transaction: TransactionId, observed: SocketAddr) -> Vec<u8> {
    let port = observed.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut value = vec![0u8];
    match observed.ip() {
        IpAddr::V4(address) => {
            value.push(FAMILY_IPV4);
            value.extend_from_slice(&port.to_be_bytes());
            let xored = u32::from(address) ^ MAGIC_COOKIE;
            value.extend_from_slice(&xored.to_be_bytes());
        }
        IpAddr::V6(address) => {
            value.push(FAMILY_IPV6);
            value.extend_from_slice(&port.to_be_bytes());
            let mask = v6_mask(&transaction);
            value.extend(
                address
                    .octets()
                    .iter()
                    .zip(mask)
                    .map(|(byte, key)| byte ^ key),
            );
        }
    }
    let mut message = Vec::with_capacity(HEADER + 4 + value.len());
    message.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    message.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message.extend_from_slice(&transaction);
    message.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    message.extend_from_slice(&(value.len() as u16).to_be_bytes());
    message.extend_from_slice(&value);
    message
}

fn v6_mask(transaction: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    mask
}

/// The address a Binding success response for `transaction` reports.
pub fn parse_binding_response(packet: &[u8], transaction: TransactionId) -> Option<SocketAddr> {
    let (message_type, received, mut attributes) = header(packet)?;
    if message_type != BINDING_SUCCESS || received != transaction {
        return None;
    }
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let length = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let padded = 4 + length.div_ceil(4) * 4;
        let value = attributes.get(4..4 + length)?;
        if kind == XOR_MAPPED_ADDRESS {
            return decode_xor_address(value, &transaction);
        }
        attributes = attributes.get(padded..)?;
    }
    None
}

fn decode_xor_address(value: &[u8], transaction: &TransactionId) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    match family {
        FAMILY_IPV4 if value.len() == 8 => {
            let raw = u32::from_be_bytes(value[4..8].try_into().ok()?) ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(raw)), port))
        }
        FAMILY_IPV6 if value.len() == 20 => {
            let mask = v6_mask(transaction);
            let mut octets = [0u8; 16];
            for (index, byte) in octets.iter_mut().enumerate() {
                *byte = value[4 + index] ^ mask[index];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSACTION: TransactionId = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    #[test]
    fn request_round_trips() {
        let request = binding_request(TRANSACTION);
        assert_eq!(parse_binding_request(&request), Some(TRANSACTION));
    }

    #[test]
    fn response_matches_rfc5769_ipv4_vector() {
        // RFC 5769 section 2.2: 192.0.2.1:32853 encodes as port 0xa147, address 0xe112a643.
        let response = binding_response(TRANSACTION, "192.0.2.1:32853".parse().unwrap());
        assert_eq!(
            &response[24..32],
            &[0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]
        );
        assert_eq!(
            parse_binding_response(&response, TRANSACTION),
            Some("192.0.2.1:32853".parse().unwrap())
        );
    }

    #[test]
    fn response_matches_rfc5769_ipv6_vector() {
        // RFC 5769 section 2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let observed: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        let response = binding_response(TRANSACTION, observed);
        let expected_value = [
            0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
            0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        ];
        assert_eq!(&response[24..44], &expected_value);
        assert_eq!(
            parse_binding_response(&response, TRANSACTION),
            Some(observed)
        );
    }

    #[test]
    fn malformed_packets_are_ignored() {
        let request = binding_request(TRANSACTION);
        assert_eq!(parse_binding_request(&request[..19]), None);
        let mut wrong_cookie = request;
        wrong_cookie[4] ^= 1;
        assert_eq!(parse_binding_request(&wrong_cookie), None);
        let mut wrong_length = request.to_vec();
        wrong_length[3] = 4;
        assert_eq!(parse_binding_request(&wrong_length), None);
        wrong_length.extend_from_slice(&[0, 1, 0, 9]);
        assert_eq!(
            parse_binding_request(&wrong_length),
            None,
            "attribute longer than message"
        );
        let response = binding_response(TRANSACTION, "192.0.2.1:1".parse().unwrap());
        assert_eq!(
            parse_binding_response(&response, [0; 12]),
            None,
            "other transaction"
        );
        assert_eq!(
            parse_binding_request(&response),
            None,
            "a response is not a request"
        );
    }
}
