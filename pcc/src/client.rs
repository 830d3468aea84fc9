//! The client side of private compute: fetch the router's nodes, verify
//! each node's evidence against the policy (cached per request key), seal
//! the request to verified nodes only, and open the streamed reply.
//!
//! No prompt leaves before a node's evidence passed: a node that fails,
//! or whose evidence type is unknown, is never sealed for.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use hearth_attest::{BundleReport, EvidenceBundle, Judgement, Policy, VerifiedKeys};
use hearth_chat_client::SealedReply;
use hearth_e2ee::envelope::{COMPUTE_INFO, seal_request_to};
use hearth_e2ee::{ChunkOpener, KeyPair, ReplyEvent};
use zeroize::Zeroizing;

use crate::choice::candidates;
pub use crate::error::PccError;
use crate::oblivious::{BodyStream, LinkResponse, ObliviousLink};
pub use crate::protocol::key_id;
use crate::protocol::{
    AttestRequest, BADGE_HEADER, Candidate, ComputeRequest, Forward, NODE_HEADER, NodeEntry,
    NodeList, RouterCode,
};

/// The largest node list or evidence answer read.
/// The largest node list a client reads (the router keeps its list below).
pub const MAX_NODE_LIST: usize = 8 * 1024 * 1024;

/// How long a fetched node list is used before it is fetched again.
pub const NODE_LIST_TTL: Duration = Duration::from_secs(5);

/// The node list, fetched at most every [`NODE_LIST_TTL`].
#[derive(Default)]
struct NodeCache {
    fetched: Option<(Duration, Vec<NodeEntry>)>,
}

/// A client of one router under one attestation policy.
pub struct ComputeClient {
    router: String,
    link: Option<ObliviousLink>,
    http: reqwest::Client,
    policy: Policy,
    device: KeyPair,
    badge: Option<Zeroizing<String>>,
    keys: Mutex<VerifiedKeys>,
    nodes: Mutex<NodeCache>,
}

impl std::fmt::Debug for ComputeClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ComputeClient")
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

/// A node and how its evidence was judged.
#[derive(Debug)]
pub struct JudgedNode {
    /// The node as listed.
    pub entry: NodeEntry,
    /// Whether it passed, and the report when it was verified just now.
    pub judgement: Judgement,
}

impl ComputeClient {
    /// A client of the router at `router` (`http://host:3600`), sealing as
    /// `device`, trusting what `policy` allows.
    pub fn new(router: &str, policy: Policy, device: KeyPair) -> ComputeClient {
        ComputeClient {
            router: router.trim_end_matches('/').to_owned(),
            link: None,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            policy,
            device,
            badge: None,
            keys: Mutex::new(VerifiedKeys::default()),
            nodes: Mutex::new(NodeCache::default()),
        }
    }

    /// Sends `badge` in the reserved [`BADGE_HEADER`] (for routers that will
    /// ask for a user credential).
    pub fn with_badge(mut self, badge: Zeroizing<String>) -> ComputeClient {
        self.badge = Some(badge);
        self
    }

