//! Each compute node's credential, bound to its id: `NODE.MAC`, where MAC is
//! HMAC-SHA256 under the router's node key of the node id. The router keeps
//! no list (any node the admin made a credential for may join, and only as
//! itself), and a credential cannot speak for another node: before this,
//! nodes shared one token, so any holder could take another node's id and
//! receive its sealed requests. Pure: keys and ids are arguments.
//!
//! An admin makes a node's credential with `hearth-router node-token ID`;
//! taking every credential back means a new node key (and new credentials
//! for the nodes that stay).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

/// What the MAC covers besides the node id (so the key's MACs mean nothing
/// elsewhere).
const CONTEXT: &[u8] = b"hearth-router node credential v1\0";

/// Why a presented credential is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not of the form `NODE.MAC`.
    #[error("not a node credential (make one with `hearth-router node-token NODE`)")]
    Malformed,
    /// The MAC does not verify under this router's key.
    #[error("this credential was not made by this router's node key")]
    Forged,
}

fn mac(key: &[u8], node: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(CONTEXT);
    mac.update(node.as_bytes());
    mac
}

/// The credential of node `node` under `key`.
pub fn credential(key: &[u8], node: &str) -> Zeroizing<String> {
    let tag = mac(key, node).finalize().into_bytes();
    Zeroizing::new(format!("{node}.{}", URL_SAFE_NO_PAD.encode(tag)))
}

/// The node `presented` (a credential) speaks for, when it was made with
/// `key`; compared in constant time.
pub fn verify<'a>(key: &[u8], presented: &'a str) -> Result<&'a str, CredentialError> {
    let (node, tag) = presented
        .rsplit_once('.')
        .ok_or(CredentialError::Malformed)?;
    if !hearth_attest::evidence::valid_node_id(node) {
        return Err(CredentialError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| CredentialError::Malformed)?;
    mac(key, node)
        .verify_slice(&tag)
        .map_err(|_| CredentialError::Forged)?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_speaks_for_its_node_only() {
        let key = b"the router's node key, 32 bytes!";
        let node_a = credential(key, "node-a");
        assert!(node_a.starts_with("node-a."));
        assert_eq!(verify(key, &node_a), Ok("node-a"));
        // Relabelled for another node, the MAC no longer verifies.
        let relabelled = node_a.replacen("node-a", "node-b", 1);
        assert_eq!(verify(key, &relabelled), Err(CredentialError::Forged));
        // Made with another key.
        let other = credential(b"another router's key, 32 bytes!!", "node-a");
        assert_eq!(verify(key, &other), Err(CredentialError::Forged));
        // The key itself, or noise, is no credential.
        for presented in [
            "the router's node key, 32 bytes!",
            "",
            ".",
            "node-a.",
            "node a.AAAA",
            "node-a.%%%",
        ] {
            assert!(verify(key, presented).is_err(), "{presented:?}");
        }
    }
}
