//! What SEV-SNP and TDX evidence share: how the node's request key, the
//! time and the verifier's nonce are bound into the 64 bytes of report
//! data a TEE signs, and the checks of that binding.

use crate::report::{CheckName, Report};

/// The 64 bytes of report data a node's TEE report carries: SHA-512 of the
/// REK binding ([`crate::rek_binding`]), the time the node asked (Unix
/// seconds, big-endian) and the verifier's nonce, if it gave one.
pub fn report_data(rek: &[u8; 32], issued_at: u64, nonce: Option<&[u8]>) -> [u8; 64] {
    use sha2::{Digest as _, Sha512};
    let mut hash = Sha512::new();
    hash.update(crate::rek_binding(rek));
    hash.update(issued_at.to_be_bytes());
    hash.update(nonce.unwrap_or_default());
    hash.finalize().into()
}

/// The debug-mode check of a TEE whose report says debugging is `debug`
/// (`what`: how its report says so).
pub(crate) fn check_debug(
    policy: Option<&crate::Policy>,
    debug: bool,
    what: &str,
    report: &mut Report,
) {
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

/// The key-binding and nonce checks of a report whose report data is
/// `found`, issued at `issued_at`.
pub(crate) fn check_binding(
    found: &[u8; 64],
    issued_at: u64,
    expected: crate::Expected<'_>,
    report: &mut Report,
) {
    let Some(rek) = expected.rek else {
        report.skip(CheckName::KeyBinding, "no key expected");
        match expected.nonce {
            None => report.skip(CheckName::Nonce, "no nonce expected"),
            Some(_) => report.fail(
                CheckName::Nonce,
                "a nonce is bound with the request key, and no key was given to check it with",
            ),
        }
        return;
    };
    let bound = report_data(rek, issued_at, expected.nonce) == *found;
    if bound {
        report.pass(
            CheckName::KeyBinding,
            "the report binds the node's request key and its time",
        );
    } else {
        report.fail(
            CheckName::KeyBinding,
            "the report data does not bind the bundle's request key, the document's time and the nonce",
        );
    }
    match expected.nonce {
        None => report.skip(CheckName::Nonce, "no nonce expected"),
        Some(_) if bound => report.pass(CheckName::Nonce, "the nonce sent, bound with the key"),
        Some(_) => report.fail(
            CheckName::Nonce,
            "the nonce sent is not bound (see key_binding)",
        ),
    }
}

/// Byte strings as CBOR byte strings.
pub(crate) mod cbor_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        ciborium::value::Value::deserialize(deserializer)?
            .into_bytes()
            .map_err(|_| serde::de::Error::custom("expected a byte string"))
    }
}

pub(crate) mod cbor_bytes_option {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_bytes(bytes),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        super::cbor_bytes::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Expected;
    use std::time::Duration;

    fn checked(found: &[u8; 64], rek: Option<&[u8; 32]>, nonce: Option<&[u8]>) -> Report {
        let mut report = Report::default();
        let expected = Expected {
            now: Duration::from_secs(100),
            nonce,
            rek,
        };
        check_binding(found, 50, expected, &mut report);
        report.conclude()
    }

    #[test]
    fn the_key_time_and_nonce_are_bound_together() {
        let rek = [1u8; 32];
        let with_nonce = report_data(&rek, 50, Some(b"fresh"));
        assert!(checked(&with_nonce, Some(&rek), Some(b"fresh")).passed);
        let report = checked(&with_nonce, Some(&rek), Some(b"stale"));
        assert_eq!(report.first_failure(), Some(CheckName::KeyBinding));
        assert!(
            report
                .failures()
                .any(|check| check.check == CheckName::Nonce)
        );
        // Without the nonce asked for, the same report does not bind.
        assert!(!checked(&with_nonce, Some(&rek), None).passed);
        let plain = report_data(&rek, 50, None);
        assert!(checked(&plain, Some(&rek), None).passed);
        assert!(!checked(&plain, Some(&[2; 32]), None).passed);
        // A nonce cannot be checked without the key it is bound with.
        assert_eq!(
            checked(&plain, None, Some(b"fresh")).first_failure(),
            Some(CheckName::Nonce)
        );
    }
}
