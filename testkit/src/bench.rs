//! What the benchmarks share: order statistics, time per call, and what a
//! process has used (from /proc).

use std::time::Instant;

/// The median of `values` (sorts them).
pub fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}

/// The value at `fraction` (0 to 1) of `values`, nearest rank (sorts them).
pub fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * fraction).round() as usize]
}

/// Nanoseconds per call of `work` (given the call's index), the median of
/// 7 runs of `count` calls.
pub fn per_call(count: u32, mut work: impl FnMut(u32)) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for index in 0..count {
                work(index);
            }
            start.elapsed().as_nanos() as f64 / f64::from(count)
        })
        .collect();
    median(&mut runs)
}

/// CPU seconds (user + system) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |times| {
        times
            .iter()
            .filter_map(|field| field.parse::<f64>().ok())
            .sum()
    });
    ticks / 100.0
}

/// Peak resident memory of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// `pid` and every process descending from it (OpenClaw's gateway runs
/// workers as child processes).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|field| field.parse::<u32>().ok());
            if let Some(parent) = parent {
                parents.push((child, parent));
            }
        }
    }
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(
            parents
                .iter()
                .filter(|(_, of)| *of == parent)
                .map(|(child, _)| *child),
        );
        index += 1;
    }
    tree
}

/// Resident memory of `pid` and its descendants now, in MiB.
pub fn tree_rss_mib(pid: u32) -> f64 {
    process_tree(pid)
        .into_iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum::<f64>()
        / 1024.0
}

/// CPU seconds used by `pid` and its living descendants.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    process_tree(pid).into_iter().map(cpu_seconds).sum()
}

/// A process started by a benchmark together with the children it starts:
/// stopped (children first, by their ids) when dropped, so that a failed
/// run leaves nothing behind.
pub struct Tree(pub std::process::Child);

impl Tree {
    /// The process's id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for pid in process_tree(self.0.id()).into_iter().rev() {
            // The ids are this process's child and its descendants, read
            // just now.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = self.0.wait();
    }
}
