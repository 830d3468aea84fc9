//! `hearth-coordinator serve` and `relay`: the coordinator, and a
//! standalone relay, with their flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hearth_coordinator::api::node::RegisterLimit;
use hearth_coordinator::duration::{Lifetime, parse_duration, parse_lifetime};
use hearth_coordinator::server::{ServeOptions, serve};

#[derive(Args)]
pub struct ServeArgs {
    /// Address of the HTTPS node API.
    #[arg(long, env = "HEARTH_LISTEN", default_value = "0.0.0.0:443")]
    listen: SocketAddr,
    /// URL put in join tokens [default: https://<listen address or hostname>:<port>].
    #[arg(long, env = "HEARTH_PUBLIC_URL")]
    public_url: Option<String>,
    /// PEM certificate chain to serve instead of the self-signed one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address of the STUN responder, or `off`.
    #[arg(long, env = "HEARTH_STUN_LISTEN", default_value = "0.0.0.0:3478")]
    stun_listen: String,
    /// Keep-alive period of map streams (Headscale's 50 s: well inside the
    /// two minutes a Tailscale client waits before it calls a stream dead).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    keepalive: Duration,
    /// Remove ephemeral nodes disconnected for this long.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    ephemeral_timeout: Duration,
    /// Registrations one address may make at once.
    #[arg(long, default_value_t = 20)]
    register_burst: u32,
    /// Time for one more registration to be allowed.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    register_period: Duration,
    /// Connections held at once (lowered to fit the open-file limit).
    #[arg(long, default_value_t = hearth_http::Scale::ControlPlane.connections().0)]
    max_connections: usize,
    /// Connections one source address may hold at once (at most a quarter of --max-connections).
    #[arg(long, default_value_t = hearth_http::Scale::ControlPlane.connections().1)]
    max_connections_per_source: usize,
    /// Time a client has to send a whole request head (or the TLS handshake).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// STUN answers per second to one source address.
    #[arg(long, default_value_t = 10)]
    stun_per_source: u32,
    /// Plain HTTP address for the Tailscale control protocol only (clients
    /// try port 80 first; its Noise session needs no TLS), or `off`.
    #[arg(long, env = "HEARTH_HTTP_LISTEN", default_value = "off")]
    http_listen: String,
    /// The MagicDNS domain Tailscale clients name nodes under (`<name>.<domain>`).
    #[arg(long, env = "HEARTH_BASE_DOMAIN", default_value = hearth_coordinator::tsmap::DEFAULT_BASE_DOMAIN)]
    base_domain: String,
    /// Megabits a second one node may send through the embedded relay (0: no limit).
    #[arg(long, default_value_t = 200)]
    relay_client_mbit: u64,
    /// Plain HTTP address serving `/metrics` (Prometheus), or `off`.
    #[arg(long, env = "HEARTH_METRICS_LISTEN", default_value = "off")]
    metrics_listen: String,
    /// `sqlite` (coordinator.db in the state directory) or a PostgreSQL URL
    /// (`postgres://hearth@db.internal/hearth`), which several coordinators
    /// may share. A password goes in --database-password-file or in the
    /// environment (`postgres://hearth:${PGPASSWORD}@db/hearth`), never in
    /// the URL itself.
    #[arg(long, env = "HEARTH_DATABASE", default_value = "sqlite")]
    database: String,
    /// File holding the PostgreSQL password (readable by its owner only).
    #[arg(long)]
    database_password_file: Option<PathBuf>,
    /// How long node keys live before they must be rotated (agents do it
    /// themselves), or `never`; pre-auth keys may set their own. Tagged
    /// nodes' keys never expire unless their key says so.
    #[arg(long, default_value = "180d", value_parser = parse_lifetime)]
    key_expiry: Lifetime,
    /// Do not let Tailscale clients send files to each other (Taildrop is
    /// on by default, between a user's own untagged devices).
    #[arg(long)]
    no_taildrop: bool,
    /// DNS for the nodes beyond MagicDNS: a JSON file with split domains
    /// and their resolvers, global resolvers, search domains and extra
    /// records (docs/tailscale-clients.md#dns).
    #[arg(long, env = "HEARTH_DNS_CONFIG")]
    dns_config: Option<PathBuf>,
    /// Let people add their devices by signing in with the household's
    /// identity provider (OpenID Connect): a JSON file naming the issuer,
    /// the client and its secret's file, and whose groups fill the
    /// policy's (docs/tailscale-clients.md#sign-in).
    #[arg(long, env = "HEARTH_OIDC_CONFIG")]
    oidc_config: Option<PathBuf>,
    /// Certificates from an ACME CA (Let's Encrypt): for the coordinator's
    /// own name and for devices' MagicDNS names (`tailscale cert`), its
    /// DNS-01 challenges answered by this coordinator's DNS server; a JSON
    /// file (docs/tailscale-clients.md#certificates).
    #[arg(long, env = "HEARTH_ACME_CONFIG")]
    acme_config: Option<PathBuf>,
}

/// The `--database` choice with its password, from the URL's `${VAR}` or
/// from `--database-password-file`.
pub fn database_choice(
    text: &str,
    password_file: Option<&PathBuf>,
) -> anyhow::Result<hearth_coordinator::db::url::DatabaseChoice> {
    use hearth_coordinator::db::url::{DatabaseChoice, parse};
    let mut choice = parse(text, |name| std::env::var(name).ok())?;
    if let Some(path) = password_file {
        let DatabaseChoice::Postgres { password, .. } = &mut choice else {
            anyhow::bail!("--database-password-file goes with a postgres:// --database");
        };
        if password.is_some() {
            anyhow::bail!(
                "the password is in the --database URL and in --database-password-file; give it once"
            );
        }
        *password = Some(hearth_files::token::read_secret(path)?);
    }
    Ok(choice)
}

