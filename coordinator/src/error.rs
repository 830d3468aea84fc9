//! Everything that can go wrong in the coordinator, with the code and message
//! a client sees. The HTTP edge (`api`) maps each to a status.

use hearth_control::wire::NodeId;

use crate::db::DbError;
use crate::ipam::Exhausted;
use crate::tls::TlsError;

/// A coordinator failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pre-auth key is unknown or its secret is wrong.
    #[error("the pre-auth key is not valid")]
    InvalidKey,
    /// The pre-auth key is past its expiry.
    #[error("the pre-auth key has expired; ask an admin for a new one")]
    KeyExpired,
    /// A single-use key was already used.
    #[error("the pre-auth key was already used and is single-use; ask an admin for a new one")]
    KeyUsed,
    /// The WireGuard key belongs to a registered node already.
    #[error("this WireGuard key is already registered as node {0}; reuse that node's state dir")]
    AlreadyRegistered(NodeId),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A name breaks its rule.
    #[error(transparent)]
    BadName(#[from] crate::names::NameError),
    /// A node endpoint was called without a client certificate.
    #[error("this endpoint needs the client certificate issued at registration")]
    Unauthenticated,
    /// The client certificate belongs to no node (deleted, or never registered here).
    #[error("this node is not registered (it may have been deleted); register again")]
    UnknownNode,
    /// The node waits for approval.
    #[error(
        "node {id} ({name}) is waiting for approval; an admin runs: hearth-coordinator nodes approve {id}"
    )]
    NodePending {
        /// Node id.
        id: NodeId,
        /// Node name.
        name: String,
    },
    /// The node was rejected or expired.
    #[error("node {id} is {state}; it gets no network map")]
    NodeNotAdmitted {
        /// Node id.
        id: NodeId,
        /// Its state.
        state: &'static str,
    },
    /// Too many nodes wait for approval under this key or user.
    #[error("{0}")]
    TooManyPending(String),
    /// A node reports too often.
    #[error("too many updates from this node; slow down")]
    RateLimited,
    /// Something named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// A policy failed validation.
    #[error("policy rejected: {0}")]
    PolicyInvalid(#[from] hearth_acl::PolicyError),
    /// No mesh address is left.
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
    /// A database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A certificate failure.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Signing in through the identity provider failed or was refused.
    #[error("sign-in failed: {0}")]
    SignIn(String),
    /// A service the coordinator relies on (the ACME CA) failed.
    #[error("{0}")]
    Upstream(String),
}

impl Error {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidKey => "invalid_key",
            Error::KeyExpired => "key_expired",
            Error::KeyUsed => "key_used",
            Error::AlreadyRegistered(_) => "already_registered",
            Error::BadRequest(_) | Error::BadName(_) => "bad_request",
            Error::Unauthenticated => "unauthenticated",
            Error::UnknownNode => "unknown_node",
            Error::NodePending { .. } => "node_pending",
            Error::NodeNotAdmitted { .. } => "node_not_admitted",
            Error::TooManyPending(_) => "too_many_pending",
            Error::RateLimited => "rate_limited",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PolicyInvalid(_) => "policy_invalid",
            Error::Exhausted(_) => "addresses_exhausted",
            Error::Db(DbError::Conflict(_)) => "conflict",
            Error::Db(_) | Error::Tls(_) => "internal",
            Error::SignIn(_) => "sign_in_failed",
            Error::Upstream(_) => "upstream_failed",
        }
    }
}

/// Result with the coordinator's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
