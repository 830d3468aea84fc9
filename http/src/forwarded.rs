//! Connections a proxy forwards to a server that has no network of its own
//! (a compute node in an AWS Nitro Enclave, reached over vsock; a UNIX
//! socket stands in for vsock in tests): each begins with a PROXY protocol
//! version 2 header (HAProxy's binary format) naming the client, so that
//! the server's per-source limits and logs see the client, not the proxy.
//!
//! ```text
//! 12 bytes  \r\n\r\n\0\r\nQUIT\n
//! 1 byte    0x21 (version 2, PROXY) or 0x20 (LOCAL: the proxy itself)
//! 1 byte    0x11 (TCP over IPv4) or 0x21 (TCP over IPv6); 0x00 for LOCAL
//! 2 bytes   length of what follows, big-endian
//! IPv4: source, destination addresses (4 + 4), ports (2 + 2)
//! IPv6: source, destination addresses (16 + 16), ports (2 + 2)
//! ```
//!
//! Further bytes the length covers (TLVs) are skipped. Pure, but for
//! [`read_header`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The header's first twelve bytes.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Largest header read (the fixed 16 bytes and what the length covers).
pub const MAX_HEADER: usize = 16 + 512;

/// What a header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// A client's connection, forwarded.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// Where it connected to.
        destination: SocketAddr,
    },
    /// The proxy's own connection (a health check).
    Local,
}

impl Header {
    /// The client's address; the unspecified address for the proxy's own.
    pub fn source(&self) -> SocketAddr {
        match self {
            Header::Proxied { source, .. } => *source,
            Header::Local => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        }
    }
}

/// Why bytes are not a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More bytes are needed: at least this many in all.
    #[error("the header is cut short ({0} bytes needed)")]
    Incomplete(usize),
    /// Not a PROXY v2 header.
    #[error("not a PROXY protocol v2 header: {0}")]
    Invalid(&'static str),
}

/// The header for a connection from `source` to `destination`.
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (source.ip().to_canonical(), destination.ip().to_canonical()) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&from.octets());
            out.extend_from_slice(&to.octets());
        }
        (from, to) => {
            let six = |address: IpAddr| match address {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&six(from).octets());
            out.extend_from_slice(&six(to).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// The LOCAL header (the proxy's own connection).
pub fn encode_local() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20, 0x00, 0, 0]);
    out
}

/// Reads a header at the start of `bytes`: what it says and how many
/// bytes it took.
pub fn parse(bytes: &[u8]) -> Result<(Header, usize), HeaderError> {
    let fixed = bytes.get(..16).ok_or(HeaderError::Incomplete(16))?;
    if fixed[..12] != SIGNATURE {
        return Err(HeaderError::Invalid("no signature"));
    }
    let (version_command, family) = (fixed[12], fixed[13]);
    if version_command >> 4 != 2 {
        return Err(HeaderError::Invalid("not version 2"));
    }
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let total = 16 + length;
    if total > MAX_HEADER {
        return Err(HeaderError::Invalid("longer than a header"));
    }
    let body = bytes.get(16..total).ok_or(HeaderError::Incomplete(total))?;
    match version_command & 0x0f {
        0 => return Ok((Header::Local, total)),
        1 => {}
        _ => return Err(HeaderError::Invalid("neither PROXY nor LOCAL")),
    }
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let header = match family {
        0x11 if length >= 12 => {
            let address = |at: usize| {
                IpAddr::V4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(&body[at..at + 4]).expect("4 bytes"),
                ))
            };
            Header::Proxied {
                source: SocketAddr::new(address(0), port(8)),
                destination: SocketAddr::new(address(4), port(10)),
            }
        }
        0x21 if length >= 36 => {
            let address = |at: usize| {
                let v6 =
                    Ipv6Addr::from(<[u8; 16]>::try_from(&body[at..at + 16]).expect("16 bytes"));
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            };
            Header::Proxied {
                source: SocketAddr::new(address(0), port(32)),
                destination: SocketAddr::new(address(16), port(34)),
            }
        }
        _ => return Err(HeaderError::Invalid("not TCP over IPv4 or IPv6")),
    };
    Ok((header, total))
}

/// Reads the header a forwarded connection begins with, within `limit`
/// (exactly its bytes: what follows is the client's).
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    limit: Duration,
) -> std::io::Result<Header> {
    let read = async {
        let mut buffer = vec![0u8; 16];
        stream.read_exact(&mut buffer).await?;
        match parse(&buffer) {
            Ok((header, _)) => return Ok(header),
            Err(HeaderError::Incomplete(total)) => {
                buffer.resize(total, 0);
                stream.read_exact(&mut buffer[16..]).await?;
            }
            Err(error) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error));
            }
        }
        parse(&buffer)
            .map(|(header, _)| header)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no PROXY header in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_for_both_families_and_local() {
        let v4: SocketAddr = "198.51.100.7:40123".parse().unwrap();
        let node: SocketAddr = "10.0.0.2:7000".parse().unwrap();
        let bytes = encode(v4, node);
        assert_eq!(bytes.len(), 28);
        assert_eq!(
            parse(&bytes),
            Ok((
                Header::Proxied {
                    source: v4,
                    destination: node
                },
                28
            ))
        );
        let v6: SocketAddr = "[2001:db8::7]:443".parse().unwrap();
        let bytes = encode(v6, node);
        assert_eq!(bytes.len(), 52);
        let (header, _) = parse(&bytes).unwrap();
        assert_eq!(header.source(), v6);
        assert_eq!(parse(&encode_local()), Ok((Header::Local, 16)));
        assert_eq!(Header::Local.source().ip(), IpAddr::from([0, 0, 0, 0]));
    }

    #[test]
    fn a_header_cut_short_asks_for_more_and_garbage_is_refused() {
        let bytes = encode(
            "192.0.2.1:1".parse().unwrap(),
            "192.0.2.2:2".parse().unwrap(),
        );
        assert_eq!(parse(&bytes[..10]), Err(HeaderError::Incomplete(16)));
        assert_eq!(parse(&bytes[..20]), Err(HeaderError::Incomplete(28)));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HeaderError::Invalid(_))
        ));
        let mut unknown = bytes.clone();
        unknown[13] = 0x31; // UNIX sockets: not forwarded here
        assert!(matches!(parse(&unknown), Err(HeaderError::Invalid(_))));
        let mut long = bytes;
        long[14..16].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(
            parse(&long),
            Err(HeaderError::Invalid("longer than a header"))
        );
    }

    #[tokio::test]
    async fn the_header_is_read_and_the_clients_bytes_follow_untouched() {
        let source: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let mut wire = encode(source, "127.0.0.1:7000".parse().unwrap());
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut reader = &wire[..];
        let header = read_header(&mut reader, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(header.source(), source);
        assert_eq!(reader, b"GET / HTTP/1.1\r\n");
        let mut silent = tokio::io::empty();
        assert!(
            read_header(&mut silent, Duration::from_millis(50))
                .await
                .is_err()
        );
    }
}
