//! DERP, Tailscale's relay protocol, both sides of its wire format: frames
//! of one type byte, a 4-byte big-endian length and a payload; the login
//! (server key, the client's NaCl-boxed info, the server's boxed info);
//! packets sent to a node key and received from one. Pure: bytes in, bytes
//! out; keys and nonces are inputs.

use crypto_box::aead::Aead as _;
use crypto_box::{PublicKey, SalsaBox, SecretKey};

/// The greeting's magic: `DERP` and a key emoji, 8 bytes.
pub const MAGIC: &[u8; 8] = b"DERP\xf0\x9f\x94\x91";
/// The protocol version served (received packets carry the sender's key).
pub const PROTOCOL_VERSION: u32 = 2;
/// A frame header: type and length.
pub const HEADER_LEN: usize = 5;
/// The largest packet relayed.
pub const MAX_PACKET: usize = 64 << 10;
/// The largest frame read from a client: a packet, its key, slack.
pub const MAX_FRAME: usize = MAX_PACKET + 64;
/// The largest client info accepted.
pub const MAX_INFO: usize = 256 << 10;
/// A NaCl box nonce.
pub const NONCE_LEN: usize = 24;

/// Frame types.
pub mod kind {
    /// Server to client: magic and the server's public key.
    pub const SERVER_KEY: u8 = 0x01;
    /// Client to server: its public key and its boxed info.
    pub const CLIENT_INFO: u8 = 0x02;
    /// Server to client: its boxed info.
    pub const SERVER_INFO: u8 = 0x03;
    /// Client to server: a destination key and a packet.
    pub const SEND_PACKET: u8 = 0x04;
    /// Server to client: the sender's key and a packet.
    pub const RECV_PACKET: u8 = 0x05;
    /// Either way: nothing, the connection is alive.
    pub const KEEP_ALIVE: u8 = 0x06;
    /// Client to server: whether this is its home relay.
    pub const NOTE_PREFERRED: u8 = 0x07;
    /// Server to client: a peer it sent to is gone.
    pub const PEER_GONE: u8 = 0x08;
    /// Server to a watching client: a peer connected.
    pub const PEER_PRESENT: u8 = 0x09;
    /// Either way: 8 bytes to echo.
    pub const PING: u8 = 0x12;
    /// The echo of a ping.
    pub const PONG: u8 = 0x13;
}

/// Why a peer is reported gone.
pub mod gone {
    /// It disconnected (or was never connected here).
    pub const DISCONNECTED: u8 = 0x00;
    /// It is not known to this relay.
    pub const NOT_HERE: u8 = 0x01;
}

/// What went wrong reading a client's frames.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DerpError {
    /// A frame declared more bytes than allowed.
    #[error("a DERP frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The first frame was not the client's info.
    #[error("the client's first frame must be its info")]
    NotClientInfo,
    /// The client info is too short to hold a key and a box.
    #[error("the client info frame is too short")]
    ShortClientInfo,
    /// The box did not open with the client's key.
    #[error("the client info did not open with the key it names")]
    BadBox,
    /// A send-packet frame too short to hold its key.
    #[error("a send-packet frame is shorter than its destination key")]
    ShortPacket,
    /// The server's greeting is not DERP's.
    #[error("the relay's greeting is not DERP's")]
    NotServerKey,
    /// A server frame too short for its type.
    #[error("a relay frame of type {0:#04x} is too short")]
    ShortFrame(u8),
}

/// One frame's type and length, when `bytes` starts with a whole header;
/// lengths over `limit` are refused.
pub fn header(bytes: &[u8], limit: usize) -> Result<Option<(u8, usize)>, DerpError> {
    let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if length > limit {
        return Err(DerpError::TooLarge(length));
    }
    Ok(Some((head[0], length)))
}

