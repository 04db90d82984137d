//! Deterministic simulation of the protocol: a virtual clock, a seeded network
//! that loses, duplicates, reorders, corrupts and truncates datagrams, no sockets.

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::codec::{Mode, Op};
use super::compile::{CompileOptions, Index, compile};
use super::frame::{self, FrameRepr, NeedRepr};
use super::proto::{
    Config, FailReason, Receiver, ReceiverConfig, ReceiverState, ResumeState, Sender, SenderState,
    Transfer,
};
use super::vblob::{FILLER_OFFSET, Identity, VirtualBlob, fingerprint_bytes};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 10_000.0 < percent
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Net {
    loss: f64,
    dup: f64,
    /// Extra random delay up to this many microseconds (reordering).
    jitter_us: u64,
    corrupt: f64,
    truncate: f64,
}

#[derive(PartialEq, Eq)]
struct InFlight {
    at: Duration,
    seq: u64,
    to_receiver: bool,
    bytes: Vec<u8>,
}

impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

struct World {
    t0: Instant,
    now: Duration,
    rng: Rng,
    net: Net,
    heap: BinaryHeap<InFlight>,
    seq: u64,
    dropped: u64,
    /// Stop delivering to the receiver after this time (vanished sender).
    sender_dies_at: Option<Duration>,
}

impl World {
    fn new(seed: u64, net: Net) -> World {
        World {
            t0: Instant::now(),
            now: Duration::ZERO,
            rng: Rng(seed | 1),
            net,
            heap: BinaryHeap::new(),
            seq: 0,
            dropped: 0,
            sender_dies_at: None,
        }
    }

    fn send(&mut self, to_receiver: bool, mut bytes: Vec<u8>) {
        if self.rng.chance(self.net.loss) {
            self.dropped += 1;
            return;
        }
        if self.rng.chance(self.net.corrupt) && !bytes.is_empty() {
            let i = self.rng.next() as usize % bytes.len();
            bytes[i] ^= 1 << (self.rng.next() % 8);
        }
        if self.rng.chance(self.net.truncate) && !bytes.is_empty() {
            let n = self.rng.next() as usize % bytes.len();
            bytes.truncate(n);
        }
        let copies = if self.rng.chance(self.net.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = if self.net.jitter_us > 0 {
                self.rng.next() % self.net.jitter_us
            } else {
                0
            };
            self.seq += 1;
            self.heap.push(InFlight {
                at: self.now + Duration::from_micros(100 + jitter),
                seq: self.seq,
                to_receiver,
                bytes: bytes.clone(),
            });
        }
    }

    /// Runs until both sides finish or `limit` of virtual time passes.
    fn run(&mut self, s: &mut Sender, r: &mut Receiver<'_>, limit: Duration) {
        let mut buf = Vec::new();
        while self.now < limit {
            let alive = self.sender_dies_at.is_none_or(|d| self.now < d);
            let now = self.t0 + self.now;
            if alive {
                // A sender on a link: at most 64 datagrams per 10 µs step.
                for _ in 0..64 {
                    if !s.poll_transmit(now, &mut buf) {
                        break;
                    }
                    self.send(true, buf.clone());
                }
            }
            while r.poll_transmit(now, &mut buf) {
                self.send(false, buf.clone());
            }
            if s.is_finished() && r.is_finished() && self.heap.is_empty() {
                return;
            }
            if (!alive || s.is_finished()) && r.is_finished() {
                return;
            }
            // Advance to the next event.
            let mut next = self.now + Duration::from_micros(10);
            let sending = alive && s.state() == SenderState::Sending;
            if !sending {
                let mut cands = Vec::new();
                if let Some(f) = self.heap.peek() {
                    cands.push(f.at);
                }
                if alive && let Some(t) = s.poll_timeout() {
                    cands.push(t.saturating_duration_since(self.t0));
                }
                if let Some(t) = r.poll_timeout() {
                    cands.push(t.saturating_duration_since(self.t0));
                }
                next = cands.into_iter().min().unwrap_or(limit).max(self.now);
            }
            self.now = next;
            let now = self.t0 + self.now;
            while self.heap.peek().is_some_and(|f| f.at <= self.now) {
                let Some(f) = self.heap.pop() else { break };
                if f.to_receiver {
                    r.handle_datagram(now, &f.bytes);
                } else if alive {
                    s.handle_datagram(now, &f.bytes);
                }
            }
            if alive {
                s.handle_timeout(now);
            }
            r.handle_timeout(now);
        }
    }
}

