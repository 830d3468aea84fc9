//! Private compute through Oblivious HTTP: the config server's document
//! (`GET /api/config`), and the client's link to the router through a relay
//! and the OHTTP gateway, so that the router never sees the device's
//! address and the relay never sees what is asked.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::StreamExt as _;
use hearth_attest::policy::Policy;
use hearth_ohttp::bhttp::{self, ResponseStream, StreamEvent};
use hearth_ohttp::{KeyConfig, Mode};

use crate::error::PccError;

pub use crate::config::{
    ApiConfig, AttestationConfig, CONFIG_PORT, CONFIG_VERSION, Features, GATEWAY_PORT, RELAY_PORT,
    RotationPeriod,
};

impl ApiConfig {
    /// Checks the document and picks the key to use at `now`: the newest
    /// active one (with `logged`, the newest active one the transparency
    /// log proved). Refuses other versions, a deployment without OHTTP,
    /// and a bundle without an active key.
    pub fn choose_key(
        &self,
        now: Duration,
        logged: Option<&hearth_transparency::proofs::Proven>,
    ) -> Result<KeyConfig, PccError> {
        if self.version != CONFIG_VERSION {
            return Err(PccError::Protocol(format!(
                "config version {} (this client reads {CONFIG_VERSION})",
                self.version
            )));
        }
        if !self.features.ohttp || self.relay_urls.is_empty() {
            return Err(PccError::Protocol(
                "the deployment offers no OHTTP relay".into(),
            ));
        }
        let bundle = STANDARD
            .decode(&self.ohttp_key_configs_bundle)
            .map_err(|_| PccError::Protocol("the key bundle is not base64".into()))?;
        let configs = hearth_ohttp::decode_keys(&bundle)
            .map_err(|error| PccError::Protocol(error.to_string()))?;
        let mut newest: Option<(Duration, KeyConfig)> = None;
        for period in &self.ohttp_key_rotation_periods {
            let (Some(from), Some(until)) = (
                hearth_attest::report::parse_rfc3339(&period.active_from),
                hearth_attest::report::parse_rfc3339(&period.active_until),
            ) else {
                continue;
            };
            let Some(config) = configs.iter().find(|config| config.key_id == period.key_id) else {
                continue;
            };
            let in_log = logged
                .is_none_or(|proven| crate::transparency::key_logged(proven, config, from, until));
            if from <= now
                && now < until
                && in_log
                && newest.as_ref().is_none_or(|(best, _)| from > *best)
            {
                newest = Some((from, config.clone()));
            }
        }
        newest.map(|(_, config)| config).ok_or_else(|| {
            PccError::Protocol(if logged.is_some() {
                "no OHTTP key active now is in the transparency log: nothing is sent".into()
            } else {
                "no OHTTP key is active now".into()
            })
        })
    }

    /// The policy the client applies: the document's, or `own` when given,
    /// which must then be the same policy. A policy that accepts dev
    /// evidence or debug enclaves (which prove nothing about what runs) is
    /// taken only from the client's own file, never on the config server's
    /// word alone: the server could otherwise weaken a client that has no
    /// policy of its own.
    pub fn policy(&self, own: Option<&Policy>) -> Result<Policy, PccError> {
        let published = &self.attestation.policy;
        match own {
            None if published.allow_dev_evidence || published.allow_debug => {
                Err(PccError::Protocol(format!(
                    "the config server's policy {} accepts {}, which proves nothing about what \
                     runs on the node: this client takes such a policy only from its own file \
                     (--policy)",
                    self.attestation.policy_id,
                    if published.allow_dev_evidence {
                        "dev evidence"
                    } else {
                        "debug enclaves"
                    }
                )))
            }
            None => Ok(published.clone()),
            Some(policy) if *policy == self.attestation.policy => Ok(policy.clone()),
            Some(_) => Err(PccError::Protocol(format!(
                "the config server applies policy {} and yours differs: refusing to guess which to trust",
                self.attestation.policy_id
            ))),
        }
    }
}

/// A response through a link: status, headers and the streamed content.
pub struct LinkResponse {
    /// The HTTP status.
    pub status: u16,
    /// Header fields (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The content as it arrives; an `Err` when it breaks off.
    pub body: BodyStream,
}

/// Content as it arrives.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, BrokenOff>> + Send>>;

/// Why a response through the relay stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BrokenOff {
    /// The relay's connection failed.
    #[error("the relay's response broke off: {0}")]
    Relay(reqwest::Error),
    /// The router's connection failed (no relay between).
    #[error("{0}")]
    Direct(reqwest::Error),
    /// A chunk does not open (altered, or not the gateway's).
    #[error("{0}")]
    Sealed(hearth_ohttp::Error),
    /// The inner response is not Binary HTTP.
    #[error("{0}")]
    Inner(hearth_ohttp::Error),
    /// The response ended in the middle.
    #[error("the response was cut ({0})")]
    Cut(hearth_ohttp::Error),
    /// A second response head.
    #[error("a second response head")]
    SecondHead,
}

