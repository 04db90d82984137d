//! Arithmetic transfer bench: `pfs xfer send/recv` over loopback UDP (the real
//! driver, one thread per side) beside `zstd --patch-from` (same base; size and
//! compress + decompress time) and beside raw bytes over UDP (our mmsg backend).
//!
//! (a) palette-friendly data (zeros, ramps, ASCII token text) against a VirtualBlob;
//! (b) a file with 1% of its bytes changed against its previous version (shared base).
//!
//! `PFS_XFER_BENCH_MIB` sets the size of (b) (default 256). Files go to /dev/shm.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pfs_control::xfer::compile::ProgramArgs;
use pfs_control::xfer::source::SourceArgs;
use pfs_control::xfer::transport::{LinkArgs, RecvArgs, SendArgs, recv, send};
use pfs_control::xfer::vblob::setup;
use pfs_dataplane::io::{self, Backend, IoConfig};
use pfs_dataplane::iprog::vblob::{Identity, palette};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_or(47_999, |a| a.port())
}

struct Ours {
    wire: u64,
    compile_s: f64,
    transfer_s: f64,
    end_to_end_s: f64,
    goodput_gbps: f64,
    retransmits: u64,
}

fn link(dir: &Path, loss_percent: f64) -> LinkArgs {
    LinkArgs {
        backend: "mmsg".into(),
        rto_ms: 20,
        idle_timeout_s: 20,
        max_in_flight: 512,
        receipts: Some(dir.join("receipts")),
        json: true,
        loss_percent,
        vanish_after: None,
        no_asl: true,
        asl_store: None,
    }
}

/// One transfer of `file` over loopback; the receiver writes into `dir/out`.
/// `loss_percent` of each side's outgoing datagrams (both directions) are dropped
/// by the driver's test shim (`LinkArgs::loss_percent`, pseudo-random).
fn ours(dir: &Path, file: &Path, source: SourceArgs, allow_raw: bool, loss_percent: f64) -> Ours {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("out dir");
    let port = free_port();
    let ra = RecvArgs {
        listen: format!("127.0.0.1:{port}"),
        out: out.clone(),
        source: source.clone(),
        strict: !allow_raw,
        force: true,
        max_size: 8 << 30,
        wait_s: 60,
        linger_ms: 100,
        resume: None,
        link: link(dir, loss_percent),
    };
    let rx = std::thread::spawn(move || {
        let r = recv(&ra, false);
        (r, Instant::now())
    });
    // Let the receiver map and fingerprint its source before the clock starts.
    std::thread::sleep(Duration::from_millis(1500));
    let sa = SendArgs {
        file: file.to_path_buf(),
        to: format!("127.0.0.1:{port}"),
        bind: "127.0.0.1:0".into(),
        program: ProgramArgs {
            mode: "pvrt".into(),
            source,
            allow_raw,
        },
        link: link(dir, loss_percent),
    };
    let t0 = Instant::now();
    let s = send(&sa, false).expect("send");
    let (r, t_end) = rx.join().expect("receiver thread");
    let r = r.expect("recv");
    let written = r.receipt.written_to.clone().expect("written");
    assert_eq!(
        std::fs::read(&written).expect("read back"),
        std::fs::read(file).expect("read input"),
        "received file differs"
    );
    Ours {
        wire: s.receipt.wire_bytes_sent + s.receipt.wire_bytes_received,
        compile_s: s.compile_s.unwrap_or(0.0),
        transfer_s: s.receipt.duration_s,
        end_to_end_s: t_end.duration_since(t0).as_secs_f64(),
        goodput_gbps: s.receipt.goodput_gbps,
        retransmits: s.receipt.retransmits,
    }
}

struct Zstd {
    size: u64,
    compress_s: f64,
    decompress_s: f64,
}

fn zstd(dir: &Path, base: &Path, file: &Path, extra: &[&str]) -> Option<Zstd> {
    let z = dir.join("z.zst");
    let d = dir.join("z.dec");
    let t = Instant::now();
    let ok = Command::new("zstd")
        .args(["-q", "-f"])
        .args(extra)
        .arg(format!("--patch-from={}", base.display()))
        .arg(file)
        .arg("-o")
        .arg(&z)
        .status()
        .ok()?
        .success();
    let compress_s = t.elapsed().as_secs_f64();
    if !ok {
        return None;
    }
    let t = Instant::now();
    let ok = Command::new("zstd")
        .args(["-q", "-f", "-d"])
        .args(extra)
        .arg(format!("--patch-from={}", base.display()))
        .arg(&z)
        .arg("-o")
        .arg(&d)
        .status()
        .ok()?
        .success();
    let decompress_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&z).ok()?.len();
    let same = std::fs::read(&d).ok()? == std::fs::read(file).ok()?;
    let _ = std::fs::remove_file(&d);
    (ok && same).then_some(Zstd {
        size,
        compress_s,
        decompress_s,
    })
}

