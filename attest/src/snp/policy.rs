//! The policy's SEV-SNP part: the launch measurements, the least TCB and
//! the ARKs a client trusts.

use serde::{Deserialize, Serialize};

use super::format::{SnpError, SnpReport, Tcb, amd_product};

/// A launch measurement a client trusts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpImage {
    /// A name for people.
    pub name: String,
    /// The launch measurement, 96 hex digits.
    pub measurement: String,
    /// When set, the host data the guest must have been launched with.
    #[serde(default)]
    pub host_data: Option<String>,
}

/// The policy's SEV-SNP part.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpPolicy {
    /// Measurements trusted.
    #[serde(default)]
    pub images: Vec<SnpImage>,
    /// The least TCB accepted (none: any the chain vouches for).
    #[serde(default)]
    pub min_tcb: Option<Tcb>,
    /// SHA-256 of the ARKs trusted (empty: AMD's,
    /// [`AMD_ARKS_SHA256`](super::format::AMD_ARKS_SHA256)).
    #[serde(default)]
    pub ark_sha256: Vec<String>,
    /// Refuse evidence that carries no current CRL.
    #[serde(default)]
    pub require_crl: bool,
}

impl SnpPolicy {
    /// Whether the ARK with this fingerprint is trusted.
    pub fn trusts_ark(&self, fingerprint: &str) -> bool {
        if self.ark_sha256.is_empty() {
            amd_product(fingerprint).is_some()
        } else {
            self.ark_sha256
                .iter()
                .any(|pinned| pinned.eq_ignore_ascii_case(fingerprint))
        }
    }

    /// The image whose measurement (and host data) the report has.
    pub fn matching_image(&self, report: &SnpReport) -> Result<&SnpImage, SnpError> {
        let measurement = hex::encode(report.measurement);
        let host_data = hex::encode(report.host_data);
        self.images
            .iter()
            .find(|image| {
                image.measurement.eq_ignore_ascii_case(&measurement)
                    && image
                        .host_data
                        .as_ref()
                        .is_none_or(|wanted| wanted.eq_ignore_ascii_case(&host_data))
            })
            .ok_or_else(|| {
                SnpError::UntrustedMeasurement(crate::report::short(&measurement).to_string())
            })
    }

    /// Checks a policy's values.
    pub fn check(&self) -> Result<(), SnpError> {
        for image in &self.images {
            let problem = |problem: String| SnpError::Image {
                image: image.name.clone(),
                problem,
            };
            let bytes = hex::decode(&image.measurement)
                .map_err(|_| problem("the measurement is not hex".into()))?;
            if bytes.len() != 48 {
                return Err(problem(format!(
                    "a measurement is 48 bytes, not {}",
                    bytes.len()
                )));
            }
            if let Some(host_data) = &image.host_data
                && hex::decode(host_data).map(|bytes| bytes.len()) != Ok(32)
            {
                return Err(problem("host_data is not 32 bytes of hex".into()));
            }
        }
        for pinned in &self.ark_sha256 {
            if pinned.len() != 64 || hex::decode(pinned).is_err() {
                return Err(SnpError::ArkPin);
            }
        }
        Ok(())
    }
}
