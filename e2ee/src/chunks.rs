//! Sealed response chunks: every SSE event of a reply is sealed on its own,
//! with a key and base nonce exported from the request's HPKE context, a
//! counter nonce, and the sequence number and "final" mark in the
//! authenticated data, so that reordering, dropping, splicing and truncation
//! are all detected.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The key material exported from the HPKE context.
pub struct ResponseSecrets {
    /// ChaCha20-Poly1305 key.
    pub key: Zeroizing<[u8; 32]>,
    /// Base nonce; chunk `n` uses it XOR `n` (big-endian, in the last 8 bytes).
    pub nonce: Zeroizing<[u8; 12]>,
}

/// One sealed chunk, as carried in an SSE `data:` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedChunk {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Whether this is the last chunk of the reply.
    #[serde(rename = "final")]
    pub last: bool,
    /// Ciphertext and tag, base64url.
    pub ct: String,
}

/// Why a chunk was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk is missing, repeated or out of order.
    #[error("chunk {got} arrived where chunk {expected} was due")]
    OutOfOrder {
        /// The sequence number due.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A chunk came after the final one.
    #[error("a chunk arrived after the final chunk")]
    AfterFinal,
    /// A chunk does not decrypt.
    #[error("a chunk was altered")]
    Tampered,
    /// The stream ended before its final chunk.
    #[error("the reply was cut short (no final chunk)")]
    Truncated,
}

impl ChunkError {
    /// A short stable name for the failure (as the test vectors name it).
    pub fn code(&self) -> &'static str {
        match self {
            ChunkError::OutOfOrder { .. } => "out_of_order",
            ChunkError::AfterFinal => "after_final",
            ChunkError::Tampered => "tampered",
            ChunkError::Truncated => "truncated",
        }
    }
}

fn nonce_for(base: &[u8; 12], seq: u64) -> [u8; 12] {
    let mut nonce = *base;
    for (slot, byte) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *slot ^= byte;
    }
    nonce
}

/// The authenticated data of chunk `seq`.
pub fn chunk_aad(request_id: &str, seq: u64, last: bool) -> Vec<u8> {
    let mut aad = b"hearth-chunk-v1".to_vec();
    aad.extend_from_slice(request_id.as_bytes());
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// ChaCha20-Poly1305 with `key`. ring's implementation: for the short
/// messages of a chat stream it is several times faster than the
/// `chacha20poly1305` crate, whose vector backends pay a setup per message.
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key fits ChaCha20-Poly1305"),
    )
}

/// Seals the chunks of one reply (gateway side).
pub struct ChunkSealer {
    cipher: LessSafeKey,
    nonce: Zeroizing<[u8; 12]>,
    request_id: String,
    next: u64,
    finished: bool,
}

impl ChunkSealer {
    /// A sealer for the reply to `request_id`.
    pub fn new(secrets: ResponseSecrets, request_id: &str) -> ChunkSealer {
        ChunkSealer {
            cipher: cipher(&secrets.key),
            nonce: secrets.nonce,
            request_id: request_id.to_owned(),
            next: 0,
            finished: false,
        }
    }

    /// Seals the next chunk; `last` marks the end of the reply.
    pub fn seal(&mut self, plaintext: &[u8], last: bool) -> SealedChunk {
        debug_assert!(!self.finished, "no chunk after the final one");
        let seq = self.next;
        self.next += 1;
        self.finished |= last;
        let mut buffer = Vec::with_capacity(plaintext.len() + CHACHA20_POLY1305.tag_len());
        buffer.extend_from_slice(plaintext);
        let nonce = Nonce::assume_unique_for_key(nonce_for(&self.nonce, seq));
        self.cipher
            .seal_in_place_append_tag(
                nonce,
                Aad::from(chunk_aad(&self.request_id, seq, last)),
                &mut buffer,
            )
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        SealedChunk {
            seq,
            last,
            ct: URL_SAFE_NO_PAD.encode(&buffer),
        }
    }
}

/// Seals `event` as the next chunk of a reply and frames it as one SSE
/// event (`event: chunk`), the final chunk when the event ends the reply.
/// The gateway and compute nodes both answer this way.
pub fn sse_chunk(sealer: &mut ChunkSealer, event: &crate::ReplyEvent) -> String {
    let text = Zeroizing::new(serde_json::to_vec(event).expect("events serialize"));
    let chunk = sealer.seal(&text, event.is_final());
    let json = serde_json::to_string(&chunk).expect("chunks serialize");
    format!("event: chunk\ndata: {json}\n\n")
}

