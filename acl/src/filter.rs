//! The compiled packet filter a node enforces on inbound traffic.
//!
//! Sources are kept symbolic (a user, a tag, `autogroup:member`...) rather than
//! expanded to addresses: every node a source names is, by construction, one of
//! the receiving node's peers, so the receiver resolves them against its peer
//! list. A node joining therefore never changes anybody's filter; only policy
//! changes and changes to the receiver's own identity do.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Application capabilities: name -> the values granted, as written (a JSON
/// list; `null` for the companions Tailscale grants back, like drive-sharer).
pub type Capabilities = std::collections::BTreeMap<String, serde_json::Value>;

/// IANA protocol numbers used in filters.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// What a rule without `proto` allows: TCP, UDP and ICMP (both families).
    pub const DEFAULT: [u8; 4] = [TCP, UDP, ICMP, ICMPV6];
    /// Whether packets of this protocol carry ports that a rule can restrict.
    pub fn has_ports(protocol: u8) -> bool {
        matches!(protocol, TCP | UDP | SCTP)
    }
}

/// The whole inbound filter of one node: a packet is accepted when any rule
/// accepts it. It also carries the application capabilities its sources
/// have at this node (Tailscale's `CapGrant`), which filter no packets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Accept rules; there are no deny rules.
    pub rules: Vec<FilterRule>,
    /// Application capabilities granted to sources at this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilityRule>,
}

/// Application capabilities `src` has at addresses `dst` of the receiving node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityRule {
    /// Who holds them.
    pub src: Vec<Source>,
    /// At which of the node's addresses (or routes).
    pub dst: Vec<Target>,
    /// Capability name -> granted values.
    pub capabilities: Capabilities,
}

/// One accept rule: traffic from any of `src` to any of `dst` over any of `protocols`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRule {
    /// Who may send.
    pub src: Vec<Source>,
    /// Where to, and on which ports.
    pub dst: Vec<Destination>,
    /// IANA protocol numbers; never empty.
    pub protocols: Vec<u8>,
}

/// A symbolic traffic source, resolved by the receiver against its peers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Source {
    /// Any address at all (a policy's `*`).
    Any,
    /// Any address at all, inside the tailnet or not (`autogroup:danger-all`).
    All,
    /// Untagged devices of users whose login is in this domain.
    Domain(String),
    /// Untagged devices of this user (by login).
    User(String),
    /// Devices carrying this tag.
    Tag(String),
    /// Every untagged device (`autogroup:member`).
    Member,
    /// Every tagged device (`autogroup:tagged`).
    Tagged,
    /// Packets whose source address lies in this prefix.
    Prefix(IpNet),
}

/// A destination of a rule and the ports it opens.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Destination {
    /// Which destination addresses.
    pub target: Target,
    /// Inclusive port range; `0..=65535` for all ports.
    pub ports: PortRange,
}

/// The destination addresses a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// Any destination address the node receives traffic for.
    Any,
    /// The node's own mesh addresses.
    SelfAddresses,
    /// Addresses inside this prefix (subnet routes, hosts, exit traffic).
    Prefix(IpNet),
}

/// An inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port, inclusive.
    pub first: u16,
    /// Last port, inclusive.
    pub last: u16,
}

impl PortRange {
    /// Every port.
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// A single port.
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// What a receiver knows about a peer when resolving symbolic sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity<'a> {
    /// The owning user's login (ignored for tagged peers).
    pub user: &'a str,
    /// The peer's tags; empty for a user-owned device.
    pub tags: &'a BTreeSet<String>,
}

/// No tags: a user's own device.
pub(crate) static UNTAGGED: BTreeSet<String> = BTreeSet::new();

impl Source {
    /// Whether the source names a node owned by `user` (which counts only
    /// when it is untagged) carrying `tags`, by who it is. The one answer
    /// to "which nodes does a source name": the engine, the policy's
    /// tests, the agent's firewall and the Tailscale translation all ask
    /// it. Prefix sources name addresses instead
    /// ([`Source::matches_address`]).
    pub fn names(&self, user: &str, tags: &BTreeSet<String>) -> bool {
        match self {
            Source::Any | Source::All => true,
            Source::User(login) => tags.is_empty() && user == login,
            Source::Domain(domain) => tags.is_empty() && in_domain(user, domain),
            Source::Tag(tag) => tags.contains(tag),
            Source::Member => tags.is_empty(),
            Source::Tagged => !tags.is_empty(),
            Source::Prefix(_) => false,
        }
    }

