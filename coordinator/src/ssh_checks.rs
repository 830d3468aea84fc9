//! Tailscale SSH's `check` rules: a session a `check` rule would let in
//! waits until an admin approves it from the CLI (`hearth-coordinator ssh
//! approve ID`, as Headscale's `auth approve`), and an approval lets the
//! same person in to the same node as the same local user for the rule's
//! check period without asking again.
//!
//! The node the session is for asks on its user's behalf (the rule's
//! `holdAndDelegate` URL, over its control connection); [`SshChecks`] is
//! the pure bookkeeping, the use cases follow it.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_control::wire::NodeId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How long a check waits for an admin (seconds), as a client waits for
/// its action (30 minutes).
pub const CHECK_WAIT: i64 = 30 * 60;
/// Checks waiting at once, for every node together.
pub const MAX_PENDING: usize = 256;
/// Checks waiting at once for one node: a node cannot take the slots of
/// the others (it asks on its own behalf only).
pub const MAX_PENDING_PER_NODE: usize = 8;
/// Longest user name a check may name (POSIX allows 32; some systems more).
pub const MAX_USER_NAME: usize = 64;
/// How long one request for a decision is held before it is answered
/// "still waiting" (the client asks again at once).
pub const DECISION_HOLD: Duration = Duration::from_secs(60);

/// A session waiting for an admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCheck {
    /// What the admin approves it by.
    pub id: u64,
    /// The node the person connects from.
    pub from: NodeId,
    /// The node they log in to.
    pub to: NodeId,
    /// The user they asked to log in as.
    pub ssh_user: String,
    /// The local user that is, on the node.
    pub local_user: String,
    /// How long an approval lasts (seconds).
    pub period: u64,
    /// When it started waiting (Unix seconds).
    pub since: i64,
}

/// Where a check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckState {
    /// Still waiting for an admin.
    Waiting,
    /// Approved: let it in.
    Approved,
    /// Denied, or gone (expired, unknown): turn it away.
    Denied,
}

#[derive(Clone, Debug)]
struct Approval {
    from: NodeId,
    to: NodeId,
    local_user: String,
    until: i64,
}

/// Checks waiting, decisions not yet collected, approvals still good.
#[derive(Debug, Default)]
pub struct SshChecks {
    next_id: u64,
    pending: BTreeMap<u64, PendingCheck>,
    /// Decisions not yet collected: the node they are for, and whether
    /// it may let the session in.
    decided: BTreeMap<u64, (NodeId, bool)>,
    approvals: Vec<Approval>,
}

/// What a node asking about a session gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asked {
    /// An approval still covers it.
    Approved,
    /// It waits as check `id` (new, or the same one asked again).
    Waiting(u64),
}

impl SshChecks {
    fn forget_old(&mut self, now: i64) {
        self.approvals.retain(|approval| approval.until > now);
        let expired: Vec<u64> = self
            .pending
            .values()
            .filter(|check| now - check.since > CHECK_WAIT)
            .map(|check| check.id)
            .collect();
        for id in expired {
            self.pending.remove(&id);
        }
    }

