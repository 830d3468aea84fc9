//! Nodes running the official Tailscale client: registration with a
//! pre-auth key under the same rules as `hearth-agent` nodes, and what their
//! map requests report (keys, endpoints, routes). A Tailscale node is known
//! by the machine key of its ts2021 session ([`Credential::Machine`]); the
//! decisions are pure ([`endpoints_from`], [`client_name`], [`response_for`]).

use std::net::SocketAddr;

use hearth_acl::Policy;
use hearth_control::tailcfg::{
    Hostinfo, Login, MachineKey, MapRequest, RegisterResponse, Service, User,
};
use hearth_control::wire::{PeerService, RelayRegion, WireGuardKey};
use hearth_control::{JoinToken, SecretString};
use zeroize::Zeroizing;

use crate::endpoints::{MAX_LOCAL, usable};
use crate::error::Error;
use crate::netmap::NodeRecord;
use crate::registration::Owner;
use crate::routes::check_advertised;

/// The endpoints a Tailscale client reports, as stored: no port 0, no
/// unspecified address, no duplicates, at most a bounded number.
pub fn endpoints_from(reported: &[SocketAddr]) -> Vec<SocketAddr> {
    usable(reported.iter().copied(), MAX_LOCAL)
}

/// How `nodes list` names the client: `tailscale` and its short version.
pub fn client_name(hostinfo: &Hostinfo) -> String {
    let version = hostinfo
        .ipn_version
        .split('-')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .take(32)
        .collect::<String>();
    if version.is_empty() {
        "tailscale".to_owned()
    } else {
        format!("tailscale {version}")
    }
}

/// A Tailscale client about to become a node.
pub struct Joining<'a> {
    /// Its machine key.
    pub machine: MachineKey,
    /// Its node (WireGuard) key.
    pub node_key: WireGuardKey,
    /// What it reported about itself.
    pub hostinfo: &'a Hostinfo,
}

/// Whether a pre-auth key making `owner` may bring back the expired node
/// `record` as it was (address, name, history): only when it gives the
/// same owner, the same user and the same tags. A key of anyone else
/// makes a new node, exactly as a first registration with it would (the
/// stolen-laptop case: the thief's key does not inherit the owner's
/// identity, address or approval).
pub fn revives(record: &NodeRecord, owner: &Owner) -> bool {
    record.user_id == owner.user_id && record.tags == owner.tags
}

/// What the client is told about its registration.
pub fn response_for(record: &NodeRecord) -> RegisterResponse {
    RegisterResponse {
        user: User {
            id: record.user_id,
            display_name: record.user.clone(),
        },
        login: Login {
            id: record.user_id,
            provider: "hearth".into(),
            login_name: record.user.clone(),
            display_name: record.user.clone(),
        },
        node_key_expired: false,
        machine_authorized: record.is_admitted(),
        auth_url: String::new(),
        error: String::new(),
    }
}

/// What a client registering a node key that has expired is told
/// (`NodeKeyExpired`): not authorized until its user logs in again.
pub fn key_expired_response(record: &NodeRecord) -> RegisterResponse {
    RegisterResponse {
        node_key_expired: true,
        machine_authorized: false,
        ..response_for(record)
    }
}

/// A registration refused, as the client shows it (`tailscale up` prints
/// the `Error` field).
pub fn refusal(error: &Error) -> RegisterResponse {
    RegisterResponse {
        error: error.to_string(),
        ..RegisterResponse::default()
    }
}

/// The pre-auth key in what a client passed as `--authkey`: the key
/// itself, or the whole join token `preauthkeys create` prints (so an admin
/// hands out one thing to `hearth-agent` and Tailscale users alike).
pub fn auth_key_text(presented: &SecretString) -> Zeroizing<String> {
    match JoinToken::decode(presented.expose().trim()) {
        Ok(token) => Zeroizing::new(token.key.expose().to_owned()),
        Err(_) => Zeroizing::new(presented.expose().trim().to_owned()),
    }
}

pub(crate) fn os_of(hostinfo: &Hostinfo) -> String {
    hostinfo.os.chars().take(64).collect()
}

/// What is kept of a waiting node's report: the fields a report changes,
/// bounded as they are when stored.
pub(crate) fn held_report(request: &MapRequest) -> MapRequest {
    let hostinfo = request.hostinfo.as_ref().map(|hostinfo| Hostinfo {
        os: hostinfo.os.chars().take(64).collect(),
        ipn_version: hostinfo.ipn_version.chars().take(64).collect(),
        routable_ips: hostinfo.routable_ips.iter().take(256).copied().collect(),
        net_info: hostinfo.net_info.clone(),
        ..Hostinfo::default()
    });
    MapRequest {
        node_key: request.node_key,
        disco_key: request.disco_key,
        endpoints: endpoints_from(&request.endpoints),
        hostinfo,
        ..MapRequest::default()
    }
}

