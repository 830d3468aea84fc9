//! What travels between clients, the router and compute nodes
//! (docs/private-compute.md). JSON bodies; a sealed request is the e2ee
//! envelope sealed to a node's request encryption key with
//! [`hearth_e2ee::envelope::COMPUTE_INFO`]; a reply is the gateway's stream
//! of sealed chunks.

use hearth_attest::EvidenceBundle;
use hearth_e2ee::ChatEnvelope;
use serde::{Deserialize, Serialize};

/// The router's default port.
pub const ROUTER_PORT: u16 = 3600;
/// Reserved for a user credential (a "badge") between client and router.
/// Clients may send it; this version of the router neither needs nor
/// forwards it.
pub const BADGE_HEADER: &str = "hearth-badge";
/// The router's reply header naming the node that answers.
pub const NODE_HEADER: &str = "hearth-node";
/// Most nodes a client may seal one request for.
pub const MAX_CANDIDATES: usize = 3;
/// Largest sealed request, in bytes of JSON (a long conversation).
pub const MAX_ENVELOPE: usize = 1024 * 1024;
/// Largest body of a forwarded request: the candidates' envelopes.
pub const MAX_FORWARD: usize = MAX_CANDIDATES * MAX_ENVELOPE + 4096;

/// One message of the conversation a node is asked to continue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The sealed request's plaintext.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeRequest {
    /// Which of the node's models.
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<ComputeMessage>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

/// How busy a node is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Replies in progress.
    pub active: u32,
    /// Replies it takes at once.
    pub capacity: u32,
}

/// A node's heartbeat to the router (`POST /v1/nodes/heartbeat`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Where the router reaches the node (`http://address:port`).
    pub url: String,
    /// The models it serves.
    pub models: Vec<String>,
    /// How busy it is.
    pub load: Load,
    /// Its key and evidence; `bundle.node` is its id.
    pub bundle: EvidenceBundle,
}

/// The router's answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatReply {
    /// When to send the next one.
    pub interval_seconds: u64,
}

/// A node as the router lists it for clients (`GET /v1/nodes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Its id.
    pub node: String,
    /// The models it serves.
    pub models: Vec<String>,
    /// How busy it is, as last reported plus what the router forwards.
    pub load: Load,
    /// Its key and evidence, as the node gave them.
    pub bundle: EvidenceBundle,
}

/// `GET /v1/nodes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeList {
    /// Nodes in rotation.
    pub nodes: Vec<NodeEntry>,
}

/// One node a request is sealed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The node.
    pub node: String,
    /// The request sealed to that node's key.
    pub envelope: ChatEnvelope,
}

/// `POST /v1/compute`: the router forwards one envelope to one candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// 1 to [`MAX_CANDIDATES`] nodes, the client's preference first.
    pub candidates: Vec<Candidate>,
}

/// `POST /v1/nodes/{node}/attest` (router) and `POST /v1/attest` (node):
/// fresh evidence with the verifier's nonce in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// 16 to 64 random bytes, unpadded base64url.
    pub nonce: String,
}

/// Smallest and largest nonce, in bytes.
pub const NONCE_BYTES: std::ops::RangeInclusive<usize> = 16..=64;

/// The router's refusal codes (`{"error": {"code": ..., "message": ...}}`);
/// a node's own refusals (e2ee codes) pass through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterCode {
    /// Not a request this router understands.
    Malformed,
    /// The body is larger than allowed.
    TooLarge,
    /// None of the candidates is in rotation.
    NoNode,
    /// The chosen node failed (before or during the reply).
    NodeFailed,
    /// A node's heartbeat without the node token.
    Unauthenticated,
    /// Too many requests from this address.
    RateLimited,
    /// Too many streams in flight.
    Busy,
    /// No such endpoint.
    NotFound,
    /// The endpoint does not take that method.
    MethodNotAllowed,
    /// The body is not declared JSON.
    UnsupportedMediaType,
    /// A code this client does not know.
    #[serde(other)]
    Unknown,
}

impl RouterCode {
    /// The code as it travels.
    pub fn as_str(self) -> &'static str {
        match self {
            RouterCode::Malformed => "malformed",
            RouterCode::TooLarge => "too_large",
            RouterCode::NoNode => "no_node",
            RouterCode::NodeFailed => "node_failed",
            RouterCode::Unauthenticated => "unauthenticated",
            RouterCode::RateLimited => "rate_limited",
            RouterCode::Busy => "busy",
            RouterCode::NotFound => "not_found",
            RouterCode::MethodNotAllowed => "method_not_allowed",
            RouterCode::UnsupportedMediaType => "unsupported_media_type",
            RouterCode::Unknown => "unknown",
        }
    }
}

/// The unsealed `error` event a router appends when a node's reply breaks
/// off: it cannot seal (it holds no key), so it only explains the cut.
pub fn cut_event(code: RouterCode, message: &str) -> String {
    let data = serde_json::json!({"code": code.as_str(), "message": message});
    format!("event: error\ndata: {data}\n\n")
}

/// Checks a forward request's shape: 1 to 3 distinct, valid node ids.
pub fn check_forward(forward: &Forward) -> Result<(), &'static str> {
    if forward.candidates.is_empty() || forward.candidates.len() > MAX_CANDIDATES {
        return Err("`candidates` must hold 1 to 3 nodes");
    }
    for (index, candidate) in forward.candidates.iter().enumerate() {
        if !hearth_attest::evidence::valid_node_id(&candidate.node) {
            return Err("a candidate's `node` is not a node id");
        }
        if forward.candidates[..index]
            .iter()
            .any(|earlier| earlier.node == candidate.node)
        {
            return Err("a node is named twice among the candidates");
        }
    }
    Ok(())
}

/// The key id a node's envelopes carry: the first 16 hex digits of the
/// SHA-256 of its REK.
pub fn key_id(rek: &[u8; 32]) -> String {
    use sha2::Digest as _;
    format!("rek-{}", &hex::encode(sha2::Sha256::digest(rek))[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> ChatEnvelope {
        ChatEnvelope {
            v: 1,
            key_id: "k".into(),
            device_key: "d".into(),
            enc: "e".into(),
            timestamp: 1,
            request_id: "r".into(),
            aad: "a".into(),
            ciphertext: "c".into(),
        }
    }

    #[test]
    fn forwards_name_one_to_three_distinct_nodes() {
        let candidate = |node: &str| Candidate {
            node: node.into(),
            envelope: envelope(),
        };
        let forward = |nodes: &[&str]| Forward {
            candidates: nodes.iter().map(|node| candidate(node)).collect(),
        };
        assert!(check_forward(&forward(&["a"])).is_ok());
        assert!(check_forward(&forward(&["a", "b", "c"])).is_ok());
        assert!(check_forward(&forward(&[])).is_err());
        assert!(check_forward(&forward(&["a", "b", "c", "d"])).is_err());
        assert!(check_forward(&forward(&["a", "a"])).is_err());
        assert!(check_forward(&forward(&["a b"])).is_err());
    }

    #[test]
    fn codes_travel_as_their_names() {
        for code in [
            RouterCode::NoNode,
            RouterCode::NodeFailed,
            RouterCode::TooLarge,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        let unknown: RouterCode = serde_json::from_str("\"from_the_future\"").unwrap();
        assert_eq!(unknown, RouterCode::Unknown);
        assert!(cut_event(RouterCode::NodeFailed, "gone").starts_with("event: error\ndata: {"));
    }
}
