//! `hearth-coordinator relays` and `ssh`: standalone relays, and the SSH
//! sessions a `check` rule holds for the admin.

use clap::Subcommand;

use std::path::PathBuf;

use anyhow::Context;

use std::path::Path;

use super::admin_client::AdminClient;
use hearth_coordinator::state_dir::StateDir;

use super::{Output, print_json};

#[derive(Subcommand)]
pub enum RelaysCommand {
    /// Add a standalone relay and print the token it starts with (or
    /// write it to a new 0600 file with --token-file).
    Add {
        /// Its short name (shown as `relay NAME` in `hearth-agent status`).
        code: String,
        /// Where nodes reach it: https://host:port.
        #[arg(long)]
        url: String,
        /// Write the token to this new file (0600) instead of printing it.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// List standalone relays.
    List {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove a standalone relay; nodes stop using it.
    Remove { code: String },
}

/// Carries out `relays …`.
pub async fn run(state_dir: &Path, command: RelaysCommand) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());
    match command {
        RelaysCommand::Add {
            code,
            url,
            token_file,
        } => {
            let created = admin()?.add_relay(&code, &url).await?;
            let token = zeroize::Zeroizing::new(format!("{}\n", created.token));
            match token_file {
                Some(path) => {
                    let mut file = hearth_files::private::PrivateFile::create(&path)
                        .with_context(|| format!("cannot write beside {}", path.display()))?;
                    std::io::Write::write_all(file.as_file_mut(), token.as_bytes())?;
                    file.finish(&path).with_context(|| {
                        format!("cannot write {} (it must not exist yet)", path.display())
                    })?;
                    eprintln!(
                        "relay `{}` added as region {}; its token is in {} (0600): start it with --token-file {}",
                        created.relay.code,
                        created.relay.id,
                        path.display(),
                        path.display()
                    );
                }
                None => {
                    eprintln!(
                        "relay `{}` added as region {}; start it with this token (keep it secret):",
                        created.relay.code, created.relay.id
                    );
                    print!("{}", token.as_str());
                }
            }
        }
        RelaysCommand::List { output } => {
            let relays = admin()?.list_relays().await?;
            match output {
                Output::Table => {
                    println!("{:<6} {:<16} {:<32} CERTIFICATE", "REGION", "NAME", "URL");
                    for relay in &relays {
                        println!(
                            "{:<6} {:<16} {:<32} {}",
                            relay.id,
                            relay.code,
                            relay.url,
                            relay.fingerprint.as_deref().unwrap_or("(not started yet)")
                        );
                    }
                }
                Output::Json => print_json(&relays)?,
            }
        }
        RelaysCommand::Remove { code } => {
            admin()?.remove_relay(&code).await?;
            println!("relay `{code}` removed; nodes stop using it");
        }
    }
    Ok(())
}
