//! What the load benchmarks share (`fanout`, `reports`): a release
//! coordinator sized for thousands of connections, what it spends, and the
//! spread of the times measured.

use std::path::Path;
use std::time::Duration;

use hearth_testkit::control_plane::Server;

/// A coordinator (release build, SQLite in `dir`) that takes thousands of
/// registrations and connections from loopback.
pub fn coordinator(dir: &Path) -> Server {
    Server::builder(&dir.join("state"))
        .arg("--register-burst")
        .arg("100000")
        .arg("--max-connections")
        .arg("16384")
        .arg("--max-connections-per-source")
        .arg("8192")
        .descriptor_limit(20_000)
        .start()
}

/// Process `pid`'s CPU seconds so far and its resident memory (KiB).
pub fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|times| {
            times
                .iter()
                .filter_map(|time| time.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

/// p50, p99 and max of `times`, in milliseconds.
pub fn spread(times: &mut [Duration]) -> (f64, f64, f64) {
    assert!(!times.is_empty(), "nothing was measured");
    times.sort();
    let at = |quantile: f64| {
        times[((times.len() as f64 * quantile) as usize).min(times.len() - 1)].as_secs_f64()
            * 1000.0
    };
    (at(0.5), at(0.99), at(1.0))
}
