//! A validated policy reduced to what the engine evaluates: rules over principals.
//!
//! Groups and host aliases are already expanded here; what remains are the
//! identities the engine matches nodes against.

use std::collections::BTreeSet;

use ipnet::IpNet;

pub use crate::filter::Capabilities;
use crate::filter::{PortRange, Source, proto};
pub use crate::principals::Principal;

/// One destination entry of a rule: a principal and the ports opened on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDestination {
    /// What is reached.
    pub principal: Principal,
    /// Port ranges opened; `[0-65535]` for `*`.
    pub ports: Vec<PortRange>,
}

/// One accept rule: a network rule (packets of `protocols` to the
/// destinations' ports) or, with `capabilities`, an application capability
/// rule (no packets; the destinations learn what the sources may do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Sources.
    pub src: Vec<Source>,
    /// Destinations.
    pub dst: Vec<RuleDestination>,
    /// IANA protocol numbers; never empty for a network rule, empty for a
    /// capability rule.
    pub protocols: Vec<u8>,
    /// For a capability rule: what is granted.
    pub capabilities: Capabilities,
    /// Tags of the routers a destination's routes must go through (`via`);
    /// empty: any router of the route.
    pub via: Vec<String>,
    /// Whether it came from `grants`: there a source prefix names a subnet
    /// router only through its approved routes (in `acls`, as Tailscale
    /// has it, through advertised ones too).
    pub grant: bool,
}

impl Rule {
    /// A network rule.
    pub fn network(src: Vec<Source>, dst: Vec<RuleDestination>, protocols: Vec<u8>) -> Rule {
        Rule {
            src,
            dst,
            protocols,
            capabilities: Capabilities::new(),
            via: Vec::new(),
            grant: false,
        }
    }

    /// Whether this is an application capability rule.
    pub fn is_capability(&self) -> bool {
        !self.capabilities.is_empty()
    }
}

/// A policy as the engine evaluates it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// Accept rules, in policy order.
    pub rules: Vec<Rule>,
    /// `nodeAttrs`, in policy order.
    pub node_attrs: Vec<NodeAttrs>,
    /// `ssh`, in policy order.
    pub ssh: Vec<SshRule>,
}

/// One `ssh` entry, its names resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshRule {
    /// Who may connect.
    pub sources: Vec<Source>,
    /// Which nodes it lets them into.
    pub destinations: Vec<Principal>,
    /// The rule as the nodes it names get it.
    pub grant: NodeSshRule,
}

/// An `ssh` rule as a destination node gets it: who (resolved by the node
/// against its peers), as which local users, and how.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeSshRule {
    /// Who may connect.
    pub sources: Vec<Source>,
    /// Only the node's own user's untagged devices (`autogroup:self`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_user: bool,
    /// Local users: names, `root`, `autogroup:nonroot`, `*`.
    pub users: Vec<String>,
    /// `check`: how long a confirmation lasts (seconds); `None`: `accept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_period: Option<u64>,
    /// Environment variables a client may send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_env: Vec<String>,
}

/// One `nodeAttrs` entry: the nodes it names and what they get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAttrs {
    /// Who: a node named by any of these.
    pub targets: Vec<Source>,
    /// The attributes.
    pub attrs: BTreeSet<String>,
}

impl CompiledPolicy {
    /// The `ssh` rules that let users into a node owned by `user` with
    /// `tags` at `addresses`, in policy order.
    pub fn ssh_rules_for(
        &self,
        user: &str,
        tags: &BTreeSet<String>,
        addresses: &[std::net::IpAddr],
    ) -> Vec<NodeSshRule> {
        let mut rules = Vec::new();
        for rule in &self.ssh {
            let mut named = false;
            let mut same_user = false;
            for destination in &rule.destinations {
                match destination {
                    Principal::SelfDevices if tags.is_empty() => same_user = true,
                    Principal::Named(source) => {
                        named |= source.names_node(user, tags, addresses);
                    }
                    Principal::SelfDevices | Principal::Internet | Principal::Service(_) => {}
                }
            }
            if named || same_user {
                rules.push(NodeSshRule {
                    same_user: same_user && !named,
                    ..rule.grant.clone()
                });
            }
        }
        rules
    }

    /// The node attributes of a node owned by `user` with `tags` at
    /// `addresses`: every entry whose target names it.
    pub fn attrs_of(
        &self,
        user: &str,
        tags: &BTreeSet<String>,
        addresses: &[std::net::IpAddr],
    ) -> BTreeSet<String> {
        self.node_attrs
            .iter()
            .filter(|entry| {
                entry
                    .targets
                    .iter()
                    .any(|target| target.names_node(user, tags, addresses))
            })
            .flat_map(|entry| entry.attrs.iter().cloned())
            .collect()
    }

    /// What a tailnet without a policy gets: everyone may reach everyone.
    pub fn allow_all() -> CompiledPolicy {
        CompiledPolicy {
            rules: vec![Rule::network(
                vec![Source::Any],
                vec![RuleDestination {
                    principal: Principal::Named(Source::Any),
                    ports: vec![PortRange::ALL],
                }],
                proto::DEFAULT.to_vec(),
            )],
            node_attrs: Vec::new(),
            ssh: Vec::new(),
        }
    }

    /// Every distinct prefix the rules mention, in a stable order; a node's
    /// class records which of them contain its addresses.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut prefixes: Vec<IpNet> =
            self.rules
                .iter()
                .flat_map(|rule| {
                    rule.src
                        .iter()
                        .chain(rule.dst.iter().filter_map(
                            |destination| match &destination.principal {
                                Principal::Named(source) => Some(source),
                                _ => None,
                            },
                        ))
                })
                .filter_map(|source| match source {
                    Source::Prefix(prefix) => Some(*prefix),
                    _ => None,
                })
                .collect();
        prefixes.sort();
        prefixes.dedup();
        prefixes
    }
}
