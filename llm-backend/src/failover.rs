//! When to move on to the next model, and how long a failing backend rests.
//!
//! Pure: decisions take the error, whether output already reached the user,
//! and the time.

use std::collections::HashMap;
use std::time::Duration;

use crate::chat::BackendError;

/// Cooldowns after 1, 2, and 3 or more consecutive failures of a backend.
pub const COOLDOWNS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
];

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try the next model; rest the failed backend when `cool_down`.
    FailOver {
        /// Whether the backend itself is at fault and should rest.
        cool_down: bool,
    },
    /// Stop and report the error.
    Stop,
}

/// The verdict on `error`, given whether any output already reached the user.
///
/// Once the user has seen part of a reply, another model cannot continue it
/// seamlessly: the error is reported instead. A conversation too long for the
/// context is the caller's to fix. Everything that says "this backend cannot
/// answer now" (refused, timeouts, 5xx, 429, a stream cut short) fails over
/// and rests the backend; a refusal of the request itself (other 4xx) fails
/// over without resting it. A client abort never reaches here: the stream is
/// simply dropped.
pub fn verdict(error: &BackendError, output_sent: bool) -> Verdict {
    if output_sent {
        return Verdict::Stop;
    }
    match error {
        BackendError::ContextOverflow(_) => Verdict::Stop,
        // Nothing to rest: it is simply not there, and is asked again
        // the moment it is.
        BackendError::Rejected { .. } | BackendError::Away(_) => {
            Verdict::FailOver { cool_down: false }
        }
        BackendError::Refused(_)
        | BackendError::ConnectTimeout(_)
        | BackendError::FirstTokenTimeout(_)
        | BackendError::IdleTimeout(_)
        | BackendError::Server { .. }
        | BackendError::RateLimited(_)
        | BackendError::EndedEarly
        | BackendError::MidStream(_)
        | BackendError::Protocol(_)
        | BackendError::Transport(_)
        | BackendError::Unverified(_) => Verdict::FailOver { cool_down: true },
    }
}

/// Whether an endpoint that failed this way should leave rotation until a
/// health probe sees it answer again.
pub fn endpoint_unhealthy(error: &BackendError) -> bool {
    matches!(
        error,
        BackendError::Refused(_)
            | BackendError::ConnectTimeout(_)
            | BackendError::Transport(_)
            | BackendError::Server { .. }
    )
}

#[derive(Clone, Copy, Debug)]
struct Rest {
    failures: usize,
    until: Duration,
}

/// Consecutive failures and rest periods, by backend.
#[derive(Clone, Debug, Default)]
pub struct Cooldowns {
    rests: HashMap<String, Rest>,
}

impl Cooldowns {
    /// Records a failure of `backend` at `now`; returns how long it rests.
    pub fn fail(&mut self, backend: &str, now: Duration) -> Duration {
        let failures = self.rests.get(backend).map_or(0, |rest| rest.failures) + 1;
        let length = COOLDOWNS[(failures - 1).min(COOLDOWNS.len() - 1)];
        self.rests.insert(
            backend.to_owned(),
            Rest {
                failures,
                until: now + length,
            },
        );
        length
    }

    /// Records a success: the backend's failure count starts over.
    pub fn succeed(&mut self, backend: &str) {
        self.rests.remove(backend);
    }

    /// How long `backend` still rests at `now`.
    pub fn remaining(&self, backend: &str, now: Duration) -> Option<Duration> {
        self.rests
            .get(backend)
            .and_then(|rest| rest.until.checked_sub(now))
            .filter(|left| !left.is_zero())
    }

    /// The order to try `backends` (by index) at `now`: rested ones in their
    /// configured order, then resting ones as a last resort, soonest back first.
    pub fn order(&self, backends: &[&str], now: Duration) -> Vec<usize> {
        let (mut ready, mut resting): (Vec<usize>, Vec<usize>) =
            (0..backends.len()).partition(|index| self.remaining(backends[*index], now).is_none());
        resting.sort_by_key(|index| self.remaining(backends[*index], now));
        ready.append(&mut resting);
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    #[test]
    fn every_failure_class_gets_its_verdict() {
        let fail_over = Verdict::FailOver { cool_down: true };
        for error in [
            BackendError::Refused("x".into()),
            BackendError::ConnectTimeout("x".into()),
            BackendError::FirstTokenTimeout(5),
            BackendError::IdleTimeout(5),
            BackendError::Server {
                status: 500,
                message: String::new(),
            },
            BackendError::RateLimited(String::new()),
            BackendError::EndedEarly,
            BackendError::MidStream("boom".into()),
            BackendError::Unverified("no node passed".into()),
        ] {
            assert_eq!(verdict(&error, false), fail_over, "{error}");
            assert_eq!(
                verdict(&error, true),
                Verdict::Stop,
                "no failover after output: {error}"
            );
        }
        assert_eq!(
            verdict(&BackendError::ContextOverflow(String::new()), false),
            Verdict::Stop
        );
        assert_eq!(
            verdict(
                &BackendError::Rejected {
                    status: 404,
                    message: String::new()
                },
                false
            ),
            Verdict::FailOver { cool_down: false }
        );
    }

    #[test]
    fn cooldowns_grow_thirty_sixty_three_hundred_and_reset_on_success() {
        let mut cooldowns = Cooldowns::default();
        assert_eq!(cooldowns.fail("ollama", seconds(0)), seconds(30));
        assert_eq!(
            cooldowns.remaining("ollama", seconds(10)),
            Some(seconds(20))
        );
        assert_eq!(cooldowns.remaining("ollama", seconds(30)), None);
        assert_eq!(cooldowns.fail("ollama", seconds(40)), seconds(60));
        assert_eq!(cooldowns.fail("ollama", seconds(200)), seconds(300));
        assert_eq!(cooldowns.fail("ollama", seconds(600)), seconds(300));
        cooldowns.succeed("ollama");
        assert_eq!(cooldowns.fail("ollama", seconds(700)), seconds(30));
    }

    #[test]
    fn resting_backends_go_last_soonest_back_first() {
        let mut cooldowns = Cooldowns::default();
        let backends = ["primary", "second", "third"];
        assert_eq!(cooldowns.order(&backends, seconds(0)), [0, 1, 2]);
        cooldowns.fail("primary", seconds(0));
        cooldowns.fail("second", seconds(0));
        cooldowns.fail("second", seconds(1)); // 60 s from 1
        assert_eq!(cooldowns.order(&backends, seconds(5)), [2, 0, 1]);
        assert_eq!(cooldowns.order(&backends, seconds(31)), [0, 2, 1]);
    }

    #[test]
    fn unhealthy_endpoints_are_those_that_did_not_answer() {
        assert!(endpoint_unhealthy(&BackendError::Refused("x".into())));
        assert!(endpoint_unhealthy(&BackendError::Server {
            status: 503,
            message: "Loading model".into()
        }));
        assert!(!endpoint_unhealthy(&BackendError::RateLimited(
            String::new()
        )));
        assert!(!endpoint_unhealthy(&BackendError::FirstTokenTimeout(1)));
    }
}
