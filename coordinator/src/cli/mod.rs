//! What only the `hearth-coordinator` command needs, one module per command
//! group (its arguments and what it carries out): the coordinator and a
//! relay ([`serve`]), people ([`users`]), keys ([`keys`]), devices
//! ([`nodes`], [`devices`]), the policy ([`policy`]), relays ([`relays`]),
//! SSH checks ([`ssh`]), the state ([`state`]), health ([`health`]); and
//! the admin socket's client, the tables it prints, and the demo.

pub mod admin_client;
pub mod demo;
pub mod devices;
pub mod health;
pub mod keys;
pub mod nodes;
pub mod output;
pub mod policy;
pub mod relays;
pub mod serve;
pub mod services;
pub mod ssh;
pub mod state;
pub mod users;

/// How a list is printed.
#[derive(Clone, Copy, Default, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
