//! `hearth-coordinator users`: the household's people.

use clap::Subcommand;

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

use super::{Output, output, print_json};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        name: String,
        /// The email address this person signs in with at the household's
        /// identity provider (verified there): signing in with it is this
        /// user.
        #[arg(long)]
        email: Option<String>,
    },
    /// Link a user to a person at the identity provider, who then signs in
    /// as this user: by the email address the provider verified for them,
    /// or by their provider account. Without a link, signing in never
    /// claims an existing user, whatever name the provider gives.
    Link {
        name: String,
        /// Their email address, as the provider verifies it.
        #[arg(long, required_unless_present = "subject")]
        email: Option<String>,
        /// Their provider account: "ISSUER SUBJECT".
        #[arg(long)]
        subject: Option<String>,
    },
    /// List users.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Check that NAME may be a user's name (the rules `create` applies),
    /// without a running coordinator: exit status 1 and the reason if not.
    Check { name: String },
    /// Rename a user.
    Rename { old: String, new: String },
    /// Delete a user without nodes.
    Delete { name: String },
}

/// Carries out `users …`.
pub async fn run(state_dir: &Path, command: UsersCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
        UsersCommand::Create { name, email } => {
            let user = admin()?.create_user(&name, email.as_deref()).await?;
            println!("user `{}` created (id {})", user.name, user.id);
        }
        UsersCommand::Link {
            name,
            email,
            subject,
        } => {
            admin()?
                .link_user(&name, email.as_deref(), subject.as_deref())
                .await?;
            println!("user `{name}` linked to the identity provider");
        }
        UsersCommand::List { output } => {
            let users = admin()?.list_users().await?;
            match output {
                Output::Table => println!("{}", output::users(&users)),
                Output::Json => print_json(&users)?,
            }
        }
        UsersCommand::Check { name } => {
            hearth_coordinator::names::check_user_name(&name)?;
            println!("`{name}` can be a user's name");
        }
        UsersCommand::Rename { old, new } => {
            admin()?.rename_user(&old, &new).await?;
            println!("user `{old}` renamed to `{new}`");
        }
        UsersCommand::Delete { name } => {
            admin()?.delete_user(&name).await?;
            println!("user `{name}` deleted");
        }
    }
    Ok(())
}
