//! MagicDNS on an agent's device: a resolver at 100.100.100.100 that
//! answers the mesh's names (`<node>.<domain>`) and the coordinator's extra
//! records from the map, sends names under split domains to the
//! household's own resolvers, and refuses the rest (the system asks it
//! only about the mesh's domains; see [`system_domains`]).
//!
//! [`decide`] is pure (bytes and the map in, a reply or where to forward
//! out); [`serve`] is the thin UDP shell.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hearth_control::wire::MeshDns;

use crate::mesh::Mesh;

use hearth_control::dns::{
    NOERROR, NXDOMAIN, REFUSED, Record, SERVFAIL, TYPE_A, TYPE_AAAA, TYPE_ANY, address_records,
    error_reply,
};
pub use hearth_control::dns::{Query, QueryError, parse_query};

/// How long answers from the map may be cached.
const TTL: u32 = 600;

/// A reply with `answers` and nothing in the authority section.
fn reply(query: &Query, rcode: u8, authoritative: bool, answers: &[Record]) -> Vec<u8> {
    hearth_control::dns::reply(query, rcode, authoritative, answers, &[])
}

/// Where the resolver listens, as on Tailscale devices.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 100);

/// How long a split domain's resolver has to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send this reply.
    Reply(Vec<u8>),
    /// Ask these resolvers (a split domain's), in order, and relay the answer.
    Forward(Vec<IpAddr>),
}

/// What to do with `packet`, received from `source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing: not from this device, or not a query.
    Drop,
    /// Send this reply.
    Reply(Vec<u8>),
    /// Ask these resolvers for `query` and relay the answer.
    Forward(Query, Vec<IpAddr>),
}

/// What the resolver does with `packet` from `source`, given `mesh`: only
/// programs on this device are answered (a peer sending to
/// 100.100.100.100 through its tunnel gets nothing, not even an error, and
/// is never forwarded into the household's DNS).
pub fn handle(packet: &[u8], source: IpAddr, mesh: &Mesh) -> Outcome {
    if !from_this_device(source, mesh) {
        return Outcome::Drop;
    }
    match parse_query(packet) {
        Ok(query) => match decide(&query, mesh) {
            Decision::Reply(reply) => Outcome::Reply(reply),
            Decision::Forward(resolvers) => Outcome::Forward(query, resolvers),
        },
        Err(QueryError::Refused { id, rcode, .. }) => Outcome::Reply(error_reply(id, rcode)),
        Err(_) => Outcome::Drop,
    }
}

/// Answers `query` from `mesh` (its nodes and its DNS settings).
fn decide(query: &Query, mesh: &Mesh) -> Decision {
    let Some(dns) = &mesh.dns else {
        return Decision::Reply(reply(query, REFUSED, false, &[]));
    };
    let name = query.name.as_str();
    if let Some(host) = name
        .strip_suffix(dns.domain.as_str())
        .and_then(|rest| rest.strip_suffix('.'))
    {
        let addresses = node_addresses(mesh, host);
        if addresses.is_empty() {
            return Decision::Reply(reply(query, NXDOMAIN, true, &[]));
        }
        return Decision::Reply(reply(query, NOERROR, true, &wanted(query, &addresses)));
    }
    let extra: Vec<IpAddr> = dns
        .extra_records
        .iter()
        .filter(|record| record.name == name)
        .map(|record| record.address)
        .collect();
    if !extra.is_empty() {
        return Decision::Reply(reply(query, NOERROR, true, &wanted(query, &extra)));
    }
    let split = dns
        .split
        .iter()
        .filter(|(domain, _)| in_domain(name, domain))
        .max_by_key(|(domain, _)| domain.len());
    match split {
        Some((_, resolvers)) => Decision::Forward(resolvers.clone()),
        None => Decision::Reply(reply(query, REFUSED, false, &[])),
    }
}

