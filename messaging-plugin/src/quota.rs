//! What one person may create: messages per minute, rooms. Pure: the caller
//! passes the time.

use std::collections::HashMap;
use std::time::Instant;

/// Messaging's limits per person.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Limits {
    /// Messages one person may post per minute, on average.
    pub posts_per_minute: u32,
    /// Messages one person may post at once, before the rate applies.
    pub post_burst: u32,
    /// Rooms one person may have created (direct conversations not counted).
    pub rooms_per_user: u32,
    /// Questions for the assistant answered at once, from everyone.
    pub questions_at_once: usize,
    /// Questions of one person that may wait for the assistant.
    pub questions_waiting_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            posts_per_minute: 60,
            post_burst: 20,
            rooms_per_user: 20,
            questions_at_once: 4,
            questions_waiting_per_user: 4,
        }
    }
}

/// Token buckets of posts, per person.
#[derive(Debug, Default)]
pub struct PostBudget {
    buckets: HashMap<String, (f64, Instant)>,
}

impl PostBudget {
    /// Whether `user` may post once more at `now` under `limits`.
    pub fn allow(&mut self, user: &str, now: Instant, limits: &Limits) -> bool {
        let burst = f64::from(limits.post_burst.max(1));
        let per_second = f64::from(limits.posts_per_minute.max(1)) / 60.0;
        let (tokens, last) = self.buckets.entry(user.to_owned()).or_insert((burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*last).as_secs_f64() * per_second).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let limits = Limits::default();
        let start = Instant::now();
        let mut budget = PostBudget::default();
        let posted = (0..2000)
            .filter(|step| budget.allow("ada", start + Duration::from_micros(step * 1350), &limits))
            .count();
        // 2,000 posts in 2.7 s: the burst of 20 and about 3 more.
        assert!((20..=24).contains(&posted), "{posted}");
        assert!(budget.allow("ben", start, &limits), "per person");
        assert!(budget.allow("ada", start + Duration::from_secs(10), &limits));
    }
}
