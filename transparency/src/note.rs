//! Signed checkpoints in the C2SP formats (`tlog-checkpoint`, `signed-note`)
//! that Go's checksum database, Sigstore's Rekor v2 and Trillian's
//! witnesses use:
//!
//! ```text
//! hearth.home.example/log
//! 7
//! <base64 root hash>
//!
//! — hearth.home.example/log <base64(key id (4 bytes) || Ed25519 signature)>
//! ```
//!
//! The key id is the first four bytes of SHA-256(name || "\n" || 0x01 ||
//! public key); a verifier key is written
//! `<name>+<key id, 8 hex digits>+<base64(0x01 || public key)>`. Pure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use sha2::{Digest as _, Sha256};

use crate::merkle::Hash;

/// The signature line's mark (U+2014 EM DASH, then a space).
const MARK: &str = "\u{2014} ";
/// The algorithm byte of an Ed25519 key.
const ED25519_KEY: u8 = 0x01;
/// Largest note read.
pub const MAX_NOTE: usize = 8 * 1024;

/// A checkpoint: the log's name, its size and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (its origin line).
    pub origin: String,
    /// How many entries it holds.
    pub size: u64,
    /// The root of the tree of those entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The note's text (what is signed).
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }
}

/// Why a note is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not the shape of a signed checkpoint.
    #[error("not a signed checkpoint: {0}")]
    Format(&'static str),
    /// The verifier key is not one.
    #[error("not a verifier key (name+keyid+base64): {0}")]
    Key(&'static str),
    /// The checkpoint is another log's.
    #[error("the checkpoint is the log {found:?}'s, not {wanted:?}'s")]
    Origin {
        /// What it says.
        found: String,
        /// What was expected.
        wanted: String,
    },
    /// No signature by the key verifies.
    #[error("no signature by the log's key verifies")]
    Unsigned,
}

fn key_id(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update(b"\n");
    hash.update([ED25519_KEY]);
    hash.update(public_key);
    let digest = hash.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', ' ', '\n']) && !name.chars().any(char::is_control)
}

/// A log's signing key.
pub struct Signer {
    name: String,
    key: Ed25519KeyPair,
}

impl Signer {
    /// A new key (PKCS#8, to keep secret) for the log `name`.
    pub fn generate(name: &str) -> Result<(Signer, zeroize::Zeroizing<Vec<u8>>), NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("a name has no '+', spaces or newlines"));
        }
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| NoteError::Key("no key could be made"))?;
        let pkcs8 = zeroize::Zeroizing::new(pkcs8.as_ref().to_vec());
        Ok((Signer::from_pkcs8(name, &pkcs8)?, pkcs8))
    }

    /// The key for `name` kept as PKCS#8.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Signer, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("a name has no '+', spaces or newlines"));
        }
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| NoteError::Key("the kept key is not an Ed25519 PKCS#8 key"))?;
        Ok(Signer {
            name: name.to_owned(),
            key,
        })
    }

    /// The verifier key clients pin.
    pub fn verifier(&self) -> String {
        let public = self.key.public_key().as_ref();
        let mut encoded = vec![ED25519_KEY];
        encoded.extend_from_slice(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, public)),
            STANDARD.encode(encoded)
        )
    }

    /// `checkpoint`, signed.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let text = checkpoint.text();
        let signature = self.key.sign(text.as_bytes());
        let mut blob = key_id(&self.name, self.key.public_key().as_ref()).to_vec();
        blob.extend_from_slice(signature.as_ref());
        format!("{text}\n{MARK}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// A verifier key, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    public_key: Vec<u8>,
}

