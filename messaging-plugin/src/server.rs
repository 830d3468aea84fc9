//! `hearth-messaging serve`: opens the store, sets up the assistant, binds
//! the mesh address (never a public one unless told), serves until SIGTERM.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;

use crate::api::{Shared, router};
use crate::assistant::Assistant;
use crate::atrest::AtRestKey;
use crate::config::Config;
use crate::hub::Hub;
use crate::identity::Identities;
use crate::service::Messaging;
use crate::store::Store;

/// Where to listen for `config`.
pub fn listen_address(config: &Config) -> anyhow::Result<SocketAddr> {
    let ip: IpAddr = match config.listen.as_str() {
        "tailnet" => hearth_control::agent_api::mesh_address().context(
            "listen \"tailnet\": this node has no mesh address yet (is hearth-agent up?)",
        )?,
        "loopback" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        literal => literal.parse().context("listen")?,
    };
    Ok(SocketAddr::new(ip, config.port))
}

/// Builds the service from `config`.
pub async fn build(config: &Config) -> anyhow::Result<Arc<Messaging>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    std::fs::set_permissions(
        &config.data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("cannot restrict {}", config.data_dir.display()))?;
    let key = match &config.encryption_key_file {
        Some(path) => Some(AtRestKey::load(path)?),
        None => None,
    };
    let store = Store::open(&config.data_dir, key).await?;
    for room in &config.rooms {
        store.ensure_room(room, "hearth").await?;
    }
    let assistant = match (&config.assistant, config.device_key_file()) {
        (Some(settings), Some(key_file)) => {
            let device = hearth_gateway::client::device_key(&key_file).with_context(|| {
                format!(
                    "cannot load the assistant's device key {}",
                    key_file.display()
                )
            })?;
            let client = hearth_gateway::client::ChatClient::new(
                &settings.gateway_url,
                settings.gateway_token.clone(),
                device,
            );
            Some(Assistant::new(client, settings.max_tokens))
        }
        _ => None,
    };
    Ok(Arc::new(Messaging {
        store,
        hub: Hub::default(),
        assistant,
    }))
}

/// Serves `config` until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listen_address(&config)?;
    let messaging = build(&config).await?;
    let (closing, closing_receiver) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        messaging: Arc::clone(&messaging),
        identities: Identities::new(config.agent_socket.clone()),
        closing: closing_receiver,
    });
    let listener = hearth_gateway::server::listen(address).await?;
    tracing::info!(%address, assistant = messaging.assistant.is_some(), "messaging serving");
    let app = router(shared).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Live WebSockets would hold the graceful shutdown open: close them.
            let _ = closing.send(true);
        })
        .await?;
    messaging.store.close().await;
    tracing::info!("messaging stopped");
    Ok(())
}