/// A frame of `kind` carrying the concatenation of `parts`.
pub fn frame(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let length: usize = parts.iter().map(|part| part.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + length);
    out.push(kind);
    out.extend_from_slice(&(length as u32).to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The server's greeting.
pub fn server_key(public: &[u8; 32]) -> Vec<u8> {
    frame(kind::SERVER_KEY, &[MAGIC, public])
}

/// The client's key and the JSON of its info, from a client-info frame's
/// payload boxed to the server's `secret`.
pub fn open_client_info(
    secret: &[u8; 32],
    payload: &[u8],
) -> Result<([u8; 32], Vec<u8>), DerpError> {
    if payload.len() < 32 + NONCE_LEN + 16 {
        return Err(DerpError::ShortClientInfo);
    }
    let (client, sealed) = payload.split_at(32);
    let client: [u8; 32] = client.try_into().map_err(|_| DerpError::ShortClientInfo)?;
    let opened = open(secret, &client, sealed)?;
    Ok((client, opened))
}

/// The server's info frame, boxed from `secret` to `client` under `nonce`.
pub fn server_info(secret: &[u8; 32], client: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let json = format!("{{\"version\":{PROTOCOL_VERSION}}}");
    let sealed = seal(secret, client, nonce, json.as_bytes());
    frame(kind::SERVER_INFO, &[&sealed])
}

/// A packet from `source` as its recipient receives it.
pub fn recv_packet(source: &[u8; 32], packet: &[u8]) -> Vec<u8> {
    frame(kind::RECV_PACKET, &[source, packet])
}

/// The destination key and packet of a send-packet frame's payload.
pub fn split_send(payload: &[u8]) -> Result<([u8; 32], &[u8]), DerpError> {
    let (destination, packet) = payload
        .split_first_chunk::<32>()
        .ok_or(DerpError::ShortPacket)?;
    Ok((*destination, packet))
}

/// Tells a client that `peer` is gone, for `reason`.
pub fn peer_gone(peer: &[u8; 32], reason: u8) -> Vec<u8> {
    frame(kind::PEER_GONE, &[peer, &[reason]])
}

/// A keep-alive frame.
pub fn keep_alive() -> Vec<u8> {
    frame(kind::KEEP_ALIVE, &[])
}

/// The answer to a ping carrying `data`.
pub fn pong(data: &[u8]) -> Vec<u8> {
    frame(kind::PONG, &[data])
}

/// The client's login: its public key and the JSON of its info, boxed from
/// its `secret` to the relay's `server` key under `nonce`.
pub fn client_info(
    secret: &[u8; 32],
    public: &[u8; 32],
    server: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    json: &[u8],
) -> Vec<u8> {
    let sealed = seal(secret, server, nonce, json);
    frame(kind::CLIENT_INFO, &[public, &sealed])
}

/// A packet for the node with key `destination`.
pub fn send_packet(destination: &[u8; 32], packet: &[u8]) -> Vec<u8> {
    frame(kind::SEND_PACKET, &[destination, packet])
}

/// Tells the relay whether it is this client's home relay.
pub fn note_preferred(preferred: bool) -> Vec<u8> {
    frame(kind::NOTE_PREFERRED, &[&[u8::from(preferred)]])
}

/// A ping the relay echoes with `data`.
pub fn ping(data: &[u8; 8]) -> Vec<u8> {
    frame(kind::PING, &[data])
}

/// The relay's public key from its greeting's payload.
pub fn parse_server_key(payload: &[u8]) -> Result<[u8; 32], DerpError> {
    let rest = payload.strip_prefix(MAGIC).ok_or(DerpError::NotServerKey)?;
    rest.get(..32)
        .and_then(|key| key.try_into().ok())
        .ok_or(DerpError::NotServerKey)
}

/// A frame the relay sends a client, after the login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// A packet from the node with key `source`.
    Packet {
        /// The sender's node key.
        source: [u8; 32],
        /// The packet.
        packet: &'a [u8],
    },
    /// A peer we sent to is not (or no longer) connected.
    PeerGone {
        /// Its key.
        peer: [u8; 32],
    },
    /// The relay asks for an echo of these bytes.
    Ping([u8; 8]),
    /// The echo of our ping.
    Pong([u8; 8]),
    /// Keep-alive, or a frame this client has no use for.
    Other(u8),
}

/// Reads one frame of `kind` with `payload` from the relay.
pub fn server_frame(kind: u8, payload: &[u8]) -> Result<ServerFrame<'_>, DerpError> {
    let short = DerpError::ShortFrame(kind);
    Ok(match kind {
        kind::RECV_PACKET => {
            let (source, packet) = payload.split_first_chunk::<32>().ok_or(short)?;
            ServerFrame::Packet {
                source: *source,
                packet,
            }
        }
        kind::PEER_GONE => ServerFrame::PeerGone {
            peer: *payload.first_chunk::<32>().ok_or(short)?,
        },
        kind::PING => ServerFrame::Ping(*payload.first_chunk::<8>().ok_or(short)?),
        kind::PONG => ServerFrame::Pong(*payload.first_chunk::<8>().ok_or(short)?),
        other => ServerFrame::Other(other),
    })
}

