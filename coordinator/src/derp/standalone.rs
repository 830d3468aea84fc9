//! A standalone relay (`hearth-coordinator relay`): the same DERP server as
//! the coordinator's, on a machine of its own (a second site, a rented
//! server with a public address), for nodes whose home relay is far away or
//! down. An admin adds it with `hearth-coordinator relays add NAME --url
//! https://host:port`, which prints a relay token; the relay starts with that
//! token and:
//! - makes (once) and keeps a self-signed certificate in its state
//!   directory, and tells the coordinator its fingerprint (and STUN port);
//!   the coordinator then lists the region in every map, the certificate
//!   pinned;
//! - follows the coordinator's stream of admitted node keys and lets in
//!   only those ([`KeySet`]); a key that leaves the set is disconnected
//!   within a second. If the coordinator is unreachable it keeps the last
//!   set it had (tunnels outlive the control plane) and reconnects.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use hearth_control::wire::{RelayHello, RelayKeys, RelayRegion};
use hearth_control::{ControlClient, JoinToken, SecretString};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{Admission, Limits, Relay};
use crate::state_dir::StateDir;
use crate::tls::ServerCertificate;

/// The admitted node keys, as the coordinator last said.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: RwLock<HashSet<[u8; 32]>>,
}

impl KeySet {
    /// Applies one message of the coordinator's stream.
    pub fn apply(&self, message: RelayKeys) {
        let mut keys = hearth_runtime::write(&self.keys);
        match message {
            RelayKeys::Full { keys: all } => {
                *keys = all.into_iter().map(|key| key.0).collect();
            }
            RelayKeys::Added { keys: added } => keys.extend(added.into_iter().map(|key| key.0)),
            RelayKeys::Removed { keys: removed } => {
                for key in removed {
                    keys.remove(&key.0);
                }
            }
            RelayKeys::KeepAlive => {}
        }
    }

    /// How many keys are admitted.
    pub fn len(&self) -> usize {
        hearth_runtime::read(&self.keys).len()
    }

    /// Whether no key is admitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Admission for KeySet {
    async fn admits(&self, key: &[u8; 32]) -> bool {
        hearth_runtime::read(&self.keys).contains(key)
    }
}

/// Everything `relay` can be told.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// Its state directory (certificate and key).
    pub state_dir: PathBuf,
    /// The relay token from `relays add`.
    pub token: zeroize::Zeroizing<String>,
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// The STUN responder, if any.
    pub stun_listen: Option<SocketAddr>,
    /// `/metrics` on plain HTTP, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// What one node may send through it.
    pub limits: Limits,
    /// Connections held at once.
    pub connections: hearth_http::Limits,
}

/// Runs the relay until `shutdown` completes.
pub async fn serve(
    options: RelayOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let token = JoinToken::decode_relay(&options.token).context("the relay token")?;
    let state = StateDir::new(&options.state_dir);
    state
        .prepare()
        .with_context(|| format!("cannot prepare state dir {}", state.root().display()))?;
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let mut names = vec!["localhost".to_owned()];
    if !options.listen.ip().is_unspecified() {
        names.push(options.listen.ip().to_string());
    }
    let certificate = ServerCertificate::load_or_create_self_signed(&state, &names)?;
    let fingerprint = certificate.fingerprint;
    let mut config = rustls::ServerConfig::builder_with_provider(hearth_control::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificate.chain, certificate.key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stun = match options.stun_listen {
        Some(address) => Some(
            UdpSocket::bind(address)
                .await
                .with_context(|| format!("cannot bind the STUN responder on {address}"))?,
        ),
        None => None,
    };

    let client = ControlClient::new(&token.url, token.fingerprint, None)?;
    let hello = RelayHello {
        fingerprint: fingerprint.to_hex(),
        stun_port: options.stun_listen.map(|address| address.port()),
    };
    let region = client
        .relay_hello(&token.key, &hello)
        .await
        .context("the coordinator did not accept this relay")?;
    tracing::info!(region = region.id, code = %region.code, url = %region.url, "serving as a standalone relay");

    let keys = Arc::new(KeySet::default());
    let relay = Arc::new(Relay::new(Arc::clone(&keys), options.limits));
    let (stop_sender, stop) = watch::channel(false);
    let following = tokio::spawn(follow(client, token.key.clone(), Arc::clone(&keys), region));
    let stun_task =
        stun.map(|socket| tokio::spawn(crate::server::run_stun(socket, 10, stop.clone())));
    let metrics_task = match options.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (--metrics-listen)"))?;
            let routes = crate::server::metrics_router({
                let relay = Arc::clone(&relay);
                move || std::future::ready(relay.render_metrics())
            });
            let gate = hearth_http::Gate::new(options.connections);
            let mut stop = stop.clone();
            Some(tokio::spawn(async move {
                hearth_http::serve::serve_tcp(listener, gate, routes, async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await
            }))
        }
        None => None,
    };
    let routes =
        crate::api::derp::router(relay).route("/health", axum::routing::get(|| async { "ok" }));
    hearth_http::serve::serve_tls(
        listener,
        TlsAcceptor::from(Arc::new(config)),
        hearth_http::Gate::new(options.connections),
        routes,
        |_, _: Option<&[u8]>| (),
        shutdown,
        move || {
            let _ = stop_sender.send(true);
        },
    )
    .await?;
    following.abort();
    if let Some(task) = stun_task {
        let _ = task.await;
    }
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    Ok(())
}

/// Follows the admitted keys, reconnecting after a lost stream.
async fn follow(
    client: ControlClient,
    secret: SecretString,
    keys: Arc<KeySet>,
    region: RelayRegion,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        match client.relay_keys(&secret).await {
            Ok(mut stream) => {
                delay = Duration::from_millis(500);
                loop {
                    match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
                        Ok(Some(Ok(message))) => keys.apply(message),
                        Ok(None) => break,
                        Ok(Some(Err(error))) => {
                            tracing::warn!(%error, "the admitted-keys stream broke");
                            break;
                        }
                        Err(_) => {
                            tracing::warn!("the admitted-keys stream went silent");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, region = region.id, "cannot follow the admitted keys; keeping the last set");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Reads the relay token from `path`, which must keep it from other users
/// (`relays add --token-file` writes it 0600).
pub fn read_token(path: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    hearth_files::token::read_secret(path).context("the relay token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_control::wire::WireGuardKey;

    #[tokio::test]
    async fn the_key_set_follows_the_stream() {
        let keys = KeySet::default();
        let key = |byte| WireGuardKey([byte; 32]);
        keys.apply(RelayKeys::Full {
            keys: vec![key(1), key(2)],
        });
        assert!(keys.admits(&[1; 32]).await);
        keys.apply(RelayKeys::Removed { keys: vec![key(1)] });
        keys.apply(RelayKeys::Added { keys: vec![key(3)] });
        keys.apply(RelayKeys::KeepAlive);
        assert!(!keys.admits(&[1; 32]).await);
        assert!(keys.admits(&[3; 32]).await);
        assert_eq!(keys.len(), 2);
        keys.apply(RelayKeys::Full { keys: Vec::new() });
        assert!(keys.is_empty(), "a full set replaces what was there");
    }
}
