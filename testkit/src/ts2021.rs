//! A client of the coordinator's Tailscale control protocol for tests: it
//! opens ts2021 sessions as the official client does (fetch the control
//! key, `POST /ts2021` with the Noise initiation in `X-Tailscale-Handshake`,
//! the handshake response after the 101), over plain HTTP from a chosen
//! loopback address. Inside a session a test speaks HTTP/2 with hyper's
//! client ([`http2`]) or misbehaves on purpose (`hearth_http::probe`).

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use hearth_control::noise_stream::NoiseStream;
use hearth_control::ts2021;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use x25519_dalek::StaticSecret;

/// The capability version the client states (1.96's).
pub const VERSION: u16 = 130;

/// A session with the coordinator.
pub type Session = NoiseStream<TcpStream>;

/// The coordinator's control key from `GET /key` on the plain listener at
/// `address`.
pub async fn control_key(address: SocketAddr) -> [u8; 32] {
    let answer: serde_json::Value = reqwest::get(format!("http://{address}/key?v={VERSION}"))
        .await
        .expect("the coordinator answers /key")
        .json()
        .await
        .expect("/key answers JSON");
    let text = answer["publicKey"]
        .as_str()
        .and_then(|text| text.strip_prefix("mkey:"))
        .expect("a machine key");
    hex::decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .expect("32 bytes of hex")
}

/// A TCP connection to `address` from loopback address `from`.
pub async fn connect_from(from: IpAddr, address: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(address).await
}

/// Opens a session from `from` to the plain listener at `address` (whose
/// control key is `control`) as the device with `machine` key.
pub async fn open(
    from: IpAddr,
    address: SocketAddr,
    control: &[u8; 32],
    machine: StaticSecret,
) -> std::io::Result<Session> {
    let (initiation, initiator) =
        ts2021::initiate(control, machine, StaticSecret::random(), VERSION)
            .map_err(std::io::Error::other)?;
    let mut tcp = connect_from(from, address).await?;
    let head = format!(
        "POST /ts2021 HTTP/1.1\r\nHost: {address}\r\nUpgrade: tailscale-control-protocol\r\n\
         Connection: upgrade\r\nX-Tailscale-Handshake: {}\r\n\r\n",
        base64::engine::general_purpose::STANDARD.encode(initiation)
    );
    tcp.write_all(head.as_bytes()).await?;
    // The 101, read a byte at a time so that nothing after it is taken.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.push(byte[0]);
    }
    if !answer.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(format!(
            "not upgraded: {}",
            String::from_utf8_lossy(&answer)
        )));
    }
    let mut response = [0u8; ts2021::RESPONSE_LEN];
    tcp.read_exact(&mut response).await?;
    let session = initiator.finish(&response).map_err(std::io::Error::other)?;
    Ok(NoiseStream::new(tcp, session))
}

/// HTTP/2 over `session`, as the official client speaks it inside.
pub async fn http2(session: Session) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(session))
            .await
            .expect("HTTP/2 starts inside the session");
    tokio::spawn(connection);
    sender
}

/// POSTs `body` (JSON) to `path` over `sender`: the status and the body.
pub async fn post_json(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, Vec<u8>), hyper::Error> {
    let request = hyper::Request::post(format!("http://control{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a request builds");
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes.to_vec()))
}

/// GETs `path` over `sender`: the status and the body.
pub async fn get(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
) -> Result<(u16, Vec<u8>), hyper::Error> {
    let request = hyper::Request::get(format!("http://control{path}"))
        .body(Full::new(Bytes::new()))
        .expect("a request builds");
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes.to_vec()))
}
