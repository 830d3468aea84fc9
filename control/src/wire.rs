//! The messages coordinator and agents exchange, as JSON.
//!
//! Every endpoint lives under [`API_PREFIX`]. Requests other than
//! registration are made over mutual TLS with the client certificate the
//! coordinator issued at registration; the coordinator identifies the node by
//! that certificate, never by anything in the body.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hearth_acl::Filter;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// Path prefix of the node API.
pub const API_PREFIX: &str = "/api/v1";

/// Path of the registration endpoint.
pub const REGISTER_PATH: &str = "/api/v1/register";
/// Path of the streamed network map.
pub const MAP_PATH: &str = "/api/v1/map";
/// Path of the approval stream a pending node waits on.
pub const APPROVAL_PATH: &str = "/api/v1/approval";
/// Path where a node reports its endpoints.
pub const ENDPOINTS_PATH: &str = "/api/v1/endpoints";
/// Path where a node reports the routes it advertises.
pub const ROUTES_PATH: &str = "/api/v1/routes";
/// Path where a standalone relay says hello (its certificate, its STUN port).
pub const RELAY_HELLO_PATH: &str = "/api/v1/relay/hello";
/// Path of the stream of admitted node keys a standalone relay follows.
pub const RELAY_KEYS_PATH: &str = "/api/v1/relay/keys";
/// Node key rotation (POST, client certificate).
pub const ROTATE_PATH: &str = "/api/v1/rotate";
/// A TLS certificate for the node's MagicDNS name from the coordinator's
/// ACME CA (POST, client certificate).
pub const CERT_PATH: &str = "/api/v1/cert";

/// A node id.
pub type NodeId = u64;

/// A WireGuard public key (Curve25519), written in base64 as `wg` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireGuardKey(pub [u8; 32]);

impl fmt::Display for WireGuardKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for WireGuardKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "WireGuardKey({self})")
    }
}

/// Why a WireGuard key could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a WireGuard key is 32 bytes in base64 (44 characters ending in `=`)")]
pub struct KeyFormatError;

impl FromStr for WireGuardKey {
    type Err = KeyFormatError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyFormatError)?;
        Ok(WireGuardKey(bytes.try_into().map_err(|_| KeyFormatError)?))
    }
}

impl Serialize for WireGuardKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WireGuardKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a node stands with the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Registered, waiting for an admin.
    Pending,
    /// Admitted: it gets peers.
    Approved,
    /// Refused by an admin.
    Rejected,
    /// Its admission ran out (`nodes expire`).
    Expired,
}

impl NodeState {
    /// The word the CLI prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Approved => "approved",
            NodeState::Rejected => "rejected",
            NodeState::Expired => "expired",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A node state's name that is none of them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown node state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for NodeState {
    type Err = UnknownState;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(NodeState::Pending),
            "approved" => Ok(NodeState::Approved),
            "rejected" => Ok(NodeState::Rejected),
            "expired" => Ok(NodeState::Expired),
            other => Err(UnknownState(other.to_owned())),
        }
    }
}

/// A new device asks to join.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The pre-auth key from the join token.
    pub auth_key: SecretString,
    /// The device's WireGuard public key.
    pub wireguard_key: WireGuardKey,
    /// The name the device calls itself.
    pub hostname: String,
    /// Operating system, for display.
    pub os: String,
    /// A PKCS#10 certificate request (DER, base64) for the device's control-plane TLS key.
    pub csr_der: String,
}

impl RegisterRequest {
    /// The CSR bytes, when the base64 is valid.
    pub fn csr_bytes(&self) -> Option<Vec<u8>> {
        decode_der(&self.csr_der)
    }
}

/// Encodes DER bytes for [`RegisterRequest::csr_der`].
pub fn encode_der(der: &[u8]) -> String {
    STANDARD.encode(der)
}

