//! The slice of HPKE (RFC 9180) that Oblivious HTTP uses: base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, and AES-128-GCM, AES-256-GCM
//! or ChaCha20-Poly1305. Written out (not the `hpke` crate) so that the
//! sender's ephemeral key can be given, as test vectors need, and the
//! key pair derived from a seed (`DeriveKeyPair`, section 7.1.3).

use hkdf::Hkdf;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize as _, Zeroizing};

use crate::Error;

/// DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519: u16 = 0x0020;
/// HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// AES-128-GCM.
pub const AEAD_AES_128_GCM: u16 = 0x0001;
/// AES-256-GCM.
pub const AEAD_AES_256_GCM: u16 = 0x0002;
/// ChaCha20-Poly1305.
pub const AEAD_CHACHA20_POLY1305: u16 = 0x0003;

/// Bytes of an X25519 key and of the KEM's shared secret.
pub const NPK: usize = 32;
/// Bytes of an AEAD nonce (all three AEADs).
pub const NN: usize = 12;
/// Bytes of an AEAD tag (all three AEADs).
pub const NT: usize = 16;

/// An AEAD this implementation knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aead(u16);

impl Aead {
    /// The AEAD with `id`, if supported.
    pub fn from_id(id: u16) -> Option<Aead> {
        [AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305]
            .contains(&id)
            .then_some(Aead(id))
    }

    /// Its IANA id.
    pub fn id(self) -> u16 {
        self.0
    }

    /// Bytes of its key.
    pub fn key_len(self) -> usize {
        if self.0 == AEAD_AES_128_GCM { 16 } else { 32 }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self.0 {
            AEAD_AES_128_GCM => &aead::AES_128_GCM,
            AEAD_AES_256_GCM => &aead::AES_256_GCM,
            _ => &aead::CHACHA20_POLY1305,
        }
    }

    /// A sealing/opening key.
    pub fn key(self, key: &[u8]) -> Result<AeadKey, Error> {
        let unbound = UnboundKey::new(self.algorithm(), key).map_err(|_| Error::Crypto)?;
        Ok(AeadKey(LessSafeKey::new(unbound)))
    }
}

/// An AEAD key; nonces are the caller's.
pub struct AeadKey(LessSafeKey);

impl AeadKey {
    /// `plaintext` sealed under `nonce` and `aad`, the tag appended.
    pub fn seal(&self, nonce: [u8; NN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out,
            )
            .expect("sealing fails only for inputs over 2^36 bytes");
        out
    }

    /// `ciphertext` (tag included) opened, or [`Error::Crypto`].
    pub fn open(&self, nonce: [u8; NN], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut buffer = ciphertext.to_vec();
        let length = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .map_err(|_| Error::Crypto)?
            .len();
        buffer.truncate(length);
        Ok(buffer)
    }
}

fn kem_suite() -> [u8; 5] {
    let [high, low] = KEM_X25519.to_be_bytes();
    [b'K', b'E', b'M', high, low]
}

fn hpke_suite(aead: Aead) -> [u8; 10] {
    let mut suite = [0u8; 10];
    suite[..4].copy_from_slice(b"HPKE");
    suite[4..6].copy_from_slice(&KEM_X25519.to_be_bytes());
    suite[6..8].copy_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
    suite[8..10].copy_from_slice(&aead.id().to_be_bytes());
    suite
}

/// LabeledExtract (RFC 9180 section 4).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut labeled = Zeroizing::new(Vec::with_capacity(
        7 + suite.len() + label.len() + ikm.len(),
    ));
    labeled.extend_from_slice(b"HPKE-v1");
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(ikm);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &labeled);
    Zeroizing::new(prk.into())
}

