//! The transfer protocol as sans-I/O state machines (`specs/udp-transfer.md` §4):
//! no sockets, no clock. The caller feeds datagrams with
//! [`Sender::handle_datagram`] / [`Receiver::handle_datagram`], asks for datagrams
//! to send with `poll_transmit`, and calls `handle_timeout` at `poll_timeout`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::WireError;
use super::codec::{Mode, Op, anchor, apply_container};
use super::frame::{
    self, AckRepr, DoneRepr, DoneStatus, EndRepr, FrameRepr, MAX_NEED_RANGES, MfstRepr, NeedRepr,
    PrefaceRepr, WinRepr,
};
use super::window::{Window, windows};
use crate::mapped::AnonBuf;

/// Timers of both endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// First retransmission timeout.
    pub rto: Duration,
    /// Largest retransmission timeout (after doubling).
    pub max_rto: Duration,
    /// Without a valid frame from the peer for this long, the transfer fails.
    pub idle_timeout: Duration,
    /// Sender: most windows of a round sent beyond the highest one ACKed.
    pub max_in_flight: u32,
}

/// The receiver ACKs every this many WIN frames of a round.
pub const ACK_EVERY: u32 = 32;

impl Default for Config {
    fn default() -> Config {
        Config {
            rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            max_in_flight: 512,
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum FailReason {
    /// The two blobs differ (detected at PREFACE).
    #[error("blob mismatch: the receiver's blob differs from the sender's")]
    BlobMismatch,
    /// The rebuilt object's BLAKE3 differs from the manifest's.
    #[error("hash mismatch: the rebuilt object's BLAKE3 differs from the manifest")]
    HashMismatch,
    /// The receiver refused the transfer.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// The peer sent nothing valid for the idle timeout.
    #[error("peer vanished (no valid frame within the idle timeout)")]
    PeerVanished,
}

/// Counters of one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Datagrams handed in.
    pub datagrams_in: u64,
    /// Bytes handed in.
    pub bytes_in: u64,
    /// Datagrams handed out.
    pub datagrams_out: u64,
    /// Bytes handed out.
    pub bytes_out: u64,
    /// Dropped: bad CRC.
    pub bad_crc: u64,
    /// Dropped: truncated, oversize, bad magic/version/type, malformed payload.
    pub malformed: u64,
    /// Dropped: another session.
    pub wrong_session: u64,
    /// Dropped: a frame this endpoint never expects (e.g. WIN at the sender).
    pub unexpected: u64,
    /// Ignored: NEED/END of an older round, or a NEED range beyond the object.
    pub stale: u64,
    /// WIN frames sent (sender) or applied (receiver).
    pub windows: u64,
    /// WIN frames sent again (sender).
    pub retransmits: u64,
    /// WIN frames already held (receiver).
    pub duplicate_windows: u64,
    /// WIN frames rejected: bad container, outside the object or the blob (receiver).
    pub bad_windows: u64,
    /// NEED frames sent (receiver) or acted on (sender).
    pub needs: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// ACK frames sent (receiver) or acted on (sender).
    pub acks: u64,
    /// Sender: times the in-flight limit was released by the timer, not an ACK.
    pub stalls: u64,
}

impl Stats {
    fn count_error(&mut self, e: WireError) {
        match e {
            WireError::Crc { .. } => self.bad_crc += 1,
            _ => self.malformed += 1,
        }
    }
}

/// Objects at least this large are hashed on a second thread in [`Transfer::new`].
const PARALLEL_HASH_MIN: usize = 4 << 20;

/// What the sender ships: PREFACE, MFST and the windows.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// PREFACE.
    pub preface: PrefaceRepr,
    /// MFST.
    pub mfst: MfstRepr,
    /// Windows in order.
    pub windows: Vec<Window>,
}

impl Transfer {
    /// Builds a transfer from a compiled program of `object` against a blob of
    /// `blob_size` bytes with `blob_fingerprint`.
    pub fn new(
        mode: Mode,
        blob_size: u64,
        blob_fingerprint: [u8; 32],
        ops: &[Op],
        object: &[u8],
        name: &str,
    ) -> Result<Transfer, WireError> {
        let a = anchor(blob_size);
        let raw = ops.iter().any(|o| matches!(o, Op::Raw(_)));
        // Large objects: hash on a second thread while the windows are built.
        let (ws, object_hash) = std::thread::scope(|s| {
            let h = if object.len() >= PARALLEL_HASH_MIN {
                std::thread::Builder::new()
                    .spawn_scoped(s, || *blake3::hash(object).as_bytes())
                    .ok()
            } else {
                None
            };
            let ws = windows(ops, object, mode, a);
            let hash = h
                .and_then(|h| h.join().ok())
                .unwrap_or_else(|| *blake3::hash(object).as_bytes());
            (ws, hash)
        });
        let ws = ws?;
        let count = u32::try_from(ws.len()).map_err(|_| WireError::TooLarge {
            what: "window count",
            need: ws.len(),
            max: u32::MAX as usize,
        })?;
        if name.len() > frame::MAX_NAME {
            return Err(WireError::TooLarge {
                what: "MFST name",
                need: name.len(),
                max: frame::MAX_NAME,
            });
        }
        Ok(Transfer {
            preface: PrefaceRepr {
                mode: mode.code(),
                flags: u8::from(raw),
                anchor: a,
                blob_size,
                blob_fingerprint,
            },
            mfst: MfstRepr {
                object_size: object.len() as u64,
                object_hash,
                windows: count,
                name: name.to_string(),
            },
            windows: ws,
        })
    }

