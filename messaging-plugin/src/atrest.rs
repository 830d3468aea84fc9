//! Optional encryption of message bodies at rest: ChaCha20-Poly1305 with a
//! 32-byte key from a file (0600), a random nonce per message, and the room
//! and sender as authenticated data (a body cannot be moved to another
//! message's place unnoticed). Pure apart from the key file reader.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

/// Why a body or key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtRestError {
    /// The key file is not 32 bytes (raw, hex or base64).
    #[error("{0}")]
    BadKey(String),
    /// A sealed body does not open with this key.
    #[error(
        "a stored message does not decrypt with this key (wrong key, or the database was altered)"
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

fn aad(room: &str, sender: &str) -> Vec<u8> {
    format!("hearth-message-v1\n{room}\n{sender}").into_bytes()
}

impl AtRestKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> AtRestKey {
        AtRestKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }

    /// Parses a key file's contents: 32 raw bytes, 64 hex digits or base64 of 32 bytes.
    pub fn parse(contents: &[u8]) -> Result<AtRestKey, AtRestError> {
        let bad = || {
            AtRestError::BadKey("the key file must hold 32 bytes: raw, 64 hex digits, or base64 (`head -c 32 /dev/urandom > KEY`)".into())
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
    pub fn load(path: &Path) -> Result<AtRestKey, AtRestError> {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = std::fs::metadata(path)
            .map_err(|error| AtRestError::BadKey(format!("{}: {error}", path.display())))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(AtRestError::BadKey(format!(
                "{} must not be readable by others (chmod 600)",
                path.display()
            )));
        }
        let contents = Zeroizing::new(
            std::fs::read(path)
                .map_err(|error| AtRestError::BadKey(format!("{}: {error}", path.display())))?,
        );
        AtRestKey::parse(&contents)
    }

    /// Seals `body` of a message by `sender` in `room`: nonce || ciphertext.
    pub fn seal(&self, room: &str, sender: &str, body: &str) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let aad = aad(room, sender);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: body.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        [nonce.as_slice(), &ciphertext].concat()
    }

    /// Opens a sealed body.
    pub fn open(&self, room: &str, sender: &str, sealed: &[u8]) -> Result<String, AtRestError> {
        if sealed.len() < 12 + 16 {
            return Err(AtRestError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let aad = aad(room, sender);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| AtRestError::Undecryptable)?;
        String::from_utf8(plaintext).map_err(|_| AtRestError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_are_bound_to_their_place() {
        let key = AtRestKey::new(&[3; 32]);
        let sealed = key.seal("household", "ada", "the spare key is under the pot");
        assert!(!sealed.windows(5).any(|window| window == b"spare"));
        assert_eq!(
            key.open("household", "ada", &sealed).unwrap(),
            "the spare key is under the pot"
        );
        assert_eq!(
            key.open("household", "ben", &sealed),
            Err(AtRestError::Undecryptable)
        );
        assert_eq!(
            key.open("garden", "ada", &sealed),
            Err(AtRestError::Undecryptable)
        );
        assert_eq!(
            AtRestKey::new(&[4; 32]).open("household", "ada", &sealed),
            Err(AtRestError::Undecryptable)
        );
        assert_ne!(
            key.seal("household", "ada", "x"),
            key.seal("household", "ada", "x"),
            "fresh nonces"
        );
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
            let sealed = AtRestKey::new(&raw).seal("r", "s", "same key");
            assert_eq!(key.open("r", "s", &sealed).unwrap(), "same key");
        }
        assert!(AtRestKey::parse(b"short").is_err());
    }
}
