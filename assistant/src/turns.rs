//! Questions for the assistant, taken in turn: at most a few answered at
//! once, at most one per person at a time, and the next one always from the
//! person who waited longest for a turn, so that one member asking a dozen
//! questions does not keep everyone else from the assistant. Household
//! messaging takes members' questions through it, and the gateway's
//! scheduler their scheduled ones ([`crate::dispatch`]). Pure.

use std::collections::{HashMap, VecDeque};

/// The queue's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Questions answered at once, from everyone.
    pub in_flight: usize,
    /// Questions answered at once for one person.
    pub in_flight_per_user: usize,
    /// Questions one person may have waiting.
    pub queued_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            in_flight: 4,
            in_flight_per_user: 1,
            queued_per_user: 4,
        }
    }
}

/// Why a question was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{waiting} earlier questions of yours are still waiting")]
pub struct TooMany {
    /// How many of the person's questions wait.
    pub waiting: usize,
}

/// Questions waiting and being answered, by person.
#[derive(Debug)]
pub struct FairQueue<T> {
    limits: Limits,
    waiting: HashMap<String, VecDeque<T>>,
    answering: HashMap<String, usize>,
    /// People with waiting questions, in the order their turn comes.
    turns: VecDeque<String>,
    total_answering: usize,
}

impl<T> FairQueue<T> {
    /// An empty queue with `limits`.
    pub fn new(limits: Limits) -> FairQueue<T> {
        FairQueue {
            limits,
            waiting: HashMap::new(),
            answering: HashMap::new(),
            turns: VecDeque::new(),
            total_answering: 0,
        }
    }

    /// Queues `question` of `user`.
    pub fn push(&mut self, user: &str, question: T) -> Result<(), TooMany> {
        let queue = self.waiting.entry(user.to_owned()).or_default();
        if queue.len() >= self.limits.queued_per_user {
            return Err(TooMany {
                waiting: queue.len(),
            });
        }
        queue.push_back(question);
        if !self.turns.iter().any(|waiting| waiting == user) {
            self.turns.push_back(user.to_owned());
        }
        Ok(())
    }

    /// The next question to answer now, if the limits allow one; it counts
    /// as being answered until [`FairQueue::done`].
    pub fn take_turn(&mut self) -> Option<(String, T)> {
        if self.total_answering >= self.limits.in_flight {
            return None;
        }
        let position = self.turns.iter().position(|user| {
            self.answering.get(user).copied().unwrap_or(0) < self.limits.in_flight_per_user
        })?;
        let user = self.turns.remove(position)?;
        let queue = self.waiting.get_mut(&user)?;
        let question = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&user);
        } else {
            self.turns.push_back(user.clone());
        }
        *self.answering.entry(user.clone()).or_default() += 1;
        self.total_answering += 1;
        Some((user, question))
    }

    /// A question of `user` was answered (or failed).
    pub fn done(&mut self, user: &str) {
        if let Some(count) = self.answering.get_mut(user) {
            *count -= 1;
            if *count == 0 {
                self.answering.remove(user);
            }
            self.total_answering -= 1;
        }
    }

    /// Questions waiting, from everyone.
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_asking_a_dozen_does_not_hold_up_the_next() {
        let mut queue = FairQueue::new(Limits::default());
        let mut refused = 0;
        for number in 0..12 {
            if queue.push("ada", number).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 8, "four wait, the rest are refused");
        assert_eq!(queue.take_turn(), Some(("ada".into(), 0)));
        assert_eq!(queue.take_turn(), None, "one at a time per person");
        queue.push("ben", 100).unwrap();
        assert_eq!(
            queue.take_turn(),
            Some(("ben".into(), 100)),
            "ben goes before ada's second"
        );
        queue.done("ada");
        assert_eq!(queue.take_turn(), Some(("ada".into(), 1)));
        assert_eq!(queue.waiting(), 2);
    }

    #[test]
    fn turns_go_round_and_the_total_is_capped() {
        let limits = Limits {
            in_flight: 2,
            in_flight_per_user: 2,
            queued_per_user: 10,
        };
        let mut queue = FairQueue::new(limits);
        for number in 0..3 {
            queue.push("ada", number).unwrap();
            queue.push("ben", 10 + number).unwrap();
        }
        assert_eq!(queue.take_turn(), Some(("ada".into(), 0)));
        assert_eq!(queue.take_turn(), Some(("ben".into(), 10)));
        assert_eq!(queue.take_turn(), None, "two at once");
        queue.done("ben");
        assert_eq!(queue.take_turn(), Some(("ada".into(), 1)));
        queue.done("ada");
        queue.done("ada");
        assert_eq!(queue.take_turn(), Some(("ben".into(), 11)));
        assert_eq!(queue.take_turn(), Some(("ada".into(), 2)));
        queue.done("nobody");
        assert_eq!(queue.waiting(), 1);
    }
}
