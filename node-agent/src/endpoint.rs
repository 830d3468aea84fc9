//! Choosing each peer's endpoint among the candidates the coordinator sends.
//!
//! Pure: the caller passes the time and the last handshake it read from the
//! data plane. The first candidate is tried first; a candidate that has not
//! produced a handshake within [`TRY_FOR`] gives way to the next; one that
//! did is kept until handshakes stop for [`STALE_AFTER`] (WireGuard re-keys
//! every two minutes while traffic or keep-alives flow). When the peer
//! reaches us from another address, WireGuard roams to it on its own; a
//! recent handshake means the current path works, whatever it is.

use std::net::SocketAddr;
use std::time::Duration;

/// How long a candidate gets to complete a handshake.
pub const TRY_FOR: Duration = Duration::from_secs(5);
/// How long without a handshake before a working endpoint is doubted.
pub const STALE_AFTER: Duration = Duration::from_secs(180);

/// Endpoint selection for one peer. Times are durations since any fixed origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointChoice {
    candidates: Vec<SocketAddr>,
    current: usize,
    tried_at: Option<Duration>,
}

impl EndpointChoice {
    /// Selection over `candidates` (best first).
    pub fn new(candidates: Vec<SocketAddr>) -> EndpointChoice {
        EndpointChoice {
            candidates,
            current: 0,
            tried_at: None,
        }
    }

    /// Replaces the candidates, keeping the current one if still offered.
    pub fn update(&mut self, candidates: Vec<SocketAddr>) {
        if candidates == self.candidates {
            return;
        }
        let current = self.candidates.get(self.current).copied();
        self.current = current
            .and_then(|endpoint| {
                candidates
                    .iter()
                    .position(|candidate| *candidate == endpoint)
            })
            .unwrap_or(0);
        if current.is_none_or(|endpoint| !candidates.contains(&endpoint)) {
            self.tried_at = None;
        }
        self.candidates = candidates;
    }

    /// The endpoint to set now, if it should change: `now` and the time of
    /// the last completed handshake (if any), on the same clock.
    pub fn next(&mut self, now: Duration, last_handshake: Option<Duration>) -> Option<SocketAddr> {
        if self.candidates.is_empty() {
            return None;
        }
        let Some(tried_at) = self.tried_at else {
            self.tried_at = Some(now);
            return Some(self.candidates[self.current]);
        };
        let fresh =
            last_handshake.is_some_and(|handshake| now.saturating_sub(handshake) < STALE_AFTER);
        if fresh || now.saturating_sub(tried_at) < TRY_FOR {
            return None;
        }
        if self.candidates.len() == 1 {
            // Nothing else to try; try the same one again later.
            self.tried_at = Some(now);
            return None;
        }
        self.current = (self.current + 1) % self.candidates.len();
        self.tried_at = Some(now);
        Some(self.candidates[self.current])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn addresses() -> Vec<SocketAddr> {
        vec![
            "192.168.1.5:41641".parse().unwrap(),
            "203.0.113.5:41641".parse().unwrap(),
        ]
    }

    #[test]
    fn the_first_candidate_is_tried_first_and_kept_when_it_handshakes() {
        let mut choice = EndpointChoice::new(addresses());
        assert_eq!(choice.next(secs(100), None), Some(addresses()[0]));
        assert_eq!(choice.next(secs(101), None), None, "still within its try");
        assert_eq!(choice.next(secs(110), Some(secs(102))), None, "it answered");
        assert_eq!(choice.next(secs(200), Some(secs(190))), None);
    }

    #[test]
    fn a_silent_candidate_gives_way_to_the_next_and_around() {
        let mut choice = EndpointChoice::new(addresses());
        choice.next(secs(0), None);
        assert_eq!(choice.next(secs(4), None), None);
        assert_eq!(choice.next(secs(6), None), Some(addresses()[1]));
        assert_eq!(
            choice.next(secs(12), None),
            Some(addresses()[0]),
            "wraps around"
        );
    }

    #[test]
    fn a_working_path_is_doubted_only_after_handshakes_stop() {
        let mut choice = EndpointChoice::new(addresses());
        choice.next(secs(0), None);
        choice.next(secs(1), Some(secs(1)));
        assert_eq!(choice.next(secs(150), Some(secs(1))), None);
        assert_eq!(choice.next(secs(400), Some(secs(1))), Some(addresses()[1]));
    }

    #[test]
    fn new_candidates_keep_the_current_one_when_still_offered() {
        let mut choice = EndpointChoice::new(addresses());
        choice.next(secs(0), None);
        choice.next(secs(6), None); // now on the second
        let reordered = vec![addresses()[1], "198.51.100.1:1".parse().unwrap()];
        choice.update(reordered.clone());
        assert_eq!(
            choice.next(secs(7), None),
            None,
            "the current endpoint is still being tried"
        );
        choice.update(vec!["198.51.100.9:9".parse().unwrap()]);
        assert_eq!(
            choice.next(secs(8), None),
            Some("198.51.100.9:9".parse().unwrap())
        );
    }

    #[test]
    fn no_candidates_means_waiting_for_the_peer() {
        let mut choice = EndpointChoice::new(Vec::new());
        assert_eq!(choice.next(secs(0), None), None);
        let mut single = EndpointChoice::new(vec![addresses()[0]]);
        single.next(secs(0), None);
        assert_eq!(single.next(secs(60), None), None);
    }
}