impl LinkResponse {
    /// The value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// All the content (for small answers).
    pub async fn collect(mut self, limit: usize) -> Result<Vec<u8>, PccError> {
        let mut out = Vec::new();
        while let Some(piece) = self.body.next().await {
            out.extend_from_slice(&piece.map_err(|error| PccError::Transport(error.to_string()))?);
            if out.len() > limit {
                return Err(PccError::Protocol(
                    "the answer is larger than expected".into(),
                ));
            }
        }
        Ok(out)
    }
}

/// The path to the router through a relay and the OHTTP gateway.
#[derive(Clone, Debug)]
pub struct ObliviousLink {
    relay: String,
    key: KeyConfig,
    router: String,
    authority: String,
}

impl ObliviousLink {
    /// A link through `relay` with the gateway's `key` to the inner target
    /// `router` (`http://HOST:PORT`).
    pub fn new(relay: &str, key: KeyConfig, router: &str) -> Result<ObliviousLink, PccError> {
        let router = router.trim_end_matches('/').to_owned();
        let authority = router
            .strip_prefix("http://")
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| {
                PccError::Protocol(format!("router_url {router} is not http://HOST:PORT"))
            })?
            .to_owned();
        Ok(ObliviousLink {
            relay: relay.to_owned(),
            key,
            router,
            authority,
        })
    }

    /// The link the config document describes, at `now` (with `logged`,
    /// only through a key the transparency log proved).
    pub fn from_config(
        config: &ApiConfig,
        now: Duration,
        logged: Option<&hearth_transparency::proofs::Proven>,
    ) -> Result<ObliviousLink, PccError> {
        let key = config.choose_key(now, logged)?;
        let relay =
            config.relay_urls[usize::from(rand::random::<u8>()) % config.relay_urls.len()].clone();
        ObliviousLink::new(&relay, key, &config.router_url)
    }

    /// The router this link reaches.
    pub fn router(&self) -> &str {
        &self.router
    }

    /// Sends `method path` with `headers` and `body` to the router, sealed
    /// for the gateway, through the relay; the response streams back.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<LinkResponse, PccError> {
        let mut request = bhttp::Request::new(method, "http", &self.authority, path);
        request.headers = headers
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            .collect();
        request.content = body.to_vec();
        let encoded = zeroize::Zeroizing::new(request.encode());
        let (sealed, keys) = hearth_ohttp::encapsulate(&self.key, Mode::Chunked, &[&encoded])
            .map_err(|error| PccError::Protocol(error.to_string()))?;
        let response = http
            .post(&self.relay)
            .header(
                reqwest::header::CONTENT_TYPE,
                Mode::Chunked.request_media_type(),
            )
            .body(sealed)
            .send()
            .await
            .map_err(|error| PccError::Transport(format!("the relay: {error}")))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let problem: serde_json::Value = response.json().await.unwrap_or_default();
            return Err(PccError::Refused {
                status,
                code: "ohttp".into(),
                message: problem["title"]
                    .as_str()
                    .unwrap_or("the relay or the OHTTP gateway refused")
                    .to_owned(),
            });
        }
        let mut reader = Opening {
            body: Box::pin(response.bytes_stream()),
            chunks: keys.chunked(),
            inner: ResponseStream::new(),
            pending: VecDeque::new(),
            ended: false,
        };
        // The inner head comes first.
        let (status, headers) = match reader.next_event().await {
            Some(Ok(StreamEvent::Head { status, headers })) => (status, headers),
            Some(Ok(StreamEvent::Content(_))) => {
                return Err(PccError::Protocol(
                    "content before the response head".into(),
                ));
            }
            Some(Err(error)) => return Err(PccError::Transport(error.to_string())),
            None => {
                return Err(PccError::Transport(
                    "the response ended before its head".into(),
                ));
            }
        };
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(&name).to_ascii_lowercase(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect();
        let body = futures_util::stream::unfold(reader, |mut reader| async move {
            let item = match reader.next_event().await? {
                Ok(StreamEvent::Content(bytes)) => Ok(Bytes::from(bytes)),
                Ok(StreamEvent::Head { .. }) => Err(BrokenOff::SecondHead),
                Err(error) => Err(error),
            };
            Some((item, reader))
        });
        Ok(LinkResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }
}

