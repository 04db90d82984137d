//! The store: a directory with a superblock, a log, blocks and an index cache.
//! Normative: `specs/asl.md`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::block::{self, BlockHeader, BlockKind, BlockTrailer, HEADER_LEN, TRAILER_LEN};
use super::index::{self, Bloom, Entry, State};
use super::record::{self, Location, Record, RecordBody, RecordHeader};
use super::syncer::{Batch, Syncer};
use super::{ArtifactKey, AslError, sys};

/// Superblock file name.
pub const SUPERBLOCK: &str = "ASL";
/// Log file name.
pub const LOG: &str = "log";
/// Index cache file name.
pub const INDEX: &str = "index";
/// Lock file name.
pub const LOCK: &str = "lock";
/// Blocks directory name.
pub const BLOCKS: &str = "blocks";
/// Superblock magic.
pub const SUPER_MAGIC: [u8; 8] = *b"PFS-ASL\0";
/// The store format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

type Result<T> = std::result::Result<T, AslError>;

/// When an append reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Each append is synced (block, then log) before it returns.
    Fsync,
    /// Appends are written at once and synced together: when `group_max` are
    /// pending, when the oldest pending is `group_delay` old at the next append, or
    /// on `sync`/`snapshot`/`close`.
    Group,
    /// Appends are written at once (they survive the process, not the machine) and
    /// synced only by `sync`/`snapshot`/`close`.
    None,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "group" => Ok(Durability::Group),
            "none" => Ok(Durability::None),
            _ => Err(format!(
                "unknown durability '{s}': expected fsync, group or none"
            )),
        }
    }
}

/// Tunables of a writer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability mode.
    pub durability: Durability,
    /// A packed block is sealed before it would exceed this many data bytes.
    pub block_size: u64,
    /// Artifacts longer than this get a block of their own.
    pub large_threshold: u64,
    /// Group commit: most appends pending before a sync.
    pub group_max: usize,
    /// Group commit: oldest pending append's age that forces a sync.
    pub group_delay: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Fsync,
            block_size: 4 << 20,
            large_threshold: 1 << 20,
            group_max: 4096,
            group_delay: Duration::from_millis(10),
        }
    }
}

/// A snapshot's id: the logseq of its SNAPSHOT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(pub u64);

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutReceipt {
    /// The artifact's key.
    pub key: ArtifactKey,
    /// Logseq of the PUT that made it visible (an earlier one when `new` is false).
    pub logseq: u64,
    /// Whether this call appended a record (false: the bytes were already there).
    pub new: bool,
    /// Whether the PUT is on stable storage now (see [`Store::durable_logseq`]).
    pub durable: bool,
}

/// The writer's host identity, recorded in every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Host name.
    pub host: String,
    /// First 8 bytes (LE) of BLAKE3(host).
    pub host_id: u64,
    /// Real user id.
    pub uid: u32,
}

/// Counters of `stat`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stat {
    /// Store directory.
    pub store: PathBuf,
    /// Format version.
    pub format_version: u32,
    /// Last logseq (= records in the log).
    pub last_logseq: u64,
    /// Last logseq on stable storage as far as this handle knows.
    pub durable_logseq: u64,
    /// Log bytes.
    pub log_bytes: u64,
    /// Artifacts in the current view.
    pub artifacts_live: u64,
    /// Artifacts whose bytes are stored (live, tombstoned or kept for snapshots).
    pub artifacts_stored: u64,
    /// Bytes of the live artifacts.
    pub bytes_live: u64,
    /// Blocks sealed and present.
    pub blocks_sealed: u64,
    /// Blocks open (0 or 1).
    pub blocks_open: u64,
    /// Blocks deleted by gc.
    pub blocks_freed: u64,
    /// Live snapshots.
    pub snapshots: u64,
}

/// Outcome of `verify`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Records in the log.
    pub records: u64,
    /// Blocks checked.
    pub blocks_checked: u64,
    /// Artifacts whose bytes were re-hashed.
    pub artifacts_checked: u64,
    /// Corruption and disagreements, each naming the block, artifact, record or cache.
    pub problems: Vec<String>,
    /// Harmless findings (a stale index cache, a rewritten index).
    pub notes: Vec<String>,
    /// Keys of corrupt artifacts.
    pub corrupt_keys: Vec<ArtifactKey>,
    /// Ids of corrupt blocks.
    pub corrupt_blocks: Vec<u64>,
}

/// What `gc` reclaimed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    /// Block files deleted.
    pub blocks_freed: u64,
    /// Bytes of block files deleted.
    pub bytes_freed: u64,
    /// Live artifacts copied out of mostly-dead blocks.
    pub artifacts_moved: u64,
    /// Unreachable artifacts whose bytes are gone.
    pub artifacts_dropped: u64,
}

struct OpenBlock {
    id: u64,
    file: File,
    data_len: u64,
    hasher: blake3::Hasher,
    /// Group mode: data bytes not yet written to the file (they start at `flushed`).
    buf: Vec<u8>,
    flushed: u64,
}

impl OpenBlock {
    /// Writes the buffered data to the file.
    fn flush(&mut self, dir: &Path) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let p = dir.join(BLOCKS).join(block::file_name(self.id));
        self.file
            .write_all_at(&self.buf, HEADER_LEN + self.flushed)
            .map_err(io_err(dir, "write", p))?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// The bytes at `loc` if they are still buffered.
    fn buffered(&self, loc: &Location) -> Option<&[u8]> {
        if loc.block_id != self.id || loc.offset < self.flushed {
            return None;
        }
        let s = usize::try_from(loc.offset - self.flushed).ok()?;
        self.buf
            .get(s..s.checked_add(usize::try_from(loc.length).ok()?)?)
    }
}

struct Writer {
    lock: File,
    log: File,
    opts: StoreOptions,
    open: Option<OpenBlock>,
    open_dirty: bool,
    /// Sealed block files written since the last sync.
    dirty: Vec<File>,
    dir_dirty: bool,
    pending: Vec<u8>,
    pending_count: usize,
    pending_since: Option<Instant>,
    /// Log bytes written to the file.
    written_len: u64,
    durable_logseq: u64,
    session_written: bool,
    poisoned: Option<(String, Option<i32>)>,
    /// Group mode: the background group committer.
    syncer: Option<Syncer>,
}

