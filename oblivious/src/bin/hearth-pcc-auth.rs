//! `hearth-pcc-auth`: the private-compute config server (port 8080).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_oblivious::auth::{Published, serve};

/// Publishes /api/config: relays, the OHTTP gateway's keys, the router, the policy.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the config server. Seeds come from OHTTP_SEEDS_JSON or --seeds-file.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A relay clients may use (repeat for more).
        #[arg(long = "relay-url", required = true)]
        relay_urls: Vec<String>,
        /// The OHTTP gateway.
        #[arg(long)]
        gateway_url: String,
        /// The router, as the OHTTP gateway reaches it.
        #[arg(long)]
        router_url: String,
        /// The attestation policy clients apply (JSON).
        #[arg(long)]
        policy: PathBuf,
        /// A file (0600) with the seeds JSON, instead of OHTTP_SEEDS_JSON.
        #[arg(long)]
        seeds_file: Option<PathBuf>,
        /// The transparency log's directory (`hearth-pcc log init`): its
        /// checkpoint and proofs are served with the document.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Command::Serve {
        listen,
        relay_urls,
        gateway_url,
        router_url,
        policy,
        seeds_file,
        log,
    } = Cli::parse().command;
    hearth_runtime::init("info");
    hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
        let seeds = hearth_oblivious::seeds::load(seeds_file.as_deref())?;
        let text = std::fs::read(&policy)
            .with_context(|| format!("cannot read the policy {}", policy.display()))?;
        let parsed = hearth_attest::Policy::parse(&String::from_utf8_lossy(&text))
            .with_context(|| format!("{} is not a usable policy", policy.display()))?;
        let published = Published {
            relay_urls,
            gateway_url,
            router_url,
            policy: (parsed, text),
            log,
        };
        if let Some(dir) = &published.log {
            let snapshot = hearth_transparency::store::Snapshot::load(dir)
                .with_context(|| format!("the transparency log in {}", dir.display()))?;
            tracing::info!(
                entries = snapshot.checkpoint.size,
                "serving the transparency log"
            );
        }
        serve(listen, published, seeds, hearth_runtime::shutdown_signal()).await
    })
}
