//! The request envelope: a chat request sealed with HPKE (RFC 9180) to the
//! gateway's public key, authenticated with the device's key.
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, in
//! mode `auth` (the device proves it holds its private key). The HPKE context
//! then exports the key and nonce that seal the response chunks
//! ([`crate::chunks`]). docs/e2ee-protocol.md is the full specification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::chunks::{ChunkOpener, ChunkSealer, ResponseSecrets};
use crate::receiver::Receiver;

/// The KEM.
pub type Kem = X25519HkdfSha256;
/// The KDF.
pub type Kdf = HkdfSha256;
/// The AEAD.
pub type Aead = ChaCha20Poly1305;

/// The suite, as published in `/api/pubkey`.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305; mode auth";
/// Envelope format version.
pub const VERSION: u8 = 1;
/// The HPKE `info` string of requests to a gateway.
pub const INFO: &[u8] = b"hearth chat v1";
/// The HPKE `info` string of requests to a compute node's request key
/// (docs/private-compute.md): the same envelope, another domain, so a
/// request sealed for one can never be opened as the other.
pub const COMPUTE_INFO: &[u8] = b"hearth compute v1";
/// Exporter context of the response key (32 bytes).
pub const EXPORT_KEY: &[u8] = b"hearth response key";
/// Exporter context of the response base nonce (12 bytes).
pub const EXPORT_NONCE: &[u8] = b"hearth response nonce";

/// Encodes bytes as the envelope does: unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(field: &'static str, text: &str) -> Result<Vec<u8>, EnvelopeError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| EnvelopeError::Malformed(format!("`{field}` is not unpadded base64url")))
}

/// An X25519 key pair (a gateway key or a device key).
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct KeyPair {
    private: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "KeyPair {{ public: {} }}", b64(&self.public))
    }
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> KeyPair {
        let (private, public) = Kem::gen_keypair(&mut rand::rng());
        KeyPair::from_parts(&private, &public)
    }

    fn from_parts(
        private: &<Kem as hpke::Kem>::PrivateKey,
        public: &<Kem as hpke::Kem>::PublicKey,
    ) -> KeyPair {
        let mut private_bytes = [0u8; 32];
        private_bytes.copy_from_slice(&private.to_bytes());
        let mut public_bytes = [0u8; 32];
        public_bytes.copy_from_slice(&public.to_bytes());
        KeyPair {
            private: private_bytes,
            public: public_bytes,
        }
    }

    /// The key pair with this private key.
    pub fn from_private(private: &[u8]) -> Result<KeyPair, EnvelopeError> {
        let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(private)
            .map_err(|_| EnvelopeError::Malformed("not an X25519 private key".into()))?;
        let public = Kem::sk_to_pk(&secret);
        Ok(KeyPair::from_parts(&secret, &public))
    }

    /// The private key bytes (keep them secret).
    pub fn private_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.private)
    }

    /// A receiver of requests sealed to this key (the gateway's side).
    pub fn receiver(&self) -> Receiver {
        Receiver::new(&self.private, INFO)
    }

    /// A receiver of requests sealed to this key with `info` (a compute
    /// node passes [`COMPUTE_INFO`]).
    pub fn receiver_for(&self, info: &[u8]) -> Receiver {
        Receiver::new(&self.private, info)
    }

    /// The public key bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public
    }

    fn hpke_private(&self) -> Result<<Kem as hpke::Kem>::PrivateKey, EnvelopeError> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.private)
            .map_err(|_| EnvelopeError::Malformed("not an X25519 private key".into()))
    }

    fn hpke_public(&self) -> Result<<Kem as hpke::Kem>::PublicKey, EnvelopeError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.public)
            .map_err(|_| EnvelopeError::Malformed("not an X25519 public key".into()))
    }
}

/// A sealed chat request as it travels (JSON body of `POST /api/chat`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatEnvelope {
    /// Format version, 1.
    pub v: u8,
    /// Which gateway key it is sealed to.
    pub key_id: String,
    /// The device's public key (base64url).
    pub device_key: String,
    /// The HPKE encapsulated key (base64url).
    pub enc: String,
    /// Unix seconds when it was sealed.
    pub timestamp: i64,
    /// A fresh random id (16 bytes, base64url) for replay protection.
    pub request_id: String,
    /// The authenticated data (base64url); must equal [`request_aad`] of the fields above.
    pub aad: String,
    /// The sealed chat request (base64url).
    pub ciphertext: String,
}

/// Why an envelope was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A field is missing its expected shape.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope's `aad` does not bind its own fields.
    #[error("the envelope's aad does not match its fields")]
    AadMismatch,
    /// Decryption failed: wrong key, altered ciphertext or aad, or a forged device key.
    #[error("the envelope does not decrypt (altered, or sealed for another key)")]
    Decryption,
}

impl EnvelopeError {
    /// The stable error code the gateway answers with (docs/e2ee-protocol.md).
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            EnvelopeError::Malformed(_) => crate::ErrorCode::Malformed,
            EnvelopeError::AadMismatch => crate::ErrorCode::Tampered,
            EnvelopeError::Decryption => crate::ErrorCode::DecryptionFailed,
        }
    }
}