    /// Bytes of every datagram a lossless transfer sends from the sender
    /// (PREFACE, MFST, each WIN, one END).
    pub fn wire_bytes(&self) -> u64 {
        let h = (frame::HEADER_LEN + frame::TRAILER_LEN) as u64;
        let win: u64 = self
            .windows
            .iter()
            .map(|w| h + frame::WIN_FIXED as u64 + w.container.len() as u64)
            .sum();
        (h + 52) + (h + 46 + self.mfst.name.len() as u64) + win + (h + 8)
    }
}

fn backoff(d: Duration, max: Duration) -> Duration {
    (d * 2).min(max)
}

/// Sender progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderState {
    /// PREFACE/MFST sent, waiting for the first NEED.
    Handshake,
    /// Sending the windows of a NEED.
    Sending,
    /// END sent, waiting for the next NEED or DONE.
    AwaitNeed,
    /// DONE OK received with the right hash.
    Done,
    /// Failed.
    Failed(FailReason),
}

/// The sending endpoint.
#[derive(Debug)]
pub struct Sender {
    cfg: Config,
    session: u32,
    t: Transfer,
    /// Every WIN datagram, encoded once.
    arena: Vec<u8>,
    spans: Vec<(usize, usize)>,
    state: SenderState,
    pending: Vec<bool>,
    next: usize,
    in_flight_for: u32,
    sent_for_round: u32,
    round_sent: Vec<u32>,
    acked: usize,
    stalled: bool,
    ever_sent: Vec<bool>,
    last_need: Option<u32>,
    queue: VecDeque<Vec<u8>>,
    timer: Option<Instant>,
    rto: Duration,
    last_heard: Instant,
    stats: Stats,
}

