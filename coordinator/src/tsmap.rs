//! The network map in Tailscale's form, for nodes running the official
//! Tailscale client. Pure: it reads the same [`MapMessage`]s the coordinator
//! streams to `hearth-agent` nodes and turns each into the
//! [`MapResponse`] a Tailscale client reads, keeping the client's current
//! view so that deltas stay deltas.
//!
//! Two differences from `hearth-agent`'s map shape what is sent:
//! - Hearth's filter names sources symbolically (a user, a tag); Tailscale's
//!   names addresses. Sources are resolved against the recipient's peers,
//!   so a change to the peer set re-sends the filter.
//! - Peers without a disco key (static devices, agents on kernel
//!   WireGuard) speak plain WireGuard, so they are sent as
//!   `IsWireGuardOnly` peers, reached at their endpoints. Agents on the
//!   userspace data plane speak disco and use the relays like Tailscale
//!   clients do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hearth_acl::Filter;
use hearth_acl::tailscale::Member;
use hearth_control::tailcfg::{
    DERP_MAGIC_IP, DiscoKey, DnsConfig, DnsRecord, FilterRule, Hostinfo, MachineKey, MapResponse,
    Node, NodeKey, PeerChange, QueryFeatureResponse, Resolver, Service, SshAction, SshPolicy,
    SshPrincipal, SshRule, UserProfile, host_prefix,
};
use hearth_control::wire::{
    MapChange, MapMessage, NetworkMap, NodeId, NodeInfo, Peer, RelayRegion,
};
use ipnet::IpNet;

use crate::dns::DnsSettings;
use crate::relays::derp_map;

/// Where a node asks about a `check` rule's session, before
/// `from/SRC/to/DST`.
pub const SSH_ACTION_PATH: &str = "/machine/ssh/action/";

/// The MagicDNS base domain when none is configured.
pub const DEFAULT_BASE_DOMAIN: &str = "hearth.internal";

/// What the recipient's own node entry carries beyond Hearth's [`NodeInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelfKeys {
    /// Its node (WireGuard) key.
    pub node: NodeKey,
    /// Its machine key.
    pub machine: MachineKey,
    /// Its disco key.
    pub disco: DiscoKey,
    /// What it reported about itself.
    pub hostinfo: Hostinfo,
    /// Its capability version.
    pub version: u16,
}

/// One Tailscale client's view of the map, and the encoder of what changes.
#[derive(Clone, Debug)]
pub struct TsMapView {
    domain: String,
    relays: Vec<RelayRegion>,
    keys: SelfKeys,
    /// The node capabilities its own node is given (`CapMap`).
    capabilities: Vec<String>,
    /// The DNS settings beyond MagicDNS (split domains, search domains,
    /// extra records).
    dns: DnsSettings,
    /// Where the client asks about a `check` rule's session (the
    /// coordinator's URL; the request goes over the control connection).
    server_url: String,
    /// The nodes connected to the coordinator now, as far as this view
    /// has been told (see [`TsMapView::presence`]): peers' `Online`.
    online: BTreeSet<NodeId>,
    /// Whether the client may get a certificate for its MagicDNS name
    /// (`CertDomains`).
    certificates: bool,
    /// The coordinator's name with a certificate from a public CA, whose
    /// relay is not pinned.
    public_name: Option<String>,
    map: Option<NetworkMap>,
}

impl TsMapView {
    /// A view for the client with `keys`, names under `domain`; `relays`
    /// until its first map names them.
    pub fn new(domain: &str, relays: Vec<RelayRegion>, keys: SelfKeys) -> TsMapView {
        TsMapView {
            domain: domain.to_owned(),
            relays,
            keys,
            capabilities: Vec::new(),
            online: BTreeSet::new(),
            dns: DnsSettings::default(),
            server_url: String::new(),
            certificates: false,
            public_name: None,
            map: None,
        }
    }

