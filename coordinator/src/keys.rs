//! Node key expiry and rotation.
//!
//! A node's keys (its WireGuard key and the TLS client certificate it calls
//! with) live for its key lifetime: 180 days by default (`serve
//! --key-expiry`), or what its pre-auth key said; tagged nodes' keys never
//! expire unless their key says so (Tailscale's defaults). Before the end,
//! the agent sends new keys with its current certificate
//! ([`Coordinator::rotate_keys`]): its peers get the new WireGuard key in a
//! delta and its certificate is replaced. A node whose keys reach their end
//! is taken out of the mesh ([`Coordinator::expire_keys`], within a second):
//! its peers drop it and the coordinator refuses it until an admin approves
//! it again, which gives its keys a fresh lifetime.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_control::wire::{NodeId, NodeState, RotateRequest, RotateResponse};

use crate::coordinator::{Coordinator, Credential};
use crate::error::{Error, Result};
use crate::netmap::NodeRecord;
use crate::registration::is_low_order;
use hearth_runtime::clock::unix_seconds as unix_now;

/// When keys issued at `now` with `lifetime` (seconds) expire.
pub fn expiry_from(now: i64, lifetime: Option<u64>) -> Option<i64> {
    lifetime.map(|seconds| now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)))
}

/// Rotations a node may make at once before [`rotation_interval`] applies.
pub const ROTATION_BURST: u32 = 3;

/// How often a node whose keys live `lifetime` seconds may rotate them
/// after its burst: a tenth of the lifetime, between a second and an hour
/// (an hour for keys that never expire). Agents rotate once per lifetime;
/// a member rotating in a loop would send every peer a change each time.
pub fn rotation_interval(lifetime: Option<u64>) -> Duration {
    match lifetime {
        Some(seconds) => Duration::from_secs(seconds / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(3600)),
        None => Duration::from_secs(3600),
    }
}

/// When each node may rotate next (a generic cell rate: the theoretical
/// time of its next rotation). Pure: times are arguments.
#[derive(Debug, Default)]
pub struct Rotations {
    next: HashMap<NodeId, Duration>,
}

impl Rotations {
    /// Whether `node` may rotate at `now` with `interval` between
    /// rotations after a burst of [`ROTATION_BURST`]; counts it if so.
    pub fn allow(&mut self, node: NodeId, interval: Duration, now: Duration) -> bool {
        let due = self.next.get(&node).copied().unwrap_or(now).max(now);
        if due.saturating_sub(now) > interval * (ROTATION_BURST - 1) {
            return false;
        }
        self.next.insert(node, due + interval);
        true
    }

    /// Forgets `node` (deleted).
    pub fn forget(&mut self, node: NodeId) {
        self.next.remove(&node);
    }
}

/// Whether `record` is admitted with keys past their end at `now`.
pub fn must_expire(record: &NodeRecord, now: i64) -> bool {
    record.state == NodeState::Approved && record.key_expired(now)
}

