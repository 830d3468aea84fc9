//! The gateway's HPKE keys on disk (`DATA_DIR/keys.json`, 0600) and in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_e2ee::receiver::Receiver;
use hearth_e2ee::{KeyPair, KeyRing, PublishedKey};
use zeroize::Zeroizing;

/// The key ring, persisted.
pub struct KeyStore {
    path: PathBuf,
    rotation: i64,
    overlap: i64,
    ring: RwLock<KeyRing>,
    receivers: RwLock<HashMap<String, Arc<Receiver>>>,
}

fn receivers_of(ring: &KeyRing) -> HashMap<String, Arc<Receiver>> {
    ring.keys
        .iter()
        .filter_map(|key| {
            let private = Zeroizing::new(URL_SAFE_NO_PAD.decode(&key.private_key).ok()?);
            Some((
                key.id.clone(),
                Arc::new(KeyPair::from_private(&private).ok()?.receiver()),
            ))
        })
        .collect()
}

impl KeyStore {
    /// Loads `DATA_DIR/keys.json` (creating keys on first start) and rotates as due at `now`.
    pub fn open(
        data_dir: &Path,
        rotation_hours: u64,
        overlap_hours: u64,
        now: i64,
    ) -> std::io::Result<KeyStore> {
        let path = data_dir.join("keys.json");
        let ring = match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                serde_json::from_slice(&bytes).map_err(|error| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {error}", path.display()),
                    )
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => KeyRing::default(),
            Err(error) => return Err(error),
        };
        let store = KeyStore {
            path,
            rotation: i64::try_from(rotation_hours.max(1) * 3600).unwrap_or(i64::MAX / 4),
            overlap: i64::try_from(overlap_hours * 3600).unwrap_or(0),
            receivers: RwLock::new(receivers_of(&ring)),
            ring: RwLock::new(ring),
        };
        store.maintain(now)?;
        Ok(store)
    }

    /// Rotates keys as due at `now`, saving when anything changed.
    pub fn maintain(&self, now: i64) -> std::io::Result<()> {
        let mut ring = hearth_runtime::write(&self.ring);
        if ring.maintain(now, self.rotation, self.overlap) {
            let text =
                Zeroizing::new(serde_json::to_vec_pretty(&*ring).expect("the key ring serializes"));
            hearth_files::private::write_private(&self.path, &text)?;
            *hearth_runtime::write(&self.receivers) = receivers_of(&ring);
            tracing::info!(keys = ring.keys.len(), "gateway keys rotated");
        }
        Ok(())
    }

    /// The keys to publish at `now`.
    pub fn published(&self, now: i64) -> Vec<PublishedKey> {
        hearth_runtime::read(&self.ring).published(now)
    }

    /// The receiver of key `id` if it is accepted at `now`.
    pub fn accepted(&self, id: &str, now: i64) -> Option<Arc<Receiver>> {
        let ring = hearth_runtime::read(&self.ring);
        ring.accepted(id, now)?;
        hearth_runtime::read(&self.receivers).get(id).cloned()
    }
}
