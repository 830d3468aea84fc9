//! How the coordinator is doing: for a person (`hearth-coordinator
//! health`) and for Prometheus (`/metrics`, which `monitoring/` alerts on).
//!
//! Counts only: no node names, users, addresses or keys, so the numbers can
//! leave the machine without saying who is in the household.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Certificates this close to their end are a problem.
pub const EXPIRY_WARNING_SECONDS: i64 = 14 * 24 * 3600;

/// Nodes by admission state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Admitted.
    pub approved: usize,
    /// Waiting for `nodes approve`.
    pub pending: usize,
    /// Refused by an admin.
    pub rejected: usize,
    /// Taken out until approved again.
    pub expired: usize,
}

/// A snapshot of the coordinator's health.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Nodes by state.
    pub nodes: NodeCounts,
    /// Approved nodes that follow a map stream (agents and Tailscale
    /// clients; not static WireGuard devices, which never connect).
    pub agents: usize,
    /// Of those, connected now.
    pub connected: usize,
    /// Approved tagged nodes (servers, expected to stay up).
    pub tagged: usize,
    /// Of those, connected now.
    pub tagged_connected: usize,
    /// Approved nodes with less than a quarter of their key lifetime left:
    /// agents rotate at a third, so these are not rotating (an agent that
    /// has been off for long, or a Tailscale client that needs `tailscale
    /// up` again).
    pub keys_overdue: usize,
    /// Clients of the embedded relay now.
    pub relay_clients: usize,
    /// Standalone relays configured.
    pub standalone_relays: usize,
    /// Whether a policy is set (none: everything is allowed).
    pub policy: bool,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// The database's own check: `ok`, or what failed.
    pub database_check: String,
    /// Watched certificates: name and end of validity (Unix seconds).
    pub certificates: Vec<(String, i64)>,
}

/// What kind of problem a health problem is: in `health --output json`
/// as `problem_kinds` (beside `problems`, in the same order), so that a
/// program reading it (`hearth status`, which names each waiting device
/// itself) tells them apart without reading sentences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The database fails its check.
    Database,
    /// A certificate has expired.
    CertificateExpired,
    /// A certificate is near its end.
    CertificateExpiring,
    /// Tagged nodes (servers) are not connected.
    ServersOffline,
    /// Nodes' keys are near their end and have not rotated.
    KeysOverdue,
    /// Nodes wait for an admin's approval.
    NodesPending,
}

impl Health {
    /// What needs a person's attention at `now`, most serious first; empty
    /// when all is well.
    pub fn problems(&self, now: i64) -> Vec<String> {
        self.problems_of_kind(now)
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }

    /// [`Health::problems`], each with its kind.
    pub fn problems_of_kind(&self, now: i64) -> Vec<(ProblemKind, String)> {
        let mut problems = Vec::new();
        if self.database_check != "ok" {
            problems.push((
                ProblemKind::Database,
                format!("the database fails its check: {}", self.database_check),
            ));
        }
        for (name, not_after) in &self.certificates {
            let left = not_after - now;
            if left <= 0 {
                problems.push((
                    ProblemKind::CertificateExpired,
                    format!("the {name} certificate has expired"),
                ));
            } else if left < EXPIRY_WARNING_SECONDS {
                problems.push((
                    ProblemKind::CertificateExpiring,
                    format!("the {name} certificate expires in {}", days(left)),
                ));
            }
        }
        let offline_servers = self.tagged - self.tagged_connected;
        if offline_servers > 0 {
            problems.push((
                ProblemKind::ServersOffline,
                format!(
                    "{offline_servers} of {} tagged nodes (servers) are not connected",
                    self.tagged
                ),
            ));
        }
        if self.keys_overdue > 0 {
            problems.push((
                ProblemKind::KeysOverdue,
                format!(
                    "{} nodes' keys are near their end and have not rotated",
                    self.keys_overdue
                ),
            ));
        }
        if self.nodes.pending > 0 {
            problems.push((
                ProblemKind::NodesPending,
                format!("{} nodes wait for `nodes approve`", self.nodes.pending),
            ));
        }
        problems
    }

    /// The summary a person reads.
    pub fn render_text(&self, now: i64) -> String {
        let mut out = String::new();
        let problems = self.problems(now);
        let _ = writeln!(
            out,
            "{}",
            if problems.is_empty() {
                "healthy"
            } else {
                "needs attention"
            }
        );
        for problem in &problems {
            let _ = writeln!(out, "  ! {problem}");
        }
        let _ = writeln!(
            out,
            "nodes       {} approved, {} pending, {} rejected, {} expired",
            self.nodes.approved, self.nodes.pending, self.nodes.rejected, self.nodes.expired
        );
        let _ = writeln!(
            out,
            "connected   {} of {} agents ({} of {} tagged)",
            self.connected, self.agents, self.tagged_connected, self.tagged
        );
        let _ = writeln!(
            out,
            "relay       {} clients on the embedded relay, {} standalone relays",
            self.relay_clients, self.standalone_relays
        );
        let _ = writeln!(
            out,
            "policy      {}",
            if self.policy {
                "set"
            } else {
                "none (every node may reach every other)"
            }
        );
        let _ = writeln!(
            out,
            "database    {} ({})",
            self.database, self.database_check
        );
        for (name, not_after) in &self.certificates {
            let _ = writeln!(out, "certificate {name}: {} left", days(not_after - now));
        }
        out
    }

