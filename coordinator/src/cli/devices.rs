//! `hearth-coordinator devices`: devices without an agent (a phone with
//! the official WireGuard app), registered with their configuration.

use clap::{Subcommand, ValueEnum};

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

#[derive(Subcommand)]
pub enum DevicesCommand {
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
pub enum DeviceOutput {
    /// The configuration, then a QR code of it.
    #[default]
    Both,
    /// Only the wg-quick configuration (to redirect to a file).
    Config,
    /// Only the QR code.
    Qr,
}

/// Carries out `devices …`.
pub async fn run(state_dir: &Path, command: DevicesCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    let DevicesCommand::Add { user, name, output } = command;
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
    Ok(())
}
