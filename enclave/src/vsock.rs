//! The node's link to the world from inside an AWS Nitro Enclave, which
//! has no network: vsock, to the parent instance. The node listens on a
//! vsock port (or on a UNIX socket, the tests' stand-in of the same
//! framing) with the same server as on TCP; on the parent, `hearth-enclave
//! proxy` accepts the router's TCP connections and forwards each over a
//! new vsock connection, beginning it with a PROXY v2 header naming the
//! client ([`hearth_http::forwarded`]), so the node's per-source limits
//! still see the router. The other way (the node's heartbeats to the
//! router), a proxy inside the enclave takes loopback TCP to vsock and
//! one on the parent vsock to the router, as AWS's `vsock-proxy` does.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

/// The parent instance's vsock address, as an enclave sees it.
pub const PARENT_CID: u32 = 3;

/// Where a socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP: `tcp:ADDRESS:PORT`, or a bare `ADDRESS:PORT`.
    Tcp(SocketAddr),
    /// vsock: `vsock:CID:PORT` (`vsock:PORT` to listen on any CID).
    Vsock {
        /// The context id (`u32::MAX`: any, to listen).
        cid: u32,
        /// The port.
        port: u32,
    },
    /// A UNIX socket: `unix:PATH`.
    Unix(PathBuf),
}

/// Why a text is not an [`Endpoint`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// `unix:` without a path.
    #[error("unix: needs a path")]
    NoPath,
    /// A CID or port that is not a number.
    #[error("{text}: `{part}` is not a number")]
    NotANumber {
        /// The whole endpoint.
        text: String,
        /// The part that is not a number.
        part: String,
    },
    /// None of the three forms.
    #[error("{0}: not tcp:ADDRESS:PORT, vsock:CID:PORT or unix:PATH")]
    Unknown(String),
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Endpoint, EndpointError> {
        if let Some(path) = text.strip_prefix("unix:") {
            return match path {
                "" => Err(EndpointError::NoPath),
                path => Ok(Endpoint::Unix(path.into())),
            };
        }
        if let Some(rest) = text.strip_prefix("vsock:") {
            let number = |part: &str| {
                part.parse::<u32>().map_err(|_| EndpointError::NotANumber {
                    text: text.to_owned(),
                    part: part.to_owned(),
                })
            };
            return match rest.split_once(':') {
                Some((cid, port)) => Ok(Endpoint::Vsock {
                    cid: number(cid)?,
                    port: number(port)?,
                }),
                None => Ok(Endpoint::Vsock {
                    cid: u32::MAX,
                    port: number(rest)?,
                }),
            };
        }
        let address = text.strip_prefix("tcp:").unwrap_or(text);
        address
            .parse()
            .map(Endpoint::Tcp)
            .map_err(|_| EndpointError::Unknown(text.to_owned()))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(formatter, "tcp:{address}"),
            Endpoint::Vsock { cid, port } if *cid == u32::MAX => write!(formatter, "vsock:{port}"),
            Endpoint::Vsock { cid, port } => write!(formatter, "vsock:{cid}:{port}"),
            Endpoint::Unix(path) => write!(formatter, "unix:{}", path.display()),
        }
    }
}

/// A vsock listener, whose connections a proxy forwards.
pub struct VsockListener(tokio_vsock::VsockListener);

impl VsockListener {
    /// Listens on vsock `port` (any CID when `cid` is `u32::MAX`; any
    /// free port when `port` is `u32::MAX`).
    pub fn bind(cid: u32, port: u32) -> std::io::Result<VsockListener> {
        tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(cid, port)).map(VsockListener)
    }

    /// The port it listens on.
    pub fn port(&self) -> Option<u32> {
        self.0.local_addr().ok().map(|address| address.port())
    }
}

impl hearth_http::serve::ForwardedListener for VsockListener {
    type Stream = tokio_vsock::VsockStream;

    async fn accept(&mut self) -> std::io::Result<tokio_vsock::VsockStream> {
        self.0.accept().await.map(|(stream, _)| stream)
    }
}

/// A connection to `endpoint`.
async fn connect(endpoint: &Endpoint) -> std::io::Result<Box<dyn Duplex>> {
    Ok(match endpoint {
        Endpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            Box::new(stream)
        }
        Endpoint::Vsock { cid, port } => Box::new(
            tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port)).await?,
        ),
        Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    })
}

