//! The attestation policy: which images (PCR values) a client trusts, how
//! old evidence may be, and whether debug-mode or dev evidence is acceptable.
//!
//! ```json
//! {
//!   "images": [{"name": "hearth-enclave 0.1.0",
//!               "pcrs": {"0": "<96 hex>", "1": "<96 hex>", "2": "<96 hex>", "8": "<96 hex>"}}],
//!   "max_age_seconds": 3600,
//!   "module_id": null,
//!   "allow_debug": false,
//!   "allow_dev_evidence": false,
//!   "root_sha256": "641a0321…bb5b"
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chain::AWS_NITRO_ROOT_SHA256;
use crate::report::short;

/// Default largest age of evidence: an hour (a Nitro leaf certificate lives
/// about three).
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 3600;

/// How far ahead of the verifier's clock a document may be dated.
pub const CLOCK_SKEW_SECONDS: u64 = 300;

/// PCRs every image must pin: the enclave image (0), the kernel and boot
/// ramdisk (1) and the application (2).
pub const REQUIRED_PCRS: [u8; 3] = [0, 1, 2];

/// An image a client trusts: the PCR values it measures to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// A name for people ("hearth-enclave 0.1.0 built 2026-11-01").
    pub name: String,
    /// PCR index to its value in hex (48 bytes for SHA-384).
    pub pcrs: BTreeMap<u8, String>,
}

/// What a client accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Images whose PCRs are trusted; evidence must match one exactly.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Largest age of a document, in seconds.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
    /// When set, the module id the document must carry.
    #[serde(default)]
    pub module_id: Option<String>,
    /// Accept enclaves in debug mode (their memory is readable from outside).
    #[serde(default)]
    pub allow_debug: bool,
    /// Accept Hearth dev evidence (no hardware behind it: tests and labs only).
    #[serde(default)]
    pub allow_dev_evidence: bool,
    /// SHA-256 of the pinned root certificate.
    #[serde(default = "default_root")]
    pub root_sha256: String,
    /// What AMD SEV-SNP evidence must show.
    #[serde(default, skip_serializing_if = "is_default")]
    pub sev_snp: crate::snp::policy::SnpPolicy,
    /// What Intel TDX evidence must show.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tdx: crate::tdx::policy::TdxPolicy,
    /// When set, the transparency log every trusted image and OHTTP key
    /// must be in: images and keys without a proof from it are not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<Transparency>,
}

/// The transparency log a client requires ([`Policy::transparency`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transparency {
    /// The log's name (its checkpoints' origin line).
    pub origin: String,
    /// The log's verifier key (`name+keyid+base64`), pinned here.
    pub log_key: String,
}

/// Whether `value` is its type's default (left out when a policy is
/// written).
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn default_max_age() -> u64 {
    DEFAULT_MAX_AGE_SECONDS
}

fn default_root() -> String {
    AWS_NITRO_ROOT_SHA256.to_owned()
}

impl Default for Policy {
    /// Refuses everything until images are added: no image is trusted by
    /// default, and neither debug mode nor dev evidence.
    fn default() -> Policy {
        Policy {
            images: Vec::new(),
            max_age_seconds: DEFAULT_MAX_AGE_SECONDS,
            module_id: None,
            allow_debug: false,
            allow_dev_evidence: false,
            root_sha256: default_root(),
            sev_snp: crate::snp::policy::SnpPolicy::default(),
            tdx: crate::tdx::policy::TdxPolicy::default(),
            transparency: None,
        }
    }
}

/// Why no image of a policy matches the measurements found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageMismatch {
    /// The policy lists no image.
    #[error("the policy allows no image")]
    NoImage,
    /// The closest image's first PCR that differs.
    #[error("PCR{index} is {found}, image `{image}` wants {wanted}")]
    Pcr {
        /// The PCR.
        index: u8,
        /// Its value found, shortened, or `absent`.
        found: String,
        /// The closest image.
        image: String,
        /// The value it pins, shortened.
        wanted: String,
    },
}

