//! The router's registry of compute nodes, fed by heartbeats: which nodes
//! are in rotation, what clients are shown, and which candidate of a
//! request gets it. Pure: the time is an argument.
//!
//! A node is in rotation while its heartbeats keep coming (within the
//! timeout) and no forward to it failed since its last heartbeat. The
//! router never judges evidence: clients do, and seal only for nodes whose
//! evidence passed. It keeps the bundle as the node gave it.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_pcc::NodeEntry;
use hearth_pcc::protocol::{Forward, Heartbeat, Load};

/// Most nodes a router keeps.
pub const MAX_NODES: usize = 1024;
/// Most models a node may list.
pub const MAX_MODELS: usize = 32;

/// Why a heartbeat is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeartbeatError {
    /// The bundle breaks its rules.
    #[error("{0}")]
    Bundle(String),
    /// The URL is not `http://IP:port`.
    #[error("`url` must be http://IP:port (an address, not a name): {0}")]
    Url(String),
    /// A model name is empty, long, or there are too many.
    #[error("`models` must list 1 to {MAX_MODELS} names of 1 to 128 characters")]
    Models,
    /// The registry is full.
    #[error("the router keeps at most {MAX_NODES} nodes")]
    Full,
}

#[derive(Clone, Debug)]
struct Registered {
    heartbeat: Heartbeat,
    last_heartbeat: Duration,
    failed: bool,
    forwarded: u32,
}

/// The nodes the router knows.
#[derive(Debug)]
pub struct Registry {
    nodes: BTreeMap<String, Registered>,
    timeout: Duration,
}

impl Registry {
    /// A registry that drops a node from rotation `timeout` after its last
    /// heartbeat.
    pub fn new(timeout: Duration) -> Registry {
        Registry {
            nodes: BTreeMap::new(),
            timeout,
        }
    }

    /// Records a heartbeat at `now`; a node that failed rejoins rotation.
    pub fn heartbeat(&mut self, heartbeat: Heartbeat, now: Duration) -> Result<(), HeartbeatError> {
        heartbeat
            .bundle
            .check()
            .map_err(|error| HeartbeatError::Bundle(error.to_string()))?;
        check_url(&heartbeat.url)?;
        if heartbeat.models.is_empty()
            || heartbeat.models.len() > MAX_MODELS
            || heartbeat
                .models
                .iter()
                .any(|model| model.is_empty() || model.len() > 128)
        {
            return Err(HeartbeatError::Models);
        }
        let id = heartbeat.bundle.node.clone();
        if !self.nodes.contains_key(&id) && self.nodes.len() >= MAX_NODES {
            self.forget_silent(now);
            if self.nodes.len() >= MAX_NODES {
                return Err(HeartbeatError::Full);
            }
        }
        let forwarded = self.nodes.get(&id).map_or(0, |node| node.forwarded);
        self.nodes.insert(
            id,
            Registered {
                heartbeat,
                last_heartbeat: now,
                failed: false,
                forwarded,
            },
        );
        Ok(())
    }

    fn in_rotation(&self, node: &Registered, now: Duration) -> bool {
        !node.failed && now.saturating_sub(node.last_heartbeat) <= self.timeout
    }

    /// Forgets nodes silent for ten timeouts (they are long out of rotation).
    pub fn forget_silent(&mut self, now: Duration) {
        let limit = self.timeout * 10;
        self.nodes.retain(|_, node| {
            now.saturating_sub(node.last_heartbeat) <= limit || node.forwarded > 0
        });
    }

    fn load(node: &Registered) -> Load {
        Load {
            active: node.heartbeat.load.active.max(node.forwarded),
            capacity: node.heartbeat.load.capacity,
        }
    }

    /// The nodes in rotation, as clients see them.
    pub fn list(&self, now: Duration) -> Vec<NodeEntry> {
        self.nodes
            .iter()
            .filter(|(_, node)| self.in_rotation(node, now))
            .map(|(id, node)| NodeEntry {
                node: id.clone(),
                models: node.heartbeat.models.clone(),
                load: Registry::load(node),
                bundle: node.heartbeat.bundle.clone(),
            })
            .collect()
    }

    /// How many nodes are in rotation.
    pub fn count(&self, now: Duration) -> usize {
        self.nodes
            .values()
            .filter(|node| self.in_rotation(node, now))
            .count()
    }

    /// The candidates of `forward` in rotation, in the order to try: the
    /// least loaded first, the client's order among equals. Indices into
    /// `forward.candidates`.
    pub fn order(&self, forward: &Forward, now: Duration) -> Vec<usize> {
        let mut order: Vec<(usize, f64)> = forward
            .candidates
            .iter()
            .enumerate()
            .filter_map(|(index, candidate)| {
                let node = self.nodes.get(&candidate.node)?;
                if !self.in_rotation(node, now) {
                    return None;
                }
                let load = Registry::load(node);
                let fullness = if load.capacity == 0 {
                    f64::INFINITY
                } else {
                    f64::from(load.active) / f64::from(load.capacity)
                };
                Some((index, fullness))
            })
            .collect();
        order.sort_by(|left, right| left.1.total_cmp(&right.1).then(left.0.cmp(&right.0)));
        order.into_iter().map(|(index, _)| index).collect()
    }

