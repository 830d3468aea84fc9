//! The policy's TDX part: the TDs, the Intel root and the TCB statuses a
//! client trusts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::{INTEL_SGX_ROOT_SHA256, TdxError};

/// A TD a client trusts: its build-time measurement and the runtime
/// measurements of its firmware, kernel and command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxImage {
    /// A name for people.
    pub name: String,
    /// MRTD, 96 hex digits.
    pub mrtd: String,
    /// RTMR0 to RTMR2 (firmware, kernel, command line and initrd), 96 hex
    /// digits each.
    pub rtmr0: String,
    /// See [`TdxImage::rtmr0`].
    pub rtmr1: String,
    /// See [`TdxImage::rtmr0`].
    pub rtmr2: String,
    /// RTMR3 (the application's), when pinned.
    #[serde(default)]
    pub rtmr3: Option<String>,
}

/// The policy's TDX part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// TDs trusted.
    #[serde(default)]
    pub images: Vec<TdxImage>,
    /// SHA-256 of the Intel root trusted.
    #[serde(default = "default_root")]
    pub root_sha256: String,
    /// TCB statuses accepted (`UpToDate`, `SWHardeningNeeded`,
    /// `ConfigurationNeeded`, `OutOfDate`, ...).
    #[serde(default = "default_statuses")]
    pub accepted_tcb_status: Vec<String>,
}

fn default_root() -> String {
    INTEL_SGX_ROOT_SHA256.to_owned()
}

fn default_statuses() -> Vec<String> {
    vec!["UpToDate".into()]
}

impl Default for TdxPolicy {
    fn default() -> TdxPolicy {
        TdxPolicy {
            images: Vec::new(),
            root_sha256: default_root(),
            accepted_tcb_status: default_statuses(),
        }
    }
}

impl TdxPolicy {
    /// Checks a policy's values.
    pub fn check(&self) -> Result<(), TdxError> {
        if self.root_sha256.len() != 64 || hex::decode(&self.root_sha256).is_err() {
            return Err(TdxError::RootPin);
        }
        for image in &self.images {
            let values = [
                ("mrtd", Some(&image.mrtd)),
                ("rtmr0", Some(&image.rtmr0)),
                ("rtmr1", Some(&image.rtmr1)),
                ("rtmr2", Some(&image.rtmr2)),
                ("rtmr3", image.rtmr3.as_ref()),
            ];
            for (name, value) in values {
                if let Some(value) = value
                    && hex::decode(value).map(|bytes| bytes.len()) != Ok(48)
                {
                    return Err(TdxError::Image {
                        image: image.name.clone(),
                        name,
                    });
                }
            }
        }
        Ok(())
    }

    /// The image whose every measurement the TD has.
    pub(crate) fn matching_image(
        &self,
        found: &BTreeMap<String, String>,
    ) -> Result<&TdxImage, TdxError> {
        let mut why = TdxError::NoImage;
        for image in &self.images {
            let wanted = [
                ("mrtd", Some(&image.mrtd)),
                ("rtmr0", Some(&image.rtmr0)),
                ("rtmr1", Some(&image.rtmr1)),
                ("rtmr2", Some(&image.rtmr2)),
                ("rtmr3", image.rtmr3.as_ref()),
            ];
            let differs = wanted.into_iter().find(|(name, value)| {
                value.is_some_and(|value| {
                    !found
                        .get(*name)
                        .is_some_and(|found| found.eq_ignore_ascii_case(value))
                })
            });
            match differs {
                None => return Ok(image),
                Some((name, _)) => {
                    why = TdxError::Differs {
                        name,
                        found: found
                            .get(name)
                            .map_or("absent", |value| crate::report::short(value))
                            .to_owned(),
                        image: image.name.clone(),
                    };
                }
            }
        }
        Err(why)
    }
}
