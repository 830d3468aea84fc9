//! The messages of Tailscale's control protocol that a coordinator serves
//! inside a ts2021 session, in Tailscale's JSON spelling: registration
//! (`/machine/register`) and the network map (`/machine/map`), with the
//! map's framing (a 4-byte little-endian length, then the message,
//! zstd-compressed when the client asks).
//!
//! Only the fields Hearth reads or writes are modelled; unknown fields a
//! client sends are ignored, as Tailscale's own decoder does. Pure: no IO.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// The largest request body read from a client (Tailscale's own clients
/// send a few kilobytes; Hostinfo is the bulk).
pub const MAX_REQUEST: usize = 256 * 1024;

/// The largest map frame a client accepts, and so the largest sent.
pub const MAX_FRAME: usize = 4 << 20;

macro_rules! tailscale_key {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The text prefix before the hex digits.
            pub const PREFIX: &'static str = $prefix;

            /// Whether the key is all zeros (Tailscale's "no key").
            pub fn is_zero(&self) -> bool {
                self.0 == [0; 32]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str($prefix)?;
                formatter.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, formatter)
            }
        }

        impl std::str::FromStr for $name {
            type Err = KeyTextError;
            fn from_str(text: &str) -> Result<Self, KeyTextError> {
                if text.is_empty() {
                    return Ok($name([0; 32]));
                }
                let digits = text.strip_prefix($prefix).ok_or(KeyTextError($prefix))?;
                let mut key = [0u8; 32];
                hex::decode_to_slice(digits, &mut key).map_err(|_| KeyTextError($prefix))?;
                Ok($name(key))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A key text that is not `<prefix>` and 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a key is written `{0}` and 64 hex digits")]
pub struct KeyTextError(&'static str);

tailscale_key!(
    /// A node key: the WireGuard public key of a Tailscale node.
    NodeKey,
    "nodekey:"
);
tailscale_key!(
    /// A machine key: the client's long-term key, its static key in the
    /// ts2021 handshake.
    MachineKey,
    "mkey:"
);
tailscale_key!(
    /// A disco key: what a Tailscale node signs its path-discovery
    /// messages with; it changes every time the client starts.
    DiscoKey,
    "discokey:"
);

/// What the client tells about itself (a subset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Hostinfo {
    /// The client's version, e.g. `1.96.4-t...`.
    #[serde(rename = "IPNVersion", skip_serializing_if = "String::is_empty")]
    pub ipn_version: String,
    /// Its operating system (`linux`, `iOS`, `android`, `macOS`, `windows`).
    #[serde(rename = "OS", skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// The machine's hostname.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Routes it offers to route (subnets, `0.0.0.0/0` and `::/0` for an exit node).
    #[serde(rename = "RoutableIPs", skip_serializing_if = "Vec::is_empty")]
    pub routable_ips: Vec<IpNet>,
    /// Tags it asks for (`--advertise-tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_tags: Vec<String>,
    /// What it found out about its network.
    #[serde(rename = "NetInfo", skip_serializing_if = "Option::is_none")]
    pub net_info: Option<NetInfo>,
    /// Services it offers; peers read its peer API's ports (`peerapi4`,
    /// `peerapi6`) here, for Taildrop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Its Tailscale SSH server's host keys (OpenSSH public key lines).
    #[serde(rename = "sshHostKeys", skip_serializing_if = "Vec::is_empty")]
    pub ssh_host_keys: Vec<String>,
    /// A hash of the Tailscale Services it serves (`tailscale serve
    /// --service`); when it changes, the coordinator asks it for the list
    /// (`GET /vip-services`, [`crate::c2n`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub services_hash: String,
}

/// A service a client offers (a subset of Tailscale's `Service`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    /// `tcp`, `udp`, or a meta service: `peerapi4`, `peerapi6`,
    /// `peerapi-dns-proxy`.
    pub proto: String,
    /// Its port.
    pub port: u16,
}

/// The node capability that lets a client run Tailscale SSH's server.
pub const CAP_SSH: &str = "https://tailscale.com/cap/ssh";

/// The node capability that lets a client send and receive files with
/// Taildrop (in its own node's `CapMap`).
pub const CAP_FILE_SHARING: &str = "https://tailscale.com/cap/file-sharing";

/// The node capability that tells a client which Tailscale Services it
/// hosts and at which addresses: one value, an object of service name to
/// addresses.
pub const CAP_SERVICE_HOST: &str = "service-host";

/// The node capability that says the network gives certificates
/// (`tailscale cert`), which `tailscale serve --https` asks for.
pub const CAP_HTTPS: &str = "https";

/// `/machine/set-dns`: a client asks for a DNS record, the TXT record of an
/// ACME DNS-01 challenge for one of its `CertDomains` (`tailscale cert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetDnsRequest {
    /// The client's capability version (1 from some clients).
    #[serde(default)]
    pub version: u16,
    /// The node key the request is for.
    pub node_key: NodeKey,
    /// The record's name: `_acme-challenge.` and a cert domain.
    pub name: String,
    /// The record's type: `TXT`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The record's value.
    pub value: String,
}

