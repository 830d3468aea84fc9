//! `hearth-coordinator serve`: the HTTPS node API, the admin socket, the STUN
//! responder and the housekeeping task, with a clean stop on SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use hearth_control::Fingerprint;
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use hearth_http::{Gate, Limits};

use crate::api::node::RegisterLimit;
use crate::api::{self, PeerInfo};
use crate::coordinator::Coordinator;
use crate::db::Db;
use crate::db::url::DatabaseChoice;
use crate::settings::Settings;
use crate::state_dir::{StateDir, restrict};
use crate::tls::{CertificateChoice, NodeAuthority, ServerCertificate, server_config};

/// Everything `serve` can be told.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The state directory.
    pub state_dir: PathBuf,
    /// Address of the HTTPS node API.
    pub listen: SocketAddr,
    /// URL put in join tokens (default: derived from the listen address or hostname).
    pub public_url: Option<String>,
    /// A certificate chain to use instead of the self-signed one.
    pub tls_cert: Option<PathBuf>,
    /// Its key.
    pub tls_key: Option<PathBuf>,
    /// Address of the STUN responder; `None` disables it.
    pub stun_listen: Option<SocketAddr>,
    /// Keep-alive period of map streams.
    pub keepalive: Duration,
    /// Inactivity after which ephemeral nodes are removed.
    pub ephemeral_timeout: Duration,
    /// Registration rate limit per source address.
    pub register_limit: RegisterLimit,
    /// Connections held at once, in all and per source address, and the
    /// time to send a request head (fitted to the descriptor limit at start).
    pub connections: Limits,
    /// STUN answers per second to one source address (after a burst of as many).
    pub stun_per_source: u32,
    /// The MagicDNS domain nodes are named under (`<name>.<domain>`).
    pub base_domain: String,
    /// A plain HTTP listener (port 80, which Tailscale clients try first)
    /// serving only `/key` and the `/ts2021` upgrade, whose Noise session
    /// needs no TLS; `None` (the default) serves none.
    pub http_listen: Option<SocketAddr>,
    /// A plain HTTP listener serving only `/metrics`; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// What one node may send through the embedded relay.
    pub relay_limits: crate::derp::Limits,
    /// Where the state is kept: SQLite in the state directory, or PostgreSQL.
    pub database: DatabaseChoice,
    /// How long node keys live (`None`: never expire); 180 days by default.
    pub node_key_lifetime: Option<Duration>,
    /// Whether Tailscale clients may send files to each other's devices
    /// (Taildrop); on by default, as in Tailscale and Headscale.
    pub taildrop: bool,
    /// DNS beyond MagicDNS (`--dns-config`).
    pub dns: crate::dns::DnsSettings,
    /// The identity provider people sign in with (`--oidc-config`).
    pub sign_in: Option<Arc<crate::oidc::Provider>>,
    /// Certificates from an ACME CA (`--acme-config`).
    pub acme: Option<crate::acme::AcmeConfig>,
}

impl ServeOptions {
    /// Defaults for a state dir: HTTPS on :443, STUN on :3478.
    pub fn new(state_dir: PathBuf) -> ServeOptions {
        ServeOptions {
            state_dir,
            listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            stun_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            keepalive: Duration::from_secs(50),
            base_domain: crate::tsmap::DEFAULT_BASE_DOMAIN.to_owned(),
            http_listen: None,
            metrics_listen: None,
            relay_limits: crate::derp::Limits::default(),
            database: DatabaseChoice::Sqlite,
            node_key_lifetime: Some(Duration::from_secs(180 * 24 * 3600)),
            ephemeral_timeout: Duration::from_secs(30 * 60),
            register_limit: RegisterLimit {
                burst: 20,
                period: Duration::from_secs(1),
            },
            connections: Limits::for_scale(hearth_http::Scale::ControlPlane),
            stun_per_source: 10,
            taildrop: true,
            dns: crate::dns::DnsSettings::default(),
            sign_in: None,
            acme: None,
        }
    }
}

/// Opens the database `choice` names, creating the SQLite file private to
/// its owner.
async fn open_database(state: &StateDir, choice: &DatabaseChoice) -> anyhow::Result<Db> {
    match choice {
        DatabaseChoice::Sqlite => {
            let database = state.database();
            if !database.exists() {
                crate::state_dir::write_private(&database, b"")
                    .with_context(|| format!("cannot create {}", database.display()))?;
            }
            let db = Db::open_sqlite(&database)
                .await
                .with_context(|| format!("cannot open {}", database.display()))?;
            for suffix in ["", "-wal", "-shm"] {
                restrict(&PathBuf::from(format!("{}{suffix}", database.display())))?;
            }
            Ok(db)
        }
        DatabaseChoice::Postgres { url, password } => {
            let db = Db::open_postgres(url, password.as_ref().map(|password| password.as_str()))
                .await
                .with_context(|| format!("cannot open the PostgreSQL database {url}"))?;
            tracing::info!(%url, "state kept in PostgreSQL");
            Ok(db)
        }
    }
}

