//! Metrics any protocol can keep: a lock-free latency histogram, and the OpenMetrics /
//! Prometheus text exposition format they are rendered in.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds, in microseconds: 1-2.5-5 steps from 50 µs to 10 s (a loopback round
/// trip is ~100 µs, a congested WAN seconds). Slower observations count in `+Inf` only.
pub const BUCKET_BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Counts observations per bucket; `observe` is a few relaxed atomic adds (no lock), so hot
/// paths can record every message.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

/// A consistent-enough copy of a histogram (each field read once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket, not cumulative.
    pub buckets: [u64; BUCKET_BOUNDS_US.len()],
    pub count: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let us = ns / 1_000;
        if let Some(i) = BUCKET_BOUNDS_US.iter().position(|&bound| us <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0; BUCKET_BOUNDS_US.len()];
        for (out, bucket) in buckets.iter_mut().zip(&self.buckets) {
            *out = bucket.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// The upper bound of the bucket holding the `q` quantile (0 < q ≤ 1), in seconds, capped
    /// by the maximum seen: an estimate no lower than the true value. `None` when empty.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let max = self.max_ns as f64 / 1e9;
        let mut seen = 0;
        for (bucket, bound) in self.buckets.iter().zip(BUCKET_BOUNDS_US) {
            seen += bucket;
            if seen >= rank {
                return Some((bound as f64 / 1e6).min(max));
            }
        }
        Some(max)
    }
}

/// Builds an OpenMetrics text exposition: each family's `# TYPE` / `# HELP` once, its
/// samples after it, `# EOF` at the end.
#[derive(Default)]
pub struct TextExposition {
    text: String,
}

/// Label values escaped as the format demands (backslash, double quote, newline).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl TextExposition {
    /// Starts a family (`kind`: counter, gauge, histogram). Counter families are named without
    /// `_total`; their samples get it.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        let _ = writeln!(self.text, "# HELP {name} {help}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.text, "{name}{} {value}", labels_text(labels));
    }

    /// The samples of one histogram (`_bucket` cumulative with `le`, `_count`, `_sum`).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0;
        for (bucket, bound) in h.buckets.iter().zip(BUCKET_BOUNDS_US) {
            cumulative += bucket;
            let le = format!("{}", bound as f64 / 1e6);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with_le, h.count as f64);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum_ns as f64 / 1e9);
    }

    pub fn finish(mut self) -> String {
        self.text.push_str("# EOF\n");
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_quantiles_bound_them() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.observe(Duration::from_micros(80)); // bucket ≤ 100 µs
        }
        h.observe(Duration::from_millis(3)); // ≤ 5 ms
        h.observe(Duration::from_secs(20)); // beyond the last bound: +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.buckets[1], 98);
        assert_eq!(s.buckets[6], 1);
        assert_eq!(s.buckets.iter().sum::<u64>(), 99);
        assert_eq!(s.max_ns, 20_000_000_000);
        assert_eq!(s.quantile_upper_bound(0.5), Some(100e-6));
        assert_eq!(s.quantile_upper_bound(0.99), Some(5e-3));
        assert_eq!(s.quantile_upper_bound(1.0), Some(20.0));
        assert_eq!(HistogramSnapshot::default().quantile_upper_bound(0.5), None);
    }

    #[test]
    fn a_quantile_never_exceeds_the_maximum_seen() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(120)); // bucket ≤ 250 µs
        assert_eq!(h.snapshot().quantile_upper_bound(0.5), Some(120e-6));
    }

    #[test]
    fn exposition_renders_families_cumulative_buckets_and_escapes_labels() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(400));
        let mut text = TextExposition::default();
        text.family("x_latency_seconds", "histogram", "How long.");
        text.histogram("x_latency_seconds", &[("qos", "1")], &h.snapshot());
        text.family("x_events", "counter", "Events.");
        text.sample("x_events_total", &[("why", "a\"b\\c\nd")], 3.0);
        let out = text.finish();
        assert!(out.starts_with("# TYPE x_latency_seconds histogram\n"));
        assert!(out.contains("x_latency_seconds_bucket{qos=\"1\",le=\"0.00005\"} 1\n"));
        assert!(out.contains("x_latency_seconds_bucket{qos=\"1\",le=\"0.0005\"} 2\n"));
        assert!(out.contains("x_latency_seconds_bucket{qos=\"1\",le=\"+Inf\"} 2\n"));
        assert!(out.contains("x_latency_seconds_count{qos=\"1\"} 2\n"));
        assert!(out.contains("x_events_total{why=\"a\\\"b\\\\c\\nd\"} 3\n"));
        assert!(out.ends_with("# EOF\n"));
    }
}