impl Verifier {
    /// Parses `name+keyid+base64`.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key("three parts separated by '+'"));
        };
        if !valid_name(name) {
            return Err(NoteError::Key("the name"));
        }
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(NoteError::Key("the key id is 8 hex digits"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Key("the key is not base64"))?;
        let Some((&ED25519_KEY, public_key)) = key.split_first() else {
            return Err(NoteError::Key("only Ed25519 keys (0x01)"));
        };
        if public_key.len() != 32 {
            return Err(NoteError::Key("an Ed25519 key is 32 bytes"));
        }
        if key_id(name, public_key) != id {
            return Err(NoteError::Key("the key id does not match the key"));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id,
            public_key: public_key.to_vec(),
        })
    }

    /// The log's name, as its key names it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads `note` and checks it is a checkpoint of the log `origin`
    /// signed by this key (other signatures, by witnesses, are ignored).
    pub fn open(&self, note: &str, origin: &str) -> Result<Checkpoint, NoteError> {
        if note.len() > MAX_NOTE {
            return Err(NoteError::Format("longer than a checkpoint"));
        }
        let (text, signatures) = note
            .split_once("\n\n")
            .ok_or(NoteError::Format("no blank line before the signatures"))?;
        let text = format!("{text}\n");
        let mut signed = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(MARK) else {
                return Err(NoteError::Format(
                    "a signature line must start with an em dash",
                ));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(NoteError::Format("a signature line names its key"));
            };
            let Ok(blob) = STANDARD.decode(blob) else {
                return Err(NoteError::Format("a signature is not base64"));
            };
            if name != self.name || blob.len() != 4 + 64 || blob[..4] != self.id {
                continue;
            }
            signed |= UnparsedPublicKey::new(&ED25519, &self.public_key)
                .verify(text.as_bytes(), &blob[4..])
                .is_ok();
        }
        if !signed {
            return Err(NoteError::Unsigned);
        }
        let checkpoint = parse_checkpoint(&text)?;
        if checkpoint.origin != origin {
            return Err(NoteError::Origin {
                found: checkpoint.origin,
                wanted: origin.to_owned(),
            });
        }
        Ok(checkpoint)
    }
}

/// The checkpoint in a note's text (origin, size, root; extension lines
/// after them are allowed and ignored).
fn parse_checkpoint(text: &str) -> Result<Checkpoint, NoteError> {
    let mut lines = text.lines();
    let origin = lines
        .next()
        .filter(|origin| !origin.is_empty())
        .ok_or(NoteError::Format("no origin line"))?;
    let size = lines
        .next()
        .and_then(|size| {
            (size == "0" || !size.starts_with('0'))
                .then(|| size.parse::<u64>().ok())
                .flatten()
        })
        .ok_or(NoteError::Format("the size is not a decimal number"))?;
    let root: Hash = lines
        .next()
        .and_then(|root| STANDARD.decode(root).ok())
        .and_then(|root| root.try_into().ok())
        .ok_or(NoteError::Format("the root is not 32 bytes of base64"))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "hearth.test/log".into(),
            size: 7,
            root: [9; 32],
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_no_other() {
        let (signer, pkcs8) = Signer::generate("hearth.test/log").unwrap();
        let verifier = Verifier::parse(&signer.verifier()).unwrap();
        let note = signer.sign(&checkpoint());
        assert!(note.starts_with("hearth.test/log\n7\n"));
        assert!(note.contains("\n\n\u{2014} hearth.test/log "));
        assert_eq!(
            verifier.open(&note, "hearth.test/log").unwrap(),
            checkpoint()
        );
        // The same key, kept and read back, signs the same way.
        let again = Signer::from_pkcs8("hearth.test/log", &pkcs8).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        // Another key, another origin, or an edited size: refused.
        let (other, _) = Signer::generate("hearth.test/log").unwrap();
        assert_eq!(
            Verifier::parse(&other.verifier())
                .unwrap()
                .open(&note, "hearth.test/log"),
            Err(NoteError::Unsigned)
        );
        assert!(matches!(
            verifier.open(&note, "another/log"),
            Err(NoteError::Origin { .. })
        ));
        let edited = note.replacen("\n7\n", "\n8\n", 1);
        assert_eq!(
            verifier.open(&edited, "hearth.test/log"),
            Err(NoteError::Unsigned)
        );
        // A witness's cosignature beside the log's is ignored.
        let witnessed = format!("{note}\u{2014} witness.example AAAA\n");
        assert!(verifier.open(&witnessed, "hearth.test/log").is_ok());
    }

    #[test]
    fn verifier_keys_are_checked() {
        let (signer, _) = Signer::generate("log").unwrap();
        let text = signer.verifier();
        assert!(Verifier::parse(&text).is_ok());
        assert!(Verifier::parse("log+00000000+AQ==").is_err());
        let wrong_id = format!("log+ffffffff{}", &text[text.find('+').unwrap() + 9..]);
        assert_eq!(
            Verifier::parse(&wrong_id),
            Err(NoteError::Key("the key id does not match the key"))
        );
        assert!(Signer::generate("has space").is_err());
    }
}
