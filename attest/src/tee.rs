//! What SEV-SNP and TDX evidence share: how the node's request key, the
//! time and the verifier's nonce are bound into the 64 bytes of report
//! data a TEE signs, and the checks of that binding.

use crate::claims::Expected;
use crate::report::{CheckName, Report};

/// The 64 bytes of report data a node's TEE report carries: SHA-512 of the
/// REK binding ([`crate::rek_binding`]), the time the node asked (Unix
/// seconds, big-endian) and the verifier's nonce, if it gave one.
pub fn report_data(rek: &[u8; 32], issued_at: u64, nonce: Option<&[u8]>) -> [u8; 64] {
    use sha2::{Digest as _, Sha512};
    let mut hash = Sha512::new();
    hash.update(crate::evidence::rek_binding(rek));
    hash.update(issued_at.to_be_bytes());
    hash.update(nonce.unwrap_or_default());
    hash.finalize().into()
}

/// The key-binding and nonce checks of a report whose report data is
/// `found`, issued at `issued_at`.
pub(crate) fn check_binding(
    found: &[u8; 64],
    issued_at: u64,
    expected: Expected<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;
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
