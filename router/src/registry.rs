//! The router's registry of compute nodes, fed by heartbeats: which nodes
//! are in rotation, what clients are shown, and which candidate of a
//! request gets it. Pure: the time is an argument.
//!
//! A node is in rotation while its heartbeats keep coming (within the
//! timeout) and no forward to it failed since its last heartbeat. The
//! router never judges evidence: clients do, and seal only for nodes whose
//! evidence passed. It keeps the bundle as the node gave it, within bounds:
//! a bundle of at most [`MAX_BUNDLE`] bytes, a list clients can read whole
//! (at most [`MAX_NODES`] nodes and [`MAX_LIST_BYTES`] bytes, below the
//! clients' limit), at a URL in the allowed networks.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_attest::evidence::MAX_BUNDLE;
use hearth_pcc::NodeEntry;
use hearth_pcc::protocol::{Forward, Heartbeat, Load};

use crate::reach::{NodeNetworks, Unreachable};

/// Most nodes a router keeps.
pub const MAX_NODES: usize = 256;
/// Most models a node may list.
pub const MAX_MODELS: usize = 32;
/// Most bytes the node list clients fetch may have: well below what they
/// read ([`hearth_pcc::client::MAX_NODE_LIST`]), so that one more node can
/// never make the whole list unreadable (an outage of private compute).
pub const MAX_LIST_BYTES: usize = hearth_pcc::client::MAX_NODE_LIST * 3 / 4;

/// Why a heartbeat is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeartbeatError {
    /// The bundle breaks its rules.
    #[error("{0}")]
    Bundle(String),
    /// The URL is not one the router may send to.
    #[error(transparent)]
    Url(#[from] Unreachable),
    /// A model name is empty, long, or there are too many.
    #[error("`models` must list 1 to {MAX_MODELS} names of 1 to 128 characters")]
    Models,
    /// The bundle is larger than clients take.
    #[error("the evidence bundle is {0} bytes; at most {MAX_BUNDLE}")]
    BundleTooLarge(usize),
    /// The registry is full.
    #[error("the router keeps at most {MAX_NODES} nodes and {MAX_LIST_BYTES} bytes of them")]
    Full,
}

#[derive(Clone, Debug)]
struct Registered {
    heartbeat: Heartbeat,
    last_heartbeat: Duration,
    failed: bool,
    forwarded: u32,
    /// Bytes it takes in the node list.
    size: usize,
}

/// The nodes the router knows.
#[derive(Debug)]
pub struct Registry {
    nodes: BTreeMap<String, Registered>,
    timeout: Duration,
    networks: NodeNetworks,
    listed_bytes: usize,
}

/// Bytes `heartbeat` takes in the node list (its bundle, models and load,
/// as clients receive them).
fn listed_size(heartbeat: &Heartbeat) -> usize {
    let bundle = serde_json::to_vec(&heartbeat.bundle).map_or(usize::MAX, |json| json.len());
    let models: usize = heartbeat.models.iter().map(|model| model.len() + 3).sum();
    bundle.saturating_add(models).saturating_add(128)
}

impl Registry {
    /// A registry that drops a node from rotation `timeout` after its last
    /// heartbeat and takes nodes reachable in `networks` only.
    pub fn new(timeout: Duration, networks: NodeNetworks) -> Registry {
        Registry {
            nodes: BTreeMap::new(),
            timeout,
            networks,
            listed_bytes: 0,
        }
    }

    /// Records a heartbeat at `now`; a node that failed rejoins rotation.
    pub fn heartbeat(&mut self, heartbeat: Heartbeat, now: Duration) -> Result<(), HeartbeatError> {
        heartbeat
            .bundle
            .check()
            .map_err(|error| HeartbeatError::Bundle(error.to_string()))?;
        let bundle_bytes =
            serde_json::to_vec(&heartbeat.bundle).map_or(usize::MAX, |json| json.len());
        if bundle_bytes > MAX_BUNDLE {
            return Err(HeartbeatError::BundleTooLarge(bundle_bytes));
        }
        self.networks.check(&heartbeat.url)?;
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
        let size = listed_size(&heartbeat);
        let fits = |registry: &Registry| {
            let known = registry.nodes.get(&id);
            let count = registry.nodes.len() + usize::from(known.is_none());
            let bytes = registry.listed_bytes - known.map_or(0, |node| node.size) + size;
            count <= MAX_NODES && bytes <= MAX_LIST_BYTES
        };
        if !fits(self) {
            self.forget_silent(now);
            if !fits(self) {
                return Err(HeartbeatError::Full);
            }
        }
        let forwarded = self.nodes.get(&id).map_or(0, |node| node.forwarded);
        let replaced = self.nodes.insert(
            id,
            Registered {
                heartbeat,
                last_heartbeat: now,
                failed: false,
                forwarded,
                size,
            },
        );
        self.listed_bytes = self.listed_bytes - replaced.map_or(0, |node| node.size) + size;
        Ok(())
    }

    /// Whether the router may send to `url` (checked again before each
    /// request).
    pub fn reachable(&self, url: &str) -> bool {
        self.networks.check(url).is_ok()
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
        self.listed_bytes = self.nodes.values().map(|node| node.size).sum();
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
        let mut registry = Registry::new(15 * SECOND, NodeNetworks::default());
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
        let mut registry = Registry::new(15 * SECOND, NodeNetworks::default());
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
        let mut registry = Registry::new(15 * SECOND, NodeNetworks::default());
        for url in [
            "https://10.0.0.2:7000",
            "http://node.example:7000",
            "http://0.0.0.0:7000",
            "http://10.0.0.2:0",
            "ftp://x",
            "http://169.254.169.254:80",
            "http://127.0.0.1:22",
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

    #[test]
    fn bundles_and_the_list_stay_within_what_clients_read() {
        let mut registry = Registry::new(15 * SECOND, NodeNetworks::default());
        let mut huge = heartbeat("big", 0);
        huge.bundle = EvidenceBundle::new("big", &[1; 32], "hearth-dev", &vec![7; MAX_BUNDLE]);
        assert!(matches!(
            registry.heartbeat(huge, SECOND),
            Err(HeartbeatError::BundleTooLarge(_))
        ));
        // Nodes with the largest bundles allowed, until the list is full.
        let near_limit = MAX_BUNDLE * 3 / 4 - 2048;
        let mut taken = 0;
        for index in 0..MAX_NODES {
            let node = format!("node-{index}");
            let mut beat = heartbeat(&node, 0);
            beat.bundle = EvidenceBundle::new(&node, &[1; 32], "hearth-dev", &vec![7; near_limit]);
            match registry.heartbeat(beat, SECOND) {
                Ok(()) => taken += 1,
                Err(HeartbeatError::Full) => break,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(taken > 10 && taken < MAX_NODES, "{taken}");
        let list = serde_json::to_vec(&hearth_pcc::protocol::NodeList {
            nodes: registry.list(SECOND),
        })
        .unwrap();
        assert!(list.len() <= MAX_LIST_BYTES, "{}", list.len());
        // A node already listed keeps heartbeating.
        let mut again = heartbeat("node-0", 0);
        again.bundle = EvidenceBundle::new("node-0", &[1; 32], "hearth-dev", &vec![7; near_limit]);
        assert_eq!(registry.heartbeat(again, 2 * SECOND), Ok(()));
        // Silent nodes make room.
        registry
            .heartbeat(heartbeat("node-0", 0), 200 * SECOND)
            .unwrap();
        assert_eq!(
            registry.heartbeat(heartbeat("fresh", 0), 200 * SECOND),
            Ok(())
        );
    }
}
