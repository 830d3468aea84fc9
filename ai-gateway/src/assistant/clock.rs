//! The time the assistant goes by (when reminders fire, what "today" is).
//! The system clock, except in debug builds given `HEARTH_TEST_CLOCK`: a
//! file holding an RFC 3339 time, which tests write to move time on, so
//! a reminder for 7 pm can be tested at once and across a restart. Release
//! builds never read it. Cryptography (request freshness, key rotation)
//! always uses the system clock.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

/// Where the time comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A file a test writes (debug builds only).
    File(PathBuf),
}

/// The variable naming a test's clock file.
pub const TEST_CLOCK: &str = "HEARTH_TEST_CLOCK";

impl Clock {
    /// The system clock, or in a debug build the file `HEARTH_TEST_CLOCK` names.
    pub fn from_env() -> Clock {
        if cfg!(debug_assertions)
            && let Some(path) = std::env::var_os(TEST_CLOCK)
        {
            return Clock::File(PathBuf::from(path));
        }
        Clock::System
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or_else(Timestamp::now),
        }
    }

    /// The longest the scheduler sleeps before looking again: until the
    /// next job is due on the system clock, but a test's clock can jump.
    pub fn longest_sleep(&self) -> Duration {
        match self {
            Clock::System => Duration::from_secs(60),
            Clock::File(_) => Duration::from_millis(100),
        }
    }
}
