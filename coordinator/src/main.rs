//! `hearth-coordinator`: parses the command line and hands each command
//! group to its module under `cli/`, which calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth_coordinator::state_dir::DEFAULT_STATE_DIR;

mod cli;
use cli::Output;
use cli::devices::DevicesCommand;
use cli::keys::KeysCommand;
use cli::nodes::NodesCommand;
use cli::policy::PolicyCommand;
use cli::relays::RelaysCommand;
use cli::serve::{RelayArgs, ServeArgs};
use cli::services::ServicesCommand;
use cli::ssh::SshCommand;
use cli::state::DbCommand;
use cli::users::UsersCommand;

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
    /// Tailscale Services: a name (svc:chat) with its own addresses and
    /// MagicDNS name (chat.<tailnet>), served by whichever device hosts it.
    #[command(subcommand)]
    Services(ServicesCommand),
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    let state_dir = cli.state_dir.as_path();
    match cli.command {
        Command::Serve(args) => cli::serve::run(state_dir, *args).await,
        Command::Relay(args) => cli::serve::relay(state_dir, args).await,
        Command::Users(command) => cli::users::run(state_dir, command).await,
        Command::Preauthkeys(command) => cli::keys::run(state_dir, command).await,
        Command::Nodes(command) => cli::nodes::run(state_dir, command).await,
        Command::Devices(command) => cli::devices::run(state_dir, command).await,
        Command::Policy(command) => cli::policy::run(state_dir, command).await,
        Command::Relays(command) => cli::relays::run(state_dir, command).await,
        Command::Services(command) => cli::services::run(state_dir, command).await,
        Command::Ssh(command) => cli::ssh::run(state_dir, command).await,
        Command::Health { output } => cli::health::run(state_dir, output).await,
        Command::Backup { file, database } => cli::state::backup(state_dir, file, database).await,
        Command::Restore { file } => cli::state::restore(state_dir, file).await,
        Command::Db(command) => cli::state::db(state_dir, command).await,
        Command::Demo => {
            hearth_runtime::init("warn");
            cli::demo::run().await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hearth_runtime::run(hearth_runtime::Threads::PerCore, run(cli))
}
