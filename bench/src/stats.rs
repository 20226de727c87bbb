//! Latency samples and the percentiles the report shows.

use serde::Serialize;
use std::time::Duration;

/// Latency percentiles in milliseconds. Computed from every sample (no histogram bucketing): a
/// run holds at most a few hundred thousand samples, so sorting them is cheap and exact.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// From samples in microseconds; the slice is sorted in place.
    pub fn from_micros(samples: &mut [u64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[nearest_rank(samples.len(), q)] as f64 / 1000.0;
        Percentiles {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: samples[samples.len() - 1] as f64 / 1000.0,
        }
    }
}

/// Nearest-rank percentile index: the smallest sample with at least `q` of the samples at or
/// below it.
fn nearest_rank(len: usize, q: f64) -> usize {
    let rank = (q * len as f64).ceil() as usize;
    rank.clamp(1, len) - 1
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::from_micros(&mut samples);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p95_ms, 95.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
    }

    #[test]
    fn no_samples_give_zeroes_rather_than_a_panic() {
        assert_eq!(Percentiles::from_micros(&mut []), Percentiles::default());
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let p = Percentiles::from_micros(&mut [2500]);
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (2.5, 2.5, 2.5));
    }
}