/// `/machine/feature/query`: a client asks whether a feature (`serve`,
/// `funnel`) is on for it, before using it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryFeatureRequest {
    /// The feature.
    pub feature: String,
    /// The node key the request is for.
    pub node_key: NodeKey,
}

/// The answer to a [`QueryFeatureRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryFeatureResponse {
    /// The feature is on: the client goes ahead.
    pub complete: bool,
    /// What the client shows the person otherwise.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub text: String,
    /// Where the person could turn it on (none here).
    #[serde(rename = "URL", skip_serializing_if = "String::is_empty", default)]
    pub url: String,
    /// Whether the client should wait for it to be turned on.
    pub should_wait: bool,
}

/// What a client found out about its network (a subset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetInfo {
    /// The relay region it chose as home (0: none yet).
    #[serde(rename = "PreferredDERP")]
    pub preferred_derp: u16,
}

/// The pre-auth key part of a registration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegisterAuth {
    /// The key the user passed to `tailscale up --authkey`.
    pub auth_key: Option<SecretString>,
}

/// `POST /machine/register`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegisterRequest {
    /// The client's capability version.
    pub version: u16,
    /// The node key to register.
    pub node_key: NodeKey,
    /// The node key it replaces (zero on a first registration).
    pub old_node_key: NodeKey,
    /// The pre-auth key, if any.
    pub auth: Option<RegisterAuth>,
    /// When the node key should expire; a time in the past asks to log out.
    pub expiry: Option<String>,
    /// The login URL it is following up on, if any.
    pub followup: String,
    /// About the client.
    pub hostinfo: Option<Hostinfo>,
    /// Asked to be removed when it goes away.
    pub ephemeral: bool,
}

impl RegisterRequest {
    /// Whether the request asks to log out: Tailscale clients send an
    /// expiry far in the past (1970) for `tailscale logout`.
    pub fn is_logout(&self) -> bool {
        self.expiry
            .as_deref()
            .is_some_and(|expiry| expiry.starts_with("19"))
    }
}

/// A user as the registration answer names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct User {
    /// The user's id.
    #[serde(rename = "ID")]
    pub id: i64,
    /// The name shown.
    pub display_name: String,
}

/// The login behind a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Login {
    /// The login's id (the user's).
    #[serde(rename = "ID")]
    pub id: i64,
    /// Which identity provider; `hearth` for pre-auth keys.
    pub provider: String,
    /// The login name.
    pub login_name: String,
    /// The name shown.
    pub display_name: String,
}

/// The answer to `/machine/register`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterResponse {
    /// Whose node it is.
    pub user: User,
    /// The login.
    pub login: Login,
    /// The node key must be replaced (`tailscale up --force-reauth`).
    pub node_key_expired: bool,
    /// Approved: it may take part in the mesh.
    pub machine_authorized: bool,
    /// Where a person logs in; empty with pre-auth keys.
    #[serde(rename = "AuthURL")]
    pub auth_url: String,
    /// Why the registration was refused; empty when it was not.
    pub error: String,
}