/// A byte stream both ways.
trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Something accepting connections on an endpoint.
pub enum Listener {
    /// TCP.
    Tcp(tokio::net::TcpListener),
    /// vsock.
    Vsock(VsockListener),
    /// A UNIX socket.
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Listens on `endpoint`.
    pub async fn bind(endpoint: &Endpoint) -> anyhow::Result<Listener> {
        Ok(match endpoint {
            Endpoint::Tcp(address) => Listener::Tcp(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {endpoint}"))?,
            ),
            Endpoint::Vsock { cid, port } => Listener::Vsock(
                VsockListener::bind(*cid, *port)
                    .with_context(|| format!("cannot listen on {endpoint} (is vsock here?)"))?,
            ),
            Endpoint::Unix(path) => {
                let _ = std::fs::remove_file(path);
                Listener::Unix(
                    tokio::net::UnixListener::bind(path)
                        .with_context(|| format!("cannot listen on {endpoint}"))?,
                )
            }
        })
    }

    /// Where it listens: `asked` with the port the system chose, where it
    /// was asked to choose one.
    pub fn bound(&self, asked: &Endpoint) -> Endpoint {
        match (self, asked) {
            (Listener::Tcp(listener), _) => listener
                .local_addr()
                .map_or_else(|_| asked.clone(), Endpoint::Tcp),
            (Listener::Vsock(listener), Endpoint::Vsock { cid, port }) => Endpoint::Vsock {
                cid: *cid,
                port: listener.port().unwrap_or(*port),
            },
            _ => asked.clone(),
        }
    }

    /// The next connection and, for TCP, the client's address.
    async fn accept(&self) -> std::io::Result<(Box<dyn Duplex>, Option<SocketAddr>)> {
        Ok(match self {
            Listener::Tcp(listener) => {
                let (stream, remote) = listener.accept().await?;
                stream.set_nodelay(true)?;
                (Box::new(stream), Some(remote))
            }
            Listener::Vsock(listener) => (Box::new(listener.0.accept().await?.0), None),
            Listener::Unix(listener) => (Box::new(listener.accept().await?.0), None),
        })
    }
}

/// Connections a proxy forwards at once.
const PROXY_CONNECTIONS: usize = 1024;
/// Connections it forwards at once for one client address (TCP clients;
/// vsock and UNIX clients count as one): the router's concurrency fits,
/// and one address cannot take every slot.
const PROXY_PER_SOURCE: usize = 256;
/// A forwarded connection with no byte either way for this long is closed.
pub const PROXY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// Time to reach the target.
const PROXY_CONNECT: std::time::Duration = std::time::Duration::from_secs(10);

/// A listener on a free loopback TCP port, and its address.
pub async fn bind_loopback() -> anyhow::Result<(Listener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on loopback")?;
    let address = listener.local_addr()?;
    Ok((Listener::Tcp(listener), address))
}

/// `hearth-enclave proxy`: accepts on `listen` and forwards each
/// connection to `to`; with `header`, each forwarded connection begins
/// with a PROXY v2 header naming the client (TCP clients only; others as
/// LOCAL). Runs until `shutdown`.
pub async fn run_proxy(
    listen: Endpoint,
    to: Endpoint,
    header: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = Listener::bind(&listen).await?;
    tracing::info!(%listen, %to, header, "proxy forwarding");
    run_proxy_on(listener, to, header, shutdown).await
}

/// [`run_proxy`] on a listener already bound. At most
/// [`PROXY_CONNECTIONS`] at once, [`PROXY_PER_SOURCE`] from one client
/// address; each forwarded as [`splice`] does.
pub async fn run_proxy_on(
    listener: Listener,
    to: Endpoint,
    header: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let own = match &listener {
        Listener::Tcp(listener) => listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let gate = hearth_http::Gate::new(hearth_http::Limits {
        max_connections: PROXY_CONNECTIONS,
        max_per_source: PROXY_PER_SOURCE,
        ..hearth_http::Limits::for_scale(hearth_http::Scale::COMPUTE_NODE)
    });
    tokio::pin!(shutdown);
    loop {
        let (inbound, client) = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "proxy accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let source = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |client| client.ip());
        let Ok(ticket) = gate.admit(source) else {
            continue;
        };
        let to = to.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            let outbound = match tokio::time::timeout(PROXY_CONNECT, connect(&to)).await {
                Ok(Ok(outbound)) => outbound,
                Ok(Err(error)) => {
                    tracing::warn!(%error, %to, "proxy cannot reach its target");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%to, "proxy's target did not answer in time");
                    return;
                }
            };
            let mut outbound = outbound;
            if header {
                let bytes = match client {
                    Some(client) => hearth_http::forwarded::encode(client, own),
                    None => hearth_http::forwarded::encode_local(),
                };
                if outbound.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            splice(inbound, outbound, PROXY_IDLE).await;
        });
    }
}

