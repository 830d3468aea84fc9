//! Pre-auth keys: their text form, how they are stored, and when they admit a node.
//!
//! A key reads `hskey-<prefix>-<secret>`. The prefix (12 hex digits) is public:
//! it names the key in lists and finds its row. The secret (32 random bytes,
//! base64url) is shown once, at creation; only its SHA-256 is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const KEY_PREFIX: &str = "hskey-";
const PREFIX_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// A newly minted key: the text to hand out once and what to store.
pub struct MintedKey {
    /// The whole key, for the admin to pass on; never stored.
    pub text: Zeroizing<String>,
    /// Its public prefix.
    pub prefix: String,
    /// SHA-256 of its secret.
    pub secret_hash: [u8; 32],
}

/// Makes a new random key.
pub fn mint() -> MintedKey {
    let mut rng = rand::rng();
    let mut prefix = [0u8; PREFIX_BYTES];
    rng.fill_bytes(&mut prefix);
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    rng.fill_bytes(secret.as_mut());
    let prefix = hex::encode(prefix);
    let secret_text = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_ref()));
    MintedKey {
        text: Zeroizing::new(format!("{KEY_PREFIX}{prefix}-{}", secret_text.as_str())),
        secret_hash: hash_secret(&secret_text),
        prefix,
    }
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A key as presented by a registering device, split into its parts.
pub struct PresentedKey<'a> {
    /// Public prefix.
    pub prefix: &'a str,
    secret: &'a str,
}

/// Splits a presented key; `None` when it is not shaped like a Hearth key.
pub fn parse(text: &str) -> Option<PresentedKey<'_>> {
    let rest = text.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('-')?;
    let well_formed = prefix.len() == PREFIX_BYTES * 2
        && prefix.bytes().all(|byte| byte.is_ascii_hexdigit())
        && !secret.is_empty();
    well_formed.then_some(PresentedKey { prefix, secret })
}

impl PresentedKey<'_> {
    /// Whether the secret matches the stored hash (constant time).
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        hash_secret(self.secret).ct_eq(stored_hash).into()
    }
}

/// The stored facts about a key that decide whether it admits one more node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    /// Usable any number of times.
    pub reusable: bool,
    /// Unix time after which it no longer works.
    pub expires_at: Option<i64>,
    /// Nodes it has admitted so far.
    pub use_count: i64,
}

/// Why a key does not admit a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Past its expiry.
    Expired,
    /// A single-use key that was already used.
    AlreadyUsed,
}

/// Whether a key with `usage` admits a node at time `now`.
pub fn admits(usage: KeyUsage, now: i64) -> Result<(), KeyRefusal> {
    if usage.expires_at.is_some_and(|expiry| now >= expiry) {
        return Err(KeyRefusal::Expired);
    }
    if !usage.reusable && usage.use_count > 0 {
        return Err(KeyRefusal::AlreadyUsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_key_parses_and_matches_only_its_own_hash() {
        let key = mint();
        let presented = parse(&key.text).expect("minted keys parse");
        assert_eq!(presented.prefix, key.prefix);
        assert!(presented.matches(&key.secret_hash));
        let other = mint();
        assert!(!presented.matches(&other.secret_hash));
    }

    #[test]
    fn keys_of_the_wrong_shape_are_not_parsed() {
        for text in [
            "",
            "hskey-",
            "hskey-abc-def",
            "hskey-0123456789ab-",
            "tskey-0123456789ab-x",
            "hskey-0123456789zz-x",
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
        assert!(parse("hskey-0123456789ab-secret").is_some());
    }

    #[test]
    fn a_tampered_secret_does_not_match() {
        let key = mint();
        let mut text = key.text.to_string();
        let last = text.pop().expect("non-empty");
        text.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            !parse(&text)
                .expect("still well formed")
                .matches(&key.secret_hash)
        );
    }

    #[test]
    fn expiry_and_single_use_are_enforced() {
        let fresh = KeyUsage {
            reusable: false,
            expires_at: Some(100),
            use_count: 0,
        };
        assert_eq!(admits(fresh, 99), Ok(()));
        assert_eq!(admits(fresh, 100), Err(KeyRefusal::Expired));
        let used = KeyUsage {
            use_count: 1,
            ..fresh
        };
        assert_eq!(admits(used, 50), Err(KeyRefusal::AlreadyUsed));
        let reusable = KeyUsage {
            reusable: true,
            expires_at: None,
            use_count: 40,
        };
        assert_eq!(admits(reusable, i64::MAX), Ok(()));
    }
}