/// Reads an envelope from a request body: JSON with exactly the envelope's
/// fields, once each (a duplicate or unknown key, a float where an integer
/// goes, are all `malformed`).
pub fn parse_envelope(body: &[u8]) -> Result<ChatEnvelope, EnvelopeError> {
    serde_json::from_slice(body)
        .map_err(|error| EnvelopeError::Malformed(format!("not a chat envelope: {error}")))
}

/// The authenticated data binding an envelope's clear fields.
pub fn request_aad(key_id: &str, timestamp: i64, request_id: &str, device_key: &str) -> Vec<u8> {
    format!("hearth-chat-v1\n{key_id}\n{timestamp}\n{request_id}\n{device_key}").into_bytes()
}

/// Checks the shape of a request id: 16 to 64 base64url characters.
pub fn valid_request_id(request_id: &str) -> bool {
    (16..=64).contains(&request_id.len())
        && request_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn response_secrets<E: FnOnce(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>>(
    export_key: E,
    export_nonce: impl FnOnce(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Result<ResponseSecrets, EnvelopeError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let mut nonce = Zeroizing::new([0u8; 12]);
    export_key(EXPORT_KEY, key.as_mut()).map_err(|_| EnvelopeError::Decryption)?;
    export_nonce(EXPORT_NONCE, nonce.as_mut()).map_err(|_| EnvelopeError::Decryption)?;
    Ok(ResponseSecrets { key, nonce })
}

/// Seals `plaintext` for the gateway key `gateway_public` (id `key_id`) as
/// `device`, at `timestamp`; returns the envelope and the opener of the
/// response chunks.
pub fn seal_request(
    gateway_public: &[u8],
    key_id: &str,
    device: &KeyPair,
    plaintext: &[u8],
    timestamp: i64,
) -> Result<(ChatEnvelope, ChunkOpener), EnvelopeError> {
    seal_request_to(INFO, gateway_public, key_id, device, plaintext, timestamp)
}

/// [`seal_request`] with the HPKE `info` given: [`COMPUTE_INFO`] seals to a
/// compute node's request key.
pub fn seal_request_to(
    info: &[u8],
    gateway_public: &[u8],
    key_id: &str,
    device: &KeyPair,
    plaintext: &[u8],
    timestamp: i64,
) -> Result<(ChatEnvelope, ChunkOpener), EnvelopeError> {
    let request_id = b64(&rand::random::<[u8; 16]>());
    let sealed = seal_request_with(
        &mut rand::rng(),
        info,
        &request_id,
        gateway_public,
        key_id,
        device,
        plaintext,
        timestamp,
    )?;
    let (envelope, secrets) = sealed;
    Ok((envelope, ChunkOpener::new(secrets, &request_id)))
}

/// [`seal_request`] with the randomness given: the ephemeral key comes from
/// `rng` and the request id is `request_id`. Returns the response secrets
/// themselves (for test vectors; clients use [`seal_request`]).
#[allow(clippy::too_many_arguments)] // the sealing inputs, each given for vectors
pub fn seal_request_with<R: rand::CryptoRng + rand::RngCore>(
    rng: &mut R,
    info: &[u8],
    request_id: &str,
    gateway_public: &[u8],
    key_id: &str,
    device: &KeyPair,
    plaintext: &[u8],
    timestamp: i64,
) -> Result<(ChatEnvelope, ResponseSecrets), EnvelopeError> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(gateway_public)
        .map_err(|_| EnvelopeError::Malformed("not an X25519 public key".into()))?;
    let request_id = request_id.to_owned();
    let device_key = b64(&device.public);
    let aad = request_aad(key_id, timestamp, &request_id, &device_key);
    let sender = (device.hpke_private()?, device.hpke_public()?);
    let (encapped, mut context) =
        hpke::setup_sender::<Aead, Kdf, Kem, _>(&OpModeS::Auth(sender), &recipient, info, rng)
            .map_err(|_| EnvelopeError::Decryption)?;
    let ciphertext = context
        .seal(plaintext, &aad)
        .map_err(|_| EnvelopeError::Decryption)?;
    let secrets = response_secrets(
        |label, out| context.export(label, out),
        |label, out| context.export(label, out),
    )?;
    let envelope = ChatEnvelope {
        v: VERSION,
        key_id: key_id.to_owned(),
        device_key,
        enc: b64(&encapped.to_bytes()),
        timestamp,
        request_id: request_id.clone(),
        aad: b64(&aad),
        ciphertext: b64(&ciphertext),
    };
    Ok((envelope, secrets))
}

/// An opened request: the plaintext, who sent it, and the sealer of the response.
pub struct OpenedRequest {
    /// The chat request.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The authenticated device key.
    pub device_key: [u8; 32],
    /// Seals the response chunks.
    pub sealer: ChunkSealer,
}

/// Checks the envelope's shape (no cryptography): version, ids, aad binding.
pub fn check_shape(envelope: &ChatEnvelope) -> Result<(), EnvelopeError> {
    if envelope.v != VERSION {
        return Err(EnvelopeError::Malformed(format!(
            "unsupported version {}",
            envelope.v
        )));
    }
    if !valid_request_id(&envelope.request_id) {
        return Err(EnvelopeError::Malformed(
            "`request_id` must be 16 to 64 base64url characters".into(),
        ));
    }
    let aad = unb64("aad", &envelope.aad)?;
    if aad
        != request_aad(
            &envelope.key_id,
            envelope.timestamp,
            &envelope.request_id,
            &envelope.device_key,
        )
    {
        return Err(EnvelopeError::AadMismatch);
    }
    Ok(())
}

/// Opens `envelope` with the gateway key pair it names. A gateway keeps a
/// [`Receiver`] per key and calls [`open_request_with`] instead.
pub fn open_request(
    envelope: &ChatEnvelope,
    gateway: &KeyPair,
) -> Result<OpenedRequest, EnvelopeError> {
    open_request_with(envelope, &gateway.receiver())
}

/// Opens `envelope` with `receiver` (the gateway key it names).
pub fn open_request_with(
    envelope: &ChatEnvelope,
    receiver: &Receiver,
) -> Result<OpenedRequest, EnvelopeError> {
    check_shape(envelope)?;
    let aad = unb64("aad", &envelope.aad)?;
    let device_key: [u8; 32] = unb64("device_key", &envelope.device_key)?
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("`device_key` must be 32 bytes".into()))?;
    let enc: [u8; 32] = unb64("enc", &envelope.enc)?
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("`enc` must be 32 bytes".into()))?;
    let ciphertext = unb64("ciphertext", &envelope.ciphertext)?;
    let opened = receiver
        .open(&enc, &device_key, &aad, &ciphertext)
        .map_err(|_| EnvelopeError::Decryption)?;
    let mut key = Zeroizing::new([0u8; 32]);
    let mut nonce = Zeroizing::new([0u8; 12]);
    opened.export(EXPORT_KEY, key.as_mut());
    opened.export(EXPORT_NONCE, nonce.as_mut());
    Ok(OpenedRequest {
        plaintext: opened.plaintext,
        device_key,
        sealer: ChunkSealer::new(ResponseSecrets { key, nonce }, &envelope.request_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(gateway: &KeyPair, device: &KeyPair) -> (ChatEnvelope, ChunkOpener) {
        seal_request(
            &gateway.public_bytes(),
            "k1",
            device,
            br#"{"message":"hello"}"#,
            1_700_000_000,
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_request_opens_and_names_its_device() {
        let (gateway, device) = (KeyPair::generate(), KeyPair::generate());
        let (envelope, _) = sealed(&gateway, &device);
        let opened = open_request(&envelope, &gateway).unwrap();
        assert_eq!(opened.plaintext.as_slice(), br#"{"message":"hello"}"#);
        assert_eq!(opened.device_key, device.public_bytes());
    }

    #[test]
    fn any_tampering_is_refused() {
        let (gateway, device) = (KeyPair::generate(), KeyPair::generate());
        let (envelope, _) = sealed(&gateway, &device);
        let mut flipped = envelope.clone();
        let mut bytes = unb64("ciphertext", &flipped.ciphertext).unwrap();
        bytes[0] ^= 1;
        flipped.ciphertext = b64(&bytes);
        assert_eq!(
            open_request(&flipped, &gateway).err(),
            Some(EnvelopeError::Decryption)
        );

        let mut later = envelope.clone();
        later.timestamp += 1;
        assert_eq!(
            open_request(&later, &gateway).err(),
            Some(EnvelopeError::AadMismatch)
        );
        later.aad = b64(&request_aad(
            &later.key_id,
            later.timestamp,
            &later.request_id,
            &later.device_key,
        ));
        assert_eq!(
            open_request(&later, &gateway).err(),
            Some(EnvelopeError::Decryption),
            "the aad is inside the seal"
        );

        let mut impostor = envelope.clone();
        impostor.device_key = b64(&KeyPair::generate().public_bytes());
        impostor.aad = b64(&request_aad(
            &impostor.key_id,
            impostor.timestamp,
            &impostor.request_id,
            &impostor.device_key,
        ));
        assert_eq!(
            open_request(&impostor, &gateway).err(),
            Some(EnvelopeError::Decryption),
            "auth mode binds the device"
        );

        assert_eq!(
            open_request(&envelope, &KeyPair::generate()).err(),
            Some(EnvelopeError::Decryption)
        );
        let mut garbage = envelope.clone();
        garbage.enc = "***".into();
        assert!(matches!(
            open_request(&garbage, &gateway),
            Err(EnvelopeError::Malformed(_))
        ));
        let mut short_id = envelope;
        short_id.request_id = "x".into();
        assert!(matches!(
            open_request(&short_id, &gateway),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_their_private_bytes() {
        let pair = KeyPair::generate();
        let again = KeyPair::from_private(pair.private_bytes().as_ref()).unwrap();
        assert_eq!(again.public_bytes(), pair.public_bytes());
        assert!(!format!("{pair:?}").contains(&b64(pair.private_bytes().as_ref())));
    }
}
