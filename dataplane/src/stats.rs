//! Latency statistics (hdrhistogram, nanoseconds).

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds, 1 ns to 1 hour, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency {
            // Bounds are constants that hdrhistogram accepts.
            hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("constant hdrhistogram bounds are valid"),
        }
    }

    /// Records one sample (clamped into the histogram's bounds).
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so add cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest sample, in microseconds.
    pub fn max_us(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    /// The mean, in microseconds.
    pub fn mean_us(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}
