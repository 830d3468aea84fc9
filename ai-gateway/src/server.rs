//! `hearth-gateway serve`: binds, refuses an unauthenticated non-loopback
//! bind, serves until SIGTERM within connection limits (a slow or
//! flooding client cannot starve the others), rotates keys and probes
//! backends meanwhile.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hearth_http::SameOrigin;
use tokio::net::TcpListener;

use crate::api::{Auth, router};
use crate::config::{Bind, Config, GatewayMode, TokenSource};
use crate::gateway::Gateway;

/// Where to listen for `config`, and whether that is loopback only. As in
/// OpenClaw, `tailnet` on a machine with no mesh address listens on
/// loopback (and says so).
pub fn bind_address(config: &Config) -> anyhow::Result<(SocketAddr, bool)> {
    let port = config.gateway.port;
    let ip: IpAddr = match config.gateway.bind {
        Bind::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Bind::Lan => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Bind::Tailnet => match hearth_control::agent_api::mesh_address() {
            Some(address) => address,
            None => {
                tracing::warn!(
                    "bind \"tailnet\": this machine has no mesh address (is hearth-agent up?); listening on loopback"
                );
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        },
        Bind::Address(address) => address,
    };
    Ok((SocketAddr::new(ip, port), ip.is_loopback()))
}

/// The secret callers must present: a given secret too short to stand
/// beyond loopback gives way to the data directory's token file (OpenClaw
/// would use it; anyone who can reach the port could guess it).
fn secret(config: &Config, loopback: bool) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
    let default = || config.hearth.data_dir.join("gateway.token");
    Ok(match config.token_source() {
        TokenSource::Given(token)
            if !loopback && token.chars().count() < crate::config::MIN_SECRET =>
        {
            let path = default();
            tracing::warn!(
                path = %path.display(),
                "gateway.auth: the shared secret has fewer than {} characters, too few beyond loopback; \
                 callers must present the token in this file instead",
                crate::config::MIN_SECRET
            );
            Some(hearth_files::token::load_or_create(&path)?)
        }
        TokenSource::Given(token) => Some(zeroize::Zeroizing::new(token)),
        TokenSource::File(path) => Some(hearth_files::token::load_or_create(&path)?),
        TokenSource::DataDir => Some(hearth_files::token::load_or_create(&default())?),
        TokenSource::Off => None,
    })
}

/// Serves `config` until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.gateway.mode == GatewayMode::Remote {
        bail!(
            "gateway.mode is \"remote\": this file configures a client of a gateway on another machine; \
             set it to \"local\" (or remove it) to run the gateway here"
        );
    }
    let (address, loopback) = bind_address(&config)?;
    let data_dir = &config.hearth.data_dir;
    hearth_files::private::private_dir(data_dir)
        .with_context(|| format!("cannot make the data directory {}", data_dir.display()))?;
    let token = secret(&config, loopback)?;
    let auth = Auth {
        token,
        agent_socket: config.hearth.agent_socket.clone(),
        loopback,
        // The configured names, and those the hub's pod gives.
        same_origin: SameOrigin::new(
            std::iter::once("localhost".to_owned())
                .chain(config.hearth.allowed_hosts.iter().cloned())
                .chain(
                    std::env::var(hearth_http::origin::ALLOWED_HOSTS_VARIABLE)
                        .map(|value| hearth_http::origin::names_in(&value))
                        .unwrap_or_default(),
                ),
        ),
        signed_users: match &config.hearth.open_web_ui.user_jwt_secret_file {
            Some(path) => Some(crate::caller::SignedUsers {
                secret: hearth_files::token::read(path).with_context(|| {
                    "hearth.openWebUi.userJwtSecretFile: cannot read Open WebUI's signing secret"
                })?,
                members: crate::forwarded::Members::new(&config.hearth.open_web_ui.members),
            }),
            None => None,
        },
    };
    if auth
        .signed_users
        .as_ref()
        .is_some_and(|signed| signed.members.is_empty())
    {
        tracing::warn!(
            "hearth.openWebUi.members maps no Open WebUI account to a member: Open WebUI can act for no one"
        );
    }
    if !loopback && auth.token.is_none() && auth.agent_socket.is_none() {
        bail!(
            "refusing to listen on {address} without caller authentication: set gateway.auth (mode \"token\") \
             or hearth.agentSocket (callers identified through the mesh), or bind loopback"
        );
    }
    if auth.token.is_none() && loopback {
        tracing::warn!(
            "gateway.auth.mode is \"none\": every user of this machine can use the gateway"
        );
    }
    let gateway = Gateway::start(config, hearth_runtime::clock::unix_seconds()).await?;
    gateway.spawn_background();
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
        hearth_http::Scale::Household,
    ));
    let address = listener.local_addr().unwrap_or(address);
    tracing::info!(%address, "gateway serving");
    let health = gateway.spawn_health_checks(Duration::from_secs(
        gateway.config().hearth.health_check_seconds.max(1),
    ));
    let rotation = tokio::spawn({
        let gateway = Arc::clone(&gateway);
        async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                if let Err(error) = gateway.maintain_keys(hearth_runtime::clock::unix_seconds()) {
                    tracing::error!(%error, "key rotation failed");
                }
            }
        }
    });
    // Ollama's API, when on, listens beside the gateway and stops with it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ollama = if gateway.config().hearth.ollama.enabled {
        let at = SocketAddr::new(address.ip(), gateway.config().hearth.ollama.port);
        let listener = TcpListener::bind(at)
            .await
            .with_context(|| format!("cannot listen on {at} for Ollama's API"))?;
        let at = listener.local_addr().unwrap_or(at);
        tracing::info!(address = %at, "Ollama's API serving");
        let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
            hearth_http::Scale::Household,
        ));
        // Ollama serves Anthropic's Messages API too: the same adapter as
        // on the gateway's port, behind Ollama's port's checks.
        let anthropic = axum::Router::new().route(
            "/v1/messages",
            axum::routing::post(crate::anthropic_http::messages),
        );
        let app = crate::ollama_http::router(Arc::clone(&gateway), auth.clone(), anthropic);
        let mut stopped = stopped.clone();
        Some(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            hearth_http::serve::serve_tcp(listener, gate, app, shutdown).await
        }))
    } else {
        None
    };
    let served =
        hearth_http::serve::serve_tcp(listener, gate, router(Arc::clone(&gateway), auth), shutdown)
            .await;
    let _ = stop.send(true);
    if let Some(ollama) = ollama {
        match ollama.await {
            Ok(Err(error)) => tracing::error!(%error, "Ollama's API failed"),
            Err(error) => tracing::error!(%error, "Ollama's API task failed"),
            Ok(Ok(())) => {}
        }
    }
    served?;
    rotation.abort();
    health.abort();
    gateway.close().await;
    tracing::info!("gateway stopped");
    Ok(())
}