/// LabeledExpand (RFC 9180 section 4).
fn labeled_expand(
    suite: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    length: usize,
) -> Zeroizing<Vec<u8>> {
    let mut labeled = Vec::with_capacity(9 + suite.len() + label.len() + info.len());
    labeled.extend_from_slice(&(length as u16).to_be_bytes());
    labeled.extend_from_slice(b"HPKE-v1");
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(info);
    let mut out = Zeroizing::new(vec![0u8; length]);
    Hkdf::<Sha256>::from_prk(prk)
        .expect("a SHA-256 PRK is 32 bytes")
        .expand(&labeled, &mut out)
        .expect("lengths here are far below 255 * 32");
    out
}

/// An X25519 key pair of a gateway.
pub struct KeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    /// The key pair with secret key `secret`.
    pub fn from_secret(secret: [u8; 32]) -> KeyPair {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        KeyPair { secret, public }
    }

    /// `DeriveKeyPair(ikm)` (RFC 9180 section 7.1.3): the same `ikm` always
    /// gives the same pair, so a published key can be checked against its
    /// seed by anyone who holds the seed.
    pub fn derive(ikm: &[u8]) -> KeyPair {
        let suite = kem_suite();
        let prk = labeled_extract(&suite, b"", b"dkp_prk", ikm);
        let secret = labeled_expand(&suite, &prk[..], b"sk", b"", 32);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&secret);
        let pair = KeyPair::from_secret(bytes);
        bytes.zeroize();
        pair
    }

    /// A fresh random pair.
    pub fn generate() -> KeyPair {
        KeyPair::from_secret(rand::random())
    }

    /// The public key.
    pub fn public(&self) -> [u8; NPK] {
        self.public.to_bytes()
    }

    /// The secret key (for the vectors' checks).
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }
}

fn shared_secret(
    dh: &[u8; 32],
    enc: &[u8; NPK],
    receiver: &[u8; NPK],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    // RFC 9180 section 7.1.4: an all-zero X25519 output means a low-order
    // public key; refuse it.
    if dh.iter().all(|byte| *byte == 0) {
        return Err(Error::Crypto);
    }
    let suite = kem_suite();
    let eae_prk = labeled_extract(&suite, b"", b"eae_prk", dh);
    let mut context = [0u8; 2 * NPK];
    context[..NPK].copy_from_slice(enc);
    context[NPK..].copy_from_slice(receiver);
    Ok(labeled_expand(
        &suite,
        &eae_prk[..],
        b"shared_secret",
        &context,
        32,
    ))
}

/// An HPKE context (either side): seals or opens in sequence, exports.
pub struct Context {
    aead: Aead,
    key: AeadKey,
    base_nonce: [u8; NN],
    exporter: Zeroizing<Vec<u8>>,
    sequence: u64,
}

impl Context {
    fn schedule(aead: Aead, shared: &[u8], info: &[u8]) -> Result<Context, Error> {
        let suite = hpke_suite(aead);
        let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
        let mut context = Vec::with_capacity(65);
        context.push(0u8); // mode_base
        context.extend_from_slice(&psk_id_hash[..]);
        context.extend_from_slice(&info_hash[..]);
        let secret = labeled_extract(&suite, shared, b"secret", b"");
        let key = labeled_expand(&suite, &secret[..], b"key", &context, aead.key_len());
        let nonce = labeled_expand(&suite, &secret[..], b"base_nonce", &context, NN);
        let exporter = labeled_expand(&suite, &secret[..], b"exp", &context, 32);
        let mut base_nonce = [0u8; NN];
        base_nonce.copy_from_slice(&nonce);
        Ok(Context {
            aead,
            key: aead.key(&key)?,
            base_nonce,
            exporter,
            sequence: 0,
        })
    }

    fn next_nonce(&mut self) -> Result<[u8; NN], Error> {
        let nonce = xor_counter(self.base_nonce, self.sequence);
        self.sequence = self.sequence.checked_add(1).ok_or(Error::Crypto)?;
        Ok(nonce)
    }