fn blob() -> Vec<u8> {
    VirtualBlob::new(Identity {
        name: "sim".into(),
        size: FILLER_OFFSET + 4096,
        seed: 42,
    })
    .unwrap()
    .to_vec()
}

/// A palette-friendly object of `n` bytes: pieces of 8..48 bytes from random
/// palette positions (LFSR, tokens, ramps), so it needs many windows.
fn object(n: usize, salt: u8) -> Vec<u8> {
    let p = super::vblob::palette();
    let mut rng = Rng(0x9e37_79b9 ^ u64::from(salt) << 32 | 1);
    let mut o = Vec::with_capacity(n);
    while o.len() < n {
        let len = 8 + (rng.next() % 40) as usize;
        let at = 131_072 + (rng.next() as usize % (p.len() - 131_072 - 64));
        let k = (rng.next() % 32) as u8;
        if rng.next().is_multiple_of(3) {
            o.extend(p[at..at + len].iter().map(|b| b ^ k));
        } else {
            o.extend_from_slice(&p[at..at + len]);
        }
    }
    o
}

fn transfer(blob: &[u8], obj: &[u8], mode: Mode) -> Transfer {
    let prog = compile(
        blob,
        &Index::palette(),
        obj,
        CompileOptions { allow_raw: false },
    )
    .unwrap();
    Transfer::new(
        mode,
        blob.len() as u64,
        fingerprint_bytes(blob),
        &prog.ops,
        obj,
        "obj.bin",
    )
    .unwrap()
}

fn cfg() -> Config {
    Config {
        rto: Duration::from_millis(20),
        max_rto: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(5),
        max_in_flight: 64,
    }
}

fn rcfg() -> ReceiverConfig {
    ReceiverConfig {
        proto: cfg(),
        max_object: 1 << 30,
        accept_raw: true,
    }
}

fn run_case(seed: u64, net: Net, mode: Mode, n: usize) -> (Sender, Vec<u8>, super::proto::Stats) {
    let b = blob();
    let obj = object(n, seed as u8);
    let t = transfer(&b, &obj, mode);
    let mut w = World::new(seed, net);
    let mut s = Sender::new(cfg(), seed as u32, t, w.t0).unwrap();
    let fp = fingerprint_bytes(&b);
    let mut r = Receiver::new(rcfg(), &b, fp, w.t0);
    w.run(&mut s, &mut r, Duration::from_secs(120));
    assert_eq!(
        r.state(),
        ReceiverState::Done,
        "seed {seed} {net:?}: receiver {:?}",
        r.stats()
    );
    assert_eq!(
        s.state(),
        SenderState::Done,
        "seed {seed} {net:?}: sender {:?}",
        s.stats()
    );
    let got = r.take_object().unwrap();
    assert_eq!(&got[..], &obj[..]);
    let st = *r.stats();
    (s, obj, st)
}

#[test]
fn lossless_both_modes() {
    for mode in [Mode::Pvrt, Mode::Offs] {
        let (s, _, rs) = run_case(1, Net::default(), mode, 300_000);
        assert_eq!(s.stats().retransmits, 0);
        assert_eq!(rs.duplicate_windows, 0);
        assert!(s.transfer().windows.len() > 1);
    }
}

#[test]
fn five_percent_loss_with_reordering() {
    for seed in 1..=8 {
        let net = Net {
            loss: 5.0,
            jitter_us: 3000,
            ..Net::default()
        };
        let (s, _, _) = run_case(seed, net, Mode::Pvrt, 150_000);
        assert!(
            s.stats().retransmits > 0,
            "seed {seed}: loss must cause repair"
        );
    }
}

#[test]
fn heavy_loss_duplication_corruption_truncation() {
    for seed in 11..=16 {
        let net = Net {
            loss: 20.0,
            dup: 10.0,
            jitter_us: 5000,
            corrupt: 10.0,
            truncate: 5.0,
        };
        let (s, _, rs) = run_case(seed, net, Mode::Pvrt, 100_000);
        let ss = s.stats();
        assert!(
            ss.bad_crc + ss.malformed + rs.bad_crc + rs.malformed > 0,
            "seed {seed}: corruption must be seen and counted"
        );
    }
}