/// NaCl `box`: `nonce` followed by the tag and ciphertext of `message`.
pub fn seal(
    secret: &[u8; 32],
    peer: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    message: &[u8],
) -> Vec<u8> {
    let cipher = SalsaBox::new(&PublicKey::from(*peer), &SecretKey::from(*secret));
    let sealed = cipher
        .encrypt(nonce.into(), message)
        .expect("a message of bounded size seals");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] made (by `peer`, for `secret`'s owner).
pub fn open(secret: &[u8; 32], peer: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, DerpError> {
    let (nonce, boxed) = sealed
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(DerpError::BadBox)?;
    let cipher = SalsaBox::new(&PublicKey::from(*peer), &SecretKey::from(*secret));
    cipher
        .decrypt(nonce.into(), boxed)
        .map_err(|_| DerpError::BadBox)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(secret: &[u8; 32]) -> [u8; 32] {
        *SecretKey::from(*secret).public_key().as_bytes()
    }

    #[test]
    fn the_login_opens_with_the_right_keys_only() {
        let server = [1u8; 32];
        let client = [2u8; 32];
        let info = br#"{"version":2,"CanAckPings":true}"#;
        let sealed = seal(&client, &public(&server), &[7; NONCE_LEN], info);
        let payload = [public(&client).as_slice(), &sealed].concat();
        let (key, json) = open_client_info(&server, &payload).unwrap();
        assert_eq!(key, public(&client));
        assert_eq!(json, info);

        let mut tampered = payload.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open_client_info(&server, &tampered), Err(DerpError::BadBox));
        let mut other_key = payload.clone();
        other_key[0] ^= 1;
        assert_eq!(
            open_client_info(&server, &other_key),
            Err(DerpError::BadBox)
        );
        assert_eq!(
            open_client_info(&server, &payload[..40]),
            Err(DerpError::ShortClientInfo)
        );

        let reply = server_info(&server, &public(&client), &[9; NONCE_LEN]);
        let (kind, length) = header(&reply, MAX_FRAME).unwrap().unwrap();
        assert_eq!(kind, kind::SERVER_INFO);
        let opened = open(
            &client,
            &public(&server),
            &reply[HEADER_LEN..HEADER_LEN + length],
        )
        .unwrap();
        assert_eq!(opened, br#"{"version":2}"#);
    }

    #[test]
    fn the_box_is_nacl_s_layout_tag_first() {
        // NaCl's box puts the 16-byte Poly1305 tag before the ciphertext;
        // a message of n bytes seals to nonce + 16 + n bytes, and the
        // ciphertext's last n bytes are the XSalsa20 stream XOR the message,
        // so flipping a message bit flips the same bit at the end.
        let (a, b) = ([3u8; 32], [4u8; 32]);
        let one = seal(&a, &public(&b), &[0; NONCE_LEN], b"hello");
        let two = seal(&a, &public(&b), &[0; NONCE_LEN], b"hellp");
        assert_eq!(one.len(), NONCE_LEN + 16 + 5);
        assert_eq!(
            one[NONCE_LEN + 16..NONCE_LEN + 20],
            two[NONCE_LEN + 16..NONCE_LEN + 20]
        );
        assert_eq!(one[one.len() - 1] ^ two[two.len() - 1], b'o' ^ b'p');
    }

    #[test]
    fn frames_carry_their_length_and_limits_hold() {
        let greeting = server_key(&[5; 32]);
        assert_eq!(greeting.len(), HEADER_LEN + 40);
        assert_eq!(&greeting[HEADER_LEN..HEADER_LEN + 8], MAGIC);
        assert_eq!(
            header(&greeting, MAX_FRAME).unwrap(),
            Some((kind::SERVER_KEY, 40))
        );
        assert_eq!(header(&greeting[..4], MAX_FRAME).unwrap(), None);
        let huge = [kind::SEND_PACKET, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            header(&huge, MAX_FRAME),
            Err(DerpError::TooLarge(_))
        ));

        let payload = [[6u8; 32].as_slice(), b"packet"].concat();
        let (destination, packet) = split_send(&payload).unwrap();
        assert_eq!(destination, [6; 32]);
        assert_eq!(packet, b"packet");
        assert_eq!(split_send(&payload[..31]), Err(DerpError::ShortPacket));
        assert_eq!(
            recv_packet(&[8; 32], b"x")[HEADER_LEN..HEADER_LEN + 32],
            [8; 32]
        );
        assert_eq!(
            peer_gone(&[1; 32], gone::DISCONNECTED).len(),
            HEADER_LEN + 33
        );
        assert_eq!(pong(&[1; 8])[0], kind::PONG);
        assert_eq!(keep_alive(), [kind::KEEP_ALIVE, 0, 0, 0, 0]);
    }

    #[test]
    fn the_client_side_reads_what_the_server_side_writes() {
        let (server, client) = ([1u8; 32], [2u8; 32]);
        let greeting = server_key(&public(&server));
        assert_eq!(
            parse_server_key(&greeting[HEADER_LEN..]),
            Ok(public(&server))
        );
        assert_eq!(
            parse_server_key(b"DERP but not quite"),
            Err(DerpError::NotServerKey)
        );

        let login = client_info(
            &client,
            &public(&client),
            &public(&server),
            &[4; NONCE_LEN],
            br#"{"version":2}"#,
        );
        let (key, json) = open_client_info(&server, &login[HEADER_LEN..]).unwrap();
        assert_eq!(
            (key, json.as_slice()),
            (public(&client), &br#"{"version":2}"#[..])
        );

        let sent = send_packet(&[6; 32], b"wg");
        assert_eq!(split_send(&sent[HEADER_LEN..]), Ok(([6; 32], &b"wg"[..])));
        let received = recv_packet(&[7; 32], b"wg");
        assert_eq!(
            server_frame(received[0], &received[HEADER_LEN..]),
            Ok(ServerFrame::Packet {
                source: [7; 32],
                packet: b"wg"
            })
        );
        let gone = peer_gone(&[8; 32], gone::NOT_HERE);
        assert_eq!(
            server_frame(gone[0], &gone[HEADER_LEN..]),
            Ok(ServerFrame::PeerGone { peer: [8; 32] })
        );
        assert_eq!(
            server_frame(kind::PONG, &[1, 2, 3, 4, 5, 6, 7, 8]),
            Ok(ServerFrame::Pong([1, 2, 3, 4, 5, 6, 7, 8]))
        );
        assert_eq!(
            server_frame(kind::RECV_PACKET, &[0; 31]),
            Err(DerpError::ShortFrame(kind::RECV_PACKET))
        );
        assert_eq!(
            server_frame(kind::KEEP_ALIVE, &[]),
            Ok(ServerFrame::Other(kind::KEEP_ALIVE))
        );
        assert_eq!(note_preferred(true), [kind::NOTE_PREFERRED, 0, 0, 0, 1, 1]);
        assert_eq!(ping(&[9; 8])[0], kind::PING);
    }
}
