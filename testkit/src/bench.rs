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
