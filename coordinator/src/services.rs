//! Tailscale Services: a name (`svc:chat`) with addresses of its own
//! (100.100.0.x and its IPv6 twin, [`crate::ipam::service_address`]),
//! reached at `chat.<tailnet>` on whichever device hosts it now. A service
//! exists once the policy names it (a grant's destination, a key of
//! `autoApprovers.services`) or the admin creates it; its addresses stay
//! with it from host to host.
//!
//! Which device hosts it ([`placement`]): the one the admin chose
//! (`hearth-coordinator services move`), else the first admitted device
//! that advertises it (`tailscale serve --service=svc:NAME`) and that the
//! policy's `autoApprovers.services` allow. Pure: no IO, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hearth_acl::{HostedService, Policy};
use hearth_control::wire::NodeId;

use crate::db::services::ServiceRow;
use crate::netmap::NodeRecord;

/// A service as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `svc:name`.
    pub name: String,
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
    /// The device the admin chose to host it.
    pub host: Option<NodeId>,
}

impl Service {
    /// The service a stored row holds; `None` for a row that does not
    /// read as one (it is left out, and said so).
    pub fn from_row(row: &ServiceRow) -> Option<Service> {
        let service = Service {
            name: hearth_acl::alias::service_name(&row.name).ok()?,
            ipv4: row.ipv4.parse().ok()?,
            ipv6: row.ipv6.parse().ok()?,
            host: row.host.and_then(|host| u64::try_from(host).ok()),
        };
        Some(service)
    }

    /// Its addresses.
    pub fn addresses(&self) -> Vec<IpAddr> {
        vec![IpAddr::V4(self.ipv4), IpAddr::V6(self.ipv6)]
    }

    /// The label MagicDNS answers for it under the tailnet's domain
    /// (`chat` for `svc:chat`).
    pub fn label(&self) -> &str {
        hearth_acl::alias::service_label(&self.name)
    }
}

/// Why a device hosts a service, or that none does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// The device the admin chose.
    Chosen(NodeId),
    /// A device advertising it that the policy's `autoApprovers.services`
    /// allow.
    Approved(NodeId),
    /// No device: the one chosen is gone or not admitted, or no allowed
    /// device advertises it.
    Nobody,
}

impl Host {
    /// The hosting node.
    pub fn node(self) -> Option<NodeId> {
        match self {
            Host::Chosen(node) | Host::Approved(node) => Some(node),
            Host::Nobody => None,
        }
    }
}

/// Where `service` is hosted among `nodes` under `policy`.
pub fn host_of<'a>(
    service: &Service,
    nodes: impl IntoIterator<Item = &'a NodeRecord>,
    policy: Option<&Policy>,
) -> Host {
    let mut admitted = nodes.into_iter().filter(|node| node.is_admitted());
    if let Some(chosen) = service.host {
        return match admitted.any(|node| node.id == chosen) {
            true => Host::Chosen(chosen),
            false => Host::Nobody,
        };
    }
    let Some(policy) = policy else {
        return Host::Nobody;
    };
    admitted
        .filter(|node| node.service_ads.names.contains(&service.name))
        .filter(|node| policy.may_host(&service.name, &node.user, &node.tags))
        .map(|node| node.id)
        .min()
        .map_or(Host::Nobody, Host::Approved)
}

/// Every node hosting a service, with the services it hosts.
pub fn placement(
    services: &[Service],
    nodes: Vec<&NodeRecord>,
    policy: Option<&Policy>,
) -> BTreeMap<NodeId, Vec<HostedService>> {
    let mut hosting: BTreeMap<NodeId, Vec<HostedService>> = BTreeMap::new();
    for service in services {
        if let Some(node) = host_of(service, nodes.iter().copied(), policy).node() {
            hosting.entry(node).or_default().push(HostedService {
                name: service.name.clone(),
                addresses: service.addresses(),
            });
        }
    }
    hosting
}

/// A new service `name` beside `services`, at the next free address;
/// `None` when every service address is taken.
pub fn allocate<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    name: String,
) -> Option<Service> {
    let taken: BTreeSet<Ipv4Addr> = services.into_iter().map(|service| service.ipv4).collect();
    let (ipv4, ipv6) = crate::ipam::service_address(&taken)?;
    Some(Service {
        name,
        ipv4,
        ipv6,
        host: None,
    })
}

