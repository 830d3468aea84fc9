//! Optional encryption of message bodies at rest, with the key and cipher
//! every service shares (`hearth_files::sealed`): each body is bound to its
//! room and sender, so it cannot be moved to another message's place
//! unnoticed.

pub use hearth_files::sealed::{AtRestKey, SealError as AtRestError};

/// The place a body of `sender` in `room` is sealed for.
fn aad(room: &str, sender: &str) -> Vec<u8> {
    format!("hearth-message-v1\n{room}\n{sender}").into_bytes()
}

/// Seals `body` of a message by `sender` in `room`: nonce || ciphertext.
pub fn seal(key: &AtRestKey, room: &str, sender: &str, body: &str) -> Vec<u8> {
    key.seal(&aad(room, sender), body.as_bytes())
}

/// The place a file shared in message `id` of `sender` in `room` is
/// sealed for (`part`: `about` for its name and type, `content` for its bytes).
fn file_aad(part: &str, room: &str, sender: &str, id: i64) -> Vec<u8> {
    format!("hearth-attachment-v1\n{part}\n{room}\n{sender}\n{id}").into_bytes()
}

/// Seals `part` of the file shared in message `id`: nonce || ciphertext.
pub fn seal_file(
    key: &AtRestKey,
    part: &str,
    room: &str,
    sender: &str,
    id: i64,
    bytes: &[u8],
) -> Vec<u8> {
    key.seal(&file_aad(part, room, sender, id), bytes)
}

/// Opens `part` of the file shared in message `id`.
pub fn open_file(
    key: &AtRestKey,
    part: &str,
    room: &str,
    sender: &str,
    id: i64,
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, AtRestError> {
    key.open(&file_aad(part, room, sender, id), sealed)
}

/// Opens a sealed body.
pub fn open(
    key: &AtRestKey,
    room: &str,
    sender: &str,
    sealed: &[u8],
) -> Result<String, AtRestError> {
    key.open_text(&aad(room, sender), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bound_to_their_room_and_sender() {
        let key = AtRestKey::new(&[3; 32]);
        let sealed = seal(&key, "household", "ada", "the spare key is under the pot");
        assert_eq!(
            open(&key, "household", "ada", &sealed).unwrap(),
            "the spare key is under the pot"
        );
        assert_eq!(
            open(&key, "household", "ben", &sealed),
            Err(AtRestError::Undecryptable)
        );
        assert_eq!(
            open(&key, "garden", "ada", &sealed),
            Err(AtRestError::Undecryptable)
        );
    }

    #[test]
    fn files_are_bound_to_their_message() {
        let key = AtRestKey::new(&[3; 32]);
        let sealed = seal_file(&key, "content", "household", "ada", 7, b"%PDF-1.7");
        assert_eq!(
            open_file(&key, "content", "household", "ada", 7, &sealed)
                .unwrap()
                .as_slice(),
            b"%PDF-1.7"
        );
        for (part, room, sender, id) in [
            ("about", "household", "ada", 7),
            ("content", "household", "ada", 8),
            ("content", "household", "ben", 7),
            ("content", "garden", "ada", 7),
        ] {
            assert_eq!(
                open_file(&key, part, room, sender, id, &sealed),
                Err(AtRestError::Undecryptable)
            );
        }
    }
}
