//! `hearth-coordinator policy`: the access policy, stored, checked or
//! previewed.

use clap::Subcommand;

use std::path::PathBuf;

use anyhow::Context;
use hearth_coordinator::policy;

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

use super::print_json;

#[derive(Subcommand)]
pub enum PolicyCommand {
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

/// Carries out `policy …`.
pub async fn run(state_dir: &Path, command: PolicyCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
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
                    Err(super::admin_client::AdminError::Unreachable { .. }) => {
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
    }
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
