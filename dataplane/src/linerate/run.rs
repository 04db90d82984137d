//! The line-rate loops: [`tx`] sends paced probes and collects echoes, [`rx`]
//! receives and accounts probes (and, for `reflect`, bounces them back). They drive
//! any [`Io`] backend; every loop ends at its deadline, its count or the stop flag.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::io::frame::HEADERS;
use crate::io::{Io, IoError, sys};
use crate::stats::Latency;
use crate::workers::Counters;

use super::pace::Pacer;
use super::track::SeqTracker;
use super::wire::{self, HEADER_LEN, Kind, ProbePacket, ProbeRepr};

/// How long `tx` keeps listening for echoes after its last probe.
pub const ECHO_GRACE: Duration = Duration::from_millis(200);

/// What `tx` does.
#[derive(Debug, Clone)]
pub struct TxParams {
    /// Where probes go.
    pub dst: SocketAddrV4,
    /// UDP payload bytes per probe (32..=1472).
    pub size: usize,
    /// Probes per second (`None`: as fast as possible).
    pub rate: Option<u64>,
    /// Longest run.
    pub duration: Duration,
    /// Most probes.
    pub count: Option<u64>,
    /// Most probes per call.
    pub batch: usize,
    /// The run id written into every probe.
    pub run: u32,
    /// Listen for echoes (from `reflect`) and record round-trip times.
    pub echoes: bool,
}

/// What `tx` did.
#[derive(Debug, Clone, Default)]
pub struct TxReport {
    /// Probes the backend accepted.
    pub sent: u64,
    /// Seconds from the first to the last send.
    pub elapsed_s: f64,
    /// Echoes received (valid, this run).
    pub echoes: u64,
    /// Round-trip times of echoes.
    pub rtt: Latency,
    /// Backend drops (e.g. failed sends, ring drops).
    pub drops: u64,
    /// CPU seconds the sending thread used (user + system).
    pub cpu_s: f64,
}

/// What `rx`/`reflect` expect.
#[derive(Debug, Clone)]
pub struct RxParams {
    /// Longest run.
    pub duration: Duration,
    /// Stop after this many probes of the run.
    pub count: Option<u64>,
    /// Most probes per call.
    pub batch: usize,
    /// Send every valid probe back as an echo.
    pub reflect: bool,
}

/// What `rx`/`reflect` saw (spec §4).
#[derive(Debug, Clone, Default)]
pub struct RxReport {
    /// The run id accounted (the first seen).
    pub run: Option<u32>,
    /// Valid probes of the run, duplicates included.
    pub packets: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// Lost: (highest seq + 1) − unique.
    pub lost: u64,
    /// Duplicated sequence numbers.
    pub duplicates: u64,
    /// Arrived below the highest sequence number seen.
    pub reordered: u64,
    /// Too far below the highest to check for duplicates.
    pub late: u64,
    /// Datagrams that are not probes.
    pub invalid: u64,
    /// Probes whose filler was damaged.
    pub corrupt: u64,
    /// Probes of another run.
    pub foreign: u64,
    /// Seconds from the first to the last probe received.
    pub elapsed_s: f64,
    /// One-way latency.
    pub latency: Latency,
    /// Echoes sent back (`reflect`).
    pub echoed: u64,
    /// Backend drops.
    pub drops: u64,
    /// CPU seconds the receiving thread used (user + system).
    pub cpu_s: f64,
}

impl TxReport {
    /// Probes per second.
    pub fn pps(&self) -> f64 {
        rate(self.sent, self.elapsed_s)
    }
    /// Sending thread CPU nanoseconds per probe.
    pub fn cpu_ns_per_packet(&self) -> f64 {
        rate((self.cpu_s * 1e9) as u64, self.sent as f64)
    }
}

impl RxReport {
    /// Probes per second.
    pub fn pps(&self) -> f64 {
        rate(self.packets, self.elapsed_s)
    }
    /// Receiving thread CPU nanoseconds per probe (this thread only: on veth and
    /// loopback the kernel's receive work runs on the sender's core).
    pub fn cpu_ns_per_packet(&self) -> f64 {
        rate((self.cpu_s * 1e9) as u64, self.packets as f64)
    }
}

