//! `hearth-coordinator nodes`: admitting, naming, tagging and removing
//! devices.

use clap::Subcommand;

use hearth_coordinator::admission::NodeAction;

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

use super::{Output, output, print_json};

#[derive(Subcommand)]
pub enum NodesCommand {
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

/// Carries out `nodes …`.
pub async fn run(state_dir: &Path, command: NodesCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
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
        NodesCommand::Reject { id } => report(admin()?.node_action(id, NodeAction::Reject).await?),
        NodesCommand::Expire { id } => report(admin()?.node_action(id, NodeAction::Expire).await?),
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
