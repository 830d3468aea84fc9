//! Verified keys, cached per REK: verification costs a chain walk and two
//! signature checks, so a client verifies a node's bundle once and trusts
//! its key until the evidence it saw grows too old. A new key is always
//! verified; a bundle that fails is never cached.

use std::collections::HashMap;
use std::time::Duration;

use crate::evidence::EvidenceBundle;
use crate::policy::Policy;
use crate::verify::{BundleReport, verify_bundle};

/// Keys that passed, and until when they count as verified.
#[derive(Debug, Default)]
pub struct VerifiedKeys {
    keys: HashMap<[u8; 32], Duration>,
}

/// How a bundle was judged.
#[derive(Debug)]
pub enum Judgement {
    /// Its REK was verified before and is still within the policy's age.
    Cached,
    /// It was verified now.
    Verified(BundleReport),
    /// It failed now.
    Refused(BundleReport),
}

impl Judgement {
    /// Whether the key may be used.
    pub fn trusted(&self) -> bool {
        !matches!(self, Judgement::Refused(_))
    }
}

impl VerifiedKeys {
    /// Judges `bundle` at `now` under `policy`.
    pub fn judge(&mut self, bundle: &EvidenceBundle, policy: &Policy, now: Duration) -> Judgement {
        let Ok(rek) = bundle.rek_bytes() else {
            return Judgement::Refused(verify_bundle(bundle, Some(policy), now, None));
        };
        if self.keys.get(&rek).is_some_and(|until| now <= *until) {
            return Judgement::Cached;
        }
        let report = verify_bundle(bundle, Some(policy), now, None);
        if !report.passed {
            self.keys.remove(&rek);
            return Judgement::Refused(report);
        }
        // Trusted until the newest passing document reaches the policy's age.
        let issued = report
            .reports
            .iter()
            .filter(|report| report.passed)
            .filter_map(|report| report.timestamp.as_deref())
            .filter_map(crate::report::parse_rfc3339)
            .max()
            .unwrap_or(now);
        self.keys
            .insert(rek, issued + Duration::from_secs(policy.max_age_seconds));
        Judgement::Verified(report)
    }

    /// Forgets every key (after the policy changes).
    pub fn clear(&mut self) {
        self.keys.clear();
    }

    /// How many keys are trusted now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
