//! What the policy engine needs to know about a node.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// A node's identifier, as assigned by the coordinator.
pub type NodeId = u64;

/// The identity of a node as far as policy is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Stable node id.
    pub id: NodeId,
    /// The owning user's login. A tagged node keeps its owner for bookkeeping,
    /// but the policy sees only its tags.
    pub user: String,
    /// Tags; a node with tags is "tagged" and no longer acts as its user.
    pub tags: BTreeSet<String>,
    /// Mesh addresses (one IPv4, one IPv6).
    pub addresses: Vec<IpAddr>,
    /// Routes the node advertises (approved or not).
    pub advertised_routes: Vec<IpNet>,
    /// Routes the node advertises and an admin (or `autoApprovers`) approved,
    /// including `0.0.0.0/0` and `::/0` for an exit node.
    pub approved_routes: Vec<IpNet>,
    /// The services (`svc:name`) the node hosts now, with their addresses.
    pub services: Vec<HostedService>,
}

/// A service a node hosts: its name and its own addresses (one IPv4, one
/// IPv6), which go with the service from host to host.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct HostedService {
    /// `svc:name`.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

impl HostedService {
    /// Its DNS label ([`crate::alias::service_label`]).
    pub fn label(&self) -> &str {
        crate::alias::service_label(&self.name)
    }
}

impl NodeIdentity {
    /// Whether the node is tagged (and so not a member acting as its user).
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// Whether the node offers itself as an exit node.
    pub fn is_exit_node(&self) -> bool {
        self.approved_routes
            .iter()
            .any(|route| route.prefix_len() == 0)
    }
}
