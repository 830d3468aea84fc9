//! The Geneve header (RFC 8926, the fixed 8 bytes, no options) that
//! Tailscale's peer relays put in front of what they carry: the endpoint's
//! virtual network id (VNI), whether it is a control message for the relay
//! itself, and whether disco or WireGuard follows. Pure.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! ```

use crate::disco;

/// The header's length.
pub const HEADER_LEN: usize = 8;
/// The protocol type of disco (Tailscale's choice of Ethertype).
pub const PROTOCOL_DISCO: u16 = 0x7A11;
/// The protocol type of WireGuard.
pub const PROTOCOL_WIREGUARD: u16 = 0x7A12;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// One Geneve header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geneve {
    /// A control message for the relay (its bind handshake), never
    /// forwarded.
    pub control: bool,
    /// What follows: [`PROTOCOL_DISCO`] or [`PROTOCOL_WIREGUARD`].
    pub protocol: u16,
    /// The relay endpoint's id (24 bits; higher bits are dropped).
    pub vni: u32,
}

impl Geneve {
    /// The header's bytes (version 0, no options).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        if self.control {
            out[1] = 0x80;
        }
        out[2..4].copy_from_slice(&self.protocol.to_be_bytes());
        out[4..8].copy_from_slice(&((self.vni & MAX_VNI) << 8).to_be_bytes());
        out
    }

    /// A header as Tailscale writes it: version 0, no options, reserved
    /// bits zero. `None` for anything else (a naked WireGuard or disco
    /// packet never reads as one: see [`classify`]).
    pub fn decode(packet: &[u8]) -> Option<Geneve> {
        let header = packet.get(..HEADER_LEN)?;
        if header[0] != 0 || header[1] & 0x7f != 0 || header[7] != 0 {
            return None;
        }
        Some(Geneve {
            control: header[1] & 0x80 != 0,
            protocol: u16::from_be_bytes([header[2], header[3]]),
            vni: u32::from_be_bytes([header[4], header[5], header[6], header[7]]) >> 8,
        })
    }
}

/// What a datagram on the WireGuard socket carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// WireGuard (naked, or after a Geneve header).
    WireGuard,
    /// Disco (naked, or after a Geneve header).
    Disco,
    /// Anything else (STUN answers, noise): not for WireGuard or disco.
    Other,
}

/// What `packet` carries and, when it came through a peer relay, its Geneve
/// header; the payload starts [`HEADER_LEN`] bytes in then. Told apart as
/// Tailscale does: WireGuard's second to fourth bytes are zero and disco
/// starts with its magic, neither of which a Geneve header of a known
/// protocol can look like.
pub fn classify(packet: &[u8]) -> (Carried, Option<Geneve>) {
    if let Some(header) = Geneve::decode(packet) {
        let payload = &packet[HEADER_LEN..];
        match header.protocol {
            PROTOCOL_DISCO if disco::looks_like_disco(payload) => {
                return (Carried::Disco, Some(header));
            }
            PROTOCOL_WIREGUARD if looks_like_wireguard(payload) => {
                return (Carried::WireGuard, Some(header));
            }
            PROTOCOL_DISCO | PROTOCOL_WIREGUARD => return (Carried::Other, None),
            _ => {}
        }
    }
    if disco::looks_like_disco(packet) {
        (Carried::Disco, None)
    } else if looks_like_wireguard(packet) {
        (Carried::WireGuard, None)
    } else {
        (Carried::Other, None)
    }
}

/// Whether `packet` starts like a WireGuard message: type 1 to 4, then
/// three zero bytes.
pub fn looks_like_wireguard(packet: &[u8]) -> bool {
    packet.len() >= 4 && (1..=4).contains(&packet[0]) && packet[1..4] == [0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_and_is_laid_out_as_rfc_8926_says() {
        let header = Geneve {
            control: true,
            protocol: PROTOCOL_DISCO,
            vni: 0x00ab_cdef,
        };
        let bytes = header.encode();
        assert_eq!(bytes, [0x00, 0x80, 0x7a, 0x11, 0xab, 0xcd, 0xef, 0x00]);
        assert_eq!(Geneve::decode(&bytes), Some(header));
        let data = Geneve {
            control: false,
            protocol: PROTOCOL_WIREGUARD,
            vni: 1,
        };
        assert_eq!(Geneve::decode(&data.encode()), Some(data));
        // Another version, options or reserved bits: not one we read.
        for (at, value) in [(0, 0x40), (0, 0x01), (1, 0x01), (7, 0x01)] {
            let mut odd = bytes;
            odd[at] = value;
            assert_eq!(Geneve::decode(&odd), None, "byte {at} = {value:#x}");
        }
        assert_eq!(Geneve::decode(&bytes[..7]), None);
    }

    #[test]
    fn wireguard_disco_and_what_a_relay_carries_are_told_apart() {
        let wireguard = [4u8, 0, 0, 0, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(classify(&wireguard), (Carried::WireGuard, None));
        let mut naked_disco = disco::MAGIC.to_vec();
        naked_disco.resize(disco::HEADER_LEN + 20, 7);
        assert_eq!(classify(&naked_disco), (Carried::Disco, None));

        let over = |protocol, payload: &[u8]| {
            let mut packet = Geneve {
                control: false,
                protocol,
                vni: 7,
            }
            .encode()
            .to_vec();
            packet.extend_from_slice(payload);
            packet
        };
        let relayed = classify(&over(PROTOCOL_WIREGUARD, &wireguard));
        assert_eq!(relayed.0, Carried::WireGuard);
        assert_eq!(relayed.1.map(|header| header.vni), Some(7));
        assert_eq!(
            classify(&over(PROTOCOL_DISCO, &naked_disco)).0,
            Carried::Disco
        );
        // A header claiming disco or WireGuard over something else is
        // neither.
        assert_eq!(
            classify(&over(PROTOCOL_DISCO, &wireguard)),
            (Carried::Other, None)
        );
        assert_eq!(
            classify(&over(PROTOCOL_WIREGUARD, &[9; 16])),
            (Carried::Other, None)
        );
        // A STUN answer is none of them.
        let stun = [0x01u8, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0];
        assert_eq!(classify(&stun), (Carried::Other, None));
    }
}
