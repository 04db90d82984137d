//! Server counters, rendered in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the `/compute` latency histogram buckets.
pub const BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    errors: BTreeMap<&'static str, u64>,
    bytes_processed: u64,
    bytes_fetched: u64,
    range_requests: u64,
    cache_hits: u64,
    cache_misses: u64,
    buckets: [u64; BUCKETS_S.len()],
    latency_count: u64,
    latency_sum_s: f64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a finished request on `route` with `status`; `/compute` latencies
    /// go into the histogram.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let mut m = self.lock();
        *m.requests.entry((route, status)).or_default() += 1;
        if route == "compute" {
            let s = elapsed.as_secs_f64();
            for (b, le) in m.buckets.iter_mut().zip(BUCKETS_S) {
                if s <= le {
                    *b += 1;
                }
            }
            m.latency_count += 1;
            m.latency_sum_s += s;
        }
    }

    /// Counts an error by code.
    pub fn error(&self, code: &'static str) {
        *self.lock().errors.entry(code).or_default() += 1;
    }

    /// Counts a finished job.
    pub fn job(&self, processed: u64, fetched: u64, ranges: u64, hits: u64, misses: u64) {
        let mut m = self.lock();
        m.bytes_processed += processed;
        m.bytes_fetched += fetched;
        m.range_requests += ranges;
        m.cache_hits += hits;
        m.cache_misses += misses;
    }

    /// The text exposition.
    pub fn render(&self, uptime: Duration) -> String {
        let m = self.lock();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "pfs_edge_bytes_processed_total",
            "Bytes computed by finished /compute jobs.",
            m.bytes_processed,
        );
        counter(
            "pfs_edge_bytes_fetched_total",
            "Body bytes received from origins.",
            m.bytes_fetched,
        );
        counter(
            "pfs_edge_range_requests_total",
            "Range requests made to origins.",
            m.range_requests,
        );
        counter(
            "pfs_edge_cache_hits_total",
            "Origin responses whose cache headers said HIT.",
            m.cache_hits,
        );
        counter(
            "pfs_edge_cache_misses_total",
            "Origin responses whose cache headers said MISS.",
            m.cache_misses,
        );
        let _ = writeln!(
            out,
            "# HELP pfs_edge_requests_total Requests served, by route and status.\n# TYPE pfs_edge_requests_total counter"
        );
        for ((route, status), v) in &m.requests {
            let _ = writeln!(
                out,
                "pfs_edge_requests_total{{route=\"{route}\",status=\"{status}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pfs_edge_errors_total Error responses, by code.\n# TYPE pfs_edge_errors_total counter"
        );
        for (code, v) in &m.errors {
            let _ = writeln!(out, "pfs_edge_errors_total{{code=\"{code}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP pfs_edge_compute_duration_seconds /compute latency.\n# TYPE pfs_edge_compute_duration_seconds histogram"
        );
        for (b, le) in m.buckets.iter().zip(BUCKETS_S) {
            let _ = writeln!(
                out,
                "pfs_edge_compute_duration_seconds_bucket{{le=\"{le}\"}} {b}"
            );
        }
        let _ = writeln!(
            out,
            "pfs_edge_compute_duration_seconds_bucket{{le=\"+Inf\"}} {}\npfs_edge_compute_duration_seconds_sum {}\npfs_edge_compute_duration_seconds_count {}",
            m.latency_count, m.latency_sum_s, m.latency_count
        );
        let _ = writeln!(
            out,
            "# HELP pfs_edge_uptime_seconds Seconds since the server started.\n# TYPE pfs_edge_uptime_seconds gauge\npfs_edge_uptime_seconds {}",
            uptime.as_secs_f64()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_histogram() {
        let m = Metrics::default();
        m.request("compute", 200, Duration::from_millis(3));
        m.request("compute", 400, Duration::from_secs(9));
        m.request("health", 200, Duration::ZERO);
        m.error("bad_request");
        m.job(10, 20, 1, 0, 1);
        let t = m.render(Duration::from_secs(1));
        assert!(t.contains("pfs_edge_requests_total{route=\"compute\",status=\"200\"} 1"));
        assert!(t.contains("pfs_edge_requests_total{route=\"health\",status=\"200\"} 1"));
        assert!(t.contains("pfs_edge_compute_duration_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(t.contains("pfs_edge_compute_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("pfs_edge_compute_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(t.contains("pfs_edge_errors_total{code=\"bad_request\"} 1"));
        assert!(t.contains("pfs_edge_bytes_fetched_total 20"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<f64>().unwrap();
        }
    }
}
