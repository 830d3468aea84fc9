//! Fuzzes the PROXY v2 header a forwarded connection begins with (what
//! anyone who can reach a node's vsock or UNIX socket may send): a header
//! or an error, never a panic; a header never claims more bytes than it
//! was given or than a header may have; what is encoded reads back.
#![no_main]

use std::net::SocketAddr;

use hearth_http::forwarded::{HeaderError, MAX_HEADER, encode, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok((_, used)) => assert!(used <= data.len() && used <= MAX_HEADER),
        Err(HeaderError::Incomplete(needed)) => assert!(needed > data.len() && needed <= MAX_HEADER),
        Err(HeaderError::Invalid(_)) => {}
    }
    if data.len() >= 12 {
        let v4 = SocketAddr::from((
            [data[0], data[1], data[2], data[3]],
            u16::from_be_bytes([data[4], data[5]]),
        ));
        let mut v6 = [0u8; 16];
        v6[..data.len().min(16)].copy_from_slice(&data[..data.len().min(16)]);
        let v6 = SocketAddr::from((v6, u16::from_be_bytes([data[6], data[7]])));
        for (source, destination) in [(v4, v6), (v6, v4), (v4, v4)] {
            let bytes = encode(source, destination);
            let (header, used) = parse(&bytes).expect("an encoded header reads back");
            assert_eq!(used, bytes.len());
            assert_eq!(header.source().port(), source.port());
            assert_eq!(header.source().ip().to_canonical(), source.ip().to_canonical());
        }
    }
});