impl Sender {
    /// A sender for `t` in session `session`, starting at `now`.
    pub fn new(cfg: Config, session: u32, t: Transfer, now: Instant) -> Result<Sender, WireError> {
        let mut arena = Vec::new();
        let mut spans = Vec::with_capacity(t.windows.len());
        for (i, w) in t.windows.iter().enumerate() {
            let start = arena.len();
            FrameRepr::Win(WinRepr {
                index: i as u32,
                offset: w.offset,
                len: w.len,
                container: &w.container,
            })
            .emit(session, &mut arena)?;
            spans.push((start, arena.len()));
        }
        let n = t.windows.len();
        let mut s = Sender {
            cfg,
            session,
            t,
            arena,
            spans,
            state: SenderState::Handshake,
            pending: vec![false; n],
            next: n,
            in_flight_for: 0,
            sent_for_round: 0,
            round_sent: Vec::new(),
            acked: 0,
            stalled: false,
            ever_sent: vec![false; n],
            last_need: None,
            queue: VecDeque::new(),
            timer: None,
            rto: cfg.rto,
            last_heard: now,
            stats: Stats::default(),
        };
        s.queue_handshake(now)?;
        Ok(s)
    }

    fn queue_handshake(&mut self, now: Instant) -> Result<(), WireError> {
        self.queue
            .push_back(FrameRepr::Preface(self.t.preface).to_datagram(self.session)?);
        self.queue
            .push_back(FrameRepr::Mfst(self.t.mfst.clone()).to_datagram(self.session)?);
        self.timer = Some(now + self.rto);
        Ok(())
    }

    /// The state.
    pub fn state(&self) -> SenderState {
        self.state
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The session id.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// The transfer being sent.
    pub fn transfer(&self) -> &Transfer {
        &self.t
    }

    /// Whether the sender has finished (done or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, SenderState::Done | SenderState::Failed(_))
    }