    /// Node `to` asks whether `from` may log in as `local_user` (`ssh_user`
    /// asked for) under a rule whose approvals last `period` seconds.
    pub fn ask(
        &mut self,
        from: NodeId,
        to: NodeId,
        ssh_user: &str,
        local_user: &str,
        period: u64,
        now: i64,
    ) -> Result<Asked> {
        self.forget_old(now);
        for (what, name) in [("SSH user", ssh_user), ("local user", local_user)] {
            check_user_text(what, name)?;
        }
        let covered = self.approvals.iter().any(|approval| {
            approval.from == from && approval.to == to && approval.local_user == local_user
        });
        if covered {
            return Ok(Asked::Approved);
        }
        if let Some(waiting) = self
            .pending
            .values()
            .find(|check| check.from == from && check.to == to && check.local_user == local_user)
        {
            return Ok(Asked::Waiting(waiting.id));
        }
        let of_this_node = self.pending.values().filter(|check| check.to == to).count();
        if of_this_node >= MAX_PENDING_PER_NODE || self.pending.len() >= MAX_PENDING {
            return Err(Error::RateLimited);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.pending.insert(
            id,
            PendingCheck {
                id,
                from,
                to,
                ssh_user: ssh_user.to_owned(),
                local_user: local_user.to_owned(),
                period,
                since: now,
            },
        );
        Ok(Asked::Waiting(id))
    }

    /// Where check `id` of node `to` stands; a decision is collected once,
    /// by the node it is for (another node asking is told it was denied,
    /// and the decision stays for its node).
    pub fn state(&mut self, id: u64, to: NodeId, now: i64) -> CheckState {
        self.forget_old(now);
        if self.pending.get(&id).is_some_and(|check| check.to == to) {
            return CheckState::Waiting;
        }
        match self.decided.get(&id) {
            Some(&(node, approved)) if node == to => {
                self.decided.remove(&id);
                if approved {
                    CheckState::Approved
                } else {
                    CheckState::Denied
                }
            }
            _ => CheckState::Denied,
        }
    }

    /// An admin approves (or denies) check `id`.
    pub fn decide(&mut self, id: u64, approve: bool, now: i64) -> Result<PendingCheck> {
        self.forget_old(now);
        let check = self
            .pending
            .remove(&id)
            .ok_or_else(|| Error::NotFound(format!("SSH check {id}")))?;
        if approve {
            self.approvals.push(Approval {
                from: check.from,
                to: check.to,
                local_user: check.local_user.clone(),
                until: now.saturating_add(i64::try_from(check.period).unwrap_or(i64::MAX)),
            });
        }
        self.decided.insert(id, (check.to, approve));
        Ok(check)
    }

    /// The checks waiting now.
    pub fn waiting(&mut self, now: i64) -> Vec<PendingCheck> {
        self.forget_old(now);
        self.pending.values().cloned().collect()
    }
}

/// Refuses a user name a node sent that no system has: empty, too long,
/// or holding control or formatting characters (which would reach the
/// admin's terminal through `ssh checks`).
fn check_user_text(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_USER_NAME
        || name.chars().any(crate::names::is_hidden_character)
    {
        return Err(Error::BadRequest(format!(
            "{what} {:?} is not a user name",
            crate::names::visible(name)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_lets_the_same_session_in_for_its_period_only() {
        let mut checks = SshChecks::default();
        let Ok(Asked::Waiting(id)) = checks.ask(1, 2, "root", "root", 3600, 1000) else {
            panic!("a first session waits");
        };
        assert_eq!(
            checks.ask(1, 2, "root", "root", 3600, 1001).unwrap(),
            Asked::Waiting(id),
            "asked again: the same check"
        );
        assert_eq!(checks.state(id, 2, 1002), CheckState::Waiting);
        assert_eq!(
            checks.state(id, 3, 1002),
            CheckState::Denied,
            "another node's"
        );
        checks.decide(id, true, 1010).unwrap();
        assert_eq!(checks.state(id, 2, 1011), CheckState::Approved);
        assert_eq!(
            checks.ask(1, 2, "root", "root", 3600, 2000).unwrap(),
            Asked::Approved
        );
        assert!(
            matches!(
                checks.ask(1, 2, "alice", "alice", 3600, 2000).unwrap(),
                Asked::Waiting(_)
            ),
            "another local user asks again"
        );
        assert!(
            matches!(
                checks.ask(1, 2, "root", "root", 3600, 4611).unwrap(),
                Asked::Waiting(_)
            ),
            "after the period"
        );
        assert!(checks.decide(id, true, 4611).is_err(), "decided once");
    }

    #[test]
    fn a_denial_turns_the_session_away_and_old_checks_go() {
        let mut checks = SshChecks::default();
        let Ok(Asked::Waiting(id)) = checks.ask(1, 2, "root", "root", 60, 0) else {
            panic!("waits");
        };
        checks.decide(id, false, 5).unwrap();
        assert_eq!(checks.state(id, 2, 6), CheckState::Denied);
        let Ok(Asked::Waiting(old)) = checks.ask(3, 2, "root", "root", 60, 0) else {
            panic!("waits");
        };
        assert_eq!(checks.waiting(CHECK_WAIT + 1), Vec::new(), "expired");
        assert_eq!(checks.state(old, 2, CHECK_WAIT + 1), CheckState::Denied);
        for from in 0..MAX_PENDING_PER_NODE as u64 {
            checks
                .ask(from, 9, "root", "root", 60, CHECK_WAIT + 2)
                .unwrap();
        }
        assert!(
            checks
                .ask(999, 9, "root", "root", 60, CHECK_WAIT + 2)
                .is_err()
        );
    }

    #[test]
    fn one_node_cannot_take_the_slots_of_the_others() {
        let mut checks = SshChecks::default();
        let mut refused = 0;
        for from in 0..70 {
            if checks
                .ask(from, 9, "root", &format!("user{from}"), 60, 0)
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 70 - MAX_PENDING_PER_NODE);
        assert!(
            matches!(
                checks.ask(1, 2, "root", "root", 60, 0),
                Ok(Asked::Waiting(_))
            ),
            "another node's real check still waits for the admin"
        );
        for node in 10..10 + (MAX_PENDING / MAX_PENDING_PER_NODE) as u64 {
            for from in 0..MAX_PENDING_PER_NODE as u64 {
                let _ = checks.ask(from, node, "root", "root", 60, 0);
            }
        }
        assert!(
            checks.ask(1, 3, "root", "root", 60, 0).is_err(),
            "a bound for all"
        );
    }

    #[test]
    fn a_decision_is_collected_only_by_the_node_it_is_for() {
        let mut checks = SshChecks::default();
        let Ok(Asked::Waiting(id)) = checks.ask(1, 2, "root", "root", 60, 0) else {
            panic!("waits");
        };
        checks.decide(id, true, 1).unwrap();
        assert_eq!(checks.state(id, 7, 2), CheckState::Denied, "another node");
        assert_eq!(
            checks.state(id, 2, 2),
            CheckState::Approved,
            "the decision stayed for the node it is for"
        );
        assert_eq!(checks.state(id, 2, 3), CheckState::Denied, "collected once");
    }

    #[test]
    fn user_names_with_terminal_controls_are_refused() {
        let mut checks = SshChecks::default();
        for bad in [
            "",
            "root\u{1b}]0;owned\u{7}",
            "a\nb",
            "evil\u{202e}toor",
            &"a".repeat(65),
        ] {
            assert!(checks.ask(1, 2, "root", bad, 60, 0).is_err(), "{bad:?}");
            assert!(checks.ask(1, 2, bad, "root", 60, 0).is_err(), "{bad:?}");
        }
        assert!(checks.ask(1, 2, "alice", "alice.b-c_d", 60, 0).is_ok());
    }
}
