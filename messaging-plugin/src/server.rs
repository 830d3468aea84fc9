//! `hearth-messaging serve`: opens the store, sets up the assistant, binds
//! the mesh address (never a public one unless told), serves until SIGTERM.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;

use crate::api::{ApiState, router};
use crate::assistant::Assistant;
use crate::atrest::AtRestKey;
use crate::config::Config;
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

/// The names browsers may reach the service by: `localhost`, the
/// configured ones, and those the hub's pod gives
/// ([`hearth_http::origin::ALLOWED_HOSTS_VARIABLE`]).
pub fn same_origin(config: &Config) -> hearth_http::SameOrigin {
    let from_pod = std::env::var(hearth_http::origin::ALLOWED_HOSTS_VARIABLE)
        .map(|value| hearth_http::origin::names_in(&value))
        .unwrap_or_default();
    hearth_http::SameOrigin::new(
        std::iter::once("localhost".to_owned())
            .chain(config.allowed_hosts.iter().cloned())
            .chain(from_pod),
    )
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
    let ended = store.end_unfinished().await?;
    if ended > 0 {
        tracing::info!(
            replies = ended,
            "the assistant's replies cut off when the service last stopped are marked interrupted"
        );
    }
    for room in &config.rooms {
        store.ensure_room(room, "hearth").await?;
    }
    let assistant = match (&config.assistant, config.device_key_file()) {
        (Some(settings), Some(key_file)) => {
            let token = match (&settings.gateway_token, &settings.gateway_token_file) {
                (Some(token), _) => Some(token.trim().to_owned()),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(file)
                        .with_context(|| {
                            format!("cannot read the gateway token {}", file.display())
                        })?
                        .trim()
                        .to_owned(),
                ),
                (None, None) => None,
            };
            let device = hearth_chat_client::device_key(&key_file).with_context(|| {
                format!(
                    "cannot load the assistant's device key {}",
                    key_file.display()
                )
            })?;
            let client = hearth_chat_client::ChatClient::new(&settings.gateway_url, token, device);
            let limits = hearth_assistant::turns::Limits {
                in_flight: config.limits.questions_at_once.max(1),
                in_flight_per_user: 1,
                queued_per_user: config.limits.questions_waiting_per_user.max(1),
            };
            Some(Assistant::new(client, settings.max_tokens, limits))
        }
        _ => None,
    };
    let meaning = config
        .search
        .as_ref()
        .map(crate::meaning::Meaning::new)
        .transpose()?
        .map(Arc::new);
    Ok(Arc::new(
        Messaging::new(store, assistant, config.limits, config.admins.clone())
            .with_meaning(meaning),
    ))
}

/// Serves `config` until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listen_address(&config)?;
    let messaging = build(&config).await?;
    let (closing, closing_receiver) = tokio::sync::watch::channel(false);
    let shared = Arc::new(ApiState {
        messaging: Arc::clone(&messaging),
        identities: Identities::new(config.agent_socket.clone()),
        closing: closing_receiver,
        same_origin: same_origin(&config),
        app: crate::web::WebApp::new(),
    });
    let watcher = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move { shared.identities.follow_changes().await }
    });
    let deliveries = messaging
        .assistant
        .clone()
        .map(|assistant| tokio::spawn(assistant.deliver(messaging.chat())));
    // Subscribed before the first request, so that no message is missed.
    let indexer = messaging.meaning.clone().map(|meaning| {
        let events = messaging.hub.subscribe();
        let messaging = Arc::clone(&messaging);
        tokio::spawn(async move { meaning.follow(&messaging.store, events).await })
    });
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let gate = hearth_http::Gate::new(hearth_http::Limits::for_scale(
        hearth_http::Scale::Household,
    ));
    let stopping = async move {
        shutdown.await;
        // Live WebSockets would hold the graceful shutdown open: close them.
        let _ = closing.send(true);
    };
    match &config.tls {
        Some(tls) => {
            let files = hearth_http::certificate_files::CertificateFiles::open(
                &tls.cert_file,
                &tls.key_file,
            )
            .context("tls")?;
            let acceptor = Arc::new(files).acceptor();
            let redirect = crate::api::redirect_to_https(same_origin(&config));
            tracing::info!(%address, assistant = messaging.assistant.is_some(), "messaging serving HTTPS (plain HTTP redirected)");
            hearth_http::serve::serve_https(
                listener,
                acceptor,
                gate,
                router(shared),
                redirect,
                stopping,
            )
            .await?;
        }
        None => {
            tracing::info!(%address, assistant = messaging.assistant.is_some(), "messaging serving");
            hearth_http::serve::serve_tcp(listener, gate, router(shared), stopping).await?;
        }
    }
    watcher.abort();
    for task in [deliveries, indexer].into_iter().flatten() {
        task.abort();
    }
    messaging.store.close().await;
    tracing::info!("messaging stopped");
    Ok(())
}
