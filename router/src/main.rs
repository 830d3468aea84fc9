//! `hearth-router`: the private-compute router.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_router::reach::NodeNetworks;
use hearth_router::server::{Settings, serve};

/// Forwards requests sealed to attested compute nodes, without reading them.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:3600")]
        listen: SocketAddr,
        /// The router's node key (created, 0600, on first start): each
        /// node's credential is made from it with `node-token`.
        #[arg(long, default_value = "/var/lib/hearth-router/node.token")]
        node_token_file: PathBuf,
        /// Networks (or single addresses) compute nodes may be reached in,
        /// comma-separated [default: 10.0.0.0/8, 172.16.0.0/12,
        /// 192.168.0.0/16, 100.64.0.0/10, fc00::/7]. Loopback and
        /// link-local only when listed; metadata addresses only by name.
        #[arg(long, value_delimiter = ',')]
        node_networks: Vec<String>,
        /// An OHTTP gateway forwarding for many clients (repeat for more):
        /// the per-source limit does not apply to it (the relay limits each
        /// client).
        #[arg(long = "forwarder")]
        forwarders: Vec<IpAddr>,
        /// Seconds between a node's heartbeats.
        #[arg(long, default_value_t = 5)]
        heartbeat_seconds: u64,
        /// Seconds after its last heartbeat that a node leaves rotation.
        #[arg(long, default_value_t = 15)]
        node_timeout_seconds: u64,
        /// Seconds to wait for a node's reply to start.
        #[arg(long, default_value_t = 120)]
        reply_timeout_seconds: u64,
        /// Replies streaming at once, at most.
        #[arg(long, default_value_t = 4096)]
        max_streams: usize,
        /// Client requests per second from one address (0: no limit).
        #[arg(long, default_value_t = 200)]
        per_source_rate: u32,
        /// Client requests one address may make at once before its rate applies.
        #[arg(long, default_value_t = 2000)]
        per_source_burst: u32,
    },
    /// Make the credential of compute node NODE (what its
    /// `--router-token-file` holds): bound to NODE, it cannot speak for
    /// another node.
    NodeToken {
        /// The node's id (its `--node-id`).
        node: String,
        /// The router's node key.
        #[arg(long, default_value = "/var/lib/hearth-router/node.token")]
        node_token_file: PathBuf,
        /// Write it to this new file (0600) instead of printing it.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve {
            listen,
            node_token_file,
            node_networks,
            forwarders,
            heartbeat_seconds,
            node_timeout_seconds,
            reply_timeout_seconds,
            max_streams,
            per_source_rate,
            per_source_burst,
        } => {
            hearth_runtime::init("info");
            hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
                let node_key = hearth_files::token::load_or_create(&node_token_file)
                    .with_context(|| format!("the node key {}", node_token_file.display()))?;
                let networks = if node_networks.is_empty() {
                    NodeNetworks::default()
                } else {
                    NodeNetworks::parse(&node_networks)?
                };
                let settings = Settings {
                    listen,
                    node_key,
                    networks,
                    forwarders,
                    heartbeat: Duration::from_secs(heartbeat_seconds.max(1)),
                    node_timeout: Duration::from_secs(node_timeout_seconds.max(1)),
                    reply_timeout: Duration::from_secs(reply_timeout_seconds.max(1)),
                    max_streams: max_streams.max(1),
                    per_source_rate,
                    per_source_burst,
                };
                serve(settings, hearth_runtime::shutdown_signal()).await
            })
        }
        Command::NodeToken {
            node,
            node_token_file,
            output,
        } => hearth_runtime::run(hearth_runtime::Threads::One, async move {
            anyhow::ensure!(
                hearth_attest::evidence::valid_node_id(&node),
                "a node id is 1 to 64 letters, digits, '-' or '_'"
            );
            let key = hearth_files::token::read(&node_token_file)
                .with_context(|| format!("the node key {}", node_token_file.display()))?;
            let credential = hearth_router::credential::credential(key.as_bytes(), &node);
            match output {
                Some(path) => {
                    let mut file = hearth_files::private::PrivateFile::create(&path)
                        .with_context(|| format!("cannot write beside {}", path.display()))?;
                    std::io::Write::write_all(
                        file.as_file_mut(),
                        zeroize::Zeroizing::new(format!("{}\n", credential.as_str())).as_bytes(),
                    )?;
                    file.finish(&path).with_context(|| {
                        format!("cannot write {} (it must not exist yet)", path.display())
                    })?;
                }
                None => println!("{}", credential.as_str()),
            }
            Ok(())
        }),
    }
}
