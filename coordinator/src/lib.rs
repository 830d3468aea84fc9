//! Hearth's coordinator: the control server of the mesh.
//!
//! It keeps users, pre-auth keys and nodes in SQLite or PostgreSQL ([`db`];
//! several coordinators may share PostgreSQL, [`shared`]), admits devices
//! ([`coordinator`]), allocates their addresses ([`ipam`]), evaluates the
//! policy over them and streams each node its network map as deltas
//! ([`netmap`], [`streams`]). The node API is HTTPS with mutual TLS
//! ([`api::node`], [`tls`]); admins use the CLI over a UNIX socket
//! ([`api::admin`]). [`backup`] writes and restores the whole state.

pub mod accounts;
pub mod acme;
pub mod admission;
pub mod api;
pub mod authkey;
pub mod backup;
pub mod coordinator;
pub mod db;
pub mod derp;
pub mod dns;
pub mod duration;
pub mod endpoints;
pub mod error;
pub mod health;
pub mod ipam;
pub mod keys;
pub mod logins;
pub mod names;
pub mod netmap;
pub mod oidc;
pub mod policy;
pub mod presence;
pub mod registration;
mod registry;
pub mod relays;
pub mod routes;
pub mod server;
pub mod services;
pub mod settings;
pub mod shared;
pub mod sign_in;
pub mod ssh_checks;
pub mod state_dir;
pub mod streams;
pub mod tailscale;
pub mod tls;
pub mod tsmap;
pub(crate) mod wgquick;

pub use coordinator::Coordinator;
pub use error::Error;
