//! At most one log line per period for an event that can repeat thousands
//! of times a second (a refused connection, an accept error under fd
//! exhaustion): the rest are counted and reported with the next line.

use std::time::{Duration, Instant};

/// Decides whether an event is logged now. Pure: the caller passes the time.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Logs at most once per `period`.
    pub fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when the event should be logged now, `n` being how many
    /// were left unlogged since the last line; `None` to stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_of_the_rest() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.allow(start), Some(0));
        for step in 1..=20 {
            assert_eq!(
                throttle.allow(start + Duration::from_millis(step * 40)),
                None
            );
        }
        assert_eq!(
            throttle.allow(start + Duration::from_millis(1000)),
            Some(20)
        );
        assert_eq!(throttle.allow(start + Duration::from_millis(1001)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(5)), Some(1));
    }
}