/// Decodes [`encode_der`]'s text; `None` when it is not base64.
pub fn decode_der(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// What the coordinator says about one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: NodeId,
    /// Unique name in the tailnet.
    pub name: String,
    /// Owning user's name.
    pub user: String,
    /// Tags (empty for a user-owned device).
    pub tags: Vec<String>,
    /// Admission state.
    pub state: NodeState,
    /// Mesh IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Mesh IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Whether the node disappears after a period offline.
    pub ephemeral: bool,
    /// Owning user's id.
    #[serde(default)]
    pub user_id: i64,
    /// When the node's keys stop being accepted (Unix seconds); `None`:
    /// they never expire. The agent rotates them before then.
    #[serde(default)]
    pub key_expiry: Option<i64>,
    /// How long a fresh key lives (seconds), when keys expire.
    #[serde(default)]
    pub key_lifetime: Option<u64>,
    /// Its attributes from the policy's `nodeAttrs` (Tailscale clients
    /// read them as node capabilities).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub attrs: BTreeSet<String>,
    /// The policy's `ssh` rules that let users into this node (Tailscale
    /// clients' SSH server enforces them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<hearth_acl::NodeSshRule>,
    /// The services (Tailscale Services) the node hosts now, with their
    /// addresses: it answers at them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosted: Vec<hearth_acl::HostedService>,
}

impl NodeInfo {
    /// The admin command that approves this node.
    pub fn approve_command(&self) -> String {
        format!("hearth-coordinator nodes approve {}", self.id)
    }
}

/// The registration answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The node as registered.
    pub node: NodeInfo,
    /// The client certificate (PEM) to present on every later call.
    pub client_certificate_pem: String,
}

/// A node's new keys: a WireGuard public key and a certificate request
/// for a new TLS key, sent with the current client certificate before the
/// old keys expire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotateRequest {
    /// The new WireGuard public key.
    pub wireguard_key: WireGuardKey,
    /// PKCS#10 request for the new client certificate (base64 DER).
    pub csr_der: String,
}

/// A node asks for a TLS certificate for its MagicDNS name (what `tailscale
/// cert` gets): its certificate request names that one name and holds a key
/// that never leaves the node; the coordinator proves the name to its ACME
/// CA (it answers the DNS-01 challenge itself) and hands the CA's chain back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertRequest {
    /// PKCS#10 request for the name (base64 DER).
    pub csr_der: String,
}

impl CertRequest {
    /// The decoded certificate request, if the base64 is valid.
    pub fn csr_bytes(&self) -> Option<Vec<u8>> {
        decode_der(&self.csr_der)
    }
}

/// The CA's answer to a [`CertRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertResponse {
    /// The name the certificate is for.
    pub domain: String,
    /// The certificate and the CA's intermediates, PEM, leaf first.
    pub chain_pem: String,
}

impl RotateRequest {
    /// The decoded certificate request, if the base64 is valid.
    pub fn csr_bytes(&self) -> Option<Vec<u8>> {
        decode_der(&self.csr_der)
    }
}

/// The answer to a rotation: the node with its new expiry, and the new
/// certificate (the old one no longer authenticates).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotateResponse {
    /// The node after the rotation.
    pub node: NodeInfo,
    /// The new client certificate (PEM).
    pub client_certificate_pem: String,
}

/// A peer as a node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Node id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Owning user's login, which the filter's user sources refer to.
    pub user: String,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// WireGuard public key.
    pub wireguard_key: WireGuardKey,
    /// Mesh addresses.
    pub addresses: Vec<IpAddr>,
    /// What to route to this peer: its addresses plus approved routes.
    pub allowed_ips: Vec<IpNet>,
    /// Candidate UDP endpoints, best first.
    pub endpoints: Vec<SocketAddr>,
    /// Owning user's id.
    #[serde(default)]
    pub user_id: i64,
    /// Operating system it reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// Its current disco key, when it finds paths with disco (the official
    /// Tailscale client, and `hearth-agent` on the userspace data plane):
    /// such peers are reached through their home relay until disco proves a
    /// direct path. `None` for static devices and kernel-WireGuard agents,
    /// which speak plain WireGuard at their endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disco_key: Option<WireGuardKey>,
    /// The relay region it is connected to (its home relay), where packets
    /// for it are sent until a direct path works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_relay: Option<u16>,
    /// A Tailscale client's capability version (0: an agent or a static
    /// device): its peers use features, such as peer relays, only with a
    /// peer new enough for them.
    #[serde(default, skip_serializing_if = "is_zero_version")]
    pub capability_version: u16,
    /// When its keys expire (Unix seconds); `None`: never. A Tailscale
    /// client shows it for each peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_expiry: Option<i64>,
    /// The ports of its peer API, for Tailscale clients' Taildrop
    /// (`peerapi4`, `peerapi6`), as it reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<PeerService>,
    /// Its SSH host keys (a Tailscale client running Tailscale SSH), for
    /// the peers' `known_hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_host_keys: Vec<String>,
    /// The services it hosts now (their addresses are among its allowed
    /// IPs): what MagicDNS answers for their names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosted: Vec<hearth_acl::HostedService>,
}

