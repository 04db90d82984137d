//! Group commit on a background thread: while the writer keeps appending, the
//! syncer makes the previous group durable — blocks first, then the blocks
//! directory, then the group's records are written to the log and the log synced.
//! A group is whatever was handed over while the previous sync ran.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Records and the block files they reference, handed over by the writer.
#[derive(Debug)]
pub struct Batch {
    /// Framed records.
    pub records: Vec<u8>,
    /// Log offset of the first record.
    pub offset: u64,
    /// Logseq of the last record.
    pub last_logseq: u64,
    /// Block files to sync before the records are written.
    pub files: Vec<File>,
    /// Whether a block file was created (the blocks directory must be synced).
    pub sync_dir: bool,
}

#[derive(Debug, Default)]
struct SyncState {
    queue: Vec<Batch>,
    busy: bool,
    durable: u64,
    error: Option<(String, Option<i32>)>,
    stop: bool,
}

type Shared = Arc<(Mutex<SyncState>, Condvar)>;

/// The background syncer of one writer.
#[derive(Debug)]
pub struct Syncer {
    shared: Shared,
    handle: Option<JoinHandle<()>>,
}

fn lock(s: &Shared) -> MutexGuard<'_, SyncState> {
    s.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Syncer {
    /// Starts the thread; `log` is the writer's log file, `blocks_dir` the
    /// directory synced when a batch created a block file.
    pub fn start(log: File, blocks_dir: PathBuf, durable: u64) -> std::io::Result<Syncer> {
        let shared: Shared = Arc::new((
            Mutex::new(SyncState {
                durable,
                ..SyncState::default()
            }),
            Condvar::new(),
        ));
        let s2 = shared.clone();
        let handle = std::thread::Builder::new()
            .name("asl-syncer".into())
            .spawn(move || run(&s2, &log, &blocks_dir))?;
        Ok(Syncer {
            shared,
            handle: Some(handle),
        })
    }

    /// Whether no sync is running or queued (a good moment to hand over a group).
    pub fn idle(&self) -> bool {
        let s = lock(&self.shared);
        !s.busy && s.queue.is_empty()
    }

    /// Queues a batch.
    pub fn hand_over(&self, b: Batch) {
        lock(&self.shared).queue.push(b);
        self.shared.1.notify_all();
    }

    /// The last durable logseq, or the first failure (message, errno).
    pub fn durable(&self) -> Result<u64, (String, Option<i32>)> {
        let s = lock(&self.shared);
        match &s.error {
            Some(e) => Err(e.clone()),
            None => Ok(s.durable),
        }
    }

    /// Waits until `logseq` is durable or a sync failed.
    pub fn wait(&self, logseq: u64) -> Result<u64, (String, Option<i32>)> {
        let mut s = lock(&self.shared);
        loop {
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            if s.durable >= logseq {
                return Ok(s.durable);
            }
            s = self
                .shared
                .1
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(shared: &Shared, log: &File, blocks_dir: &PathBuf) {
    loop {
        let batches = {
            let mut s = lock(shared);
            while s.queue.is_empty() && !s.stop {
                s = shared.1.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.queue.is_empty() {
                return;
            }
            s.busy = true;
            std::mem::take(&mut s.queue)
        };
        let res = (|| -> Result<u64, (String, Option<i32>)> {
            let fail =
                |what: String| move |e: std::io::Error| (format!("{what}: {e}"), e.raw_os_error());
            let mut dir = false;
            for b in &batches {
                for f in &b.files {
                    f.sync_data()
                        .map_err(fail(format!("sync block in {}", blocks_dir.display())))?;
                }
                dir |= b.sync_dir;
            }
            if dir {
                File::open(blocks_dir)
                    .and_then(|d| d.sync_all())
                    .map_err(fail(format!("sync directory {}", blocks_dir.display())))?;
            }
            let mut last = 0;
            for b in &batches {
                log.write_all_at(&b.records, b.offset)
                    .map_err(fail("append to log".into()))?;
                last = b.last_logseq;
            }
            log.sync_data().map_err(fail("sync log".into()))?;
            Ok(last)
        })();
        let mut s = lock(shared);
        s.busy = false;
        let failed = res.is_err();
        match res {
            Ok(l) => s.durable = s.durable.max(l),
            Err(e) => s.error = Some(e),
        }
        shared.1.notify_all();
        if failed {
            return;
        }
    }
}
