//! Clients that misbehave on purpose, for tests of the edge's deadlines
//! (and of every server built on it): one that connects and says nothing,
//! one that speaks HTTP/2 just enough to answer PINGs and never asks, one
//! that starts a body and never finishes it. Each reports how long the
//! server let it hold the connection. HTTP/2 frames are written by hand
//! (RFC 9113 section 4.1) so that the client can stop anywhere.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The HTTP/2 connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One HTTP/2 frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("test frames are small");
    let mut out = length.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A GET of `path` at `authority` on stream 1 as one HEADERS frame
/// (HPACK: static-table method, scheme and literal path and authority).
pub fn get_request(authority: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    for (index, value) in [(4u8, path), (1u8, authority)] {
        // Literal without indexing, indexed name; 7-bit length, no Huffman.
        block.push(index);
        block.push(u8::try_from(value.len()).expect("short test values"));
        block.extend_from_slice(value.as_bytes());
    }
    frame(HEADERS, END_HEADERS | END_STREAM, 1, &block)
}

/// Reads and drops whatever comes until the server closes `stream`: how
/// long that took, or `None` if it was still open after `limit`.
pub async fn until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

/// Reads one frame: type, flags, stream, payload; `None` at the end.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], id, payload))
}

/// Speaks HTTP/2 as a live client does at the frame level (preface,
/// SETTINGS, acknowledging the server's SETTINGS and answering every PING)
/// and, with `request`, sends that one request first and reads its whole
/// response. Then it asks nothing more. How long the server kept the
/// connection after the last response ended (or after connecting, without
/// a request), or `None` if it was still open after `limit`. A GOAWAY
/// counts as closing.
pub async fn http2_answering_pings<S>(
    mut stream: S,
    request: Option<Vec<u8>>,
    limit: Duration,
) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    let asked = request.is_some();
    if let Some(request) = request {
        hello.extend(request);
    }
    stream.write_all(&hello).await.ok()?;
    let mut started = Instant::now();
    let mut answered = !asked;
    let talk = async {
        while let Some((kind, flags, id, payload)) = read_frame(&mut stream).await {
            let reply = match kind {
                SETTINGS if flags & ACK == 0 => Some(frame(SETTINGS, ACK, 0, &[])),
                PING if flags & ACK == 0 => Some(frame(PING, ACK, 0, &payload)),
                GOAWAY => return,
                DATA | HEADERS if id == 1 && flags & END_STREAM != 0 => {
                    answered = true;
                    started = Instant::now();
                    None
                }
                _ => None,
            };
            if let Some(reply) = reply
                && stream.write_all(&reply).await.is_err()
            {
                return;
            }
        }
    };
    tokio::time::timeout(limit, talk).await.ok()?;
    answered.then(|| started.elapsed())
}

/// Sends an HTTP/1 POST of `path` at `authority` declaring a body of
/// `declared` bytes, sends `sent` of them, and waits: the server's answer
/// (status line and headers) if one comes before `limit`, with how long it
/// took; `None` if the connection stayed silent.
pub async fn http1_unfinished_body<S>(
    mut stream: S,
    authority: &str,
    path: &str,
    declared: usize,
    sent: usize,
    limit: Duration,
) -> Option<(String, Duration)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let body = vec![b' '; sent.min(declared)];
    stream.write_all(&body).await.ok()?;
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(count) => {
                    answer.extend_from_slice(&buffer[..count]);
                    if answer.windows(4).any(|window| window == b"\r\n\r\n") {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some((
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    ))
}
