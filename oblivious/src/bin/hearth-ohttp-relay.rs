//! `hearth-ohttp-relay`: the OHTTP relay (port 3100).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth_oblivious::relay::{Settings, serve};

/// Forwards encapsulated requests to one OHTTP gateway; holds no key.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:3100")]
        listen: SocketAddr,
        /// The OHTTP gateway: http://ADDRESS:3200/gateway.
        #[arg(long)]
        gateway: String,
        /// Requests per second from one address (0: no limit).
        #[arg(long, default_value_t = 50)]
        per_source_rate: u32,
        /// Requests one address may make at once before its rate applies.
        #[arg(long, default_value_t = 100)]
        per_source_burst: u32,
        /// Connections one address may hold.
        #[arg(long, default_value_t = 256)]
        per_source_connections: usize,
    },
}

fn main() -> ExitCode {
    let Command::Serve {
        listen,
        gateway,
        per_source_rate,
        per_source_burst,
        per_source_connections,
    } = Cli::parse().command;
    hearth_runtime::init("info");
    hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
        anyhow::ensure!(
            gateway.starts_with("http://") || gateway.starts_with("https://"),
            "--gateway must be an http:// or https:// URL"
        );
        let settings = Settings {
            listen,
            gateway,
            per_source_rate,
            per_source_burst,
            per_source_connections: per_source_connections.max(1),
        };
        serve(settings, hearth_runtime::shutdown_signal()).await
    })
}
