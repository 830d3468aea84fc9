//! What only the `hearth-coordinator` command needs: the admin socket's
//! client, the tables it prints, and the demo.

pub mod admin_client;
pub mod demo;
pub mod output;
