//! Segmentation and coalescing for the TUN offloads, free of IO.
//!
//! With `IFF_VNET_HDR` and TSO enabled on the TUN device, the kernel hands
//! us TCP (and, with USO, UDP) "super-packets" of up to 64 KiB, each behind
//! a 10-byte virtio-net header saying how to cut it ([`VnetHeader`]).
//! [`segment`] cuts one into the MTU-sized packets a peer expects, with
//! their lengths, sequence numbers, IPv4 ids and checksums fixed, as a NIC
//! would. The other way, [`GroPlan`] groups the TCP segments decrypted from
//! one batch of datagrams that continue each other (same flow, next
//! sequence number, same headers) and [`GroPlan::assemble`] writes each
//! group as one super-packet for the kernel's TCP stack, the way a NIC's
//! receive offload does: the kernel then does its per-packet work once per
//! group instead of once per segment.
//!
//! Everything here reads bytes that came from the TUN device or, decrypted,
//! from a peer: malformed input is refused with an error or left
//! uncoalesced, never trusted (`fuzz/` drives both directions).

use thiserror::Error;

/// Length of the virtio-net header before each packet (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
/// Largest IP packet (the IPv4 total length field, and what TSO hands out).
pub const MAX_PACKET: usize = 65_535;

/// `flags`: the L4 checksum is partial, to be finished at
/// `csum_start + csum_offset`.
pub const NEEDS_CSUM: u8 = 1;
/// `gso_type`: no segmentation.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4 segmentation.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6 segmentation.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type`: UDP segmentation (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the segments carry ECN's congestion-window-reduced mark.
pub const GSO_ECN: u8 = 0x80;

const PROTOCOL_TCP: u8 = 6;
const PROTOCOL_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;

/// The virtio-net header (`struct virtio_net_hdr`, little-endian as the
/// TUN device uses it on little-endian hosts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// [`NEEDS_CSUM`] or 0.
    pub flags: u8,
    /// `GSO_*`, possibly with [`GSO_ECN`].
    pub gso_type: u8,
    /// Bytes of IP and L4 headers (a hint; recomputed here).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the partial checksum's sum starts.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// Reads the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<VnetHeader, OffloadError> {
        let bytes: &[u8; VNET_HDR_LEN] = bytes
            .get(..VNET_HDR_LEN)
            .and_then(|head| head.try_into().ok())
            .ok_or(OffloadError::Truncated)?;
        let word = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        Ok(VnetHeader {
            flags: bytes[0],
            gso_type: bytes[1],
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
        })
    }

    /// Writes the header into `out`.
    pub fn write(&self, out: &mut [u8; VNET_HDR_LEN]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }
}

/// Why a packet from the TUN device could not be cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum OffloadError {
    #[error("the packet is shorter than its headers say")]
    /// Shorter than its headers.
    Truncated,
    #[error("not an IPv4 or IPv6 packet")]
    /// Neither IPv4 nor IPv6.
    NotIp,
    #[error("segmentation asked for a packet that is not TCP or UDP without extension headers")]
    /// A segmentation this code does not do.
    Unsupported,
    #[error("segmentation asked with a segment size of 0")]
    /// A segment size of 0.
    ZeroSegment,
    #[error("the checksum position lies outside the packet")]
    /// A checksum position outside the packet.
    ChecksumOutside,
    #[error("a segment does not fit the scratch buffer")]
    /// Larger than the scratch buffer.
    TooLarge,
}

