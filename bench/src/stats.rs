//! Latency histograms (HdrHistogram, 3 significant digits) and the percentiles the report shows.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latency percentiles in milliseconds.
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
    pub fn from_micros(samples: &[u64]) -> Percentiles {
        let mut latencies = Latencies::default();
        samples.iter().for_each(|&us| latencies.record_us(us));
        latencies.percentiles()
    }
}

/// Microseconds; the histogram grows as larger values arrive, so one per client stays small.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies(Histogram::new(3).expect("3 significant digits"))
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.record_us(micros(latency));
    }

    pub fn record_us(&mut self, us: u64) {
        self.0
            .record(us)
            .expect("an auto-resizing histogram takes any u64");
    }

    pub fn add(&mut self, other: &Latencies) {
        self.0
            .add(&other.0)
            .expect("an auto-resizing histogram takes any other");
    }

    pub fn percentiles(&self) -> Percentiles {
        let h = &self.0;
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

    #[test]
    fn percentiles_are_within_the_histograms_precision_and_histograms_add_up() {
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001;
        let p = Percentiles::from_micros(&(1..=1000).map(|ms| ms * 1000).collect::<Vec<_>>());
        assert!(close(p.p50_ms, 500.0) && close(p.p99_ms, 990.0), "{p:?}");
        assert!(close(p.p999_ms, 999.0) && close(p.max_ms, 1000.0), "{p:?}");
        assert_eq!(Percentiles::from_micros(&[]), Percentiles::default());
        let (mut a, mut b) = (Latencies::default(), Latencies::default());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_secs(90));
        a.add(&b);
        let p = a.percentiles();
        assert!(close(p.p50_ms, 1.0) && close(p.max_ms, 90_000.0), "{p:?}");
    }
}