/// A bound, ready-to-run coordinator.
pub struct Server {
    coordinator: Arc<Coordinator>,
    acceptor: TlsAcceptor,
    listener: TcpListener,
    admin: UnixListener,
    admin_path: PathBuf,
    stun: Option<UdpSocket>,
    stun_per_source: u32,
    gate: Gate,
    node_routes: Router,
    admin_routes: Router,
    /// Plain HTTP for the Tailscale control protocol only (`--http-listen`).
    http: Option<(TcpListener, Router)>,
    /// Plain HTTP for `/metrics` only (`--metrics-listen`).
    metrics: Option<(TcpListener, Router)>,
    /// The DNS server answering ACME challenges (UDP and TCP per address).
    dns: Vec<(UdpSocket, TcpListener)>,
    /// Turns true when the server stops (tasks and ts2021 sessions end).
    stop_sender: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Server {
    /// Prepares the state dir, opens the database, loads or creates the
    /// certificates and binds every socket.
    pub async fn bind(options: ServeOptions) -> anyhow::Result<Server> {
        let state = StateDir::new(&options.state_dir);
        state
            .prepare()
            .with_context(|| format!("cannot prepare state dir {}", state.root().display()))?;

        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let local = listener.local_addr()?;
        let host = if local.ip().is_unspecified() {
            hostname()
        } else {
            match local.ip() {
                std::net::IpAddr::V6(address) => format!("[{address}]"),
                address => address.to_string(),
            }
        };
        let public_url = options
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{host}:{}", local.port()));
        if !public_url.starts_with("https://") {
            bail!("--public-url must be an https:// URL, got `{public_url}`");
        }

        let certificate = match (&options.tls_cert, &options.tls_key) {
            (Some(cert), Some(key)) => ServerCertificate::load(cert, key)?,
            (None, None) => {
                let mut names = vec![hostname(), "localhost".to_owned()];
                if !local.ip().is_unspecified() {
                    names.push(local.ip().to_string());
                }
                ServerCertificate::load_or_create_self_signed(&state, &names)?
            }
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let fingerprint: Fingerprint = certificate.fingerprint;
        let authority = NodeAuthority::load_or_create(&state)?;
        let certificates = [
            ("server", certificate.not_after()),
            ("node_ca", authority.not_after()),
        ]
        .into_iter()
        .filter_map(|(name, not_after)| Some((name.to_owned(), not_after?)))
        .collect();
        let choice = Arc::new(CertificateChoice::new(certificate)?);
        let tls = server_config(Arc::clone(&choice), &authority)?;
        let acme = options.acme.clone().map(|config| {
            Arc::new(crate::acme::Acme::new(
                config,
                &options.base_domain,
                state.acme(),
                Arc::clone(&choice),
            ))
        });
        if let Some(acme) = &acme
            && acme.load_kept()
        {
            tracing::info!("serving the certificate kept from the ACME CA");
        }
        let mut dns = Vec::new();
        for address in acme.iter().flat_map(|acme| acme.config.dns_listen.iter()) {
            let udp = UdpSocket::bind(address)
                .await
                .with_context(|| format!("cannot bind the ACME DNS server on {address} (UDP)"))?;
            let tcp = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot bind the ACME DNS server on {address} (TCP)"))?;
            dns.push((udp, tcp));
        }
        let control_key = Arc::new(api::tailscale::ControlKey::load_or_create(
            &state.control_key(),
        )?);

        let db = open_database(&state, &options.database).await?;

        let relay = crate::relays::embedded(
            &public_url,
            options.stun_listen.map(|address| address.port()),
            &fingerprint.to_hex(),
        );
        let settings = Settings {
            public_url,
            fingerprint,
            keepalive: options.keepalive,
            ephemeral_timeout: options.ephemeral_timeout,
            base_domain: options.base_domain.clone(),
            relay,
            certificates,
            node_key_lifetime: options.node_key_lifetime,
            taildrop: options.taildrop,
            dns: options.dns.clone(),
            sign_in: options.sign_in.clone(),
            acme: acme.clone(),
        };
        let coordinator = Coordinator::start(db, authority, settings).await?;
        let relay = Arc::new(crate::derp::Relay::new(
            Arc::clone(&coordinator),
            options.relay_limits,
        ));

        let stun = match options.stun_listen {
            Some(address) => Some(
                UdpSocket::bind(address)
                    .await
                    .with_context(|| format!("cannot bind the STUN responder on {address}"))?,
            ),
            None => None,
        };

        let gate = Gate::new(options.connections);
        let (stop_sender, stop) = watch::channel(false);
        let register_limiter = api::node::register_limiter(options.register_limit);
        let sessions = api::tailscale::Sessions {
            gate: gate.clone(),
            stop: stop.clone(),
            register_limiter: register_limiter.clone(),
        };
        let http = match options.http_listen {
            Some(address) => Some((
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (--http-listen)"))?,
                api::tailscale::router(
                    Arc::clone(&control_key),
                    Arc::clone(&coordinator),
                    sessions.clone(),
                ),
            )),
            None => None,
        };

        let metrics = match options.metrics_listen {
            Some(address) => Some((
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (--metrics-listen)"))?,
                {
                    let (relay, coordinator) = (Arc::clone(&relay), Arc::clone(&coordinator));
                    metrics_router(move || {
                        let (relay, coordinator) = (Arc::clone(&relay), Arc::clone(&coordinator));
                        async move {
                            let health = coordinator.health(relay.clients(), false).await;
                            relay.render_metrics() + &health.render_metrics()
                        }
                    })
                },
            )),
            None => None,
        };

        // The admin socket last: once it answers, every listener is bound
        // (what `hearth` and the tests take as the coordinator being up).
        let admin_path = state.admin_socket();
        match std::fs::remove_file(&admin_path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).context("cannot remove a stale admin socket");
            }
            _ => {}
        }
        let admin = UnixListener::bind(&admin_path)
            .with_context(|| format!("cannot bind {}", admin_path.display()))?;
        restrict(&admin_path)?;

        Ok(Server {
            http,
            metrics,
            dns,
            node_routes: api::node::router(Arc::clone(&coordinator), register_limiter)
                .merge(api::tailscale::router(
                    control_key,
                    Arc::clone(&coordinator),
                    sessions,
                ))
                .merge(api::derp::router(Arc::clone(&relay)))
                .merge(api::relay::router(Arc::clone(&coordinator))),
            admin_routes: api::admin::router(Arc::clone(&coordinator), {
                let relay = Arc::clone(&relay);
                Arc::new(move || relay.clients())
            }),
            coordinator,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            listener,
            admin,
            admin_path,
            stun,
            stun_per_source: options.stun_per_source,
            gate,
            stop_sender,
            stop,
        })
    }

