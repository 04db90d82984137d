//! Rate control (spec `specs/linerate.md` §6): after `t` seconds at most
//! `⌊rate · t⌋` probes. Pure: the caller passes the clock.

/// A token bucket measured from the start of the run. Paced sends go in bursts of
/// at least `rate × 100 µs` probes (1 ..= batch), so a high rate is not spent on
/// one syscall per probe.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    rate: Option<u64>,
    start_ns: u64,
    sent: u64,
    batch: usize,
    burst: u64,
}

/// The pacing quantum: paced bursts hold about this much time's worth of probes.
pub const QUANTUM_NS: u64 = 100_000;

impl Pacer {
    /// Paces at `rate` probes per second (`None`: as fast as possible) from
    /// `start_ns`, in batches of at most `batch`.
    pub fn new(rate: Option<u64>, start_ns: u64, batch: usize) -> Pacer {
        let batch = batch.max(1);
        let burst = rate.map_or(1, |r| {
            ((r as u128 * QUANTUM_NS as u128 / 1_000_000_000) as u64).clamp(1, batch as u64)
        });
        Pacer {
            rate,
            start_ns,
            sent: 0,
            batch,
            burst,
        }
    }

    fn due(&self, now_ns: u64, rate: u64) -> u64 {
        let elapsed = now_ns.saturating_sub(self.start_ns) as u128;
        ((rate as u128 * elapsed / 1_000_000_000) as u64).saturating_sub(self.sent)
    }

    /// How many probes may go now (0..=batch). With `remaining` probes left in
    /// the run, a burst smaller than the quantum waits unless it finishes the run.
    pub fn allowance(&self, now_ns: u64, remaining: u64) -> usize {
        let Some(rate) = self.rate else {
            return self.batch.min(remaining.min(usize::MAX as u64) as usize);
        };
        let due = self.due(now_ns, rate).min(remaining);
        if due < self.burst.min(remaining) {
            return 0;
        }
        due.min(self.batch as u64) as usize
    }

    /// Nanoseconds until the next burst may go (0 when it may go now).
    pub fn wait_ns(&self, now_ns: u64) -> u64 {
        let Some(rate) = self.rate else { return 0 };
        if rate == 0 {
            return u64::MAX;
        }
        let next_due_at =
            ((self.sent as u128 + self.burst as u128) * 1_000_000_000).div_ceil(rate as u128);
        let at = self.start_ns as u128 + next_due_at;
        at.saturating_sub(now_ns as u128).min(u64::MAX as u128) as u64
    }

    /// Records `n` probes sent.
    pub fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// Probes recorded so far.
    pub fn total(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_always_allows_a_batch() {
        let p = Pacer::new(None, 0, 64);
        assert_eq!(p.allowance(0, u64::MAX), 64);
        assert_eq!(p.allowance(0, 5), 5);
        assert_eq!(p.wait_ns(0), 0);
    }

    #[test]
    fn paced_on_a_virtual_clock_hits_the_rate() {
        // Drive a sender that always sends what it may, ticking 10 µs at a time.
        for rate in [1u64, 1000, 123_457, 2_000_000] {
            let mut p = Pacer::new(Some(rate), 1_000, 32);
            let mut now = 1_000;
            while now < 1_000 + 1_000_000_000 {
                let n = p.allowance(now, u64::MAX);
                p.sent(n);
                now += 10_000;
            }
            let sent = p.total() as f64;
            let want = rate as f64;
            assert!(
                (sent - want).abs() <= want * 0.001 + 1.0,
                "rate {rate}: sent {sent}"
            );
        }
    }

    #[test]
    fn wait_points_at_the_next_due_probe() {
        let mut p = Pacer::new(Some(1000), 0, 8);
        assert_eq!(p.allowance(0, u64::MAX), 0);
        assert_eq!(p.wait_ns(0), 1_000_000);
        assert_eq!(p.allowance(1_000_000, u64::MAX), 1);
        p.sent(1);
        assert_eq!(p.wait_ns(1_000_000), 1_000_000);
        assert_eq!(p.allowance(100_000_000, u64::MAX), 8);
    }

    #[test]
    fn high_rates_go_in_bursts() {
        // 1 Mpps: bursts of 100 µs = 100 probes, capped at the batch (64).
        let p = Pacer::new(Some(1_000_000), 0, 64);
        assert_eq!(p.allowance(10_000, u64::MAX), 0); // 10 due, burst 64
        assert_eq!(p.wait_ns(0), 64_000);
        assert_eq!(p.allowance(64_000, u64::MAX), 64);
        // The run's last few probes go without waiting for a full burst.
        assert_eq!(p.allowance(10_000, 10), 10);
    }
}