#[test]
fn blob_mismatch_refused_at_preface() {
    let b = blob();
    let other = VirtualBlob::new(Identity {
        name: "sim".into(),
        size: FILLER_OFFSET + 4096,
        seed: 43,
    })
    .unwrap()
    .to_vec();
    let obj = object(50_000, 1);
    let t = transfer(&b, &obj, Mode::Pvrt);
    let mut w = World::new(5, Net::default());
    let mut s = Sender::new(cfg(), 9, t, w.t0).unwrap();
    let mut r = Receiver::new(rcfg(), &other, fingerprint_bytes(&other), w.t0);
    w.run(&mut s, &mut r, Duration::from_secs(10));
    assert_eq!(r.state(), ReceiverState::Failed(FailReason::BlobMismatch));
    assert_eq!(s.state(), SenderState::Failed(FailReason::BlobMismatch));
    assert_eq!(
        s.stats().windows,
        0,
        "no window is sent to a mismatched blob"
    );
    assert!(r.take_object().is_none());
}

#[test]
fn vanished_sender_then_resume_from_need_list() {
    let b = blob();
    let fp = fingerprint_bytes(&b);
    let obj = object(600_000, 7);
    let t = transfer(&b, &obj, Mode::Pvrt);
    let total = t.windows.len() as u64;
    let mut w = World::new(77, Net::default());
    w.sender_dies_at = Some(Duration::from_micros(215));
    let mut s = Sender::new(cfg(), 1, t.clone(), w.t0).unwrap();
    let mut r = Receiver::new(rcfg(), &b, fp, w.t0);
    w.run(&mut s, &mut r, Duration::from_secs(60));
    assert_eq!(r.state(), ReceiverState::Failed(FailReason::PeerVanished));
    assert!(r.take_object().is_none());
    let (have, want) = r.progress();
    assert!(have > 0 && have < want, "{have}/{want}");
    let state: ResumeState = r.resume_state().unwrap();
    // A new sender session: only the missing windows travel.
    let mut w = World::new(78, Net::default());
    let mut s2 = Sender::new(cfg(), 2, t, w.t0).unwrap();
    let mut r2 = Receiver::resume(rcfg(), &b, fp, state, w.t0);
    w.run(&mut s2, &mut r2, Duration::from_secs(60));
    assert_eq!(r2.state(), ReceiverState::Done);
    assert_eq!(s2.stats().windows, total - have);
    assert_eq!(&r2.take_object().unwrap()[..], &obj[..]);
}

#[test]
fn vanished_receiver_fails_the_sender() {
    let b = blob();
    let obj = object(100_000, 3);
    let t = transfer(&b, &obj, Mode::Pvrt);
    let t0 = Instant::now();
    let mut s = Sender::new(cfg(), 1, t, t0).unwrap();
    let mut buf = Vec::new();
    let mut now = t0;
    for _ in 0..10_000 {
        while s.poll_transmit(now, &mut buf) {}
        let Some(t) = s.poll_timeout() else { break };
        now = t;
        s.handle_timeout(now);
    }
    assert_eq!(s.state(), SenderState::Failed(FailReason::PeerVanished));
    assert!(s.stats().timeouts > 3);
}

