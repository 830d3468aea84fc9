//! An HTTP answer of a local service as `hearth setup` and `hearth status`
//! read it (status line, headers, a plain or chunked body): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(answer) = hearth_hub::probe::parse(data) {
        assert!((100..600).contains(&answer.status));
        assert!(answer.body.len() <= data.len());
    }
});