    /// Handles one datagram from the receiver.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        if self.is_finished() {
            return;
        }
        let (session, f) = match frame::decode(bytes) {
            Ok(x) => x,
            Err(e) => return self.stats.count_error(e),
        };
        if session != self.session {
            self.stats.wrong_session += 1;
            return;
        }
        match f {
            FrameRepr::Need(n) => {
                self.last_heard = now;
                self.on_need(now, &n);
            }
            FrameRepr::Ack(a) => {
                self.last_heard = now;
                self.on_ack(a);
            }
            FrameRepr::Done(d) => {
                self.last_heard = now;
                self.state = match d.status {
                    DoneStatus::Ok if d.object_hash == self.t.mfst.object_hash => SenderState::Done,
                    DoneStatus::Ok | DoneStatus::HashMismatch => {
                        SenderState::Failed(FailReason::HashMismatch)
                    }
                    DoneStatus::BlobMismatch => SenderState::Failed(FailReason::BlobMismatch),
                    DoneStatus::Refused => {
                        SenderState::Failed(FailReason::Refused("by the receiver"))
                    }
                };
                self.queue.clear();
                self.timer = None;
            }
            _ => self.stats.unexpected += 1,
        }
    }

    fn on_ack(&mut self, a: AckRepr) {
        if self.last_need != Some(a.seq) {
            self.stats.stale += 1;
            return;
        }
        self.stats.acks += 1;
        // Windows go out in index order within a round.
        let pos = self.round_sent.partition_point(|&i| i <= a.highest);
        if pos > self.acked {
            self.acked = pos;
            if self.stalled {
                self.stalled = false;
                self.timer = None;
            }
        }
    }

    fn on_need(&mut self, now: Instant, n: &NeedRepr) {
        match self.last_need {
            Some(last) if n.seq < last => {
                self.stats.stale += 1;
                return;
            }
            Some(last) if n.seq == last => {
                // Our END for it was lost: say it again (once per NEED copy).
                if self.state == SenderState::AwaitNeed {
                    self.queue_end(now);
                } else {
                    self.stats.stale += 1;
                }
                return;
            }
            _ => {}
        }
        self.stats.needs += 1;
        self.last_need = Some(n.seq);
        let total = self.pending.len();
        for &(first, count) in &n.ranges {
            let (a, b) = (first as usize, first as usize + count as usize);
            if b > total {
                self.stats.stale += 1;
            }
            for i in a.min(total)..b.min(total) {
                self.pending[i] = true;
            }
            self.next = self.next.min(a.min(total));
        }
        self.in_flight_for = n.seq;
        self.sent_for_round = 0;
        self.round_sent.clear();
        self.acked = 0;
        self.stalled = false;
        self.state = SenderState::Sending;
        self.timer = None;
        self.rto = self.cfg.rto;
    }

    fn queue_end(&mut self, now: Instant) {
        let end = FrameRepr::End(EndRepr {
            seq: self.in_flight_for,
            sent: self.sent_for_round,
        });
        if let Ok(d) = end.to_datagram(self.session) {
            self.queue.push_back(d);
        }
        self.state = SenderState::AwaitNeed;
        self.timer = Some(now + self.rto);
    }

    /// Writes the next datagram to send into `buf` (cleared first); `false` when
    /// there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        if let Some(d) = self.queue.pop_front() {
            buf.extend_from_slice(&d);
        } else if self.state == SenderState::Sending {
            while self.next < self.pending.len() && !self.pending[self.next] {
                self.next += 1;
            }
            let in_flight = self.round_sent.len() - self.acked;
            if self.next < self.pending.len() && in_flight >= self.cfg.max_in_flight as usize {
                // Flow control: wait for an ACK (or the timer).
                if !self.stalled {
                    self.stalled = true;
                    self.timer = Some(now + self.rto);
                }
            } else if self.next < self.pending.len() {
                let i = self.next;
                self.pending[i] = false;
                self.next += 1;
                let (a, b) = self.spans[i];
                buf.extend_from_slice(&self.arena[a..b]);
                self.stats.windows += 1;
                if self.ever_sent[i] {
                    self.stats.retransmits += 1;
                }
                self.ever_sent[i] = true;
                self.sent_for_round += 1;
                self.round_sent.push(i as u32);
            } else {
                self.queue_end(now);
                if let Some(d) = self.queue.pop_front() {
                    buf.extend_from_slice(&d);
                }
            }
        }
        if buf.is_empty() {
            return false;
        }
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += buf.len() as u64;
        true
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let idle = self.last_heard + self.cfg.idle_timeout;
        Some(self.timer.map_or(idle, |t| t.min(idle)))
    }

    /// Fires expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_finished() {
            return;
        }
        if now >= self.last_heard + self.cfg.idle_timeout {
            self.state = SenderState::Failed(FailReason::PeerVanished);
            self.queue.clear();
            return;
        }
        let Some(t) = self.timer else { return };
        if now < t {
            return;
        }
        self.stats.timeouts += 1;
        self.rto = backoff(self.rto, self.cfg.max_rto);
        match self.state {
            SenderState::Handshake => {
                let _ = self.queue_handshake(now);
            }
            SenderState::AwaitNeed => self.queue_end(now),
            SenderState::Sending if self.stalled => {
                // No ACK progress: count what is in flight as gone (NEED repairs it).
                self.stats.stalls += 1;
                self.acked = self.round_sent.len();
                self.stalled = false;
                self.timer = None;
            }
            _ => self.timer = None,
        }
    }
}

/// Receiver progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverState {
    /// Waiting for PREFACE and MFST.
    Listening,
    /// Receiving windows.
    Receiving,
    /// Object rebuilt and verified.
    Done,
    /// Failed.
    Failed(FailReason),
}

/// Receiver policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Timers.
    pub proto: Config,
    /// Largest object accepted, in bytes.
    pub max_object: u64,
    /// Whether RAW sections are accepted (shared-base `--allow-raw` transfers).
    pub accept_raw: bool,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            proto: Config::default(),
            max_object: 8 << 30,
            accept_raw: true,
        }
    }
}

/// A receiver's partial state, from which a new receiver can resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeState {
    /// Blob fingerprint, mode, object hash, object size, window count.
    pub key: ([u8; 32], u8, [u8; 32], u64, u32),
    /// Windows held.
    pub have: Vec<bool>,
    /// Rebuilt bytes (valid where `have`).
    pub object: Vec<u8>,
}

