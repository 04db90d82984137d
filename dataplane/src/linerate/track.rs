//! Receiver accounting of probe sequence numbers (spec `specs/linerate.md` §4):
//! duplicates, reordering and loss. Pure: no I/O, no clock.

/// Sequence numbers tracked for duplicates below the highest seen.
pub const WINDOW: u64 = 1 << 22;

/// Counts of one run's sequence numbers.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    bits: Vec<u64>,
    highest: Option<u64>,
    packets: u64,
    duplicates: u64,
    reordered: u64,
    late: u64,
}

impl Default for SeqTracker {
    fn default() -> SeqTracker {
        SeqTracker::new()
    }
}

impl SeqTracker {
    /// Nothing seen yet.
    pub fn new() -> SeqTracker {
        SeqTracker {
            bits: vec![0u64; (WINDOW / 64) as usize],
            highest: None,
            packets: 0,
            duplicates: 0,
            reordered: 0,
            late: 0,
        }
    }

    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = seq % WINDOW;
        (&mut self.bits[(i / 64) as usize], 1u64 << (i % 64))
    }

    /// Records one probe.
    pub fn record(&mut self, seq: u64) {
        self.packets += 1;
        match self.highest {
            Some(h) if seq <= h => {
                if h - seq >= WINDOW {
                    self.late += 1;
                    return;
                }
                let (word, mask) = self.bit(seq);
                if *word & mask != 0 {
                    self.duplicates += 1;
                } else {
                    *word |= mask;
                    self.reordered += 1;
                }
            }
            _ => {
                // Clear the bits of the sequence numbers skipped over (they reuse
                // slots of numbers now more than WINDOW below the highest).
                let from = self.highest.map_or(0, |h| h + 1);
                if seq - from >= WINDOW {
                    self.bits.iter_mut().for_each(|w| *w = 0);
                } else {
                    for s in from..seq {
                        let (word, mask) = self.bit(s);
                        *word &= !mask;
                    }
                }
                let (word, mask) = self.bit(seq);
                *word |= mask;
                self.highest = Some(seq);
            }
        }
    }

    /// Probes recorded, duplicates included.
    pub fn packets(&self) -> u64 {
        self.packets
    }
    /// Sequence numbers seen more than once.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
    /// Probes below the highest sequence number seen, not duplicates.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
    /// Probes too far below the highest to check.
    pub fn late(&self) -> u64 {
        self.late
    }
    /// The highest sequence number seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
    /// `(highest + 1) − unique` (0 when nothing arrived).
    pub fn lost(&self) -> u64 {
        match self.highest {
            None => 0,
            Some(h) => (h + 1).saturating_sub(self.packets - self.duplicates),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order() {
        let mut t = SeqTracker::new();
        for s in 0..1000 {
            t.record(s);
        }
        assert_eq!(
            (t.packets(), t.lost(), t.duplicates(), t.reordered()),
            (1000, 0, 0, 0)
        );
    }

    #[test]
    fn loss_dup_reorder() {
        let mut t = SeqTracker::new();
        for s in [0, 1, 3, 2, 2, 5, 7, 6, 9] {
            t.record(s);
        }
        // seen unique: 0 1 2 3 5 6 7 9 → 8 of 10, lost 4 and 8.
        assert_eq!(t.packets(), 9);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.reordered(), 2);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.highest(), Some(9));
    }

    #[test]
    fn window_reuse_does_not_fake_duplicates() {
        let mut t = SeqTracker::new();
        t.record(5);
        t.record(5 + WINDOW); // same slot, must be cleared first
        t.record(5 + 2 * WINDOW + 3);
        t.record(5 + WINDOW); // more than WINDOW below highest → late
        assert_eq!(t.duplicates(), 0);
        assert_eq!(t.late(), 1);
        t.record(5 + 2 * WINDOW + 3);
        assert_eq!(t.duplicates(), 1);
    }

    #[test]
    fn empty() {
        let t = SeqTracker::new();
        assert_eq!((t.lost(), t.highest()), (0, None));
    }
}
