//! Who is in the network: an admin's decisions about nodes (approve,
//! reject, expire, rename, tag, delete), and which nodes may open their
//! map stream or report. The decisions are pure ([`NodeAction::outcome`],
//! [`check_admitted`]); the shell locks, writes and delivers.

use hearth_control::wire::{NodeId, NodeState};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::netmap::NodeRecord;

/// What an admin decides about a node (`nodes approve|reject|expire`): the
/// admin API's path segment and the CLI's verb, one enum for both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    /// Let it in (from pending, rejected or expired).
    Approve,
    /// Keep it out: it keeps its record but gets no peers.
    Reject,
    /// Take it out of every map until approved again.
    Expire,
}

impl NodeAction {
    /// The admin API's path segment and the CLI's verb.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAction::Approve => "approve",
            NodeAction::Reject => "reject",
            NodeAction::Expire => "expire",
        }
    }

    /// The action named `text`.
    pub fn parse(text: &str) -> Option<NodeAction> {
        [NodeAction::Approve, NodeAction::Reject, NodeAction::Expire]
            .into_iter()
            .find(|action| action.as_str() == text)
    }

    /// The state a node is in after the action (whatever it was in before).
    pub fn outcome(self) -> NodeState {
        match self {
            NodeAction::Approve => NodeState::Approved,
            NodeAction::Reject => NodeState::Rejected,
            NodeAction::Expire => NodeState::Expired,
        }
    }
}

/// Whether `record` may stream its map or report: only approved nodes; a
/// pending one is told which command lets it in.
pub fn check_admitted(record: &NodeRecord) -> Result<()> {
    match record.state {
        NodeState::Approved => Ok(()),
        NodeState::Pending => Err(Error::NodePending {
            id: record.id,
            name: record.name.clone(),
        }),
        other => Err(Error::NodeNotAdmitted {
            id: record.id,
            state: other.as_str(),
        }),
    }
}

/// A node as `nodes list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeView {
    /// Id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Hostname it reported.
    pub hostname: String,
    /// Owning user.
    pub user: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Admission state.
    pub state: NodeState,
    /// Mesh IPv4.
    pub ipv4: String,
    /// Mesh IPv6.
    pub ipv6: String,
    /// Operating system.
    pub os: String,
    /// The client software: `hearth-agent`, `wireguard` (a static device) or
    /// `tailscale <version>` (the official Tailscale client).
    #[serde(default)]
    pub client: String,
    /// Ephemeral.
    pub ephemeral: bool,
    /// A static WireGuard device without an agent.
    pub static_device: bool,
    /// Connected right now.
    pub online: bool,
    /// Last time connected, Unix seconds.
    pub last_seen: Option<i64>,
    /// Endpoints.
    pub endpoints: Vec<String>,
    /// WireGuard public key.
    pub wireguard_key: String,
    /// Routes it advertises.
    pub advertised_routes: Vec<String>,
    /// Routes approved for it.
    pub approved_routes: Vec<String>,
    /// Registration time.
    pub created_at: i64,
    /// When its keys expire, Unix seconds (none: never).
    #[serde(default)]
    pub key_expiry: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_the_same_at_both_ends() {
        for action in [NodeAction::Approve, NodeAction::Reject, NodeAction::Expire] {
            assert_eq!(NodeAction::parse(action.as_str()), Some(action));
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action.as_str())
            );
        }
        assert_eq!(NodeAction::parse("delete"), None);
        assert_eq!(NodeAction::Expire.outcome(), NodeState::Expired);
    }
}
