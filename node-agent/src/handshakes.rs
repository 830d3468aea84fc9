//! A handshake budget per source address: WireGuard peers initiate at most
//! one handshake every five seconds (REKEY_TIMEOUT), so anything much faster
//! from one address is a flood, and is dropped before any public-key work.
//! Pure: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Handshake initiations one source may send at once.
pub const BURST: f64 = 5.0;
/// Handshake initiations per second one source earns back.
pub const PER_SECOND: f64 = 20.0;
/// Sources remembered at most; past that the quietest are forgotten first.
const MAX_SOURCES: usize = 65_536;

/// Token buckets per source address.
#[derive(Debug, Default)]
pub struct SourceBudget {
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl SourceBudget {
    /// Whether `source` may send one more handshake initiation at `now`.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let source = source.to_canonical();
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&source) {
            self.forget_idle(now);
            if self.buckets.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (tokens, last) = self.buckets.entry(source).or_insert((BURST, now));
        let earned = now.saturating_duration_since(*last).as_secs_f64() * PER_SECOND;
        *tokens = (*tokens + earned).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops sources whose bucket has been full for a while (they cost
    /// nothing to re-create).
    pub fn forget_idle(&mut self, now: Instant) {
        let full_after = Duration::from_secs_f64(BURST / PER_SECOND) + Duration::from_secs(1);
        self.buckets
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < full_after);
    }

    /// Sources remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_source_gets_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut budget = SourceBudget::default();
        let flooder: IpAddr = "10.77.0.9".parse().unwrap();
        let allowed = (0..1000)
            .filter(|step| budget.allow(flooder, start + Duration::from_micros(step * 1000)))
            .count();
        // One second at 1,000 a second: the burst plus about 20.
        assert!((20..=27).contains(&allowed), "{allowed}");
        let member: IpAddr = "10.77.0.2".parse().unwrap();
        assert!(
            budget.allow(member, start + Duration::from_secs(1)),
            "others are not affected"
        );
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let start = Instant::now();
        let mut budget = SourceBudget::default();
        budget.allow("10.0.0.1".parse().unwrap(), start);
        budget.forget_idle(start + Duration::from_millis(100));
        assert_eq!(budget.len(), 1);
        budget.forget_idle(start + Duration::from_secs(5));
        assert!(budget.is_empty());
    }
}