    /// The same view, `check` rules asking the coordinator at `url`.
    pub fn with_server_url(mut self, url: &str) -> TsMapView {
        self.server_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// The same view, telling the client its certificate name
    /// (`certificates`) and not pinning the relay at `public_name`.
    pub fn with_certificates(
        mut self,
        certificates: bool,
        public_name: Option<String>,
    ) -> TsMapView {
        self.certificates = certificates;
        self.public_name = public_name;
        self
    }

    /// The same view, with the coordinator's DNS settings.
    pub fn with_dns(mut self, dns: DnsSettings) -> TsMapView {
        self.dns = dns;
        self
    }

    /// The same view, with the nodes connected now.
    pub fn with_online(mut self, online: BTreeSet<NodeId>) -> TsMapView {
        self.online = online;
        self
    }

    /// After presence changes were missed: everything the client must be
    /// told so that its peers' `Online` matches `online` (the nodes
    /// connected now), as one response, if anything differs.
    pub fn set_online(&mut self, online: &BTreeSet<NodeId>) -> Option<MapResponse> {
        let changed: Vec<NodeId> = self.online.symmetric_difference(online).copied().collect();
        let patches: Vec<PeerChange> = changed
            .into_iter()
            .filter_map(|node| self.presence(node, online.contains(&node)))
            .flat_map(|response| response.peers_changed_patch)
            .collect();
        (!patches.is_empty()).then(|| MapResponse {
            peers_changed_patch: patches,
            ..MapResponse::default()
        })
    }

    /// `node` connected to the coordinator (`online`) or left it: a patch
    /// for the client when it is one of its peers and that changes what
    /// the client was told (Taildrop sends only to online peers, and the
    /// apps show who is online).
    pub fn presence(&mut self, node: NodeId, online: bool) -> Option<MapResponse> {
        let changed = if online {
            self.online.insert(node)
        } else {
            self.online.remove(&node)
        };
        let is_peer = self
            .map
            .as_ref()?
            .peers
            .iter()
            .any(|peer| peer.id == node && shown(peer));
        (changed && is_peer).then(|| MapResponse {
            peers_changed_patch: vec![PeerChange {
                node_id: node as i64,
                online: Some(online),
                ..PeerChange::default()
            }],
            ..MapResponse::default()
        })
    }

    /// The same view, the client's own node given `capabilities` (e.g.
    /// [`hearth_control::tailcfg::CAP_FILE_SHARING`] for Taildrop).
    pub fn with_capabilities(mut self, capabilities: Vec<String>) -> TsMapView {
        self.capabilities = capabilities;
        self
    }

    /// What a client waiting for approval is sent: its own node, not yet
    /// authorized, and nothing else.
    pub fn waiting(&self, node: &NodeInfo) -> MapResponse {
        MapResponse {
            node: Some(self.self_node(node, false)),
            peers: Some(Vec::new()),
            derp_map: Some(derp_map(&self.relays, self.public_name.as_deref())),
            domain: self.domain.clone(),
            ..MapResponse::default()
        }
    }

    /// What a client whose node key expired (or that logged out) is sent:
    /// its own node with the expiry, no later than `now`, and nothing else,
    /// so that it asks its user to log in again.
    pub fn key_expired(&self, node: &NodeInfo, now: i64) -> MapResponse {
        let mut node = node.clone();
        node.key_expiry = Some(node.key_expiry.map_or(now, |expiry| expiry.min(now)));
        MapResponse {
            node: Some(self.self_node(&node, true)),
            peers: Some(Vec::new()),
            derp_map: Some(derp_map(&self.relays, self.public_name.as_deref())),
            domain: self.domain.clone(),
            ..MapResponse::default()
        }
    }

    /// The response for one message of the node's map stream; `None` when
    /// there is nothing to send (a revocation ends the stream instead).
    pub fn apply(&mut self, message: MapMessage) -> Option<MapResponse> {
        match message {
            MapMessage::Full { map } => {
                if !map.relays.is_empty() {
                    self.relays = map.relays.clone();
                }
                let response = self.full(&map);
                self.map = Some(*map);
                Some(response)
            }
            MapMessage::Delta { changes } => self.delta(changes),
            MapMessage::KeepAlive => Some(MapResponse {
                keep_alive: true,
                ..MapResponse::default()
            }),
            MapMessage::Revoked { .. } => None,
        }
    }

    fn full(&self, map: &NetworkMap) -> MapResponse {
        MapResponse {
            node: Some(self.self_node(&map.node, true)),
            derp_map: Some(derp_map(&self.relays, self.public_name.as_deref())),
            peers: Some(
                map.peers
                    .iter()
                    .filter(|peer| shown(peer))
                    .map(|peer| self.peer_node(peer))
                    .collect(),
            ),
            dns_config: Some(self.dns_config(&map.node, &map.peers)),
            domain: self.domain.clone(),
            collect_services: Some(false),
            packet_filter: Some(packet_filter(&map.filter, &map.node, &map.peers)),
            user_profiles: user_profiles(&map.node, &map.peers),
            ssh_policy: Some(ssh_policy(&map.node, &map.peers, &self.server_url)),
            ..MapResponse::default()
        }
    }

    fn delta(&mut self, changes: Vec<MapChange>) -> Option<MapResponse> {
        let map = self.map.as_mut()?;
        let mut response = MapResponse::default();
        let mut peers_moved = false;
        let mut filter_changed = false;
        // The names of services follow their hosts: MagicDNS changes when a
        // hosting peer comes, goes or hosts otherwise.
        let mut dns_changed = false;
        // Peers whose kind changed, sent as removed and added anew.
        let mut recreated: Vec<i64> = Vec::new();
        for change in changes {
            match change {
                MapChange::PeerAdded { peer } | MapChange::PeerChanged { peer } => {
                    let id = peer.id as i64;
                    response.peers_removed.retain(|removed| *removed != id);
                    let already_full = response.peers_changed.iter().any(|node| node.id == id);
                    let mut was_shown = false;
                    let patch = match map.peers.iter_mut().find(|known| known.id == peer.id) {
                        Some(known) => {
                            was_shown = shown(known);
                            // A client never changes a peer's kind in
                            // place (magicsock keeps `IsWireGuardOnly` and
                            // would ignore its disco for good): one that
                            // starts or stops speaking disco (a backend
                            // change) is removed and added anew.
                            if was_shown && known.disco_key.is_some() != peer.disco_key.is_some() {
                                recreated.push(id);
                            }
                            peers_moved |= identity_changed(known, &peer);
                            dns_changed |= known.hosted != peer.hosted;
                            let patch = (!already_full && was_shown)
                                .then(|| patch_of(known, &peer))
                                .flatten();
                            *known = peer.clone();
                            patch
                        }
                        None => {
                            peers_moved = true;
                            dns_changed |= !peer.hosted.is_empty();
                            map.peers.push(peer.clone());
                            None
                        }
                    };
                    response
                        .peers_changed_patch
                        .retain(|change| change.node_id != id);
                    if !shown(&peer) {
                        response.peers_changed.retain(|node| node.id != id);
                        if was_shown {
                            response.peers_removed.push(id);
                        }
                        continue;
                    }
                    match patch {
                        Some(patch) => response.peers_changed_patch.push(patch),
                        None => {
                            response.peers_changed.retain(|node| node.id != id);
                            let online = self.online.contains(&peer.id);
                            response
                                .peers_changed
                                .push(peer_node(&self.domain, &peer, online));
                        }
                    }
                }
                MapChange::PeerRemoved { id } => {
                    dns_changed |= map
                        .peers
                        .iter()
                        .any(|peer| peer.id == id && !peer.hosted.is_empty());
                    map.peers.retain(|peer| peer.id != id);
                    response.peers_changed.retain(|node| node.id != id as i64);
                    response
                        .peers_changed_patch
                        .retain(|change| change.node_id != id as i64);
                    response.peers_removed.push(id as i64);
                    peers_moved = true;
                }
                MapChange::FilterChanged { filter } => {
                    map.filter = filter;
                    filter_changed = true;
                }
                MapChange::SelfChanged { node } => {
                    filter_changed |= node.ipv4 != map.node.ipv4 || node.ipv6 != map.node.ipv6;
                    let renamed = node.name != map.node.name;
                    // Its certificate name follows its name.
                    dns_changed |= renamed && self.certificates || node.hosted != map.node.hosted;
                    map.node = node;
                    response.node = Some(own_node(
                        &self.domain,
                        &self.keys,
                        &self.capabilities,
                        &map.node,
                        true,
                    ));
                }
                MapChange::RelaysChanged { relays } => {
                    response.derp_map = Some(derp_map(&relays, self.public_name.as_deref()));
                    map.relays = relays.clone();
                    self.relays = relays;
                }
                // Tailscale clients hear of presence from the streams'
                // own feed (`TsMapView::presence`).
                MapChange::Presence { .. } => {}
            }
        }
        // Removed, then added anew: a client that takes the response as
        // changes drops the peer's endpoint before it makes the new one.
        for id in recreated {
            let sent_whole = response.peers_changed.iter().any(|node| node.id == id);
            if sent_whole && !response.peers_removed.contains(&id) {
                response.peers_removed.push(id);
            }
        }
        if dns_changed {
            let services = service_records(&self.domain, &map.node, &map.peers);
            response.dns_config = Some(dns_config(
                &self.domain,
                &self.dns,
                self.certificates,
                &map.node,
                services,
            ));
        }
        if peers_moved || filter_changed {
            response.packet_filter = Some(packet_filter(&map.filter, &map.node, &map.peers));
        }
        if peers_moved || response.node.is_some() {
            response.user_profiles = user_profiles(&map.node, &map.peers);
            response.ssh_policy = Some(ssh_policy(&map.node, &map.peers, &self.server_url));
        }
        Some(response)
    }

    fn self_node(&self, node: &NodeInfo, authorized: bool) -> Node {
        own_node(
            &self.domain,
            &self.keys,
            &self.capabilities,
            node,
            authorized,
        )
    }

    fn peer_node(&self, peer: &Peer) -> Node {
        peer_node(&self.domain, peer, self.online.contains(&peer.id))
    }

    /// MagicDNS and the coordinator's DNS settings, for the client whose
    /// node is `node`.
    fn dns_config(&self, node: &NodeInfo, peers: &[Peer]) -> DnsConfig {
        let services = service_records(&self.domain, node, peers);
        dns_config(&self.domain, &self.dns, self.certificates, node, services)
    }
}

/// MagicDNS for the nodes' names under `domain` (answered from the map,
/// and searched first), then `dns`, the coordinator's settings; with
/// `certificates`, the name `node` may get a certificate for.
fn dns_config(
    domain: &str,
    dns: &DnsSettings,
    certificates: bool,
    node: &NodeInfo,
    services: Vec<DnsRecord>,
) -> DnsConfig {
    let resolvers = |addresses: &[IpAddr]| {
        addresses
            .iter()
            .map(|address| Resolver {
                addr: address.to_string(),
            })
            .collect::<Vec<_>>()
    };
    let mut routes = BTreeMap::from([(domain.to_owned(), Vec::new())]);
    for (split, servers) in &dns.split {
        routes.insert(split.clone(), resolvers(servers));
    }
    let mut domains = vec![domain.to_owned()];
    domains.extend(dns.search_domains.iter().cloned());
    DnsConfig {
        resolvers: resolvers(&dns.global),
        routes,
        domains,
        proxied: true,
        // Untyped, as Tailscale's userspace dialer reads them (the
        // resolver infers the family from the value either way).
        extra_records: dns
            .extra_records
            .iter()
            .map(|record| DnsRecord {
                name: record.name.clone(),
                kind: String::new(),
                value: record.address.to_string(),
            })
            .chain(services)
            .collect(),
        cert_domains: if certificates {
            vec![format!("{}.{domain}", node.name.to_ascii_lowercase())]
        } else {
            Vec::new()
        },
    }
}

/// What a client is told when it asks whether `feature` is on
/// (`/machine/feature/query`): HTTPS for `serve` when devices get
/// certificates; never Funnel, which needs Tailscale's own servers.
pub fn feature_answer(feature: &str, certificates: bool) -> QueryFeatureResponse {
    let refused = |text: &str| QueryFeatureResponse {
        complete: false,
        text: text.to_owned(),
        url: String::new(),
        should_wait: false,
    };
    match feature {
        "serve" if certificates => QueryFeatureResponse {
            complete: true,
            ..QueryFeatureResponse::default()
        },
        "serve" => refused(
            "HTTPS certificates are not turned on for this network: the coordinator's admin \
             can turn them on with --acme-config (see Hearth's docs/tailscale-clients.md).",
        ),
        "funnel" => refused(
            "Funnel publishes a device on the internet through Tailscale's own servers, \
             which a Hearth network does not use.",
        ),
        other => refused(&format!("{other} is not offered by this network.")),
    }
}

/// Whether a Tailscale client is told of `peer`. One with neither a
/// disco key nor an endpoint cannot be reached by it (and cannot reach it:
/// magicsock takes plain WireGuard only from a peer's listed endpoints);
/// it is most likely an agent that has not reported yet, whose kind, disco
/// or plain WireGuard, is not known. A client told too early would keep it
/// as plain WireGuard and ignore its disco for good (magicsock never
/// changes a peer's kind in place, and Tailscale 1.96 rebuilds one map
/// from a response that removes and adds the peer again, keeping it).
fn shown(peer: &Peer) -> bool {
    peer.disco_key.is_some() || !peer.endpoints.is_empty()
}

/// The change from `before` to `after` as a patch, when only the endpoints
/// (to a non-empty list: an empty one means "unchanged" in a patch), the
/// disco key or the home relay (to a region: none means "unchanged") of a
/// disco peer changed; `None` when the whole node must be sent.
fn patch_of(before: &Peer, after: &Peer) -> Option<PeerChange> {
    let rest_same = Peer {
        endpoints: after.endpoints.clone(),
        disco_key: after.disco_key,
        home_relay: after.home_relay,
        ..before.clone()
    } == *after;
    let kind_same = before.disco_key.is_some() == after.disco_key.is_some();
    let relay_kept = after.home_relay.is_some() || before.home_relay.is_none();
    if !rest_same || !kind_same || !relay_kept || after.endpoints.is_empty() {
        return None;
    }
    Some(PeerChange {
        node_id: after.id as i64,
        endpoints: after.endpoints.clone(),
        disco_key: (before.disco_key != after.disco_key)
            .then(|| after.disco_key.map(|key| DiscoKey(key.0)))
            .flatten(),
        derp_region: if before.home_relay == after.home_relay {
            0
        } else {
            after.home_relay.unwrap_or(0)
        },
        online: None,
    })
}

/// Whether a change to a peer changes what the filter resolves to.
fn identity_changed(before: &Peer, after: &Peer) -> bool {
    before.user != after.user || before.tags != after.tags || before.addresses != after.addresses
}

fn fqdn(name: &str, domain: &str) -> String {
    format!("{name}.{domain}.")
}

/// Who may log in to `node` with Tailscale SSH: its rules from the policy
/// (`NodeInfo::ssh`), each source resolved to the mesh addresses of the
/// peers it names (as the packet filter's sources are).
fn ssh_policy(node: &NodeInfo, peers: &[Peer], server_url: &str) -> SshPolicy {
    let own_tags: BTreeSet<String> = node.tags.iter().cloned().collect();
    let rules = node
        .ssh
        .iter()
        .filter_map(|rule| {
            let principals: Vec<SshPrincipal> = peers
                .iter()
                .filter(|peer| {
                    let named = rule
                        .sources
                        .iter()
                        .any(|source| source.names_node(&peer.user, &peer.tags, &peer.addresses));
                    let own = !rule.same_user
                        || (own_tags.is_empty() && peer.tags.is_empty() && peer.user == node.user);
                    named && own
                })
                .flat_map(|peer| &peer.addresses)
                .map(|address| SshPrincipal {
                    node_ip: address.to_string(),
                })
                .collect();
            if principals.is_empty() {
                return None;
            }
            let mut ssh_users = BTreeMap::new();
            for user in &rule.users {
                match user.as_str() {
                    "autogroup:nonroot" => {
                        ssh_users.insert("*".to_owned(), "=".to_owned());
                        ssh_users
                            .entry("root".to_owned())
                            .or_insert_with(String::new);
                    }
                    "*" => {
                        ssh_users.insert("*".to_owned(), "=".to_owned());
                    }
                    name => {
                        ssh_users.insert(name.to_owned(), name.to_owned());
                    }
                }
            }
            let action = match rule.check_period {
                // The node asks the coordinator, which holds the session
                // until an admin runs `ssh approve` (see `ssh_checks`).
                Some(period) => SshAction {
                    hold_and_delegate: format!(
                        "{server_url}{SSH_ACTION_PATH}from/$SRC_NODE_ID/to/$DST_NODE_ID?ssh_user=$SSH_USER&local_user=$LOCAL_USER&period={period}"
                    ),
                    ..SshAction::default()
                },
                None => ssh_accept(),
            };
            Some(SshRule {
                principals,
                ssh_users,
                action,
                accept_env: rule.accept_env.clone(),
            })
        })
        .collect();
    SshPolicy { rules }
}

/// What a session an `ssh` rule lets in may do: log in, with agent and
/// port forwarding (Tailscale's defaults for an accepted session).
pub fn ssh_accept() -> SshAction {
    SshAction {
        accept: true,
        allow_agent_forwarding: true,
        allow_local_port_forwarding: true,
        allow_remote_port_forwarding: true,
        ..SshAction::default()
    }
}

/// The client's own node, given `capabilities`.
fn own_node(
    domain: &str,
    keys: &SelfKeys,
    capabilities: &[String],
    node: &NodeInfo,
    authorized: bool,
) -> Node {
    let addresses = vec![
        host_prefix(IpAddr::V4(node.ipv4)),
        host_prefix(IpAddr::V6(node.ipv6)),
    ];
    Node {
        id: node.id as i64,
        stable_id: node.id.to_string(),
        name: fqdn(&node.name, domain),
        user: node.user_id,
        key: keys.node,
        machine: keys.machine,
        disco_key: keys.disco,
        allowed_ips: addresses.clone(),
        addresses,
        hostinfo: keys.hostinfo.clone(),
        cap: keys.version,
        tags: node.tags.clone(),
        key_expiry: node.key_expiry.map(go_time).unwrap_or_default(),
        machine_authorized: authorized,
        computed_name: node.name.clone(),
        computed_name_with_host: node.name.clone(),
        cap_map: capabilities
            .iter()
            .chain(&node.attrs)
            .map(|capability| (capability.clone(), Vec::new()))
            .chain(service_host(&node.hosted))
            .collect(),
        ..Node::default()
    }
}

/// Tailscale's `service-host` capability for a node hosting `hosted`:
/// each service's name and addresses, which its client then answers at.
fn service_host(hosted: &[hearth_acl::HostedService]) -> Option<(String, Vec<serde_json::Value>)> {
    (!hosted.is_empty()).then(|| {
        let mappings: BTreeMap<&str, &[IpAddr]> = hosted
            .iter()
            .map(|service| (service.name.as_str(), service.addresses.as_slice()))
            .collect();
        (
            hearth_control::tailcfg::CAP_SERVICE_HOST.to_owned(),
            vec![serde_json::json!(mappings)],
        )
    })
}

/// MagicDNS records for the services `node` and its `peers` host:
/// `svc:chat` is `chat.` under `domain`, at the service's addresses.
fn service_records(domain: &str, node: &NodeInfo, peers: &[Peer]) -> Vec<DnsRecord> {
    let mut records: Vec<DnsRecord> = node
        .hosted
        .iter()
        .chain(peers.iter().flat_map(|peer| &peer.hosted))
        .flat_map(|service| {
            let label = service.label();
            // Untyped (the userspace dialer of the Tailscale app, which
            // carries other apps through its SOCKS5 and HTTP proxies, reads
            // only those), and IPv4 only: one address per name, the one
            // the hub's pod publishes on (the IPv6 address is routed).
            service
                .addresses
                .iter()
                .filter(|address| address.is_ipv4())
                .map(move |address| DnsRecord {
                    name: format!("{label}.{domain}"),
                    kind: String::new(),
                    value: address.to_string(),
                })
        })
        .collect();
    records.sort_by(|a, b| (&a.name, &a.kind, &a.value).cmp(&(&b.name, &b.kind, &b.value)));
    records.dedup();
    records
}

/// A Unix time as Go's `time.Time` reads it from JSON (RFC 3339, UTC).
fn go_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|moment| {
            moment
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A peer as a Tailscale client sees it, connected to the coordinator
/// now or not (`online`).
pub fn peer_node(domain: &str, peer: &Peer, online: bool) -> Node {
    let mesh: BTreeSet<IpNet> = peer
        .addresses
        .iter()
        .map(|address| host_prefix(*address))
        .collect();
    Node {
        id: peer.id as i64,
        stable_id: peer.id.to_string(),
        name: fqdn(&peer.name, domain),
        user: peer.user_id,
        key: NodeKey(peer.wireguard_key.0),
        disco_key: peer
            .disco_key
            .map(|key| DiscoKey(key.0))
            .unwrap_or_default(),
        addresses: mesh.iter().copied().collect(),
        allowed_ips: peer.allowed_ips.clone(),
        endpoints: peer.endpoints.clone(),
        hostinfo: Hostinfo {
            hostname: peer.name.clone(),
            os: peer.os.clone(),
            services: peer
                .services
                .iter()
                .map(|service| Service {
                    proto: service.proto.clone(),
                    port: service.port,
                })
                .collect(),
            ssh_host_keys: peer.ssh_host_keys.clone(),
            ..Hostinfo::default()
        },
        tags: peer.tags.iter().cloned().collect(),
        primary_routes: approved_routes(peer),
        machine_authorized: true,
        online: Some(online),
        key_expiry: peer.key_expiry.map(go_time).unwrap_or_default(),
        computed_name: peer.name.clone(),
        computed_name_with_host: peer.name.clone(),
        is_wireguard_only: peer.disco_key.is_none(),
        cap: peer.capability_version,
        home_derp: peer.home_relay.unwrap_or(0),
        legacy_derp: peer
            .home_relay
            .map(|region| format!("{DERP_MAGIC_IP}:{region}"))
            .unwrap_or_default(),
        ..Node::default()
    }
}

/// The users a map's nodes belong to.
fn user_profiles(node: &NodeInfo, peers: &[Peer]) -> Vec<UserProfile> {
    let mut users = BTreeMap::new();
    users.insert(node.user_id, node.user.clone());
    for peer in peers {
        users
            .entry(peer.user_id)
            .or_insert_with(|| peer.user.clone());
    }
    users
        .into_iter()
        .map(|(id, login)| UserProfile {
            id,
            display_name: login.clone(),
            login_name: login,
        })
        .collect()
}

/// Hearth's inbound filter for `node` in Tailscale's form
/// ([`hearth_acl::tailscale::packet_filter`]): sources resolved among the
/// node itself and its peers.
pub fn packet_filter(filter: &Filter, node: &NodeInfo, peers: &[Peer]) -> Vec<FilterRule> {
    let own = [IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)];
    let tags: BTreeSet<String> = node.tags.iter().cloned().collect();
    let routes: Vec<Vec<IpNet>> = peers.iter().map(approved_routes).collect();
    let mut members = vec![Member {
        user: &node.user,
        tags: &tags,
        addresses: &own,
        routes: &[],
    }];
    members.extend(peers.iter().zip(&routes).map(|(peer, routes)| Member {
        user: &peer.user,
        tags: &peer.tags,
        addresses: &peer.addresses,
        routes,
    }));
    hearth_acl::tailscale::packet_filter(filter, &own, &members)
}

/// A peer's approved routes: its allowed IPs besides its own addresses and
/// those of the services it hosts.
fn approved_routes(peer: &Peer) -> Vec<IpNet> {
    let hosted = |address: &IpAddr| {
        peer.hosted
            .iter()
            .any(|service| service.addresses.contains(address))
    };
    peer.allowed_ips
        .iter()
        .filter(|prefix| {
            !(prefix.prefix_len() == prefix.max_prefix_len()
                && (peer.addresses.contains(&prefix.addr()) || hosted(&prefix.addr())))
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_acl::{
        Destination, FilterRule as HearthRule, PortRange as HearthPorts, Source, Target,
    };
    use hearth_control::tailcfg::PortRange;
    use hearth_control::wire::{NodeState, WireGuardKey};

    fn info(id: u64, name: &str) -> NodeInfo {
        NodeInfo {
            id,
            name: name.into(),
            user: "alice".into(),
            tags: Vec::new(),
            state: NodeState::Approved,
            ipv4: format!("100.64.0.{id}").parse().unwrap(),
            ipv6: format!("fd7a:115c:a1e0::{id}").parse().unwrap(),
            ephemeral: false,
            user_id: 1,
            key_expiry: None,
            key_lifetime: None,
            attrs: BTreeSet::new(),
            ssh: Vec::new(),
            hosted: Vec::new(),
        }
    }

    fn peer(id: u64, user: &str, tags: &[&str], disco: bool) -> Peer {
        let node = info(id, &format!("node{id}"));
        Peer {
            id,
            name: node.name,
            user: user.into(),
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            wireguard_key: WireGuardKey([id as u8; 32]),
            addresses: vec![IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)],
            allowed_ips: vec![
                host_prefix(IpAddr::V4(node.ipv4)),
                host_prefix(IpAddr::V6(node.ipv6)),
            ],
            endpoints: vec![format!("10.0.0.{id}:41641").parse().unwrap()],
            user_id: if user == "alice" { 1 } else { 2 },
            os: "linux".into(),
            disco_key: disco.then_some(WireGuardKey([0xd0 + id as u8; 32])),
            home_relay: disco.then_some(crate::relays::EMBEDDED_REGION),
            capability_version: 0,
            key_expiry: None,
            services: Vec::new(),
            ssh_host_keys: Vec::new(),
            hosted: Vec::new(),
        }
    }

    fn only_alice_to_port_22() -> Filter {
        Filter {
            rules: vec![HearthRule {
                src: vec![Source::User("alice".into()), Source::Tag("tag:ci".into())],
                dst: vec![Destination {
                    target: Target::SelfAddresses,
                    ports: HearthPorts::single(22),
                }],
                protocols: vec![6],
            }],
            ..Filter::default()
        }
    }

    fn view() -> TsMapView {
        TsMapView::new(
            DEFAULT_BASE_DOMAIN,
            vec![crate::relays::embedded(
                "https://10.0.0.1:8443",
                Some(3478),
                "ab",
            )],
            SelfKeys {
                node: NodeKey([9; 32]),
                version: 133,
                ..SelfKeys::default()
            },
        )
    }

    #[test]
    fn a_full_map_names_peers_under_the_domain_and_resolves_the_filter_to_addresses() {
        let map = NetworkMap {
            node: info(1, "phone"),
            peers: vec![
                peer(2, "alice", &[], true),
                peer(3, "bob", &[], false),
                peer(4, "bob", &["tag:ci"], false),
            ],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        let response = view()
            .apply(MapMessage::Full { map: Box::new(map) })
            .unwrap();
        let me = response.node.unwrap();
        assert_eq!(me.name, "phone.hearth.internal.");
        assert!(me.machine_authorized);
        assert_eq!(me.key, NodeKey([9; 32]));
        let peers = response.peers.unwrap();
        assert_eq!(peers.len(), 3);
        assert!(!peers[0].is_wireguard_only, "a disco peer uses disco");
        assert_eq!(peers[0].home_derp, 900, "and its home relay");
        assert_eq!(peers[0].legacy_derp, "127.3.3.40:900");
        assert!(
            peers[1].is_wireguard_only,
            "a peer without disco is plain WireGuard"
        );
        assert_eq!(peers[1].home_derp, 0);
        assert_eq!(
            response.derp_map.unwrap().regions["900"]["RegionCode"],
            "hub"
        );
        assert_eq!(peers[1].name, "node3.hearth.internal.");
        let filter = response.packet_filter.unwrap();
        assert_eq!(filter.len(), 1);
        assert_eq!(
            filter[0].src_ips,
            [
                "100.64.0.1",
                "100.64.0.2",
                "100.64.0.4",
                "fd7a:115c:a1e0::1",
                "fd7a:115c:a1e0::2",
                "fd7a:115c:a1e0::4"
            ],
            "alice's untagged nodes (this one too, as Tailscale writes it) and the tag:ci node, not bob's untagged one"
        );
        assert_eq!(filter[0].dst_ports.len(), 2);
        assert_eq!(filter[0].dst_ports[0].ip, "100.64.0.1");
        assert_eq!(
            filter[0].dst_ports[0].ports,
            PortRange {
                first: 22,
                last: 22
            }
        );
        assert_eq!(filter[0].ip_proto, [6]);
        let dns = response.dns_config.unwrap();
        assert!(dns.proxied);
        assert_eq!(dns.domains, ["hearth.internal"]);
        let users: Vec<i64> = response.user_profiles.iter().map(|user| user.id).collect();
        assert_eq!(users, [1, 2]);
    }

    #[test]
    fn peers_are_online_while_connected_and_the_client_hears_when_that_changes() {
        let mut laptop = peer(2, "alice", &[], true);
        laptop.services = vec![hearth_control::wire::PeerService {
            proto: "peerapi4".into(),
            port: 40000,
        }];
        let map = NetworkMap {
            node: info(1, "phone"),
            peers: vec![laptop, peer(3, "alice", &[], true)],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        let mut view = view()
            .with_capabilities(vec![hearth_control::tailcfg::CAP_FILE_SHARING.into()])
            .with_online([1, 2].into());
        let response = view.apply(MapMessage::Full { map: Box::new(map) }).unwrap();
        let me = response.node.unwrap();
        assert!(
            me.cap_map
                .contains_key("https://tailscale.com/cap/file-sharing")
        );
        let peers = response.peers.unwrap();
        assert_eq!(peers[0].online, Some(true));
        assert_eq!(peers[1].online, Some(false));
        assert_eq!(
            peers[0].hostinfo.services,
            [hearth_control::tailcfg::Service {
                proto: "peerapi4".into(),
                port: 40000
            }],
            "its peer API, where Taildrop sends"
        );

        let patch = view.presence(3, true).unwrap().peers_changed_patch;
        assert_eq!((patch[0].node_id, patch[0].online), (3, Some(true)));
        assert_eq!(view.presence(3, true), None, "told already");
        let patch = view.presence(2, false).unwrap().peers_changed_patch;
        assert_eq!((patch[0].node_id, patch[0].online), (2, Some(false)));
        assert_eq!(view.presence(7, true), None, "not a peer");
        assert_eq!(view.presence(1, false), None, "itself");
        // Changes missed (the client fell behind): caught up in one patch.
        let caught_up = view
            .set_online(&[2, 7, 9].into())
            .unwrap()
            .peers_changed_patch;
        let told: Vec<(i64, Option<bool>)> = caught_up
            .iter()
            .map(|change| (change.node_id, change.online))
            .collect();
        assert_eq!(told, [(2, Some(true)), (3, Some(false))]);
        assert_eq!(view.set_online(&[2, 7, 9].into()), None, "nothing more");
        // A peer added later is sent as it is now.
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerAdded {
                    peer: peer(7, "alice", &[], true),
                }],
            })
            .unwrap();
        assert_eq!(response.peers_changed[0].online, Some(true));
    }

    #[test]
    fn deltas_send_only_what_changed_and_refresh_the_filter_when_peers_move() {
        let mut view = view();
        let map = NetworkMap {
            node: info(1, "phone"),
            peers: vec![peer(2, "alice", &[], true)],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        view.apply(MapMessage::Full { map: Box::new(map) }).unwrap();

        let mut moved = peer(2, "alice", &[], true);
        moved.endpoints = vec!["10.9.9.9:1".parse().unwrap()];
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerChanged { peer: moved }],
            })
            .unwrap();
        assert!(
            response.peers_changed.is_empty(),
            "an endpoint move is a patch"
        );
        assert_eq!(response.peers_changed_patch.len(), 1);
        assert_eq!(response.peers_changed_patch[0].node_id, 2);
        assert_eq!(
            response.peers_changed_patch[0].endpoints,
            ["10.9.9.9:1".parse().unwrap()]
        );
        assert_eq!(response.peers_changed_patch[0].disco_key, None);
        assert_eq!(response.peers_changed_patch[0].derp_region, 0);
        assert!(
            response.packet_filter.is_none(),
            "an endpoint move leaves the filter alone"
        );

