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
use hearth_coordinator::duration::parse_duration;
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
    Serve(ServeArgs),
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
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the HTTPS node API.
    #[arg(long, default_value = "0.0.0.0:443")]
    listen: SocketAddr,
    /// URL put in join tokens [default: https://<listen address or hostname>:<port>].
    #[arg(long)]
    public_url: Option<String>,
    /// PEM certificate chain to serve instead of the self-signed one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address of the STUN responder, or `off`.
    #[arg(long, default_value = "0.0.0.0:3478")]
    stun_listen: String,
    /// Keep-alive period of map streams.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
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
    #[arg(long, default_value_t = 16_384)]
    max_connections: usize,
    /// Connections one source address may hold at once (at most a quarter of --max-connections).
    #[arg(long, default_value_t = 1_024)]
    max_connections_per_source: usize,
    /// Time a client has to send a whole request head (or the TLS handshake).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// STUN answers per second to one source address.
    #[arg(long, default_value_t = 10)]
    stun_per_source: u32,
    /// Plain HTTP address for the Tailscale control protocol only (clients
    /// try port 80 first; its Noise session needs no TLS), or `off`.
    #[arg(long, default_value = "off")]
    http_listen: String,
    /// The MagicDNS domain Tailscale clients name nodes under (`<name>.<domain>`).
    #[arg(long, default_value = hearth_coordinator::tsmap::DEFAULT_BASE_DOMAIN)]
    base_domain: String,
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
    Create { name: String },
    /// List users.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
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
    /// Validate a policy file without storing it.
    Check { file: PathBuf },
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
            options.stun_listen = match args.stun_listen.as_str() {
                "off" => None,
                address => Some(
                    address
                        .parse()
                        .context("--stun-listen takes ADDR:PORT or `off`")?,
                ),
            };
            options.keepalive = args.keepalive;
            options.base_domain = args.base_domain.clone();
            options.http_listen = match args.http_listen.as_str() {
                "off" => None,
                address => Some(
                    address
                        .parse()
                        .context("--http-listen takes ADDR:PORT or `off`")?,
                ),
            };
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
        Command::Demo => {
            hearth_runtime::init("warn");
            demo::run().await?;
        }
        Command::Users(command) => match command {
            UsersCommand::Create { name } => {
                let user = admin()?.create_user(&name).await?;
                println!("user `{}` created (id {})", user.name, user.id);
            }
            UsersCommand::List { output } => {
                let users = admin()?.list_users().await?;
                match output {
                    Output::Table => println!("{}", output::users(&users)),
                    Output::Json => print_json(&users)?,
                }
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
                output,
            } => {
                let options = KeyOptions {
                    user,
                    reusable,
                    ephemeral,
                    expiration_seconds: expiration.map(|duration| duration.as_secs()),
                    tags,
                    pre_approved,
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
            let qr = || output::qr(&config).map_err(|error| anyhow::anyhow!(error));
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
                let topology_text = std::fs::read_to_string(&nodes)
                    .with_context(|| format!("cannot read {}", nodes.display()))?;
                let topology: policy::PreviewTopology = serde_json::from_str(&topology_text)
                    .with_context(|| format!("{} is not a topology", nodes.display()))?;
                let preview = policy::preview(&text, &topology)
                    .map_err(|error| anyhow::anyhow!("policy rejected: {error}"))?;
                print_json(&preview)?;
            }
            PolicyCommand::Check { file } => {
                admin()?.check_policy(&read_policy(&file)?).await?;
                println!("policy in {} is valid", file.display());
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
