//! What a device may ask the household's CA to sign: a certificate
//! request for its own MagicDNS name and nothing else. Pure (the request's
//! DER in, a verdict out), and fuzzed with what a device may send
//! (`control/fuzz`, target `device_csr`).

/// Why a device's certificate request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefused {
    /// Not a well-signed PKCS#10 request.
    #[error("not a certificate request: {0}")]
    NotARequest(String),
    /// It names other names than the device's own, or several.
    #[error("the request must name {domain} alone (it names {names} names)")]
    OtherNames {
        /// The device's name.
        domain: String,
        /// How many names it named.
        names: usize,
    },
    /// Its subject names something else.
    #[error("the request's subject must be empty or {0}")]
    OtherSubject(String),
}

/// Checks that `csr` (DER) is a well-signed request for `domain` and
/// nothing else: one DNS name, no other subject name but that one. What a
/// node sends is signed by the CA as it is, so it must not name more than
/// the node may have.
pub fn check_request(csr: &[u8], domain: &str) -> Result<(), RequestRefused> {
    let request = rcgen::CertificateSigningRequestParams::from_der(&csr.to_vec().into())
        .map_err(|error| RequestRefused::NotARequest(error.to_string()))?;
    let names = &request.params.subject_alt_names;
    let only_domain = matches!(names.as_slice(),
        [rcgen::SanType::DnsName(name)] if name.as_str().eq_ignore_ascii_case(domain));
    if !only_domain {
        return Err(RequestRefused::OtherNames {
            domain: domain.to_owned(),
            names: names.len(),
        });
    }
    for (kind, value) in request.params.distinguished_name.iter() {
        let text = match value {
            rcgen::DnValue::PrintableString(text) => text.as_str().to_owned(),
            rcgen::DnValue::Utf8String(text) => text.clone(),
            _ => String::new(),
        };
        if *kind != rcgen::DnType::CommonName || !text.eq_ignore_ascii_case(domain) {
            return Err(RequestRefused::OtherSubject(domain.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(names: &[&str], common_name: Option<&str>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(name) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
        }
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_device_request_names_its_own_name_alone() {
        let own = "hub.ts.home.example";
        check_request(&request(&[own], None), own).unwrap();
        check_request(&request(&["HUB.ts.home.example"], Some(own)), own).unwrap();
        for (names, common_name) in [
            (vec!["laptop.ts.home.example"], None),
            (vec![own, "coordinator.home.example"], None),
            (vec![], Some(own)),
            (vec![own], Some("bank.example")),
        ] {
            assert!(
                check_request(&request(&names, common_name), own).is_err(),
                "{names:?} {common_name:?}"
            );
        }
        assert!(
            check_request(b"not DER", own)
                .unwrap_err()
                .to_string()
                .contains("not a certificate request")
        );
        // A request whose signature does not match its key is refused.
        let mut tampered = request(&[own], None);
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(check_request(&tampered, own).is_err());
    }
}
