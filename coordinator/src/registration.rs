//! Who may register, and what the new node record is. Pure: the service
//! shell (`coordinator`) looks up the key and the counts, then asks here.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use hearth_control::Fingerprint;
use hearth_control::wire::{NodeId, NodeState, RegisterRequest, WireGuardKey};

use crate::error::{Error, Result};
use crate::netmap::NodeRecord;

/// Nodes one pre-auth key may have waiting for approval at once. A leaked
/// reusable key can then hold at most this many addresses and names.
pub const MAX_PENDING_PER_KEY: usize = 32;
/// Nodes one user may have waiting for approval at once, over all their keys.
pub const MAX_PENDING_PER_USER: usize = 128;

/// The checks on a request's own fields; its hostname, trimmed.
pub fn check_request(request: &RegisterRequest) -> Result<&str> {
    let hostname = request.hostname.trim();
    if hostname.is_empty() || hostname.len() > 255 {
        return Err(Error::BadRequest(
            "hostname must be 1 to 255 characters".into(),
        ));
    }
    if request.os.len() > 64 {
        return Err(Error::BadRequest("os must be at most 64 characters".into()));
    }
    if is_low_order(&request.wireguard_key) {
        return Err(Error::BadRequest(
            "the WireGuard public key is a low-order point (all zeros or similar); generate a real key pair".into(),
        ));
    }
    Ok(hostname)
}

/// Whether `key` is a point of small order on Curve25519 (the all-zero key
/// among them): Diffie-Hellman with it gives a shared secret that does not
/// depend on the other side's private key, so it authenticates nothing.
/// X25519 clears the cofactor, so the output is all zeros exactly for those.
pub fn is_low_order(key: &WireGuardKey) -> bool {
    // Any fixed scalar works: the result is zero iff the point has small order.
    let probe = x25519_dalek::StaticSecret::from([0x5a; 32]);
    !probe
        .diffie_hellman(&x25519_dalek::PublicKey::from(key.0))
        .was_contributory()
}

/// Whether another node may wait for approval under a key that already has
/// `of_key` nodes waiting and a user who has `of_user`.
pub fn check_pending(pre_approved: bool, of_key: usize, of_user: usize) -> Result<()> {
    if pre_approved {
        return Ok(());
    }
    if of_key >= MAX_PENDING_PER_KEY {
        return Err(Error::TooManyPending(format!(
            "{of_key} devices already wait for approval with this key; an admin approves or rejects them first (hearth-coordinator nodes list)"
        )));
    }
    if of_user >= MAX_PENDING_PER_USER {
        return Err(Error::TooManyPending(format!(
            "{of_user} devices of this user already wait for approval; an admin approves or rejects them first"
        )));
    }
    Ok(())
}

/// What a new node is made of.
#[derive(Clone, Debug)]
pub struct NewNode {
    /// Its id.
    pub id: NodeId,
    /// Owning user's id.
    pub user_id: i64,
    /// Owning user's name.
    pub user: String,
    /// Its (unique) name.
    pub name: String,
    /// The hostname it reported.
    pub hostname: String,
    /// Its operating system.
    pub os: String,
    /// Its WireGuard public key.
    pub wireguard_key: WireGuardKey,
    /// Approved at once, or waiting.
    pub state: NodeState,
    /// Its mesh addresses.
    pub addresses: (Ipv4Addr, Ipv6Addr),
    /// Its tags.
    pub tags: BTreeSet<String>,
    /// Removed after a time offline.
    pub ephemeral: bool,
    /// The client certificate it was issued; `None` for a static device without an agent.
    pub cert_fingerprint: Option<Fingerprint>,
    /// Registration time.
    pub now: i64,
}

impl NewNode {
    /// The node's record.
    pub fn into_record(self) -> NodeRecord {
        NodeRecord {
            id: self.id,
            user_id: self.user_id,
            user: self.user,
            name: self.name,
            hostname: self.hostname,
            os: self.os,
            wireguard_key: self.wireguard_key,
            state: self.state,
            ipv4: self.addresses.0,
            ipv6: self.addresses.1,
            tags: self.tags,
            ephemeral: self.ephemeral,
            static_device: self.cert_fingerprint.is_none(),
            cert_fingerprint: self.cert_fingerprint,
            endpoints: Vec::new(),
            advertised_routes: Vec::new(),
            approved_routes: Vec::new(),
            created_at: self.now,
            last_seen: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: [u8; 32]) -> RegisterRequest {
        serde_json::from_value(serde_json::json!({
            "auth_key": "hskey-x", "hostname": " laptop ", "os": "linux",
            "wireguard_key": WireGuardKey(key).to_string(), "csr_der": ""
        }))
        .unwrap()
    }

    #[test]
    fn low_order_keys_are_refused_and_real_ones_pass() {
        let p_minus_1 = {
            let mut key = [0xff; 32];
            key[0] = 0xec;
            key[31] = 0x7f;
            key
        };
        let order_8 = [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ];
        let mut one = [0u8; 32];
        one[0] = 1;
        for weak in [[0u8; 32], one, p_minus_1, order_8] {
            assert!(is_low_order(&WireGuardKey(weak)), "{weak:?}");
            assert!(matches!(
                check_request(&request(weak)),
                Err(Error::BadRequest(_))
            ));
        }
        let real = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random());
        assert!(!is_low_order(&WireGuardKey(real.to_bytes())));
        assert_eq!(check_request(&request(real.to_bytes())).unwrap(), "laptop");
    }

    #[test]
    fn pending_nodes_are_capped_per_key_and_per_user() {
        assert!(check_pending(false, MAX_PENDING_PER_KEY - 1, 0).is_ok());
        assert!(matches!(
            check_pending(false, MAX_PENDING_PER_KEY, 0),
            Err(Error::TooManyPending(_))
        ));
        assert!(matches!(
            check_pending(false, 0, MAX_PENDING_PER_USER),
            Err(Error::TooManyPending(_))
        ));
        assert!(
            check_pending(true, MAX_PENDING_PER_KEY, MAX_PENDING_PER_USER).is_ok(),
            "pre-approved nodes do not wait"
        );
    }
}