/// The identity provider `--oidc-config` names, its client secret read.
fn sign_in_provider(path: &std::path::Path) -> anyhow::Result<hearth_coordinator::oidc::Provider> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = hearth_coordinator::sign_in::parse_config(&text)
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    let secret = hearth_files::token::read_secret(&config.client_secret_file)
        .with_context(|| format!("{}: client_secret_file", path.display()))?;
    hearth_coordinator::oidc::Provider::new(config, secret)
}

/// `ADDR:PORT` or `off` for an optional listener named by `flag`.
fn optional_address(value: &str, flag: &str) -> anyhow::Result<Option<SocketAddr>> {
    match value {
        "off" => Ok(None),
        address => {
            Ok(Some(address.parse().with_context(|| {
                format!("{flag} takes ADDR:PORT or `off`")
            })?))
        }
    }
}

/// The relay's per-client limit from megabits a second.
fn relay_limits(mbit: u64) -> hearth_coordinator::derp::Limits {
    let bytes_per_second = mbit * 1_000_000 / 8;
    hearth_coordinator::derp::Limits {
        bytes_per_second,
        burst_bytes: (bytes_per_second / 5).max(1 << 20),
    }
}

#[derive(Args)]
pub struct RelayArgs {
    /// The file holding the relay token from `relays add` (or set HEARTH_RELAY_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Address of its HTTPS listener (the URL given to `relays add` must lead here).
    #[arg(long, default_value = "0.0.0.0:443")]
    listen: SocketAddr,
    /// Address of its STUN responder, or `off`.
    #[arg(long, default_value = "0.0.0.0:3478")]
    stun_listen: String,
    /// Plain HTTP address serving `/metrics` (Prometheus), or `off`.
    #[arg(long, default_value = "off")]
    metrics_listen: String,
    /// Megabits a second one node may send through it (0: no limit).
    #[arg(long, default_value_t = 200)]
    relay_client_mbit: u64,
}

/// Runs the coordinator on `state_dir` until it is stopped.
pub async fn run(state_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    hearth_runtime::init("info");
    let mut options = ServeOptions::new(state_dir.to_owned());
    options.listen = args.listen;
    options.public_url = args.public_url;
    options.tls_cert = args.tls_cert;
    options.tls_key = args.tls_key;
    options.stun_listen = optional_address(&args.stun_listen, "--stun-listen")?;
    options.keepalive = args.keepalive;
    options.base_domain = args.base_domain.clone();
    options.http_listen = optional_address(&args.http_listen, "--http-listen")?;
    options.metrics_listen = optional_address(&args.metrics_listen, "--metrics-listen")?;
    options.relay_limits = relay_limits(args.relay_client_mbit);
    options.database = database_choice(&args.database, args.database_password_file.as_ref())?;
    options.node_key_lifetime = args.key_expiry.duration();
    options.taildrop = !args.no_taildrop;
    if let Some(path) = &args.dns_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        options.dns = hearth_coordinator::dns::parse(&text)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    }
    if let Some(path) = &args.oidc_config {
        options.sign_in = Some(std::sync::Arc::new(sign_in_provider(path)?));
    }
    if let Some(path) = &args.acme_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        options.acme = Some(
            hearth_coordinator::acme::config::parse(&text, &options.base_domain)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?,
        );
    }
    options.ephemeral_timeout = args.ephemeral_timeout;
    options.register_limit = RegisterLimit {
        burst: args.register_burst,
        period: args.register_period,
    };
    let mut connections = hearth_http::Limits::for_this_process(
        args.max_connections,
        args.max_connections_per_source,
    );
    connections.header_timeout = args.header_timeout;
    connections.handshake_timeout = args.header_timeout;
    options.connections = connections;
    options.stun_per_source = args.stun_per_source;
    serve(options).await?;

    Ok(())
}

/// Runs a standalone relay until it is stopped.
pub async fn relay(state_dir: &Path, args: RelayArgs) -> anyhow::Result<()> {
    hearth_runtime::init("info");
    let token = match std::env::var("HEARTH_RELAY_TOKEN") {
        Ok(token) if !token.trim().is_empty() => zeroize::Zeroizing::new(token.trim().to_owned()),
        _ => {
            let path = args.token_file.as_ref().context(
                "give the relay token from `relays add` with --token-file (or HEARTH_RELAY_TOKEN)",
            )?;
            hearth_coordinator::derp::standalone::read_token(path)?
        }
    };
    let options = hearth_coordinator::derp::standalone::RelayOptions {
        state_dir: state_dir.to_owned(),
        token,
        listen: args.listen,
        stun_listen: optional_address(&args.stun_listen, "--stun-listen")?,
        metrics_listen: optional_address(&args.metrics_listen, "--metrics-listen")?,
        limits: relay_limits(args.relay_client_mbit),
        connections: hearth_http::Limits::for_scale(hearth_http::Scale::ControlPlane),
    };
    hearth_coordinator::derp::standalone::serve(options, hearth_runtime::shutdown_signal()).await?;

    Ok(())
}
