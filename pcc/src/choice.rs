//! Which nodes a client seals a request for: verified ones that serve the
//! model, least loaded first, at most three. Pure.

use crate::protocol::{MAX_CANDIDATES, NodeEntry};

/// How full a node is, as a fraction (a node of no capacity is full).
fn fullness(entry: &NodeEntry) -> f64 {
    if entry.load.capacity == 0 {
        return f64::INFINITY;
    }
    f64::from(entry.load.active) / f64::from(entry.load.capacity)
}

/// The candidates among `verified` for `model`: least loaded first, full
/// nodes last, at most [`MAX_CANDIDATES`].
pub fn candidates<'a>(verified: &'a [NodeEntry], model: &str) -> Vec<&'a NodeEntry> {
    let mut serving: Vec<&NodeEntry> = verified
        .iter()
        .filter(|entry| entry.models.iter().any(|served| served == model))
        .collect();
    serving.sort_by(|left, right| {
        fullness(left)
            .total_cmp(&fullness(right))
            .then_with(|| left.node.cmp(&right.node))
    });
    serving.truncate(MAX_CANDIDATES);
    serving
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Load;
    use hearth_attest::EvidenceBundle;

    fn entry(node: &str, model: &str, active: u32, capacity: u32) -> NodeEntry {
        NodeEntry {
            node: node.into(),
            models: vec![model.into()],
            load: Load { active, capacity },
            bundle: EvidenceBundle::new(node, &[1; 32], "hearth-dev", b""),
        }
    }

    #[test]
    fn the_least_loaded_nodes_serving_the_model_come_first() {
        let nodes = [
            entry("busy", "tiny", 7, 8),
            entry("idle", "tiny", 0, 8),
            entry("other-model", "large", 0, 8),
            entry("half", "tiny", 2, 4),
            entry("none", "tiny", 0, 0),
            entry("quarter", "tiny", 1, 4),
        ];
        let chosen: Vec<&str> = candidates(&nodes, "tiny")
            .iter()
            .map(|entry| entry.node.as_str())
            .collect();
        assert_eq!(chosen, ["idle", "quarter", "half"]);
        assert!(candidates(&nodes, "absent").is_empty());
    }
}
