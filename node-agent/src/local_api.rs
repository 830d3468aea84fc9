//! The agent's local API, on `STATE_DIR/agent.sock` (0600): `status`, `ping`
//! and `whois`, for the CLI and for local services (the gateway and the
//! messaging service ask `whois` who is behind a tunnel address).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_control::wire::{NodeInfo, WireGuardKey};
use serde::{Deserialize, Serialize};

use crate::dataplane::{Backend, PathStatus, PeerStats};
use crate::mesh::Mesh;
use hearth_control::agent_api::WhoIs;

/// How the agent's connection to the coordinator is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorStatus {
    /// The coordinator's URL.
    pub url: String,
    /// Whether the map stream is open.
    pub connected: bool,
    /// The last problem, while disconnected.
    pub last_error: Option<String>,
}

/// One peer in `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Node id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Owning user.
    pub user: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Mesh addresses.
    pub addresses: Vec<IpAddr>,
    /// The endpoint in use.
    pub endpoint: Option<SocketAddr>,
    /// The path in use: direct, or through a relay.
    #[serde(default)]
    pub path: Option<PathStatus>,
    /// Last completed handshake, Unix seconds.
    pub last_handshake: Option<u64>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// The answer to `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node, once the first map arrived.
    pub node: Option<NodeInfo>,
    /// The WireGuard implementation in use.
    pub backend: Backend,
    /// The userspace data plane's kernel offloads ("tun-tso udp-gso ...",
    /// or "none" on the fallback path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offloads: Option<String>,
    /// The mesh interface.
    pub interface: String,
    /// The WireGuard port.
    pub listen_port: u16,
    /// The control connection.
    pub coordinator: CoordinatorStatus,
    /// Peers, by id.
    pub peers: Vec<PeerStatus>,
    /// Relay connections (userspace data plane).
    #[serde(default)]
    pub relays: Vec<crate::relay::RegionStatus>,
    /// This node as a peer relay, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_relay: Option<crate::dataplane::PeerRelayStatus>,
    /// The MagicDNS domain (`<node>.<domain>`, `<service>.<domain>`), once
    /// the coordinator gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
}

/// Request of `ping`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PingRequest {
    /// Peer name or mesh address.
    pub peer: String,
    /// How many echo requests.
    pub count: u16,
}

/// Answer of `ping`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PingResult {
    /// The peer's name.
    pub peer: String,
    /// The address pinged.
    pub target: IpAddr,
    /// Round-trip time per request in milliseconds; `None` when it timed out.
    pub replies: Vec<Option<f64>>,
    /// The path each request went by.
    #[serde(default)]
    pub paths: Vec<Option<PathStatus>>,
    /// Relay region names, for the paths that went through one.
    #[serde(default)]
    pub relay_codes: std::collections::BTreeMap<u16, String>,
}

/// What the agent knows and its tasks share with the local API: the mesh
/// view, the data plane's counters, the coordinator connection, the change
/// feed's generation.
pub struct AgentState {
    /// The mesh view.
    pub mesh: RwLock<Mesh>,
    /// Latest data-plane counters by peer key.
    pub stats: RwLock<HashMap<WireGuardKey, PeerStats>>,
    /// The control connection.
    pub coordinator: RwLock<CoordinatorStatus>,
    /// The WireGuard implementation.
    pub backend: Backend,
    /// The mesh interface.
    pub interface: String,
    /// The WireGuard port.
    pub listen_port: u16,
    /// Counts changes of the mesh view: services that remember who holds an
    /// address watch it and forget when it moves.
    pub generation: tokio::sync::watch::Sender<u64>,
    /// The relay connections.
    pub relays: Arc<crate::relay::RelayStatus>,
    /// The data plane, for live paths.
    pub plane: Arc<crate::dataplane::DataPlane>,
    /// The node's TLS certificates.
    pub certificates: Arc<crate::certs::Certificates>,
}

impl AgentState {
    /// The current status.
    pub fn status(&self) -> Status {
        let mesh = hearth_runtime::read(&self.mesh).clone();
        let stats = hearth_runtime::read(&self.stats).clone();
        let unix = |time: SystemTime| {
            time.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|elapsed| elapsed.as_secs())
        };
        let peers = mesh
            .peers
            .values()
            .map(|peer| {
                let counters = stats.get(&peer.wireguard_key);
                PeerStatus {
                    id: peer.id,
                    name: peer.name.clone(),
                    user: peer.user.clone(),
                    tags: peer.tags.iter().cloned().collect(),
                    addresses: peer.addresses.clone(),
                    endpoint: counters.and_then(|counters| counters.endpoint),
                    // The live path (the counters are a second old).
                    path: self
                        .plane
                        .path_of(&peer.wireguard_key)
                        .or(counters.and_then(|counters| counters.path)),
                    last_handshake: counters
                        .and_then(|counters| counters.last_handshake)
                        .and_then(unix),
                    rx_bytes: counters.map_or(0, |counters| counters.rx_bytes),
                    tx_bytes: counters.map_or(0, |counters| counters.tx_bytes),
                }
            })
            .collect();
        Status {
            dns_domain: mesh.dns.as_ref().map(|dns| dns.domain.clone()),
            node: mesh.node.clone(),
            backend: self.backend,
            offloads: self.plane.offloads(),
            interface: self.interface.clone(),
            listen_port: self.listen_port,
            coordinator: hearth_runtime::read(&self.coordinator).clone(),
            peers,
            relays: hearth_runtime::read(&self.relays)
                .values()
                .cloned()
                .collect(),
            peer_relay: self.plane.peer_relay(),
        }
    }

    /// Notes that the mesh view changed (peers came, went or changed).
    pub fn changed(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Who holds `address`.
    pub fn whois(&self, address: IpAddr) -> Option<WhoIs> {
        hearth_runtime::read(&self.mesh).whois(address)
    }
}

