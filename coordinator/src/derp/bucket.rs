//! A token bucket of bytes: how long a sender must wait before what it just
//! sent fits its rate. Pure: the caller passes the time.

use std::time::Duration;

/// Bytes a sender may send: `burst` at once, then `rate` a second.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl Bucket {
    /// A full bucket; a `rate` of 0 never limits.
    pub fn new(rate: u64, burst: u64) -> Bucket {
        Bucket {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: Duration::ZERO,
        }
    }

    /// Takes `bytes` at `now`; how long to wait before reading on, if the
    /// sender went past its rate (the debt is paid by waiting).
    pub fn take(&mut self, bytes: u64, now: Duration) -> Option<Duration> {
        if self.rate == 0.0 {
            return None;
        }
        let earned = now.saturating_sub(self.last).as_secs_f64() * self.rate;
        self.last = now;
        self.tokens = (self.tokens + earned).min(self.burst) - bytes as f64;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let mut bucket = Bucket::new(1000, 500);
        assert_eq!(bucket.take(500, ms(0)), None, "the burst");
        assert_eq!(bucket.take(100, ms(0)), Some(ms(100)), "100 bytes owed");
        // Waiting the 100 ms pays the debt; 100 ms later 100 bytes fit again.
        assert_eq!(bucket.take(0, ms(100)), None);
        assert_eq!(bucket.take(100, ms(200)), None);
    }

    #[test]
    fn a_steady_sender_under_its_rate_never_waits_and_idle_time_does_not_pile_up() {
        let mut bucket = Bucket::new(1000, 100);
        for tick in 0..100 {
            assert_eq!(bucket.take(90, ms(100 * tick)), None);
        }
        // A minute of silence earns no more than the burst.
        assert_eq!(bucket.take(100, ms(70_000)), None);
        assert!(bucket.take(100, ms(70_000)).is_some());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let mut bucket = Bucket::new(0, 0);
        assert_eq!(bucket.take(u64::MAX, ms(0)), None);
    }
}
