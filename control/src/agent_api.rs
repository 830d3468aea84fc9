//! The agent's local API as its clients see it: services on a node (the AI
//! gateway, the messaging service) ask the agent who is behind a tunnel
//! address, over the agent's UNIX socket.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Path of `whois` on the agent's socket (`?ip=ADDRESS`).
pub const WHOIS_PATH: &str = "/v1/whois";
/// Path of the peer list on the agent's socket (`?tag=TAG`: those with
/// that tag): a JSON array of [`WhoIs`].
pub const PEERS_PATH: &str = "/v1/peers";
/// Path of the change feed on the agent's socket: JSON lines
/// `{"generation": N}`, one at once and one whenever the mesh view changes.
pub const WATCH_PATH: &str = "/v1/watch";

/// Who holds a mesh address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoIs {
    /// Node id.
    pub id: u64,
    /// Node name.
    pub name: String,
    /// Owning user.
    pub user: String,
    /// Tags (a tagged node acts as its tags, not its user).
    pub tags: Vec<String>,
    /// Its mesh addresses.
    pub addresses: Vec<IpAddr>,
    /// Whether it is the node the agent runs on.
    pub is_self: bool,
    /// The application capabilities it has at this node (policy `grants`
    /// with `app`): capability name -> granted values.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub capabilities: std::collections::BTreeMap<String, serde_json::Value>,
    /// Whether it is connected to the coordinator now, as the coordinator
    /// last said (`None`: it has not said; the node itself is online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
}

/// Whether `address` is in the mesh's IPv4 range, 100.64.0.0/10.
pub fn is_mesh_ipv4(address: std::net::Ipv4Addr) -> bool {
    let [first, second, ..] = address.octets();
    first == 100 && (64..128).contains(&second)
}

/// The local addresses listed in `fib_trie` (the text of
/// `/proc/net/fib_trie`, which shows each as a "/32 host LOCAL" entry).
pub fn local_ipv4_addresses(fib_trie: &str) -> Vec<std::net::Ipv4Addr> {
    let lines: Vec<&str> = fib_trie.lines().collect();
    let mut found: Vec<std::net::Ipv4Addr> = lines
        .windows(2)
        .filter(|pair| pair[1].contains("/32 host LOCAL"))
        .filter_map(|pair| pair[0].split_whitespace().last()?.parse().ok())
        .collect();
    found.dedup();
    found
}

/// This node's mesh address: the local IPv4 address in 100.64.0.0/10 (the
/// agent puts it on the mesh interface), if the agent is up.
pub fn mesh_address() -> Option<IpAddr> {
    let text = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    local_ipv4_addresses(&text)
        .into_iter()
        .find(|address| is_mesh_ipv4(*address))
        .map(IpAddr::V4)
}

/// Why the agent could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentApiError {
    /// The socket is not there or nothing answers on it.
    #[error("cannot reach the agent at {socket}: {reason}")]
    Unreachable {
        /// The socket.
        socket: String,
        /// Why.
        reason: String,
    },
    /// The agent answered with an unexpected status.
    #[error("the agent answered {0}")]
    Status(u16),
    /// The agent's answer is not what the API says.
    #[error("the agent's answer is not readable: {0}")]
    Unreadable(String),
    /// The change feed ended (the agent stopped) or fell silent.
    #[error("the agent's change feed ended")]
    FeedEnded,
}

fn unreachable(socket: &Path, error: impl std::fmt::Display) -> AgentApiError {
    AgentApiError::Unreachable {
        socket: socket.display().to_string(),
        reason: error.to_string(),
    }
}

/// A client for one short question to the agent on `socket`.
fn asking(socket: &Path) -> Result<reqwest::Client, AgentApiError> {
    reqwest::Client::builder()
        .unix_socket(socket)
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|error| unreachable(socket, error))
}

/// Asks the agent listening on `socket` who holds `address`: `Ok(None)` when
/// no node of the mesh does, `Err` when the agent cannot be asked.
pub async fn whois(socket: &Path, address: IpAddr) -> Result<Option<WhoIs>, AgentApiError> {
    let response = asking(socket)?
        .get(format!("http://agent{WHOIS_PATH}"))
        .query(&[("ip", address.to_string())])
        .send()
        .await
        .map_err(|error| unreachable(socket, error))?;
    match response.status().as_u16() {
        200 => response
            .json()
            .await
            .map(Some)
            .map_err(|error| AgentApiError::Unreadable(error.to_string())),
        404 => Ok(None),
        status => Err(AgentApiError::Status(status)),
    }
}

