//! `hearth-gateway serve`: binds, refuses an unauthenticated non-loopback
//! bind, serves until SIGTERM, rotates keys and probes backends meanwhile.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::ListenerExt as _;
use tokio::net::{TcpListener, TcpStream};

use crate::api::{Auth, router};
use crate::config::Config;
use crate::gateway::Gateway;

/// Where to listen for `config`, and whether that is loopback only.
pub fn bind_address(config: &Config) -> anyhow::Result<(SocketAddr, bool)> {
    let port = config.gateway.port;
    let ip: IpAddr = match config.gateway.bind.as_str() {
        "loopback" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "lan" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "tailnet" => hearth_control::agent_api::mesh_address()
            .context("bind \"tailnet\": this node has no mesh address (is hearth-agent up?)")?,
        literal => literal.parse().context("gateway.bind")?,
    };
    Ok((SocketAddr::new(ip, port), ip.is_loopback()))
}

/// Listens on `address` with TCP_NODELAY on every connection. Replies and
/// chat events are streams of small writes: without it, Nagle's algorithm
/// holds each one back until the previous is acknowledged, which the client
/// delays by up to 40 ms.
pub async fn listen(address: SocketAddr) -> anyhow::Result<NoDelayListener> {
    fn no_delay(stream: &mut TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    }
    Ok(TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?
        .tap_io(no_delay))
}

/// What [`listen`] returns.
pub type NoDelayListener = axum::serve::TapIo<TcpListener, fn(&mut TcpStream)>;

/// Serves `config` until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (address, loopback) = bind_address(&config)?;
    let auth = Auth {
        token: config.token().map(str::to_owned),
        agent_socket: config.hearth.agent_socket.clone(),
        loopback,
    };
    if !loopback && auth.token.is_none() && auth.agent_socket.is_none() {
        bail!(
            "refusing to listen on {address} without caller authentication: set gateway.auth (mode \"token\") \
             or hearth.agentSocket (callers identified through the mesh), or bind loopback"
        );
    }
    let gateway = Gateway::start(config).await?;
    let listener = listen(address).await?;
    tracing::info!(%address, "gateway serving");
    let health = gateway.router.spawn_health_checks(Duration::from_secs(
        gateway.config.hearth.health_check_seconds.max(1),
    ));
    let rotation = tokio::spawn({
        let gateway = Arc::clone(&gateway);
        async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                if let Err(error) = gateway.maintain_keys() {
                    tracing::error!(%error, "key rotation failed");
                }
            }
        }
    });
    let app =
        router(Arc::clone(&gateway), auth).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    rotation.abort();
    health.abort();
    gateway.close().await;
    tracing::info!("gateway stopped");
    Ok(())
}
