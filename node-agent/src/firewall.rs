//! ACL enforcement at the destination, with nftables.
//!
//! The same ruleset protects the kernel and the userspace WireGuard data
//! plane, since both deliver decrypted packets through the mesh interface: in
//! a table of its own, traffic arriving on the mesh interface is accepted when
//! it belongs to an established flow (replies to allowed traffic) or when a
//! rule of the node's filter allows it, and dropped otherwise. Traffic on every
//! other interface is left alone.
//!
//! [`render`] is pure; [`Firewall`] feeds the text to `nft -f -`, which swaps
//! the table atomically.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Stdio;

use hearth_acl::filter::{PortRange, proto};
use hearth_acl::{Filter, PeerIdentity, Source, Target};
use hearth_control::wire::Peer;
use ipnet::IpNet;
use tokio::io::AsyncWriteExt;

/// The name of the table for a mesh interface.
pub fn table_name(interface: &str) -> String {
    let cleaned: String = interface
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("hearth_{cleaned}")
}

#[derive(Default)]
struct Sources {
    any: bool,
    v4: Vec<IpNet>,
    v6: Vec<IpNet>,
}

impl Sources {
    fn add(&mut self, prefix: IpNet) {
        match prefix {
            IpNet::V4(_) => self.v4.push(prefix),
            IpNet::V6(_) => self.v6.push(prefix),
        }
    }
}

fn resolve_sources<'a>(
    sources: &[Source],
    peers: impl Iterator<Item = &'a Peer> + Clone,
) -> Sources {
    let mut resolved = Sources::default();
    for source in sources {
        match source {
            Source::Any | Source::All => resolved.any = true,
            Source::Prefix(prefix) => resolved.add(*prefix),
            selector => {
                for peer in peers.clone() {
                    let identity = PeerIdentity {
                        user: &peer.user,
                        tags: &peer.tags,
                    };
                    if selector.matches_peer(&identity) {
                        for address in &peer.addresses {
                            resolved.add(IpNet::from(*address));
                        }
                    }
                }
            }
        }
    }
    resolved.v4.sort();
    resolved.v4.dedup();
    resolved.v6.sort();
    resolved.v6.dedup();
    resolved
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The protocol and port part of a rule line; `None` when the protocol cannot
/// occur in this family.
fn protocol_match(protocol: u8, ports: PortRange, ipv6: bool) -> Option<String> {
    let name = match protocol {
        proto::TCP => "tcp".to_owned(),
        proto::UDP => "udp".to_owned(),
        proto::SCTP => "sctp".to_owned(),
        proto::ICMP if ipv6 => return None,
        proto::ICMP => "icmp".to_owned(),
        proto::ICMPV6 if !ipv6 => return None,
        proto::ICMPV6 => "ipv6-icmp".to_owned(),
        other => other.to_string(),
    };
    let mut text = format!("meta l4proto {name}");
    if proto::has_ports(protocol) && ports != PortRange::ALL {
        if ports.first == ports.last {
            let _ = write!(text, " th dport {}", ports.first);
        } else {
            let _ = write!(text, " th dport {}-{}", ports.first, ports.last);
        }
    }
    Some(text)
}

/// The nftables ruleset enforcing `filter` on traffic arriving on `interface`,
/// for a node with addresses `own` whose peers are `peers`.
pub fn render<'a>(
    interface: &str,
    filter: &Filter,
    own: &[IpAddr],
    peers: impl Iterator<Item = &'a Peer> + Clone,
) -> String {
    let table = table_name(interface);
    let own4: Vec<IpAddr> = own.iter().copied().filter(IpAddr::is_ipv4).collect();
    let own6: Vec<IpAddr> = own.iter().copied().filter(IpAddr::is_ipv6).collect();
    let mut sets = String::new();
    let mut lines = Vec::new();
    for (index, rule) in filter.rules.iter().enumerate() {
        let sources = resolve_sources(&rule.src, peers.clone());
        for (ipv6, family, prefixes, set_type) in [
            (false, "ip", &sources.v4, "ipv4_addr"),
            (true, "ip6", &sources.v6, "ipv6_addr"),
        ] {
            let source_match = if sources.any {
                format!("meta nfproto {}", if ipv6 { "ipv6" } else { "ipv4" })
            } else if prefixes.is_empty() {
                continue;
            } else {
                let set = format!("r{index}_{}", if ipv6 { 6 } else { 4 });
                let _ = writeln!(
                    sets,
                    "  set {set} {{\n    type {set_type}; flags interval; auto-merge;\n    elements = {{ {} }}\n  }}",
                    join(prefixes)
                );
                format!("{family} saddr @{set}")
            };
            for destination in &rule.dst {
                let destination_match = match &destination.target {
                    Target::Any => String::new(),
                    Target::SelfAddresses => {
                        let addresses = if ipv6 { &own6 } else { &own4 };
                        if addresses.is_empty() {
                            continue;
                        }
                        format!(" {family} daddr {{ {} }}", join(addresses))
                    }
                    Target::Prefix(prefix) => {
                        if prefix.addr().is_ipv6() != ipv6 {
                            continue;
                        }
                        format!(" {family} daddr {prefix}")
                    }
                };
                for protocol in &rule.protocols {
                    let Some(protocol_match) = protocol_match(*protocol, destination.ports, ipv6)
                    else {
                        continue;
                    };
                    lines.push(format!(
                        "{source_match}{destination_match} {protocol_match} accept"
                    ));
                }
            }
        }
    }
    lines.sort();
    lines.dedup();
    let mut text =
        format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n{sets}");
    for chain in ["input", "forward"] {
        let _ = writeln!(
            text,
            "  chain {chain} {{\n    type filter hook {chain} priority filter; policy accept;\n    iifname != \"{interface}\" accept\n    ct state established,related accept\n    ct state invalid drop"
        );
        for line in &lines {
            let _ = writeln!(text, "    {line}");
        }
        let _ = writeln!(text, "    counter drop\n  }}");
    }
    text.push_str("}\n");
    text
}