    /// A client that reaches the router only through `link` (a relay and
    /// the OHTTP gateway): the router never sees this device's address.
    pub fn oblivious(link: ObliviousLink, policy: Policy, device: KeyPair) -> ComputeClient {
        let mut client = ComputeClient::new(link.router(), policy, device);
        client.link = Some(link);
        client
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sends `method path` (with `body` as JSON when given) to the router,
    /// directly or through the oblivious link.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<LinkResponse, PccError> {
        let mut headers = Vec::new();
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        if let Some(badge) = &self.badge {
            headers.push((BADGE_HEADER, badge.as_str()));
        }
        if let Some(link) = &self.link {
            return link
                .send(
                    &self.http,
                    method,
                    path,
                    &headers,
                    body.as_deref().unwrap_or_default(),
                )
                .await;
        }
        let mut request = match method {
            "GET" => self.http.get(format!("{}{path}", self.router)),
            _ => self.http.post(format!("{}{path}", self.router)),
        };
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| PccError::Transport(error.to_string()))?;
        Ok(LinkResponse {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect(),
            body: Box::pin(
                response
                    .bytes_stream()
                    .map(|piece| piece.map_err(crate::oblivious::BrokenOff::Direct)),
            ),
        })
    }

    /// The router's nodes, fetched now.
    pub async fn fetch_nodes(&self) -> Result<Vec<NodeEntry>, PccError> {
        let response = refused_unless_ok(self.send("GET", "/v1/nodes", None).await?).await?;
        let body = response.collect(MAX_NODE_LIST).await?;
        let list: NodeList =
            serde_json::from_slice(&body).map_err(|error| PccError::Protocol(error.to_string()))?;
        Ok(list.nodes)
    }

    /// The router's nodes, from a list at most [`NODE_LIST_TTL`] old.
    async fn nodes(&self, now: Duration, fresh: bool) -> Result<Vec<NodeEntry>, PccError> {
        if !fresh {
            let cache = hearth_runtime::lock(&self.nodes);
            if let Some((at, nodes)) = &cache.fetched
                && now.saturating_sub(*at) < NODE_LIST_TTL
            {
                return Ok(nodes.clone());
            }
        }
        let nodes = self.fetch_nodes().await?;
        hearth_runtime::lock(&self.nodes).fetched = Some((now, nodes.clone()));
        Ok(nodes)
    }

    /// Judges each node's evidence at `now` (cached per request key).
    pub fn judge(&self, nodes: Vec<NodeEntry>, now: Duration) -> Vec<JudgedNode> {
        let mut keys = hearth_runtime::lock(&self.keys);
        nodes
            .into_iter()
            .map(|entry| {
                let judgement = keys.judge(&entry.bundle, &self.policy, now);
                JudgedNode { entry, judgement }
            })
            .collect()
    }

    /// Fetches the nodes and judges them, for a report.
    pub async fn judged_nodes(&self, now: Duration) -> Result<Vec<JudgedNode>, PccError> {
        let nodes = self.fetch_nodes().await?;
        Ok(self.judge(nodes, now))
    }

    /// Fresh evidence from `node` with a random nonce in it, verified
    /// against the policy and the nonce.
    pub async fn challenge(&self, node: &str, now: Duration) -> Result<BundleReport, PccError> {
        let nonce: [u8; 32] = rand::random();
        let body = serde_json::to_vec(&AttestRequest {
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        })
        .expect("requests serialize");
        let response = self
            .send("POST", &format!("/v1/nodes/{node}/attest"), Some(body))
            .await?;
        let bytes = refused_unless_ok(response)
            .await?
            .collect(MAX_NODE_LIST)
            .await?;
        let bundle =
            EvidenceBundle::parse(&bytes).map_err(|error| PccError::Protocol(error.to_string()))?;
        let mut report =
            hearth_attest::verify_bundle(&bundle, Some(&self.policy), now, Some(&nonce));
        if bundle.node != node {
            report.passed = false;
        }
        Ok(report)
    }

    /// Seals `request` for up to three verified nodes serving its model and
    /// sends it through the router; the reply streams from the node that
    /// took it. `now` is the time to verify and seal at.
    pub async fn open(&self, request: &ComputeRequest, now: Duration) -> Result<Reply, PccError> {
        match self.open_with(request, now, false).await {
            // The list may be stale (a node left): once more with a fresh one.
            Err(PccError::Refused { code, .. })
                if code == RouterCode::NoNode.as_str()
                    || code == RouterCode::NodeFailed.as_str() =>
            {
                self.open_with(request, now, true).await
            }
            other => other,
        }
    }

    async fn open_with(
        &self,
        request: &ComputeRequest,
        now: Duration,
        fresh: bool,
    ) -> Result<Reply, PccError> {
        let nodes = self.nodes(now, fresh).await?;
        let mut refused = Vec::new();
        let mut verified = Vec::new();
        for judged in self.judge(nodes, now) {
            match judged.judgement {
                Judgement::Refused(report) => {
                    refused.push((judged.entry.node, failed_checks(&report)))
                }
                Judgement::Cached | Judgement::Verified(_) => verified.push(judged.entry),
            }
        }
        let chosen = candidates(&verified, &request.model);
        if chosen.is_empty() {
            return Err(PccError::NoVerifiedNode {
                model: request.model.clone(),
                refused,
            });
        }
        let plaintext = Zeroizing::new(serde_json::to_vec(request).expect("requests serialize"));
        let timestamp = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let mut openers: Vec<(String, ChunkOpener)> = Vec::new();
        let mut forward = Forward {
            candidates: Vec::new(),
        };
        for entry in chosen {
            let rek = entry
                .bundle
                .rek_bytes()
                .map_err(|error| PccError::Protocol(error.to_string()))?;
            let (envelope, opener) = seal_request_to(
                COMPUTE_INFO,
                &rek,
                &key_id(&rek),
                &self.device,
                &plaintext,
                timestamp,
            )
            .map_err(|error| PccError::Protocol(error.to_string()))?;
            openers.push((entry.node.clone(), opener));
            forward.candidates.push(Candidate {
                node: entry.node.clone(),
                envelope,
            });
        }
        let body = serde_json::to_vec(&forward).expect("forwards serialize");
        let response = self.send("POST", "/v1/compute", Some(body)).await?;
        let response = refused_unless_ok(response).await?;
        let node = response
            .header(NODE_HEADER)
            .map(str::to_owned)
            .ok_or_else(|| PccError::Protocol(format!("no {NODE_HEADER} header")))?;
        let opener = openers
            .into_iter()
            .find_map(|(candidate, opener)| (candidate == node).then_some(opener))
            .ok_or_else(|| {
                PccError::Protocol(format!("the router chose `{node}`, not a candidate"))
            })?;
        Ok(Reply {
            node,
            body: response.body,
            reply: SealedReply::new(opener),
            pending: std::collections::VecDeque::new(),
            ended: false,
        })
    }
}

