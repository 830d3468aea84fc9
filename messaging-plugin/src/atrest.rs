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
}