/// Why a policy file is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Not the JSON shape above.
    #[error("the policy is not valid: {0}")]
    Syntax(String),
    /// An image pins too little or a value is not hex of a digest's size.
    #[error("image `{image}`: {problem}")]
    Image {
        /// The image's name.
        image: String,
        /// What is wrong.
        problem: String,
    },
    /// The root fingerprint is not 64 hex digits.
    #[error("`root_sha256` must be 64 hex digits")]
    Root,
    /// The SEV-SNP part is not usable.
    #[error("sev_snp: {0}")]
    SevSnp(crate::snp::format::SnpError),
    /// The TDX part is not usable.
    #[error("tdx: {0}")]
    Tdx(crate::tdx::format::TdxError),
    /// The transparency part is not usable.
    #[error("transparency: {0}")]
    Transparency(String),
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_json::from_str(text).map_err(|error| PolicyError::Syntax(error.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// Checks a policy built in code as [`Policy::parse`] checks one read from a file.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.root_sha256.len() != 64 || hex::decode(&self.root_sha256).is_err() {
            return Err(PolicyError::Root);
        }
        self.sev_snp.check().map_err(PolicyError::SevSnp)?;
        self.tdx.check().map_err(PolicyError::Tdx)?;
        if let Some(log) = &self.transparency
            && (log.origin.is_empty() || log.log_key.splitn(3, '+').count() != 3)
        {
            return Err(PolicyError::Transparency(
                "origin and log_key (name+keyid+base64) are both needed".into(),
            ));
        }
        for image in &self.images {
            let problem = |problem: String| PolicyError::Image {
                image: image.name.clone(),
                problem,
            };
            for index in REQUIRED_PCRS {
                if !image.pcrs.contains_key(&index) {
                    return Err(problem(format!("PCR{index} must be pinned")));
                }
            }
            for (index, value) in &image.pcrs {
                let bytes =
                    hex::decode(value).map_err(|_| problem(format!("PCR{index} is not hex")))?;
                if ![32, 48, 64].contains(&bytes.len()) {
                    return Err(problem(format!(
                        "PCR{index} is {} bytes, not 32, 48 or 64",
                        bytes.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The image whose every pinned PCR equals `pcrs`, or why none matches:
    /// the first differing PCR of the closest image.
    pub fn matching_image(&self, pcrs: &BTreeMap<u8, Vec<u8>>) -> Result<&Image, ImageMismatch> {
        let mut closest: Option<(usize, ImageMismatch)> = None;
        for image in &self.images {
            let mut matched = 0;
            let mut first_difference = None;
            for (index, wanted) in &image.pcrs {
                let found = pcrs.get(index).map(hex::encode);
                if found
                    .as_deref()
                    .is_some_and(|found| found.eq_ignore_ascii_case(wanted))
                {
                    matched += 1;
                } else if first_difference.is_none() {
                    first_difference = Some(ImageMismatch::Pcr {
                        index: *index,
                        found: found.as_deref().map(short).unwrap_or("absent").to_owned(),
                        image: image.name.clone(),
                        wanted: short(wanted).to_owned(),
                    });
                }
            }
            let Some(difference) = first_difference else {
                return Ok(image);
            };
            if closest.as_ref().is_none_or(|(best, _)| matched > *best) {
                closest = Some((matched, difference));
            }
        }
        Err(closest.map_or(ImageMismatch::NoImage, |(_, difference)| difference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcrs(values: &[(u8, u8)]) -> BTreeMap<u8, Vec<u8>> {
        values
            .iter()
            .map(|(index, byte)| (*index, vec![*byte; 48]))
            .collect()
    }

    fn image(name: &str, values: &[(u8, u8)]) -> Image {
        Image {
            name: name.into(),
            pcrs: values
                .iter()
                .map(|(index, byte)| (*index, hex::encode([*byte; 48])))
                .collect(),
        }
    }

    #[test]
    fn the_default_policy_trusts_nothing() {
        let policy = Policy::default();
        assert_eq!(
            policy.matching_image(&pcrs(&[(0, 1), (1, 2), (2, 3)])),
            Err(ImageMismatch::NoImage)
        );
        assert!(!policy.allow_debug && !policy.allow_dev_evidence);
        assert_eq!(Policy::parse("{}").unwrap(), policy);
    }

    #[test]
    fn an_image_matches_only_when_every_pinned_pcr_does() {
        let policy = Policy {
            images: vec![
                image("old", &[(0, 9), (1, 9), (2, 9)]),
                image("new", &[(0, 1), (1, 2), (2, 3), (8, 4)]),
            ],
            ..Policy::default()
        };
        let found = pcrs(&[(0, 1), (1, 2), (2, 3), (3, 7), (8, 4)]);
        assert_eq!(policy.matching_image(&found).unwrap().name, "new");
        let wrong = pcrs(&[(0, 1), (1, 2), (2, 5), (8, 4)]);
        let why = policy.matching_image(&wrong).unwrap_err().to_string();
        assert!(why.starts_with("PCR2 is 0505"), "{why}");
        assert!(why.contains("image `new` wants 0303"), "{why}");
        let missing = pcrs(&[(0, 1), (1, 2), (2, 3)]);
        assert!(
            policy
                .matching_image(&missing)
                .unwrap_err()
                .to_string()
                .contains("PCR8 is absent")
        );
    }

    #[test]
    fn policies_that_pin_too_little_or_badly_are_refused() {
        let parse = |text: &str| Policy::parse(text).unwrap_err();
        assert!(matches!(
            parse(r#"{"images":[{"name":"x","pcrs":{"0":"00"}}]}"#),
            PolicyError::Image { .. }
        ));
        let zeros = "00".repeat(48);
        let text = format!(
            r#"{{"images":[{{"name":"x","pcrs":{{"0":"{zeros}","1":"{zeros}","2":"zz"}}}}]}}"#
        );
        assert_eq!(
            parse(&text),
            PolicyError::Image {
                image: "x".into(),
                problem: "PCR2 is not hex".into()
            }
        );
        assert!(matches!(
            parse(r#"{"allow_everything":true}"#),
            PolicyError::Syntax(_)
        ));
        assert_eq!(parse(r#"{"root_sha256":"abc"}"#), PolicyError::Root);
    }
}