    /// Where `node` listens.
    pub fn url(&self, node: &str) -> Option<&str> {
        self.nodes.get(node).map(|node| node.heartbeat.url.as_str())
    }

    /// A forward to `node` started.
    pub fn started(&mut self, node: &str) {
        if let Some(node) = self.nodes.get_mut(node) {
            node.forwarded += 1;
        }
    }

    /// A forward to `node` ended.
    pub fn finished(&mut self, node: &str) {
        if let Some(node) = self.nodes.get_mut(node) {
            node.forwarded = node.forwarded.saturating_sub(1);
        }
    }

    /// `node` could not be reached: out of rotation until it heartbeats.
    pub fn failed(&mut self, node: &str) {
        if let Some(node) = self.nodes.get_mut(node) {
            node.failed = true;
        }
    }
}

fn check_url(text: &str) -> Result<(), HeartbeatError> {
    let refuse = || HeartbeatError::Url(text.chars().take(100).collect());
    let rest = text.strip_prefix("http://").ok_or_else(refuse)?;
    let address: std::net::SocketAddr = rest.trim_end_matches('/').parse().map_err(|_| refuse())?;
    if address.port() == 0 || address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err(refuse());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_attest::EvidenceBundle;
    use hearth_e2ee::ChatEnvelope;
    use hearth_pcc::protocol::Candidate;

    const SECOND: Duration = Duration::from_secs(1);

    fn heartbeat(node: &str, active: u32) -> Heartbeat {
        Heartbeat {
            url: "http://10.0.0.2:7000".into(),
            models: vec!["tiny".into()],
            load: Load {
                active,
                capacity: 4,
            },
            bundle: EvidenceBundle::new(node, &[1; 32], "hearth-dev", b"doc"),
        }
    }

    fn forward(nodes: &[&str]) -> Forward {
        Forward {
            candidates: nodes
                .iter()
                .map(|node| Candidate {
                    node: (*node).into(),
                    envelope: ChatEnvelope {
                        v: 1,
                        key_id: String::new(),
                        device_key: String::new(),
                        enc: String::new(),
                        timestamp: 0,
                        request_id: String::new(),
                        aad: String::new(),
                        ciphertext: String::new(),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn a_node_leaves_rotation_when_its_heartbeats_stop_or_a_forward_fails() {
        let mut registry = Registry::new(15 * SECOND);
        let start = 1000 * SECOND;
        registry.heartbeat(heartbeat("a", 0), start).unwrap();
        registry.heartbeat(heartbeat("b", 0), start).unwrap();
        assert_eq!(registry.count(start + 15 * SECOND), 2);
        registry
            .heartbeat(heartbeat("b", 0), start + 10 * SECOND)
            .unwrap();
        let names =
            |list: Vec<NodeEntry>| list.into_iter().map(|entry| entry.node).collect::<Vec<_>>();
        assert_eq!(names(registry.list(start + 16 * SECOND)), ["b"]);

        registry.failed("b");
        assert!(registry.list(start + 16 * SECOND).is_empty());
        assert!(
            registry
                .order(&forward(&["a", "b"]), start + 16 * SECOND)
                .is_empty()
        );
        registry
            .heartbeat(heartbeat("b", 0), start + 17 * SECOND)
            .unwrap();
        assert_eq!(names(registry.list(start + 17 * SECOND)), ["b"]);

        registry.forget_silent(start + 200 * SECOND);
        assert!(registry.url("a").is_none());
    }

    #[test]
    fn the_least_loaded_candidate_goes_first_and_unknown_ones_are_skipped() {
        let mut registry = Registry::new(15 * SECOND);
        registry.heartbeat(heartbeat("a", 3), SECOND).unwrap();
        registry.heartbeat(heartbeat("b", 1), SECOND).unwrap();
        registry.heartbeat(heartbeat("c", 1), SECOND).unwrap();
        assert_eq!(
            registry.order(&forward(&["a", "ghost", "c", "b"]), SECOND),
            [2, 3, 0]
        );
        // Forwards the router made count even before the next heartbeat.
        registry.started("c");
        registry.started("c");
        assert_eq!(
            registry.order(&forward(&["a", "c", "b"]), SECOND),
            [2, 1, 0]
        );
        registry.finished("c");
        registry.finished("c");
        assert_eq!(registry.list(SECOND)[2].load.active, 1);
    }

    #[test]
    fn heartbeats_with_bad_urls_models_or_bundles_are_refused() {
        let mut registry = Registry::new(15 * SECOND);
        for url in [
            "https://10.0.0.2:7000",
            "http://node.example:7000",
            "http://0.0.0.0:7000",
            "http://10.0.0.2:0",
            "ftp://x",
        ] {
            let mut bad = heartbeat("a", 0);
            bad.url = url.into();
            assert!(
                matches!(registry.heartbeat(bad, SECOND), Err(HeartbeatError::Url(_))),
                "{url}"
            );
        }
        let mut bad = heartbeat("a", 0);
        bad.models.clear();
        assert_eq!(registry.heartbeat(bad, SECOND), Err(HeartbeatError::Models));
        let mut bad = heartbeat("a", 0);
        bad.bundle.node = "not an id".into();
        assert!(matches!(
            registry.heartbeat(bad, SECOND),
            Err(HeartbeatError::Bundle(_))
        ));
        assert_eq!(registry.count(SECOND), 0);
    }
}
