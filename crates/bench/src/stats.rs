//! Latency recording (HDR histogram in nanoseconds) and its percentile summary.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram records, in nanoseconds (60 s); larger values are clamped.
const MAX_NS: u64 = 60_000_000_000;

/// A new latency histogram: 1 ns to 60 s, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, ns: u64) {
    histogram.saturating_record(ns.clamp(1, MAX_NS));
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Latencies recorded.
    pub count: u64,
    /// Smallest.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarises `histogram` (nanoseconds); `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<LatencySummary> {
        if histogram.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(LatencySummary {
            count: histogram.len(),
            min_us: us(histogram.min()),
            mean_us: histogram.mean() / 1000.0,
            p50_us: us(histogram.value_at_quantile(0.50)),
            p90_us: us(histogram.value_at_quantile(0.90)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the histogram's three significant digits.
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 1e-9
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = new_histogram();
        // 1 µs … 10 000 µs in steps of 1 µs.
        for us in 1..=10_000u64 {
            record(&mut h, us * 1000);
        }
        let s = LatencySummary::of(&h).unwrap();
        assert_eq!(s.count, 10_000);
        assert!(close(s.min_us, 1.0), "{s:?}");
        assert!(close(s.p50_us, 5_000.0), "{s:?}");
        assert!(close(s.p90_us, 9_000.0), "{s:?}");
        assert!(close(s.p99_us, 9_900.0), "{s:?}");
        assert!(close(s.p999_us, 9_990.0), "{s:?}");
        assert!(close(s.max_us, 10_000.0), "{s:?}");
    }

    #[test]
    fn a_rare_outlier_shows_only_in_the_tail() {
        let mut h = new_histogram();
        for _ in 0..999 {
            record(&mut h, 50_000); // 50 µs
        }
        record(&mut h, 80_000_000); // one 80 ms stall
        let s = LatencySummary::of(&h).unwrap();
        assert!(close(s.p50_us, 50.0));
        assert!(close(s.p99_us, 50.0));
        assert!(close(s.max_us, 80_000.0));
        // The 99.9th percentile of 1000 values is the 999th: still 50 µs.
        assert!(close(s.p999_us, 50.0));
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = new_histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn empty_histogram_has_no_summary() {
        assert!(LatencySummary::of(&new_histogram()).is_none());
    }
}