/// Raw bytes over loopback UDP with our mmsg backend (sendmmsg/recvmmsg, batches
/// of 64): 1188-byte datagrams, the receiver counts what arrives.
fn raw_udp(data: &[u8]) -> (u64, u64, f64) {
    let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let mut rx = io::open(&IoConfig::new(Backend::Mmsg, any)).expect("mmsg rx");
    let dst = rx.local();
    let total = data.len() as u64;
    let h = std::thread::spawn(move || {
        let mut got = 0u64;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        loop {
            let mut n = 0u64;
            let k = rx
                .recv(64, Duration::from_millis(300), &mut |d, _| {
                    n += d.len() as u64
                })
                .unwrap_or(0);
            if k == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            got += n;
            last = Instant::now();
            if got >= total {
                break;
            }
        }
        (
            got,
            first.map_or(0.0, |f| last.duration_since(f).as_secs_f64()),
        )
    });
    let mut tx = io::open(&IoConfig::new(Backend::Mmsg, any)).expect("mmsg tx");
    let chunks: Vec<&[u8]> = data.chunks(1188).collect();
    let mut sent = 0u64;
    let mut i = 0;
    while i < chunks.len() {
        // Full-size chunks go in batches; the short last one alone.
        let len = chunks[i].len();
        let n = chunks[i..]
            .iter()
            .take(64)
            .take_while(|c| c.len() == len)
            .count();
        let k = tx
            .send(dst, n, len, &mut |j, b| b.copy_from_slice(chunks[i + j]))
            .unwrap_or(0);
        if k == 0 {
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        sent += (k * len) as u64;
        i += k;
    }
    let (got, s) = h.join().expect("raw receiver");
    (sent, got, s)
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

fn main() {
    let mib: usize = std::env::var("PFS_XFER_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let dir = PathBuf::from(format!("/dev/shm/pfs-bench-xfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut rng = Rng(0x5eed_cafe_f00d_0001);

    // ---------------------------------------------------------------- (a)
    let blob = dir.join("blob.bin");
    setup(
        Identity {
            name: "bench".into(),
            size: 64 << 20,
            seed: 1337,
        },
        &blob,
        false,
    )
    .expect("blob setup");
    let p = palette();
    let mut a = Vec::with_capacity(64 << 20);
    while a.len() < 64 << 20 {
        match rng.next() % 3 {
            0 => a.extend(std::iter::repeat_n(
                0u8,
                4096 + (rng.next() % 8192) as usize,
            )),
            1 => a.extend((0..4096 + (rng.next() % 4096) as usize).map(|i| i as u8)),
            _ => {
                let at = 212_992 + (rng.next() as usize % (32 * 1024 - 2048));
                a.extend_from_slice(&p[at..at + 2048]);
            }
        }
    }
    let fa = dir.join("a.bin");
    std::fs::write(&fa, &a).expect("write a");
    let src_a = SourceArgs {
        blob: blob.clone(),
        base: None,
    };
    let oa = ours(&dir, &fa, src_a, false, 0.0);
    let za = zstd(&dir, &blob, &fa, &[]);
    let (ra_sent, ra_got, ra_s) = raw_udp(&a);

    // ---------------------------------------------------------------- (b)
    let n = mib << 20;
    let base: Vec<u8> = {
        let mut v = vec![0u8; n];
        for c in v.chunks_mut(8) {
            let w = rng.next().to_le_bytes();
            c.copy_from_slice(&w[..c.len()]);
        }
        v
    };
    let mut new = base.clone();
    for _ in 0..n / 100 {
        let i = rng.next() as usize % n;
        new[i] = new[i].wrapping_add(1 + (rng.next() % 255) as u8);
    }
    let changed = base.iter().zip(&new).filter(|(x, y)| x != y).count();
    let fbase = dir.join("base.bin");
    let fnew = dir.join("new.bin");
    std::fs::write(&fbase, &base).expect("write base");
    std::fs::write(&fnew, &new).expect("write new");
    drop(base);
    let src_b = SourceArgs {
        blob: blob.clone(),
        base: Some(fbase.clone()),
    };
    let ob = ours(&dir, &fnew, src_b.clone(), true, 0.0);
    let ob5 = ours(&dir, &fnew, src_b, true, 5.0);
    let zb = zstd(&dir, &fbase, &fnew, &[]);
    let zb8 = zstd(&dir, &fbase, &fnew, &["--zstd=ldmMinMatch=8"]);
    let (rb_sent, rb_got, rb_s) = raw_udp(&new);

    println!("xfer bench (one run, loopback UDP, mmsg backend, 2-core VM shared with other jobs)");
    println!();
    println!(
        "(a) palette-friendly {} (zeros, ramps, ASCII tokens) vs VirtualBlob 64 MiB:",
        mb(a.len() as u64)
    );
    report(
        &oa,
        a.len() as u64,
        za.as_ref(),
        None,
        (ra_sent, ra_got, ra_s),
    );
    println!();
    println!(
        "(b) {} MiB file, {} bytes changed ({:.2}%) vs its previous version as shared base (--allow-raw):",
        mib,
        changed,
        changed as f64 * 100.0 / n as f64
    );
    report(
        &ob,
        n as u64,
        zb.as_ref(),
        zb8.as_ref(),
        (rb_sent, rb_got, rb_s),
    );
    println!(
        "  {:<34} {:>12} {:>10} {:>11.3} {:>12.3} {:>10}",
        "  5% loss: transfer to DONE",
        mb(ob5.wire),
        "",
        ob5.transfer_s,
        ob5.goodput_gbps,
        format!("{} rtx", ob5.retransmits)
    );
    println!(
        "  {:<34} goodput 5% loss / lossless = {:.3} / {:.3} = {:.2} → ≥ 0.70: {}",
        "",
        ob5.goodput_gbps,
        ob.goodput_gbps,
        ob5.goodput_gbps / ob.goodput_gbps.max(1e-12),
        if ob5.goodput_gbps >= 0.7 * ob.goodput_gbps {
            "met"
        } else {
            "MISSED"
        }
    );
    if let Some(z) = &zb {
        println!(
            "  targets (b): wire ≤ 1.5× zstd: {:.3}× → {}; end-to-end ≤ zstd c+d: {:.2} s vs {:.2} s → {}; goodput ≥ 1 GB/s: {:.2} GB/s → {}",
            ob.wire as f64 / z.size as f64,
            if ob.wire as f64 <= 1.5 * z.size as f64 {
                "met"
            } else {
                "MISSED"
            },
            ob.end_to_end_s,
            z.compress_s + z.decompress_s,
            if ob.end_to_end_s <= z.compress_s + z.decompress_s {
                "met"
            } else {
                "MISSED"
            },
            ob.goodput_gbps,
            if ob.goodput_gbps >= 1.0 {
                "met"
            } else {
                "MISSED"
            },
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(o: &Ours, size: u64, z: Option<&Zstd>, z8: Option<&Zstd>, raw: (u64, u64, f64)) {
    println!(
        "  {:<34} {:>12} {:>10} {:>11} {:>12} {:>10}",
        "", "wire", "tx_ratio", "time s", "goodput GB/s", "note"
    );
    println!(
        "  {:<34} {:>12} {:>10.2} {:>11.3} {:>12.3} {:>10}",
        "pfs xfer (offsets, verified)",
        mb(o.wire),
        size as f64 / o.wire as f64,
        o.end_to_end_s,
        size as f64 / o.end_to_end_s / 1e9,
        "end-to-end"
    );
    println!(
        "  {:<34} {:>12} {:>10} {:>11.3} {:>12.3} {:>10}",
        "  of which compile (sender)", "", "", o.compile_s, "", ""
    );
    println!(
        "  {:<34} {:>12} {:>10} {:>11.3} {:>12.3} {:>10}",
        "  of which transfer to DONE",
        "",
        "",
        o.transfer_s,
        o.goodput_gbps,
        format!("{} rtx", o.retransmits)
    );
    for (name, z) in [
        ("zstd --patch-from (-3)", z),
        ("zstd --patch-from ldmMinMatch=8", z8),
    ] {
        if let Some(z) = z {
            println!(
                "  {:<34} {:>12} {:>10.2} {:>11.3} {:>12.3} {:>10}",
                name,
                mb(z.size),
                size as f64 / z.size as f64,
                z.compress_s + z.decompress_s,
                size as f64 / (z.compress_s + z.decompress_s) / 1e9,
                format!("c {:.2}+d {:.2}", z.compress_s, z.decompress_s)
            );
            println!(
                "  {:<34} wire ratio pfs/zstd = {:.3}, time ratio pfs/zstd = {:.3}",
                "",
                o.wire as f64 / z.size as f64,
                o.end_to_end_s / (z.compress_s + z.decompress_s)
            );
        }
    }
    let (sent, got, s) = raw;
    println!(
        "  {:<34} {:>12} {:>10.2} {:>11.3} {:>12.3} {:>10}",
        "raw bytes over UDP (mmsg)",
        mb(sent),
        size as f64 / sent.max(1) as f64,
        s,
        got as f64 / s.max(1e-9) / 1e9,
        format!(
            "{:.1}% lost",
            100.0 * (sent - got.min(sent)) as f64 / sent.max(1) as f64
        )
    );
}
