//! Fuzzes schedules: cron expressions (any fields, names, ranges, steps)
//! and stored schedules read back, each asked for its next firing around a
//! daylight-saving change and for what is due. Never a panic, and the next
//! firing is always after the time asked.
#![no_main]

use hearth_assistant::schedule::{Cron, Schedule, due, zone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let at: jiff::Timestamp = "2026-10-25T00:59:59Z".parse().expect("a fixed time");
    if let Ok(cron) = Cron::parse(text) {
        for name in ["Europe/London", "Australia/Lord_Howe"] {
            let tz = zone(name).expect("a known zone");
            if let Some(next) = cron.next_after(at, &tz) {
                assert!(next > at);
            }
        }
    }
    if let Ok(schedule) = serde_json::from_str::<Schedule>(text)
        && schedule.check().is_ok()
    {
        if let Some(next) = schedule.next_after(at) {
            assert!(next > at);
            let _ = due(&schedule, next, at, true);
        }
        let _ = due(&schedule, at, at, false);
    }
});
