//! A client of a DERP relay (the coordinator's own, or a standalone one):
//! TLS to the relay with its certificate pinned, the HTTP/1.1 upgrade to
//! DERP, and the login that proves the node's key. Afterwards frames go
//! both ways: [`RelayWriter::send`] takes frames made by [`crate::derp`],
//! [`RelayReader::next`] returns what the relay sent, for
//! [`crate::derp::server_frame`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::derp::{self, kind};
use crate::fingerprint::Fingerprint;
use crate::tls::client_config;

/// What can go wrong reaching a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The URL is not `https://host[:port]`.
    #[error("a relay URL must be https://host[:port], not `{0}`")]
    BadUrl(String),
    /// The connection could not be made or broke.
    #[error("relay connection: {0}")]
    Io(#[from] std::io::Error),
    /// TLS could not be set up (or the certificate was not the pinned one).
    #[error("relay TLS: {0}")]
    Tls(String),
    /// The relay did not switch to DERP.
    #[error("the relay refused the upgrade: {0}")]
    Refused(String),
    /// The relay broke the protocol (or refused our key).
    #[error("relay protocol: {0}")]
    Protocol(String),
    /// Something took too long.
    #[error("the relay did not answer in time")]
    Timeout,
}

impl From<derp::DerpError> for RelayError {
    fn from(error: derp::DerpError) -> Self {
        RelayError::Protocol(error.to_string())
    }
}

type Tls = TlsStream<TcpStream>;

/// The receiving half of a relay connection.
pub struct RelayReader {
    reader: BufReader<ReadHalf<Tls>>,
}

/// The sending half of a relay connection.
pub struct RelayWriter {
    writer: WriteHalf<Tls>,
}

/// Host and port of `https://host[:port]`.
fn authority(url: &str) -> Result<(String, u16), RelayError> {
    let bad = || RelayError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let authority = rest.split('/').next().ok_or_else(bad)?;
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| bad())?,
            None => 443,
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| bad())?),
            None => (authority.to_owned(), 443),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// Connects to the relay at `url` (its certificate must have `fingerprint`)
/// and logs in as the node whose private key is `secret`; each step gets
/// `timeout`.
pub async fn connect(
    url: &str,
    fingerprint: Fingerprint,
    secret: &Zeroizing<[u8; 32]>,
    timeout: Duration,
) -> Result<(RelayReader, RelayWriter), RelayError> {
    let (host, port) = authority(url)?;
    let step = |future| async move {
        tokio::time::timeout(timeout, future)
            .await
            .map_err(|_| RelayError::Timeout)?
    };
    let tcp = step(Box::pin(async {
        Ok::<_, RelayError>(TcpStream::connect((host.as_str(), port)).await?)
    }))
    .await?;
    let _ = tcp.set_nodelay(true);
    let mut config =
        client_config(fingerprint, None).map_err(|error| RelayError::Tls(error.to_string()))?;
    // The upgrade is HTTP/1.1's.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| RelayError::BadUrl(url.to_owned()))?;
    let tls = tokio::time::timeout(
        timeout,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| RelayError::Timeout)?
    .map_err(|error| RelayError::Tls(error.to_string()))?;
    let (reader, mut writer) = tokio::io::split(tls);
    let mut reader = BufReader::new(reader);

    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "GET /derp HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
    );
    writer.write_all(request.as_bytes()).await?;
    writer.flush().await?;
    tokio::time::timeout(timeout, read_switch(&mut reader))
        .await
        .map_err(|_| RelayError::Timeout)??;

    let mut relay = RelayReader { reader };
    let (first, payload) = tokio::time::timeout(timeout, relay.next())
        .await
        .map_err(|_| RelayError::Timeout)??;
    if first != kind::SERVER_KEY {
        return Err(RelayError::Protocol(
            "the relay did not greet with its key".into(),
        ));
    }
    let server = derp::parse_server_key(&payload)?;
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(**secret));
    let nonce: [u8; derp::NONCE_LEN] = rand_nonce();
    let info = format!("{{\"version\":{}}}", derp::PROTOCOL_VERSION);
    writer
        .write_all(&derp::client_info(
            secret,
            public.as_bytes(),
            &server,
            &nonce,
            info.as_bytes(),
        ))
        .await?;
    writer.flush().await?;
    // The relay answers with its boxed info, or closes when it refuses the key.
    let (second, _) = tokio::time::timeout(timeout, relay.next())
        .await
        .map_err(|_| RelayError::Timeout)?
        .map_err(|_| RelayError::Protocol("the relay refused this node's key".into()))?;
    if second != kind::SERVER_INFO {
        return Err(RelayError::Protocol(format!(
            "expected the relay's info, got frame {second:#04x}"
        )));
    }
    Ok((relay, RelayWriter { writer }))
}

fn rand_nonce() -> [u8; derp::NONCE_LEN] {
    let mut nonce = [0u8; derp::NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .expect("the system has randomness");
    nonce
}

/// Reads the upgrade answer's head; an error unless it is 101.
async fn read_switch(reader: &mut BufReader<ReadHalf<Tls>>) -> Result<(), RelayError> {
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    let mut line = String::new();
    let mut total = status.len();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).await?;
        total += read;
        if read == 0 || total > 16 * 1024 {
            return Err(RelayError::Refused("the answer's head did not end".into()));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(RelayError::Refused(status.trim().to_owned()));
    }
    Ok(())
}

impl RelayReader {
    /// The next frame's type and payload.
    pub async fn next(&mut self) -> Result<(u8, Vec<u8>), RelayError> {
        let mut head = [0u8; derp::HEADER_LEN];
        self.reader.read_exact(&mut head).await?;
        let (kind, length) = derp::header(&head, derp::MAX_FRAME)?
            .ok_or_else(|| RelayError::Protocol("short frame header".into()))?;
        let mut payload = vec![0u8; length];
        self.reader.read_exact(&mut payload).await?;
        Ok((kind, payload))
    }
}

impl RelayWriter {
    /// Sends one frame (made by [`crate::derp`]).
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), RelayError> {
        self.writer.write_all(frame).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Sends several frames with one flush.
    pub async fn send_all(&mut self, frames: &[Vec<u8>]) -> Result<(), RelayError> {
        for frame in frames {
            self.writer.write_all(frame).await?;
        }
        self.writer.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_name_a_host_and_port() {
        assert_eq!(authority("https://hub:8443").unwrap(), ("hub".into(), 8443));
        assert_eq!(
            authority("https://10.0.0.1").unwrap(),
            ("10.0.0.1".into(), 443)
        );
        assert_eq!(
            authority("https://[fd00::1]:9/derp").unwrap(),
            ("fd00::1".into(), 9)
        );
        assert!(authority("http://hub").is_err());
        assert!(authority("https://:8443").is_err());
        assert!(authority("https://hub:port").is_err());
    }
}
