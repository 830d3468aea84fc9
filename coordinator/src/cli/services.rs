//! `hearth-coordinator services`: Tailscale Services, their addresses and
//! names, and which device hosts each.

use std::path::Path;

use clap::Subcommand;

use super::admin_client::AdminClient;
use super::{Output, print_json};
use hearth_coordinator::coordinator::ServiceView;
use hearth_coordinator::state_dir::StateDir;

#[derive(Subcommand)]
pub enum ServicesCommand {
    /// List services: addresses, MagicDNS names, hosts, who advertises them.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Create a service (svc:NAME) with the next free addresses. Services
    /// the policy names (a grant's destination, autoApprovers.services)
    /// are created when the policy is set.
    Create { name: String },
    /// Choose the device that hosts a service (its id or name); its name
    /// and addresses stay, and clients follow without a change.
    Move {
        name: String,
        /// The device to host it.
        #[arg(long, conflicts_with = "auto", required_unless_present = "auto")]
        to: Option<String>,
        /// Leave it to the devices that advertise it and the policy's
        /// autoApprovers.services.
        #[arg(long)]
        auto: bool,
    },
    /// Delete a service the policy does not name.
    Delete { name: String },
}

/// Carries out `services …`.
pub async fn run(state_dir: &Path, command: ServicesCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
        ServicesCommand::List { output } => {
            let services = admin()?.list_services().await?;
            match output {
                Output::Table => {
                    println!(
                        "{:<20} {:<28} {:<34} {:<16} ADVERTISED BY",
                        "SERVICE", "NAME", "ADDRESSES", "HOST"
                    );
                    for service in &services {
                        println!(
                            "{:<20} {:<28} {:<34} {:<16} {}",
                            service.name,
                            service.dns_name,
                            addresses(service),
                            host(service),
                            service.advertised_by.join(", ")
                        );
                    }
                }
                Output::Json => print_json(&services)?,
            }
        }
        ServicesCommand::Create { name } => {
            let service = admin()?.create_service(&name).await?;
            println!(
                "{} created: {} at {}; no device hosts it yet",
                service.name,
                service.dns_name,
                addresses(&service)
            );
        }
        ServicesCommand::Move { name, to, auto: _ } => {
            let service = admin()?.move_service(&name, to.as_deref()).await?;
            println!(
                "{} ({}) is hosted by {}",
                service.name,
                service.dns_name,
                host(&service)
            );
        }
        ServicesCommand::Delete { name } => {
            admin()?.delete_service(&name).await?;
            println!("{name} deleted");
        }
    }
    Ok(())
}

fn addresses(service: &ServiceView) -> String {
    service
        .addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn host(service: &ServiceView) -> String {
    match (&service.host, service.placed.as_str()) {
        (Some(host), "chosen") => format!("{host} (chosen)"),
        (Some(host), _) => host.clone(),
        (None, _) => "(none)".to_owned(),
    }
}