/// `POST /machine/map`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MapRequest {
    /// The client's capability version.
    pub version: u16,
    /// `zstd` or empty.
    pub compress: String,
    /// Send keep-alives on a stream.
    pub keep_alive: bool,
    /// The node key the request is for.
    pub node_key: NodeKey,
    /// The client's current disco key.
    pub disco_key: DiscoKey,
    /// Keep the response open and stream changes.
    pub stream: bool,
    /// About the client.
    pub hostinfo: Option<Hostinfo>,
    /// Where it can be reached.
    pub endpoints: Vec<SocketAddr>,
    /// Only an update: do not send the map back.
    pub omit_peers: bool,
    /// Do not store what the request says (endpoints, hostinfo).
    pub read_only: bool,
}

/// A node in a map, as Tailscale clients read it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    /// Numeric id.
    #[serde(rename = "ID")]
    pub id: i64,
    /// The id as text, stable for the node's life.
    #[serde(rename = "StableID")]
    pub stable_id: String,
    /// Its MagicDNS name, fully qualified with a trailing dot.
    pub name: String,
    /// The owning user's id.
    pub user: i64,
    /// Its WireGuard public key.
    pub key: NodeKey,
    /// Its machine key (Tailscale clients only).
    #[serde(skip_serializing_if = "MachineKey::is_zero", default)]
    pub machine: MachineKey,
    /// Its disco key (Tailscale clients only).
    #[serde(skip_serializing_if = "DiscoKey::is_zero", default)]
    pub disco_key: DiscoKey,
    /// Its mesh addresses, as host prefixes.
    pub addresses: Vec<IpNet>,
    /// What is routed to it: its addresses and approved routes.
    #[serde(rename = "AllowedIPs")]
    pub allowed_ips: Vec<IpNet>,
    /// Where it can be reached.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub endpoints: Vec<SocketAddr>,
    /// About it.
    pub hostinfo: Hostinfo,
    /// When it registered (RFC 3339).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub created: String,
    /// When its node key expires (RFC 3339, UTC); absent: never. A client
    /// whose own key has expired stops and asks its user to log in again.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub key_expiry: String,
    /// Its capability version (Tailscale clients only).
    #[serde(skip_serializing_if = "is_zero_u16", default)]
    pub cap: u16,
    /// Its tags.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<String>,
    /// Approved routes it serves.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub primary_routes: Vec<IpNet>,
    /// Connected to the coordinator now.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub online: Option<bool>,
    /// Approved by an admin.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub machine_authorized: bool,
    /// Its name without the domain.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub computed_name: String,
    /// Its name and, if different, its hostname.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub computed_name_with_host: String,
    /// A plain WireGuard peer (a static device, or an agent on kernel
    /// WireGuard): no disco, no DERP; reached at its endpoints.
    #[serde(
        rename = "IsWireGuardOnly",
        skip_serializing_if = "std::ops::Not::not",
        default
    )]
    pub is_wireguard_only: bool,
    /// Its home relay region (0: none).
    #[serde(rename = "HomeDERP", skip_serializing_if = "is_zero_u16", default)]
    pub home_derp: u16,
    /// Its node capabilities (sent in a client's own node): each
    /// capability's name and its arguments.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub cap_map: BTreeMap<String, Vec<serde_json::Value>>,
    /// The same, in the form clients before capability version 111 read
    /// (`127.3.3.40:<region>`).
    #[serde(rename = "DERP", skip_serializing_if = "String::is_empty", default)]
    pub legacy_derp: String,
}

/// The address clients' legacy relay field names regions under.
pub const DERP_MAGIC_IP: &str = "127.3.3.40";

fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