/// The services `policy` names that `services` lack, each with the next
/// free address: what the coordinator creates when a policy is set.
pub fn missing(services: &[Service], policy: Option<&Policy>) -> Vec<Service> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    let mut created: Vec<Service> = Vec::new();
    for name in policy.service_names() {
        if services.iter().any(|service| service.name == name) {
            continue;
        }
        let Some(service) = allocate(services.iter().chain(&created), name) else {
            break;
        };
        created.push(service);
    }
    created
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_control::wire::NodeState;

    fn service(name: &str, last: u8, host: Option<NodeId>) -> Service {
        let ipv4 = Ipv4Addr::new(100, 100, 0, last);
        Service {
            name: name.into(),
            ipv4,
            ipv6: crate::ipam::ipv6_for(ipv4),
            host,
        }
    }

    fn advertising(id: NodeId, tags: &[&str], names: &[&str]) -> NodeRecord {
        let mut node = crate::netmap::tests::record(id, "alice", NodeState::Approved);
        node.tags = tags.iter().map(|tag| tag.to_string()).collect();
        node.service_ads.names = names.iter().map(|name| name.to_string()).collect();
        node
    }

    const POLICY: &str = r#"{"tagOwners": {"tag:hub": ["alice@"]},
        "grants": [{"src": ["*"], "dst": ["svc:chat", "svc:assistant"], "ip": ["tcp:443"]}],
        "autoApprovers": {"services": {"svc:chat": ["tag:hub"], "svc:files": ["tag:hub"]}}}"#;

    #[test]
    fn the_admins_choice_hosts_a_service_else_an_allowed_device_advertising_it() {
        let policy = Policy::parse(POLICY).unwrap();
        let nodes = vec![
            advertising(1, &[], &["svc:chat"]),
            advertising(2, &["tag:hub"], &["svc:chat"]),
            advertising(3, &["tag:hub"], &["svc:chat"]),
        ];
        let chat = service("svc:chat", 1, None);
        // Not device 1: autoApprovers allow only tag:hub; the lowest id of those.
        assert_eq!(host_of(&chat, &nodes, Some(&policy)), Host::Approved(2));
        // The admin moved it: device 3, advertising or not.
        let moved = service("svc:chat", 1, Some(3));
        assert_eq!(host_of(&moved, &nodes, Some(&policy)), Host::Chosen(3));
        // A chosen device that is gone hosts nothing, and no other takes over.
        let gone = service("svc:chat", 1, Some(9));
        assert_eq!(host_of(&gone, &nodes, Some(&policy)), Host::Nobody);
        // Without a policy, only the admin places services.
        assert_eq!(host_of(&chat, &nodes, None), Host::Nobody);
        // A service no one advertises.
        let assistant = service("svc:assistant", 2, None);
        assert_eq!(host_of(&assistant, &nodes, Some(&policy)), Host::Nobody);
        let hosting = placement(&[chat, assistant], nodes.iter().collect(), Some(&policy));
        assert_eq!(
            hosting,
            BTreeMap::from([(
                2,
                vec![HostedService {
                    name: "svc:chat".into(),
                    addresses: vec![
                        "100.100.0.1".parse().unwrap(),
                        "fd7a:115c:a1e0::6464:1".parse().unwrap()
                    ],
                }]
            )])
        );
    }

    #[test]
    fn services_the_policy_names_get_the_next_free_addresses_once() {
        let policy = Policy::parse(POLICY).unwrap();
        let existing = vec![service("svc:chat", 1, Some(2)), service("svc:old", 3, None)];
        let created = missing(&existing, Some(&policy));
        let names: Vec<(&str, Ipv4Addr)> = created
            .iter()
            .map(|service| (service.name.as_str(), service.ipv4))
            .collect();
        assert_eq!(
            names,
            vec![
                ("svc:assistant", Ipv4Addr::new(100, 100, 0, 2)),
                ("svc:files", Ipv4Addr::new(100, 100, 0, 4)),
            ]
        );
        assert_eq!(
            created[0].ipv6,
            "fd7a:115c:a1e0::6464:2".parse::<Ipv6Addr>().unwrap()
        );
        assert!(missing(&existing, None).is_empty());
        // Node addresses never come from the services' block.
        let mut pool = crate::ipam::AddressPool::new();
        pool.mark_used(Ipv4Addr::new(100, 99, 255, 255));
        let (next, _) = pool.allocate(0).unwrap();
        assert_eq!(next, Ipv4Addr::new(100, 100, 1, 0));
    }
}
