//! The config server's document: what a deployment of private compute
//! offers (OHTTP relays and keys, the attestation policy, the transparency
//! log's proofs). How a client chooses a key from it is
//! [`crate::oblivious`]'s.

use hearth_attest::policy::Policy;
use serde::{Deserialize, Serialize};

/// The version of the config document this client reads.
pub const CONFIG_VERSION: &str = "0.002";
/// The config server's default port.
pub const CONFIG_PORT: u16 = 8080;
/// The relay's default port.
pub const RELAY_PORT: u16 = 3100;
/// The OHTTP gateway's default port.
pub const GATEWAY_PORT: u16 = 3200;

/// What the deployment offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// Requests go through a relay and the OHTTP gateway.
    pub ohttp: bool,
    /// Compute nodes attest with hardware (false: dev evidence).
    pub real_attestation: bool,
}

/// When one OHTTP key is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPeriod {
    /// The key configuration's id.
    pub key_id: u8,
    /// RFC 3339.
    pub active_from: String,
    /// RFC 3339.
    pub active_until: String,
}

/// What the client must apply to node evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationConfig {
    /// SHA-256 (hex) of the policy file's bytes.
    pub policy_id: String,
    /// PCR0 values allowed (one per image, hex).
    pub allowed_pcr0: Vec<String>,
    /// PCR1 values allowed.
    pub allowed_pcr1: Vec<String>,
    /// PCR2 values allowed.
    pub allowed_pcr2: Vec<String>,
    /// The policy itself, which the allowed values summarize.
    pub policy: Policy,
    /// Where a verifier finds what it needs (the AWS Nitro root's SHA-256).
    pub verifier_hints: Vec<String>,
}

/// The config server's document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiConfig {
    /// [`CONFIG_VERSION`].
    pub version: String,
    /// What is offered.
    pub features: Features,
    /// Relays clients may use.
    pub relay_urls: Vec<String>,
    /// The OHTTP gateway (the relays' target; clients never call it).
    pub gateway_url: String,
    /// The router, as the OHTTP gateway reaches it (the inner target).
    pub router_url: String,
    /// Base64 of an `application/ohttp-keys` body: the active keys.
    pub ohttp_key_configs_bundle: String,
    /// When each listed key is accepted.
    pub ohttp_key_rotation_periods: Vec<RotationPeriod>,
    /// What evidence clients accept.
    pub attestation: AttestationConfig,
    /// The transparency log's checkpoint and the proofs that the active
    /// keys and the policy's images are in it (when the server keeps a
    /// log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<hearth_transparency::proofs::LogProofs>,
}

impl AttestationConfig {
    /// The section for `policy`, whose file bytes were `text`.
    pub fn for_policy(policy: &Policy, text: &[u8]) -> AttestationConfig {
        use sha2::Digest as _;
        let values = |index: u8| -> Vec<String> {
            policy
                .images
                .iter()
                .filter_map(|image| image.pcrs.get(&index).cloned())
                .collect()
        };
        AttestationConfig {
            policy_id: hex::encode(sha2::Sha256::digest(text)),
            allowed_pcr0: values(0),
            allowed_pcr1: values(1),
            allowed_pcr2: values(2),
            policy: policy.clone(),
            verifier_hints: vec![format!("aws-nitro-root-sha256:{}", policy.root_sha256)],
        }
    }
}