/// A change to one peer that leaves the rest of it as it was (here: where
/// it can be reached and its disco key, which change most often).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerChange {
    /// The peer.
    #[serde(rename = "NodeID")]
    pub node_id: i64,
    /// Its endpoints now (empty: unchanged).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub endpoints: Vec<SocketAddr>,
    /// Its disco key now, if it changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disco_key: Option<DiscoKey>,
    /// Its home relay region now, if it changed.
    #[serde(rename = "DERPRegion", skip_serializing_if = "is_zero_u16", default)]
    pub derp_region: u16,
    /// Whether it is connected to the coordinator now, if that changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub online: Option<bool>,
}

/// A DNS resolver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resolver {
    /// Its address.
    pub addr: String,
}

/// The DNS settings a client applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsConfig {
    /// Upstream resolvers (none: the client keeps its own).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub resolvers: Vec<Resolver>,
    /// Per-domain resolvers; an empty list means "answered from the map".
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub routes: BTreeMap<String, Vec<Resolver>>,
    /// Search domains.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub domains: Vec<String>,
    /// MagicDNS on: names are answered by the client's 100.100.100.100.
    pub proxied: bool,
    /// Names the client's resolver answers itself, beside the nodes'.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub extra_records: Vec<DnsRecord>,
    /// The names the client may get certificates for (`tailscale cert`):
    /// its own MagicDNS name, when the coordinator gives certificates.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cert_domains: Vec<String>,
}

/// One extra DNS record (`A` or `AAAA`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsRecord {
    /// Its fully qualified name.
    pub name: String,
    /// `A` or `AAAA`, or empty: an address record whose family is its
    /// value's (what Tailscale's userspace dialer reads; it skips typed
    /// records).
    #[serde(rename = "Type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The address.
    pub value: String,
}

/// The relay map; Hearth sends an empty one until it runs a relay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DerpMap {
    /// Relay regions by id.
    pub regions: BTreeMap<String, serde_json::Value>,
    /// Do not add Tailscale's own relays.
    pub omit_default_regions: bool,
}

/// Tailscale's packet filter types (`hearth-acl` makes them).
pub use hearth_acl::tailscale::{CapGrant, FilterRule, NetPortRange, PortRange};

/// A user as maps name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserProfile {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: i64,
    /// Its login name.
    pub login_name: String,
    /// The name shown.
    pub display_name: String,
}

/// One message of the map stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MapResponse {
    /// Nothing else in it: the stream is alive.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub keep_alive: bool,
    /// The node itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<Node>,
    /// The relay map.
    #[serde(rename = "DERPMap", skip_serializing_if = "Option::is_none", default)]
    pub derp_map: Option<DerpMap>,
    /// Every peer (a full map).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peers: Option<Vec<Node>>,
    /// Peers new or changed since the last message.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub peers_changed: Vec<Node>,
    /// Peers gone since the last message.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub peers_removed: Vec<i64>,
    /// Peers of which only endpoints or disco keys changed.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub peers_changed_patch: Vec<PeerChange>,
    /// DNS settings.
    #[serde(rename = "DNSConfig", skip_serializing_if = "Option::is_none", default)]
    pub dns_config: Option<DnsConfig>,
    /// The tailnet's name.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub domain: String,
    /// Whether clients collect services; always false here.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub collect_services: Option<bool>,
    /// The whole inbound packet filter, when it changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub packet_filter: Option<Vec<FilterRule>>,
    /// The users the map's nodes belong to.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub user_profiles: Vec<UserProfile>,
    /// Who may log in to this node with Tailscale SSH (replaces the last).
    #[serde(rename = "SSHPolicy", skip_serializing_if = "Option::is_none", default)]
    pub ssh_policy: Option<SshPolicy>,
    /// A request for the client to answer (here: an HTTP request to its
    /// own handlers, [`crate::c2n`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ping_request: Option<PingRequest>,
}

