//! The coordinator's side of policy: validating text against the tailnet,
//! storing it and delivering what changes, and previewing what a policy
//! does to a given topology.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_acl::{
    CompiledPolicy, Engine, Filter, NodeIdentity, Policy, PolicyError, ProviderGroups, Topology,
};
use serde::{Deserialize, Serialize};

/// Parses `text`, its groups filled from `provider_groups` too, and runs
/// its `tests` block against `topology`.
pub fn validate(
    text: &str,
    topology: &Topology,
    provider_groups: &ProviderGroups,
) -> Result<Policy, PolicyError> {
    let policy = Policy::parse_with_provider_groups(text, provider_groups)?;
    policy.check_tests(topology)?;
    Ok(policy)
}

/// The policy stored `text` means, its groups filled from
/// `provider_groups` too: its `tests` were checked when it was stored.
pub(crate) fn stored_policy(
    text: &str,
    provider_groups: &ProviderGroups,
) -> Result<Policy, PolicyError> {
    Policy::parse_with_provider_groups(text, provider_groups)
}

/// The policy in force while the stored one does not parse: the empty
/// policy, which allows nothing.
pub(crate) fn deny_all() -> Policy {
    Policy::parse(r#"{"acls": []}"#).expect("the empty policy parses")
}

/// Group name -> users, as the identity provider said at each user's last
/// sign-in (`identities` as stored, `users` to name them).
pub(crate) fn provider_groups(
    users: &[crate::db::users::UserRow],
    identities: &[crate::db::users::ProviderIdentityRow],
) -> ProviderGroups {
    let mut groups = ProviderGroups::new();
    for identity in identities {
        let Some(user) = users.iter().find(|user| user.id == identity.user_id) else {
            continue;
        };
        let names: Vec<String> = serde_json::from_str(&identity.groups).unwrap_or_default();
        for name in names {
            groups.entry(name).or_default().insert(user.name.clone());
        }
    }
    groups
}

/// The rules the engine evaluates: the policy's, or allow-all without one.
pub(crate) fn effective_rules(policy: Option<&Policy>) -> CompiledPolicy {
    policy.map_or_else(CompiledPolicy::allow_all, |policy| policy.compiled.clone())
}

/// A topology as the conformance captures write it: users, and nodes by name.
#[derive(Clone, Debug, Deserialize)]
pub struct PreviewTopology {
    /// Users: `name`, and `email` when the policy names users by email.
    pub users: Vec<PreviewUser>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, PreviewNode>,
}

/// A user of a preview topology.
#[derive(Clone, Debug, Deserialize)]
pub struct PreviewUser {
    /// User name.
    pub name: String,
    /// Login the policy uses; the name when absent.
    #[serde(default)]
    pub email: Option<String>,
}

/// A node of a preview topology.
#[derive(Clone, Debug, Deserialize)]
pub struct PreviewNode {
    /// Owning user's name (absent for tagged nodes).
    #[serde(default)]
    pub user: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mesh IPv4.
    pub ipv4: std::net::Ipv4Addr,
    /// Mesh IPv6.
    pub ipv6: std::net::Ipv6Addr,
    /// Advertised routes.
    #[serde(default)]
    pub routable_ips: Vec<ipnet::IpNet>,
    /// Approved routes.
    #[serde(default)]
    pub approved_routes: Vec<ipnet::IpNet>,
}

/// What one node would get under a previewed policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodePreview {
    /// Its inbound filter, symbolic (as `hearth-agent` nodes get it).
    pub filter: Filter,
    /// The same filter as Tailscale writes it, sources resolved to
    /// addresses (`SrcIPs`, `DstPorts`, `IPProto`, `CapGrant`): what
    /// `tailscale debug netmap` shows on an official client.
    pub tailscale_filter: Vec<hearth_control::tailcfg::FilterRule>,
    /// Its peers, by name.
    pub peers: Vec<String>,
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// A node names a user the topology does not list.
    #[error("node owner `{0}` is not in users")]
    UnknownOwner(String),
    /// A node has neither a user nor tags.
    #[error("node `{0}` has neither a user nor tags")]
    Ownerless(String),
    /// The policy is invalid (or its `tests` fail) for this topology.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Each node's filter and peers under the policy in `text`.
pub fn preview(
    text: &str,
    topology: &PreviewTopology,
) -> Result<BTreeMap<String, NodePreview>, PreviewError> {
    let login_of = |name: &str| -> Result<String, PreviewError> {
        let user = topology
            .users
            .iter()
            .find(|user| user.name == name)
            .ok_or_else(|| PreviewError::UnknownOwner(name.to_owned()))?;
        Ok(user.email.clone().unwrap_or_else(|| user.name.clone()))
    };
    let mut names = BTreeMap::new();
    let mut nodes = Vec::new();
    for (index, (name, node)) in topology.nodes.iter().enumerate() {
        let id = index as u64 + 1;
        names.insert(id, name.clone());
        let user = match &node.user {
            Some(user) => login_of(user)?,
            None if node.tags.is_empty() => {
                return Err(PreviewError::Ownerless(name.clone()));
            }
            None => String::new(),
        };
        nodes.push(NodeIdentity {
            id,
            user,
            tags: node.tags.iter().cloned().collect(),
            addresses: vec![node.ipv4.into(), node.ipv6.into()],
            advertised_routes: node.routable_ips.clone(),
            approved_routes: node.approved_routes.clone(),
            services: Vec::new(),
        });
    }
    let users = topology
        .users
        .iter()
        .map(|user| user.email.clone().unwrap_or_else(|| user.name.clone()))
        .collect();
    let policy = validate(
        text,
        &Topology {
            users,
            nodes: nodes.clone(),
        },
        &ProviderGroups::new(),
    )?;
    let mut engine = Engine::new(Arc::new(policy.compiled));
    engine.load(nodes.clone());
    let members: Vec<hearth_acl::tailscale::Member<'_>> = nodes
        .iter()
        .map(|node| hearth_acl::tailscale::Member {
            user: &node.user,
            tags: &node.tags,
            addresses: &node.addresses,
            routes: &node.approved_routes,
        })
        .collect();
    Ok(nodes
        .iter()
        .map(|node| {
            let filter = engine
                .filter_of(node.id)
                .as_deref()
                .cloned()
                .unwrap_or_default();
            let peer_ids = engine.peers_of(node.id);
            let preview = NodePreview {
                tailscale_filter: hearth_acl::tailscale::packet_filter(
                    &filter,
                    &node.addresses,
                    &members,
                ),
                filter,
                peers: peer_ids.iter().map(|peer| names[peer].clone()).collect(),
            };
            (names[&node.id].clone(), preview)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> PreviewTopology {
        serde_json::from_str(
            r#"{"users": [{"name": "alice"}, {"name": "bob", "email": "bob@example.com"}],
                "nodes": {
                  "laptop": {"user": "alice", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
                  "tv": {"user": "bob", "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
                  "nas": {"tags": ["tag:nas"], "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn preview_shows_each_nodes_filter_and_peers() {
        let policy = r#"{"tagOwners": {"tag:nas": ["alice@"]},
                         "acls": [{"action": "accept", "src": ["alice@"], "dst": ["tag:nas:445"]}]}"#;
        let preview = preview(policy, &topology()).unwrap();
        assert_eq!(preview["laptop"].peers, ["nas"]);
        assert_eq!(preview["nas"].peers, ["laptop"]);
        assert!(preview["tv"].peers.is_empty());
        assert_eq!(preview["nas"].filter.rules.len(), 1);
        assert!(preview["laptop"].filter.rules.is_empty());
    }

    #[test]
    fn preview_runs_the_tests_block_and_names_users_by_email() {
        let failing =
            r#"{"acls": [], "tests": [{"src": "bob@example.com", "accept": ["100.64.0.1:22"]}]}"#;
        let error = preview(failing, &topology()).unwrap_err();
        assert!(
            error.to_string().contains("bob@example.com cannot reach"),
            "{error}"
        );
    }
}
