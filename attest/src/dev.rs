//! Making Hearth dev evidence: a compute node outside an enclave signs the
//! same document an NSM would, with a P-384 key it made at start and a
//! self-signed certificate for it. Nothing but the node vouches for it, so
//! only a policy with `allow_dev_evidence` accepts it.

use std::collections::BTreeMap;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use zeroize::Zeroizing;

use crate::cose::{CoseSign1, es384_protected, signed_bytes};
use crate::document::Document;

/// Why a dev signer could not be made or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// Key or certificate generation failed.
    #[error("making the dev signing key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing dev evidence failed")]
    Sign,
}

/// A signer of dev evidence; its key lives only in memory.
pub struct DevSigner {
    key: EcdsaKeyPair,
    certificate: Vec<u8>,
    random: SystemRandom,
}

impl std::fmt::Debug for DevSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DevSigner")
    }
}

/// What a dev document states.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    /// The module id (the node names itself).
    pub module_id: String,
    /// PCRs by index (48 bytes each).
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The bound key (see [`crate::evidence::rek_binding`]).
    pub public_key: Option<Vec<u8>>,
    /// The nonce asked for.
    pub nonce: Option<Vec<u8>>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl DevSigner {
    /// A new key and a self-signed certificate for `name`.
    pub fn generate(name: &str) -> Result<DevSigner, DevError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(|error| DevError::Key(error.to_string()))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|error| DevError::Key(error.to_string()))?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("hearth dev evidence {name}"),
        );
        let certificate = params
            .self_signed(&key_pair)
            .map_err(|error| DevError::Key(error.to_string()))?;
        let pkcs8 = Zeroizing::new(key_pair.serialize_der());
        let random = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &pkcs8, &random)
            .map_err(|error| DevError::Key(error.to_string()))?;
        Ok(DevSigner {
            key,
            certificate: certificate.der().to_vec(),
            random,
        })
    }

    /// A signed dev document (COSE_Sign1 bytes) stating `claims`.
    pub fn attest(&self, claims: &Claims) -> Result<Vec<u8>, DevError> {
        let document = Document {
            module_id: claims.module_id.clone(),
            digest: "SHA384".into(),
            timestamp_ms: claims.timestamp_ms,
            pcrs: claims.pcrs.clone(),
            certificate: self.certificate.clone(),
            cabundle: Vec::new(),
            public_key: claims.public_key.clone(),
            user_data: None,
            nonce: claims.nonce.clone(),
        };
        let protected = es384_protected();
        let payload = document.to_cbor();
        let signature = self
            .key
            .sign(&self.random, &signed_bytes(&protected, &payload))
            .map_err(|_| DevError::Sign)?;
        Ok(CoseSign1 {
            protected,
            payload,
            signature: signature.as_ref().to_vec(),
        }
        .to_bytes())
    }
}