/// The relay's bytes opened as chunked OHTTP, then read as a streamed
/// Binary HTTP response.
struct Opening {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    chunks: hearth_ohttp::ChunkedResponse,
    inner: ResponseStream,
    pending: VecDeque<StreamEvent>,
    ended: bool,
}

impl Opening {
    async fn next_event(&mut self) -> Option<Result<StreamEvent, BrokenOff>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            let plaintext = match self.body.next().await {
                Some(Ok(bytes)) => self.chunks.push(&bytes).map_err(BrokenOff::Sealed),
                Some(Err(error)) => Err(BrokenOff::Relay(error)),
                None => {
                    self.ended = true;
                    match self.chunks.finish() {
                        Ok(last) => Ok(vec![last]),
                        Err(error) => Err(BrokenOff::Cut(error)),
                    }
                }
            };
            let result = plaintext.and_then(|chunks| {
                let mut events = Vec::new();
                for chunk in chunks {
                    events.extend(self.inner.push(&chunk).map_err(BrokenOff::Inner)?);
                }
                if self.ended {
                    self.inner.finish().map_err(BrokenOff::Cut)?;
                }
                Ok(events)
            });
            match result {
                Ok(events) => self.pending.extend(events),
                Err(error) => {
                    self.ended = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// What a client uses from a config document: the link to the router and
/// the policy, with the transparency log applied when the policy requires
/// it (only a logged key, only logged images, only a log that extends
/// what `witness` kept); the names of the images left out for not being
/// logged.
pub struct Prepared {
    /// The link.
    pub link: ObliviousLink,
    /// The policy to verify nodes with.
    pub policy: Policy,
    /// Images the policy names that the log does not hold.
    pub unlogged: Vec<String>,
}

/// Prepares a client from `document`, fetched from the config server at
/// `config_url` (which also answers consistency proofs), under `policy`.
pub async fn prepare(
    http: &reqwest::Client,
    config_url: &str,
    document: &ApiConfig,
    policy: Policy,
    witness: &mut hearth_transparency::Witness,
    now: Duration,
) -> Result<Prepared, PccError> {
    let Some(log) = policy.transparency.clone() else {
        let link = ObliviousLink::from_config(document, now, None)?;
        return Ok(Prepared {
            link,
            policy,
            unlogged: Vec::new(),
        });
    };
    let proven = crate::transparency::verify_document(document, &log, witness, |first, second| {
        consistency(http, config_url, first, second)
    })
    .await?;
    let (logged, unlogged) = crate::transparency::logged_policy(&policy, &proven)?;
    let link = ObliviousLink::from_config(document, now, Some(&proven))?;
    Ok(Prepared {
        link,
        policy: logged,
        unlogged,
    })
}

/// Asks the config server at `config_url` for the log's consistency
/// proof between `first` and `second` entries.
pub async fn consistency(
    http: &reqwest::Client,
    config_url: &str,
    first: u64,
    second: u64,
) -> Result<hearth_transparency::proofs::ConsistencyProof, PccError> {
    let url = format!(
        "{}/log/proof/consistency?first={first}&second={second}",
        config_url.trim_end_matches('/')
    );
    http.get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| PccError::Transport(format!("the log's consistency proof: {error}")))?
        .json()
        .await
        .map_err(|error| PccError::Protocol(format!("the log's consistency proof: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(policy: &Policy) -> ApiConfig {
        ApiConfig {
            version: CONFIG_VERSION.into(),
            features: Features {
                ohttp: true,
                real_attestation: !policy.allow_dev_evidence,
            },
            relay_urls: vec!["http://10.0.0.4:3100/".into()],
            gateway_url: "http://10.0.0.3:3200/gateway".into(),
            router_url: "http://10.0.0.2:3600".into(),
            ohttp_key_configs_bundle: String::new(),
            ohttp_key_rotation_periods: Vec::new(),
            attestation: AttestationConfig::for_policy(policy, b"{}"),
            transparency: None,
        }
    }

    #[test]
    fn a_weak_policy_is_never_taken_on_the_servers_word() {
        let strict = Policy::default();
        assert_eq!(document(&strict).policy(None).unwrap(), strict);
        for weak in [
            Policy {
                allow_dev_evidence: true,
                ..Policy::default()
            },
            Policy {
                allow_debug: true,
                ..Policy::default()
            },
        ] {
            let refused = document(&weak).policy(None).unwrap_err().to_string();
            assert!(refused.contains("--policy"), "{refused}");
            // The client's own file may say so.
            assert_eq!(document(&weak).policy(Some(&weak)).unwrap(), weak);
        }
        // A client's own policy still has to match the server's.
        let mut other = strict.clone();
        other.max_age_seconds += 1;
        assert!(document(&strict).policy(Some(&other)).is_err());
    }
}