#[test]
fn hostile_frames_are_counted_and_never_released() {
    let b = blob();
    let fp = fingerprint_bytes(&b);
    let obj = object(100_000, 9);
    let t = transfer(&b, &obj, Mode::Pvrt);
    let t0 = Instant::now();
    let mut r = Receiver::new(rcfg(), &b, fp, t0);
    let sess = 5;
    let d = |f: FrameRepr<'_>| f.to_datagram(sess).unwrap();
    r.handle_datagram(t0, &d(FrameRepr::Preface(t.preface)));
    // A manifest whose hash is wrong: windows are right, the hash check must refuse.
    let mut m = t.mfst.clone();
    m.object_hash[0] ^= 1;
    r.handle_datagram(t0, &d(FrameRepr::Mfst(m)));
    assert_eq!(r.state(), ReceiverState::Receiving);
    // Garbage, bad CRC, unknown type, foreign session, out-of-range window and
    // a WIN pointing outside the blob.
    r.handle_datagram(t0, b"not a frame");
    let mut bad = d(FrameRepr::End(frame::EndRepr { seq: 0, sent: 0 }));
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    r.handle_datagram(t0, &bad);
    let mut unk = d(FrameRepr::End(frame::EndRepr { seq: 0, sent: 0 }));
    unk[3] = 99;
    let crc = super::crc16::crc16(&unk[..unk.len() - 2]).to_be_bytes();
    let n = unk.len();
    unk[n - 2..].copy_from_slice(&crc);
    r.handle_datagram(t0, &unk);
    r.handle_datagram(
        t0,
        &FrameRepr::End(frame::EndRepr { seq: 0, sent: 0 })
            .to_datagram(sess + 1)
            .unwrap(),
    );
    let mut c = Vec::new();
    let far = super::codec::Section::Bref(super::codec::Bref {
        offset: 1 << 40,
        len: 10,
        xf: super::codec::Transform::Identity,
    });
    super::codec::encode_container(Mode::Pvrt, t.preface.anchor, &[far], &mut c).unwrap();
    r.handle_datagram(
        t0,
        &d(FrameRepr::Win(frame::WinRepr {
            index: 0,
            offset: 0,
            len: 10,
            container: &c,
        })),
    );
    r.handle_datagram(
        t0,
        &d(FrameRepr::Win(frame::WinRepr {
            index: 1 << 30,
            offset: 0,
            len: 10,
            container: &c,
        })),
    );
    r.handle_datagram(
        t0,
        &d(FrameRepr::Win(frame::WinRepr {
            index: 0,
            offset: u64::MAX,
            len: 10,
            container: &c,
        })),
    );
    // NAK from the wrong side.
    r.handle_datagram(
        t0,
        &d(FrameRepr::Need(NeedRepr {
            seq: 0,
            missing: 0,
            ranges: vec![],
        })),
    );
    let st = *r.stats();
    assert_eq!(st.bad_crc, 1);
    assert!(st.malformed >= 2, "{st:?}");
    assert_eq!(st.wrong_session, 1);
    assert_eq!(st.bad_windows, 3);
    assert_eq!(st.unexpected, 1);
    // A window claiming bytes another applied window holds is refused unapplied.
    let w0 = &t.windows[0];
    r.handle_datagram(
        t0,
        &d(FrameRepr::Win(frame::WinRepr {
            index: 0,
            offset: w0.offset,
            len: w0.len,
            container: &w0.container,
        })),
    );
    let w1 = &t.windows[1];
    r.handle_datagram(
        t0,
        &d(FrameRepr::Win(frame::WinRepr {
            index: 1,
            offset: w0.offset,
            len: w1.len,
            container: &w1.container,
        })),
    );
    assert_eq!(r.stats().bad_windows, 4, "overlap refused");
    // Now all the real windows: the hash differs from the (forged) manifest.
    for (i, w) in t.windows.iter().enumerate() {
        r.handle_datagram(
            t0,
            &d(FrameRepr::Win(frame::WinRepr {
                index: i as u32,
                offset: w.offset,
                len: w.len,
                container: &w.container,
            })),
        );
    }
    assert_eq!(r.state(), ReceiverState::Failed(FailReason::HashMismatch));
    assert!(r.take_object().is_none());
}

#[test]
fn nak_storm_does_not_multiply_traffic() {
    let b = blob();
    let obj = object(200_000, 4);
    let t = transfer(&b, &obj, Mode::Pvrt);
    let n = t.windows.len() as u64;
    let t0 = Instant::now();
    let unlimited = Config {
        max_in_flight: u32::MAX,
        ..cfg()
    };
    let mut s = Sender::new(unlimited, 3, t, t0).unwrap();
    let mut buf = Vec::new();
    while s.poll_transmit(t0, &mut buf) {}
    let all = NeedRepr {
        seq: 0,
        missing: n as u32,
        ranges: vec![(0, n as u32)],
    };
    // 1000 copies of the same NEED, then 1000 stale ones, all before sending.
    for _ in 0..1000 {
        s.handle_datagram(t0, &FrameRepr::Need(all.clone()).to_datagram(3).unwrap());
    }
    let mut sent = 0;
    while s.poll_transmit(t0, &mut buf) {
        sent += 1;
    }
    assert_eq!(sent, n + 1, "each window once, then END");
    assert!(s.stats().stale >= 999);
    // Out-of-range NEED ranges are counted, not followed.
    let bad = NeedRepr {
        seq: 1,
        missing: 1,
        ranges: vec![(u32::MAX - 1, 1)],
    };
    s.handle_datagram(t0, &FrameRepr::Need(bad).to_datagram(3).unwrap());
    let mut sent = 0;
    while s.poll_transmit(t0, &mut buf) {
        sent += 1;
    }
    assert_eq!(sent, 1, "only END");
}

