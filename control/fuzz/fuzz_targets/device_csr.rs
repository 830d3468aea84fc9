//! Fuzzes the coordinator's check of what a device asks the household's
//! ACME CA to sign (`POST /api/v1/cert`): any bytes as a certificate
//! request, never a panic; a request let through names the device's own
//! name and nothing else (parsed again here), so the CA never signs a name
//! the device does not hold.
#![no_main]

// The check is pure and depends only on rcgen: included by path so the
// fuzzer builds without the coordinator.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../coordinator/src/acme/request.rs"]
mod request;

use libfuzzer_sys::fuzz_target;

const OWN: &str = "hub.ts.home.example";

fuzz_target!(|data: &[u8]| {
    if request::check_request(data, OWN).is_ok() {
        let parsed = rcgen::CertificateSigningRequestParams::from_der(&data.to_vec().into())
            .expect("a request let through parses");
        match parsed.params.subject_alt_names.as_slice() {
            [rcgen::SanType::DnsName(name)] => {
                assert!(name.as_str().eq_ignore_ascii_case(OWN), "{name:?}");
            }
            other => panic!("let through with names {other:?}"),
        }
    }
});