    /// The next message sealed (the sender's side).
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = self.next_nonce()?;
        Ok(self.key.seal(nonce, aad, plaintext))
    }

    /// The next message opened (the receiver's side).
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = self.next_nonce()?;
        self.key.open(nonce, aad, ciphertext)
    }

    /// `Export(exporter_context, length)`.
    pub fn export(&self, exporter_context: &[u8], length: usize) -> Zeroizing<Vec<u8>> {
        labeled_expand(
            &hpke_suite(self.aead),
            &self.exporter,
            b"sec",
            exporter_context,
            length,
        )
    }

    /// The AEAD in use.
    pub fn aead(&self) -> Aead {
        self.aead
    }
}

/// `nonce` XOR the big-endian `counter` (RFC 9180's and chunked OHTTP's rule).
pub fn xor_counter(mut nonce: [u8; NN], counter: u64) -> [u8; NN] {
    for (byte, count) in nonce[NN - 8..].iter_mut().zip(counter.to_be_bytes()) {
        *byte ^= count;
    }
    nonce
}

/// SetupBaseS to `receiver` with the ephemeral secret key `ephemeral`:
/// the encapsulated key and the sender's context.
pub fn setup_sender(
    receiver: &[u8; NPK],
    aead: Aead,
    info: &[u8],
    ephemeral: &KeyPair,
) -> Result<([u8; NPK], Context), Error> {
    let dh = Zeroizing::new(
        ephemeral
            .secret
            .diffie_hellman(&PublicKey::from(*receiver))
            .to_bytes(),
    );
    let enc = ephemeral.public();
    let shared = shared_secret(&dh, &enc, receiver)?;
    Ok((enc, Context::schedule(aead, &shared, info)?))
}

/// SetupBaseR for `enc` with the receiver's `pair`.
pub fn setup_receiver(
    enc: &[u8; NPK],
    pair: &KeyPair,
    aead: Aead,
    info: &[u8],
) -> Result<Context, Error> {
    let dh = Zeroizing::new(
        pair.secret
            .diffie_hellman(&PublicKey::from(*enc))
            .to_bytes(),
    );
    let shared = shared_secret(&dh, enc, &pair.public())?;
    Context::schedule(aead, &shared, info)
}

/// HKDF-SHA256 Extract then Expand, unlabeled (OHTTP's response keys).
pub fn hkdf_key(salt: &[u8], ikm: &[u8], label: &[u8], length: usize) -> Zeroizing<Vec<u8>> {
    let hkdf = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new(vec![0u8; length]);
    hkdf.expand(label, &mut out)
        .expect("lengths here are far below 255 * 32");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_order_public_key_is_refused() {
        let pair = KeyPair::generate();
        let zero = [0u8; NPK];
        let aead = Aead::from_id(AEAD_AES_128_GCM).unwrap();
        assert!(matches!(
            setup_receiver(&zero, &pair, aead, b""),
            Err(Error::Crypto)
        ));
        assert!(matches!(
            setup_sender(&zero, aead, b"", &pair),
            Err(Error::Crypto)
        ));
    }

    #[test]
    fn sender_and_receiver_agree_and_refuse_altered_messages() {
        let receiver = KeyPair::generate();
        for id in [AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305] {
            let aead = Aead::from_id(id).unwrap();
            let (enc, mut sender) =
                setup_sender(&receiver.public(), aead, b"info", &KeyPair::generate()).unwrap();
            let mut opener = setup_receiver(&enc, &receiver, aead, b"info").unwrap();
            let first = sender.seal(b"aad", b"one").unwrap();
            let second = sender.seal(b"", b"two").unwrap();
            assert_eq!(opener.open(b"aad", &first).unwrap(), b"one");
            let mut altered = second.clone();
            altered[0] ^= 1;
            assert!(opener.open(b"", &altered).is_err());
            assert_eq!(
                sender.export(b"x", 16).as_slice(),
                opener.export(b"x", 16).as_slice()
            );
        }
        assert!(Aead::from_id(0x0004).is_none());
    }
}
