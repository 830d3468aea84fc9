//! Where the node's evidence comes from: the Nitro Secure Module inside an
//! AWS Nitro Enclave, the TEE of an AMD SEV-SNP or Intel TDX confidential
//! VM through configfs-tsm ([`crate::tsm`]), or, anywhere else, dev
//! evidence signed by a key made at start. Either way the document binds
//! the request key ([`hearth_attest::rek_binding`]) and the nonce a
//! verifier asked for.

use std::collections::BTreeMap;

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use hearth_attest::dev::{Claims, DevSigner};
use hearth_attest::evidence::{AWS_NITRO, HEARTH_DEV};
use hearth_attest::{EvidenceBundle, rek_binding};

/// The Nitro Secure Module's device.
pub const NSM_DEVICE: &str = "/dev/nsm";

/// Why evidence could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// Not inside a Nitro Enclave (no `/dev/nsm`).
    #[error(
        "{NSM_DEVICE} cannot be opened: this is not an AWS Nitro Enclave (use --evidence dev outside one)"
    )]
    NoNsm,
    /// The NSM answered with an error.
    #[error("the Nitro Secure Module refused the attestation request: {0}")]
    Nsm(String),
    /// Dev evidence could not be signed.
    #[error(transparent)]
    Dev(#[from] hearth_attest::dev::DevError),
    /// A confidential VM's TEE gave no evidence.
    #[error(transparent)]
    Tsm(#[from] crate::tsm::TsmError),
}

/// What a dev document states as its measurements
/// ([`hearth_attest::evidence::dev_pcrs`]).
pub use hearth_attest::evidence::dev_pcrs;

/// The node's source of evidence.
pub enum EvidenceSource {
    /// Outside an enclave: refused by any default policy.
    Dev {
        /// The signing key made at start.
        signer: Box<DevSigner>,
        /// The measurements stated.
        pcrs: BTreeMap<u8, Vec<u8>>,
    },
    /// Inside an AWS Nitro Enclave.
    Nitro,
    /// Inside an AMD SEV-SNP or Intel TDX confidential VM.
    Tsm {
        /// Which TEE.
        provider: crate::tsm::Provider,
        /// SEV-SNP: where the operator keeps AMD's certificates and CRL.
        snp_certificates: Option<std::path::PathBuf>,
        /// TDX: where the operator keeps the quote's collateral.
        tdx_collateral: Option<std::path::PathBuf>,
    },
}

impl EvidenceSource {
    /// Dev evidence for `node`, stating `pcrs`.
    pub fn dev(node: &str, pcrs: BTreeMap<u8, Vec<u8>>) -> Result<EvidenceSource, EvidenceError> {
        Ok(EvidenceSource::Dev {
            signer: Box::new(DevSigner::generate(node)?),
            pcrs,
        })
    }

    /// Nitro evidence; fails outside an enclave.
    pub fn nitro() -> Result<EvidenceSource, EvidenceError> {
        let descriptor = nsm_init();
        if descriptor < 0 {
            return Err(EvidenceError::NoNsm);
        }
        nsm_exit(descriptor);
        Ok(EvidenceSource::Nitro)
    }

    /// Evidence from the confidential VM's TEE (SEV-SNP or TDX, as
    /// configfs-tsm says); fails elsewhere. A TDX node needs
    /// `tdx_collateral`.
    pub fn tsm(
        snp_certificates: Option<std::path::PathBuf>,
        tdx_collateral: Option<std::path::PathBuf>,
    ) -> Result<EvidenceSource, EvidenceError> {
        let probe = crate::tsm::request(std::path::Path::new(crate::tsm::TSM_REPORTS), &[0; 64])?;
        if probe.provider == crate::tsm::Provider::Tdx && tdx_collateral.is_none() {
            return Err(crate::tsm::TsmError::Document(
                "a TDX node needs --tdx-collateral (the quote's collateral from Intel's PCS or a PCCS)".into(),
            )
            .into());
        }
        Ok(EvidenceSource::Tsm {
            provider: probe.provider,
            snp_certificates,
            tdx_collateral,
        })
    }

    /// The evidence type it produces.
    pub fn kind(&self) -> &'static str {
        match self {
            EvidenceSource::Dev { .. } => HEARTH_DEV,
            EvidenceSource::Nitro => AWS_NITRO,
            EvidenceSource::Tsm {
                provider: crate::tsm::Provider::SevSnp,
                ..
            } => hearth_attest::evidence::AMD_SEV_SNP,
            EvidenceSource::Tsm {
                provider: crate::tsm::Provider::Tdx,
                ..
            } => hearth_attest::evidence::INTEL_TDX,
        }
    }

    /// A bundle for `node` binding `rek`, with `nonce` if a verifier gave one.
    pub fn bundle(
        &self,
        node: &str,
        rek: &[u8; 32],
        nonce: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<EvidenceBundle, EvidenceError> {
        let document = match self {
            EvidenceSource::Dev { signer, pcrs } => signer.attest(&Claims {
                module_id: format!("hearth-dev-{node}"),
                pcrs: pcrs.clone(),
                public_key: Some(rek_binding(rek)),
                nonce: nonce.map(<[u8]>::to_vec),
                timestamp_ms: now_ms,
            })?,
            EvidenceSource::Nitro => nitro_document(rek, nonce)?,
            EvidenceSource::Tsm {
                snp_certificates,
                tdx_collateral,
                ..
            } => tsm_document(
                rek,
                nonce,
                now_ms / 1000,
                snp_certificates.as_deref(),
                tdx_collateral.as_deref(),
            )?,
        };
        Ok(EvidenceBundle::new(node, rek, self.kind(), &document))
    }
}

/// Asks the confidential VM's TEE for a report binding `rek`, the time
/// and `nonce`, and makes the evidence document around it.
fn tsm_document(
    rek: &[u8; 32],
    nonce: Option<&[u8]>,
    issued_at: u64,
    snp_certificates: Option<&std::path::Path>,
    tdx_collateral: Option<&std::path::Path>,
) -> Result<Vec<u8>, EvidenceError> {
    use crate::tsm::{Provider, TsmError};
    let report_data = hearth_attest::tee::report_data(rek, issued_at, nonce);
    let output = crate::tsm::request(std::path::Path::new(crate::tsm::TSM_REPORTS), &report_data)?;
    Ok(match output.provider {
        Provider::SevSnp => {
            let kept = snp_certificates
                .map(crate::tsm::certificates_from)
                .transpose()?;
            crate::tsm::snp_document(&output, issued_at, kept)?.to_bytes()
        }
        Provider::Tdx => {
            let collateral =
                tdx_collateral.ok_or_else(|| TsmError::Document("no --tdx-collateral".into()))?;
            crate::tsm::tdx_document(&output, issued_at, collateral)?.to_bytes()
        }
    })
}

/// Asks the NSM for a document binding `rek` and `nonce` (its own clock
/// stamps it; its key, inside the Nitro hypervisor, signs it).
fn nitro_document(rek: &[u8; 32], nonce: Option<&[u8]>) -> Result<Vec<u8>, EvidenceError> {
    let descriptor = nsm_init();
    if descriptor < 0 {
        return Err(EvidenceError::NoNsm);
    }
    let response = nsm_process_request(
        descriptor,
        Request::Attestation {
            user_data: None,
            nonce: nonce.map(|nonce| serde_bytes::ByteBuf::from(nonce.to_vec())),
            public_key: Some(serde_bytes::ByteBuf::from(rek_binding(rek))),
        },
    );
    nsm_exit(descriptor);
    match response {
        Response::Attestation { document } => Ok(document),
        Response::Error(code) => Err(EvidenceError::Nsm(format!("{code:?}"))),
        other => Err(EvidenceError::Nsm(format!("unexpected answer {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_attest::policy::{Image, Policy};

    #[test]
    fn dev_bundles_bind_the_key_and_nonce_and_pass_a_policy_that_allows_them() {
        let pcrs = dev_pcrs(b"the executable", "hearth-enclave");
        let source = EvidenceSource::dev("node-1", pcrs.clone()).unwrap();
        let rek = [5u8; 32];
        let now_ms = 1_795_000_000_000;
        let bundle = source
            .bundle("node-1", &rek, Some(b"0123456789abcdef"), now_ms)
            .unwrap();
        let policy = Policy {
            allow_dev_evidence: true,
            images: vec![Image {
                name: "dev".into(),
                pcrs: pcrs
                    .iter()
                    .map(|(index, value)| (*index, hex::encode(value)))
                    .collect(),
            }],
            ..Policy::default()
        };
        let now = std::time::Duration::from_millis(now_ms);
        let report =
            hearth_attest::verify_bundle(&bundle, Some(&policy), now, Some(b"0123456789abcdef"));
        assert!(report.passed, "{:?}", report.reports[0].to_string());
        assert!(!hearth_attest::verify_bundle(&bundle, Some(&Policy::default()), now, None).passed);
        let relabelled = dev_pcrs(b"the executable", "another image");
        assert_ne!(relabelled[&2], pcrs[&2]);
    }

    #[test]
    fn nitro_evidence_is_refused_outside_an_enclave() {
        if std::path::Path::new(NSM_DEVICE).exists() {
            return; // inside a real enclave: nothing to refuse
        }
        assert!(matches!(EvidenceSource::nitro(), Err(EvidenceError::NoNsm)));
    }
}