/// `n / secs`, 0 for an empty interval.
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Gbit/s of Ethernet frames carrying `pps` probes of `size` payload bytes.
pub fn gbps(pps: f64, size: usize) -> f64 {
    pps * (size + HEADERS) as f64 * 8.0 / 1e9
}

/// Sends probes of `p.size` bytes to `p.dst` until the deadline, the count or
/// `stop`; records echoes when `p.echoes`.
pub fn tx(
    io: &mut dyn Io,
    p: &TxParams,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<TxReport, IoError> {
    let size = p.size.max(HEADER_LEN);
    let mut template = vec![0u8; size];
    wire::write_filler(p.run, &mut template);
    let frame_bytes = (size + HEADERS) as u64;
    let cpu0 = sys::thread_cpu_ns();
    let start = sys::monotonic_ns();
    let deadline = start.saturating_add(p.duration.as_nanos() as u64);
    let limit = p.count.unwrap_or(u64::MAX);
    let mut pacer = Pacer::new(p.rate, start, p.batch);
    let mut seq = 0u64;
    let mut report = TxReport::default();
    let mut last_send = start;
    let mut round = 0u32;
    let echo = |payload: &[u8], report: &mut TxReport| {
        if let Ok(r) = ProbePacket::check(payload)
            && r.kind == Kind::Echo
            && r.run == p.run
        {
            report.echoes += 1;
            report
                .rtt
                .record_ns(sys::monotonic_ns().saturating_sub(r.sent_ns));
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) || seq >= limit {
            break;
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            break;
        }
        let n = pacer.allowance(now, limit - seq);
        if n == 0 {
            let wait = pacer.wait_ns(now).min(deadline - now);
            if wait > 200_000 {
                std::thread::sleep(Duration::from_nanos(wait - 100_000));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        let base = seq;
        let run = p.run;
        let k = io.send(p.dst, n, size, &mut |i, buf| {
            buf.copy_from_slice(&template);
            let r = ProbeRepr {
                kind: Kind::Data,
                len: size as u16,
                run,
                seq: base + i as u64,
                sent_ns: sys::monotonic_ns(),
            };
            // `buf` is `size` ≥ 32 bytes, so the header fits.
            let _ = r.emit_header(buf);
        })?;
        if k > 0 {
            seq += k as u64;
            pacer.sent(k);
            counters.add(k as u64, k as u64 * frame_bytes);
            last_send = sys::monotonic_ns();
        }
        round = round.wrapping_add(1);
        if round.is_multiple_of(1024) {
            // Some backends read drops with a syscall: sample them rarely.
            counters.set_drops(io.drops());
        }
        if p.echoes {
            io.recv(p.batch, Duration::ZERO, &mut |b, _| echo(b, &mut report))?;
        }
    }
    report.sent = seq;
    report.elapsed_s = last_send.saturating_sub(start) as f64 / 1e9;
    if p.echoes {
        let until = sys::monotonic_ns() + ECHO_GRACE.as_nanos() as u64;
        while report.echoes < report.sent && !stop.load(Ordering::Relaxed) {
            let now = sys::monotonic_ns();
            if now >= until {
                break;
            }
            let left = Duration::from_nanos(until - now).min(Duration::from_millis(20));
            io.recv(p.batch, left, &mut |b, _| echo(b, &mut report))?;
        }
    }
    report.drops = io.drops();
    counters.set_drops(report.drops);
    report.cpu_s = sys::thread_cpu_ns().saturating_sub(cpu0) as f64 / 1e9;
    Ok(report)
}

/// Receives probes until the deadline, `p.count` probes of the run, or `stop`;
/// sends each valid one back when `p.reflect`.
pub fn rx(
    io: &mut dyn Io,
    p: &RxParams,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<RxReport, IoError> {
    let cpu0 = sys::thread_cpu_ns();
    let start = sys::monotonic_ns();
    let deadline = start.saturating_add(p.duration.as_nanos() as u64);
    let limit = p.count.unwrap_or(u64::MAX);
    let mut report = RxReport::default();
    let mut track = SeqTracker::new();
    let mut first = None;
    let mut last = start;
    let batch = p.batch.max(1);
    let mut round = 0u32;
    let mut bad_seen = 0u64;
    // Echo buffers: (source, length, bytes).
    let mut echoes: Vec<(SocketAddrV4, usize, [u8; 2048])> = Vec::new();
    if p.reflect {
        echoes.resize(batch, (SocketAddrV4::new(0.into(), 0), 0, [0u8; 2048]));
    }
    while !stop.load(Ordering::Relaxed) && track.packets() < limit {
        let now = sys::monotonic_ns();
        if now >= deadline {
            break;
        }
        let wait = Duration::from_nanos((deadline - now).min(50_000_000));
        let mut n_echo = 0usize;
        let mut bytes = 0u64;
        let mut frames = 0u64;
        io.recv(batch, wait, &mut |payload, src| {
            let Ok(pkt) = ProbePacket::new_checked(payload) else {
                report.invalid += 1;
                return;
            };
            let r = pkt.repr();
            if r.kind != Kind::Data {
                report.invalid += 1;
                return;
            }
            let run = *report.run.get_or_insert(r.run);
            if r.run != run {
                report.foreign += 1;
                return;
            }
            if !pkt.filler_ok() {
                report.corrupt += 1;
                return;
            }
            let t = sys::monotonic_ns();
            first.get_or_insert(t);
            last = t;
            track.record(r.seq);
            report.latency.record_ns(t.saturating_sub(r.sent_ns));
            bytes += payload.len() as u64;
            frames += (payload.len() + HEADERS) as u64;
            if p.reflect && n_echo < echoes.len() {
                let len = (r.len as usize).min(2048);
                let slot = &mut echoes[n_echo];
                slot.0 = src;
                slot.1 = len;
                slot.2[..len].copy_from_slice(&payload[..len]);
                if wire::make_echo(&mut slot.2[..len]) {
                    n_echo += 1;
                }
            }
        })?;
        let bad = report.invalid + report.corrupt;
        if bad > bad_seen {
            counters.error(bad - bad_seen);
            bad_seen = bad;
        }
        let got = track.packets() - report.packets;
        report.packets = track.packets();
        report.bytes += bytes;
        counters.add(got, frames);
        round = round.wrapping_add(1);
        if round.is_multiple_of(1024) {
            counters.set_drops(io.drops());
        }
        // Send echoes back, grouped by (source, length) runs.
        let mut i = 0;
        while i < n_echo {
            let (dst, len) = (echoes[i].0, echoes[i].1);
            let mut j = i + 1;
            while j < n_echo && echoes[j].0 == dst && echoes[j].1 == len {
                j += 1;
            }
            let group = &echoes[i..j];
            let mut done = 0;
            let mut tries = 0;
            while done < group.len() && tries < 64 {
                let k = io.send(dst, group.len() - done, len, &mut |x, buf| {
                    buf.copy_from_slice(&group[done + x].2[..len]);
                })?;
                done += k;
                tries += 1;
            }
            report.echoed += done as u64;
            i = j;
        }
    }
    report.lost = track.lost();
    report.duplicates = track.duplicates();
    report.reordered = track.reordered();
    report.late = track.late();
    report.elapsed_s = first.map_or(0.0, |f| last.saturating_sub(f) as f64 / 1e9);
    report.drops = io.drops();
    report.cpu_s = sys::thread_cpu_ns().saturating_sub(cpu0) as f64 / 1e9;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Backend, IoConfig, open};
    use std::net::Ipv4Addr;

    /// tx → rx over loopback on each socket backend: every probe arrives intact.
    #[test]
    fn loopback_tx_rx_counts_exactly() {
        for backend in [Backend::Mmsg, Backend::Uring] {
            if let Err(e) = backend.probe() {
                println!("SKIP: {backend}: {e}");
                continue;
            }
            let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
            let mut rx_io = open(&IoConfig::new(backend, any)).unwrap();
            let mut tx_io = open(&IoConfig::new(backend, any)).unwrap();
            let dst = rx_io.local();
            let stop = AtomicBool::new(false);
            let (c_tx, c_rx) = (Counters::default(), Counters::default());
            let n = 1000u64;
            let (t, r) = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    rx(
                        rx_io.as_mut(),
                        &RxParams {
                            duration: Duration::from_secs(10),
                            count: Some(n),
                            batch: 64,
                            reflect: false,
                        },
                        &stop,
                        &c_rx,
                    )
                });
                // Paced so loopback's socket buffer never overflows.
                let t = tx(
                    tx_io.as_mut(),
                    &TxParams {
                        dst,
                        size: 200,
                        rate: Some(10_000),
                        duration: Duration::from_secs(10),
                        count: Some(n),
                        batch: 32,
                        run: 77,
                        echoes: false,
                    },
                    &stop,
                    &c_tx,
                )
                .unwrap();
                (t, h.join().unwrap().unwrap())
            });
            assert_eq!(t.sent, n, "{backend}");
            assert_eq!(r.packets, n, "{backend}");
            assert_eq!((r.lost, r.duplicates, r.corrupt, r.invalid), (0, 0, 0, 0));
            assert_eq!(r.run, Some(77));
            assert_eq!(r.bytes, n * 200);
            assert_eq!(r.latency.count(), n);
            assert_eq!(c_rx.snapshot().packets, n);
        }
    }

    /// tx ↔ reflect over loopback: every probe comes back as an echo with an RTT.
    #[test]
    fn loopback_reflect_gives_rtt() {
        for backend in [Backend::Mmsg, Backend::Uring] {
            if backend.probe().is_err() {
                continue;
            }
            let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
            let mut refl = open(&IoConfig::new(backend, any)).unwrap();
            let mut tx_io = open(&IoConfig::new(backend, any)).unwrap();
            let dst = refl.local();
            let stop = AtomicBool::new(false);
            let (c_tx, c_rx) = (Counters::default(), Counters::default());
            let n = 300u64;
            let (t, r) = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    rx(
                        refl.as_mut(),
                        &RxParams {
                            duration: Duration::from_secs(10),
                            count: Some(n),
                            batch: 64,
                            reflect: true,
                        },
                        &stop,
                        &c_rx,
                    )
                });
                let t = tx(
                    tx_io.as_mut(),
                    &TxParams {
                        dst,
                        size: 64,
                        rate: Some(5_000),
                        duration: Duration::from_secs(10),
                        count: Some(n),
                        batch: 16,
                        run: 5,
                        echoes: true,
                    },
                    &stop,
                    &c_tx,
                )
                .unwrap();
                (t, h.join().unwrap().unwrap())
            });
            assert_eq!(r.packets, n, "{backend}");
            assert_eq!(r.echoed, n, "{backend}");
            assert_eq!(t.echoes, n, "{backend}");
            assert_eq!(t.rtt.count(), n);
        }
    }

    #[test]
    fn stop_flag_ends_runs() {
        let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let mut io = open(&IoConfig::new(Backend::Mmsg, any)).unwrap();
        let stop = AtomicBool::new(true);
        let c = Counters::default();
        let r = rx(
            io.as_mut(),
            &RxParams {
                duration: Duration::from_secs(3600),
                count: None,
                batch: 8,
                reflect: false,
            },
            &stop,
            &c,
        )
        .unwrap();
        assert_eq!(r.packets, 0);
        let dst = io.local();
        let t = tx(
            io.as_mut(),
            &TxParams {
                dst,
                size: 32,
                rate: None,
                duration: Duration::from_secs(3600),
                count: None,
                batch: 8,
                run: 1,
                echoes: false,
            },
            &stop,
            &c,
        )
        .unwrap();
        assert_eq!(t.sent, 0);
    }
}
