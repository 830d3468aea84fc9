//! Which due reminders and scheduled questions run now. Every member's
//! jobs draw on their own budget of firings (a burst, then a steady rate
//! an hour), so one member's hundreds of "every minute" jobs cannot flood
//! a room; a reminder (no model) fires at once; a scheduled question waits
//! for its turn to ask the model ([`crate::turns`]: a few at once, one per
//! member, members in turn), so one member's questions never hold up
//! another's reminder or question. Pure: the scheduler passes the due jobs
//! and the time, fires what this says, and says when each has finished.

use std::collections::{HashMap, HashSet};

use crate::turns::{FairQueue, Limits as TurnLimits};

/// A job that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueJob {
    /// Its id.
    pub id: i64,
    /// The member whose it is.
    pub member: String,
    /// Whether firing it asks the model (a scheduled question).
    pub asks_model: bool,
}

/// The dispatcher's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Firings of one member's jobs at once, before the rate applies.
    pub burst: u32,
    /// Firings of one member's jobs an hour, after the burst.
    pub per_hour: u32,
    /// Scheduled questions asked of the model at once, from everyone.
    pub asking_at_once: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            burst: 30,
            per_hour: 60,
            asking_at_once: 2,
        }
    }
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The jobs to fire now, by id.
    pub fire: Vec<i64>,
    /// When a member's budget next allows a job that is due and waits for
    /// it (Unix ms), if one does.
    pub wake_at: Option<i64>,
}

/// A member's budget: tokens, and when they were last counted (Unix ms).
#[derive(Clone, Copy, Debug)]
struct Budget {
    tokens: f64,
    counted_at: i64,
}

/// The jobs running and waiting, and every member's budget.
#[derive(Debug)]
pub struct Dispatcher {
    limits: Limits,
    budgets: HashMap<String, Budget>,
    /// Questions waiting for their turn at the model, by job id.
    questions: FairQueue<i64>,
    waiting: HashSet<i64>,
    running: HashSet<i64>,
}

impl Dispatcher {
    /// A dispatcher with `limits`.
    pub fn new(limits: Limits) -> Dispatcher {
        Dispatcher {
            limits,
            budgets: HashMap::new(),
            questions: FairQueue::new(TurnLimits {
                in_flight: limits.asking_at_once.max(1),
                in_flight_per_user: 1,
                queued_per_user: 4,
            }),
            waiting: HashSet::new(),
            running: HashSet::new(),
        }
    }

    fn per_ms(&self) -> f64 {
        f64::from(self.limits.per_hour.max(1)) / 3_600_000.0
    }

    /// `member`'s tokens at `now`.
    fn tokens(&mut self, member: &str, now: i64) -> f64 {
        let burst = f64::from(self.limits.burst.max(1));
        let per_ms = self.per_ms();
        let budget = self.budgets.entry(member.to_owned()).or_insert(Budget {
            tokens: burst,
            counted_at: now,
        });
        let elapsed = now.saturating_sub(budget.counted_at).max(0);
        budget.tokens = (budget.tokens + elapsed as f64 * per_ms).min(burst);
        budget.counted_at = now.max(budget.counted_at);
        budget.tokens
    }

    /// When `member` next has a whole token (Unix ms).
    fn refilled_at(&self, member: &str, now: i64) -> i64 {
        let missing = self
            .budgets
            .get(member)
            .map_or(0.0, |budget| (1.0 - budget.tokens).max(0.0));
        now.saturating_add((missing / self.per_ms()).ceil() as i64 + 1)
    }

    fn spend(&mut self, member: &str) {
        if let Some(budget) = self.budgets.get_mut(member) {
            budget.tokens -= 1.0;
        }
    }