/// Whether a query from `source` comes from a program on this device: the
/// resolver's own address, loopback, or this node's mesh addresses (a
/// peer's packets carry its own address, which WireGuard has checked).
fn from_this_device(source: IpAddr, mesh: &Mesh) -> bool {
    source == IpAddr::V4(ADDRESS)
        || source.is_loopback()
        || mesh
            .node
            .as_ref()
            .is_some_and(|node| source == IpAddr::V4(node.ipv4) || source == IpAddr::V6(node.ipv6))
}

/// The domains the system should send to this resolver: the mesh's and
/// the split ones (routing only, `~`-prefixed for systemd-resolved), then
/// the search domains.
pub fn system_domains(dns: &MeshDns) -> Vec<String> {
    let mut domains = vec![format!("~{}", dns.domain)];
    domains.extend(dns.split.keys().map(|domain| format!("~{domain}")));
    domains.extend(dns.search_domains.iter().cloned());
    domains
}

fn in_domain(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The IPv4 address of the Tailscale Service called `host` (`chat` for
/// `svc:chat`) hosted by this node or a peer, else the mesh addresses of
/// the node named `host`. A service's name answers with the service alone:
/// a device that had the name (the coordinator renames such a device
/// away) is never answered before it, so members' apps reach the
/// household's chat and assistant, not a device called so. Only its IPv4
/// address is announced, as the coordinator announces it to official
/// clients: the hub's pod publishes its ports on IPv4 (the IPv6 address
/// is routed, for those who use it by number).
fn node_addresses(mesh: &Mesh, host: &str) -> Vec<IpAddr> {
    let hosted: Vec<IpAddr> = mesh
        .node
        .iter()
        .flat_map(|node| &node.hosted)
        .chain(mesh.peers.values().flat_map(|peer| &peer.hosted))
        .filter(|service| service.label().eq_ignore_ascii_case(host))
        .flat_map(|service| service.addresses.iter().copied())
        .filter(IpAddr::is_ipv4)
        .collect();
    if !hosted.is_empty() {
        return hosted;
    }
    let own = mesh
        .node
        .iter()
        .filter(|node| node.name.eq_ignore_ascii_case(host))
        .flat_map(|node| [IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)]);
    let peers = mesh
        .peers
        .values()
        .filter(|peer| peer.name.eq_ignore_ascii_case(host))
        .flat_map(|peer| peer.addresses.iter().copied());
    own.chain(peers).collect()
}

/// Records for the addresses of the family the query asks for.
fn wanted(query: &Query, addresses: &[IpAddr]) -> Vec<Record> {
    let addresses: Vec<IpAddr> = addresses
        .iter()
        .filter(|address| match query.kind {
            TYPE_A => address.is_ipv4(),
            TYPE_AAAA => address.is_ipv6(),
            TYPE_ANY => true,
            _ => false,
        })
        .copied()
        .collect();
    address_records(&addresses, TTL)
}

/// Answers queries on `socket` from the agent's map until the task is
/// dropped.
pub async fn serve(
    socket: tokio::net::UdpSocket,
    agent: Arc<crate::local_api::AgentState>,
) -> std::io::Result<()> {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; 1500];
    loop {
        let (size, from) = socket.recv_from(&mut buffer).await?;
        let outcome = handle(
            &buffer[..size],
            from.ip(),
            &hearth_runtime::read(&agent.mesh),
        );
        match outcome {
            Outcome::Drop => {}
            Outcome::Reply(packet) => {
                let _ = socket.send_to(&packet, from).await;
            }
            Outcome::Forward(query, resolvers) => {
                let socket = Arc::clone(&socket);
                let packet = buffer[..size].to_vec();
                tokio::spawn(async move {
                    let answer = match forward(&packet, query.id, &resolvers).await {
                        Some(answer) => answer,
                        None => reply(&query, SERVFAIL, false, &[]),
                    };
                    let _ = socket.send_to(&answer, from).await;
                });
            }
        }
    }
}

