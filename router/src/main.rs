//! `hearth-router`: the private-compute router.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
        /// The token compute nodes present (created, 0600, on first start).
        #[arg(long, default_value = "/var/lib/hearth-router/node.token")]
        node_token_file: PathBuf,
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
}

fn main() -> ExitCode {
    let Command::Serve {
        listen,
        node_token_file,
        heartbeat_seconds,
        node_timeout_seconds,
        reply_timeout_seconds,
        max_streams,
        per_source_rate,
        per_source_burst,
    } = Cli::parse().command;
    hearth_runtime::init("info");
    hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
        let node_token = hearth_files::token::load_or_create(&node_token_file)
            .with_context(|| format!("the node token {}", node_token_file.display()))?;
        let settings = Settings {
            listen,
            node_token,
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