    /// Whether the source names a node owned by `user` with `tags`, by who
    /// it is or by one of its `addresses`.
    pub fn names_node(&self, user: &str, tags: &BTreeSet<String>, addresses: &[IpAddr]) -> bool {
        self.names(user, tags)
            || addresses
                .iter()
                .any(|address| self.matches_address(*address))
    }

    /// [`Source::names`] for a peer.
    pub fn matches_peer(&self, peer: &PeerIdentity<'_>) -> bool {
        self.names(peer.user, peer.tags)
    }

    /// Whether a packet from `address` is named by the source on address alone.
    pub fn matches_address(&self, address: IpAddr) -> bool {
        match self {
            Source::Any | Source::All => true,
            Source::Prefix(prefix) => prefix.contains(&address),
            _ => false,
        }
    }
}

/// Whether `login` belongs to `domain` (`alice@example.com` to `example.com`).
pub fn in_domain(login: &str, domain: &str) -> bool {
    login
        .rsplit_once('@')
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(domain))
}

impl Target {
    /// Whether a packet to `address` is named by the target on a node whose
    /// own mesh addresses are `own`.
    pub fn matches(&self, address: IpAddr, own: &[IpAddr]) -> bool {
        match self {
            Target::Any => true,
            Target::SelfAddresses => own.contains(&address),
            Target::Prefix(prefix) => prefix.contains(&address),
        }
    }
}

/// One inbound packet's identifying fields, as a filter sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IANA protocol number.
    pub protocol: u8,
    /// Destination port; ignored for protocols without ports.
    pub port: u16,
}

impl Filter {
    /// The capabilities a peer (by identity and address) has at the node's
    /// address `at` (`own`: the node's mesh addresses), merged by name.
    pub fn capabilities_of(
        &self,
        sender: &PeerIdentity<'_>,
        from: IpAddr,
        at: IpAddr,
        own: &[IpAddr],
    ) -> Capabilities {
        let mut granted = Capabilities::new();
        for rule in &self.capabilities {
            let named = rule
                .src
                .iter()
                .any(|source| source.matches_address(from) || source.matches_peer(sender));
            if !named || !rule.dst.iter().any(|target| target.matches(at, own)) {
                continue;
            }
            for (name, values) in &rule.capabilities {
                let entry = granted
                    .entry(name.clone())
                    .or_insert(serde_json::Value::Null);
                // Values from several grants are merged into one list.
                if let serde_json::Value::Array(more) = values {
                    if !entry.is_array() {
                        *entry = serde_json::Value::Array(Vec::new());
                    }
                    if let serde_json::Value::Array(list) = entry {
                        for value in more {
                            if !list.contains(value) {
                                list.push(value.clone());
                            }
                        }
                    }
                }
            }
        }
        granted
    }

    /// Whether the filter accepts `packet`, given the sending peer's identity
    /// (None when the source address is not a peer's) and the node's own addresses.
    pub fn accepts(
        &self,
        packet: &Packet,
        sender: Option<&PeerIdentity<'_>>,
        own: &[IpAddr],
    ) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.accepts(packet, sender, own))
    }
}

impl FilterRule {
    /// Whether this one rule accepts `packet`; see [`Filter::accepts`].
    pub fn accepts(
        &self,
        packet: &Packet,
        sender: Option<&PeerIdentity<'_>>,
        own: &[IpAddr],
    ) -> bool {
        if !self.protocols.contains(&packet.protocol) {
            return false;
        }
        let source_named = self.src.iter().any(|source| {
            source.matches_address(packet.src)
                || sender.is_some_and(|peer| source.matches_peer(peer))
        });
        if !source_named {
            return false;
        }
        let ports_matter = proto::has_ports(packet.protocol);
        self.dst.iter().any(|destination| {
            destination.target.matches(packet.dst, own)
                && (!ports_matter || destination.ports.contains(packet.port))
        })
    }
}
