//! HPKE known-answer tests: the suite Hearth uses, checked against the test
//! vectors published in RFC 9180 (appendix A.2) for mode base and mode auth.
//! The ephemeral key comes from a deterministic "random" source holding the
//! vector's ikmE, so sealing reproduces the published `enc` and ciphertexts.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use hearth_e2ee::envelope::{Aead, Kdf, Kem};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

struct Vector {
    mode: u8,
    info: &'static str,
    ikm_e: &'static str,
    ikm_r: &'static str,
    ikm_s: &'static str,
    pk_rm: &'static str,
    pk_sm: &'static str,
    enc: &'static str,
    /// (aad, plaintext, ciphertext) for sequence numbers 0, 1...
    encryptions: &'static [(&'static str, &'static str, &'static str)],
    /// (exporter context, length, exported value).
    exports: &'static [(&'static str, usize, &'static str)],
}

/// RFC 9180 appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, mode 0.
const BASE: Vector = Vector {
    mode: 0,
    info: "4f6465206f6e2061204772656369616e2055726e",
    ikm_e: "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b",
    ikm_r: "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df",
    ikm_s: "",
    pk_rm: "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
    pk_sm: "",
    enc: "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
    encryptions: &[
        (
            "436f756e742d30",
            "4265617574792069732074727574682c20747275746820626561757479",
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
        ),
        (
            "436f756e742d31",
            "4265617574792069732074727574682c20747275746820626561757479",
            "6b53c051e4199c518de79594e1c4ab18b96f081549d45ce015be002090bb119e85285337cc95ba5f59992dc98c",
        ),
    ],
    exports: &[
        (
            "",
            32,
            "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e",
        ),
        (
            "00",
            32,
            "8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69",
        ),
        (
            "54657374436f6e74657874",
            32,
            "5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53",
        ),
    ],
};

/// RFC 9180 appendix A.2.3: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, mode 2.
const AUTH: Vector = Vector {
    mode: 2,
    info: "4f6465206f6e2061204772656369616e2055726e",
    ikm_e: "938d3daa5a8904540bc24f48ae90eed3f4f7f11839560597b55e7c9598c996c0",
    ikm_r: "64835d5ee64aa7aad57c6f2e4f758f7696617f8829e70bc9ac7a5ef95d1c756c",
    ikm_s: "9d8f94537d5a3ddef71234c0baedfad4ca6861634d0b94c3007fed557ad17df6",
    pk_rm: "1a478716d63cb2e16786ee93004486dc151e988b34b475043d3e0175bdb01c44",
    pk_sm: "f0f4f9e96c54aeed3f323de8534fffd7e0577e4ce269896716bcb95643c8712b",
    enc: "f7674cc8cd7baa5872d1f33dbaffe3314239f6197ddf5ded1746760bfc847e0e",
    encryptions: &[
        (
            "436f756e742d30",
            "4265617574792069732074727574682c20747275746820626561757479",
            "ab1a13c9d4f01a87ec3440dbd756e2677bd2ecf9df0ce7ed73869b98e00c09be111cb9fdf077347aeb88e61bdf",
        ),
        (
            "436f756e742d31",
            "4265617574792069732074727574682c20747275746820626561757479",
            "3265c7807ffff7fdace21659a2c6ccffee52a26d270c76468ed74202a65478bfaedfff9c2b7634e24f10b71016",
        ),
    ],
    exports: &[
        (
            "",
            32,
            "070cffafd89b67b7f0eeb800235303a223e6ff9d1e774dce8eac585c8688c872",
        ),
        (
            "00",
            32,
            "2852e728568d40ddb0edde284d36a4359c56558bb2fb8837cd3d92e46a3a14a8",
        ),
        (
            "54657374436f6e74657874",
            32,
            "1df39dc5dd60edcbf5f9ae804e15ada66e885b28ed7929116f768369a3f950ee",
        ),
    ],
};

/// Hands out the bytes it holds, then zeros: the ephemeral key's ikm.
struct FixedRandom(Vec<u8>);

impl rand::RngCore for FixedRandom {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, destination: &mut [u8]) {
        for slot in destination {
            *slot = if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            };
        }
    }
}

impl rand::CryptoRng for FixedRandom {}

fn bytes(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

fn check(vector: &Vector) {
    let info = bytes(vector.info);
    let (recipient_private, recipient_public) = Kem::derive_keypair(&bytes(vector.ikm_r));
    assert_eq!(recipient_public.to_bytes().to_vec(), bytes(vector.pk_rm));
    let sender = (!vector.ikm_s.is_empty()).then(|| Kem::derive_keypair(&bytes(vector.ikm_s)));
    if let Some((_, public)) = &sender {
        assert_eq!(public.to_bytes().to_vec(), bytes(vector.pk_sm));
    }

    let mode_s = match &sender {
        None => OpModeS::Base,
        Some((private, public)) => OpModeS::Auth((private.clone(), public.clone())),
    };
    let mut random = FixedRandom(bytes(vector.ikm_e));
    let (encapped, mut sealing) =
        hpke::setup_sender::<Aead, Kdf, Kem, _>(&mode_s, &recipient_public, &info, &mut random)
            .unwrap();
    assert_eq!(
        encapped.to_bytes().to_vec(),
        bytes(vector.enc),
        "mode {}: enc",
        vector.mode
    );

    let mode_r = match &sender {
        None => OpModeR::Base,
        Some((_, public)) => OpModeR::Auth(public.clone()),
    };
    let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&bytes(vector.enc)).unwrap();
    let mut opening =
        hpke::setup_receiver::<Aead, Kdf, Kem>(&mode_r, &recipient_private, &encapped, &info)
            .unwrap();
    for (sequence, (aad, plaintext, ciphertext)) in vector.encryptions.iter().enumerate() {
        let sealed = sealing.seal(&bytes(plaintext), &bytes(aad)).unwrap();
        assert_eq!(
            sealed,
            bytes(ciphertext),
            "mode {}: ciphertext {sequence}",
            vector.mode
        );
        let opened = opening.open(&bytes(ciphertext), &bytes(aad)).unwrap();
        assert_eq!(
            opened,
            bytes(plaintext),
            "mode {}: plaintext {sequence}",
            vector.mode
        );
    }
    for (context, length, value) in vector.exports {
        let mut exported = vec![0u8; *length];
        opening.export(&bytes(context), &mut exported).unwrap();
        assert_eq!(
            exported,
            bytes(value),
            "mode {}: export {context:?}",
            vector.mode
        );
    }
}

#[test]
fn mode_base_matches_rfc9180() {
    check(&BASE);
}

#[test]
fn mode_auth_matches_rfc9180() {
    check(&AUTH);
}

#[test]
fn a_wrong_sender_key_fails_in_auth_mode() {
    let (recipient_private, recipient_public) = Kem::derive_keypair(&bytes(AUTH.ikm_r));
    let (sender_private, sender_public) = Kem::derive_keypair(&bytes(AUTH.ikm_s));
    let (_, impostor) = Kem::derive_keypair(&[7u8; 32]);
    let (encapped, mut sealing) = hpke::setup_sender::<Aead, Kdf, Kem, _>(
        &OpModeS::Auth((sender_private, sender_public)),
        &recipient_public,
        b"info",
        &mut rand::rng(),
    )
    .unwrap();
    let sealed = sealing.seal(b"secret", b"").unwrap();
    let mut opening = hpke::setup_receiver::<Aead, Kdf, Kem>(
        &OpModeR::Auth(impostor),
        &recipient_private,
        &encapped,
        b"info",
    )
    .unwrap();
    assert!(opening.open(&sealed, b"").is_err());
}