/// A service a peer offers (its peer API's port, for Taildrop).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerService {
    /// `peerapi4`, `peerapi6` or `peerapi-dns-proxy`.
    pub proto: String,
    /// Its port on the peer's mesh address.
    pub port: u16,
}

/// A [`PeerService`] as stored: `proto:port`.
impl std::fmt::Display for PeerService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}:{}", self.proto, self.port)
    }
}

/// Why a text is not a [`PeerService`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerServiceError {
    /// No `:`.
    #[error("`{0}` is not proto:port")]
    NotProtoPort(String),
    /// The port is not a number up to 65535.
    #[error("`{0}` is not a port")]
    NotAPort(String),
}

impl std::str::FromStr for PeerService {
    type Err = PeerServiceError;
    fn from_str(text: &str) -> Result<Self, PeerServiceError> {
        let (proto, port) = text
            .rsplit_once(':')
            .ok_or_else(|| PeerServiceError::NotProtoPort(text.to_owned()))?;
        Ok(PeerService {
            proto: proto.to_owned(),
            port: port
                .parse()
                .map_err(|_| PeerServiceError::NotAPort(port.to_owned()))?,
        })
    }
}

/// One relay (DERP) region nodes may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRegion {
    /// Region id (900 is the relay embedded in the coordinator).
    pub id: u16,
    /// A short name, shown in `status` (`relay hub`).
    pub code: String,
    /// Where its HTTPS listener is: `https://host:port`.
    pub url: String,
    /// SHA-256 of its TLS certificate (hex), pinned by every client.
    pub fingerprint: String,
    /// Its STUN port, if it answers STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stun_port: Option<u16>,
}

/// A node's complete view of the tailnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMap {
    /// The node itself.
    pub node: NodeInfo,
    /// Its peers, by id.
    pub peers: Vec<Peer>,
    /// The inbound filter it enforces.
    pub filter: Filter,
    /// The relays nodes may use, the coordinator's own first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<RelayRegion>,
    /// What the node's own resolver answers (MagicDNS), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<MeshDns>,
}

/// DNS for the mesh, as the coordinator is configured: the nodes' names
/// under `domain`, names of the household's own resolvers' domains, extra
/// records. An agent's resolver at 100.100.100.100 answers from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshDns {
    /// The MagicDNS domain: `<name>.<domain>` is a node.
    pub domain: String,
    /// Domains a short name is tried under, after `domain`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_domains: Vec<String>,
    /// Domains answered by their own resolvers (split DNS).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub split: BTreeMap<String, Vec<IpAddr>>,
    /// Names answered as they are, beside the nodes'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_records: Vec<DnsName>,
}

/// One extra name and its address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsName {
    /// The name, lower case, without a trailing dot.
    pub name: String,
    /// Its address (an `A` record for IPv4, `AAAA` for IPv6).
    pub address: IpAddr,
}

/// One change to a network map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum MapChange {
    /// A new peer.
    PeerAdded {
        /// The peer.
        peer: Peer,
    },
    /// A peer's details changed (endpoints, name, key).
    PeerChanged {
        /// The peer as it is now.
        peer: Peer,
    },
    /// A peer left the view.
    PeerRemoved {
        /// Its id.
        id: NodeId,
    },
    /// The filter changed.
    FilterChanged {
        /// The whole new filter.
        filter: Filter,
    },
    /// The node's own record changed.
    SelfChanged {
        /// The node as it is now.
        node: NodeInfo,
    },
    /// The relay regions changed (a standalone relay joined or left).
    RelaysChanged {
        /// Every region, as it is now.
        relays: Vec<RelayRegion>,
    },
    /// Peers connected to the coordinator (their map stream is open) or
    /// not: sent after every full map for all its peers, then as they come
    /// and go. A peer named in neither list keeps what was last said
    /// (none said: unknown).
    Presence {
        /// Peers connected now.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        online: Vec<NodeId>,
        /// Peers not connected now.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        offline: Vec<NodeId>,
    },
}

