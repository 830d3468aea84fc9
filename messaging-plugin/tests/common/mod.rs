//! The messaging tests' household (built by hearth_testkit::household) and
//! helpers to read it.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

pub use hearth_testkit::household::Household;
use hearth_testkit::household::Options;
use hearth_testkit::{Host, wait_until};

pub const SECOND: Duration = Duration::from_secs(1);

/// Builds the household with the guest and the stranger; `None` when it
/// cannot run here (skipped outside CI).
pub fn household() -> Option<Household> {
    Household::start(Options::default())
}

pub fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// Polls `room`'s history on `host` until a message from the assistant that
/// is no longer streaming appears after `after`; returns it.
pub fn assistant_answer(
    household: &Household,
    host: &Host,
    room_args: &[&str],
    after: usize,
) -> String {
    let mut answer = String::new();
    let found = wait_until(30 * SECOND, || {
        let mut args = vec!["tail", "--count", "0", "--history", "50"];
        args.extend_from_slice(room_args);
        let output = household.cli_ok(host, &args);
        let replies: Vec<String> = output
            .lines()
            .filter(|line| line.contains("] assistant: "))
            .map(str::to_owned)
            .collect();
        if replies.len() > after {
            answer = replies[after].clone();
            true
        } else {
            false
        }
    });
    assert!(
        found.is_some(),
        "no answer from the assistant; messaging log:\n{}",
        household.messaging.as_ref().unwrap().log_text()
    );
    answer
}
