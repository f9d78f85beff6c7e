//! A lock-free latency histogram with fixed buckets from 100 µs to 10 s, and its snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// The buckets' upper bounds, in microseconds (a last bucket above them all is implied).
const BUCKET_BOUNDS_MICROS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Buckets in all: one per bound, and one above the last.
const BUCKETS: usize = BUCKET_BOUNDS_MICROS.len() + 1;

/// The live histogram: one counter per bucket and the sum, each written with one relaxed
/// `fetch_add`; no lock. With the `metrics` feature each value also goes to the facade's
/// histogram of the same name, when it has one.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
    #[cfg(feature = "metrics")]
    facade: Option<metrics::Histogram>,
}

impl Histogram {
    /// A histogram whose values also go to the `metrics` facade as `name{db}` (registered with
    /// the recorder installed now); without the feature, a plain one.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn named(name: &'static str, db: &str) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            facade: Some(metrics::histogram!(name, "db" => db.to_owned())),
            ..Self::default()
        }
    }

    /// Records one observation.
    pub(crate) fn record(&self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one observation of `micros` in its bucket, without adding it to the sum (for a
    /// caller that keeps the sum itself).
    pub(crate) fn record_micros(&self, micros: u64) {
        let bucket = BUCKET_BOUNDS_MICROS.partition_point(|bound| *bound < micros);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.facade {
            h.record(micros as f64 / 1e6);
        }
    }

    /// The counts now, with `sum` (from [`Histogram::record`], or the caller's own).
    pub(crate) fn snapshot_with_sum(&self, sum: Duration) -> HistogramSnapshot {
        let mut counts = [0; BUCKETS];
        for (out, c) in counts.iter_mut().zip(&self.counts) {
            *out = c.load(Ordering::Relaxed);
        }
        HistogramSnapshot { counts, sum }
    }

    /// The counts and sum now.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        self.snapshot_with_sum(Duration::from_micros(
            self.sum_micros.load(Ordering::Relaxed),
        ))
    }
}

/// A histogram's counts at one moment: per bucket (not cumulative), with the sum of the
/// observed values. Bucket `i < 16` holds values ≤ `BUCKET_BOUNDS_MICROS[i]` µs (and above the
/// previous bound); the last holds the rest.
///
/// ```
/// let h = redis_keeper::HistogramSnapshot::default();
/// assert_eq!(h.count(), 0);
/// assert_eq!(h.cumulative().last(), Some(&0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HistogramSnapshot {
    /// Observations per bucket.
    pub counts: [u64; BUCKETS],
    /// The sum of every observed value.
    pub sum: Duration,
}

impl HistogramSnapshot {
    /// The buckets' upper bounds in microseconds, from 100 µs to 10 s; a last bucket holds
    /// what is above them all.
    pub const BOUNDS_MICROS: [u64; 16] = BUCKET_BOUNDS_MICROS;

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Observations at or below each bound, the last being every observation (Prometheus's
    /// `le` buckets, `+Inf` last).
    pub fn cumulative(&self) -> [u64; BUCKETS] {
        let mut out = self.counts;
        for i in 1..BUCKETS {
            out[i] += out[i - 1];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_of_their_bound() {
        let h = Histogram::default();
        for micros in [
            0,
            100,
            101,
            250,
            9_999_999,
            10_000_000,
            10_000_001,
            u64::MAX / 2,
        ] {
            h.record(Duration::from_micros(micros));
        }
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "0 and 100 µs: ≤ 100 µs");
        assert_eq!(s.counts[1], 2, "101 and 250 µs");
        assert_eq!(s.counts[15], 2, "up to 10 s inclusive");
        assert_eq!(s.counts[16], 2, "above 10 s");
        assert_eq!(s.count(), 8);
        assert_eq!(s.cumulative()[16], 8);
        assert_eq!(s.cumulative()[1], 4);
    }

    #[test]
    fn the_sum_is_the_sum_of_the_values() {
        let h = Histogram::default();
        h.record(Duration::from_millis(2));
        h.record(Duration::from_millis(3));
        assert_eq!(h.snapshot().sum, Duration::from_millis(5));
        assert_eq!(h.snapshot_with_sum(Duration::ZERO).sum, Duration::ZERO);
    }
}