/// `record` as `request` reports it: disco key, endpoints, home relay
/// (one `state` knows), client version, OS and advertised routes (approved
/// as the policy's autoApprovers say). Pure.
/// The services a client reports that its peers are told of: its peer
/// API's ports (what Taildrop sends to), each kind once; nothing else a
/// client lists (its open ports) leaves it.
fn peer_services(services: &[Service]) -> Vec<PeerService> {
    const SHARED: [&str; 3] = ["peerapi4", "peerapi6", "peerapi-dns-proxy"];
    let mut kept: Vec<PeerService> = services
        .iter()
        .filter(|service| SHARED.contains(&service.proto.as_str()) && service.port != 0)
        .map(|service| PeerService {
            proto: service.proto.clone(),
            port: service.port,
        })
        .collect();
    kept.sort();
    kept.dedup_by(|a, b| a.proto == b.proto);
    kept
}

/// The SSH host keys a client reports, as its peers' `known_hosts` take
/// them: OpenSSH public key lines of a known type, at most eight, each
/// under 2 KiB.
fn ssh_host_keys(keys: &[String]) -> Vec<String> {
    const TYPES: [&str; 4] = ["ssh-ed25519 ", "ecdsa-sha2-", "ssh-rsa ", "sk-"];
    keys.iter()
        .filter(|key| key.len() < 2048 && !key.contains(['\n', '\r']))
        .filter(|key| TYPES.iter().any(|kind| key.starts_with(kind)))
        .take(8)
        .cloned()
        .collect()
}