/// The ones'-complement sum of `data` added to `sum` (not folded). `data`
/// must start at an even offset of what is being summed.
pub fn checksum_add(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        sum += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

/// Folds a sum from [`checksum_add`] to 16 bits.
pub fn checksum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of the TCP/UDP pseudo-header of `packet` (IP header first) for
/// an L4 part of `l4_length` bytes.
fn pseudo_header_sum(packet: &[u8], version: u8, protocol: u8, l4_length: usize) -> u64 {
    let addresses = if version == 4 {
        &packet[12..20]
    } else {
        &packet[8..40]
    };
    checksum_add(0, addresses) + u64::from(protocol) + l4_length as u64
}

/// Where the L4 header starts and which protocol it is.
fn l4_of(packet: &[u8]) -> Result<(u8, usize, u8), OffloadError> {
    let first = *packet.first().ok_or(OffloadError::Truncated)?;
    match first >> 4 {
        4 => {
            let length = usize::from(first & 0x0f) * 4;
            if length < 20 || packet.len() < length {
                return Err(OffloadError::Truncated);
            }
            Ok((4, length, packet[9]))
        }
        6 => {
            if packet.len() < 40 {
                return Err(OffloadError::Truncated);
            }
            Ok((6, 40, packet[6]))
        }
        _ => Err(OffloadError::NotIp),
    }
}

/// Writes the IPv4 header checksum of `header`.
fn fix_ipv4_checksum(header: &mut [u8]) {
    header[10..12].fill(0);
    let sum = !checksum_fold(checksum_add(0, header));
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Finishes a partial checksum: sums from `start` to the end and writes
/// the complement at `start + offset`, as a NIC would.
fn finish_checksum(packet: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let at = start
        .checked_add(offset)
        .ok_or(OffloadError::ChecksumOutside)?;
    if at + 2 > packet.len() {
        return Err(OffloadError::ChecksumOutside);
    }
    let sum = !checksum_fold(checksum_add(0, &packet[start..]));
    packet[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Cuts `packet` (as read from the TUN device after `header`) into the
/// packets it stands for and gives each to `emit`, in order. Segments are
/// built in `scratch`; a packet that needs no cutting is given as it is
/// (its checksum finished if the header asks). Returns how many packets
/// were emitted.
pub fn segment(
    header: &VnetHeader,
    packet: &mut [u8],
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let gso = header.gso_type & !GSO_ECN;
    if gso == GSO_NONE {
        if header.flags & NEEDS_CSUM != 0 {
            finish_checksum(
                packet,
                usize::from(header.csum_start),
                usize::from(header.csum_offset),
            )?;
        }
        emit(packet);
        return Ok(1);
    }
    let (version, ip_length, protocol) = l4_of(packet)?;
    let expected = match gso {
        GSO_TCPV4 if version == 4 => PROTOCOL_TCP,
        GSO_TCPV6 if version == 6 => PROTOCOL_TCP,
        GSO_UDP_L4 => PROTOCOL_UDP,
        _ => return Err(OffloadError::Unsupported),
    };
    if protocol != expected {
        return Err(OffloadError::Unsupported);
    }
    let l4_length = if protocol == PROTOCOL_TCP {
        let offset = packet.get(ip_length + 12).ok_or(OffloadError::Truncated)?;
        usize::from(offset >> 4) * 4
    } else {
        8
    };
    let headers = ip_length + l4_length;
    let smallest = if protocol == PROTOCOL_TCP { 20 } else { 8 };
    if l4_length < smallest || packet.len() < headers {
        return Err(OffloadError::Truncated);
    }
    let size = usize::from(header.gso_size);
    if size == 0 {
        return Err(OffloadError::ZeroSegment);
    }
    if headers + size > scratch.len() {
        return Err(OffloadError::TooLarge);
    }
    let payload = &packet[headers..];
    let count = payload.len().div_ceil(size).max(1);
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let (sequence, flags) = if protocol == PROTOCOL_TCP {
        let at = ip_length;
        (
            u32::from_be_bytes([
                packet[at + 4],
                packet[at + 5],
                packet[at + 6],
                packet[at + 7],
            ]),
            packet[at + 13],
        )
    } else {
        (0, 0)
    };
    for index in 0..count {
        let start = index * size;
        let chunk = &payload[start.min(payload.len())..(start + size).min(payload.len())];
        let length = headers + chunk.len();
        let out = &mut scratch[..length];
        out[..headers].copy_from_slice(&packet[..headers]);
        out[headers..].copy_from_slice(chunk);
        if version == 4 {
            out[2..4].copy_from_slice(&(length as u16).to_be_bytes());
            out[4..6].copy_from_slice(&id.wrapping_add(index as u16).to_be_bytes());
            fix_ipv4_checksum(&mut out[..ip_length]);
        } else {
            out[4..6].copy_from_slice(&((length - 40) as u16).to_be_bytes());
        }
        let checksum_at = if protocol == PROTOCOL_TCP {
            let tcp = &mut out[ip_length..];
            tcp[4..8].copy_from_slice(&sequence.wrapping_add(start as u32).to_be_bytes());
            let mut segment_flags = flags;
            if index + 1 < count {
                segment_flags &= !(TCP_FIN | TCP_PSH);
            }
            if index > 0 {
                segment_flags &= !TCP_CWR;
            }
            tcp[13] = segment_flags;
            ip_length + 16
        } else {
            let udp = &mut out[ip_length..];
            udp[4..6].copy_from_slice(&((length - ip_length) as u16).to_be_bytes());
            ip_length + 6
        };
        out[checksum_at..checksum_at + 2].fill(0);
        let sum = pseudo_header_sum(out, version, protocol, length - ip_length);
        let mut checksum = !checksum_fold(checksum_add(sum, &out[ip_length..]));
        if protocol == PROTOCOL_UDP && checksum == 0 {
            checksum = 0xffff;
        }
        out[checksum_at..checksum_at + 2].copy_from_slice(&checksum.to_be_bytes());
        emit(out);
    }
    Ok(count)
}

/// A hash of `packet`'s flow (addresses, protocol, and ports for TCP and
/// UDP): equal for every packet of one direction of a flow.
pub fn flow_hash(packet: &[u8]) -> u32 {
    let Ok((version, ip_length, protocol)) = l4_of(packet) else {
        return 0;
    };
    let addresses = if version == 4 {
        &packet[12..20]
    } else {
        &packet[8..40]
    };
    let ports = match protocol {
        PROTOCOL_TCP | PROTOCOL_UDP => packet.get(ip_length..ip_length + 4).unwrap_or(&[]),
        _ => &[],
    };
    // FNV-1a: cheap, and spread enough to pick among a few queues.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in addresses.iter().chain(ports).chain([&protocol]) {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    hash
}

/// Most segments in one coalesced packet.
const MAX_GROUP: u32 = 64;

/// A run of packets written to the TUN device as one.
#[derive(Clone, Copy, Debug)]
struct Group {
    /// Index of the first packet and of the last (members are linked
    /// through [`GroPlan::next`]).
    head: u32,
    tail: u32,
    count: u32,
    /// Bytes of the coalesced packet (headers once, every payload).
    length: usize,
    /// Payload bytes of the first segment: every other is this long, the
    /// last may be shorter.
    size: usize,
    /// The sequence number the next segment must carry.
    next_sequence: u32,
    /// No more segments may join (a short or PSH segment ended it).
    closed: bool,
    /// The packet is TCP that may be coalesced at all.
    tcp: bool,
}

/// The offsets of a TCP packet's parts, when it can be coalesced.
#[derive(Clone, Copy)]
struct TcpShape {
    version: u8,
    ip_length: usize,
    headers: usize,
    payload: usize,
    sequence: u32,
    flags: u8,
}

/// A TCP packet whose IP and TCP headers allow coalescing: no IPv4
/// options or fragments, no IPv6 extension headers, only ACK (and PSH)
/// set, some payload, and lengths that agree with the bytes.
fn tcp_shape(packet: &[u8]) -> Option<TcpShape> {
    let (version, ip_length, protocol) = l4_of(packet).ok()?;
    if protocol != PROTOCOL_TCP {
        return None;
    }
    if version == 4 {
        let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        // Options or a fragment: left alone.
        let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff;
        if ip_length != 20 || fragment != 0 || total != packet.len() {
            return None;
        }
    } else {
        let payload = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
        if payload + 40 != packet.len() {
            return None;
        }
    }
    let tcp = packet.get(ip_length..ip_length + 20)?;
    let headers = ip_length + usize::from(tcp[12] >> 4) * 4;
    let flags = tcp[13];
    if headers < ip_length + 20 || headers >= packet.len() || flags & !(TCP_ACK | TCP_PSH) != 0 {
        return None;
    }
    if flags & TCP_ACK == 0 {
        return None;
    }
    Some(TcpShape {
        version,
        ip_length,
        headers,
        payload: packet.len() - headers,
        sequence: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags,
    })
}

/// Whether `b` has the same flow and headers as `a` (everything but the
/// IP length, id and checksum, the sequence number, PSH and the TCP
/// checksum).
fn same_headers(a: &[u8], b: &[u8], shape: &TcpShape) -> bool {
    let ip = shape.ip_length;
    if a.len() < shape.headers || b.len() < shape.headers {
        return false;
    }
    let ip_same = if shape.version == 4 {
        // Version, TOS; flags (DF); TTL, protocol; addresses.
        a[..2] == b[..2] && a[6..10] == b[6..10] && a[12..20] == b[12..20]
    } else {
        // Version, class, flow label; next header, hop limit; addresses.
        a[..4] == b[..4] && a[6..40] == b[6..40]
    };
    let (ta, tb) = (&a[ip..shape.headers], &b[ip..shape.headers]);
    ip_same
        // Ports; acknowledgement; data offset and window; options.
        && ta[..4] == tb[..4]
        && ta[8..13] == tb[8..13]
        && ta[14..16] == tb[14..16]
        && ta[20..] == tb[20..]
}

/// Which decrypted packets of a batch go to the TUN device together.
#[derive(Debug, Default)]
pub struct GroPlan {
    groups: Vec<Group>,
    /// For each packet, the next member of its group (`u32::MAX`: none).
    next: Vec<u32>,
}

/// One packet or group to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Packet `index` as it is.
    Single(u32),
    /// Group `index` of several packets, to assemble.
    Group(u32),
}

impl GroPlan {
    /// Plans `packets` (each an IP packet; `packet(i)` gives the i-th of
    /// `count`). Keeps its buffers between calls.
    pub fn plan<'a>(&mut self, count: usize, packet: impl Fn(usize) -> &'a [u8]) {
        self.groups.clear();
        self.next.clear();
        self.next.resize(count, u32::MAX);
        for index in 0..count {
            let bytes = packet(index);
            let shape = tcp_shape(bytes);
            if let Some(shape) = shape
                && self.join(index, bytes, &shape, &packet)
            {
                continue;
            }
            let (length, size, next_sequence) = shape.map_or((bytes.len(), 0, 0), |shape| {
                (
                    bytes.len(),
                    shape.payload,
                    shape.sequence.wrapping_add(shape.payload as u32),
                )
            });
            self.groups.push(Group {
                head: index as u32,
                tail: index as u32,
                count: 1,
                length,
                size,
                next_sequence,
                closed: shape.is_none_or(|shape| shape.flags & TCP_PSH != 0),
                tcp: shape.is_some(),
            });
        }
    }

    /// Adds packet `index` to the latest group of its flow, if it
    /// continues it.
    fn join<'a>(
        &mut self,
        index: usize,
        bytes: &[u8],
        shape: &TcpShape,
        packet: &impl Fn(usize) -> &'a [u8],
    ) -> bool {
        // Only the latest group of a flow may grow: joining an older one
        // would reorder the flow.
        let Some(group) = self
            .groups
            .iter_mut()
            .rev()
            .find(|group| group.tcp && same_headers(packet(group.head as usize), bytes, shape))
        else {
            return false;
        };
        let fits = !group.closed
            && group.count < MAX_GROUP
            && shape.sequence == group.next_sequence
            && shape.payload <= group.size
            && group.length + shape.payload <= MAX_PACKET;
        if !fits {
            // The flow goes on in a new group.
            group.closed = true;
            return false;
        }
        self.next[group.tail as usize] = index as u32;
        group.tail = index as u32;
        group.count += 1;
        group.length += shape.payload;
        group.next_sequence = shape.sequence.wrapping_add(shape.payload as u32);
        if shape.payload < group.size || shape.flags & TCP_PSH != 0 {
            group.closed = true;
        }
        true
    }

    /// What to write, in order.
    pub fn writes(&self) -> impl Iterator<Item = Write> + '_ {
        self.groups.iter().enumerate().map(|(index, group)| {
            if group.count == 1 {
                Write::Single(group.head)
            } else {
                Write::Group(index as u32)
            }
        })
    }

    /// The packets of group `index`, in order.
    pub fn members(&self, index: u32) -> impl Iterator<Item = usize> + '_ {
        let mut member = self.groups[index as usize].head;
        std::iter::from_fn(move || {
            if member == u32::MAX {
                return None;
            }
            let current = member;
            member = self.next[member as usize];
            Some(current as usize)
        })
    }

    /// Writes group `index` into `out` as a virtio-net header and one
    /// super-packet for the kernel to treat as its segments; returns the
    /// length written.
    pub fn assemble<'a>(
        &self,
        index: u32,
        packet: impl Fn(usize) -> &'a [u8],
        out: &mut [u8],
    ) -> usize {
        let group = self.groups[index as usize];
        let first = packet(group.head as usize);
        let shape = tcp_shape(first).expect("groups hold TCP packets only");
        let total = group.length;
        let packet_out = &mut out[VNET_HDR_LEN..VNET_HDR_LEN + total];
        packet_out[..shape.headers].copy_from_slice(&first[..shape.headers]);
        let mut at = shape.headers;
        let mut member = group.head;
        let mut last_flags = shape.flags;
        while member != u32::MAX {
            let bytes = packet(member as usize);
            let payload = &bytes[shape.headers..];
            packet_out[at..at + payload.len()].copy_from_slice(payload);
            at += payload.len();
            last_flags = bytes[shape.ip_length + 13];
            member = self.next[member as usize];
        }
        let ip = shape.ip_length;
        if shape.version == 4 {
            packet_out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            fix_ipv4_checksum(&mut packet_out[..ip]);
        } else {
            packet_out[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        }
        packet_out[ip + 13] = last_flags;
        // A partial checksum: the pseudo-header's sum, for the kernel to
        // treat as CHECKSUM_PARTIAL (the segments' integrity was proven by
        // their WireGuard authentication tags).
        let partial = checksum_fold(pseudo_header_sum(
            packet_out,
            shape.version,
            PROTOCOL_TCP,
            total - ip,
        ));
        packet_out[ip + 16..ip + 18].copy_from_slice(&partial.to_be_bytes());
        let header = VnetHeader {
            flags: NEEDS_CSUM,
            gso_type: if shape.version == 4 {
                GSO_TCPV4
            } else {
                GSO_TCPV6
            },
            hdr_len: shape.headers as u16,
            gso_size: group.size as u16,
            csum_start: ip as u16,
            csum_offset: 16,
        };
        let mut head = [0u8; VNET_HDR_LEN];
        header.write(&mut head);
        out[..VNET_HDR_LEN].copy_from_slice(&head);
        VNET_HDR_LEN + total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP packet with a correct checksum.
    fn tcp4(sequence: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0u8; 20 + 32];
        packet[0] = 0x45;
        packet[6] = 0x40; // DF
        packet[8] = 64;
        packet[9] = PROTOCOL_TCP;
        packet[12..16].copy_from_slice(&[100, 64, 0, 1]);
        packet[16..20].copy_from_slice(&[100, 64, 0, 2]);
        let tcp = &mut packet[20..];
        tcp[..4].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
        tcp[4..8].copy_from_slice(&sequence.to_be_bytes());
        tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 8 << 4; // 32 bytes: timestamps
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&512u16.to_be_bytes());
        tcp[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3]);
        packet.extend_from_slice(payload);
        let length = packet.len() as u16;
        packet[2..4].copy_from_slice(&length.to_be_bytes());
        fix_ipv4_checksum(&mut packet[..20]);
        let sum = pseudo_header_sum(&packet, 4, PROTOCOL_TCP, packet.len() - 20);
        let checksum = !checksum_fold(checksum_add(sum, &packet[20..]));
        packet[36..38].copy_from_slice(&checksum.to_be_bytes());
        packet
    }

    fn tcp6(sequence: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let v4 = tcp4(sequence, flags, payload);
        let mut packet = vec![0u8; 40];
        packet[0] = 0x60;
        packet[4..6].copy_from_slice(&((v4.len() - 20) as u16).to_be_bytes());
        packet[6] = PROTOCOL_TCP;
        packet[7] = 64;
        packet[8..24]
            .copy_from_slice(&[0xfd, 0x7a, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        packet[24..40]
            .copy_from_slice(&[0xfd, 0x7a, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        packet.extend_from_slice(&v4[20..]);
        packet[56..58].fill(0);
        let sum = pseudo_header_sum(&packet, 6, PROTOCOL_TCP, packet.len() - 40);
        let checksum = !checksum_fold(checksum_add(sum, &packet[40..]));
        packet[56..58].copy_from_slice(&checksum.to_be_bytes());
        packet
    }

    /// Whether the IP (v4) and TCP checksums of `packet` verify.
    fn checksums_hold(packet: &[u8]) -> bool {
        let (version, ip, protocol) = l4_of(packet).unwrap();
        let ip_ok = version == 6 || checksum_fold(checksum_add(0, &packet[..ip])) == 0xffff;
        let sum = pseudo_header_sum(packet, version, protocol, packet.len() - ip);
        ip_ok && checksum_fold(checksum_add(sum, &packet[ip..])) == 0xffff
    }

    fn payload(length: usize) -> Vec<u8> {
        (0..length).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// A TSO super-packet as the kernel hands it over: one header, the
    /// checksum field holding the pseudo-header sum.
    fn super_packet(version: u8, data: &[u8], size: u16, flags: u8) -> (VnetHeader, Vec<u8>) {
        let mut packet = if version == 4 {
            tcp4(1000, flags, data)
        } else {
            tcp6(1000, flags, data)
        };
        let ip = if version == 4 { 20 } else { 40 };
        let partial = checksum_fold(pseudo_header_sum(
            &packet,
            version,
            PROTOCOL_TCP,
            packet.len() - ip,
        ));
        packet[ip + 16..ip + 18].copy_from_slice(&partial.to_be_bytes());
        let header = VnetHeader {
            flags: NEEDS_CSUM,
            gso_type: if version == 4 { GSO_TCPV4 } else { GSO_TCPV6 },
            hdr_len: (ip + 32) as u16,
            gso_size: size,
            csum_start: ip as u16,
            csum_offset: 16,
        };
        (header, packet)
    }

    #[test]
    fn a_flow_hashes_the_same_whatever_its_payload_and_flows_spread() {
        let one = tcp4(1, TCP_ACK, &payload(10));
        let later = tcp4(99_999, TCP_ACK | TCP_PSH, &payload(700));
        assert_eq!(flow_hash(&one), flow_hash(&later));
        let spread: std::collections::HashSet<u32> = (0..64u16)
            .map(|port| {
                let mut packet = one.clone();
                packet[20..22].copy_from_slice(&(40_000 + port).to_be_bytes());
                flow_hash(&packet) % 4
            })
            .collect();
        assert_eq!(spread.len(), 4, "64 flows use all four queues");
        assert_eq!(flow_hash(&[0x45]), 0, "a truncated packet goes to queue 0");
    }

    #[test]
    fn the_header_reads_back_what_was_written() {
        let header = VnetHeader {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 72,
            gso_size: 1348,
            csum_start: 40,
            csum_offset: 16,
        };
        let mut bytes = [0u8; VNET_HDR_LEN];
        header.write(&mut bytes);
        assert_eq!(VnetHeader::parse(&bytes), Ok(header));
        assert_eq!(VnetHeader::parse(&bytes[..9]), Err(OffloadError::Truncated));
    }

    #[test]
    fn a_tso_packet_is_cut_into_segments_a_peer_accepts() {
        for version in [4u8, 6] {
            let data = payload(1348 * 3 + 500);
            let (header, mut packet) =
                super_packet(version, &data, 1348, TCP_ACK | TCP_PSH | TCP_CWR);
            let mut scratch = vec![0u8; 2048];
            let mut segments: Vec<Vec<u8>> = Vec::new();
            let count = segment(&header, &mut packet, &mut scratch, |s| {
                segments.push(s.to_vec())
            })
            .unwrap();
            assert_eq!(count, 4);
            let ip = if version == 4 { 20 } else { 40 };
            let mut rebuilt = Vec::new();
            for (index, segment) in segments.iter().enumerate() {
                assert!(
                    checksums_hold(segment),
                    "segment {index} of IPv{version} has bad checksums"
                );
                let tcp = &segment[ip..];
                let sequence = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
                assert_eq!(sequence, 1000 + 1348 * index as u32);
                let flags = tcp[13];
                assert_eq!(flags & TCP_PSH != 0, index == 3, "PSH only on the last");
                assert_eq!(flags & TCP_CWR != 0, index == 0, "CWR only on the first");
                if version == 4 {
                    assert_eq!(u16::from_be_bytes([segment[4], segment[5]]), index as u16);
                    assert_eq!(
                        usize::from(u16::from_be_bytes([segment[2], segment[3]])),
                        segment.len()
                    );
                }
                rebuilt.extend_from_slice(&segment[ip + 32..]);
            }
            assert_eq!(rebuilt, data, "the payload survives cutting");
            assert_eq!(segments[3].len(), ip + 32 + 500);
        }
    }

    #[test]
    fn a_packet_with_a_partial_checksum_is_finished() {
        let mut packet = tcp4(5, TCP_ACK, &payload(333));
        let correct = packet.clone();
        let partial = checksum_fold(pseudo_header_sum(
            &packet,
            4,
            PROTOCOL_TCP,
            packet.len() - 20,
        ));
        packet[36..38].copy_from_slice(&partial.to_be_bytes());
        let header = VnetHeader {
            flags: NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHeader::default()
        };
        let mut out = Vec::new();
        segment(&header, &mut packet, &mut [0u8; 64], |p| out = p.to_vec()).unwrap();
        assert_eq!(out, correct);
        let outside = VnetHeader {
            csum_start: 60_000,
            ..header
        };
        assert_eq!(
            segment(&outside, &mut packet, &mut [0u8; 64], |_| {}),
            Err(OffloadError::ChecksumOutside)
        );
    }

    #[test]
    fn bad_segmentation_requests_are_refused() {
        let (header, mut packet) = super_packet(4, &payload(3000), 1348, TCP_ACK);
        let mut scratch = vec![0u8; 2048];
        let refused = [
            (
                VnetHeader {
                    gso_size: 0,
                    ..header
                },
                OffloadError::ZeroSegment,
            ),
            (
                VnetHeader {
                    gso_type: GSO_UDP_L4,
                    ..header
                },
                OffloadError::Unsupported,
            ),
            (
                VnetHeader {
                    gso_type: GSO_TCPV6,
                    ..header
                },
                OffloadError::Unsupported,
            ),
        ];
        for (asked, error) in refused {
            assert_eq!(
                segment(&asked, &mut packet, &mut scratch, |_| {}),
                Err(error),
                "{asked:?}"
            );
        }
        assert_eq!(
            segment(&header, &mut packet[..30], &mut scratch, |_| {}),
            Err(OffloadError::Truncated)
        );
        // A TCP data offset below the header's own 20 bytes (found by the fuzzer).
        let mut short_offset = packet.clone();
        short_offset[32] = 2 << 4;
        assert_eq!(
            segment(&header, &mut short_offset, &mut scratch, |_| {}),
            Err(OffloadError::Truncated)
        );
        assert_eq!(
            segment(&header, &mut packet, &mut scratch[..100], |_| {}),
            Err(OffloadError::TooLarge)
        );
    }

    #[test]
    fn a_uso_packet_is_cut_into_udp_datagrams() {
        let mut packet = vec![0u8; 28];
        packet[0] = 0x45;
        packet[8] = 64;
        packet[9] = PROTOCOL_UDP;
        packet[12..16].copy_from_slice(&[100, 64, 0, 1]);
        packet[16..20].copy_from_slice(&[100, 64, 0, 2]);
        packet[20..24].copy_from_slice(&[0x13, 0x88, 0x13, 0x89]);
        packet.extend_from_slice(&payload(2500));
        let header = VnetHeader {
            flags: NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            gso_size: 1200,
            csum_start: 20,
            csum_offset: 6,
            hdr_len: 28,
        };
        let mut segments = Vec::new();
        segment(&header, &mut packet, &mut [0u8; 2048], |s| {
            segments.push(s.to_vec())
        })
        .unwrap();
        assert_eq!(
            segments.iter().map(Vec::len).collect::<Vec<_>>(),
            [1228, 1228, 128]
        );
        for segment in &segments {
            assert!(checksums_hold(segment));
            assert_eq!(
                usize::from(u16::from_be_bytes([segment[24], segment[25]])),
                segment.len() - 20
            );
        }
    }

    /// Plans `packets` and writes what the TUN device would get.
    fn coalesce(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut plan = GroPlan::default();
        plan.plan(packets.len(), |i| &packets[i]);
        let mut out = vec![0u8; VNET_HDR_LEN + MAX_PACKET];
        plan.writes()
            .map(|write| match write {
                Write::Single(index) => packets[index as usize].clone(),
                Write::Group(index) => {
                    let length = plan.assemble(index, |i| &packets[i], &mut out);
                    out[..length].to_vec()
                }
            })
            .collect()
    }

    /// What a kernel does with a coalesced write: cut it again (the
    /// header says how) and check every segment.
    fn resegment(written: &[u8]) -> Vec<Vec<u8>> {
        let header = VnetHeader::parse(written).unwrap();
        let mut packet = written[VNET_HDR_LEN..].to_vec();
        let mut segments = Vec::new();
        segment(&header, &mut packet, &mut vec![0u8; 4096], |s| {
            segments.push(s.to_vec())
        })
        .unwrap();
        segments
    }

    #[test]
    fn consecutive_segments_of_a_flow_become_one_packet_and_cut_back_the_same() {
        for version in [4u8, 6] {
            let data = payload(1348 * 5 + 10);
            let (header, mut packet) = super_packet(version, &data, 1348, TCP_ACK | TCP_PSH);
            let mut segments = Vec::new();
            segment(&header, &mut packet, &mut vec![0u8; 2048], |s| {
                segments.push(s.to_vec())
            })
            .unwrap();
            let written = coalesce(&segments);
            assert_eq!(written.len(), 1, "one write for the run");
            let back = resegment(&written[0]);
            assert_eq!(back, segments, "the kernel's view equals the segments sent");
        }
    }

    #[test]
    fn gaps_other_flows_and_control_packets_break_runs_without_reordering() {
        // Ids as a sender's TSO gives them, so that a run cut back matches.
        let a = |sequence: u32, length| {
            let mut packet = tcp4(sequence, TCP_ACK, &payload(length));
            packet[4..6].copy_from_slice(&((sequence / 100) as u16).to_be_bytes());
            fix_ipv4_checksum(&mut packet[..20]);
            packet
        };
        let mut other = tcp4(1000, TCP_ACK, &payload(100));
        other[20..22].copy_from_slice(&[0x9c, 0x41]); // another source port
        let syn = tcp4(9, 0x02, &[]);
        let packets = vec![
            a(1000, 100),
            a(1100, 100),
            other.clone(),
            a(1300, 100), // a gap: a new group
            a(1400, 100),
            syn.clone(),
            {
                let mut short = a(1500, 60); // short: ends its group
                short[4..6].copy_from_slice(&15u16.to_be_bytes());
                fix_ipv4_checksum(&mut short[..20]);
                short
            },
            a(1560, 100),
        ];
        let plan_of = |packets: &[Vec<u8>]| {
            let mut plan = GroPlan::default();
            plan.plan(packets.len(), |i| &packets[i]);
            plan.writes().collect::<Vec<_>>()
        };
        let writes = plan_of(&packets);
        assert_eq!(
            writes,
            [
                Write::Group(0),
                Write::Single(2),
                Write::Group(2),
                Write::Single(5),
                Write::Single(7),
            ]
        );
        let written = coalesce(&packets);
        // Packets 3, 4 and 6 went together, in order.
        let back = resegment(&written[2]);
        assert_eq!(
            back,
            [packets[3].clone(), packets[4].clone(), packets[6].clone()]
        );
        assert_eq!(written[1], other);
        assert_eq!(written[3], syn);
    }

    #[test]
    fn segments_with_other_headers_are_not_merged() {
        let base = tcp4(1000, TCP_ACK, &payload(100));
        let mut next = tcp4(1100, TCP_ACK, &payload(100));
        next[8] = 63; // another TTL
        let written = coalesce(&[base.clone(), next.clone()]);
        assert_eq!(written, [base.clone(), next]);
        let mut window = tcp4(1100, TCP_ACK, &payload(100));
        window[35] = 1; // another window
        assert_eq!(coalesce(&[base.clone(), window]).len(), 2);
        let mut fragment = tcp4(1100, TCP_ACK, &payload(100));
        fragment[6] = 0x20; // more fragments
        assert_eq!(coalesce(&[base.clone(), fragment]).len(), 2);
        let mut lying = tcp4(1100, TCP_ACK, &payload(100));
        lying[2..4].copy_from_slice(&60u16.to_be_bytes()); // length disagrees
        assert_eq!(coalesce(&[base, lying]).len(), 2);
    }

    #[test]
    fn a_group_stops_below_the_largest_ip_packet() {
        let packets: Vec<Vec<u8>> = (0..60)
            .map(|i| tcp4(1000 + i * 1348, TCP_ACK, &payload(1348)))
            .collect();
        let written = coalesce(&packets);
        assert!(written.iter().all(|w| w.len() <= VNET_HDR_LEN + MAX_PACKET));
        let segments: usize = written.iter().map(|w| resegment(w).len()).sum();
        assert_eq!(segments, 60);
        assert_eq!(written.len(), 2);
    }
}
