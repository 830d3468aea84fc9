//! Node key lifetimes, end to end: how long a node's keys live, when they
//! are renewed, rotated and overdue, and how long the task that takes
//! expired nodes out of the mesh sleeps (the task itself is
//! `Coordinator::run_key_expiry`).
//!
//! A node's keys (its WireGuard key and the TLS client certificate it calls
//! with, or a Tailscale client's node key) live for its key lifetime: 180
//! days by default (`serve --key-expiry`), or what its pre-auth key said;
//! tagged nodes' keys never expire unless their key says so (Tailscale's
//! defaults) ([`lifetime_for`]). Before the end, the agent sends new keys
//! with its current certificate ([`Coordinator::rotate_keys`]): its peers
//! get the new WireGuard key in a delta and its certificate is replaced.
//! `health` counts nodes with under a quarter left ([`overdue`]). A node
//! whose keys reach their end is taken out of the mesh ([`run_expiry`]
//! sleeps until the soonest deadline, which the registry keeps, then
//! [`Coordinator::expire_keys`]): its peers drop it and the coordinator
//! refuses it until an admin approves it again or, for a Tailscale client,
//! it logs in again with a pre-auth key ([`NodeRecord::renew_keys`]).
//!
//! What the nodes are told lives with their protocol: an official client
//! gets `KeyExpiry` for itself and its peers in every map, its own expiry
//! in the past once it passed (`tsmap.rs`), and `NodeKeyExpired` when it
//! presents the expired key again (`tailscale.rs`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_control::wire::{NodeId, NodeState};

use crate::db::preauth_keys::PreauthKeyRow;
use crate::netmap::NodeRecord;

/// The key lifetime of a node registered with `key`: the key's own when
/// it sets one (0: never), else none for tagged nodes (servers, as in
/// Tailscale) and the coordinator's `default` for the others.
pub fn lifetime_for(key: &PreauthKeyRow, default: Option<u64>) -> Option<u64> {
    match key.node_key_lifetime {
        Some(seconds) if seconds > 0 => Some(seconds as u64),
        Some(_) => None,
        None if !key.tags.is_empty() => None,
        None => default,
    }
}

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

impl NodeRecord {
    /// Whether its keys have expired at `now`.
    pub fn key_expired(&self, now: i64) -> bool {
        self.key_expiry.is_some_and(|expiry| now >= expiry)
    }

    /// Gives the node's keys a fresh lifetime from `now` (approved again
    /// after they expired, or logged in again with a pre-auth key).
    pub fn renew_keys(&mut self, now: i64) {
        self.key_expiry = expiry_from(now, self.key_lifetime);
    }
}

/// Whether `record`'s keys have under a quarter of their lifetime left at
/// `now` (an agent rotates with a third left).
pub fn overdue(record: &NodeRecord, now: i64) -> bool {
    match (record.key_expiry, record.key_lifetime) {
        (Some(expiry), Some(lifetime)) => {
            let quarter = i64::try_from(lifetime / 4).unwrap_or(i64::MAX);
            expiry.saturating_sub(now) < quarter
        }
        _ => false,
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

/// The longest the key-expiry task sleeps without looking again: its
/// sleep runs on the monotonic clock, expiries are wall-clock times, and a
/// wall clock set forward must not leave an expired node in the mesh for
/// longer than this.
pub(crate) const LONGEST_EXPIRY_NAP: Duration = Duration::from_secs(60);

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
