//! Who may register, and what the new node record is: the decisions are
//! pure ([`check_request`], [`check_pending`], [`new_record`]); the shell looks
//! up the key and the counts, asks them, then stores and delivers the node.
//! Devices without an agent (a phone with the official WireGuard app) are
//! registered here too ([`crate::Coordinator::add_static_device`]).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use hearth_control::wire::{NodeId, NodeState, RegisterRequest, WireGuardKey};

use crate::db::preauth_keys::PreauthKeyRow;
use crate::error::{Error, Result};
use crate::netmap::Credential;
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

/// Whose a new node is and how it is admitted.
#[derive(Clone, Debug)]
pub struct Owner {
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub user: String,
    /// Tags it carries from its key (it then acts as them).
    pub tags: BTreeSet<String>,
    /// Removed after a time offline.
    pub ephemeral: bool,
    /// Approved at once, or waiting.
    pub state: NodeState,
    /// How long its keys live (seconds); `None`: they never expire.
    pub key_lifetime: Option<u64>,
}

/// The device as it registers.
#[derive(Clone, Debug)]
pub struct Device {
    /// Its (unique) node name.
    pub name: String,
    /// The hostname it reported.
    pub hostname: String,
    /// Its operating system.
    pub os: String,
    /// Its WireGuard public key.
    pub key: WireGuardKey,
    /// What it proves itself with later; `None` for a device without an agent.
    pub credential: Option<Credential>,
    /// The client software and version, for Tailscale clients.
    pub client: String,
}

/// A new node's record: node `id` of `owner`, made from `device`, with
/// `addresses`, registered at `now`. Nothing is known yet of where it is
/// or what it routes.
pub fn new_record(
    id: NodeId,
    owner: Owner,
    device: Device,
    addresses: (Ipv4Addr, Ipv6Addr),
    now: i64,
) -> NodeRecord {
    NodeRecord {
        id,
        user_id: owner.user_id,
        user: owner.user,
        tags: owner.tags,
        ephemeral: owner.ephemeral,
        state: owner.state,
        name: device.name,
        hostname: device.hostname,
        os: device.os,
        wireguard_key: device.key,
        static_device: device.credential.is_none(),
        cert_fingerprint: match device.credential {
            Some(Credential::Certificate(fingerprint)) => Some(fingerprint),
            _ => None,
        },
        machine_key: match device.credential {
            Some(Credential::Machine(key)) => Some(key),
            _ => None,
        },
        disco_key: None,
        home_relay: None,
        client: device.client,
        capability_version: 0,
        ipv4: addresses.0,
        ipv6: addresses.1,
        endpoints: Vec::new(),
        advertised_routes: Vec::new(),
        approved_routes: Vec::new(),
        created_at: now,
        last_seen: None,
        key_expiry: crate::keys::expiry_from(now, owner.key_lifetime),
        key_lifetime: owner.key_lifetime,
        services: Vec::new(),
        ssh_host_keys: Vec::new(),
        service_ads: Default::default(),
        hosted: Vec::new(),
    }
}

/// Who owns a node registered with `key`, and whether it waits for
/// approval; `default_lifetime` is the coordinator's key lifetime.
pub fn owner_from_key(key: &PreauthKeyRow, default_lifetime: Option<u64>) -> Owner {
    Owner {
        key_lifetime: crate::keys::lifetime_for(key, default_lifetime),
        user_id: key.user_id,
        user: key.user.clone(),
        tags: key.tags.iter().cloned().collect(),
        ephemeral: key.ephemeral,
        state: if key.pre_approved {
            NodeState::Approved
        } else {
            NodeState::Pending
        },
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