pub(crate) fn reported(
    record: &NodeRecord,
    request: &MapRequest,
    relays: &[RelayRegion],
    policy: Option<&Policy>,
) -> NodeRecord {
    let mut changed = record.clone();
    if !request.disco_key.is_zero() {
        changed.disco_key = Some(request.disco_key);
    }
    if request.version > 0 {
        changed.capability_version = request.version;
    }
    if !request.endpoints.is_empty() {
        changed.endpoints = endpoints_from(&request.endpoints);
    }
    if let Some(hostinfo) = &request.hostinfo {
        if let Some(net_info) = &hostinfo.net_info {
            let region = net_info.preferred_derp;
            changed.home_relay = relays
                .iter()
                .any(|relay| relay.id == region)
                .then_some(region);
        }
        changed.client = client_name(hostinfo);
        changed.service_ads.reported = hostinfo.services_hash.chars().take(128).collect();
        changed.services = peer_services(&hostinfo.services);
        changed.ssh_host_keys = ssh_host_keys(&hostinfo.ssh_host_keys);
        if !hostinfo.os.is_empty() {
            changed.os = os_of(hostinfo);
        }
        if let Ok(advertised) = check_advertised(hostinfo.routable_ips.clone())
            && advertised != changed.advertised_routes
        {
            changed.advertised_routes = advertised;
            changed.approved_routes =
                crate::routes::approved_under(policy, &changed, &changed.approved_routes);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use hearth_control::wire::NodeState;

    use super::*;
    use crate::netmap::Credential;
    use crate::registration::{Device, new_record};

    #[test]
    fn only_the_peer_api_ports_of_what_a_client_offers_reach_its_peers() {
        let service = |proto: &str, port| Service {
            proto: proto.into(),
            port,
        };
        let reported = [
            service("tcp", 22),
            service("peerapi6", 41000),
            service("peerapi4", 40000),
            service("peerapi4", 40001),
            service("peerapi-dns-proxy", 1),
            service("peerapi6", 0),
            service("udp", 53),
        ];
        let kept: Vec<String> = peer_services(&reported)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            kept,
            ["peerapi-dns-proxy:1", "peerapi4:40000", "peerapi6:41000"]
        );
    }

    /// Peers learn a client's capability version from the map: without
    /// it, official clients never use a peer relay (they do from 121).
    #[test]
    fn a_clients_capability_version_is_kept_and_reaches_its_peers() {
        let record = crate::netmap::tests::record(7, "ada", NodeState::Approved);
        let request = MapRequest {
            version: 133,
            ..MapRequest::default()
        };
        let changed = reported(&record, &request, &[], None);
        assert_eq!(changed.capability_version, 133);
        // A request without a version (a stream's keep-alive) keeps it.
        let kept = reported(&changed, &MapRequest::default(), &[], None);
        assert_eq!(kept.capability_version, 133);
        let peer = changed.as_peer();
        assert_eq!(peer.capability_version, 133);
        assert_eq!(crate::tsmap::peer_node("hearth.test", &peer, true).cap, 133);
    }

    #[test]
    fn a_hosted_service_reaches_its_host_and_peers_as_tailscale_expects() {
        let mut host = crate::netmap::tests::record(7, "ada", NodeState::Approved);
        // What the client reports: the hash of the services it serves.
        let request = MapRequest {
            hostinfo: Some(Hostinfo {
                services_hash: "h1".into(),
                ..Hostinfo::default()
            }),
            ..MapRequest::default()
        };
        host = reported(&host, &request, &[], None);
        assert_eq!(host.service_ads.reported, "h1");
        assert!(
            host.service_ads.stale(),
            "the coordinator asks for the list"
        );
        let chat = hearth_acl::HostedService {
            name: "svc:chat".into(),
            addresses: vec![
                "100.100.0.1".parse().unwrap(),
                "fd7a:115c:a1e0::6464:1".parse().unwrap(),
            ],
        };
        host.hosted = vec![chat];
        // Peers route the service's addresses to the host; they are not
        // subnet routes.
        let peer = host.as_peer();
        assert!(
            peer.allowed_ips
                .contains(&"100.100.0.1/32".parse().unwrap())
        );
        let node = crate::tsmap::peer_node("hearth.test", &peer, true);
        assert!(node.primary_routes.is_empty(), "{:?}", node.primary_routes);
        // The host is told what to answer at (Tailscale's service-host).
        let mut view = crate::tsmap::TsMapView::new("hearth.test", Vec::new(), Default::default());
        let map = hearth_control::wire::NetworkMap {
            node: host.info(),
            peers: Vec::new(),
            filter: hearth_acl::Filter::default(),
            relays: Vec::new(),
            dns: None,
        };
        let full = view
            .apply(hearth_control::wire::MapMessage::Full { map: Box::new(map) })
            .unwrap();
        let own = full.node.unwrap();
        assert_eq!(
            own.cap_map[hearth_control::tailcfg::CAP_SERVICE_HOST],
            vec![serde_json::json!({"svc:chat": ["100.100.0.1", "fd7a:115c:a1e0::6464:1"]})]
        );
        // MagicDNS answers chat.<tailnet> with the service's IPv4 address,
        // untyped (hardening round five, findings 16 and 17: tailscaled's
        // userspace dialer skips typed records, and the pod publishes on
        // IPv4 only).
        let records = full.dns_config.unwrap().extra_records;
        let chat: Vec<(&str, &str, &str)> = records
            .iter()
            .map(|record| {
                (
                    record.name.as_str(),
                    record.kind.as_str(),
                    record.value.as_str(),
                )
            })
            .collect();
        assert_eq!(chat, vec![("chat.hearth.test", "", "100.100.0.1")]);
        let wire = serde_json::to_value(&records).unwrap();
        assert_eq!(
            wire[0],
            serde_json::json!({"Name": "chat.hearth.test", "Value": "100.100.0.1"})
        );
    }

    #[test]
    fn reported_endpoints_are_cleaned_and_bounded() {
        let reported: Vec<SocketAddr> = [
            "10.0.0.2:41641",
            "0.0.0.0:41641",
            "10.0.0.2:41641",
            "10.0.0.3:0",
            "[fd00::2]:41641",
        ]
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
        assert_eq!(
            endpoints_from(&reported),
            [reported[0], reported[4]],
            "no unspecified address, no port 0, no duplicate"
        );
        let flood: Vec<SocketAddr> = (1..=100)
            .map(|port| SocketAddr::from(([10, 0, 0, 2], port)))
            .collect();
        assert_eq!(endpoints_from(&flood).len(), MAX_LOCAL);
    }

    #[test]
    fn only_the_same_owner_and_tags_revive_an_expired_node() {
        let owner = |user_id: i64, tags: &[&str]| Owner {
            user_id,
            user: String::new(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            ephemeral: false,
            state: NodeState::Pending,
            key_lifetime: None,
        };
        let device = Device {
            name: "laptop".into(),
            hostname: "laptop".into(),
            os: "linux".into(),
            key: WireGuardKey([9; 32]),
            credential: Some(Credential::Machine(MachineKey([8; 32]))),
            client: "tailscale".into(),
        };
        let addresses = (
            "100.64.0.3".parse().unwrap(),
            "fd7a:115c:a1e0::3".parse().unwrap(),
        );
        let record = new_record(3, owner(7, &[]), device, addresses, 0);
        assert!(revives(&record, &owner(record.user_id, &[])));
        assert!(
            !revives(&record, &owner(record.user_id + 1, &[])),
            "another user"
        );
        assert!(
            !revives(&record, &owner(record.user_id, &["tag:server"])),
            "the same user's tagged key makes a tagged node, not this one"
        );
    }

    #[test]
    fn the_client_is_named_with_its_short_version() {
        let hostinfo = Hostinfo {
            ipn_version: "1.96.4-tdeadbeef-gcafe".into(),
            ..Hostinfo::default()
        };
        assert_eq!(client_name(&hostinfo), "tailscale 1.96.4");
        assert_eq!(client_name(&Hostinfo::default()), "tailscale");
        let hostile = Hostinfo {
            ipn_version: "1.0\u{1b}[31m;rm".into(),
            ..Hostinfo::default()
        };
        assert_eq!(client_name(&hostile), "tailscale 1.031mrm");
    }
}
