//! `hearth-coordinator`: parses the command line and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cli::admin_client::AdminClient;
use hearth_coordinator::accounts::KeyOptions;
use hearth_coordinator::admission::NodeAction;
use hearth_coordinator::api::node::RegisterLimit;
use hearth_coordinator::duration::{Lifetime, parse_duration, parse_lifetime};
use hearth_coordinator::policy;
use hearth_coordinator::server::{ServeOptions, serve};
use hearth_coordinator::state_dir::{DEFAULT_STATE_DIR, StateDir};

mod cli;
use cli::{demo, output};

/// Hearth's coordinator: the control server of a private WireGuard mesh.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// State directory (database, certificates, admin socket).
    #[arg(long, global = true, env = "HEARTH_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the coordinator.
    Serve(Box<ServeArgs>),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage pre-auth keys.
    #[command(subcommand)]
    Preauthkeys(KeysCommand),
    /// Manage nodes.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Manage the access policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Devices without an agent (phones with the official WireGuard app).
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Run a coordinator in a temporary directory and walk through admitting two devices.
    Demo,
    /// Manage standalone relays (beside the one inside the coordinator).
    #[command(subcommand)]
    Relays(RelaysCommand),
    /// Tailscale SSH sessions a `check` rule holds until an admin decides.
    #[command(subcommand)]
    Ssh(SshCommand),
    /// Run a standalone relay, with a token from `relays add`.
    Relay(RelayArgs),
    /// Write the whole state (a snapshot of the database, the certificates
    /// and keys) to FILE while the coordinator runs; 0600, never overwritten.
    Backup {
        file: PathBuf,
        /// The database `serve` uses (with PostgreSQL only the keys are
        /// archived: back the database up with pg_dump).
        #[arg(long, env = "HEARTH_DATABASE", default_value = "sqlite")]
        database: String,
    },
    /// How the running coordinator is doing, for a person: problems first
    /// (exit status 1 when there are any), then nodes, connections, relay,
    /// database and certificates.
    Health {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Restore a backup into a new, empty --state-dir.
    Restore { file: PathBuf },
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy the SQLite state (the coordinator stopped) into an empty
    /// PostgreSQL database; then serve with `--database URL`.
    MigrateTo {
        /// postgres://user@host/database (password as for `serve --database`).
        url: String,
        /// File holding the PostgreSQL password.
        #[arg(long)]
        database_password_file: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ServeArgs {
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
fn database_choice(
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
struct RelayArgs {
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

#[derive(Subcommand)]
enum SshCommand {
    /// List the sessions waiting for an admin.
    Checks {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Let a waiting session in (and the same person, node and local user
    /// again for the rule's check period).
    Approve { id: u64 },
    /// Turn a waiting session away.
    Deny { id: u64 },
}

#[derive(Subcommand)]
enum RelaysCommand {
    /// Add a standalone relay and print the token it starts with (or
    /// write it to a new 0600 file with --token-file).
    Add {
        /// Its short name (shown as `relay NAME` in `hearth-agent status`).
        code: String,
        /// Where nodes reach it: https://host:port.
        #[arg(long)]
        url: String,
        /// Write the token to this new file (0600) instead of printing it.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// List standalone relays.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove a standalone relay; nodes stop using it.
    Remove { code: String },
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user.
    Create {
        name: String,
        /// The email address this person signs in with at the household's
        /// identity provider (verified there): signing in with it is this
        /// user.
        #[arg(long)]
        email: Option<String>,
    },
    /// Link a user to a person at the identity provider, who then signs in
    /// as this user: by the email address the provider verified for them,
    /// or by their provider account. Without a link, signing in never
    /// claims an existing user, whatever name the provider gives.
    Link {
        name: String,
        /// Their email address, as the provider verifies it.
        #[arg(long, required_unless_present = "subject")]
        email: Option<String>,
        /// Their provider account: "ISSUER SUBJECT".
        #[arg(long)]
        subject: Option<String>,
    },
    /// List users.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Check that NAME may be a user's name (the rules `create` applies),
    /// without a running coordinator: exit status 1 and the reason if not.
    Check { name: String },
    /// Rename a user.
    Rename { old: String, new: String },
    /// Delete a user without nodes.
    Delete { name: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a pre-auth key and print its join token.
    Create {
        /// Owning user.
        #[arg(long)]
        user: String,
        /// Allow more than one node to join with it.
        #[arg(long)]
        reusable: bool,
        /// Nodes joining with it are removed after a period offline.
        #[arg(long)]
        ephemeral: bool,
        /// Validity, e.g. 1h, 7d [default: never expires].
        #[arg(long, value_parser = parse_duration)]
        expiration: Option<Duration>,
        /// Tags for the nodes it admits, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Admit nodes without manual approval.
        #[arg(long)]
        pre_approved: bool,
        /// Lifetime of the keys of the nodes it admits (their agents rotate
        /// them before the end), or `never` [default: the coordinator's
        /// --key-expiry; never for tagged nodes].
        #[arg(long, value_parser = parse_lifetime)]
        key_expiry: Option<Lifetime>,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// List pre-auth keys.
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Make a key unusable.
    Expire { id: i64 },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// List nodes.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Admit a pending node.
    Approve { id: u64 },
    /// Register a Tailscale device that joined without a key (the code its
    /// login page shows), as USER's.
    Register {
        /// The person whose device it is.
        #[arg(long)]
        user: String,
        /// The code from the device's login page.
        code: String,
    },
    /// Refuse a node.
    Reject { id: u64 },
    /// Take a node out of the mesh until approved again.
    Expire { id: u64 },
    /// Rename a node.
    Rename { id: u64, name: String },
    /// Delete a node.
    Delete { id: u64 },
    /// Approve advertised routes (those autoApprovers allow stay approved).
    ApproveRoutes {
        id: u64,
        /// Routes, comma-separated; empty to withdraw manual approvals.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        routes: Vec<ipnet::IpNet>,
    },
    /// Replace a node's tags.
    Tag {
        id: u64,
        /// Tags, comma-separated; empty to untag.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        tags: Vec<String>,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Register a device and print its wg-quick configuration and a QR code.
    Add {
        /// Owning user.
        #[arg(long)]
        user: String,
        /// Node name.
        #[arg(long)]
        name: String,
        /// What to print.
        #[arg(long, value_enum, default_value_t)]
        output: DeviceOutput,
    },
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum DeviceOutput {
    /// The configuration, then a QR code of it.
    #[default]
    Both,
    /// Only the wg-quick configuration (to redirect to a file).
    Config,
    /// Only the QR code.
    Qr,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the stored policy.
    Get,
    /// Validate and store a policy file.
    Set { file: PathBuf },
    /// Validate a policy file without storing it: against the running
    /// coordinator's nodes (its `tests` block included) when one answers,
    /// against a topology file with --nodes, or on its own (tests not run).
    Check {
        file: PathBuf,
        /// A topology to run the policy's tests against, instead of the
        /// running coordinator's nodes.
        #[arg(long)]
        nodes: Option<PathBuf>,
    },
    /// Print, as JSON, each node's filter and peers under a policy for a
    /// topology file (`{"users": [...], "nodes": {...}}`); needs no server.
    Preview {
        file: PathBuf,
        /// The topology.
        #[arg(long)]
        nodes: PathBuf,
    },
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn read_topology(nodes: &PathBuf) -> anyhow::Result<policy::PreviewTopology> {
    let text = std::fs::read_to_string(nodes)
        .with_context(|| format!("cannot read {}", nodes.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a topology", nodes.display()))
}

fn read_policy(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(&cli.state_dir).admin_socket());
    match cli.command {
        Command::Serve(args) => {
            hearth_runtime::init("info");
            let mut options = ServeOptions::new(cli.state_dir.clone());
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
            options.database =
                database_choice(&args.database, args.database_password_file.as_ref())?;
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
        }
        Command::Backup { file, database } => {
            let state = StateDir::new(&cli.state_dir);
            let postgres = !matches!(
                database_choice(&database, None)?,
                hearth_coordinator::db::url::DatabaseChoice::Sqlite
            );
            let db = if postgres {
                None
            } else {
                let path = state.database();
                anyhow::ensure!(
                    path.exists(),
                    "{} holds no database",
                    cli.state_dir.display()
                );
                Some(hearth_coordinator::db::Db::open_sqlite(&path).await?)
            };
            let archived = hearth_coordinator::backup::backup(&state, db.as_ref(), &file).await?;
            if let Some(db) = db {
                db.close().await;
            }
            eprintln!(
                "backed up {} to {}",
                archived.entries.join(", "),
                file.display()
            );
            if postgres {
                eprintln!(
                    "the database is in PostgreSQL: back it up with pg_dump (docs/coordinator.md, Backups)"
                );
            }
        }
        Command::Health { output } => {
            let health = admin()?.health().await?;
            let now = hearth_runtime::clock::unix_seconds();
            match output {
                Output::Table => print!("{}", health.render_text(now)),
                Output::Json => {
                    // What the text form lists first, for scripts (`hearth status`).
                    let mut value = serde_json::to_value(&health)?;
                    value["problems"] = serde_json::json!(health.problems(now));
                    print_json(&value)?;
                }
            }
            if !health.problems(now).is_empty() {
                std::process::exit(1);
            }
        }
        Command::Restore { file } => {
            let state = StateDir::new(&cli.state_dir);
            let restored = hearth_coordinator::backup::restore(&state, &file).await?;
            eprintln!(
                "restored {} into {}; start it with `hearth-coordinator --state-dir {} serve`",
                restored.entries.join(", "),
                cli.state_dir.display(),
                cli.state_dir.display()
            );
        }
        Command::Db(DbCommand::MigrateTo {
            url,
            database_password_file,
        }) => {
            use hearth_coordinator::db::url::DatabaseChoice;
            let DatabaseChoice::Postgres { url, password } =
                database_choice(&url, database_password_file.as_ref())?
            else {
                anyhow::bail!("migrate-to takes a postgres:// URL");
            };
            let state = StateDir::new(&cli.state_dir);
            if std::os::unix::net::UnixStream::connect(state.admin_socket()).is_ok() {
                anyhow::bail!(
                    "the coordinator on {} is running; stop it first, so that nothing changes during the copy",
                    cli.state_dir.display()
                );
            }
            let path = state.database();
            anyhow::ensure!(
                path.exists(),
                "{} holds no database",
                cli.state_dir.display()
            );
            let from = hearth_coordinator::db::Db::open_sqlite(&path).await?;
            let to = hearth_coordinator::db::Db::open_postgres(
                &url,
                password.as_ref().map(|password| password.as_str()),
            )
            .await
            .with_context(|| format!("cannot open {url}"))?;
            let copied = hearth_coordinator::db::copy::copy_all(&from, &to).await?;
            from.close().await;
            to.close().await;
            for (table, rows) in copied {
                println!("{table}: {rows} rows");
            }
            eprintln!(
                "copied into {url}; now run `hearth-coordinator serve --database '{url}'` (the state dir keeps the certificates and keys)"
            );
        }
        Command::Demo => {
            hearth_runtime::init("warn");
            demo::run().await?;
        }
        Command::Relay(args) => {
            hearth_runtime::init("info");
            let token = match std::env::var("HEARTH_RELAY_TOKEN") {
                Ok(token) if !token.trim().is_empty() => {
                    zeroize::Zeroizing::new(token.trim().to_owned())
                }
                _ => {
                    let path = args.token_file.as_ref().context(
                        "give the relay token from `relays add` with --token-file (or HEARTH_RELAY_TOKEN)",
                    )?;
                    hearth_coordinator::derp::standalone::read_token(path)?
                }
            };
            let options = hearth_coordinator::derp::standalone::RelayOptions {
                state_dir: cli.state_dir.clone(),
                token,
                listen: args.listen,
                stun_listen: optional_address(&args.stun_listen, "--stun-listen")?,
                metrics_listen: optional_address(&args.metrics_listen, "--metrics-listen")?,
                limits: relay_limits(args.relay_client_mbit),
                connections: hearth_http::Limits::for_scale(hearth_http::Scale::ControlPlane),
            };
            hearth_coordinator::derp::standalone::serve(options, hearth_runtime::shutdown_signal())
                .await?;
        }
        Command::Ssh(command) => match command {
            SshCommand::Checks { output } => {
                let checks = admin()?.ssh_checks().await?;
                match output {
                    Output::Table => {
                        println!(
                            "{:<6} {:<6} {:<6} {:<16} WAITING SINCE",
                            "ID", "FROM", "TO", "LOCAL USER"
                        );
                        for check in &checks {
                            // The local user is the asking node's words.
                            println!(
                                "{:<6} {:<6} {:<6} {:<16} {}",
                                check.id,
                                check.from,
                                check.to,
                                hearth_coordinator::names::visible(&check.local_user),
                                check.since
                            );
                        }
                    }
                    Output::Json => print_json(&checks)?,
                }
            }
            SshCommand::Approve { id } => {
                let check = admin()?.decide_ssh_check(id, true).await?;
                println!(
                    "SSH check {id} approved: node {} may log in to node {} as {} for {} s",
                    check.from,
                    check.to,
                    hearth_coordinator::names::visible(&check.local_user),
                    check.period
                );
            }
            SshCommand::Deny { id } => {
                admin()?.decide_ssh_check(id, false).await?;
                println!("SSH check {id} denied");
            }
        },
        Command::Relays(command) => match command {
            RelaysCommand::Add {
                code,
                url,
                token_file,
            } => {
                let created = admin()?.add_relay(&code, &url).await?;
                let token = zeroize::Zeroizing::new(format!("{}\n", created.token));
                match token_file {
                    Some(path) => {
                        let mut file = hearth_files::private::PrivateFile::create(&path)
                            .with_context(|| format!("cannot write beside {}", path.display()))?;
                        std::io::Write::write_all(file.as_file_mut(), token.as_bytes())?;
                        file.finish(&path).with_context(|| {
                            format!("cannot write {} (it must not exist yet)", path.display())
                        })?;
                        eprintln!(
                            "relay `{}` added as region {}; its token is in {} (0600): start it with --token-file {}",
                            created.relay.code,
                            created.relay.id,
                            path.display(),
                            path.display()
                        );
                    }
                    None => {
                        eprintln!(
                            "relay `{}` added as region {}; start it with this token (keep it secret):",
                            created.relay.code, created.relay.id
                        );
                        print!("{}", token.as_str());
                    }
                }
            }
            RelaysCommand::List { output } => {
                let relays = admin()?.list_relays().await?;
                match output {
                    Output::Table => {
                        println!("{:<6} {:<16} {:<32} CERTIFICATE", "REGION", "NAME", "URL");
                        for relay in &relays {
                            println!(
                                "{:<6} {:<16} {:<32} {}",
                                relay.id,
                                relay.code,
                                relay.url,
                                relay.fingerprint.as_deref().unwrap_or("(not started yet)")
                            );
                        }
                    }
                    Output::Json => print_json(&relays)?,
                }
            }
            RelaysCommand::Remove { code } => {
                admin()?.remove_relay(&code).await?;
                println!("relay `{code}` removed; nodes stop using it");
            }
        },
        Command::Users(command) => match command {
            UsersCommand::Create { name, email } => {
                let user = admin()?.create_user(&name, email.as_deref()).await?;
                println!("user `{}` created (id {})", user.name, user.id);
            }
            UsersCommand::Link {
                name,
                email,
                subject,
            } => {
                admin()?
                    .link_user(&name, email.as_deref(), subject.as_deref())
                    .await?;
                println!("user `{name}` linked to the identity provider");
            }
            UsersCommand::List { output } => {
                let users = admin()?.list_users().await?;
                match output {
                    Output::Table => println!("{}", output::users(&users)),
                    Output::Json => print_json(&users)?,
                }
            }
            UsersCommand::Check { name } => {
                hearth_coordinator::names::check_user_name(&name)?;
                println!("`{name}` can be a user's name");
            }
            UsersCommand::Rename { old, new } => {
                admin()?.rename_user(&old, &new).await?;
                println!("user `{old}` renamed to `{new}`");
            }
            UsersCommand::Delete { name } => {
                admin()?.delete_user(&name).await?;
                println!("user `{name}` deleted");
            }
        },
        Command::Preauthkeys(command) => match command {
            KeysCommand::Create {
                user,
                reusable,
                ephemeral,
                expiration,
                tags,
                pre_approved,
                key_expiry,
                output,
            } => {
                let options = KeyOptions {
                    user,
                    reusable,
                    ephemeral,
                    expiration_seconds: expiration.map(|duration| duration.as_secs()),
                    tags,
                    pre_approved,
                    node_key_lifetime_seconds: key_expiry.map(|lifetime| {
                        lifetime.duration().map_or(0, |duration| duration.as_secs())
                    }),
                };
                let created = admin()?.create_key(&options).await?;
                match output {
                    Output::Table => println!("{}", created.token),
                    Output::Json => print_json(&created)?,
                }
            }
            KeysCommand::List { user, output } => {
                let keys = admin()?.list_keys(user.as_deref()).await?;
                match output {
                    Output::Table => println!("{}", output::keys(&keys)),
                    Output::Json => print_json(&keys)?,
                }
            }
            KeysCommand::Expire { id } => {
                admin()?.expire_key(id).await?;
                println!("pre-auth key {id} expired");
            }
        },
        Command::Nodes(command) => match command {
            NodesCommand::List { output } => {
                let nodes = admin()?.list_nodes().await?;
                match output {
                    Output::Table => println!("{}", output::nodes(&nodes)),
                    Output::Json => print_json(&nodes)?,
                }
            }
            NodesCommand::Approve { id } => {
                report(admin()?.node_action(id, NodeAction::Approve).await?)
            }
            NodesCommand::Reject { id } => {
                report(admin()?.node_action(id, NodeAction::Reject).await?)
            }
            NodesCommand::Expire { id } => {
                report(admin()?.node_action(id, NodeAction::Expire).await?)
            }
            NodesCommand::Rename { id, name } => report(admin()?.rename_node(id, &name).await?),
            NodesCommand::Tag { id, tags } => report(admin()?.tag_node(id, &tags).await?),
            NodesCommand::ApproveRoutes { id, routes } => {
                let node = admin()?.approve_routes(id, &routes).await?;
                println!(
                    "node {} ({}) routes approved: [{}]",
                    node.id,
                    node.name,
                    node.approved_routes.join(", ")
                );
            }
            NodesCommand::Register { user, code } => {
                report(admin()?.register_login(&code, &user).await?)
            }
            NodesCommand::Delete { id } => {
                admin()?.delete_node(id).await?;
                println!("node {id} deleted");
            }
        },
        Command::Devices(DevicesCommand::Add { user, name, output }) => {
            let added = admin()?.add_device(&user, &name).await?;
            let config = zeroize::Zeroizing::new(added.config);
            let qr = || {
                hearth_runtime::terminal::qr(&config).map_err(|error| {
                    anyhow::anyhow!("the configuration: cannot encode it as a QR code: {error}")
                })
            };
            match output {
                DeviceOutput::Config => print!("{}", *config),
                DeviceOutput::Qr => println!("{}", qr()?),
                DeviceOutput::Both => {
                    print!("{}", *config);
                    println!(
                        "\nScan with the WireGuard app (Add tunnel, Scan from QR code):\n{}",
                        qr()?
                    );
                    eprintln!(
                        "node {} ({}) added with {}; the private key above is not kept anywhere",
                        added.node.id, added.node.name, added.node.ipv4
                    );
                }
            }
        }
        Command::Policy(command) => match command {
            PolicyCommand::Get => match admin()?.get_policy().await? {
                Some(text) => print!("{text}"),
                None => eprintln!("no policy is set: every node may reach every other node"),
            },
            PolicyCommand::Set { file } => {
                admin()?.set_policy(&read_policy(&file)?).await?;
                println!("policy from {} applied", file.display());
            }
            PolicyCommand::Preview { file, nodes } => {
                let text = read_policy(&file)?;
                let preview = policy::preview(&text, &read_topology(&nodes)?)
                    .map_err(|error| anyhow::anyhow!("policy rejected: {error}"))?;
                print_json(&preview)?;
            }
            PolicyCommand::Check { file, nodes } => {
                let text = read_policy(&file)?;
                if let Some(nodes) = nodes {
                    policy::preview(&text, &read_topology(&nodes)?)
                        .map_err(|error| anyhow::anyhow!("policy rejected: {error}"))?;
                    println!(
                        "policy in {} is valid, its tests pass for {}",
                        file.display(),
                        nodes.display()
                    );
                } else {
                    match admin()?.check_policy(&text).await {
                        Ok(()) => println!(
                            "policy in {} is valid for the running coordinator's nodes",
                            file.display()
                        ),
                        Err(cli::admin_client::AdminError::Unreachable { .. }) => {
                            hearth_acl::Policy::parse(&text)
                                .map_err(|error| anyhow::anyhow!("policy rejected: {error}"))?;
                            println!(
                                "policy in {} is valid (no coordinator answered: its tests were not run; give --nodes TOPOLOGY to run them)",
                                file.display()
                            );
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        },
    }
    Ok(())
}

fn report(node: hearth_coordinator::admission::NodeView) {
    let tags = if node.tags.is_empty() {
        String::new()
    } else {
        format!(", tags {}", node.tags.join(","))
    };
    println!("node {} ({}) is {}{tags}", node.id, node.name, node.state);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hearth_runtime::run(hearth_runtime::Threads::PerCore, run(cli))
}