/// Opens the chunks of one reply, in order (client side).
pub struct ChunkOpener {
    cipher: LessSafeKey,
    nonce: Zeroizing<[u8; 12]>,
    request_id: String,
    next: u64,
    finished: bool,
}

impl ChunkOpener {
    /// An opener for the reply to `request_id`.
    pub fn new(secrets: ResponseSecrets, request_id: &str) -> ChunkOpener {
        ChunkOpener {
            cipher: cipher(&secrets.key),
            nonce: secrets.nonce,
            request_id: request_id.to_owned(),
            next: 0,
            finished: false,
        }
    }

    /// Opens the next chunk.
    pub fn open(&mut self, chunk: &SealedChunk) -> Result<Zeroizing<Vec<u8>>, ChunkError> {
        if self.finished {
            return Err(ChunkError::AfterFinal);
        }
        if chunk.seq != self.next {
            return Err(ChunkError::OutOfOrder {
                expected: self.next,
                got: chunk.seq,
            });
        }
        let mut buffer = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(&chunk.ct)
                .map_err(|_| ChunkError::Tampered)?,
        );
        let nonce = Nonce::assume_unique_for_key(nonce_for(&self.nonce, chunk.seq));
        let length = self
            .cipher
            .open_in_place(
                nonce,
                Aad::from(chunk_aad(&self.request_id, chunk.seq, chunk.last)),
                &mut buffer[..],
            )
            .map_err(|_| ChunkError::Tampered)?
            .len();
        buffer.truncate(length);
        self.next += 1;
        self.finished = chunk.last;
        Ok(buffer)
    }

    /// Call when the stream ends: an error unless the final chunk arrived.
    pub fn finish(&self) -> Result<(), ChunkError> {
        if self.finished {
            Ok(())
        } else {
            Err(ChunkError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (ChunkSealer, ChunkOpener) {
        let secrets = || ResponseSecrets {
            key: Zeroizing::new([7; 32]),
            nonce: Zeroizing::new([9; 12]),
        };
        (
            ChunkSealer::new(secrets(), "request-0123456789"),
            ChunkOpener::new(secrets(), "request-0123456789"),
        )
    }

    #[test]
    fn chunks_open_in_order_until_the_final_one() {
        let (mut sealer, mut opener) = pair();
        let chunks = [
            sealer.seal(b"hel", false),
            sealer.seal("lo \u{e9}".as_bytes(), false),
            sealer.seal(b"", true),
        ];
        assert_eq!(opener.open(&chunks[0]).unwrap().as_slice(), b"hel");
        assert_eq!(opener.finish(), Err(ChunkError::Truncated));
        assert_eq!(
            opener.open(&chunks[1]).unwrap().as_slice(),
            "lo \u{e9}".as_bytes()
        );
        opener.open(&chunks[2]).unwrap();
        assert_eq!(opener.finish(), Ok(()));
        assert_eq!(opener.open(&chunks[2]), Err(ChunkError::AfterFinal));
    }

    #[test]
    fn reordering_replay_tampering_and_false_endings_are_caught() {
        let (mut sealer, mut opener) = pair();
        let first = sealer.seal(b"one", false);
        let second = sealer.seal(b"two", false);
        assert_eq!(
            opener.open(&second),
            Err(ChunkError::OutOfOrder {
                expected: 0,
                got: 1
            })
        );
        opener.open(&first).unwrap();
        assert_eq!(
            opener.open(&first),
            Err(ChunkError::OutOfOrder {
                expected: 1,
                got: 0
            })
        );
        let mut forged_end = second.clone();
        forged_end.last = true;
        assert_eq!(
            opener.open(&forged_end),
            Err(ChunkError::Tampered),
            "the final mark is authenticated"
        );
        let mut altered = second.clone();
        altered.ct.replace_range(
            0..1,
            if altered.ct.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        assert_eq!(opener.open(&altered), Err(ChunkError::Tampered));
        opener.open(&second).unwrap();
    }

    #[test]
    fn a_chunk_from_another_reply_does_not_open() {
        let (mut sealer, _) = pair();
        let chunk = sealer.seal(b"x", true);
        let mut other = ChunkOpener::new(
            ResponseSecrets {
                key: Zeroizing::new([7; 32]),
                nonce: Zeroizing::new([9; 12]),
            },
            "another-request-id",
        );
        assert_eq!(other.open(&chunk), Err(ChunkError::Tampered));
    }
}
