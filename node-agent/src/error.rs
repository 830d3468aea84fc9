//! What can stop the agent.

use hearth_control::{ClientError, TokenError};

use crate::dataplane::DataPlaneError;
use crate::firewall::FirewallError;
use crate::netcfg::NetError;
use crate::state::StateError;

/// An agent failure.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No registration yet and no token given.
    #[error(
        "this node is not registered yet: pass a join token (--token-file FILE, --token TOKEN or HEARTH_JOIN_TOKEN)"
    )]
    NoToken,
    /// The token is unreadable.
    #[error("join token: {0}")]
    Token(#[from] TokenError),
    /// The coordinator refused or could not be reached.
    #[error(transparent)]
    Control(#[from] ClientError),
    /// The node was deleted on the coordinator.
    #[error(
        "this node was deleted on the coordinator; remove the state dir and join again with a new token"
    )]
    Deleted,
    /// An admin rejected the node.
    #[error(
        "node {0} was rejected by an admin; ask them to approve it (`hearth-coordinator nodes approve {0}`)"
    )]
    Rejected(u64),
    /// The state dir is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// WireGuard could not be set up.
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
    /// The firewall could not be set up.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// Addresses or routes could not be set.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Anything else while starting.
    #[error("{0}")]
    Setup(String),
}