    /// What to fire of the `due` jobs (soonest first) at `now` (Unix ms).
    /// A job fired is running until [`Dispatcher::finished`]; one waiting
    /// for its turn or its member's budget is due again next time.
    pub fn plan(&mut self, due: &[DueJob], now: i64) -> Plan {
        let mut plan = Plan::default();
        for job in due {
            if self.running.contains(&job.id) || self.waiting.contains(&job.id) {
                continue;
            }
            if self.tokens(&job.member, now) < 1.0 {
                let at = self.refilled_at(&job.member, now);
                plan.wake_at = Some(plan.wake_at.map_or(at, |earlier| earlier.min(at)));
                continue;
            }
            if job.asks_model {
                if self.questions.push(&job.member, job.id).is_ok() {
                    self.spend(&job.member);
                    self.waiting.insert(job.id);
                }
                // Else the member has enough waiting: it is due next time.
            } else {
                self.spend(&job.member);
                self.running.insert(job.id);
                plan.fire.push(job.id);
            }
        }
        while let Some((_, id)) = self.questions.take_turn() {
            self.waiting.remove(&id);
            self.running.insert(id);
            plan.fire.push(id);
        }
        plan
    }

    /// Job `id` of `member` has finished firing (`asked_model`: it was a
    /// scheduled question, whose turn ends).
    pub fn finished(&mut self, id: i64, member: &str, asked_model: bool) {
        if self.running.remove(&id) && asked_model {
            self.questions.done(member);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, member: &str, asks_model: bool) -> DueJob {
        DueJob {
            id,
            member: member.into(),
            asks_model,
        }
    }

    #[test]
    fn one_members_questions_never_hold_up_anothers_reminder() {
        let mut dispatcher = Dispatcher::new(Limits::default());
        let mut due: Vec<DueJob> = (0..200).map(|id| job(id, "ada", true)).collect();
        due.push(job(1000, "ben", false));
        let plan = dispatcher.plan(&due, 0);
        assert!(plan.fire.contains(&1000), "ben's reminder fires at once");
        assert_eq!(
            plan.fire.iter().filter(|id| **id < 200).count(),
            1,
            "one of ada's questions at a time"
        );
        // ada's first is still being answered: nothing more of hers.
        let again = dispatcher.plan(&due, 1);
        assert!(again.fire.is_empty(), "{again:?}");
        // ben's question goes before ada's next ones.
        due.push(job(1001, "ben", true));
        let plan = dispatcher.plan(&due, 2);
        assert_eq!(plan.fire, [1001]);
        dispatcher.finished(0, "ada", true);
        let plan = dispatcher.plan(&due, 3);
        assert_eq!(plan.fire, [1], "then ada's next");
        // Two are asked at once: carol's waits for one of them.
        due.push(job(2000, "carol", true));
        assert!(dispatcher.plan(&due, 4).fire.is_empty());
        dispatcher.finished(1001, "ben", true);
        assert_eq!(dispatcher.plan(&due, 5).fire, [2000]);
    }

    #[test]
    fn a_members_jobs_fire_within_a_burst_then_a_steady_rate() {
        let limits = Limits::default();
        let mut dispatcher = Dispatcher::new(limits);
        let due: Vec<DueJob> = (0..200).map(|id| job(id, "ada", false)).collect();
        let plan = dispatcher.plan(&due, 0);
        assert_eq!(plan.fire.len(), limits.burst as usize);
        let wake = plan.wake_at.expect("the rest wait for the budget");
        assert!(wake > 0 && wake <= 61_000, "{wake}");
        for id in plan.fire {
            dispatcher.finished(id, "ada", false);
        }
        let plan = dispatcher.plan(&due, 30_000);
        assert!(plan.fire.is_empty(), "nothing new within half a minute");
        let plan = dispatcher.plan(&due, wake);
        assert_eq!(plan.fire.len(), 1, "one a minute after the burst");
        // Another member's budget is their own.
        let plan = dispatcher.plan(&[job(500, "ben", false)], wake);
        assert_eq!(plan.fire, [500]);
    }

    #[test]
    fn a_job_running_or_waiting_is_not_fired_twice() {
        let mut dispatcher = Dispatcher::new(Limits::default());
        let due = [
            job(1, "ada", false),
            job(2, "ada", true),
            job(3, "ada", true),
        ];
        assert_eq!(dispatcher.plan(&due, 0).fire, [1, 2]);
        assert!(dispatcher.plan(&due, 1).fire.is_empty(), "3 waits for 2");
        dispatcher.finished(1, "ada", false);
        dispatcher.finished(2, "ada", true);
        assert_eq!(
            dispatcher.plan(&due, 2).fire,
            [1, 3],
            "due again: fired again, the waiting question first"
        );
    }
}