        let mut rehomed = peer(2, "alice", &[], true);
        rehomed.endpoints = vec!["10.9.9.9:1".parse().unwrap()];
        rehomed.home_relay = Some(901);
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerChanged { peer: rehomed }],
            })
            .unwrap();
        assert_eq!(response.peers_changed_patch[0].derp_region, 901);

        let second = hearth_control::wire::RelayRegion {
            id: 901,
            code: "cafe".into(),
            url: "https://10.0.0.9:443".into(),
            fingerprint: "cd".into(),
            stun_port: None,
        };
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::RelaysChanged {
                    relays: vec![second],
                }],
            })
            .unwrap();
        let regions = response.derp_map.unwrap().regions;
        assert_eq!(
            regions.keys().collect::<Vec<_>>(),
            ["901"],
            "a new relay map"
        );

        let mut renamed = peer(2, "alice", &[], true);
        renamed.name = "renamed".into();
        renamed.endpoints = Vec::new();
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerChanged { peer: renamed }],
            })
            .unwrap();
        assert!(
            response.peers_changed_patch.is_empty(),
            "a rename sends the whole node"
        );
        assert_eq!(response.peers_changed[0].name, "renamed.hearth.internal.");
        assert!(response.peers.is_none(), "a delta is not a full map");

        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerAdded {
                    peer: peer(5, "alice", &[], false),
                }],
            })
            .unwrap();
        let filter = response
            .packet_filter
            .expect("a new peer named by the filter");
        assert!(filter[0].src_ips.contains(&"100.64.0.5".to_owned()));

        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerRemoved { id: 2 }],
            })
            .unwrap();
        assert_eq!(response.peers_removed, [2]);
        let filter = response.packet_filter.unwrap();
        assert!(!filter[0].src_ips.contains(&"100.64.0.2".to_owned()));

        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::FilterChanged {
                    filter: Filter::default(),
                }],
            })
            .unwrap();
        assert_eq!(
            response.packet_filter,
            Some(Vec::new()),
            "deny everything is sent as an empty filter"
        );

        let keepalive = view.apply(MapMessage::KeepAlive).unwrap();
        assert!(keepalive.keep_alive);
        assert!(
            view.apply(MapMessage::Revoked {
                reason: "deleted".into()
            })
            .is_none()
        );
    }

    #[test]
    fn a_client_is_told_when_its_key_expires_and_when_it_has() {
        let mut node = info(1, "phone");
        node.key_expiry = Some(1_795_536_973);
        let laptop = Peer {
            key_expiry: Some(1_795_540_573),
            ..peer(2, "alice", &[], true)
        };
        let server = peer(3, "alice", &["tag:server"], true);
        let map = NetworkMap {
            node: node.clone(),
            peers: vec![laptop, server],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        let mut view = view();
        let full = view.apply(MapMessage::Full { map: Box::new(map) }).unwrap();
        assert_eq!(full.node.unwrap().key_expiry, "2026-11-24T16:16:13Z");
        // And each peer's, as `tailscale status` shows it.
        let peers = full.peers.unwrap();
        assert_eq!(peers[0].key_expiry, "2026-11-24T17:16:13Z");
        assert_eq!(peers[1].key_expiry, "", "a server's key never expires");
        // Once expired: its own node, authorized, expired no later than now.
        let expired = view.key_expired(&node, 1_795_536_000);
        let own = expired.node.unwrap();
        assert_eq!(own.key_expiry, "2026-11-24T16:00:00Z");
        assert!(own.machine_authorized);
        assert_eq!(expired.peers, Some(Vec::new()));
        // A key that never expires is sent as no expiry.
        assert_eq!(
            view.waiting(&info(2, "laptop")).node.unwrap().key_expiry,
            ""
        );
    }

    #[test]
    fn with_certificates_a_client_is_told_its_certificate_name_which_follows_renames() {
        let map = NetworkMap {
            node: info(1, "phone"),
            peers: vec![peer(2, "alice", &[], true)],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        let mut plain = view();
        let full = plain
            .apply(MapMessage::Full {
                map: Box::new(map.clone()),
            })
            .unwrap();
        assert!(full.dns_config.unwrap().cert_domains.is_empty());
        let mut view = view().with_certificates(true, None);
        let full = view.apply(MapMessage::Full { map: Box::new(map) }).unwrap();
        assert_eq!(
            full.dns_config.unwrap().cert_domains,
            ["phone.hearth.internal"]
        );
        let renamed = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::SelfChanged {
                    node: info(1, "tablet"),
                }],
            })
            .unwrap();
        assert_eq!(
            renamed.dns_config.unwrap().cert_domains,
            ["tablet.hearth.internal"]
        );
    }

    #[test]
    fn serve_over_https_is_on_only_with_certificates_and_funnel_never() {
        assert!(feature_answer("serve", true).complete);
        let off = feature_answer("serve", false);
        assert!(!off.complete && !off.should_wait);
        assert!(off.text.contains("--acme-config"));
        let funnel = feature_answer("funnel", true);
        assert!(!funnel.complete && funnel.text.contains("Tailscale's own servers"));
    }

    #[test]
    fn a_waiting_client_sees_itself_unauthorized_and_no_peers() {
        let response = view().waiting(&info(1, "phone"));
        assert!(!response.node.as_ref().unwrap().machine_authorized);
        assert_eq!(response.peers, Some(Vec::new()));
    }

    #[test]
    fn a_peer_that_starts_speaking_disco_is_removed_and_added_anew() {
        // Tailscale's magicsock never changes a peer's kind in place: a
        // plain WireGuard peer (an agent on kernel WireGuard) that later
        // speaks disco (moved to userspace) is removed and added anew.
        let mut view = view();
        let map = NetworkMap {
            node: info(1, "phone"),
            peers: vec![peer(2, "alice", &[], false)],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        view.apply(MapMessage::Full { map: Box::new(map) }).unwrap();
        let speaking = peer(2, "alice", &[], true);
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerChanged {
                    peer: speaking.clone(),
                }],
            })
            .unwrap();
        assert_eq!(response.peers_removed, [2]);
        assert_eq!(response.peers_changed.len(), 1, "and sent whole again");
        assert_eq!(response.peers_changed[0].id, 2);
        assert!(!response.peers_changed[0].is_wireguard_only);
        assert!(response.peers_changed_patch.is_empty());

        // Its later moves are patches again, with nothing removed.
        let mut moved = speaking;
        moved.endpoints = vec!["10.9.9.9:1".parse().unwrap()];
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerChanged { peer: moved }],
            })
            .unwrap();
        assert!(response.peers_removed.is_empty());
        assert_eq!(response.peers_changed_patch.len(), 1);
    }

    #[test]
    fn an_agent_that_has_not_reported_is_shown_once_its_kind_is_known() {
        let mut view = view();
        let mut silent = peer(2, "alice", &[], false);
        silent.endpoints.clear();
        let map = NetworkMap {
            node: info(1, "phone"),
            peers: vec![silent.clone(), peer(3, "alice", &[], false)],
            filter: only_alice_to_port_22(),
            relays: Vec::new(),
            dns: None,
        };
        let full = view.apply(MapMessage::Full { map: Box::new(map) }).unwrap();
        let ids: Vec<i64> = full.peers.unwrap().iter().map(|node| node.id).collect();
        assert_eq!(
            ids,
            [3],
            "a plain peer with endpoints is shown, a silent one not"
        );
        assert!(view.presence(2, true).is_none(), "nor its presence");

        // Its first report: a disco peer from the start, never plain.
        let response = view
            .apply(MapMessage::Delta {
                changes: vec![MapChange::PeerChanged {
                    peer: peer(2, "alice", &[], true),
                }],
            })
            .unwrap();
        assert!(response.peers_removed.is_empty());
        assert_eq!(response.peers_changed.len(), 1);
        assert!(!response.peers_changed[0].is_wireguard_only);
    }
}