/// What the coordinator asks a client to do and where to send the answer.
/// With `Types: "c2n"`, `Payload` is an HTTP/1.1 request the client runs
/// against its own handlers; it posts the HTTP response, over the control
/// connection, to `URL`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PingRequest {
    /// Where the answer goes (a path of the coordinator's).
    #[serde(rename = "URL")]
    pub url: String,
    /// Whether the answer goes over the control connection.
    #[serde(
        rename = "URLIsNoise",
        skip_serializing_if = "std::ops::Not::not",
        default
    )]
    pub url_is_noise: bool,
    /// Whether the client logs it.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub log: bool,
    /// The kind of request: `c2n`.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub types: String,
    /// The HTTP request (base64 in JSON, as Go writes bytes).
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty", default)]
    pub payload: Vec<u8>,
}

/// Bytes as Go's `encoding/json` writes `[]byte`: standard base64.
mod base64_bytes {
    use base64::Engine;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Tailscale SSH's rules for one node, first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPolicy {
    /// The rules.
    pub rules: Vec<SshRule>,
}

/// One Tailscale SSH rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshRule {
    /// Who it lets in.
    pub principals: Vec<SshPrincipal>,
    /// Requested user -> local user (`=`: the same; `""`: refused); `*` for any other.
    pub ssh_users: BTreeMap<String, String>,
    /// What happens.
    pub action: SshAction,
    /// Environment variables a client may send.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub accept_env: Vec<String>,
}

/// Who a rule lets in (here: a peer by its mesh address).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshPrincipal {
    /// The peer's mesh address.
    #[serde(rename = "nodeIP", skip_serializing_if = "String::is_empty", default)]
    pub node_ip: String,
}

/// What a rule does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshAction {
    /// Let the session in.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub accept: bool,
    /// Turn the session away.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub reject: bool,
    /// Ask this URL (over the control connection) and do what it says.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub hold_and_delegate: String,
    /// Shown to the user.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
    /// Agent forwarding allowed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub allow_agent_forwarding: bool,
    /// Local port forwarding allowed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub allow_local_port_forwarding: bool,
    /// Remote port forwarding allowed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub allow_remote_port_forwarding: bool,
}

/// Why a map frame could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The message is larger than a client accepts.
    #[error("a map message of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// Compression or decompression failed.
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
    /// The bytes end inside a frame.
    #[error("a map frame is cut short")]
    Truncated,
}

/// One map message as sent: 4-byte little-endian length, then `json`,
/// zstd-compressed when `compress`.
pub fn frame(json: &[u8], compress: bool) -> Result<Vec<u8>, FrameError> {
    let body = if compress {
        zstd::bulk::compress(json, 1).map_err(FrameError::Zstd)?
    } else {
        json.to_vec()
    };
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(&body);
    Ok(framed)
}

/// A frame's message and the bytes after the frame.
pub type Split<'a> = (Vec<u8>, &'a [u8]);

/// Splits the first frame off `bytes`: its message (decompressed when
/// `compressed`) and the rest; `None` when no whole frame is there yet.
pub fn read_frame(bytes: &[u8], compressed: bool) -> Result<Option<Split<'_>>, FrameError> {
    let Some((length, rest)) = bytes.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let length = u32::from_le_bytes(*length) as usize;
    if length > MAX_FRAME {
        return Err(FrameError::TooLarge(length));
    }
    if rest.len() < length {
        return Ok(None);
    }
    let (body, rest) = rest.split_at(length);
    let message = if compressed {
        zstd::bulk::decompress(body, MAX_FRAME * 8).map_err(FrameError::Zstd)?
    } else {
        body.to_vec()
    };
    Ok(Some((message, rest)))
}