/// How long from `now` until the Unix second `at` begins; zero once it
/// has.
pub fn time_until(at: i64, now: SystemTime) -> Duration {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

impl Coordinator {
    /// The soonest time (Unix seconds) an admitted node's keys expire.
    pub async fn next_key_expiry(&self) -> Option<i64> {
        self.state.lock().await.network.next_key_expiry()
    }

    /// Takes every admitted node whose keys have expired out of the mesh;
    /// their ids.
    pub async fn expire_keys(&self) -> Result<Vec<NodeId>> {
        let now = unix_now();
        let due = self.state.lock().await.network.keys_expired_at(now);
        for id in &due {
            let changed = self
                .change_node(*id, |_, record| {
                    if must_expire(record, now) {
                        record.state = NodeState::Expired;
                    }
                    Ok(())
                })
                .await;
            match changed {
                Ok(_) => tracing::warn!(
                    node = id,
                    "node keys expired; out of the mesh until approved again"
                ),
                Err(Error::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(due)
    }

    /// Replaces the keys of the node presenting `credential` with those in
    /// `request`: a new WireGuard key (its peers get it in a delta) and a
    /// certificate for the new TLS key (the old one stops authenticating).
    /// The keys get a fresh lifetime.
    pub async fn rotate_keys(
        &self,
        credential: Option<Credential>,
        request: &RotateRequest,
    ) -> Result<RotateResponse> {
        let csr = request
            .csr_bytes()
            .ok_or_else(|| Error::BadRequest("csr_der is not base64".into()))?;
        if is_low_order(&request.wireguard_key) {
            return Err(Error::BadRequest(
                "the WireGuard key is a low-order point".into(),
            ));
        }
        let now = unix_now();
        let mut state = self.state.lock().await;
        let old = state.node_presenting(credential)?.clone();
        crate::admission::check_admitted(&old)?;
        if old.key_expired(now) {
            return Err(Error::NodeNotAdmitted {
                id: old.id,
                state: NodeState::Expired.as_str(),
            });
        }
        match state.by_wireguard_key.get(&request.wireguard_key) {
            Some(other) if *other != old.id => return Err(Error::AlreadyRegistered(*other)),
            Some(_) => {
                return Err(Error::BadRequest(
                    "the new WireGuard key is the current one".into(),
                ));
            }
            None => {}
        }
        let allowed = hearth_runtime::lock(&self.rotations).allow(
            old.id,
            rotation_interval(old.key_lifetime),
            hearth_runtime::clock::since_epoch(),
        );
        if !allowed {
            tracing::warn!(node = old.id, "a node rotates its keys too often; refused");
            return Err(Error::RateLimited);
        }
        let (certificate_pem, fingerprint) = self
            .authority
            .issue(&csr, &format!("hearth-node-{}", old.id))
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        let mut record = old.clone();
        record.wireguard_key = request.wireguard_key;
        record.cert_fingerprint = Some(fingerprint);
        record.key_expiry = expiry_from(now, record.key_lifetime);
        if !self.store_changed(&mut state, record.clone()).await? {
            return Err(Error::UnknownNode);
        }
        state.by_wireguard_key.remove(&old.wireguard_key);
        state
            .by_wireguard_key
            .insert(record.wireguard_key, record.id);
        if let Some(credential) = old.credential() {
            state.by_credential.remove(&credential);
        }
        if let Some(credential) = record.credential() {
            state.by_credential.insert(credential, record.id);
        }
        tracing::info!(node = record.id, name = %record.name, "node keys rotated");
        Ok(RotateResponse {
            node: record.info(),
            client_certificate_pem: certificate_pem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_for_an_expiry_ends_as_its_second_begins() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_250);
        assert_eq!(time_until(1_002, now), Duration::from_millis(1_750));
        assert_eq!(time_until(1_000, now), Duration::ZERO, "begun already");
        assert_eq!(time_until(-5, now), Duration::ZERO);
    }

    #[test]
    fn a_node_rotates_a_few_times_at_once_then_once_per_tenth_of_its_lifetime() {
        let interval = rotation_interval(Some(180 * 24 * 3600));
        assert_eq!(interval, Duration::from_secs(3600), "capped at an hour");
        assert_eq!(rotation_interval(Some(30)), Duration::from_secs(3));
        assert_eq!(rotation_interval(Some(2)), Duration::from_secs(1));
        assert_eq!(rotation_interval(None), Duration::from_secs(3600));
        let mut rotations = Rotations::default();
        let start = Duration::from_secs(1_000_000);
        let allowed = (0..1_000)
            .filter(|_| rotations.allow(7, interval, start))
            .count();
        assert_eq!(allowed, ROTATION_BURST as usize, "a loop gets its burst");
        assert!(!rotations.allow(7, interval, start + interval / 2));
        assert!(rotations.allow(7, interval, start + interval));
        assert!(
            rotations.allow(8, interval, start),
            "another node has its own"
        );
        rotations.forget(7);
        assert!(rotations.allow(7, interval, start + interval));
    }

    #[test]
    fn keys_expire_after_their_lifetime_or_never() {
        assert_eq!(expiry_from(1_000, Some(60)), Some(1_060));
        assert_eq!(expiry_from(1_000, None), None);
        assert_eq!(expiry_from(i64::MAX - 1, Some(u64::MAX)), Some(i64::MAX));
    }
}