/// The mesh's nodes tagged `tag` that the agent on `socket` sees, as
/// `whois` would name them (with whether each is connected now).
pub async fn peers_tagged(socket: &Path, tag: &str) -> Result<Vec<WhoIs>, AgentApiError> {
    let response = asking(socket)?
        .get(format!("http://agent{PEERS_PATH}"))
        .query(&[("tag", tag)])
        .send()
        .await
        .map_err(|error| unreachable(socket, error))?;
    match response.status().as_u16() {
        200 => response
            .json()
            .await
            .map_err(|error| AgentApiError::Unreadable(error.to_string())),
        status => Err(AgentApiError::Status(status)),
    }
}

/// Follows the agent's change feed on `socket`, calling `changed` with each
/// generation (the first at once); returns when the feed ends or fails (the
/// caller then stops trusting what it remembered, and calls again).
pub async fn watch(socket: &Path, mut changed: impl FnMut(u64)) -> Result<(), AgentApiError> {
    use futures_util::StreamExt as _;
    let http = reqwest::Client::builder()
        .unix_socket(socket)
        .build()
        .map_err(|error| unreachable(socket, error))?;
    let response = http
        .get(format!("http://agent{WATCH_PATH}"))
        .send()
        .await
        .map_err(|error| unreachable(socket, error))?;
    if !response.status().is_success() {
        return Err(AgentApiError::Status(response.status().as_u16()));
    }
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    // A line comes at least every 30 s; silence for longer is a dead feed.
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(45), body.next()).await {
        let chunk = chunk.map_err(|error| unreachable(socket, error))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let generation = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|value| value["generation"].as_u64())
                .ok_or_else(|| {
                    AgentApiError::Unreadable("the change feed is not JSON lines".into())
                })?;
            changed(generation);
        }
    }
    Err(AgentApiError::FeedEnded)
}

/// The mesh's changes, as the agent's change feed tells them: a generation
/// that moves whenever the mesh view changed (a node added, removed,
/// expired or renamed, a grant changed) or the feed was lost. A service
/// that remembered who is behind an address, or keeps a connection open as
/// someone, checks again when it moves ([`Changes::subscribe`]); while the
/// feed is not followed, nothing may be remembered ([`Changes::following`]).
pub struct Changes {
    socket: std::path::PathBuf,
    following: std::sync::atomic::AtomicBool,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Changes {
    /// The changes of the agent at `socket` (followed once [`Changes::follow`] runs).
    pub fn new(socket: std::path::PathBuf) -> Changes {
        Changes {
            socket,
            following: std::sync::atomic::AtomicBool::new(false),
            generation: tokio::sync::watch::channel(0).0,
        }
    }

    /// The agent's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A receiver that sees every move of the generation.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The generation now.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Whether the feed is followed right now.
    pub fn following(&self) -> bool {
        self.following.load(std::sync::atomic::Ordering::Acquire)
    }

    fn moved(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Follows the agent's change feed until the task is dropped: every
    /// change moves the generation; while the feed is down it moves once
    /// and the feed is asked for again every second.
    pub async fn follow(&self) {
        loop {
            let ended = watch(&self.socket, |_| {
                self.following
                    .store(true, std::sync::atomic::Ordering::Release);
                self.moved();
            })
            .await;
            self.following
                .store(false, std::sync::atomic::Ordering::Release);
            self.moved();
            if let Err(error) = ended {
                tracing::debug!(%error, "the agent's change feed is down");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_read_from_fib_trie() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.77.0.2\n        /32 host LOCAL\n     |-- 100.64.0.7\n        /32 host LOCAL\n     |-- 10.77.0.255\n        /32 link BROADCAST\n";
        let found = local_ipv4_addresses(text);
        assert_eq!(
            found,
            [
                std::net::Ipv4Addr::new(10, 77, 0, 2),
                std::net::Ipv4Addr::new(100, 64, 0, 7)
            ]
        );
        assert!(is_mesh_ipv4(found[1]) && !is_mesh_ipv4(found[0]));
        assert!(!is_mesh_ipv4(std::net::Ipv4Addr::new(100, 128, 0, 1)));
    }
}