/// A store handle: the writer (one per store, holding the lock) or a reader.
pub struct Store {
    dir: PathBuf,
    state: State,
    bloom: Bloom,
    writer: Option<Writer>,
    identity: Identity,
    block_files: Mutex<HashMap<u64, Arc<File>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("writer", &self.writer.is_some())
            .field("last_logseq", &self.state.last_logseq)
            .finish()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn identity() -> Identity {
    let host = sys::host_name();
    let h = blake3::hash(host.as_bytes());
    let mut a = [0u8; 8];
    a.copy_from_slice(&h.as_bytes()[..8]);
    Identity {
        host_id: u64::from_le_bytes(a),
        host,
        uid: sys::uid(),
    }
}

/// The 64 superblock bytes (`specs/asl.md` §3).
pub fn superblock(created_ns: u64, id: &Identity) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&SUPER_MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&created_ns.to_le_bytes());
    b[24..32].copy_from_slice(&id.host_id.to_le_bytes());
    b[32..36].copy_from_slice(&id.uid.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

impl Store {
    fn io(
        &self,
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> AslError {
        io_err(&self.dir, op, path)
    }

    /// Creates a store in `dir` (created if missing; an existing directory must be
    /// empty) and opens it as the writer.
    pub fn create(dir: &Path, opts: StoreOptions) -> Result<Store> {
        let sb_path = dir.join(SUPERBLOCK);
        if sb_path.exists() {
            return Err(AslError::Exists {
                store: dir.into(),
                what: "a store".into(),
            });
        }
        if let Ok(rd) = fs::read_dir(dir) {
            let known = [LOG, LOCK, BLOCKS, "ASL.tmp"];
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&name.as_str()) {
                    return Err(AslError::Exists {
                        store: dir.into(),
                        what: format!("a non-empty directory (holding '{name}'), not a store,"),
                    });
                }
            }
        }
        let io = |op, p: &Path| io_err(dir, op, p.to_path_buf());
        fs::create_dir_all(dir.join(BLOCKS)).map_err(io("create directory", &dir.join(BLOCKS)))?;
        for name in [LOG, LOCK] {
            let p = dir.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io("create", &p))?;
        }
        let tmp = dir.join("ASL.tmp");
        let sb = superblock(now_ns(), &identity());
        fs::write(&tmp, sb)
            .and_then(|()| File::open(&tmp)?.sync_all())
            .map_err(io("write", &tmp))?;
        fs::rename(&tmp, &sb_path).map_err(io("rename", &sb_path))?;
        sync_dir(dir).map_err(io("sync directory", dir))?;
        Store::open(dir, opts)
    }

    /// Opens `dir` as its writer: takes the lock, recovers (truncates a torn log
    /// tail and the open block's unlogged bytes, deletes orphan block files).
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store> {
        check_superblock(dir)?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .map_err(io_err(dir, "open", &lock_path))?;
        if !sys::try_lock_exclusive(&lock).map_err(io_err(dir, "flock", &lock_path))? {
            return Err(AslError::Locked {
                store: dir.into(),
                lock: lock_path,
            });
        }
        let log_path = dir.join(LOG);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(io_err(dir, "open", &log_path))?;
        let mut s = Store::load(dir, Some(&log))?;
        let written_len = s.state.log_len;
        let durable = s.state.last_logseq;
        let open = s.recover_blocks()?;
        let syncer = if opts.durability == Durability::Group {
            let l2 = log.try_clone().map_err(io_err(dir, "dup", &log_path))?;
            Some(Syncer::start(l2, dir.join(BLOCKS), durable).map_err(io_err(
                dir,
                "start syncer for",
                &log_path,
            ))?)
        } else {
            None
        };
        s.writer = Some(Writer {
            lock,
            log,
            opts,
            open,
            open_dirty: false,
            dirty: Vec::new(),
            dir_dirty: false,
            pending: Vec::new(),
            pending_count: 0,
            pending_since: None,
            written_len,
            durable_logseq: durable,
            session_written: false,
            poisoned: None,
            syncer,
        });
        Ok(s)
    }

    /// Opens `dir` read-only, alongside a writer if there is one. The view is the
    /// log as it was at open (see [`Store::refresh`]); a torn tail is ignored.
    pub fn open_reader(dir: &Path) -> Result<Store> {
        check_superblock(dir)?;
        Store::load(dir, None)
    }

    /// Loads the index cache if it matches the log, then replays the rest of the
    /// log. With `truncate`, a torn tail is cut off the file.
    fn load(dir: &Path, truncate: Option<&File>) -> Result<Store> {
        let mut s = Store {
            dir: dir.into(),
            state: State::default(),
            bloom: Bloom::with_capacity(1024),
            writer: None,
            identity: identity(),
            block_files: Mutex::new(HashMap::new()),
        };
        let log_path = dir.join(LOG);
        let mut log = File::open(&log_path).map_err(s.io("open", &log_path))?;
        if let Some((st, bloom)) = s.cached_index(&log) {
            s.state = st;
            s.bloom = bloom;
        }
        s.replay_tail(&mut log, truncate)?;
        Ok(s)
    }

    fn cached_index(&self, log: &File) -> Option<(State, Bloom)> {
        let bytes = fs::read(self.dir.join(INDEX)).ok()?;
        let (st, bloom) = index::decode(&bytes).ok()?;
        if st.log_len == 0 {
            return None;
        }
        let flen = st.log_len.checked_sub(st.last_frame_offset)?;
        if flen > (record::FRAME_HEADER + record::MAX_PAYLOAD) as u64 {
            return None;
        }
        let mut frame = vec![0u8; flen as usize];
        log.read_exact_at(&mut frame, st.last_frame_offset).ok()?;
        match Record::decode(&frame) {
            Ok((r, n)) if n == frame.len() && r.header.logseq == st.last_logseq => {
                Some((st, bloom))
            }
            _ => None,
        }
    }

    /// Replays log records after `state.log_len`.
    fn replay_tail(&mut self, log: &mut File, truncate: Option<&File>) -> Result<()> {
        let log_path = self.dir.join(LOG);
        let mut buf = Vec::new();
        log.seek(SeekFrom::Start(self.state.log_len))
            .and_then(|_| log.read_to_end(&mut buf))
            .map_err(self.io("read", &log_path))?;
        let base = self.state.log_len;
        let mut o = 0usize;
        let mut new_keys = Vec::new();
        while o < buf.len() {
            match Record::decode(&buf[o..]) {
                Ok((r, n)) => {
                    if r.header.logseq != self.state.last_logseq + 1 {
                        return Err(AslError::Corrupt {
                            store: self.dir.clone(),
                            what: format!(
                                "log record at offset {}: logseq {} follows {}",
                                base + o as u64,
                                r.header.logseq,
                                self.state.last_logseq
                            ),
                        });
                    }
                    if let RecordBody::Put { key, .. } = &r.body {
                        new_keys.push(*key);
                    }
                    self.state.apply(&r, base + o as u64, n as u64);
                    o += n;
                }
                Err(e) => {
                    if let Some(later) = record::find_later_frame(&buf[o..], self.state.last_logseq)
                    {
                        return Err(AslError::Corrupt {
                            store: self.dir.clone(),
                            what: format!(
                                "log record at offset {} (after logseq {}): {e}; a valid record follows at offset {}, so this is damage, not a torn tail",
                                base + o as u64,
                                self.state.last_logseq,
                                base + (o + later) as u64
                            ),
                        });
                    }
                    if let Some(f) = truncate {
                        let at = base + o as u64;
                        f.set_len(at)
                            .and_then(|()| f.sync_all())
                            .map_err(self.io("truncate torn tail of", &log_path))?;
                    }
                    break;
                }
            }
        }
        for k in &new_keys {
            self.bloom.insert(k);
        }
        self.grow_bloom();
        Ok(())
    }

    fn grow_bloom(&mut self) {
        if self.state.entries.len() > self.bloom.capacity() {
            let n = (self.state.entries.len() * 2).max(1024);
            self.bloom = Bloom::build(n, self.state.entries.keys());
        }
    }

    /// Reads new records appended by the writer since this reader opened.
    pub fn refresh(&mut self) -> Result<()> {
        if self.writer.is_some() {
            return Ok(());
        }
        let p = self.dir.join(LOG);
        let mut log = File::open(&p).map_err(self.io("open", &p))?;
        self.replay_tail(&mut log, None)
    }

    /// Writer recovery: re-opens the open block (cut to what the log references),
    /// deletes block files the log does not reference or has freed.
    fn recover_blocks(&mut self) -> Result<Option<OpenBlock>> {
        let bdir = self.dir.join(BLOCKS);
        let next = self.state.next_block_id();
        let rd = fs::read_dir(&bdir).map_err(self.io("list", &bdir))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = block::parse_file_name(&name) else {
                continue;
            };
            let orphan = id >= next || self.state.blocks.get(&id).is_some_and(|b| b.freed);
            if orphan {
                fs::remove_file(e.path()).map_err(self.io("remove orphan block", e.path()))?;
            }
        }
        let Some(id) = self.state.open_block() else {
            return Ok(None);
        };
        let data_len = self.state.blocks[&id].data_len;
        let p = bdir.join(block::file_name(id));
        if p.exists() {
            // A crash between sealing the file and logging SEAL left it read-only.
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
                .map_err(self.io("chmod", &p))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(self.io("open", &p))?;
        let mut hb = [0u8; 64];
        let header_ok = file.read_exact_at(&mut hb, 0).is_ok()
            && BlockHeader::decode(&hb).is_ok_and(|h| h.block_id == id);
        if !header_ok {
            let h = BlockHeader {
                block_id: id,
                kind: BlockKind::Packed,
            };
            file.write_all_at(&h.encode(), 0)
                .map_err(self.io("write", &p))?;
        }
        file.set_len(HEADER_LEN.saturating_add(data_len))
            .and_then(|()| file.sync_all())
            .map_err(self.io("truncate", &p))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < data_len {
            let n = (data_len - off).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], HEADER_LEN + off)
                .map_err(self.io("read", &p))?;
            hasher.update(&buf[..n]);
            off += n as u64;
        }
        Ok(Some(OpenBlock {
            id,
            file,
            data_len,
            hasher,
            buf: Vec::new(),
            flushed: data_len,
        }))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity recorded in this handle's records.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The store clock: nanoseconds since the Unix epoch, never below the last
    /// record's clock + 1.
    pub fn clock(&self) -> u64 {
        now_ns().max(self.state.last_clock + 1)
    }

    /// Logseq of the last record (including appends not yet durable).
    pub fn last_logseq(&self) -> u64 {
        self.state.last_logseq
    }

    /// Every record up to this logseq is on stable storage. For a reader: the last
    /// record it has read.
    pub fn durable_logseq(&self) -> u64 {
        match &self.writer {
            None => self.state.last_logseq,
            Some(w) => match &w.syncer {
                Some(sy) => sy.durable().unwrap_or(w.durable_logseq),
                None => w.durable_logseq,
            },
        }
    }

    /// Whether this handle is the writer.
    pub fn is_writer(&self) -> bool {
        self.writer.is_some()
    }

    fn writer(&mut self) -> Result<&mut Writer> {
        let dir = self.dir.clone();
        let w = self.writer.as_mut().ok_or(AslError::ReadOnly {
            store: dir.clone(),
            why: "opened as a reader",
        })?;
        if w.poisoned.is_none()
            && let Some(Err(e)) = w.syncer.as_ref().map(Syncer::durable)
        {
            w.poisoned = Some(e);
        }
        if let Some((cause, errno)) = &w.poisoned {
            return Err(AslError::Poisoned {
                store: dir,
                cause: cause.clone(),
                errno: *errno,
            });
        }
        Ok(w)
    }

    /// Runs a write step; a failure poisons the writer.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        self.writer()?;
        let r = f(self);
        if let Err(e @ AslError::Io { source, .. }) = &r
            && let Some(w) = self.writer.as_mut()
            && w.poisoned.is_none()
        {
            w.poisoned = Some((e.to_string(), source.raw_os_error()));
        }
        r
    }

    /// Appends a record (in memory; written per the durability mode) and applies it.
    fn append(&mut self, body: RecordBody) -> Result<u64> {
        if !self.writer()?.session_written {
            self.writer()?.session_written = true;
            let pid = std::process::id();
            let host = self.identity.host.clone();
            self.append(RecordBody::Session { pid, host })?;
        }
        let header = RecordHeader {
            logseq: self.state.last_logseq + 1,
            clock_ns: self.clock(),
            host_id: self.identity.host_id,
            uid: self.identity.uid,
        };
        let r = Record { header, body };
        let w = self.writer()?;
        let off = w.written_len + w.pending.len() as u64;
        let before = w.pending.len();
        r.encode_into(&mut w.pending);
        let len = (w.pending.len() - before) as u64;
        w.pending_count += 1;
        w.pending_since.get_or_insert_with(Instant::now);
        self.state.apply(&r, off, len);
        Ok(header.logseq)
    }

    /// Applies the durability policy after an artifact's records were appended.
    fn settle(&mut self) -> Result<()> {
        let w = self.writer()?;
        match w.opts.durability {
            Durability::Fsync => self.commit(true),
            Durability::None => self.commit(false),
            Durability::Group => {
                let due = w.syncer.as_ref().is_none_or(Syncer::idle)
                    || w.pending_count >= w.opts.group_max
                    || w.pending_since
                        .is_some_and(|t| t.elapsed() >= w.opts.group_delay);
                if due { self.hand_over() } else { Ok(()) }
            }
        }
    }

    /// Writes pending records; with `sync`, first syncs the blocks they reference
    /// (and the blocks directory), then the log.
    fn commit(&mut self, sync: bool) -> Result<()> {
        let dir = self.dir.clone();
        let last = self.state.last_logseq;
        if self.writer()?.syncer.is_some() {
            self.hand_over()?;
            if sync {
                let w = self.writer()?;
                if let Some(sy) = &w.syncer {
                    match sy.wait(last) {
                        Ok(d) => w.durable_logseq = d,
                        Err(e) => {
                            w.poisoned = Some(e);
                            self.writer()?;
                        }
                    }
                }
            }
            return Ok(());
        }
        let w = self.writer()?;
        let bpath = || dir.join(BLOCKS);
        if sync {
            if w.open_dirty
                && let Some(ob) = &w.open
            {
                ob.file.sync_data().map_err(io_err(
                    &dir,
                    "sync",
                    bpath().join(block::file_name(ob.id)),
                ))?;
                w.open_dirty = false;
            }
            for f in w.dirty.drain(..) {
                f.sync_data().map_err(io_err(&dir, "sync", bpath()))?;
            }
            if w.dir_dirty {
                sync_dir(&bpath()).map_err(io_err(&dir, "sync directory", bpath()))?;
                w.dir_dirty = false;
            }
        }
        if !w.pending.is_empty() {
            w.log
                .write_all_at(&w.pending, w.written_len)
                .map_err(io_err(&dir, "append to", dir.join(LOG)))?;
            w.written_len += w.pending.len() as u64;
            w.pending.clear();
            w.pending_count = 0;
            w.pending_since = None;
        }
        if sync {
            if w.durable_logseq < last {
                w.log
                    .sync_data()
                    .map_err(io_err(&dir, "sync", dir.join(LOG)))?;
            }
            w.durable_logseq = last;
        }
        Ok(())
    }

    /// Group mode: hands the pending records, and the block files they need synced
    /// first, to the syncer.
    fn hand_over(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        let last = self.state.last_logseq;
        let w = self.writer()?;
        if w.pending.is_empty() {
            return Ok(());
        }
        let mut files: Vec<File> = w.dirty.drain(..).collect();
        if w.open_dirty
            && let Some(ob) = &mut w.open
        {
            ob.flush(&dir)?;
            let p = dir.join(BLOCKS).join(block::file_name(ob.id));
            files.push(ob.file.try_clone().map_err(io_err(&dir, "dup", p))?);
            w.open_dirty = false;
        }
        let records = std::mem::take(&mut w.pending);
        let b = Batch {
            offset: w.written_len,
            last_logseq: last,
            files,
            sync_dir: std::mem::take(&mut w.dir_dirty),
            records,
        };
        w.written_len += b.records.len() as u64;
        w.pending_count = 0;
        w.pending_since = None;
        if let Some(sy) = &w.syncer {
            sy.hand_over(b);
        }
        Ok(())
    }

    /// Makes every append so far durable; returns the durable logseq.
    pub fn sync(&mut self) -> Result<u64> {
        self.guarded(|s| s.commit(true))?;
        Ok(self.durable_logseq())
    }

    /// Stores `bytes` with an optional type tag. Idempotent: the same bytes with the
    /// same tag return the existing receipt; with a different tag, `EXISTS`.
    pub fn put(&mut self, bytes: &[u8], type_tag: Option<u32>) -> Result<PutReceipt> {
        self.writer()?;
        let large = bytes.len() as u64 > self.writer()?.opts.large_threshold;
        let key = if large {
            None
        } else {
            Some(ArtifactKey::of(bytes))
        };
        if let Some(k) = key
            && let Some(r) = self.existing(&k, type_tag)?
        {
            return Ok(r);
        }
        self.guarded(|s| {
            let (key, logseq) = if large {
                s.put_large(bytes, type_tag)?
            } else {
                let k = key.unwrap_or_else(|| ArtifactKey::of(bytes));
                (k, s.put_small(k, bytes, type_tag)?)
            };
            if logseq == 0 {
                // put_large found the bytes already stored.
                return s
                    .existing(&key, type_tag)?
                    .ok_or_else(|| AslError::Corrupt {
                        store: s.dir.clone(),
                        what: format!("index entry for key {key} vanished during put"),
                    });
            }
            s.settle()?;
            Ok(PutReceipt {
                key,
                logseq,
                new: true,
                durable: s.durable_logseq() >= logseq,
            })
        })
    }

    /// The receipt for bytes already stored (re-PUT if tombstoned).
    fn existing(&mut self, key: &ArtifactKey, type_tag: Option<u32>) -> Result<Option<PutReceipt>> {
        let Some(e) = self.state.entries.get(key).copied() else {
            return Ok(None);
        };
        if e.live {
            if e.type_tag != type_tag {
                return Err(AslError::Exists {
                    store: self.dir.clone(),
                    what: format!("key {key} with type tag {}", tag_str(e.type_tag)),
                });
            }
            return Ok(Some(PutReceipt {
                key: *key,
                logseq: e.logseq,
                new: false,
                durable: self.durable_logseq() >= e.logseq,
            }));
        }
        let logseq = self.guarded(|s| {
            let l = s.append(RecordBody::Put {
                key: *key,
                loc: e.loc,
                type_tag,
            })?;
            s.settle()?;
            Ok(l)
        })?;
        Ok(Some(PutReceipt {
            key: *key,
            logseq,
            new: true,
            durable: self.durable_logseq() >= logseq,
        }))
    }

    fn new_block_file(&mut self, kind: BlockKind) -> Result<(u64, File)> {
        let id = self.state.next_block_id().max(
            self.writer
                .as_ref()
                .and_then(|w| w.open.as_ref())
                .map_or(0, |o| o.id + 1),
        );
        let p = self.dir.join(BLOCKS).join(block::file_name(id));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .map_err(self.io("create", &p))?;
        f.write_all_at(&BlockHeader { block_id: id, kind }.encode(), 0)
            .map_err(self.io("write", &p))?;
        self.writer()?.dir_dirty = true;
        Ok((id, f))
    }

    /// Packs a small artifact into the open block; returns the PUT's logseq.
    fn put_small(&mut self, key: ArtifactKey, bytes: &[u8], type_tag: Option<u32>) -> Result<u64> {
        let loc = self.pack(bytes)?;
        let logseq = self.append(RecordBody::Put { key, loc, type_tag })?;
        self.bloom.insert(&key);
        self.grow_bloom();
        Ok(logseq)
    }

    /// Writes bytes at the end of the open block (sealing a full one first).
    fn pack(&mut self, bytes: &[u8]) -> Result<Location> {
        let len = bytes.len() as u64;
        let w = self.writer()?;
        let full = w
            .open
            .as_ref()
            .is_some_and(|o| o.data_len > 0 && o.data_len + len > w.opts.block_size);
        if full {
            self.seal_open()?;
        }
        if self.writer()?.open.is_none() {
            let (id, file) = self.new_block_file(BlockKind::Packed)?;
            self.writer()?.open = Some(OpenBlock {
                id,
                file,
                data_len: 0,
                hasher: blake3::Hasher::new(),
                buf: Vec::new(),
                flushed: 0,
            });
        }
        let dir = self.dir.clone();
        let w = self.writer()?;
        let Some(ob) = w.open.as_mut() else {
            return Err(AslError::Corrupt {
                store: dir,
                what: "writer state: no open block after creating one".into(),
            });
        };
        if w.syncer.is_some() {
            ob.buf.extend_from_slice(bytes);
        } else {
            ob.file
                .write_all_at(bytes, HEADER_LEN + ob.data_len)
                .map_err(io_err(
                    &dir,
                    "write",
                    dir.join(BLOCKS).join(block::file_name(ob.id)),
                ))?;
            ob.flushed = ob.data_len + len;
        }
        ob.hasher.update(bytes);
        let loc = Location {
            block_id: ob.id,
            offset: ob.data_len,
            length: len,
        };
        ob.data_len += len;
        w.open_dirty = true;
        Ok(loc)
    }

    /// Seals the open block: trailer, read-only, SEAL record.
    fn seal_open(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        let w = self.writer()?;
        // Flush first: if that fails the block stays open with its buffer, so the
        // (poisoned) handle still reads what it acknowledged.
        if let Some(ob) = w.open.as_mut() {
            ob.flush(&dir)?;
        }
        let Some(ob) = w.open.take() else {
            return Ok(());
        };
        w.open_dirty = false;
        let checksum = *ob.hasher.finalize().as_bytes();
        let p = dir.join(BLOCKS).join(block::file_name(ob.id));
        let t = BlockTrailer {
            data_len: ob.data_len,
            checksum,
        };
        ob.file
            .write_all_at(&t.encode(), HEADER_LEN + ob.data_len)
            .map_err(io_err(&dir, "write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o444))
            .map_err(io_err(&dir, "chmod", &p))?;
        w.dirty.push(ob.file);
        self.append(RecordBody::Seal {
            block_id: ob.id,
            data_len: t.data_len,
            checksum,
        })?;
        Ok(())
    }

    /// A large artifact in its own block: hashed on this thread while another
    /// writes it, sealed at once. Returns logseq 0 if the bytes were already stored.
    fn put_large(&mut self, bytes: &[u8], type_tag: Option<u32>) -> Result<(ArtifactKey, u64)> {
        let (id, file) = self.new_block_file(BlockKind::Single)?;
        let p = self.dir.join(BLOCKS).join(block::file_name(id));
        let (hash, wrote) = hash_while_writing(&file, bytes);
        let key = ArtifactKey(*hash.as_bytes());
        if wrote.is_err() || self.state.entries.contains_key(&key) {
            drop(file);
            let _ = fs::remove_file(&p);
            wrote.map_err(self.io("write", &p))?;
            return Ok((key, 0));
        }
        let len = bytes.len() as u64;
        let t = BlockTrailer {
            data_len: len,
            checksum: key.0,
        };
        file.write_all_at(&t.encode(), HEADER_LEN + len)
            .map_err(self.io("write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).map_err(self.io("chmod", &p))?;
        self.writer()?.dirty.push(file);
        self.append(RecordBody::Seal {
            block_id: id,
            data_len: len,
            checksum: key.0,
        })?;
        let logseq = self.append(RecordBody::Put {
            key,
            loc: Location {
                block_id: id,
                offset: 0,
                length: len,
            },
            type_tag,
        })?;
        self.bloom.insert(&key);
        self.grow_bloom();
        Ok((key, logseq))
    }

    /// The entry of a live key, via the bloom filter.
    pub fn locate(&self, key: &ArtifactKey) -> Option<&Entry> {
        if !self.bloom.may_contain(key) {
            return None;
        }
        self.state.entries.get(key).filter(|e| e.live)
    }

    /// Whether a key is live in the current view.
    pub fn contains(&self, key: &ArtifactKey) -> bool {
        self.locate(key).is_some()
    }

    /// The bytes of a live artifact, checked against its key.
    pub fn get(&self, key: &ArtifactKey) -> Result<Vec<u8>> {
        let e = *self.locate(key).ok_or_else(|| AslError::NotFound {
            store: self.dir.clone(),
            what: format!("key {key}"),
        })?;
        self.read_checked(key, &e.loc)
    }

    fn block_file(&self, id: u64) -> Result<Arc<File>> {
        let mut m = self
            .block_files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = m.get(&id) {
            return Ok(f.clone());
        }
        let p = self.dir.join(BLOCKS).join(block::file_name(id));
        let f = Arc::new(File::open(&p).map_err(self.io("open", &p))?);
        m.insert(id, f.clone());
        Ok(f)
    }

    fn read_checked(&self, key: &ArtifactKey, loc: &Location) -> Result<Vec<u8>> {
        if let Some(b) = self
            .writer
            .as_ref()
            .and_then(|w| w.open.as_ref())
            .and_then(|o| o.buffered(loc))
        {
            return Ok(b.to_vec());
        }
        let f = self.block_file(loc.block_id)?;
        let len = usize::try_from(loc.length).map_err(|_| AslError::Corrupt {
            store: self.dir.clone(),
            what: format!("artifact {key}: length {} too large", loc.length),
        })?;
        let mut buf = vec![0u8; len];
        let corrupt = |why: String| AslError::Corrupt {
            store: self.dir.clone(),
            what: format!(
                "artifact {key} in block {} (offset {}, length {}): {why}",
                block::file_name(loc.block_id),
                loc.offset,
                loc.length
            ),
        };
        f.read_exact_at(&mut buf, HEADER_LEN.saturating_add(loc.offset))
            .map_err(|e| corrupt(format!("read failed: {e}")))?;
        if ArtifactKey::of(&buf) != *key {
            return Err(corrupt("content does not match its key (BLAKE3)".into()));
        }
        Ok(buf)
    }

    /// Hides a live key from the current view (snapshots keep seeing it).
    pub fn tombstone(&mut self, key: &ArtifactKey) -> Result<u64> {
        if self.locate(key).is_none() {
            return Err(AslError::NotFound {
                store: self.dir.clone(),
                what: format!("key {key}"),
            });
        }
        self.guarded(|s| {
            let l = s.append(RecordBody::Tombstone { key: *key })?;
            s.settle()?;
            Ok(l)
        })
    }

    /// Live artifacts whose latest PUT has logseq ≥ `since`, optionally of one type
    /// tag, in logseq order.
    pub fn list(&self, since: u64, type_tag: Option<u32>) -> Vec<(ArtifactKey, Entry)> {
        let mut v: Vec<_> = self
            .state
            .entries
            .iter()
            .filter(|(_, e)| {
                e.live && e.logseq >= since && (type_tag.is_none() || e.type_tag == type_tag)
            })
            .map(|(k, e)| (*k, *e))
            .collect();
        v.sort_by_key(|(_, e)| e.logseq);
        v
    }

    /// Takes a snapshot: seals the open block, appends a SNAPSHOT record, syncs,
    /// and rewrites the index cache. The snapshot sees exactly the current view.
    pub fn snapshot(&mut self) -> Result<SnapshotId> {
        let live = self.state.entries.values().filter(|e| e.live).count() as u64;
        let id = self.guarded(|s| {
            s.seal_open()?;
            let id = s.append(RecordBody::Snapshot { artifacts: live })?;
            s.commit(true)?;
            Ok(id)
        })?;
        self.write_index()?;
        Ok(SnapshotId(id))
    }

    /// Live snapshots: (id, clock_ns).
    pub fn snapshots(&self) -> Vec<(SnapshotId, u64)> {
        self.state
            .snapshots
            .iter()
            .map(|(id, c)| (SnapshotId(*id), *c))
            .collect()
    }

    /// Drops a snapshot so gc may reclaim what only it saw.
    pub fn drop_snapshot(&mut self, id: SnapshotId) -> Result<()> {
        self.snapshot_exists(id)?;
        self.guarded(|s| {
            s.append(RecordBody::SnapshotDrop { id: id.0 })?;
            s.commit(true)
        })
    }

    fn snapshot_exists(&self, id: SnapshotId) -> Result<()> {
        if self.state.snapshots.contains_key(&id.0) {
            Ok(())
        } else {
            Err(AslError::NotFound {
                store: self.dir.clone(),
                what: format!("snapshot {}", id.0),
            })
        }
    }

    /// A read-only handle on a snapshot's view.
    pub fn mount_snapshot(&self, id: SnapshotId) -> Result<SnapshotHandle> {
        self.snapshot_exists(id)?;
        let reader = Store::open_reader(&self.dir)?;
        let mut visible = HashMap::new();
        for (_, r) in reader.records()? {
            if r.header.logseq > id.0 {
                break;
            }
            apply_visibility(&mut visible, &r);
        }
        Ok(SnapshotHandle {
            id,
            reader,
            visible,
        })
    }

    /// Every record in the log file, with its offset. Stops at a torn tail.
    pub fn records(&self) -> Result<Vec<(u64, Record)>> {
        let p = self.dir.join(LOG);
        let buf = fs::read(&p).map_err(self.io("read", &p))?;
        let mut out = Vec::new();
        let mut o = 0;
        while let Ok((r, n)) = Record::decode(&buf[o..]) {
            out.push((o as u64, r));
            o += n;
        }
        Ok(out)
    }

    /// Reclaims blocks no view (current or live snapshot) needs; copies the live
    /// artifacts out of sealed blocks that are mostly unreachable first.
    pub fn gc(&mut self) -> Result<GcReport> {
        self.guarded(|s| s.commit(true))?;
        let mut keep: HashSet<ArtifactKey> = self
            .state
            .entries
            .iter()
            .filter(|(_, e)| e.live)
            .map(|(k, _)| *k)
            .collect();
        let mut visible = HashMap::new();
        for (_, r) in self.records()? {
            apply_visibility(&mut visible, &r);
            if matches!(r.body, RecordBody::Snapshot { .. })
                && self.state.snapshots.contains_key(&r.header.logseq)
            {
                keep.extend(visible.keys().copied());
            }
        }
        let open = self
            .writer
            .as_ref()
            .and_then(|w| w.open.as_ref())
            .map(|o| o.id);
        let mut by_block: HashMap<u64, Vec<(ArtifactKey, Entry)>> = HashMap::new();
        for (k, e) in &self.state.entries {
            by_block.entry(e.loc.block_id).or_default().push((*k, *e));
        }
        let mut report = GcReport::default();
        let mut free = Vec::new();
        let mut moves = Vec::new();
        for (id, b) in &self.state.blocks {
            if b.freed || b.sealed.is_none() || Some(*id) == open {
                continue;
            }
            let arts = by_block.remove(id).unwrap_or_default();
            let kept: Vec<_> = arts.iter().filter(|(k, _)| keep.contains(k)).collect();
            let kept_bytes: u64 = kept.iter().map(|(_, e)| e.loc.length).sum();
            if kept.is_empty() || kept_bytes * 2 < b.data_len {
                moves.extend(kept.iter().map(|(k, e)| (*k, e.loc)));
                report.artifacts_dropped += (arts.len() - kept.len()) as u64;
                free.push(*id);
            }
        }
        self.guarded(|s| {
            for (k, loc) in &moves {
                let bytes = s.read_checked(k, loc)?;
                let new = s.pack(&bytes)?;
                s.append(RecordBody::Move { key: *k, loc: new })?;
                report.artifacts_moved += 1;
            }
            s.commit(true)?;
            for id in &free {
                s.append(RecordBody::Free { block_id: *id })?;
            }
            s.commit(true)
        })?;
        let mut files = self
            .block_files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in &free {
            files.remove(id);
            let p = self.dir.join(BLOCKS).join(block::file_name(*id));
            if let Ok(m) = fs::metadata(&p) {
                report.bytes_freed += m.len();
            }
            fs::remove_file(&p).map_err(io_err(&self.dir, "remove", &p))?;
            report.blocks_freed += 1;
        }
        drop(files);
        self.bloom = Bloom::build(
            self.state.entries.len().max(1024),
            self.state.entries.keys(),
        );
        self.write_index()?;
        Ok(report)
    }

    /// Writes the index cache (state + bloom) atomically; only what is in the log file.
    fn write_index(&mut self) -> Result<()> {
        if let Some(w) = &self.writer
            && !w.pending.is_empty()
        {
            return Ok(());
        }
        let bytes = index::encode(&self.state);
        let tmp = self.dir.join("index.tmp");
        let p = self.dir.join(INDEX);
        if let Err(e) = fs::write(&tmp, bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io("write", &tmp)(e));
        }
        fs::rename(&tmp, &p).map_err(self.io("rename", &p))
    }

    /// Rebuilds the state and bloom from the log, compares them with this handle's
    /// and the index file's, and re-hashes every block and artifact. The writer
    /// rewrites a stale or wrong index file.
    pub fn verify(&mut self) -> Result<VerifyReport> {
        if self.writer.is_some() {
            self.guarded(|s| s.commit(true))?;
        }
        let mut rep = VerifyReport::default();
        let p = self.dir.join(LOG);
        let buf = fs::read(&p).map_err(self.io("read", &p))?;
        let mut rebuilt = State::default();
        let mut o = 0usize;
        while o < buf.len() {
            match Record::decode(&buf[o..]) {
                Ok((r, n)) => {
                    if r.header.logseq != rebuilt.last_logseq + 1 {
                        rep.problems.push(format!(
                            "log record at offset {o}: logseq {} follows {}",
                            r.header.logseq, rebuilt.last_logseq
                        ));
                    }
                    rebuilt.apply(&r, o as u64, n as u64);
                    o += n;
                    rep.records += 1;
                }
                Err(e) => {
                    let msg = format!(
                        "log record at offset {o} (after logseq {}): {e}",
                        rebuilt.last_logseq
                    );
                    if self.writer.is_none() && o as u64 >= self.state.log_len {
                        rep.notes.push(format!("{msg} (tail still being written?)"));
                    } else {
                        rep.problems.push(msg);
                    }
                    break;
                }
            }
        }
        if rebuilt.last_logseq != self.state.last_logseq {
            rep.notes.push(format!(
                "log grew since this reader opened (logseq {} now {})",
                self.state.last_logseq, rebuilt.last_logseq
            ));
        } else if rebuilt != self.state {
            rep.problems.push(format!(
                "in-memory index differs from the one rebuilt from the log (logseq {} vs {})",
                self.state.last_logseq, rebuilt.last_logseq
            ));
        }
        for k in rebuilt.entries.keys() {
            if self.state.entries.contains_key(k) && !self.bloom.may_contain(k) {
                rep.problems.push(format!("bloom filter misses key {k}"));
            }
        }
        let mut rewrite = false;
        match fs::read(self.dir.join(INDEX)) {
            Err(_) => {
                rep.notes
                    .push("index file absent (rebuilt from the log)".into());
                rewrite = true;
            }
            Ok(bytes) => match index::decode(&bytes) {
                Err(e) => {
                    rep.problems.push(format!(
                        "index file {}: {e}",
                        self.dir.join(INDEX).display()
                    ));
                    rewrite = true;
                }
                Ok((ist, ibloom)) => {
                    if ist.log_len != rebuilt.log_len {
                        rep.notes.push(format!(
                            "index file covers logseq {} of {} (stale cache)",
                            ist.last_logseq, rebuilt.last_logseq
                        ));
                        rewrite = true;
                    } else if ist != rebuilt {
                        rep.problems
                            .push("index file differs from the index rebuilt from the log".into());
                        rewrite = true;
                    } else if let Some(k) = rebuilt.entries.keys().find(|k| !ibloom.may_contain(k))
                    {
                        rep.problems
                            .push(format!("index file's bloom filter misses key {k}"));
                        rewrite = true;
                    } else if ibloom != Bloom::build(rebuilt.entries.len(), rebuilt.entries.keys())
                    {
                        rep.problems
                            .push("index file's bloom filter differs from the rebuilt one".into());
                        rewrite = true;
                    }
                }
            },
        }
        self.check_blocks(&rebuilt, &mut rep);
        if rewrite && self.writer.is_some() && rebuilt == self.state {
            match self.write_index() {
                Ok(()) => rep.notes.push("index file rewritten".into()),
                Err(e) => rep.notes.push(format!("index file not rewritten: {e}")),
            }
        }
        Ok(rep)
    }

    fn check_blocks(&self, st: &State, rep: &mut VerifyReport) {
        let mut by_block: HashMap<u64, Vec<(ArtifactKey, Location)>> = HashMap::new();
        for (k, e) in &st.entries {
            by_block
                .entry(e.loc.block_id)
                .or_default()
                .push((*k, e.loc));
        }
        for (id, b) in &st.blocks {
            if b.freed {
                continue;
            }
            rep.blocks_checked += 1;
            let name = block::file_name(*id);
            let p = self.dir.join(BLOCKS).join(&name);
            let bad_block = |rep: &mut VerifyReport, why: String| {
                rep.problems.push(format!("block {name}: {why}"));
                if !rep.corrupt_blocks.contains(id) {
                    rep.corrupt_blocks.push(*id);
                }
            };
            let data = match fs::read(&p) {
                Ok(d) => d,
                Err(e) => {
                    bad_block(rep, format!("unreadable: {e}"));
                    for (k, _) in by_block.get(id).into_iter().flatten() {
                        rep.problems
                            .push(format!("artifact {k}: its block {name} is unreadable"));
                        rep.corrupt_keys.push(*k);
                    }
                    continue;
                }
            };
            let h = HEADER_LEN as usize;
            let mut hb = [0u8; 64];
            if data.len() >= h {
                hb.copy_from_slice(&data[..h]);
            }
            match BlockHeader::decode(&hb) {
                Ok(hd) if hd.block_id == *id => {}
                Ok(hd) => bad_block(rep, format!("header names block {}", hd.block_id)),
                Err(e) => bad_block(rep, format!("header: {e}")),
            }
            let dl = b.data_len as usize;
            if let Some(sum) = b.sealed {
                let want = h.saturating_add(dl).saturating_add(TRAILER_LEN as usize);
                if data.len() != want {
                    bad_block(
                        rep,
                        format!("length {} but sealed length is {want}", data.len()),
                    );
                } else {
                    let mut tb = [0u8; 64];
                    tb.copy_from_slice(&data[h + dl..]);
                    match BlockTrailer::decode(&tb) {
                        Ok(t) if t.data_len == b.data_len && t.checksum == sum => {}
                        Ok(_) => bad_block(rep, "trailer disagrees with its SEAL record".into()),
                        Err(e) => bad_block(rep, format!("trailer: {e}")),
                    }
                    if blake3::hash(&data[h..h + dl]).as_bytes() != &sum {
                        bad_block(rep, "data region does not match its sealed BLAKE3".into());
                    }
                }
            } else if data.len() < h.saturating_add(dl) {
                bad_block(
                    rep,
                    format!(
                        "length {} shorter than logged data {}",
                        data.len(),
                        h.saturating_add(dl)
                    ),
                );
            }
            for (k, loc) in by_block.get(id).into_iter().flatten() {
                rep.artifacts_checked += 1;
                let s = (h as u64).saturating_add(loc.offset);
                let ok = usize::try_from(s.saturating_add(loc.length))
                    .ok()
                    .filter(|&e| e <= data.len())
                    .is_some_and(|e| ArtifactKey::of(&data[s as usize..e]) == *k);
                if !ok {
                    rep.problems.push(format!(
                        "artifact {k} in block {name} (offset {}, length {}): content does not match its key",
                        loc.offset, loc.length
                    ));
                    rep.corrupt_keys.push(*k);
                }
            }
        }
        rep.corrupt_keys.sort();
    }

    /// Counters.
    pub fn stat(&self) -> Stat {
        let live: Vec<_> = self.state.entries.values().filter(|e| e.live).collect();
        let b = &self.state.blocks;
        Stat {
            store: self.dir.clone(),
            format_version: FORMAT_VERSION,
            last_logseq: self.state.last_logseq,
            durable_logseq: self.durable_logseq(),
            log_bytes: self.state.log_len,
            artifacts_live: live.len() as u64,
            artifacts_stored: self.state.entries.len() as u64,
            bytes_live: live.iter().map(|e| e.loc.length).sum(),
            blocks_sealed: b
                .values()
                .filter(|x| x.sealed.is_some() && !x.freed)
                .count() as u64,
            blocks_open: b
                .values()
                .filter(|x| x.sealed.is_none() && !x.freed)
                .count() as u64,
            blocks_freed: b.values().filter(|x| x.freed).count() as u64,
            snapshots: self.state.snapshots.len() as u64,
        }
    }

    /// Durable flush: seals the open block, syncs everything, writes the index
    /// cache and releases the lock. A reader just closes.
    pub fn close(mut self) -> Result<()> {
        if self.writer.is_none() {
            return Ok(());
        }
        self.guarded(|s| {
            s.seal_open()?;
            s.commit(true)
        })?;
        self.write_index()?;
        self.writer = None;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Best effort: pending appends reach the log (synced) even without close.
        if self.writer.as_ref().is_some_and(|w| w.poisoned.is_none()) {
            let _ = self.commit(true);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The syncer stops (finishing its queue) before another writer may start.
        self.syncer.take();
        sys::unlock(&self.lock);
    }
}

/// Pipeline chunk for large artifacts: hashed on this thread, then written by
/// another while the next one is hashed (the chunk is still in cache).
const PIPE_CHUNK: usize = 1 << 20;

fn hash_while_writing(file: &File, bytes: &[u8]) -> (blake3::Hash, std::io::Result<()>) {
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<usize>(8);
        let writer = sc.spawn(move || -> std::io::Result<()> {
            let mut res = Ok(());
            for off in rx {
                if res.is_ok() {
                    let end = (off + PIPE_CHUNK).min(bytes.len());
                    res = file.write_all_at(&bytes[off..end], HEADER_LEN + off as u64);
                }
            }
            res
        });
        let mut h = blake3::Hasher::new();
        for (i, chunk) in bytes.chunks(PIPE_CHUNK).enumerate() {
            h.update(chunk);
            if tx.send(i * PIPE_CHUNK).is_err() {
                break;
            }
        }
        drop(tx);
        let wrote = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")));
        (h.finalize(), wrote)
    })
}

fn tag_str(t: Option<u32>) -> String {
    t.map_or_else(|| "none".into(), |t| t.to_string())
}

fn apply_visibility(visible: &mut HashMap<ArtifactKey, (Option<u32>, u64)>, r: &Record) {
    match &r.body {
        RecordBody::Put { key, type_tag, .. } => {
            visible.insert(*key, (*type_tag, r.header.logseq));
        }
        RecordBody::Tombstone { key } => {
            visible.remove(key);
        }
        _ => {}
    }
}

fn io_err(
    dir: &Path,
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> AslError {
    let store = dir.to_path_buf();
    let path = path.into();
    move |source| AslError::Io {
        store,
        op,
        path,
        source,
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn check_superblock(dir: &Path) -> Result<()> {
    let p = dir.join(SUPERBLOCK);
    let not = |why: String| AslError::NotAStore {
        store: dir.into(),
        why,
    };
    if !dir.is_dir() {
        return Err(not("no such directory".into()));
    }
    let b = match fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not(format!("no superblock file {}", p.display())));
        }
        Err(e) => return Err(io_err(dir, "read", &p)(e)),
    };
    if b.len() < 8 || b[0..8] != SUPER_MAGIC {
        return Err(not(format!(
            "{} does not start with the ASL magic",
            p.display()
        )));
    }
    if b.len() != 64 || crc32c::crc32c(&b[0..60]).to_le_bytes() != b[60..64] {
        return Err(AslError::Corrupt {
            store: dir.into(),
            what: format!("superblock {} (length or checksum)", p.display()),
        });
    }
    let v = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if v != FORMAT_VERSION {
        return Err(AslError::UnsupportedVersion {
            store: dir.into(),
            found: v,
            supported: FORMAT_VERSION,
        });
    }
    let log = dir.join(LOG);
    if !log.is_file() || !dir.join(BLOCKS).is_dir() {
        return Err(AslError::Corrupt {
            store: dir.into(),
            what: format!(
                "layout: {} or {} missing",
                log.display(),
                dir.join(BLOCKS).display()
            ),
        });
    }
    Ok(())
}

/// A read-only view of a snapshot.
#[derive(Debug)]
pub struct SnapshotHandle {
    id: SnapshotId,
    reader: Store,
    visible: HashMap<ArtifactKey, (Option<u32>, u64)>,
}

impl SnapshotHandle {
    /// The snapshot's id.
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// Keys visible in the snapshot with their type tag and PUT logseq, in logseq order.
    pub fn list(&self) -> Vec<(ArtifactKey, Option<u32>, u64)> {
        let mut v: Vec<_> = self
            .visible
            .iter()
            .map(|(k, (t, l))| (*k, *t, *l))
            .collect();
        v.sort_by_key(|x| x.2);
        v
    }

    /// Whether a key is visible in the snapshot.
    pub fn contains(&self, key: &ArtifactKey) -> bool {
        self.visible.contains_key(key)
    }

    /// The bytes of a key visible in the snapshot.
    pub fn get(&self, key: &ArtifactKey) -> Result<Vec<u8>> {
        if !self.visible.contains_key(key) {
            return Err(AslError::NotFound {
                store: self.reader.dir.clone(),
                what: format!("key {key} in snapshot {}", self.id.0),
            });
        }
        let e = self
            .reader
            .state
            .entries
            .get(key)
            .ok_or_else(|| AslError::Corrupt {
                store: self.reader.dir.clone(),
                what: format!("snapshot {}: bytes of key {key} were reclaimed", self.id.0),
            })?;
        self.reader.read_checked(key, &e.loc)
    }

    /// Writes are refused: a snapshot is read-only.
    pub fn put(&mut self, _bytes: &[u8]) -> Result<PutReceipt> {
        Err(AslError::ReadOnly {
            store: self.reader.dir.clone(),
            why: "snapshot mount",
        })
    }
}