/// A host prefix for a mesh address (`/32` or `/128`).
pub fn host_prefix(address: IpAddr) -> IpNet {
    IpNet::from(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_and_write_in_tailscale_text_form() {
        let key: NodeKey = format!("nodekey:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(key.0, [0xab; 32]);
        assert_eq!(key.to_string(), format!("nodekey:{}", "ab".repeat(32)));
        assert!(NodeKey::default().is_zero());
        assert!("".parse::<NodeKey>().unwrap().is_zero());
        let wrong = format!("mkey:{}", "ab".repeat(32)).parse::<NodeKey>();
        assert_eq!(
            wrong.unwrap_err().to_string(),
            "a key is written `nodekey:` and 64 hex digits"
        );
        assert!(
            format!("nodekey:{}", "ab".repeat(31))
                .parse::<NodeKey>()
                .is_err()
        );
    }

    #[test]
    fn a_client_register_request_reads_with_unknown_fields_ignored() {
        let text = format!(
            r#"{{"Version":133,"NodeKey":"nodekey:{k}","OldNodeKey":"nodekey:{z}",
            "NLKey":"nlpub:{z}","Auth":{{"AuthKey":"hskey-abc"}},"Expiry":"0001-01-01T00:00:00Z",
            "Followup":"","Hostinfo":{{"IPNVersion":"1.96.4","OS":"linux","Hostname":"phone",
            "RoutableIPs":["10.1.0.0/24"],"NetInfo":{{"PreferredDERP":0}}}},
            "Timestamp":"2026-11-23T05:00:00Z","Tailnet":""}}"#,
            k = "11".repeat(32),
            z = "00".repeat(32)
        );
        let request: RegisterRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(request.version, 133);
        assert_eq!(request.node_key.0, [0x11; 32]);
        assert!(request.old_node_key.is_zero());
        let auth = request.auth.as_ref().unwrap().auth_key.as_ref().unwrap();
        assert_eq!(auth.expose(), "hskey-abc");
        let hostinfo = request.hostinfo.as_ref().unwrap();
        assert_eq!(hostinfo.hostname, "phone");
        assert_eq!(
            hostinfo.routable_ips,
            ["10.1.0.0/24".parse::<IpNet>().unwrap()]
        );
        assert!(!request.is_logout());
        let logout: RegisterRequest =
            serde_json::from_str(r#"{"Expiry":"1970-01-01T00:02:03Z"}"#).unwrap();
        assert!(logout.is_logout());
    }

    #[test]
    fn frames_round_trip_compressed_and_plain() {
        let message = serde_json::to_vec(&MapResponse {
            keep_alive: true,
            ..MapResponse::default()
        })
        .unwrap();
        assert_eq!(message, br#"{"KeepAlive":true}"#);
        for compress in [true, false] {
            let mut stream = frame(&message, compress).unwrap();
            stream.extend(frame(b"{}", compress).unwrap());
            let (first, rest) = read_frame(&stream, compress).unwrap().unwrap();
            assert_eq!(first, message);
            let (second, rest) = read_frame(rest, compress).unwrap().unwrap();
            assert_eq!(second, b"{}");
            assert!(rest.is_empty());
            assert!(
                read_frame(&stream[..stream.len() - 1], compress)
                    .unwrap()
                    .is_some()
            );
        }
        let plain = frame(b"{}", false).unwrap();
        assert_eq!(plain, [2, 0, 0, 0, b'{', b'}']);
        assert!(read_frame(&plain[..5], false).unwrap().is_none());
        assert!(matches!(
            read_frame(&[0xff, 0xff, 0xff, 0xff], false),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn a_node_writes_the_field_names_clients_read() {
        let node = Node {
            id: 7,
            stable_id: "7".into(),
            name: "phone.hearth.internal.".into(),
            user: 1,
            addresses: vec!["100.64.0.7/32".parse().unwrap()],
            is_wireguard_only: true,
            ..Node::default()
        };
        let json = serde_json::to_value(&node).unwrap();
        for field in [
            "ID",
            "StableID",
            "Name",
            "User",
            "Key",
            "Addresses",
            "AllowedIPs",
            "IsWireGuardOnly",
        ] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert!(
            json.get("DiscoKey").is_none(),
            "a zero disco key is left out"
        );
    }
}
