//! What every kind of evidence is held to besides its own format: the
//! verifier's expectations (the time, its nonce, the key the document must
//! bind) and the policy's rules for all kinds (age, debug mode).

use std::time::Duration;

use crate::policy::{CLOCK_SKEW_SECONDS, Policy};
use crate::report::{CheckName, Report};

/// What the verifier knows besides the evidence.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The time to verify at, since the Unix epoch.
    pub now: Duration,
    /// The nonce the verifier asked the node to include, if it asked.
    pub nonce: Option<&'a [u8]>,
    /// The REK the document must bind, if known (from a bundle).
    pub rek: Option<&'a [u8; 32]>,
}

impl Expected<'_> {
    /// Only the time: no nonce, no key.
    pub fn at(now: Duration) -> Expected<'static> {
        Expected {
            now,
            nonce: None,
            rek: None,
        }
    }
}

/// Whether evidence issued at `issued` is recent enough at `now`.
pub(crate) fn check_freshness(
    issued: Duration,
    policy: Option<&Policy>,
    now: Duration,
    report: &mut Report,
) {
    if issued > now + Duration::from_secs(CLOCK_SKEW_SECONDS) {
        report.fail(
            CheckName::Freshness,
            format!("issued {} s in the future", (issued - now).as_secs()),
        );
        return;
    }
    let age = now.saturating_sub(issued).as_secs();
    match policy {
        Some(policy) if age > policy.max_age_seconds => report.fail(
            CheckName::Freshness,
            format!(
                "{age} s old, the policy allows {} s",
                policy.max_age_seconds
            ),
        ),
        Some(policy) => report.pass(
            CheckName::Freshness,
            format!(
                "{age} s old (the policy allows {} s)",
                policy.max_age_seconds
            ),
        ),
        None => report.pass(CheckName::Freshness, format!("{age} s old")),
    }
}

/// The debug-mode check of a TEE whose report says debugging is `debug`
/// (`what`: how its report says so).
pub(crate) fn check_debug(policy: Option<&Policy>, debug: bool, what: &str, report: &mut Report) {
    match policy {
        None => report.skip(CheckName::DebugMode, "no policy"),
        Some(policy) if debug && policy.allow_debug => report.pass(
            CheckName::DebugMode,
            format!("{what}, allowed by the policy"),
        ),
        Some(_) if debug => report.fail(
            CheckName::DebugMode,
            format!("{what}: its memory can be read from outside"),
        ),
        Some(_) => report.pass(CheckName::DebugMode, "not debuggable"),
    }
}