/// Query of `whois`.
#[derive(Debug, Deserialize)]
struct WhoisQuery {
    ip: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(hearth_control::wire::ErrorBody {
            error: status.as_str().into(),
            message,
        }),
    )
        .into_response()
}

/// The API routes.
pub fn router(shared: Arc<AgentState>) -> Router {
    Router::new()
        .route(
            "/v1/status",
            get(|State(shared): State<Arc<AgentState>>| async move { Json(shared.status()) }),
        )
        .route(hearth_control::agent_api::WHOIS_PATH, get(whois))
        .route(hearth_control::agent_api::WATCH_PATH, get(watch))
        .route(hearth_control::agent_api::PEERS_PATH, get(peers))
        .route("/v1/ping", post(ping))
        .route(CERT_PATH, post(certificate))
        .with_state(shared)
}

/// The local API's certificate request.
pub const CERT_PATH: &str = "/v1/cert";

/// `POST /v1/cert`: the certificate for this node's MagicDNS name (the kept
/// one while it is not due, else a new one from the coordinator's CA).
async fn certificate(State(shared): State<Arc<AgentState>>) -> Response {
    let Some(domain) = crate::certs::own_name(&hearth_runtime::read(&shared.mesh)) else {
        return error(
            StatusCode::CONFLICT,
            crate::certs::CertError::NoName.to_string(),
        );
    };
    let now = hearth_runtime::clock::unix_seconds();
    match shared.certificates.get(&domain, now).await {
        Ok(certificate) => Json(certificate).into_response(),
        Err(refusal @ crate::certs::CertError::Refused(_)) => {
            error(StatusCode::BAD_GATEWAY, refusal.to_string())
        }
        Err(other) => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn whois(State(shared): State<Arc<AgentState>>, Query(query): Query<WhoisQuery>) -> Response {
    let Ok(address) = query.ip.parse::<IpAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{}` is not an IP address", query.ip),
        );
    };
    match shared.whois(address) {
        Some(answer) => Json(answer).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no node of this mesh has address {address}"),
        ),
    }
}

/// Query of the peer list.
#[derive(Debug, Deserialize)]
struct PeersQuery {
    tag: String,
}

/// The peers with a tag (the gateway finds the household's model servers
/// so), as `whois` names them, with whether each is connected.
async fn peers(State(shared): State<Arc<AgentState>>, Query(query): Query<PeersQuery>) -> Response {
    Json(hearth_runtime::read(&shared.mesh).tagged(&query.tag)).into_response()
}

/// The mesh view's generation as a stream of JSON lines: the current one at
/// once, then one line per change, and the same again every 30 s while
/// nothing changes (so a client notices a dead connection).
async fn watch(State(shared): State<Arc<AgentState>>) -> Response {
    let receiver = shared.generation.subscribe();
    let lines =
        futures_util::stream::unfold((receiver, true), |(mut receiver, first)| async move {
            if !first {
                let changed =
                    tokio::time::timeout(Duration::from_secs(30), receiver.changed()).await;
                if let Ok(Err(_)) = changed {
                    return None; // the agent is stopping
                }
            }
            let generation = *receiver.borrow_and_update();
            let line = format!("{}\n", serde_json::json!({ "generation": generation }));
            Some((Ok::<_, std::convert::Infallible>(line), (receiver, false)))
        });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn ping(State(shared): State<Arc<AgentState>>, Json(request): Json<PingRequest>) -> Response {
    let found = {
        let mesh = hearth_runtime::read(&shared.mesh);
        mesh.find_peer(&request.peer).map(|peer| {
            let target = peer.addresses.iter().find_map(|address| match address {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            });
            (peer.name.clone(), target, peer.wireguard_key)
        })
    };
    let Some((name, Some(target), key)) = found else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no peer is called or has address `{}`", request.peer),
        );
    };
    let count = request.count.clamp(1, 100);
    let plane = Arc::clone(&shared.plane);
    let replies = tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|sequence| {
                let reply = crate::ping::ping_once(target, sequence, Duration::from_secs(1));
                let path = plane.path_of(&key);
                if sequence + 1 < count {
                    std::thread::sleep(Duration::from_millis(200));
                }
                reply.map(|rtt| (rtt.map(|rtt| rtt.as_secs_f64() * 1000.0), path))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    let relay_codes = hearth_runtime::read(&shared.relays)
        .values()
        .map(|region| (region.region, region.code.clone()))
        .collect();
    match replies {
        Ok(Ok(replies)) => Json(PingResult {
            peer: name,
            target: target.into(),
            paths: replies.iter().map(|(_, path)| *path).collect(),
            replies: replies.into_iter().map(|(rtt, _)| rtt).collect(),
            relay_codes,
        })
        .into_response(),
        Ok(Err(io)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot send ICMP: {io}"),
        ),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    }
}

/// Serves the API on `socket` until `stop` completes.
pub async fn serve(
    socket: &Path,
    shared: Arc<AgentState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match std::fs::remove_file(socket) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(stop)
        .await
}

/// Serves only `whois` on `socket`, mode 0660 and group `group`: services
/// that identify callers (the gateway, messaging) can use it from a
/// container as another user, without the rest of the API. Runs until the
/// task is aborted.
pub async fn serve_whois(
    socket: &Path,
    group: u32,
    shared: Arc<AgentState>,
) -> std::io::Result<()> {
    match std::fs::remove_file(socket) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    std::os::unix::fs::chown(socket, None, Some(group))?;
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    let router = Router::new()
        .route(hearth_control::agent_api::WHOIS_PATH, get(whois))
        .route(hearth_control::agent_api::WATCH_PATH, get(watch))
        .route(hearth_control::agent_api::PEERS_PATH, get(peers))
        .with_state(shared);
    axum::serve(listener, router).await
}

/// The id of `group`: a number, or a name looked up in `group_file` (the
/// text of /etc/group).
pub fn group_id(group: &str, group_file: &str) -> Option<u32> {
    if let Ok(id) = group.parse() {
        return Some(id);
    }
    group_file.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(group))
            .then(|| fields.nth(1))
            .flatten()
            .and_then(|id| id.parse().ok())
    })
}

/// A local API failure seen by a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The agent is not running (or another state dir was given).
    #[error("cannot reach the agent at {}: {reason}\n(is `hearth-agent up` running with the same --state-dir?)", socket.display())]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// Why.
        reason: String,
    },
    /// The agent refused.
    #[error("{0}")]
    Refused(String),
}

/// A client of the local API.
pub struct Client {
    socket: PathBuf,
    http: reqwest::Client,
}

impl Client {
    /// A client of the agent whose socket is `socket`.
    pub fn new(socket: &Path) -> Client {
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .build()
            .expect("a plain HTTP client builds");
        Client {
            socket: socket.to_owned(),
            http,
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let response = request
            .send()
            .await
            .map_err(|error| ApiError::Unreachable {
                socket: self.socket.clone(),
                reason: std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| error.to_string()),
            })?;
        if !response.status().is_success() {
            let body: Option<hearth_control::wire::ErrorBody> = response.json().await.ok();
            return Err(ApiError::Refused(
                body.map(|body| body.message)
                    .unwrap_or_else(|| "request failed".into()),
            ));
        }
        response
            .json()
            .await
            .map_err(|error| ApiError::Refused(error.to_string()))
    }

    /// `status`.
    pub async fn status(&self) -> Result<Status, ApiError> {
        self.send(self.http.get("http://agent/v1/status")).await
    }

    /// `whois`.
    pub async fn whois(&self, address: &str) -> Result<WhoIs, ApiError> {
        self.send(
            self.http
                .get("http://agent/v1/whois")
                .query(&[("ip", address)]),
        )
        .await
    }

    /// `cert`: the certificate for this node's MagicDNS name.
    pub async fn certificate(&self) -> Result<crate::certs::Certificate, ApiError> {
        let request = self
            .http
            .post(format!("http://agent{CERT_PATH}"))
            .timeout(Duration::from_secs(330));
        self.send(request).await
    }

    /// `ping`.
    pub async fn ping(&self, peer: &str, count: u16) -> Result<PingResult, ApiError> {
        let request = PingRequest {
            peer: peer.to_owned(),
            count,
        };
        self.send(self.http.post("http://agent/v1/ping").json(&request))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::group_id;

    #[test]
    fn groups_by_number_or_name() {
        let file = "root:x:0:\nhearth-whois:x:996:hearth\nother:x:1000:\n";
        assert_eq!(group_id("996", ""), Some(996));
        assert_eq!(group_id("hearth-whois", file), Some(996));
        assert_eq!(group_id("other", file), Some(1000));
        assert_eq!(group_id("missing", file), None);
        assert_eq!(group_id("hearth", file), None, "a member is not a group");
    }
}
