//! ICMP echo over the tunnel, for `hearth-agent ping`.
//!
//! Uses a raw ICMPv4 socket, which needs root or CAP_NET_RAW (the agent has
//! it; see systemd/). Blocking; run it off the async runtime.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with `identifier` and `sequence`.
pub fn echo_request(identifier: u16, sequence: u16) -> Vec<u8> {
    let mut packet = vec![ECHO_REQUEST, 0, 0, 0];
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(b"hearth-ping-0123456789abcdefghij");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// Whether an IPv4 packet (header included, as raw sockets deliver it) is
/// the reply to our request from `from`.
pub fn is_reply(packet: &[u8], from: Ipv4Addr, identifier: u16, sequence: u16) -> bool {
    let Some(header_length) = packet.first().map(|byte| usize::from(byte & 0x0f) * 4) else {
        return false;
    };
    let Some(icmp) = packet.get(header_length..) else {
        return false;
    };
    packet.len() >= 20
        && packet[12..16] == from.octets()
        && icmp.len() >= 8
        && icmp[0] == ECHO_REPLY
        && icmp[4..6] == identifier.to_be_bytes()
        && icmp[6..8] == sequence.to_be_bytes()
}

/// Sends one echo request to `target` and waits up to `timeout` for the
/// reply; `Ok(None)` on timeout.
pub fn ping_once(
    target: Ipv4Addr,
    sequence: u16,
    timeout: Duration,
) -> std::io::Result<Option<Duration>> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let identifier = (std::process::id() as u16) ^ sequence.rotate_left(8);
    let started = Instant::now();
    socket.send_to(
        &echo_request(identifier, sequence),
        &SocketAddr::from((target, 0)).into(),
    )?;
    let mut buffer = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        let length = match (&socket).read(&mut buffer) {
            Ok(length) => length,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(None);
            }
            // A signal handler ran, or the process was stopped and continued:
            // a read with a timeout is not restarted (signal(7)).
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if is_reply(&buffer[..length], target, identifier, sequence) {
            return Ok(Some(started.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        let request = echo_request(7, 9);
        assert_eq!(
            checksum(&request),
            0,
            "a packet with its checksum sums to zero"
        );
    }

    #[test]
    fn replies_are_matched_on_source_identifier_and_sequence() {
        let mut reply = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 2, 100, 64, 0, 1,
        ];
        let mut icmp = echo_request(7, 9);
        icmp[0] = ECHO_REPLY;
        reply.extend_from_slice(&icmp);
        let from = Ipv4Addr::new(100, 64, 0, 2);
        assert!(is_reply(&reply, from, 7, 9));
        assert!(!is_reply(&reply, from, 7, 10));
        assert!(!is_reply(&reply, Ipv4Addr::new(100, 64, 0, 3), 7, 9));
        assert!(!is_reply(&reply[..22], from, 7, 9));
        assert!(!is_reply(&[], from, 7, 9));
    }
}