    /// The address the node API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address the STUN responder listens on.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.stun
            .as_ref()
            .and_then(|socket| socket.local_addr().ok())
    }

    /// The coordinator behind the server.
    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    /// Serves until `shutdown` completes, then stops cleanly: no new
    /// connections, streams ended, requests in flight finished (up to 10 s),
    /// database checkpointed and closed, admin socket removed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_sender, stop) = (self.stop_sender.clone(), self.stop.clone());
        let settings = self.coordinator.settings().clone();
        tracing::info!(
            listen = %self.local_addr(),
            url = %settings.public_url,
            fingerprint = %settings.fingerprint,
            "coordinator serving"
        );

        let admin_task = tokio::spawn({
            let mut stop = stop.clone();
            let routes = self.admin_routes;
            let admin = self.admin;
            async move {
                axum::serve(admin, routes)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    })
                    .await
            }
        });
        let stun_per_source = self.stun_per_source;
        let stun_task = self
            .stun
            .map(|socket| tokio::spawn(run_stun(socket, stun_per_source, stop.clone())));
        let janitor_task = tokio::spawn(run_janitor(Arc::clone(&self.coordinator), stop.clone()));
        let mut acme_tasks = Vec::new();
        if let Some(acme) = &settings.acme {
            for (udp, tcp) in self.dns {
                if let Ok(address) = udp.local_addr() {
                    tracing::info!(%address, "DNS for ACME challenges");
                }
                let answering = Arc::clone(acme);
                acme_tasks.push(tokio::spawn(answer_udp(
                    udp,
                    crate::acme::DNS_PER_SOURCE,
                    stop.clone(),
                    "ACME DNS",
                    move |packet, _| answering.answer(packet, crate::acme::zone::Transport::Udp),
                )));
                acme_tasks.push(tokio::spawn(crate::acme::serve_tcp(
                    tcp,
                    Arc::clone(acme),
                    stop.clone(),
                )));
            }
            acme_tasks.push(tokio::spawn(crate::acme::run_renewal(
                Arc::clone(acme),
                stop.clone(),
            )));
        }
        let expiry_task = tokio::spawn(Arc::clone(&self.coordinator).run_key_expiry(stop.clone()));
        let presence_task = tokio::spawn(Arc::clone(&self.coordinator).run_presence(stop.clone()));
        let report_task =
            tokio::spawn(Arc::clone(&self.coordinator).run_report_writer(stop.clone()));
        // On a shared database, the other coordinators' writes are followed.
        let follow_task = self.coordinator.db().is_shared().then(|| {
            tokio::spawn(crate::shared::follow(
                Arc::clone(&self.coordinator),
                stop.clone(),
            ))
        });
        let metrics_task = self.metrics.map(|(listener, routes)| {
            let mut stop = stop.clone();
            let gate = self.gate.clone();
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "metrics on plain HTTP");
            }
            tokio::spawn(async move {
                hearth_http::serve::serve_tcp(listener, gate, routes, async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await
            })
        });
        let http_task = self.http.map(|(listener, routes)| {
            let mut stop = stop.clone();
            let gate = self.gate.clone();
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "Tailscale control protocol on plain HTTP");
            }
            tokio::spawn(async move {
                hearth_http::serve::serve_tcp(listener, gate, routes, async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await
            })
        });

        let limits = *self.gate.limits();
        tracing::info!(
            max_connections = limits.max_connections,
            max_per_source = limits.max_per_source,
            "connection limits"
        );
        let peer = |remote, certificate: Option<&[u8]>| PeerInfo {
            remote,
            fingerprint: certificate.map(Fingerprint::of),
        };
        hearth_http::serve::serve_tls(
            self.listener,
            self.acceptor,
            self.gate,
            self.node_routes,
            peer,
            shutdown,
            // Map streams end, so that connections can drain.
            {
                let coordinator = Arc::clone(&self.coordinator);
                move || {
                    let _ = stop_sender.send(true);
                    coordinator.close_streams();
                }
            },
        )
        .await?;
        let _ = admin_task.await;
        if let Some(task) = stun_task {
            let _ = task.await;
        }
        let _ = janitor_task.await;
        for task in acme_tasks {
            let _ = task.await;
        }
        let _ = expiry_task.await;
        let _ = presence_task.await;
        // What was reported last is stored before the database closes.
        let _ = report_task.await;
        if let Some(task) = follow_task {
            let _ = task.await;
        }
        for task in [http_task, metrics_task].into_iter().flatten() {
            let _ = task.await;
        }
        self.coordinator.db().close().await;
        let _ = std::fs::remove_file(&self.admin_path);
        tracing::info!("stopped");
        Ok(())
    }
}

