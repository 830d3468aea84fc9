//! Prometheus metrics: request outcomes, active streams, latencies, tokens,
//! backend health. Never any payload.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hearth_llm::router::EndpointStatus;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    outcomes: Mutex<BTreeMap<(&'static str, String), u64>>,
    active_streams: AtomicI64,
    first_token: Histogram,
    duration: Histogram,
    tokens: AtomicU64,
    last_rate_millis: AtomicU64,
}

/// Counts an active stream while alive.
pub struct ActiveStream<'a> {
    metrics: &'a Metrics,
}

impl Drop for ActiveStream<'_> {
    fn drop(&mut self) {
        self.metrics.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one request to `endpoint` ending with `outcome` (a status or error code).
    pub fn outcome(&self, endpoint: &'static str, outcome: &str) {
        let mut outcomes = hearth_runtime::lock(&self.outcomes);
        *outcomes.entry((endpoint, outcome.to_owned())).or_default() += 1;
    }

    /// Counts a stream as started (pair with [`Metrics::stream_ended`]).
    pub fn stream_started(&self) {
        self.active_streams.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream as ended.
    pub fn stream_ended(&self) {
        self.active_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Marks a stream active until the guard drops.
    pub fn stream(&self) -> ActiveStream<'_> {
        self.active_streams.fetch_add(1, Ordering::Relaxed);
        ActiveStream { metrics: self }
    }

    /// Records a time to first token.
    pub fn first_token(&self, elapsed: Duration) {
        self.first_token.observe(elapsed);
    }

    /// Records a finished reply of `tokens` tokens taking `elapsed`.
    pub fn finished(&self, tokens: u64, elapsed: Duration) {
        self.duration.observe(elapsed);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
        if elapsed > Duration::ZERO {
            let rate = tokens as f64 / elapsed.as_secs_f64();
            self.last_rate_millis
                .store((rate * 1000.0) as u64, Ordering::Relaxed);
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self, backends: &[EndpointStatus]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hearth_gateway_requests_total Requests by endpoint and outcome.\n# TYPE hearth_gateway_requests_total counter"
        );
        for ((endpoint, outcome), count) in hearth_runtime::lock(&self.outcomes).iter() {
            let _ = writeln!(
                out,
                "hearth_gateway_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_gateway_active_streams Replies streaming now.\n# TYPE hearth_gateway_active_streams gauge\nhearth_gateway_active_streams {}",
            self.active_streams.load(Ordering::Relaxed)
        );
        self.first_token.render(
            "hearth_gateway_first_token_seconds",
            "Time from request to first token.",
            &mut out,
        );
        self.duration.render(
            "hearth_gateway_reply_seconds",
            "Time from request to the end of the reply.",
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP hearth_gateway_tokens_total Tokens generated.\n# TYPE hearth_gateway_tokens_total counter\nhearth_gateway_tokens_total {}",
            self.tokens.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hearth_gateway_tokens_per_second Generation rate of the last reply.\n# TYPE hearth_gateway_tokens_per_second gauge\nhearth_gateway_tokens_per_second {}",
            self.last_rate_millis.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP hearth_gateway_backend_up Whether a backend endpoint answered its last probe or request.\n# TYPE hearth_gateway_backend_up gauge"
        );
        for status in backends {
            let _ = writeln!(
                out,
                "hearth_gateway_backend_up{{provider=\"{}\",endpoint=\"{}\"}} {}",
                status.provider,
                status.endpoint,
                u8::from(status.healthy)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_gateway_backend_cooldown_seconds Seconds a backend still rests after failures (circuit open while > 0).\n# TYPE hearth_gateway_backend_cooldown_seconds gauge"
        );
        for status in backends {
            let _ = writeln!(
                out,
                "hearth_gateway_backend_cooldown_seconds{{provider=\"{}\",endpoint=\"{}\"}} {}",
                status.provider, status.endpoint, status.cooldown_seconds
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_counters_gauges_and_histograms() {
        let metrics = Metrics::default();
        metrics.outcome("chat", "ok");
        metrics.outcome("chat", "ok");
        metrics.first_token(Duration::from_millis(3));
        let guard = metrics.stream();
        metrics.finished(40, Duration::from_secs(2));
        let text = metrics.render(&[EndpointStatus {
            provider: "llamacpp".into(),
            endpoint: "unix:/x".into(),
            healthy: true,
            cooldown_seconds: 0,
        }]);
        assert!(text.contains("hearth_gateway_requests_total{endpoint=\"chat\",outcome=\"ok\"} 2"));
        assert!(text.contains("hearth_gateway_active_streams 1"));
        assert!(text.contains("hearth_gateway_first_token_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("hearth_gateway_first_token_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("hearth_gateway_tokens_per_second 20"));
        assert!(
            text.contains(
                "hearth_gateway_backend_up{provider=\"llamacpp\",endpoint=\"unix:/x\"} 1"
            )
        );
        drop(guard);
        assert!(
            metrics
                .render(&[])
                .contains("hearth_gateway_active_streams 0")
        );
    }
}
