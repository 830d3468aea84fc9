//! Capped exponential backoff with jitter, for reconnecting to the coordinator.

use std::time::Duration;

/// Delays of 0.5 s, 1 s, 2 s ... up to `max`, each shortened by up to a
/// quarter at random so that many agents do not return in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            attempt: 0,
            base,
            max,
        }
    }

    /// The delay before the next attempt; `jitter` in `0.0..1.0`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let delay = self.base.saturating_mul(factor).min(self.max);
        delay.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay(0.0).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        backoff.reset();
        assert_eq!(
            backoff.next_delay(1.0),
            Duration::from_millis(375),
            "jitter shortens by a quarter at most"
        );
    }
}