/// Asks each resolver in turn; the first answer with the query's id.
async fn forward(packet: &[u8], id: u16, resolvers: &[IpAddr]) -> Option<Vec<u8>> {
    for resolver in resolvers {
        let local: SocketAddr = match resolver {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(socket) = tokio::net::UdpSocket::bind(local).await else {
            continue;
        };
        if socket.send_to(packet, (*resolver, 53)).await.is_err() {
            continue;
        }
        let mut buffer = vec![0u8; 4096];
        let answer = tokio::time::timeout(FORWARD_TIMEOUT, async {
            loop {
                let (size, from) = socket.recv_from(&mut buffer).await.ok()?;
                if from.ip() == *resolver && size >= 2 && buffer[..2] == id.to_be_bytes() {
                    return Some(buffer[..size].to_vec());
                }
            }
        })
        .await;
        if let Ok(Some(answer)) = answer {
            return Some(answer);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_control::wire::DnsName;

    fn query(name: &str, kind: u16) -> Vec<u8> {
        hearth_control::dns::query(0x1234, name, kind)
    }

    /// Node 1 (`laptop`, 100.64.0.1 and fd7a:115c:a1e0::6440:1) with peer
    /// 2 (`phone`, 100.64.0.2), and DNS settings.
    fn mesh() -> Mesh {
        let node = crate::mesh::tests::node();
        let mut peer = crate::mesh::tests::peer(2, "phone");
        // The phone hosts svc:chat.
        peer.hosted = vec![hearth_acl::HostedService {
            name: "svc:chat".into(),
            addresses: vec![
                "100.100.0.1".parse().unwrap(),
                "fd7a:115c:a1e0::6464:1".parse().unwrap(),
            ],
        }];
        let mut mesh = Mesh::default();
        mesh.node = Some(node);
        mesh.dns = Some(MeshDns {
            domain: "hearth.internal".into(),
            search_domains: vec!["corp.example".into()],
            split: [(
                "corp.example".to_owned(),
                vec!["10.1.0.53".parse().unwrap()],
            )]
            .into(),
            extra_records: vec![DnsName {
                name: "nas.home.arpa".into(),
                address: "100.64.0.99".parse().unwrap(),
            }],
        });
        mesh.peers.insert(2, peer);
        mesh
    }

    /// The rcode and the answers' addresses of a reply.
    fn read_reply(packet: &[u8]) -> (u8, Vec<IpAddr>) {
        let read = hearth_control::dns::parse_reply(packet).unwrap();
        let addresses = read
            .answers
            .into_iter()
            .map(|(_, _, data)| match data {
                hearth_control::dns::Data::A(v4) => IpAddr::V4(v4),
                hearth_control::dns::Data::Aaaa(v6) => IpAddr::V6(v6),
                other => panic!("not an address: {other:?}"),
            })
            .collect();
        (read.rcode, addresses)
    }

    fn answer(name: &str, kind: u16) -> (u8, Vec<IpAddr>) {
        match decide(&parse_query(&query(name, kind)).unwrap(), &mesh()) {
            Decision::Reply(packet) => read_reply(&packet),
            Decision::Forward(to) => panic!("{name} forwarded to {to:?}"),
        }
    }

    #[test]
    fn a_service_is_answered_at_its_own_addresses_wherever_it_is_hosted() {
        assert_eq!(
            answer("chat.hearth.internal", TYPE_A),
            (NOERROR, vec!["100.100.0.1".parse().unwrap()])
        );
        // Announced on IPv4 only (hardening round five, finding 17: names
        // answered IPv6 first, and the hub's pod publishes on IPv4).
        assert_eq!(answer("Chat.hearth.internal", TYPE_AAAA), (NOERROR, vec![]));
        assert_eq!(answer("files.hearth.internal", TYPE_A), (NXDOMAIN, vec![]));
    }

    /// Attack (hardening round five, finding 1): a member's device called
    /// `chat` was answered first for `chat.<tailnet>`, the service second,
    /// and curl went to the device. A service's name answers with the
    /// service alone.
    #[test]
    fn a_device_called_as_a_service_is_never_answered_for_its_name() {
        let mut mesh = mesh();
        let mut impostor = crate::mesh::tests::peer(3, "chat");
        impostor.addresses = vec!["100.64.0.3".parse().unwrap()];
        mesh.peers.insert(3, impostor);
        for kind in [TYPE_A, TYPE_ANY] {
            let Decision::Reply(packet) = decide(
                &parse_query(&query("chat.hearth.internal", kind)).unwrap(),
                &mesh,
            ) else {
                panic!("forwarded");
            };
            assert_eq!(
                read_reply(&packet),
                (NOERROR, vec!["100.100.0.1".parse().unwrap()]),
                "{kind}"
            );
        }
    }

    #[test]
    fn nodes_and_extra_records_are_answered_from_the_map() {
        assert_eq!(
            answer("phone.hearth.internal", TYPE_A),
            (NOERROR, vec!["100.64.0.2".parse().unwrap()])
        );
        assert_eq!(
            answer("Laptop.Hearth.Internal", TYPE_AAAA),
            (NOERROR, vec!["fd7a:115c:a1e0::6440:1".parse().unwrap()]),
            "names are case-insensitive, and the device is one of them"
        );
        assert_eq!(answer("tv.hearth.internal", TYPE_A), (NXDOMAIN, vec![]));
        assert_eq!(
            answer("phone.hearth.internal", 16),
            (NOERROR, vec![]),
            "a name with no TXT record"
        );
        assert_eq!(
            answer("nas.home.arpa", TYPE_A),
            (NOERROR, vec!["100.64.0.99".parse().unwrap()])
        );
        assert_eq!(answer("example.com", TYPE_A), (REFUSED, vec![]));
    }

    #[test]
    fn only_programs_on_this_device_are_answered() {
        let mesh = mesh();
        for local in [
            "100.100.100.100",
            "127.0.0.1",
            "100.64.0.1",
            "fd7a:115c:a1e0::6440:1",
        ] {
            assert!(from_this_device(local.parse().unwrap(), &mesh), "{local}");
        }
        for peer in ["100.64.0.2", "10.77.0.5"] {
            assert!(!from_this_device(peer.parse().unwrap(), &mesh), "{peer}");
        }
        let packet = query("laptop.hearth.internal", TYPE_A);
        assert!(matches!(
            handle(&packet, "127.0.0.1".parse().unwrap(), &mesh),
            Outcome::Reply(_)
        ));
        assert_eq!(
            handle(&packet, "100.64.0.2".parse().unwrap(), &mesh),
            Outcome::Drop,
            "a peer gets nothing"
        );
        let mut two_questions = packet.clone();
        two_questions[5] = 2;
        assert!(matches!(
            handle(&two_questions, "127.0.0.1".parse().unwrap(), &mesh),
            Outcome::Reply(_)
        ));
        assert_eq!(
            handle(&two_questions, "100.64.0.2".parse().unwrap(), &mesh),
            Outcome::Drop,
            "not even an error"
        );
    }

    #[test]
    fn split_domains_go_to_their_resolvers() {
        let decision = decide(
            &parse_query(&query("printer.corp.example", TYPE_A)).unwrap(),
            &mesh(),
        );
        assert_eq!(
            decision,
            Decision::Forward(vec!["10.1.0.53".parse().unwrap()])
        );
        assert_eq!(
            answer("xcorp.example", TYPE_A).0,
            REFUSED,
            "not a subdomain"
        );
        assert_eq!(
            system_domains(mesh().dns.as_ref().unwrap()),
            ["~hearth.internal", "~corp.example", "corp.example"]
        );
    }
}
