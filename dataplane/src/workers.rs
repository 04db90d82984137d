//! Pinned worker threads: `n` scoped threads, worker `i` pinned to core
//! `i mod cores`, pulling item indices from a shared counter ([`run`]); and for
//! long-running I/O workers, per-worker [`Counters`] the control thread samples
//! once a second ([`monitor`]) while results come back over a crossbeam channel.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How a run's workers were placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Workers started.
    pub workers: usize,
    /// Cores the process may run on.
    pub cores: usize,
    /// Core each worker was pinned to (`None` when pinning failed or was off).
    pub pinned: Vec<Option<usize>>,
}

impl Placement {
    /// More workers than cores: they time-share.
    pub fn oversubscribed(&self) -> bool {
        self.workers > self.cores
    }
}

/// The cores this process may be pinned to.
pub fn cores() -> Vec<core_affinity::CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// Runs `work(worker, item)` for every `item` in `0..items` on `workers` threads
/// (pinned when `pin`), each item exactly once. Returns each worker's state (built
/// by `init(worker)` and passed to every call on that worker) and the placement.
pub fn run<S, I, W>(
    workers: usize,
    pin: bool,
    items: usize,
    init: I,
    work: W,
) -> (Vec<S>, Placement)
where
    S: Send,
    I: Fn(usize) -> S + Sync,
    W: Fn(&mut S, usize) + Sync,
{
    let workers = workers.max(1);
    let core_ids = cores();
    let next = AtomicUsize::new(0);
    let results: Vec<(S, Option<usize>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (next, init, work, core_ids) = (&next, &init, &work, &core_ids);
                scope.spawn(move || {
                    let pinned = if pin && !core_ids.is_empty() {
                        let core = core_ids[w % core_ids.len()];
                        core_affinity::set_for_current(core).then_some(core.id)
                    } else {
                        None
                    };
                    let mut state = init(w);
                    loop {
                        let item = next.fetch_add(1, Ordering::Relaxed);
                        if item >= items {
                            break;
                        }
                        work(&mut state, item);
                    }
                    (state, pinned)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let (states, pinned): (Vec<S>, Vec<Option<usize>>) = results.into_iter().unzip();
    let placement = Placement {
        workers,
        cores: core_ids.len().max(1),
        pinned,
    };
    (states, placement)
}

/// Pins the calling thread to core `index mod cores`. Returns the core id, or
/// `None` when the process has no core list or pinning failed.
pub fn pin_current(index: usize) -> Option<usize> {
    let ids = cores();
    if ids.is_empty() {
        return None;
    }
    let core = ids[index % ids.len()];
    core_affinity::set_for_current(core).then_some(core.id)
}

/// One worker's running totals, written by the worker (relaxed adds once per
/// batch) and read by the control thread.
#[derive(Debug, Default)]
pub struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    drops: AtomicU64,
    errors: AtomicU64,
}

/// A reading of [`Counters`] (or a difference of two readings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Packets moved.
    pub packets: u64,
    /// Bytes moved (Ethernet frame bytes for line-rate runs).
    pub bytes: u64,
    /// Packets dropped.
    pub drops: u64,
    /// Errors.
    pub errors: u64,
}

impl Counters {
    /// Adds `packets` and `bytes`.
    pub fn add(&self, packets: u64, bytes: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Sets the drop total (backends report drops as running totals).
    pub fn set_drops(&self, drops: u64) {
        self.drops.store(drops, Ordering::Relaxed);
    }
    /// Adds errors.
    pub fn error(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }
    /// The current totals.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// Field-wise sum.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Snapshot>) -> Snapshot {
        all.into_iter().fold(Snapshot::default(), |a, s| Snapshot {
            packets: a.packets + s.packets,
            bytes: a.bytes + s.bytes,
            drops: a.drops + s.drops,
            errors: a.errors + s.errors,
        })
    }
    /// `self − earlier`, field-wise (saturating).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            drops: self.drops.saturating_sub(earlier.drops),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

/// One live line, like xdp-bench's: the rates over `secs` seconds.
pub fn live_line(label: &str, delta: &Snapshot, secs: f64) -> String {
    let secs = if secs > 0.0 { secs } else { 1.0 };
    format!(
        "{label:<8} {:>12.0} pps {:>8.3} Gbit/s  drops {:>9.0}/s  errors {:>6.0}/s",
        delta.packets as f64 / secs,
        delta.bytes as f64 * 8.0 / secs / 1e9,
        delta.drops as f64 / secs,
        delta.errors as f64 / secs,
    )
}

/// Waits for `expect` results on `results` while sampling `counters` every
/// `every` and calling `tick(delta, seconds)` with the change since the last
/// sample. Returns the results in arrival order (fewer when a sender hung up).
pub fn monitor<T>(
    results: &crossbeam_channel::Receiver<T>,
    expect: usize,
    counters: &[&Counters],
    every: Duration,
    mut tick: impl FnMut(&Snapshot, f64),
) -> Vec<T> {
    let mut out = Vec::with_capacity(expect);
    let sample = || {
        Snapshot::sum(
            counters
                .iter()
                .map(|c| c.snapshot())
                .collect::<Vec<_>>()
                .iter(),
        )
    };
    let mut last = sample();
    let mut last_at = Instant::now();
    let mut next = last_at + every;
    while out.len() < expect {
        let wait = next.saturating_duration_since(Instant::now());
        match results.recv_timeout(wait) {
            Ok(r) => out.push(r),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let cur = sample();
                tick(&cur.since(&last), now.duration_since(last_at).as_secs_f64());
                last = cur;
                last_at = now;
                next = now + every;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_collects_results_and_ticks() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let c = Counters::default();
        let mut ticks = 0;
        std::thread::scope(|s| {
            s.spawn(|| {
                pin_current(0);
                for _ in 0..3 {
                    c.add(10, 1000);
                    std::thread::sleep(Duration::from_millis(30));
                }
                c.error(1);
                tx.send(7u32).unwrap();
            });
            let got = monitor(&rx, 1, &[&c], Duration::from_millis(20), |_, _| ticks += 1);
            assert_eq!(got, vec![7]);
        });
        let _ = ticks;
        let s = c.snapshot();
        assert_eq!((s.packets, s.bytes, s.errors), (30, 3000, 1));
        let line = live_line("tx", &s, 1.0);
        assert!(
            line.contains("30 pps") && line.contains("0.000 Gbit/s"),
            "{line}"
        );
    }

    #[test]
    fn every_item_runs_once_even_oversubscribed() {
        let (states, placement) = run(
            7,
            true,
            1000,
            |_| Vec::new(),
            |seen: &mut Vec<usize>, i| seen.push(i),
        );
        let mut all: Vec<usize> = states.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(placement.workers, 7);
        assert_eq!(placement.pinned.len(), 7);
    }
}
