//! Replay protection: a request is accepted once, and only while fresh.
//!
//! Pure: the caller passes the time. A request id is remembered for as long
//! as its timestamp could still pass the freshness check, so memory stays
//! bounded by the request rate times the window. Requests stamped before
//! `not_before` are refused: that is the time from which the window knows
//! every accepted id (the gateway's start, or earlier when it kept a journal
//! of the ids it accepted before a restart: [`ReplayWindow::restore`]), so a
//! request captured before a restart cannot be replayed after it.

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

/// Request ids a window remembers at most by default: about 16,000 a second
/// for a ±60 s window. A full window refuses new requests ([`Rejection::Full`])
/// rather than forget an id that could still be replayed.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

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

    /// Whether a request stamped `timestamp` is within the window of the
    /// clock at `now`: the cheapest part of [`ReplayWindow::check`], without
    /// memory (a gateway asks it before it spends any cryptography).
    pub fn check_skew(&self, timestamp: i64, now: i64) -> Result<(), Rejection> {
        if timestamp < now - self.window {
            return Err(Rejection::Stale {
                age: now - timestamp,
                window: self.window,
            });
        }
        if timestamp > now + self.window {
            return Err(Rejection::Future {
                ahead: timestamp - now,
                window: self.window,
            });
        }
        Ok(())
    }

    /// Whether a request stamped `timestamp` is fresh at `now`: within the
    /// window of the clock, and not before `not_before`.
    pub fn check_fresh(&self, timestamp: i64, now: i64) -> Result<(), Rejection> {
        self.check_skew(timestamp, now)?;
        if timestamp < self.not_before {
            return Err(Rejection::Stale {
                age: now - timestamp,
                window: now - self.not_before,
            });
        }
        Ok(())
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
        self.check_fresh(timestamp, now)?;
        if self.seen.contains(request_id) {
            return Err(Rejection::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Rejection::Full);
        }
        self.remember(request_id, timestamp.max(now));
        Ok(())
    }

    /// Keeps `request_id` until `forget_at` has passed by the window.
    fn remember(&mut self, request_id: &str, forget_at: i64) {
        self.seen.insert(request_id.to_owned());
        // Keep the queue ordered by the time the id may be forgotten.
        let position = self
            .order
            .partition_point(|(stamped, _)| *stamped <= forget_at);
        self.order
            .insert(position, (forget_at, request_id.to_owned()));
    }

    /// The time from which every accepted id is known.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// Takes back an id accepted before a restart (from a journal), with the
    /// `forget_at` that [`ReplayWindow::accepted`] gave it; ids that can no
    /// longer pass at `now` are skipped.
    pub fn restore(&mut self, request_id: &str, forget_at: i64, now: i64) {
        if forget_at >= now - self.window && !self.seen.contains(request_id) {
            self.remember(request_id, forget_at);
        }
    }

    /// When an id accepted at `now` with `timestamp` may be forgotten (what
    /// a journal keeps to [`ReplayWindow::restore`] it).
    pub fn forget_at(timestamp: i64, now: i64) -> i64 {
        timestamp.max(now)
    }

    /// Every remembered id with its `forget_at`, oldest first (to rewrite a journal).
    pub fn accepted(&self) -> impl Iterator<Item = (i64, &str)> {
        self.order
            .iter()
            .map(|(forget_at, id)| (*forget_at, id.as_str()))
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
    fn ids_restored_after_a_restart_are_still_refused() {
        // Accepted before the restart, at 1000.
        let mut before = ReplayWindow::new(60, 900, 100);
        before.check("a", 995, 1000).unwrap();
        let journal: Vec<(i64, String)> = before
            .accepted()
            .map(|(forget_at, id)| (forget_at, id.to_owned()))
            .collect();
        assert_eq!(
            journal,
            [(ReplayWindow::forget_at(995, 1000), "a".to_owned())]
        );
        // Restarted at 1010, knowing every id since 900 from the journal.
        let mut after = ReplayWindow::new(60, before.not_before(), 100);
        for (forget_at, id) in &journal {
            after.restore(id, *forget_at, 1010);
        }
        assert_eq!(after.check("a", 995, 1010), Err(Rejection::Replayed));
        assert_eq!(
            after.check("b", 990, 1010),
            Ok(()),
            "a device whose clock is behind is not refused after the restart"
        );
        after.restore("old", 900, 1010);
        assert!(
            !after.accepted().any(|(_, id)| id == "old"),
            "too old to matter"
        );
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
