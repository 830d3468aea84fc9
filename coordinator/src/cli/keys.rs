//! `hearth-coordinator preauthkeys`: the keys devices join with.

use clap::Subcommand;

use std::time::Duration;

use hearth_coordinator::accounts::KeyOptions;
use hearth_coordinator::duration::{Lifetime, parse_duration, parse_lifetime};

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

use super::{Output, output, print_json};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a pre-auth key and print its join token.
    Create {
        /// Owning user.
        #[arg(long)]
        user: String,
        /// Allow more than one node to join with it.
        #[arg(long)]
        reusable: bool,
        /// Nodes joining with it are removed after a period offline.
        #[arg(long)]
        ephemeral: bool,
        /// Validity, e.g. 1h, 7d [default: never expires].
        #[arg(long, value_parser = parse_duration)]
        expiration: Option<Duration>,
        /// Tags for the nodes it admits, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Admit nodes without manual approval.
        #[arg(long)]
        pre_approved: bool,
        /// Lifetime of the keys of the nodes it admits (their agents rotate
        /// them before the end), or `never` [default: the coordinator's
        /// --key-expiry; never for tagged nodes].
        #[arg(long, value_parser = parse_lifetime)]
        key_expiry: Option<Lifetime>,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// List pre-auth keys.
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Make a key unusable.
    Expire { id: i64 },
}

/// Carries out `preauthkeys …`.
pub async fn run(state_dir: &Path, command: KeysCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
        KeysCommand::Create {
            user,
            reusable,
            ephemeral,
            expiration,
            tags,
            pre_approved,
            key_expiry,
            output,
        } => {
            let options = KeyOptions {
                user,
                reusable,
                ephemeral,
                expiration_seconds: expiration.map(|duration| duration.as_secs()),
                tags,
                pre_approved,
                node_key_lifetime_seconds: key_expiry
                    .map(|lifetime| lifetime.duration().map_or(0, |duration| duration.as_secs())),
            };
            let created = admin()?.create_key(&options).await?;
            match output {
                Output::Table => println!("{}", created.token),
                Output::Json => print_json(&created)?,
            }
        }
        KeysCommand::List { user, output } => {
            let keys = admin()?.list_keys(user.as_deref()).await?;
            match output {
                Output::Table => println!("{}", output::keys(&keys)),
                Output::Json => print_json(&keys)?,
            }
        }
        KeysCommand::Expire { id } => {
            admin()?.expire_key(id).await?;
            println!("pre-auth key {id} expired");
        }
    }
    Ok(())
}