/// Why the firewall could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` could not run.
    #[error("cannot run nft (install the nftables package): {0}")]
    Spawn(std::io::Error),
    /// `nft` refused the ruleset.
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// The mesh interface's nftables table.
#[derive(Debug)]
pub struct Firewall {
    interface: String,
    applied: Option<String>,
}

impl Firewall {
    /// A firewall for `interface` (nothing is installed until [`Firewall::apply`]).
    pub fn new(interface: &str) -> Firewall {
        Firewall {
            interface: interface.to_owned(),
            applied: None,
        }
    }

    /// Installs the ruleset for `filter`, unless it is what is installed already.
    pub async fn apply<'a>(
        &mut self,
        filter: &Filter,
        own: &[IpAddr],
        peers: impl Iterator<Item = &'a Peer> + Clone,
    ) -> Result<bool, FirewallError> {
        let text = render(&self.interface, filter, own, peers);
        if self.applied.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        nft(&text).await?;
        self.applied = Some(text);
        Ok(true)
    }

    /// Removes the table.
    pub async fn remove(&mut self) -> Result<(), FirewallError> {
        let table = table_name(&self.interface);
        nft(&format!("table inet {table}\ndelete table inet {table}\n")).await?;
        self.applied = None;
        Ok(())
    }
}

async fn nft(script: &str) -> Result<(), FirewallError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FirewallError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(FirewallError::Spawn)?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(FirewallError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(FirewallError::Refused(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_acl::{Destination, FilterRule};
    use hearth_control::wire::WireGuardKey;
    use std::collections::BTreeSet;

    fn peer(id: u8, user: &str, tags: &[&str]) -> Peer {
        Peer {
            id: id.into(),
            name: format!("n{id}"),
            user: user.into(),
            tags: tags
                .iter()
                .map(|tag| tag.to_string())
                .collect::<BTreeSet<_>>(),
            wireguard_key: WireGuardKey([id; 32]),
            addresses: vec![
                format!("100.64.0.{id}").parse().unwrap(),
                format!("fd7a:115c:a1e0::{id}").parse().unwrap(),
            ],
            allowed_ips: Vec::new(),
            endpoints: Vec::new(),
            user_id: 2,
            os: String::new(),
            disco_key: None,
            home_relay: None,
            capability_version: 0,
            key_expiry: None,
            services: Vec::new(),
            ssh_host_keys: Vec::new(),
            hosted: Vec::new(),
        }
    }

    fn own() -> Vec<IpAddr> {
        vec![
            "100.64.0.1".parse().unwrap(),
            "fd7a:115c:a1e0::1".parse().unwrap(),
        ]
    }

    #[test]
    fn user_sources_become_sets_of_that_users_peers() {
        let filter = Filter {
            rules: vec![FilterRule {
                src: vec![Source::User("alice".into())],
                dst: vec![Destination {
                    target: Target::SelfAddresses,
                    ports: PortRange::single(22),
                }],
                protocols: vec![proto::TCP],
            }],
            ..Filter::default()
        };
        let peers = [
            peer(2, "alice", &[]),
            peer(3, "bob", &[]),
            peer(4, "alice", &["tag:server"]),
        ];
        let text = render("hs0", &filter, &own(), peers.iter());
        assert!(text.contains("elements = { 100.64.0.2/32 }"), "{text}");
        assert!(
            text.contains("elements = { fd7a:115c:a1e0::2/128 }"),
            "{text}"
        );
        assert!(
            text.contains(
                "ip saddr @r0_4 ip daddr { 100.64.0.1 } meta l4proto tcp th dport 22 accept"
            ),
            "{text}"
        );
        assert!(text.contains(
            "ip6 saddr @r0_6 ip6 daddr { fd7a:115c:a1e0::1 } meta l4proto tcp th dport 22 accept"
        ));
        assert!(
            !text.contains("100.64.0.3") && !text.contains("100.64.0.4"),
            "bob and the tagged node are not alice"
        );
        assert!(text.contains("iifname != \"hs0\" accept"));
        assert!(text.contains("ct state established,related accept"));
        assert!(text.trim_end().ends_with("counter drop\n  }\n}"), "{text}");
    }

    #[test]
    fn any_source_and_default_protocols_cover_both_families() {
        let filter = Filter {
            rules: vec![FilterRule {
                src: vec![Source::Any],
                dst: vec![Destination {
                    target: Target::Any,
                    ports: PortRange::ALL,
                }],
                protocols: proto::DEFAULT.to_vec(),
            }],
            ..Filter::default()
        };
        let text = render("hs0", &filter, &own(), std::iter::empty());
        for line in [
            "meta nfproto ipv4 meta l4proto tcp accept",
            "meta nfproto ipv4 meta l4proto icmp accept",
            "meta nfproto ipv6 meta l4proto ipv6-icmp accept",
            "meta nfproto ipv6 meta l4proto udp accept",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(
            !text.contains("nfproto ipv6 meta l4proto icmp "),
            "ICMPv4 has no IPv6 line"
        );
    }

    #[test]
    fn a_rule_naming_nobody_yet_has_no_line_and_an_empty_filter_drops_all() {
        let filter = Filter {
            rules: vec![FilterRule {
                src: vec![Source::Tag("tag:absent".into())],
                dst: vec![Destination {
                    target: Target::SelfAddresses,
                    ports: PortRange::ALL,
                }],
                protocols: vec![proto::TCP],
            }],
            ..Filter::default()
        };
        let text = render("hs0", &filter, &own(), [peer(2, "alice", &[])].iter());
        assert!(!text.contains(" saddr "), "{text}");
        let empty = render("hs0", &Filter::default(), &own(), std::iter::empty());
        assert_eq!(empty.matches("counter drop").count(), 2);
    }

    #[test]
    fn prefix_targets_and_port_ranges_are_family_specific() {
        let filter = Filter {
            rules: vec![FilterRule {
                src: vec![Source::Prefix("10.0.0.0/8".parse().unwrap())],
                dst: vec![
                    Destination {
                        target: Target::Prefix("192.168.1.0/24".parse().unwrap()),
                        ports: PortRange {
                            first: 80,
                            last: 443,
                        },
                    },
                    Destination {
                        target: Target::Prefix("fd00::/64".parse().unwrap()),
                        ports: PortRange::ALL,
                    },
                ],
                protocols: vec![proto::UDP],
            }],
            ..Filter::default()
        };
        let text = render("hs0", &filter, &own(), std::iter::empty());
        assert!(
            text.contains(
                "ip saddr @r0_4 ip daddr 192.168.1.0/24 meta l4proto udp th dport 80-443 accept"
            ),
            "{text}"
        );
        assert!(
            !text.contains("fd00::/64"),
            "no IPv6 source can match: {text}"
        );
    }

    #[test]
    fn table_names_are_safe_identifiers() {
        assert_eq!(table_name("hs-0.a"), "hearth_hs_0_a");
    }
}