#[test]
fn empty_object() {
    let b = blob();
    let t = Transfer::new(
        Mode::Pvrt,
        b.len() as u64,
        fingerprint_bytes(&b),
        &[],
        &[],
        "",
    )
    .unwrap();
    let mut w = World::new(3, Net::default());
    let mut s = Sender::new(cfg(), 1, t, w.t0).unwrap();
    let mut r = Receiver::new(rcfg(), &b, fingerprint_bytes(&b), w.t0);
    w.run(&mut s, &mut r, Duration::from_secs(5));
    assert_eq!(s.state(), SenderState::Done);
    assert!(r.take_object().unwrap().is_empty());
}

#[test]
fn raw_transfers_need_a_receiver_that_accepts_raw() {
    let b = blob();
    let obj: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let prog = compile(
        &b,
        &Index::palette(),
        &obj,
        CompileOptions { allow_raw: true },
    )
    .unwrap();
    assert!(prog.raw_bytes > 0);
    assert!(prog.ops.iter().any(|o| matches!(o, Op::Raw(_))));
    let t = Transfer::new(
        Mode::Pvrt,
        b.len() as u64,
        fingerprint_bytes(&b),
        &prog.ops,
        &obj,
        "r",
    )
    .unwrap();
    let mut w = World::new(4, Net::default());
    let mut s = Sender::new(cfg(), 1, t.clone(), w.t0).unwrap();
    let strict = ReceiverConfig {
        accept_raw: false,
        ..rcfg()
    };
    let mut r = Receiver::new(strict, &b, fingerprint_bytes(&b), w.t0);
    w.run(&mut s, &mut r, Duration::from_secs(5));
    assert!(matches!(
        r.state(),
        ReceiverState::Failed(FailReason::Refused(_))
    ));
    let mut w = World::new(
        4,
        Net {
            loss: 5.0,
            jitter_us: 2000,
            ..Net::default()
        },
    );
    let mut s = Sender::new(cfg(), 1, t, w.t0).unwrap();
    let mut r = Receiver::new(rcfg(), &b, fingerprint_bytes(&b), w.t0);
    w.run(&mut s, &mut r, Duration::from_secs(60));
    assert_eq!(&r.take_object().unwrap()[..], &obj[..]);
}

#[test]
fn flow_control_waits_for_acks_then_the_timer() {
    let b = blob();
    let obj = object(300_000, 5);
    let t = transfer(&b, &obj, Mode::Pvrt);
    let n = t.windows.len() as u32;
    assert!(n > 40, "{n}");
    let t0 = Instant::now();
    let c = Config {
        max_in_flight: 10,
        ..cfg()
    };
    let mut s = Sender::new(c, 4, t, t0).unwrap();
    let mut buf = Vec::new();
    while s.poll_transmit(t0, &mut buf) {}
    let need = NeedRepr {
        seq: 0,
        missing: n,
        ranges: vec![(0, n)],
    };
    s.handle_datagram(t0, &FrameRepr::Need(need).to_datagram(4).unwrap());
    let mut count = |s: &mut Sender, now| {
        let mut k = 0;
        while s.poll_transmit(now, &mut buf) {
            k += 1;
        }
        k
    };
    assert_eq!(count(&mut s, t0), 10, "stops at the in-flight limit");
    // An ACK for window 4 frees five slots; one from another round frees none.
    let ack = |seq, highest| {
        FrameRepr::Ack(frame::AckRepr { seq, highest })
            .to_datagram(4)
            .unwrap()
    };
    s.handle_datagram(t0, &ack(0, 4));
    assert_eq!(count(&mut s, t0), 5);
    s.handle_datagram(t0, &ack(7, 100));
    assert_eq!(count(&mut s, t0), 0);
    // No ACK for an RTO: the limit is released and counted as a stall.
    let later = s.poll_timeout().unwrap();
    s.handle_timeout(later);
    assert_eq!(s.stats().stalls, 1);
    assert_eq!(count(&mut s, later), 10);
}
