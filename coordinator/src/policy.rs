//! The coordinator's side of policy: validating text against the tailnet,
//! and previewing what a policy does to a given topology.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_acl::{Engine, Filter, NodeIdentity, Policy, Topology};
use serde::{Deserialize, Serialize};

/// Parses `text` and runs its `tests` block against `topology`.
pub fn validate(text: &str, topology: &Topology) -> Result<Policy, String> {
    let policy = Policy::parse(text).map_err(|error| error.to_string())?;
    policy
        .check_tests(topology)
        .map_err(|error| error.to_string())?;
    Ok(policy)
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
    /// Its inbound filter.
    pub filter: Filter,
    /// Its peers, by name.
    pub peers: Vec<String>,
}

/// Each node's filter and peers under the policy in `text`.
pub fn preview(
    text: &str,
    topology: &PreviewTopology,
) -> Result<BTreeMap<String, NodePreview>, String> {
    let login_of = |name: &str| -> Result<String, String> {
        let user = topology
            .users
            .iter()
            .find(|user| user.name == name)
            .ok_or_else(|| format!("node owner `{name}` is not in users"))?;
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
                return Err(format!("node `{name}` has neither a user nor tags"));
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
    )?;
    let mut engine = Engine::new(Arc::new(policy.compiled));
    engine.load(nodes);
    Ok(names
        .iter()
        .map(|(id, name)| {
            let preview = NodePreview {
                filter: engine
                    .filter_of(*id)
                    .as_deref()
                    .cloned()
                    .unwrap_or_default(),
                peers: engine
                    .peers_of(*id)
                    .iter()
                    .map(|peer| names[peer].clone())
                    .collect(),
            };
            (name.clone(), preview)
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
        assert!(error.contains("bob@example.com cannot reach"), "{error}");
    }
}
