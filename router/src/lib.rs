//! The private-compute router (OpenPCC's design, port 3600): compute nodes
//! heartbeat their evidence bundles into a [`registry`]; clients fetch the
//! nodes, verify the evidence themselves, and send requests sealed to the
//! nodes' keys, which the router forwards to one candidate and streams back
//! ([`server`]). It holds no key that opens a request. Each node heartbeats
//! with a [`credential`] bound to its id; the router sends only to node
//! addresses in the networks an admin allows ([`reach`]).

pub mod credential;
pub mod reach;
pub mod registry;
pub mod server;
