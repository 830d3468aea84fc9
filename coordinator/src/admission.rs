//! Who is in the network: an admin's decisions about nodes (approve,
//! reject, expire, rename, tag, delete), and which nodes may open their
//! map stream or report. The decisions are pure ([`NodeAction::outcome`],
//! [`check_admitted`]); the shell locks, writes and delivers.

use std::collections::BTreeSet;

use hearth_control::compression::Encoding;
use hearth_control::wire::{NodeId, NodeState};
use serde::{Deserialize, Serialize};

use crate::coordinator::{Coordinator, Credential, State, Turn};
use crate::error::{Error, Result};
use crate::names;
use crate::netmap::NodeRecord;
use crate::presence::Presence;
use crate::streams::Subscription;
use hearth_runtime::clock::unix_seconds as unix_now;

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

impl Coordinator {
    /// The node presenting `credential`.
    pub async fn identify(&self, credential: Option<Credential>) -> Result<NodeRecord> {
        self.state().registry.presenting(credential).cloned()
    }

    /// Whether `key` is the WireGuard (node) key of an admitted node: who
    /// may log in to the relay.
    pub async fn admits_node_key(&self, key: &hearth_control::wire::WireGuardKey) -> bool {
        let state = self.state();
        state
            .registry
            .holder_of(key)
            .and_then(|id| state.registry.node(id))
            .is_some_and(NodeRecord::is_admitted)
    }

    /// Opens the map stream of the node presenting `credential`, its full
    /// map in `encoding`; refused when it opens them too often.
    pub async fn open_map(
        &self,
        credential: Option<Credential>,
        encoding: Encoding,
    ) -> Result<Subscription> {
        let state = self.state();
        let record = state.registry.presenting(credential)?;
        check_admitted(record)?;
        if self.map_opens.check_key(&record.id).is_err() {
            return Err(Error::RateLimited);
        }
        let line = state
            .registry
            .network()
            .full_map_line(record.id, encoding)
            .ok_or(Error::UnknownNode)?;
        Ok(self.streams.subscribe_map(record.id, line))
    }

    /// Opens the approval stream of the node presenting `credential`.
    pub async fn open_approval(
        &self,
        credential: Option<Credential>,
    ) -> Result<(NodeState, Subscription)> {
        let state = self.state();
        let record = state.registry.presenting(credential)?;
        Ok((
            record.state,
            self.streams.subscribe_approval(record.id, record.state),
        ))
    }

    /// The admitted node presenting `credential`, for a report it sends;
    /// refused when it is not approved or reports too often.
    pub(crate) fn reporting_node(
        &self,
        state: &State,
        credential: Option<Credential>,
    ) -> Result<NodeRecord> {
        let record = state.registry.presenting(credential)?;
        check_admitted(record)?;
        self.reports
            .check_key(&record.id)
            .map_err(|_| Error::RateLimited)?;
        Ok(record.clone())
    }

    /// Every node.
    pub async fn list_nodes(&self) -> Vec<NodeView> {
        let state = self.state();
        let mut views: Vec<NodeView> = state
            .registry
            .network()
            .nodes()
            .map(|record| self.view(record))
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }

    pub(crate) fn view(&self, record: &NodeRecord) -> NodeView {
        let presence = self.streams.presence(record.id);
        let online = presence == Presence::Online;
        let last_seen = crate::presence::last_seen(record, presence, unix_now());
        NodeView {
            id: record.id,
            name: record.name.clone(),
            hostname: record.hostname.clone(),
            user: record.user.clone(),
            tags: record.tags.iter().cloned().collect(),
            state: record.state,
            ipv4: record.ipv4.to_string(),
            ipv6: record.ipv6.to_string(),
            os: record.os.clone(),
            client: if !record.client.is_empty() {
                record.client.clone()
            } else if record.static_device {
                "wireguard".into()
            } else {
                "hearth-agent".into()
            },
            ephemeral: record.ephemeral,
            static_device: record.static_device,
            online,
            last_seen,
            endpoints: record.endpoints.iter().map(ToString::to_string).collect(),
            wireguard_key: record.wireguard_key.to_string(),
            advertised_routes: record
                .advertised_routes
                .iter()
                .map(ToString::to_string)
                .collect(),
            approved_routes: record
                .approved_routes
                .iter()
                .map(ToString::to_string)
                .collect(),
            created_at: record.created_at,
            key_expiry: record.key_expiry,
        }
    }

    /// Carries out an admin's decision about node `id`.
    pub async fn act_on_node(&self, id: NodeId, action: NodeAction) -> Result<NodeView> {
        let now = hearth_runtime::clock::unix_seconds();
        let view = self
            .change_node(id, |_, record| {
                record.state = action.outcome();
                // Approving a node whose keys expired gives them a new lifetime.
                if action == NodeAction::Approve && record.key_expired(now) {
                    record.renew_keys(now);
                }
                Ok(())
            })
            .await?;
        if action == NodeAction::Approve {
            self.apply_held_report(id).await?;
        }
        Ok(view)
    }

    /// Renames a node.
    pub async fn rename_node(&self, id: NodeId, name: &str) -> Result<NodeView> {
        names::check_node_name(name)?;
        // Checked and written in one writer's turn: two renames cannot both take a name.
        self.change_node(id, |state, record| {
            if record.name != name && state.registry.name_taken(name) {
                return Err(Error::Conflict(format!(
                    "a node is already called `{name}`"
                )));
            }
            record.name = name.to_owned();
            Ok(())
        })
        .await
    }

    /// Replaces a node's tags (an empty list makes it its user's device again).
    pub async fn tag_node(&self, id: NodeId, tags: &[String]) -> Result<NodeView> {
        for tag in tags {
            names::check_tag(tag)?;
        }
        let tags: BTreeSet<String> = tags.iter().cloned().collect();
        self.change_node(id, |_, record| {
            record.tags = tags;
            Ok(())
        })
        .await
    }

    /// Deletes a node: it disappears from every map and its certificate stops working.
    pub async fn delete_node(&self, id: NodeId) -> Result<()> {
        let turn = self.turn().await;
        let record = self
            .state()
            .registry
            .node(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {id}")))?;
        self.remove_node(&turn, id, unix_now()).await?;
        tracing::info!(node = id, name = %record.name, "node deleted");
        Ok(())
    }

    /// Deletes node `id` at `now` in a writer's turn: from the database,
    /// then from every map and index.
    pub(crate) async fn remove_node(&self, turn: &Turn<'_>, id: NodeId, now: i64) -> Result<()> {
        self.db.delete_node(id, now).await?;
        self.apply_removal(turn, id, now);
        Ok(())
    }
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