/// One line of the map stream (newline-delimited JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MapMessage {
    /// The whole map; always the first message.
    Full {
        /// The map.
        map: Box<NetworkMap>,
    },
    /// Changes to apply in order.
    Delta {
        /// The changes.
        changes: Vec<MapChange>,
    },
    /// Nothing changed; the connection is alive.
    KeepAlive,
    /// The node lost its admission; the stream ends after this.
    Revoked {
        /// Why, in words.
        reason: String,
    },
}

/// One line of the approval stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApprovalMessage {
    /// The node's current state; sent first and on every change.
    State {
        /// The state.
        state: NodeState,
    },
    /// Nothing changed; the connection is alive.
    KeepAlive,
}

/// A node's report of where it can be reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointReport {
    /// The WireGuard UDP port.
    pub listen_port: u16,
    /// Local interface addresses with that port.
    pub local: Vec<SocketAddr>,
    /// The address a STUN server saw, if the node asked one.
    pub stun: Option<SocketAddr>,
    /// Its disco key, when it finds paths with disco (new at each start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disco_key: Option<WireGuardKey>,
    /// The relay region it is connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_relay: Option<u16>,
}

/// The subnet routes (and `0.0.0.0/0`, `::/0` for an exit node) a node offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesReport {
    /// Advertised routes; an admin or `autoApprovers` approves them.
    pub advertised: Vec<IpNet>,
    /// Tailscale Services (`svc:name`) the node serves; the admin or
    /// `autoApprovers.services` makes it their host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// What a standalone relay tells the coordinator when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayHello {
    /// SHA-256 of its TLS certificate (hex), which clients will pin.
    pub fingerprint: String,
    /// Its STUN port, if it answers STUN.
    pub stun_port: Option<u16>,
}

/// One line of the admitted-keys stream a standalone relay follows: the
/// whole set first, then changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayKeys {
    /// Every admitted node key; always the first message.
    Full {
        /// The keys.
        keys: Vec<WireGuardKey>,
    },
    /// Keys of nodes admitted since.
    Added {
        /// The keys.
        keys: Vec<WireGuardKey>,
    },
    /// Keys of nodes no longer admitted: their connections close.
    Removed {
        /// The keys.
        keys: Vec<WireGuardKey>,
    },
    /// Nothing changed; the connection is alive.
    KeepAlive,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `key_expired`.
    pub error: String,
    /// What happened and what to do, for people.
    pub message: String,
}

/// Whether a capability version is unset (agents, static devices).
fn is_zero_version(version: &u16) -> bool {
    *version == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireguard_keys_read_what_wg_prints() {
        let key: WireGuardKey = "YAnz6vFQHYNzJSEJ1IOsRQ9NCR0aNsDVcv7z3cXXSHY="
            .parse()
            .unwrap();
        assert_eq!(
            key.to_string(),
            "YAnz6vFQHYNzJSEJ1IOsRQ9NCR0aNsDVcv7z3cXXSHY="
        );
        assert_eq!("short".parse::<WireGuardKey>(), Err(KeyFormatError));
        assert_eq!("AAAA".parse::<WireGuardKey>(), Err(KeyFormatError));
    }

    #[test]
    fn map_messages_are_tagged_json_lines() {
        let line = serde_json::to_string(&MapMessage::Delta {
            changes: vec![MapChange::PeerRemoved { id: 4 }],
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"delta","changes":[{"change":"peer_removed","id":4}]}"#
        );
        let back: MapMessage = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back,
            MapMessage::Delta {
                changes: vec![MapChange::PeerRemoved { id: 4 }]
            }
        );
        assert_eq!(
            serde_json::to_string(&MapMessage::KeepAlive).unwrap(),
            r#"{"type":"keep_alive"}"#
        );
    }

    #[test]
    fn registration_refuses_unknown_fields() {
        let body = r#"{"auth_key":"k","wireguard_key":"YAnz6vFQHYNzJSEJ1IOsRQ9NCR0aNsDVcv7z3cXXSHY=","hostname":"h","os":"linux","csr_der":"","admin":true}"#;
        let error = serde_json::from_str::<RegisterRequest>(body).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `admin`"),
            "{error}"
        );
    }
}
