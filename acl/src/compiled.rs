//! A validated policy reduced to what the engine evaluates: rules over principals.
//!
//! Groups and host aliases are already expanded here; what remains are the
//! identities the engine matches nodes against.

use ipnet::IpNet;

use crate::filter::{PortRange, proto};

/// Who a rule names on either side, after groups and hosts are expanded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// `*`: every node, every approved route, any address.
    Any,
    /// Untagged devices of a user, by login.
    User(String),
    /// Devices carrying a tag.
    Tag(String),
    /// `autogroup:member`: every untagged device.
    Member,
    /// `autogroup:tagged`: every tagged device.
    Tagged,
    /// An address or prefix (literal, or from `hosts`).
    Prefix(IpNet),
    /// `autogroup:internet`: traffic leaving through exit nodes (destinations only).
    Internet,
    /// `autogroup:self`: the source user's own untagged devices (destinations only).
    SelfDevices,
}

/// One destination entry of a rule: a principal and the ports opened on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDestination {
    /// What is reached.
    pub principal: Principal,
    /// Port ranges opened; `[0-65535]` for `*`.
    pub ports: Vec<PortRange>,
}

/// One accept rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Sources.
    pub src: Vec<Principal>,
    /// Destinations.
    pub dst: Vec<RuleDestination>,
    /// IANA protocol numbers; never empty.
    pub protocols: Vec<u8>,
}

/// A policy as the engine evaluates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// Accept rules, in policy order.
    pub rules: Vec<Rule>,
}

impl CompiledPolicy {
    /// What a tailnet without a policy gets: everyone may reach everyone.
    pub fn allow_all() -> CompiledPolicy {
        CompiledPolicy {
            rules: vec![Rule {
                src: vec![Principal::Any],
                dst: vec![RuleDestination {
                    principal: Principal::Any,
                    ports: vec![PortRange::ALL],
                }],
                protocols: proto::DEFAULT.to_vec(),
            }],
        }
    }

    /// Every distinct prefix the rules mention, in a stable order; a node's
    /// class records which of them contain its addresses.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut prefixes: Vec<IpNet> = self
            .rules
            .iter()
            .flat_map(|rule| {
                rule.src
                    .iter()
                    .chain(rule.dst.iter().map(|destination| &destination.principal))
            })
            .filter_map(|principal| match principal {
                Principal::Prefix(prefix) => Some(*prefix),
                _ => None,
            })
            .collect();
        prefixes.sort();
        prefixes.dedup();
        prefixes
    }
}