/// The receiving endpoint, rebuilding strictly from `blob`.
#[derive(Debug)]
pub struct Receiver<'b> {
    cfg: ReceiverConfig,
    blob: &'b [u8],
    fingerprint: [u8; 32],
    session: Option<u32>,
    preface: Option<PrefaceRepr>,
    mfst: Option<MfstRepr>,
    state: ReceiverState,
    object: AnonBuf,
    have: Vec<bool>,
    have_count: u64,
    need_seq: u32,
    round_high: u32,
    round_wins: u32,
    last_need: Option<Vec<u8>>,
    queue: VecDeque<Vec<u8>>,
    timer: Option<Instant>,
    rto: Duration,
    last_heard: Instant,
    last_done: Option<Instant>,
    done_frame: Option<Vec<u8>>,
    resume: Option<ResumeState>,
    released: bool,
    /// Object ranges of the windows applied this session (offset → end): no later
    /// write may touch them, so they can be hashed as soon as they are contiguous.
    held: BTreeMap<u64, u64>,
    /// Incremental BLAKE3 over `[0, hashed_upto)`; `None` for a resumed transfer
    /// (whose earlier windows' ranges are unknown: it is hashed whole at the end).
    hasher: Option<blake3::Hasher>,
    hashed_upto: u64,
    stats: Stats,
}

impl<'b> Receiver<'b> {
    /// A receiver over `blob` whose fingerprint is `fingerprint`.
    pub fn new(cfg: ReceiverConfig, blob: &'b [u8], fingerprint: [u8; 32], now: Instant) -> Self {
        Receiver {
            cfg,
            blob,
            fingerprint,
            session: None,
            preface: None,
            mfst: None,
            state: ReceiverState::Listening,
            object: AnonBuf::Heap(Vec::new()),
            have: Vec::new(),
            have_count: 0,
            need_seq: 0,
            round_high: 0,
            round_wins: 0,
            last_need: None,
            queue: VecDeque::new(),
            timer: None,
            rto: cfg.proto.rto,
            last_heard: now,
            last_done: None,
            done_frame: None,
            resume: None,
            released: false,
            held: BTreeMap::new(),
            hasher: Some(blake3::Hasher::new()),
            hashed_upto: 0,
            stats: Stats::default(),
        }
    }

    /// A receiver that resumes from `state` if the next transfer announces the
    /// same blob, mode, object and window count (otherwise starts afresh).
    pub fn resume(
        cfg: ReceiverConfig,
        blob: &'b [u8],
        fingerprint: [u8; 32],
        state: ResumeState,
        now: Instant,
    ) -> Self {
        let mut r = Receiver::new(cfg, blob, fingerprint, now);
        r.resume = Some(state);
        r
    }

