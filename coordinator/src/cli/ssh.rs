//! `hearth-coordinator ssh`: the Tailscale SSH sessions a `check` rule
//! holds until the admin decides.

use clap::Subcommand;

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

use super::{Output, print_json};

#[derive(Subcommand)]
pub enum SshCommand {
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

/// Carries out `ssh …`.
pub async fn run(state_dir: &Path, command: SshCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
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
    }
    Ok(())
}
