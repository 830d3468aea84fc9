//! Measurements between lab hosts for the benches: TCP throughput with
//! iperf3 and round trips with ping.

use std::net::IpAddr;
use std::time::Duration;

use super::{Host, Lab};

impl Lab {
    /// TCP from `from` to `address` (served by an `iperf3 -s -1` started
    /// in `to`) for `seconds`, in Mbit/s as received.
    pub fn iperf(&mut self, from: &Host, to: &Host, address: IpAddr, seconds: u32) -> f64 {
        let mut server = self.command(to, "iperf3");
        server.args(["-s", "-1", "--forceflush"]);
        // The log is appended to by each server: this one listens once it
        // has said so one more time (the words of an earlier one say
        // nothing, and a client let go too soon was refused).
        let label = format!("iperf3-server-{}", to.name);
        let log = self.dir.path().join(format!("{label}.log"));
        let listening = |text: &str| text.matches("Server listening").count();
        let before = listening(&std::fs::read_to_string(&log).unwrap_or_default());
        let mut server = self.spawn(to, &label, server);
        crate::wait_until(Duration::from_secs(5), || {
            listening(&server.log_text()) > before
        })
        .expect("iperf3 listens");
        let output = self
            .command(from, "iperf3")
            .args(["-c", &address.to_string(), "-t", &seconds.to_string(), "-J"])
            .output()
            .expect("iperf3 runs");
        let _ = server.wait(Duration::from_secs(5));
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("iperf3 prints JSON");
        report["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or_else(|| {
                panic!(
                    "iperf3 measured no rate: {}\nthe server said: {}",
                    report["error"],
                    server.log_text()
                )
            })
            / 1e6
    }

    /// `count` pings from `from` to `address` 20 ms apart: the round trips
    /// that came back, in ms.
    pub fn ping_times(&self, from: &Host, address: IpAddr, count: u32) -> Vec<f64> {
        let output = self
            .command(from, "ping")
            .args([
                "-c",
                &count.to_string(),
                "-i",
                "0.02",
                "-W",
                "1",
                &address.to_string(),
            ])
            .output()
            .expect("ping runs");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split("time=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter_map(|ms| ms.parse().ok())
            .collect()
    }
}
