//! Encryption at rest for what a service keeps in its database (household
//! messages, what the assistant remembers): ChaCha20-Poly1305 with a
//! 32-byte key from a file (0600), a random nonce per value, and
//! authenticated data naming the value's place, so that a sealed value
//! cannot be moved to another row's place (another member's memory, say)
//! without failing to open. Pure apart from the key file reader.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

/// Why a value or key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key file is not 32 bytes (raw, hex or base64), or others can read it.
    #[error("{0}")]
    BadKey(String),
    /// A sealed value does not open with this key in this place.
    #[error(
        "a stored value does not decrypt with this key (wrong key, or the database was altered)"
    )]
    Undecryptable,
}

/// The at-rest key.
pub struct AtRestKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AtRestKey(..)")
    }
}

/// Bytes of nonce and tag a sealed value adds.
pub const OVERHEAD: usize = 12 + 16;

impl AtRestKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> AtRestKey {
        AtRestKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }

    /// Parses a key file's contents: 32 raw bytes, 64 hex digits or base64 of 32 bytes.
    pub fn parse(contents: &[u8]) -> Result<AtRestKey, SealError> {
        let bad = || {
            SealError::BadKey("the key file must hold 32 bytes: raw, 64 hex digits, or base64 (`head -c 32 /dev/urandom > KEY`)".into())
        };
        if contents.len() == 32 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            bytes.copy_from_slice(contents);
            return Ok(AtRestKey::new(&bytes));
        }
        let text = std::str::from_utf8(contents).map_err(|_| bad())?.trim();
        let decoded = Zeroizing::new(
            if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                (0..32)
                    .map(|index| {
                        u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).map_err(|_| bad())
                    })
                    .collect::<Result<Vec<u8>, _>>()?
            } else {
                STANDARD.decode(text).map_err(|_| bad())?
            },
        );
        let bytes: Zeroizing<[u8; 32]> =
            Zeroizing::new(decoded.as_slice().try_into().map_err(|_| bad())?);
        Ok(AtRestKey::new(&bytes))
    }

    /// Reads the key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<AtRestKey, SealError> {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = std::fs::metadata(path)
            .map_err(|error| SealError::BadKey(format!("{}: {error}", path.display())))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(SealError::BadKey(format!(
                "{} must not be readable by others (chmod 600)",
                path.display()
            )));
        }
        let contents = Zeroizing::new(
            std::fs::read(path)
                .map_err(|error| SealError::BadKey(format!("{}: {error}", path.display())))?,
        );
        AtRestKey::parse(&contents)
    }

    /// Seals `plaintext` for the place `aad` names: nonce || ciphertext.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        [nonce.as_slice(), &ciphertext].concat()
    }

    /// Opens a value sealed for the place `aad` names.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < OVERHEAD {
            return Err(SealError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Undecryptable)
    }

    /// Opens a sealed UTF-8 text.
    pub fn open_text(&self, aad: &[u8], sealed: &[u8]) -> Result<String, SealError> {
        let plaintext = self.open(aad, sealed)?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| SealError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_are_bound_to_their_place() {
        let key = AtRestKey::new(&[3; 32]);
        let sealed = key.seal(b"member:ada", b"the spare key is under the pot");
        assert!(!sealed.windows(5).any(|window| window == b"spare"));
        assert_eq!(
            key.open_text(b"member:ada", &sealed).unwrap(),
            "the spare key is under the pot"
        );
        assert_eq!(
            key.open(b"member:ben", &sealed),
            Err(SealError::Undecryptable)
        );
        assert_eq!(
            AtRestKey::new(&[4; 32]).open(b"member:ada", &sealed),
            Err(SealError::Undecryptable)
        );
        assert_eq!(
            key.open(b"member:ada", &sealed[..20]),
            Err(SealError::Undecryptable)
        );
        assert_ne!(key.seal(b"a", b"x"), key.seal(b"a", b"x"), "fresh nonces");
    }

    #[test]
    fn key_files_in_three_spellings() {
        let raw = [9u8; 32];
        let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
        let b64 = STANDARD.encode(raw);
        for contents in [
            raw.to_vec(),
            format!("{hex}\n").into_bytes(),
            b64.into_bytes(),
        ] {
            let key = AtRestKey::parse(&contents).unwrap();
            let sealed = AtRestKey::new(&raw).seal(b"r", b"same key");
            assert_eq!(key.open_text(b"r", &sealed).unwrap(), "same key");
        }
        assert!(AtRestKey::parse(b"short").is_err());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, [7u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            matches!(AtRestKey::load(&path), Err(SealError::BadKey(why)) if why.contains("chmod 600"))
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AtRestKey::load(&path).is_ok());
    }
}