fn failed_checks(report: &BundleReport) -> String {
    let failed: Vec<String> = report
        .reports
        .iter()
        .flat_map(|report| {
            report
                .failures()
                .map(|check| format!("{} ({})", check.check.as_str(), detail(&check.outcome)))
                .collect::<Vec<_>>()
        })
        .collect();
    if failed.is_empty() {
        "no evidence passed".into()
    } else {
        failed.join(", ")
    }
}

fn detail(outcome: &hearth_attest::Outcome) -> &str {
    match outcome {
        hearth_attest::Outcome::Passed(text)
        | hearth_attest::Outcome::Failed(text)
        | hearth_attest::Outcome::Skipped(text) => text,
    }
}

async fn refused_unless_ok(response: LinkResponse) -> Result<LinkResponse, PccError> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let status = response.status;
    let body: serde_json::Value = response
        .collect(64 * 1024)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    Err(PccError::Refused {
        status,
        code: body["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
    })
}

/// A reply streaming from a node, opened chunk by chunk.
pub struct Reply {
    /// The node answering.
    pub node: String,
    body: BodyStream,
    reply: SealedReply,
    pending: std::collections::VecDeque<ReplyEvent>,
    ended: bool,
}

impl Reply {
    /// The next event; `None` after the final one. A reply cut short or
    /// altered is an error, never a silent end.
    pub async fn next(&mut self) -> Option<Result<ReplyEvent, PccError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => match self.reply.push(&bytes) {
                    Ok(events) => self.pending.extend(events),
                    Err(error) => {
                        self.ended = true;
                        return Some(Err(error.into()));
                    }
                },
                Some(Err(error)) => {
                    self.ended = true;
                    return Some(Err(self.cut(&error.to_string())));
                }
                None => {
                    self.ended = true;
                    if let Err(error) = self.reply.finish() {
                        return Some(Err(self.cut(&error.to_string())));
                    }
                }
            }
        }
    }

    fn cut(&self, what: &str) -> PccError {
        match self.reply.unsealed_error() {
            Some(said) => PccError::Reply(format!("{what}; the router says {said}")),
            None => PccError::Reply(what.to_owned()),
        }
    }
}
