//! Replay protection: a request is accepted once, and only while fresh.
//!
//! Pure: the caller passes the time. A request id is remembered for as long
//! as its timestamp could still pass the freshness check, so memory stays
//! bounded by the request rate times the window. Requests stamped before
//! `not_before` (the gateway's start) are refused, so a request captured
//! before a restart cannot be replayed after it.

use std::collections::{HashSet, VecDeque};

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Its timestamp is too far in the past.
    #[error("the request is {age} s old (the limit is {window} s); check the device's clock")]
    Stale {
        /// Seconds old.
        age: i64,
        /// The allowed skew.
        window: i64,
    },
    /// Its timestamp is too far in the future.
    #[error(
        "the request is stamped {ahead} s in the future (the limit is {window} s); check the device's clock"
    )]
    Future {
        /// Seconds ahead.
        ahead: i64,
        /// The allowed skew.
        window: i64,
    },
    /// The same request id was seen before.
    #[error("this request was already received (replay)")]
    Replayed,
    /// Too many requests in the window.
    #[error("too many requests in flight; retry shortly")]
    Full,
}

/// Remembers recent request ids.
#[derive(Debug)]
pub struct ReplayWindow {
    window: i64,
    not_before: i64,
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<(i64, String)>,
}

impl ReplayWindow {
    /// A window accepting timestamps within `window` seconds of now and not
    /// before `not_before`, remembering at most `capacity` ids.
    pub fn new(window: i64, not_before: i64, capacity: usize) -> ReplayWindow {
        ReplayWindow {
            window,
            not_before,
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Accepts `request_id` stamped `timestamp` at time `now`, or says why not.
    pub fn check(&mut self, request_id: &str, timestamp: i64, now: i64) -> Result<(), Rejection> {
        while let Some((stamped, _)) = self.order.front() {
            if *stamped >= now - self.window {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.seen.remove(&id);
            }
        }
        if timestamp < now - self.window {
            return Err(Rejection::Stale {
                age: now - timestamp,
                window: self.window,
            });
        }
        if timestamp < self.not_before {
            return Err(Rejection::Stale {
                age: now - timestamp,
                window: now - self.not_before,
            });
        }
        if timestamp > now + self.window {
            return Err(Rejection::Future {
                ahead: timestamp - now,
                window: self.window,
            });
        }
        if self.seen.contains(request_id) {
            return Err(Rejection::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Rejection::Full);
        }
        self.seen.insert(request_id.to_owned());
        // Keep the queue ordered by the time the id may be forgotten.
        let forget_at = timestamp.max(now);
        let position = self
            .order
            .partition_point(|(stamped, _)| *stamped <= forget_at);
        self.order
            .insert(position, (forget_at, request_id.to_owned()));
        Ok(())
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_accepted_once() {
        let mut window = ReplayWindow::new(60, 0, 100);
        assert_eq!(window.check("a", 1000, 1000), Ok(()));
        assert_eq!(window.check("a", 1000, 1010), Err(Rejection::Replayed));
        assert_eq!(window.check("b", 1000, 1010), Ok(()));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let mut window = ReplayWindow::new(60, 0, 100);
        assert_eq!(
            window.check("a", 939, 1000),
            Err(Rejection::Stale {
                age: 61,
                window: 60
            })
        );
        assert_eq!(window.check("b", 940, 1000), Ok(()));
        assert_eq!(
            window.check("c", 1061, 1000),
            Err(Rejection::Future {
                ahead: 61,
                window: 60
            })
        );
        assert_eq!(window.check("d", 1060, 1000), Ok(()));
    }

    #[test]
    fn requests_stamped_before_a_restart_are_refused() {
        let mut window = ReplayWindow::new(60, 1000, 100);
        assert!(matches!(
            window.check("a", 999, 1005),
            Err(Rejection::Stale { .. })
        ));
        assert_eq!(window.check("a", 1001, 1005), Ok(()));
    }

    #[test]
    fn ids_are_forgotten_once_they_cannot_pass_again() {
        let mut window = ReplayWindow::new(60, 0, 2);
        window.check("a", 1000, 1000).unwrap();
        window.check("b", 1030, 1030).unwrap();
        assert_eq!(window.check("c", 1030, 1030), Err(Rejection::Full));
        // At 1061 "a" (stamped 1000) can only come back stale: it is forgotten.
        assert_eq!(window.check("c", 1061, 1061), Ok(()));
        assert_eq!(window.len(), 2);
        assert!(matches!(
            window.check("a", 1000, 1061),
            Err(Rejection::Stale { .. })
        ));
        // A request stamped ahead is kept until its own time passes.
        let mut ahead = ReplayWindow::new(60, 0, 10);
        ahead.check("x", 1050, 1000).unwrap();
        assert_eq!(ahead.check("x", 1050, 1100), Err(Rejection::Replayed));
    }
}
