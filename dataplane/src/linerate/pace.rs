//! Rate control (spec `specs/linerate.md` §6): after `t` seconds at most
//! `⌊rate · t⌋` probes. Pure: the caller passes the clock.

/// A token bucket measured from the start of the run.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    rate: Option<u64>,
    start_ns: u64,
    sent: u64,
    batch: usize,
}

impl Pacer {
    /// Paces at `rate` probes per second (`None`: as fast as possible) from
    /// `start_ns`, in batches of at most `batch`.
    pub fn new(rate: Option<u64>, start_ns: u64, batch: usize) -> Pacer {
        Pacer {
            rate,
            start_ns,
            sent: 0,
            batch: batch.max(1),
        }
    }

    /// How many probes may go now (0..=batch).
    pub fn allowance(&self, now_ns: u64) -> usize {
        let Some(rate) = self.rate else {
            return self.batch;
        };
        let elapsed = now_ns.saturating_sub(self.start_ns) as u128;
        let due = (rate as u128 * elapsed / 1_000_000_000) as u64;
        due.saturating_sub(self.sent).min(self.batch as u64) as usize
    }

    /// Nanoseconds until at least one probe may go (0 when one may go now).
    pub fn wait_ns(&self, now_ns: u64) -> u64 {
        let Some(rate) = self.rate else { return 0 };
        if rate == 0 {
            return u64::MAX;
        }
        let next_due_at = ((self.sent as u128 + 1) * 1_000_000_000).div_ceil(rate as u128);
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
        assert_eq!(p.allowance(0), 64);
        assert_eq!(p.wait_ns(0), 0);
    }

    #[test]
    fn paced_on_a_virtual_clock_hits_the_rate() {
        // Drive a sender that always sends what it may, ticking 10 µs at a time.
        for rate in [1u64, 1000, 123_457, 2_000_000] {
            let mut p = Pacer::new(Some(rate), 1_000, 32);
            let mut now = 1_000;
            while now < 1_000 + 1_000_000_000 {
                let n = p.allowance(now);
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
        assert_eq!(p.allowance(0), 0);
        assert_eq!(p.wait_ns(0), 1_000_000);
        assert_eq!(p.allowance(1_000_000), 1);
        p.sent(1);
        assert_eq!(p.wait_ns(1_000_000), 1_000_000);
        assert_eq!(p.allowance(100_000_000), 8);
    }
}