    /// The state.
    pub fn state(&self) -> ReceiverState {
        self.state
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The session this receiver is bound to (set by the first PREFACE or MFST).
    pub fn session(&self) -> Option<u32> {
        self.session
    }

    /// The manifest, once received.
    pub fn manifest(&self) -> Option<&MfstRepr> {
        self.mfst.as_ref()
    }

    /// The PREFACE, once accepted.
    pub fn preface(&self) -> Option<&PrefaceRepr> {
        self.preface.as_ref()
    }

    /// Windows held and expected.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.have_count,
            self.mfst.as_ref().map_or(0, |m| u64::from(m.windows)),
        )
    }

    /// Whether the receiver has finished (done or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, ReceiverState::Done | ReceiverState::Failed(_))
    }

    /// The verified object, once (only in state `Done`: its BLAKE3 matched).
    pub fn take_object(&mut self) -> Option<AnonBuf> {
        if self.state == ReceiverState::Done && !self.released {
            self.released = true;
            return Some(std::mem::replace(
                &mut self.object,
                AnonBuf::Heap(Vec::new()),
            ));
        }
        None
    }

    /// The partial state to resume from (while receiving or after a vanished peer).
    pub fn resume_state(&self) -> Option<ResumeState> {
        let (p, m) = (self.preface.as_ref()?, self.mfst.as_ref()?);
        if matches!(self.state, ReceiverState::Done) {
            return None;
        }
        Some(ResumeState {
            key: (
                p.blob_fingerprint,
                p.mode,
                m.object_hash,
                m.object_size,
                m.windows,
            ),
            have: self.have.clone(),
            object: self.object.to_vec(),
        })
    }

    /// Handles one datagram from the sender.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let (session, f) = match frame::decode(bytes) {
            Ok(x) => x,
            Err(e) => return self.stats.count_error(e),
        };
        match self.session {
            None if matches!(f, FrameRepr::Preface(_) | FrameRepr::Mfst(_)) => {
                self.session = Some(session);
            }
            None => {
                self.stats.wrong_session += 1;
                return;
            }
            Some(s) if s != session => {
                self.stats.wrong_session += 1;
                return;
            }
            Some(_) => {}
        }
        if let ReceiverState::Failed(_) = self.state {
            // Answer a refused sender again; otherwise stay silent.
            if let Some(d) = self.done_frame.clone()
                && matches!(f, FrameRepr::Preface(_) | FrameRepr::Mfst(_))
            {
                self.queue.push_back(d);
            }
            return;
        }
        self.last_heard = now;
        match f {
            FrameRepr::Preface(p) => self.on_preface(now, p),
            FrameRepr::Mfst(m) => self.on_mfst(now, m),
            FrameRepr::Win(w) => self.on_win(now, &w),
            FrameRepr::End(e) => self.on_end(now, e),
            FrameRepr::Need(_) | FrameRepr::Done(_) | FrameRepr::Ack(_) => {
                self.stats.unexpected += 1
            }
        }
    }

    fn refuse(&mut self, status: DoneStatus, reason: FailReason) {
        self.state = ReceiverState::Failed(reason);
        self.timer = None;
        let d = FrameRepr::Done(DoneRepr {
            status,
            object_hash: [0; 32],
        });
        if let Some(s) = self.session
            && let Ok(d) = d.to_datagram(s)
        {
            self.queue.push_back(d.clone());
            self.done_frame = Some(d);
        }
    }

    fn on_preface(&mut self, now: Instant, p: PrefaceRepr) {
        if self.state != ReceiverState::Listening {
            if self.state == ReceiverState::Done {
                self.resend_done(now, true);
            }
            return;
        }
        if self.preface.is_some() {
            return;
        }
        if p.blob_size != self.blob.len() as u64 || p.blob_fingerprint != self.fingerprint {
            return self.refuse(DoneStatus::BlobMismatch, FailReason::BlobMismatch);
        }
        if p.anchor != anchor(p.blob_size) {
            return self.refuse(
                DoneStatus::Refused,
                FailReason::Refused("anchor is not the middle of the blob"),
            );
        }
        if p.flags & 1 != 0 && !self.cfg.accept_raw {
            return self.refuse(
                DoneStatus::Refused,
                FailReason::Refused("RAW sections offered to a strict receiver"),
            );
        }
        self.preface = Some(p);
        self.maybe_start(now);
    }

    fn on_mfst(&mut self, now: Instant, m: MfstRepr) {
        if self.state != ReceiverState::Listening {
            if self.state == ReceiverState::Done {
                self.resend_done(now, true);
            }
            return;
        }
        if self.mfst.is_some() {
            return;
        }
        let name_ok = m.name.is_empty()
            || (m.name != "." && m.name != ".." && !m.name.contains('/') && !m.name.contains('\0'));
        let windows_ok = if m.object_size == 0 {
            m.windows == 0
        } else {
            m.windows >= 1 && u64::from(m.windows) <= m.object_size
        };
        if m.object_size > self.cfg.max_object {
            return self.refuse(
                DoneStatus::Refused,
                FailReason::Refused("object larger than the receiver's limit"),
            );
        }
        if !windows_ok {
            return self.refuse(
                DoneStatus::Refused,
                FailReason::Refused("window count does not fit the object size"),
            );
        }
        if !name_ok {
            return self.refuse(
                DoneStatus::Refused,
                FailReason::Refused("name is not a single path component"),
            );
        }
        self.mfst = Some(m);
        self.maybe_start(now);
    }

    fn maybe_start(&mut self, now: Instant) {
        let (Some(p), Some(m)) = (self.preface, self.mfst.as_ref()) else {
            return;
        };
        let n = m.windows as usize;
        let key = (
            p.blob_fingerprint,
            p.mode,
            m.object_hash,
            m.object_size,
            m.windows,
        );
        match self.resume.take() {
            Some(r) if r.key == key && r.have.len() == n => {
                self.hasher = None;
                self.have_count = r.have.iter().filter(|h| **h).count() as u64;
                self.have = r.have;
                self.object = AnonBuf::Heap(r.object);
            }
            _ => {
                self.have = vec![false; n];
                self.object = AnonBuf::zeroed(m.object_size as usize);
            }
        }
        self.state = ReceiverState::Receiving;
        if self.have_count == u64::from(m.windows) {
            self.verify(now);
        } else {
            self.send_need(now, 0);
        }
    }

    fn send_need(&mut self, now: Instant, seq: u32) {
        let total = self.have.len();
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < total && ranges.len() < MAX_NEED_RANGES {
            if self.have[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < total && !self.have[i] {
                i += 1;
            }
            ranges.push((start as u32, (i - start) as u32));
        }
        let missing = (total as u64 - self.have_count) as u32;
        self.need_seq = seq;
        self.round_high = 0;
        self.round_wins = 0;
        let Some(s) = self.session else { return };
        if let Ok(d) = (FrameRepr::Need(NeedRepr {
            seq,
            missing,
            ranges,
        }))
        .to_datagram(s)
        {
            self.queue.push_back(d.clone());
            self.last_need = Some(d);
            self.stats.needs += 1;
        }
        self.rto = self.cfg.proto.rto;
        self.timer = Some(now + self.rto);
    }

    fn on_win(&mut self, now: Instant, w: &WinRepr<'_>) {
        match self.state {
            ReceiverState::Receiving => {}
            ReceiverState::Done => return self.resend_done(now, false),
            _ => {
                self.stats.unexpected += 1;
                return;
            }
        }
        let (Some(p), Some(m)) = (self.preface, self.mfst.as_ref()) else {
            return;
        };
        let i = w.index as usize;
        if i >= self.have.len() {
            self.stats.bad_windows += 1;
            return;
        }
        self.round_high = self.round_high.max(w.index);
        self.round_wins = self.round_wins.wrapping_add(1);
        if self.round_wins.is_multiple_of(ACK_EVERY)
            && let Some(s) = self.session
            && let Ok(d) = (FrameRepr::Ack(AckRepr {
                seq: self.need_seq,
                highest: self.round_high,
            }))
            .to_datagram(s)
        {
            self.queue.push_back(d);
            self.stats.acks += 1;
        }
        if self.have[i] {
            self.stats.duplicate_windows += 1;
            return;
        }
        let end = w.offset.checked_add(u64::from(w.len));
        let Some(end) = end.filter(|&e| e <= m.object_size) else {
            self.stats.bad_windows += 1;
            return;
        };
        // A window may not overlap one already applied (its bytes may be hashed).
        let overlaps = self
            .held
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > w.offset);
        if overlaps {
            self.stats.bad_windows += 1;
            return;
        }
        let out = &mut self.object[w.offset as usize..end as usize];
        match apply_container(w.container, p.anchor, p.flags & 1 != 0, self.blob, out) {
            Ok(mode) if mode.code() == p.mode => {}
            _ => {
                self.stats.bad_windows += 1;
                return;
            }
        }
        self.have[i] = true;
        self.have_count += 1;
        self.stats.windows += 1;
        if end > w.offset {
            self.held.insert(w.offset, end);
        }
        if let Some(h) = self.hasher.as_mut() {
            while let Some(&e) = self.held.get(&self.hashed_upto) {
                h.update(&self.object[self.hashed_upto as usize..e as usize]);
                self.hashed_upto = e;
            }
        }
        // Progress: hold the NEED timer back.
        self.timer = Some(now + self.rto);
        if self.have_count == u64::from(m.windows) {
            self.verify(now);
        }
    }

    fn on_end(&mut self, now: Instant, e: EndRepr) {
        match self.state {
            ReceiverState::Receiving => {}
            ReceiverState::Done => return self.resend_done(now, true),
            _ => {
                self.stats.unexpected += 1;
                return;
            }
        }
        if e.seq == self.need_seq {
            let next = self.need_seq.wrapping_add(1);
            self.send_need(now, next);
        } else if e.seq.wrapping_add(1) == self.need_seq {
            // A repeated END for a NEED we already answered: repeat the answer.
            if let Some(d) = self.last_need.clone() {
                self.queue.push_back(d);
                self.stats.needs += 1;
            }
        } else {
            self.stats.stale += 1;
        }
    }

    fn verify(&mut self, now: Instant) {
        let Some(m) = self.mfst.as_ref() else { return };
        // The incremental hash counts only if the held windows tiled the object.
        let h = match self.hasher.take() {
            Some(h) if self.hashed_upto == m.object_size => *h.finalize().as_bytes(),
            _ => *blake3::hash(&self.object).as_bytes(),
        };
        let Some(s) = self.session else { return };
        if h == m.object_hash {
            self.state = ReceiverState::Done;
            let d = FrameRepr::Done(DoneRepr {
                status: DoneStatus::Ok,
                object_hash: h,
            });
            if let Ok(d) = d.to_datagram(s) {
                self.done_frame = Some(d);
            }
            self.resend_done(now, true);
        } else {
            self.object = AnonBuf::Heap(Vec::new());
            self.refuse(DoneStatus::HashMismatch, FailReason::HashMismatch);
        }
        self.timer = None;
    }

    fn resend_done(&mut self, now: Instant, always: bool) {
        let recent = self.last_done.is_some_and(|t| now < t + self.cfg.proto.rto);
        if !always && recent {
            return;
        }
        if let Some(d) = self.done_frame.clone() {
            self.queue.push_back(d);
            self.last_done = Some(now);
        }
    }

    /// Writes the next datagram to send into `buf` (cleared first); `false` when
    /// there is nothing to send.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        let Some(d) = self.queue.pop_front() else {
            return false;
        };
        buf.extend_from_slice(&d);
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += buf.len() as u64;
        true
    }

    /// When `handle_timeout` must next be called (`None` when finished).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ReceiverState::Receiving => {
                let idle = self.last_heard + self.cfg.proto.idle_timeout;
                Some(self.timer.map_or(idle, |t| t.min(idle)))
            }
            ReceiverState::Listening if self.session.is_some() => {
                Some(self.last_heard + self.cfg.proto.idle_timeout)
            }
            _ => None,
        }
    }

    /// Fires expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            ReceiverState::Receiving => {}
            ReceiverState::Listening if self.session.is_some() => {}
            _ => return,
        }
        if now >= self.last_heard + self.cfg.proto.idle_timeout {
            self.state = ReceiverState::Failed(FailReason::PeerVanished);
            self.timer = None;
            return;
        }
        if let Some(t) = self.timer
            && now >= t
        {
            self.stats.timeouts += 1;
            if let Some(d) = self.last_need.clone() {
                self.queue.push_back(d);
                self.stats.needs += 1;
            }
            self.rto = backoff(self.rto, self.cfg.proto.max_rto);
            self.timer = Some(now + self.rto);
        }
    }
}
