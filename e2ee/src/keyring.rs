//! The gateway's HPKE keys over time: a current key, the next one published
//! ahead of its activation, and the previous one still accepted for an
//! overlap, so that clients holding a cached key keep working across a
//! rotation.
//!
//! Pure: [`KeyRing::maintain`] takes the time and says whether the ring
//! changed (and must be saved).

use serde::{Deserialize, Serialize};

use crate::envelope::{KeyPair, b64};

/// One key as stored (its private half is secret: the file is 0600).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    /// Key id.
    pub id: String,
    /// Private key, base64url.
    pub private_key: String,
    /// Public key, base64url.
    pub public_key: String,
    /// Unix time it becomes current.
    pub activates: i64,
    /// Unix time after which it is refused.
    pub expires: i64,
}

/// A key as published on `/api/pubkey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// Key id.
    pub id: String,
    /// Public key, base64url.
    pub public_key: String,
    /// `current` or `next`.
    pub status: String,
    /// Unix time from which it is current.
    pub not_before: i64,
    /// Unix time after which it is refused.
    pub not_after: i64,
}

/// The key ring.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRing {
    /// Keys, oldest first.
    pub keys: Vec<StoredKey>,
}

fn new_key(activates: i64, rotation: i64, overlap: i64) -> StoredKey {
    let pair = KeyPair::generate();
    StoredKey {
        id: format!("k{}", b64(&rand::random::<[u8; 6]>())),
        private_key: b64(pair.private_bytes().as_ref()),
        public_key: b64(&pair.public_bytes()),
        activates,
        expires: activates + rotation + overlap,
    }
}

impl KeyRing {
    /// Drops expired keys and makes sure there is a current and a next key.
    /// Returns whether anything changed.
    pub fn maintain(&mut self, now: i64, rotation: i64, overlap: i64) -> bool {
        let before = self.keys.len();
        self.keys.retain(|key| key.expires > now);
        let mut changed = self.keys.len() != before;
        if self.current(now).is_none() {
            self.keys.push(new_key(now, rotation, overlap));
            changed = true;
        }
        let latest = self
            .keys
            .iter()
            .map(|key| key.activates)
            .max()
            .unwrap_or(now);
        if latest <= now {
            self.keys
                .push(new_key(latest + rotation, rotation, overlap));
            changed = true;
        }
        self.keys.sort_by_key(|key| key.activates);
        changed
    }

    /// The key current at `now`: the latest activated one.
    pub fn current(&self, now: i64) -> Option<&StoredKey> {
        self.keys
            .iter()
            .filter(|key| key.activates <= now && now < key.expires)
            .max_by_key(|key| key.activates)
    }

    /// The key with `id`, if it is still accepted at `now`.
    pub fn accepted(&self, id: &str, now: i64) -> Option<&StoredKey> {
        self.keys
            .iter()
            .find(|key| key.id == id && now < key.expires)
    }

    /// What `/api/pubkey` shows: the current key and the next one.
    pub fn published(&self, now: i64) -> Vec<PublishedKey> {
        let current = self.current(now).map(|key| key.id.clone());
        self.keys
            .iter()
            .filter(|key| Some(&key.id) == current.as_ref() || key.activates > now)
            .map(|key| PublishedKey {
                id: key.id.clone(),
                public_key: key.public_key.clone(),
                status: if Some(&key.id) == current.as_ref() {
                    "current".into()
                } else {
                    "next".into()
                },
                not_before: key.activates,
                not_after: key.expires,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const HOUR: i64 = 3_600;

    #[test]
    fn a_new_ring_gets_a_current_and_a_next_key() {
        let mut ring = KeyRing::default();
        assert!(ring.maintain(1000, DAY, HOUR));
        let published = ring.published(1000);
        assert_eq!(
            published
                .iter()
                .map(|key| key.status.as_str())
                .collect::<Vec<_>>(),
            ["current", "next"]
        );
        assert_eq!(published[1].not_before, 1000 + DAY);
        assert!(!ring.maintain(1001, DAY, HOUR), "nothing to do");
    }

    #[test]
    fn rotation_keeps_the_old_key_for_the_overlap() {
        let mut ring = KeyRing::default();
        ring.maintain(0, DAY, HOUR);
        let first = ring.current(0).unwrap().id.clone();
        let second = ring.published(0)[1].id.clone();
        assert!(ring.maintain(DAY, DAY, HOUR));
        assert_eq!(
            ring.current(DAY).unwrap().id,
            second,
            "the next key became current"
        );
        assert!(
            ring.accepted(&first, DAY + HOUR - 1).is_some(),
            "the old key is accepted during the overlap"
        );
        assert!(ring.accepted(&first, DAY + HOUR).is_none());
        ring.maintain(DAY + HOUR, DAY, HOUR);
        assert_eq!(
            ring.keys.len(),
            2,
            "the old key is gone, a new next key exists"
        );
        assert!(ring.accepted(&second, DAY + HOUR).is_some());
    }

    #[test]
    fn the_next_key_is_accepted_early_and_unknown_ids_never() {
        let mut ring = KeyRing::default();
        ring.maintain(0, DAY, HOUR);
        let next = ring.published(0)[1].id.clone();
        assert!(ring.accepted(&next, 10).is_some());
        assert!(ring.accepted("k-unknown", 10).is_none());
    }

    #[test]
    fn a_gateway_down_for_days_starts_fresh() {
        let mut ring = KeyRing::default();
        ring.maintain(0, DAY, HOUR);
        assert!(ring.maintain(10 * DAY, DAY, HOUR));
        assert_eq!(ring.keys.len(), 2);
        assert!(ring.current(10 * DAY).is_some());
    }
}