/// Answers STUN Binding requests with the address they came from, at most
/// `per_source` a second to one address (after a burst of as many): an
/// answer is larger than a request, so unlimited answers to a forged source
/// address would amplify a flood at it.
pub(crate) async fn run_stun(socket: UdpSocket, per_source: u32, stop: watch::Receiver<bool>) {
    answer_udp(socket, per_source, stop, "STUN", |packet, source| {
        hearth_control::stun::parse_binding_request(packet)
            .map(|transaction| hearth_control::stun::binding_response(transaction, source))
    })
    .await;
}

/// Sends what `answer` makes of each datagram on `socket` (nothing for
/// `None`) back to its source until `stop`, at most `per_source` answers
/// a second to one address (after a burst of as many): answers larger than
/// requests, unlimited, would amplify a flood at a forged source address.
pub(crate) async fn answer_udp(
    socket: UdpSocket,
    per_source: u32,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    answer: impl Fn(&[u8], SocketAddr) -> Option<Vec<u8>>,
) {
    let rate = std::num::NonZeroU32::new(per_source.max(1)).expect("at least one");
    let limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr> =
        governor::RateLimiter::keyed(governor::Quota::per_second(rate));
    let mut forget = tokio::time::interval(Duration::from_secs(60));
    let mut buffer = [0u8; 1500];
    loop {
        let (length, source) = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = forget.tick() => {
                limiter.retain_recent();
                continue;
            }
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, what, "receive failed");
                    continue;
                }
            },
        };
        let Some(reply) = answer(&buffer[..length], source) else {
            continue;
        };
        if limiter.check_key(&source.ip().to_canonical()).is_err() {
            continue;
        }
        if let Err(error) = socket.send_to(&reply, source).await {
            tracing::debug!(%error, %source, what, "reply failed");
        }
    }
}

/// `/metrics` in Prometheus's text format, as `render` makes it.
pub fn metrics_router<F, Rendered>(render: F) -> Router
where
    F: Fn() -> Rendered + Clone + Send + Sync + 'static,
    Rendered: Future<Output = String> + Send + 'static,
{
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = render();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    text.await,
                )
            }
        }),
    )
}

/// Periodic housekeeping: removes idle ephemeral nodes.
async fn run_janitor(coordinator: Arc<Coordinator>, mut stop: watch::Receiver<bool>) {
    let period = (coordinator.settings().ephemeral_timeout / 4)
        .clamp(Duration::from_millis(250), Duration::from_secs(30));
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = coordinator.collect_ephemeral().await {
            tracing::warn!(%error, "ephemeral node cleanup failed");
        }
    }
}

/// Runs `serve` until SIGTERM or SIGINT.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    Server::bind(options)
        .await?
        .run(hearth_runtime::shutdown_signal())
        .await
}
