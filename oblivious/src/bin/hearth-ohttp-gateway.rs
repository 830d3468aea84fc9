//! `hearth-ohttp-gateway`: the OHTTP gateway (port 3200).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hearth_oblivious::allow::AllowList;
use hearth_oblivious::gateway::{Settings, serve};

/// Opens Oblivious HTTP requests from relays and forwards them to allowed targets only.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Seeds come from OHTTP_SEEDS_JSON or --seeds-file.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:3200")]
        listen: SocketAddr,
        /// A file (0600) with the seeds JSON, instead of OHTTP_SEEDS_JSON.
        #[arg(long)]
        seeds_file: Option<PathBuf>,
        /// An inner target: http://ADDRESS:PORT/PREFIX (repeat for more).
        #[arg(long = "allow", required = true)]
        allow: Vec<String>,
        /// Seconds to wait for a target's response to start.
        #[arg(long, default_value_t = 120)]
        target_timeout_seconds: u64,
    },
    /// Check the seeds (OHTTP_SEEDS_JSON or --seeds-file) and print each
    /// key's id, period and public configuration; no secret is printed.
    CheckSeeds {
        /// A file (0600) with the seeds JSON, instead of OHTTP_SEEDS_JSON.
        #[arg(long)]
        seeds_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let (listen, seeds_file, allow, target_timeout_seconds) = match Cli::parse().command {
        Command::Serve {
            listen,
            seeds_file,
            allow,
            target_timeout_seconds,
        } => (listen, seeds_file, allow, target_timeout_seconds),
        Command::CheckSeeds { seeds_file } => return check_seeds(seeds_file.as_deref()),
    };
    hearth_runtime::init("info");
    hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
        let seeds = hearth_oblivious::seeds::load(seeds_file.as_deref())?;
        let allow = AllowList::parse(&allow)?;
        let settings = Settings {
            listen,
            seeds,
            allow,
            target_timeout: Duration::from_secs(target_timeout_seconds.max(1)),
        };
        serve(settings, hearth_runtime::shutdown_signal()).await
    })
}

fn check_seeds(file: Option<&std::path::Path>) -> ExitCode {
    match hearth_oblivious::seeds::load(file) {
        Ok(seeds) => {
            let now = hearth_runtime::clock::since_epoch();
            for seed in &seeds {
                println!(
                    "key {}: {} to {}{}: {}",
                    seed.key_id,
                    hearth_attest::report::rfc3339(seed.active_from),
                    hearth_attest::report::rfc3339(seed.active_until),
                    if seed.active(now) {
                        " (active now)"
                    } else {
                        ""
                    },
                    hex::encode(seed.config().encode())
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hearth-ohttp-gateway: {error:#}");
            ExitCode::from(2)
        }
    }
}