    /// The numbers in Prometheus's text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(
                out,
                "# HELP hearth_coordinator_{name} {help}\n# TYPE hearth_coordinator_{name} gauge"
            );
        };
        gauge(&mut out, "nodes", "Nodes by admission state.");
        for (state, count) in [
            ("approved", self.nodes.approved),
            ("pending", self.nodes.pending),
            ("rejected", self.nodes.rejected),
            ("expired", self.nodes.expired),
        ] {
            let _ = writeln!(out, "hearth_coordinator_nodes{{state=\"{state}\"}} {count}");
        }
        for (name, help, value) in [
            (
                "agents",
                "Approved nodes that follow a map stream.",
                self.agents,
            ),
            (
                "agents_connected",
                "Of those, connected now.",
                self.connected,
            ),
            (
                "tagged_nodes",
                "Approved tagged nodes (servers).",
                self.tagged,
            ),
            (
                "tagged_nodes_connected",
                "Of those, connected now.",
                self.tagged_connected,
            ),
            (
                "node_keys_overdue",
                "Approved nodes with under a quarter of their key lifetime left.",
                self.keys_overdue,
            ),
            (
                "policy_set",
                "1 when a policy is set.",
                usize::from(self.policy),
            ),
            (
                "database_ok",
                "1 when the database passes its check.",
                usize::from(self.database_check == "ok"),
            ),
        ] {
            gauge(&mut out, name, help);
            let _ = writeln!(out, "hearth_coordinator_{name} {value}");
        }
        gauge(
            &mut out,
            "certificate_expiry_timestamp_seconds",
            "When a certificate stops being valid.",
        );
        for (name, not_after) in &self.certificates {
            let _ = writeln!(
                out,
                "hearth_coordinator_certificate_expiry_timestamp_seconds{{certificate=\"{name}\"}} {not_after}"
            );
        }
        out
    }
}

/// `seconds` as days (or hours, under two days).
fn days(seconds: i64) -> String {
    if seconds < 2 * 24 * 3600 {
        format!("{} hours", seconds.max(0) / 3600)
    } else {
        format!("{} days", seconds / (24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn healthy() -> Health {
        Health {
            nodes: NodeCounts {
                approved: 5,
                ..NodeCounts::default()
            },
            agents: 5,
            connected: 3,
            tagged: 2,
            tagged_connected: 2,
            database: "sqlite".into(),
            database_check: "ok".into(),
            certificates: vec![("server".into(), NOW + 365 * 86_400)],
            ..Health::default()
        }
    }

    #[test]
    fn a_healthy_coordinator_has_no_problems() {
        let health = healthy();
        assert!(health.problems(NOW).is_empty());
        assert!(health.render_text(NOW).starts_with("healthy\n"));
    }

    #[test]
    fn problems_name_what_to_do() {
        let mut health = healthy();
        health.tagged_connected = 1;
        health.nodes.pending = 2;
        health.certificates = vec![("server".into(), NOW + 3 * 86_400)];
        health.database_check = "database: connection refused".into();
        let problems = health.problems(NOW);
        assert_eq!(
            problems,
            [
                "the database fails its check: database: connection refused",
                "the server certificate expires in 3 days",
                "1 of 2 tagged nodes (servers) are not connected",
                "2 nodes wait for `nodes approve`",
            ]
        );
        assert!(
            health
                .render_text(NOW)
                .starts_with("needs attention\n  ! the database")
        );
        health.certificates = vec![("node_ca".into(), NOW - 1)];
        assert!(
            health
                .problems(NOW)
                .contains(&"the node_ca certificate has expired".to_owned())
        );
    }

    #[test]
    fn metrics_carry_counts_and_no_names() {
        let text = healthy().render_metrics();
        assert!(text.contains("hearth_coordinator_nodes{state=\"approved\"} 5\n"));
        assert!(text.contains("hearth_coordinator_agents_connected 3\n"));
        assert!(text.contains(&format!(
            "hearth_coordinator_certificate_expiry_timestamp_seconds{{certificate=\"server\"}} {}\n",
            NOW + 365 * 86_400
        )));
        assert!(text.contains("hearth_coordinator_database_ok 1\n"));
    }
}
