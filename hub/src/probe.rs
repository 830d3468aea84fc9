//! Asking a local service: one HTTP/1.0 request over TCP or a UNIX socket
//! (a `GET` whether it answers; the Podman service's API), optionally from
//! inside another network namespace (the pod's loopback), with a deadline.
//! Only for the hub's own services, on loopback, sockets and the pod.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// The most read of an answer.
const MAX_ANSWER: u64 = 16 << 20;
/// How long a probe may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// Where to ask.
#[derive(Clone, Debug)]
pub enum Target {
    /// A TCP address in this network namespace.
    Tcp(SocketAddr),
    /// A UNIX socket.
    Unix(PathBuf),
    /// A TCP address inside the network namespace at this path
    /// (`/proc/PID/ns/net`).
    TcpIn(PathBuf, SocketAddr),
}

/// An answer: its status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Reaching or talking to `what` failed.
    #[error("{what}: {error}")]
    Io {
        /// The address, socket or namespace.
        what: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// Talking to the service failed after it was reached.
    #[error(transparent)]
    Exchange(#[from] std::io::Error),
    /// The thread that entered the namespace died.
    #[error("the probe's thread failed")]
    Thread,
    /// The bytes are not an HTTP/1.x answer.
    #[error("{0}")]
    NotHttp(String),
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ProbeError {
    move |error| ProbeError::Io {
        what: what.to_string(),
        error,
    }
}

/// `GET path` at `target`.
pub fn get(target: &Target, path: &str) -> Result<Answer, ProbeError> {
    request(target, "GET", path, None, DEADLINE)
}

/// `method path` at `target`, with `body` (its content type and bytes)
/// when given, waiting up to `deadline` for the whole answer.
pub fn request(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    deadline: Duration,
) -> Result<Answer, ProbeError> {
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: hearth\r\n")
            .into_bytes();
    match body {
        Some((content_type, bytes)) => {
            request.extend_from_slice(
                format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            );
            request.extend_from_slice(bytes);
        }
        None => request.extend_from_slice(b"\r\n"),
    }
    let raw = match target {
        Target::Tcp(address) => {
            let stream = TcpStream::connect_timeout(address, DEADLINE).map_err(io(address))?;
            exchange(stream, &request, deadline)?
        }
        Target::Unix(path) => {
            let stream = UnixStream::connect(path).map_err(io(path.display()))?;
            stream
                .set_read_timeout(Some(deadline))
                .and_then(|()| stream.set_write_timeout(Some(deadline)))?;
            let mut stream = stream;
            stream.write_all(&request)?;
            read_all(&mut stream)?
        }
        Target::TcpIn(namespace, address) => {
            let namespace = namespace.clone();
            let address = *address;
            let request = request.clone();
            // A thread of its own enters the namespace (setns affects only
            // the calling thread) and is gone with it.
            std::thread::spawn(move || {
                let file = std::fs::File::open(&namespace).map_err(io(namespace.display()))?;
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|error| {
                    io(format!("cannot enter {}", namespace.display()))(error.into())
                })?;
                let stream = TcpStream::connect_timeout(&address, DEADLINE).map_err(io(address))?;
                exchange(stream, &request, deadline)
            })
            .join()
            .map_err(|_| ProbeError::Thread)??
        }
    };
    parse(&raw)
}

fn exchange(
    mut stream: TcpStream,
    request: &[u8],
    deadline: Duration,
) -> Result<Vec<u8>, ProbeError> {
    stream
        .set_read_timeout(Some(deadline))
        .and_then(|()| stream.set_write_timeout(Some(deadline)))?;
    stream.write_all(request)?;
    read_all(&mut stream)
}

fn read_all(stream: &mut impl Read) -> Result<Vec<u8>, ProbeError> {
    let mut raw = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut raw)?;
    Ok(raw)
}

/// Splits an HTTP/1.x answer into its status and body.
pub fn parse(raw: &[u8]) -> Result<Answer, ProbeError> {
    let not_http = |why: &str| ProbeError::NotHttp(why.to_owned());
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| not_http("no complete HTTP answer"))?;
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| not_http("an answer that is not text"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..600).contains(code));
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(ProbeError::NotHttp(format!(
            "not an HTTP answer: {status_line:?}"
        )));
    };
    let chunked = head.lines().skip(1).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = &raw[head_end + 4..];
    let body = if chunked {
        unchunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Answer { status, body })
}

/// A chunked body's data (a server may chunk its answer to HTTP/1.0).
fn unchunk(mut rest: &[u8]) -> Result<Vec<u8>, ProbeError> {
    let not_http = |why: &str| ProbeError::NotHttp(why.to_owned());
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or_else(|| not_http("a chunk without its size line"))?;
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| not_http("a chunk size that is not a number"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let data = rest
            .get(..size)
            .ok_or_else(|| not_http("a chunk cut short"))?;
        body.extend_from_slice(data);
        rest = rest
            .get(size + 2..)
            .ok_or_else(|| not_http("a chunk cut short"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_splits_into_status_and_body() {
        let answer = parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"status\":\"loading\"}").unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.body, b"{\"status\":\"loading\"}");
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 999 Odd\r\n\r\n").is_err());
    }

    #[test]
    fn a_chunked_answer_is_read_whole() {
        let answer = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2;x=1\r\n1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(answer.body, b"{\"a\":1}");
        for cut in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(parse(cut).is_err(), "{:?}", String::from_utf8_lossy(cut));
        }
    }

    #[test]
    fn a_local_server_is_asked_over_tcp_and_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let unix = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = tcp.local_addr().unwrap();
        let serve_once = |mut stream: Box<dyn ReadWrite>| {
            let mut request = [0u8; 512];
            let read = stream.read(&mut request).unwrap();
            assert!(request[..read].starts_with(b"GET /health HTTP/1.0\r\n"));
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
        };
        let server = std::thread::spawn(move || {
            serve_once(Box::new(tcp.accept().unwrap().0));
            serve_once(Box::new(unix.accept().unwrap().0));
        });
        let over_tcp = get(&Target::Tcp(address), "/health").unwrap();
        let over_socket = get(&Target::Unix(socket), "/health").unwrap();
        server.join().unwrap();
        assert_eq!(
            over_tcp,
            Answer {
                status: 200,
                body: b"ok".to_vec()
            }
        );
        assert_eq!(over_socket, over_tcp);
    }

    trait ReadWrite: Read + Write {}
    impl<T: Read + Write> ReadWrite for T {}
}
