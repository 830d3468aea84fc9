//! The verification report: each check, whether it passed and why, and the
//! measurements found, for people (`Display`) and for tools (JSON).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// A check the verifier makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The bytes are a signed attestation document of the kind claimed.
    Format,
    /// The kind of evidence is one the policy accepts.
    EvidenceType,
    /// The chain ends at the pinned root.
    Root,
    /// The chain holds at the time checked.
    Chain,
    /// The document is signed by its certificate.
    Signature,
    /// The document is recent enough.
    Freshness,
    /// The enclave did not run in debug mode.
    DebugMode,
    /// The PCRs are those of an image the policy allows.
    Measurements,
    /// The module id is the one the policy names.
    ModuleId,
    /// The nonce is the one the verifier sent.
    Nonce,
    /// The request key is bound into the document.
    KeyBinding,
    /// The platform's firmware (TCB) is what its certificate says, and
    /// recent enough.
    Tcb,
    /// No certificate of the chain is revoked.
    Revocation,
    /// The collateral the verdict rests on (Intel's TCB information and
    /// quoting enclave identity) is signed and current.
    Collateral,
}

impl CheckName {
    /// The name as printed and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Format => "format",
            CheckName::EvidenceType => "evidence_type",
            CheckName::Root => "root",
            CheckName::Chain => "chain",
            CheckName::Signature => "signature",
            CheckName::Freshness => "freshness",
            CheckName::DebugMode => "debug_mode",
            CheckName::Measurements => "measurements",
            CheckName::ModuleId => "module_id",
            CheckName::Nonce => "nonce",
            CheckName::KeyBinding => "key_binding",
            CheckName::Tcb => "tcb",
            CheckName::Revocation => "revocation",
            CheckName::Collateral => "collateral",
        }
    }
}

/// How a check went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// It held.
    Passed(String),
    /// It did not.
    Failed(String),
    /// It was not asked for (no policy, no nonce expected) or could not be
    /// reached.
    Skipped(String),
}

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check.
    pub check: CheckName,
    /// Its outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What was learned about the evidence and what was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The kind of evidence (`aws-nitro`, `hearth-dev`).
    pub evidence_type: String,
    /// The module id, when the document parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// The document's time (RFC 3339), when it parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The time it was checked at (RFC 3339).
    pub checked_at: String,
    /// PCRs by index, hex.
    pub pcrs: BTreeMap<u8, String>,
    /// The bound public key, hex, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Named measurements (SEV-SNP's launch measurement, TDX's MRTD and
    /// RTMRs), hex.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub measurements: BTreeMap<String, String>,
    /// The platform's TCB, as its evidence states it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcb: Option<String>,
    /// The checks in the order made.
    pub checks: Vec<Check>,
    /// Whether every check made passed.
    pub passed: bool,
}

impl Report {
    /// Records a check.
    pub fn record(&mut self, check: CheckName, outcome: Outcome) {
        self.checks.push(Check { check, outcome });
    }

    /// Records that a check passed.
    pub fn pass(&mut self, check: CheckName, detail: impl std::fmt::Display) {
        self.record(check, Outcome::Passed(detail.to_string()));
    }

    /// Records that a check failed.
    pub fn fail(&mut self, check: CheckName, detail: impl std::fmt::Display) {
        self.record(check, Outcome::Failed(detail.to_string()));
    }

    /// Records a check not made.
    pub fn skip(&mut self, check: CheckName, detail: impl std::fmt::Display) {
        self.record(check, Outcome::Skipped(detail.to_string()));
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|check| matches!(check.outcome, Outcome::Failed(_)))
    }

    /// The first failed check, if any.
    pub fn first_failure(&self) -> Option<CheckName> {
        self.failures().next().map(|check| check.check)
    }

    /// The outcome of `check`, if it was recorded.
    pub fn outcome(&self, check: CheckName) -> Option<&Outcome> {
        self.checks
            .iter()
            .find(|recorded| recorded.check == check)
            .map(|recorded| &recorded.outcome)
    }

    /// Sets [`Report::passed`] from the checks: true when none failed.
    pub fn conclude(mut self) -> Report {
        let passed = self.first_failure().is_none();
        self.passed = passed;
        self
    }
}

impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(out, "evidence:   {}", self.evidence_type)?;
        if let Some(module) = &self.module_id {
            writeln!(out, "module:     {module}")?;
        }
        if let Some(timestamp) = &self.timestamp {
            writeln!(out, "issued:     {timestamp}")?;
        }
        writeln!(out, "checked at: {}", self.checked_at)?;
        for check in &self.checks {
            let (mark, detail) = match &check.outcome {
                Outcome::Passed(detail) => ("pass", detail),
                Outcome::Failed(detail) => ("FAIL", detail),
                Outcome::Skipped(detail) => ("skip", detail),
            };
            writeln!(out, "  {mark}  {:<13} {detail}", check.check.as_str())?;
        }
        // PCR0-2 and 8 (what policies pin), and any other that is not zero.
        for (index, value) in &self.pcrs {
            if [0, 1, 2, 8].contains(index) || value.bytes().any(|digit| digit != b'0') {
                writeln!(out, "  PCR{index:<2} {value}")?;
            }
        }
        for (name, value) in &self.measurements {
            writeln!(out, "  {name:<12} {value}")?;
        }
        if let Some(tcb) = &self.tcb {
            writeln!(out, "  tcb          {tcb}")?;
        }
        if let Some(key) = &self.public_key {
            let shown = if key.len() > 64 { &key[..64] } else { key };
            let more = if key.len() > 64 { "..." } else { "" };
            writeln!(out, "  public_key ({} bytes) {shown}{more}", key.len() / 2)?;
        }
        match self.first_failure() {
            None => write!(out, "result: VERIFIED"),
            Some(_) => {
                let failed: Vec<&str> = self.failures().map(|check| check.check.as_str()).collect();
                write!(out, "result: REFUSED ({})", failed.join(", "))
            }
        }
    }
}

/// `since_epoch` as RFC 3339 (UTC, milliseconds when not whole seconds).
pub fn rfc3339(since_epoch: Duration) -> String {
    let nanos = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} s after 1970", since_epoch.as_secs()))
}

/// Parses an RFC 3339 time into the time since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<Duration> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = u64::try_from(time.unix_timestamp_nanos()).ok()?;
    Some(Duration::from_nanos(nanos))
}

/// A report of evidence of `kind`, checked at `now`, with no check yet.
pub(crate) fn start(kind: &str, now: Duration) -> Report {
    Report {
        evidence_type: kind.to_owned(),
        checked_at: rfc3339(now),
        ..Report::default()
    }
}

/// The first sixteen hex digits of a long value, enough to tell values apart.
pub fn short(hex: &str) -> &str {
    if hex.len() <= 16 { hex } else { &hex[..16] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_and_parse_as_rfc3339() {
        let time = Duration::from_millis(1_725_719_859_545);
        assert_eq!(rfc3339(time), "2024-09-07T14:37:39.545Z");
        assert_eq!(parse_rfc3339("2024-09-07T14:37:39.545Z"), Some(time));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_report_passes_only_without_failures_and_names_them() {
        let mut report = Report::default();
        report.pass(CheckName::Chain, "ok");
        report.skip(CheckName::Nonce, "none expected");
        assert!(report.clone().conclude().passed);
        report.fail(CheckName::Measurements, "PCR0 differs");
        let report = report.conclude();
        assert!(!report.passed);
        assert_eq!(report.first_failure(), Some(CheckName::Measurements));
        assert!(
            report
                .to_string()
                .ends_with("result: REFUSED (measurements)")
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][2]["check"], "measurements");
        assert_eq!(json["checks"][2]["outcome"], "failed");
        assert_eq!(json["checks"][2]["detail"], "PCR0 differs");
    }
}
