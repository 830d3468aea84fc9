//! Fuzzes what a member's app uploads to `/v1/audio/transcriptions`: any
//! bytes decode to audio or to a clear error, never a panic out of
//! `decode`, never more than the limit's seconds; the WebM reader Hearth
//! wrote is fuzzed under it (the seeds are the test fixtures in every
//! format). Panics the decoders raise and `decode` catches are its
//! business (it calls that file damaged): libFuzzer's hook, which aborts on
//! any panic, is set aside so that only one escaping `decode` is a crash.
#![no_main]

use std::sync::Once;

use hearth_speech::audio::{self, Limits, RATE};
use hearth_speech::webm;
use libfuzzer_sys::fuzz_target;

static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = webm::read(data);
    let limits = Limits { max_seconds: 5 };
    if let Ok(decoded) = audio::decode(bytes::Bytes::copy_from_slice(data), limits) {
        assert!(decoded.samples.len() <= 5 * RATE as usize + RATE as usize);
        assert!(decoded.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
});
