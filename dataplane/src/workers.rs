//! Pinned worker threads: `n` scoped threads, worker `i` pinned to core
//! `i mod cores`, pulling item indices from a shared counter.

use std::sync::atomic::{AtomicUsize, Ordering};

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

#[cfg(test)]
mod tests {
    use super::*;

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
