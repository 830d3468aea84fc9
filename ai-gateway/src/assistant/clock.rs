//! The time the assistant goes by (when reminders fire, what "today" is).
//! The system clock, except in debug builds given `HEARTH_TEST_CLOCK`: a
//! file holding an RFC 3339 time, which tests write to move time on, so
//! a reminder for 7 pm can be tested at once and across a restart. Release
//! builds never read it. Cryptography (request freshness, key rotation)
//! always uses the system clock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

/// Where the time comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A file a test writes (debug builds only), and the last time read
    /// from it.
    File(PathBuf, Arc<Mutex<Option<Timestamp>>>),
}

/// The variable naming a test's clock file.
pub const TEST_CLOCK: &str = "HEARTH_TEST_CLOCK";

impl Clock {
    /// The system clock, or in a debug build the file `HEARTH_TEST_CLOCK` names.
    pub fn from_env() -> Clock {
        if cfg!(debug_assertions)
            && let Some(path) = std::env::var_os(TEST_CLOCK)
        {
            return Clock::File(PathBuf::from(path), Arc::default());
        }
        Clock::System
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            // A test rewriting the file leaves it empty for a moment: the
            // last time read stands until the new one is there. (Read as
            // the system's time instead, a jump of days once made a daily
            // job skip the day the test went on to.)
            Clock::File(path, last) => {
                let read = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                let mut last = hearth_runtime::lock(last);
                match (read, *last) {
                    (Some(now), _) => {
                        *last = Some(now);
                        now
                    }
                    (None, Some(before)) => before,
                    (None, None) => Timestamp::now(),
                }
            }
        }
    }

    /// The longest the scheduler sleeps before looking again: until the
    /// next job is due on the system clock, but a test's clock can jump.
    pub fn longest_sleep(&self) -> Duration {
        match self {
            Clock::System => Duration::from_secs(60),
            Clock::File(..) => Duration::from_millis(100),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_being_rewritten_keeps_the_last_time_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock");
        std::fs::write(&path, "2026-11-24T16:00:01Z").unwrap();
        let clock = Clock::File(path.clone(), Arc::default());
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        assert_eq!(clock.now(), at("2026-11-24T16:00:01Z"));
        // Truncated by a writer that has not written yet.
        std::fs::write(&path, "").unwrap();
        assert_eq!(clock.now(), at("2026-11-24T16:00:01Z"));
        std::fs::write(&path, "2026-11-25T16:00:01Z").unwrap();
        assert_eq!(clock.now(), at("2026-11-25T16:00:01Z"));
    }
}