/// Forwards bytes both ways between a client and its target until the
/// target ends the connection (then the client's side is closed at once,
/// whatever the client does: a client that never speaks cannot hold the
/// connection after the target gave up on it), either side fails, or
/// nothing moves either way for `idle`. A client that ends its side (a
/// half-close) gets the target's last bytes, within the same deadline.
pub async fn splice<C, T>(client: C, target: T, idle: std::time::Duration)
where
    C: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt as _;
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    let mut client_open = true;
    loop {
        tokio::select! {
            read = client_read.read(&mut up), if client_open => match read {
                Ok(0) => {
                    client_open = false;
                    let _ = target_write.shutdown().await;
                }
                Ok(count) => {
                    if tokio::time::timeout(idle, target_write.write_all(&up[..count])).await.map_or(true, |written| written.is_err()) {
                        return;
                    }
                }
                Err(_) => return,
            },
            read = target_read.read(&mut down) => match read {
                Ok(0) | Err(_) => {
                    let _ = client_write.shutdown().await;
                    return;
                }
                Ok(count) => {
                    if tokio::time::timeout(idle, client_write.write_all(&down[..count])).await.map_or(true, |written| written.is_err()) {
                        return;
                    }
                }
            },
            () = tokio::time::sleep(idle) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_as_written() {
        for text in [
            "tcp:127.0.0.1:7000",
            "vsock:3:8001",
            "vsock:5000",
            "unix:/run/node.sock",
        ] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
        assert_eq!(
            "10.0.0.2:7000".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("10.0.0.2:7000".parse().unwrap())
        );
        assert_eq!(
            "vsock:5000".parse::<Endpoint>().unwrap(),
            Endpoint::Vsock {
                cid: u32::MAX,
                port: 5000
            }
        );
        for bad in ["vsock:x:1", "unix:", "somewhere", "vsock:"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    /// Issue 41's review: 1,024 silent connections from one address kept
    /// every slot of the proxy long after the node had closed its side
    /// (the node ends a connection that sends no request), and other
    /// clients were reset. The proxy closes a connection when its target
    /// does, and one address holds no more than its share.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_connections_from_one_address_neither_linger_nor_crowd_out_others() {
        use tokio::io::AsyncReadExt as _;
        // The node's stand-in: it answers `ping` with `pong`, and closes a
        // connection that says nothing within 300 ms (as the node's header
        // deadline does, in 10 s).
        let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_address = node.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = node.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut asked = [0u8; 5];
                    let read = tokio::time::timeout(
                        std::time::Duration::from_millis(300),
                        stream.read_exact(&mut asked),
                    )
                    .await;
                    if matches!(read, Ok(Ok(_))) && &asked == b"ping\n" {
                        let _ = stream.write_all(b"pong\n").await;
                    }
                });
            }
        });
        let (listener, proxy) = bind_loopback().await.unwrap();
        tokio::spawn(run_proxy_on(
            listener,
            Endpoint::Tcp(node_address),
            false,
            std::future::pending(),
        ));
        let connect_from = |from: [u8; 4]| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from((from, 0))).unwrap();
            socket.connect(proxy).await.unwrap()
        };
        let mut silent = Vec::new();
        for _ in 0..PROXY_CONNECTIONS {
            silent.push(connect_from([127, 0, 0, 2]).await);
        }
        // Another client is served.
        let mut client = connect_from([127, 0, 0, 3]).await;
        client.write_all(b"ping\n").await.unwrap();
        let mut answer = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.read_to_string(&mut answer),
        )
        .await;
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        assert_eq!(answer, "pong\n", "another client was not served");
        // The node gave up on the silent ones: so did the proxy.
        let mut last = silent.remove(0);
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            last.read_to_end(&mut rest),
        )
        .await;
        assert!(
            matches!(ended, Ok(Ok(0))),
            "a silent connection outlived its node's side: {ended:?}"
        );
    }
}
