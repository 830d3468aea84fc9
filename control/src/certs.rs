//! When a TLS certificate is renewed, shared by the coordinator (its own
//! name's certificate) and the node agent (its MagicDNS name's): pure
//! arithmetic on a certificate's validity, and reading that validity.

use std::time::Duration;

/// When a certificate valid from `not_before` to `not_after` is renewed:
/// with a third of its life left (Let's Encrypt's advice).
pub fn renew_at(validity: (i64, i64)) -> i64 {
    let (not_before, not_after) = validity;
    not_after - (not_after - not_before).max(0) / 3
}

/// How long to wait after the `failures`th failure in a row: a minute,
/// doubling, at most six hours.
pub fn retry_after(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs((minutes * 60).min(6 * 3600))
}

/// The validity (not before, not after; Unix seconds) of the first
/// certificate in `chain_pem`, if it holds one.
pub fn validity(chain_pem: &[u8]) -> Option<(i64, i64)> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let leaf = CertificateDer::pem_slice_iter(chain_pem).next()?.ok()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let validity = certificate.validity();
    Some((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_renewed_with_a_third_of_its_life_left() {
        let ninety_days = 90 * 86400;
        assert_eq!(renew_at((0, ninety_days)), 60 * 86400);
        assert_eq!(renew_at((1000, 1000 + 6 * 86400)), 1000 + 4 * 86400);
        // Backwards dates renew at once (not after).
        assert_eq!(renew_at((100, 50)), 50);
    }

    #[test]
    fn failures_back_off_to_six_hours() {
        assert_eq!(retry_after(1), Duration::from_secs(60));
        assert_eq!(retry_after(2), Duration::from_secs(120));
        assert_eq!(retry_after(5), Duration::from_secs(16 * 60));
        assert_eq!(retry_after(40), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn the_validity_is_the_leafs() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["hub.ts.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 4, 1);
        let pem = params.self_signed(&key).unwrap().pem();
        assert_eq!(
            validity(pem.as_bytes()),
            Some((1_767_225_600, 1_775_001_600))
        );
        assert_eq!(validity(b"no certificate"), None);
    }
}
