//! Rotating the node's keys before they expire: a new WireGuard key and a
//! new TLS key, sent with the current certificate (`POST /api/v1/rotate`).
//!
//! The agent rotates when a third of the key lifetime is left (every 120
//! days with Tailscale's 180-day default), retrying with backoff until the
//! coordinator takes them. The data plane keeps the sessions made under
//! the old key until the new key's handshakes complete, and the peers do
//! the same when the delta with the new key reaches them, so established
//! connections carry on ([`crate::userspace`]). The relay logins are made
//! again with the new key; the control connection presents the new
//! certificate from its next request.

use std::sync::Arc;
use std::time::Duration;

use hearth_control::ControlClient;
use hearth_control::tls::{ClientIdentity, generate_key_request};
use hearth_control::wire::{RotateRequest, encode_der};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::backoff::Backoff;
use crate::dataplane::DataPlane;
use crate::error::AgentError;
use crate::local_api::AgentState;
use crate::state::StateDir;

/// When keys expiring at `expiry` with `lifetime` seconds are rotated: with
/// a third of the lifetime left.
pub fn rotation_due(expiry: i64, lifetime: u64) -> i64 {
    expiry.saturating_sub(i64::try_from(lifetime / 3).unwrap_or(i64::MAX))
}

/// What the rotation task works with.
pub struct Rotator {
    /// The control connection (its identity is replaced after a rotation).
    pub client: ControlClient,
    /// Where the keys are kept.
    pub state: StateDir,
    /// The data plane, whose private key is replaced.
    pub plane: Arc<DataPlane>,
    /// The node's view (its key expiry).
    pub shared: Arc<AgentState>,
    /// The relay client's login secret.
    pub relay_secret: watch::Sender<Zeroizing<[u8; 32]>>,
}

impl Rotator {
    /// Rotates whenever the keys come due, until the task is dropped.
    pub async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        loop {
            let due = {
                let mesh = hearth_runtime::read(&self.shared.mesh);
                mesh.node
                    .as_ref()
                    .and_then(|node| Some(rotation_due(node.key_expiry?, node.key_lifetime?)))
            };
            let now = hearth_runtime::clock::unix_seconds();
            match due {
                Some(due) if now >= due => match self.rotate().await {
                    Ok(()) => backoff.reset(),
                    Err(error) => {
                        let delay = backoff.next_delay(rand::random());
                        tracing::warn!(%error, retry_in = ?delay, "key rotation failed");
                        tokio::time::sleep(delay).await;
                    }
                },
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    /// One rotation.
    async fn rotate(&self) -> Result<(), AgentError> {
        let name = hearth_runtime::read(&self.shared.mesh)
            .node
            .as_ref()
            .map(|node| node.name.clone())
            .unwrap_or_else(|| "node".into());
        let (private_key, public_key) = self.state.next_wireguard_key()?;
        let key_request =
            generate_key_request(&name).map_err(|error| AgentError::Setup(error.to_string()))?;
        self.state.save_next_tls_key(&key_request.key_pem)?;
        let response = self
            .client
            .rotate(&RotateRequest {
                wireguard_key: public_key,
                csr_der: encode_der(&key_request.csr_der),
            })
            .await?;
        self.state
            .commit_rotation(&response.client_certificate_pem)?;
        self.client.set_identity(&ClientIdentity {
            certificate_pem: response.client_certificate_pem,
            key_pem: key_request.key_pem,
        })?;
        let plane = Arc::clone(&self.plane);
        let key = private_key.clone();
        tokio::task::spawn_blocking(move || plane.set_private_key(&key))
            .await
            .map_err(|error| AgentError::Setup(error.to_string()))??;
        if let Some(secret) = relay_secret(&private_key) {
            let _ = self.relay_secret.send(secret);
        }
        tracing::info!(expires = ?response.node.key_expiry, "node keys rotated");
        // Until the coordinator's own word arrives on the map stream.
        if let Some(node) = hearth_runtime::write(&self.shared.mesh).node.as_mut() {
            node.key_expiry = response.node.key_expiry;
        }
        Ok(())
    }
}

/// The private key's 32 bytes, for the relay login.
pub(crate) fn relay_secret(private_key: &Zeroizing<String>) -> Option<Zeroizing<[u8; 32]>> {
    use base64::Engine as _;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(private_key.as_bytes())
            .ok()?,
    );
    Some(Zeroizing::new(bytes.as_slice().try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_with_a_third_of_their_life_left() {
        let day = 86_400;
        assert_eq!(rotation_due(180 * day, 180 * day as u64), 120 * day);
        assert_eq!(rotation_due(1_030, 30), 1_020);
    }
}
