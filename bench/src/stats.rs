//! Latency samples and the percentiles the report shows.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latency percentiles in milliseconds, read from an HdrHistogram of microseconds (3 significant
/// digits: every figure is within 0.1 % of the exact sample).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// From samples in microseconds.
    pub fn from_micros(samples: &[u64]) -> Percentiles {
        let mut latencies = Latencies::new();
        for &us in samples {
            latencies.record_us(us);
        }
        latencies.percentiles()
    }
}

/// A latency histogram in microseconds. It grows as larger values arrive, so a histogram per
/// client stays small until something is slow.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            histogram: Histogram::new(3).expect("3 significant digits is a valid precision"),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_us(micros(latency));
    }

    pub fn record_us(&mut self, us: u64) {
        // Auto-resizing: recording only fails past u64's range, which a Duration in µs is not.
        self.histogram
            .record(us)
            .expect("an auto-resizing histogram takes any u64");
    }

    pub fn add(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("an auto-resizing histogram takes any other");
    }

    pub fn percentiles(&self) -> Percentiles {
        let h = &self.histogram;
        if h.is_empty() {
            return Percentiles::default();
        }
        let at = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001
    }

    #[test]
    fn percentiles_are_within_the_histograms_precision() {
        let samples: Vec<u64> = (1..=1000).map(|ms| ms * 1000).collect();
        let p = Percentiles::from_micros(&samples);
        assert!(close(p.p50_ms, 500.0), "{p:?}");
        assert!(close(p.p90_ms, 900.0), "{p:?}");
        assert!(close(p.p95_ms, 950.0), "{p:?}");
        assert!(close(p.p99_ms, 990.0), "{p:?}");
        assert!(close(p.p999_ms, 999.0), "{p:?}");
        assert!(close(p.max_ms, 1000.0), "{p:?}");
    }

    #[test]
    fn no_samples_give_zeroes_rather_than_a_panic() {
        assert_eq!(Percentiles::from_micros(&[]), Percentiles::default());
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let p = Percentiles::from_micros(&[2500]);
        assert!(close(p.p50_ms, 2.5) && close(p.p99_ms, 2.5) && close(p.max_ms, 2.5));
    }

    #[test]
    fn histograms_add_up() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_secs(90));
        a.add(&b);
        let p = a.percentiles();
        assert!(close(p.p50_ms, 1.0) && close(p.max_ms, 90_000.0), "{p:?}");
    }
}
