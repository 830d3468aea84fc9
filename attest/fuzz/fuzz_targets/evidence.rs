//! Fuzzes what a verifier is handed: evidence files (bundle JSON, base64 or
//! raw CBOR), COSE_Sign1 documents and their payloads, SEV-SNP and TDX
//! documents (CBOR around a report or quote, certificates, CRLs and
//! collateral), bare files told apart by their shape, and policies. Every
//! input gives a report or an error, never a panic; nothing the fuzzer makes
//! passes verification (it cannot sign for AWS's chain).
#![no_main]

use std::time::Duration;

use hearth_attest::document::Document;
use hearth_attest::{
    Expected, Input, Policy, cose, read_input, snp, tdx, verify_bundle, verify_nitro,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Duration::from_secs(1_725_719_900);
    match read_input(data) {
        Ok(Input::Document(document)) => {
            let report = verify_nitro(&document, Some(&Policy::default()), Expected::at(now));
            assert!(!report.passed, "a document passed the default policy, which trusts no image");
        }
        Ok(Input::Bundle(bundle)) => {
            let report = verify_bundle(&bundle, Some(&Policy::default()), now, None);
            assert!(!report.passed, "a fuzzed bundle passed the default policy");
        }
        Err(_) => {}
    }
    if let Ok(signed) = cose::parse(data) {
        let _ = Document::parse(&signed.payload);
        let _ = signed.der_signature();
    }
    let _ = Document::parse(data);
    // What a bare file is, by its shape (hearth-pcc verify names it).
    let _ = hearth_attest::evidence::raw_kind(data);
    // As TEE evidence: the whole input as a document, and as the report or
    // quote inside a document (with no certificates that could vouch).
    for report in [
        snp::verify(data, Some(&Policy::default()), Expected::at(now)),
        tdx::verify(data, Some(&Policy::default()), Expected::at(now)),
    ] {
        assert!(!report.passed, "fuzzed TEE evidence passed the default policy");
    }
    let _ = snp::parse_report(data);
    if let Ok(table) = snp::certificate_table(data) {
        for der in [table.vcek, table.ask, table.ark].into_iter().flatten() {
            assert!(der.len() <= data.len());
        }
    }
    let wrapped = snp::SnpDocument {
        report: data.to_vec(),
        vcek: data.to_vec(),
        ask: Vec::new(),
        ark: Vec::new(),
        crl: Some(data.to_vec()),
        issued_at: now.as_secs(),
    };
    assert!(!snp::verify(&wrapped.to_bytes(), None, Expected::at(now)).passed);
    let quote = tdx::TdxDocument {
        quote: data.to_vec(),
        collateral: String::from_utf8_lossy(data).into_owned(),
        issued_at: now.as_secs(),
    };
    assert!(!tdx::verify(&quote.to_bytes(), None, Expected::at(now)).passed);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::parse(text);
    }
});
