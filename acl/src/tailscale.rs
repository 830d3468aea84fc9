//! A node's filter in Tailscale's own form (`PacketFilter`), as an official
//! client enforces it: each symbolic source becomes the addresses of the
//! nodes it names. The coordinator sends this to Tailscale clients, and the
//! conformance test checks this very translation against the hosted
//! Tailscale service's answers, so the two cannot drift.
//!
//! Which nodes a source names is [`Source::names`]'s, the one identity
//! matcher the engine, the policy's tests and the agent's firewall use too.
//! A `*` source is written as Tailscale writes it: the tailnet's ranges
//! (IPv4 100.64.0.0/10 without 100.115.92.0/23, IPv6 fd7a:115c:a1e0::/48)
//! and every approved route but exit routes; `autogroup:danger-all` as `*`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::filter::{Filter, Source, Target};

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// Destination addresses and ports of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetPortRange {
    /// An address, a prefix or `*`.
    #[serde(rename = "IP")]
    pub ip: String,
    /// The ports.
    pub ports: PortRange,
}

/// One accept rule of a Tailscale packet filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterRule {
    /// Source addresses or prefixes, or `*`.
    #[serde(rename = "SrcIPs")]
    pub src_ips: Vec<String>,
    /// Destinations (empty for a capability grant).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dst_ports: Vec<NetPortRange>,
    /// IANA protocol numbers; empty means TCP, UDP and ICMP.
    #[serde(rename = "IPProto", skip_serializing_if = "Vec::is_empty", default)]
    pub ip_proto: Vec<u8>,
    /// Application capabilities the sources have at the destinations.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cap_grant: Vec<CapGrant>,
}

/// Application capabilities at some destinations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapGrant {
    /// The destination prefixes.
    pub dsts: Vec<String>,
    /// Capability name -> values (a JSON list, or null).
    pub cap_map: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A node as the translation sees it: who it is, and its addresses and
/// approved routes.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// Its owner's login (ignored when tagged).
    pub user: &'a str,
    /// Its tags; empty for a user's own device.
    pub tags: &'a BTreeSet<String>,
    /// Its mesh addresses.
    pub addresses: &'a [IpAddr],
    /// Its approved routes (exit routes are left out of `*`).
    pub routes: &'a [IpNet],
}

/// What Tailscale writes for a `*` source: the tailnet's address ranges.
const TAILNET: [&str; 3] = [
    "100.64.0.0-100.115.91.255",
    "100.115.94.0-100.127.255.255",
    "fd7a:115c:a1e0::/48",
];

/// The addresses `source` names among `nodes`, as Tailscale writes them.
pub fn source_addresses(source: &Source, nodes: &[Member<'_>]) -> BTreeSet<String> {
    match source {
        Source::All => BTreeSet::from(["*".to_owned()]),
        Source::Any => TAILNET
            .iter()
            .map(|range| (*range).to_owned())
            .chain(nodes.iter().flat_map(|node| {
                node.routes
                    .iter()
                    .filter(|route| route.prefix_len() != 0)
                    .map(ToString::to_string)
            }))
            .collect(),
        Source::Prefix(prefix) => BTreeSet::from([prefix.to_string()]),
        named => nodes
            .iter()
            .filter(|node| named.names(node.user, node.tags))
            .flat_map(|node| node.addresses.iter().map(ToString::to_string))
            .collect(),
    }
}

fn target_texts(target: &Target, own: &[IpAddr]) -> Vec<String> {
    match target {
        Target::Any => vec!["*".to_owned()],
        Target::SelfAddresses => own.iter().map(ToString::to_string).collect(),
        Target::Prefix(prefix) => vec![prefix.to_string()],
    }
}

/// `filter` of a node whose mesh addresses are `own`, in Tailscale's form,
/// its sources resolved among `nodes` (the node itself and its peers). A
/// rule whose sources name no node is left out: it could match nothing.
pub fn packet_filter(filter: &Filter, own: &[IpAddr], nodes: &[Member<'_>]) -> Vec<FilterRule> {
    let sources_of = |sources: &[Source]| -> Vec<String> {
        let mut all = BTreeSet::new();
        for source in sources {
            all.extend(source_addresses(source, nodes));
        }
        all.into_iter().collect()
    };
    let mut rules = Vec::new();
    for rule in &filter.rules {
        let src_ips = sources_of(&rule.src);
        if src_ips.is_empty() {
            continue;
        }
        let dst_ports = rule
            .dst
            .iter()
            .flat_map(|destination| {
                let ports = PortRange {
                    first: destination.ports.first,
                    last: destination.ports.last,
                };
                target_texts(&destination.target, own)
                    .into_iter()
                    .map(move |ip| NetPortRange { ip, ports })
            })
            .collect();
        rules.push(FilterRule {
            src_ips,
            dst_ports,
            ip_proto: rule.protocols.clone(),
            cap_grant: Vec::new(),
        });
    }
    for rule in &filter.capabilities {
        let dsts: Vec<String> = rule
            .dst
            .iter()
            .flat_map(|target| match target {
                // Capabilities name host prefixes.
                Target::SelfAddresses => own
                    .iter()
                    .map(|address| IpNet::from(*address).to_string())
                    .collect(),
                other => target_texts(other, own),
            })
            .collect();
        rules.push(FilterRule {
            src_ips: sources_of(&rule.src),
            dst_ports: Vec::new(),
            ip_proto: Vec::new(),
            cap_grant: vec![CapGrant {
                dsts,
                cap_map: rule.capabilities.clone(),
            }],
        });
    }
    rules
}
