//! Milkshake bench (`specs/milkshake.md` §11): for `histogram` over 1 MiB of input
//! (1,048,576 one-byte UDP packets), the highest send rate at which each counter
//! still counts exactly: the XDP `count` program, nftables (nibble-tree layout
//! and, to choose the layout, 256 linear rules), and a userspace recvmmsg counter
//! (the peer). Same generator (`pfs_dataplane::io` mmsg), same lab, same run.
//!
//! Method: one run unpaced; if it is exact, its achieved rate is the answer (the
//! generator's full rate). Otherwise a bisection over paced rates (6 steps)
//! between 0 and the unpaced rate. On veth the receiver's kernel work (XDP,
//! nftables, the socket enqueue) runs on the sender's core, so a costlier
//! counter also slows the generator.
//!
//! Needs root (it makes a lab `pfs lab up` style); prints `SKIP: reason` otherwise.
//! `PFS_MILKSHAKE_BENCH_KIB` overrides the input size (default 1024).

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pfs_control::lab::Lab;
use pfs_control::milkshake::nft::{Layout, NftTable};
use pfs_control::milkshake::program::{self, Program, ProgramKind};
use pfs_control::milkshake::run::{self, Installed, Pps, SendLimits, XdpCounters};
use pfs_dataplane::io::{self, IoConfig};
use pfs_dataplane::kernels::Kernels;
use pfs_dataplane::netns::NetnsGuard;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Sink {
    Xdp,
    NftVmap,
    NftTree,
    NftLinear,
    Userspace,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::Xdp => "xdp count",
            Sink::NftVmap => "nft (vmap, default)",
            Sink::NftTree => "nft (nibble tree)",
            Sink::NftLinear => "nft (256 linear rules)",
            Sink::Userspace => "userspace recvmmsg (peer)",
        }
    }
}

struct Trial {
    sent: u64,
    counted: u64,
    pps: f64,
    exact: bool,
}

fn trial(sink: Sink, generator: io::Backend, lab: &Lab, p: &Program, pps: Pps) -> Trial {
    let limits = SendLimits {
        pps,
        seconds: 30.0,
        generator,
    };
    if sink == Sink::Userspace {
        return userspace_trial(lab, p, limits);
    }
    let rules = p.rules();
    let inst = match sink {
        Sink::Xdp => Installed::Xdp(XdpCounters::attach(lab.ns_b(), lab.veth_b(), &rules).unwrap()),
        Sink::NftVmap => {
            Installed::Nft(NftTable::install_with(lab.ns_b(), &rules, Layout::Vmap).unwrap())
        }
        Sink::NftTree => {
            Installed::Nft(NftTable::install_with(lab.ns_b(), &rules, Layout::Tree).unwrap())
        }
        _ => Installed::Nft(NftTable::install_with(lab.ns_b(), &rules, Layout::Linear).unwrap()),
    };
    let sr = run::send(p, lab, limits).unwrap();
    let (c, _) = run::settle(&inst, Duration::from_millis(30), Duration::from_secs(3)).unwrap();
    inst.remove().unwrap();
    let (d, acc) = program::decode(p, &c, &sr.tally).unwrap();
    let ok = d == program::oracle(p, Kernels::get().unwrap()).expected;
    Trial {
        sent: acc.sent,
        counted: acc.counted,
        pps: sr.pps,
        exact: acc.exact && ok,
    }
}

/// The peer: a recvmmsg socket in namespace b building the same histogram.
fn userspace_trial(lab: &Lab, p: &Program, limits: SendLimits) -> Trial {
    let port = p.port();
    let mut rx = {
        let _g = NetnsGuard::enter(lab.ns_b()).unwrap();
        io::open(&IoConfig::new(
            io::Backend::Mmsg,
            SocketAddrV4::new(lab.addr_b(), port),
        ))
        .unwrap()
    };
    // Large receive buffer, as a fair userspace counter would ask for.
    let bufsz: libc::c_int = 64 << 20;
    // SAFETY: setsockopt on the receiver's own open fd with a c_int option value
    // that lives for the call.
    unsafe {
        libc::setsockopt(
            rx.raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bufsz as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let recv = std::thread::spawn(move || {
        let mut hist = vec![0u64; 256];
        let mut total = 0u64;
        let mut idle_since: Option<Instant> = None;
        loop {
            let n = rx
                .recv(64, Duration::from_millis(20), &mut |payload, _| {
                    total += 1;
                    if let Some(&b) = payload.first() {
                        hist[usize::from(b)] += 1;
                    }
                })
                .unwrap();
            if n > 0 {
                idle_since = None;
            } else if done2.load(Ordering::Relaxed) {
                let t = *idle_since.get_or_insert_with(Instant::now);
                if t.elapsed() > Duration::from_millis(200) {
                    break;
                }
            }
        }
        let mut c = hist;
        c.push(total);
        c
    });
    let sr = run::send(p, lab, limits).unwrap();
    done.store(true, Ordering::Relaxed);
    let c = recv.join().unwrap();
    let (d, acc) = program::decode(p, &c, &sr.tally).unwrap();
    let ok = d == program::oracle(p, Kernels::get().unwrap()).expected;
    Trial {
        sent: acc.sent,
        counted: acc.counted,
        pps: sr.pps,
        exact: acc.exact && ok,
    }
}

struct Found {
    rate: f64,
    full: Trial,
    trials: usize,
}

fn highest_exact(sink: Sink, generator: io::Backend, lab: &Lab, p: &Program) -> Found {
    let full = trial(sink, generator, lab, p, Pps::Max);
    if full.exact {
        return Found {
            rate: full.pps,
            full,
            trials: 1,
        };
    }
    let (mut lo, mut hi) = (0f64, full.pps);
    let mut trials = 1;
    for _ in 0..6 {
        let mid = ((lo + hi) / 2.0).max(1000.0);
        let t = trial(sink, generator, lab, p, Pps::Rate(mid as u64));
        trials += 1;
        if t.exact {
            lo = t.pps.min(mid);
        } else {
            hi = mid;
        }
    }
    Found {
        rate: lo,
        full,
        trials,
    }
}

struct LabGuard(String);
impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Lab::down(&self.0);
        let _ = std::fs::remove_file(pfs_control::lab::state::lock_path(&self.0));
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: milkshake bench needs root (namespaces, XDP, nftables)");
        return;
    }
    let kib: usize = std::env::var("PFS_MILKSHAKE_BENCH_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let name = format!("mb{}", std::process::id() % 100_000);
    let lab = Lab::up(&name).expect("lab up");
    let _g = LabGuard(name.clone());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..kib * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let p = Program::new(ProgramKind::Histogram, None, 51999, data).unwrap();
    println!(
        "milkshake histogram: {} KiB input = {} packets of 1-byte UDP payload, lab {name} (veth)",
        kib,
        p.packet_count()
    );
    let gens: Vec<io::Backend> = std::env::var("PFS_MILKSHAKE_BENCH_GENERATORS")
        .unwrap_or_else(|_| "mmsg,xsk".into())
        .split(',')
        .filter_map(|g| g.parse().ok())
        .collect();
    for generator in gens {
        if let Err(e) = generator.probe() {
            println!("generator {generator}: SKIP: {e}");
            continue;
        }
        println!();
        println!("generator io::{generator} (batch 64), same run for every counter:");
        println!(
            "{:<28} {:>18} {:>22} {:>8}",
            "counter", "highest exact rate", "unpaced: rate, counted", "trials"
        );
        let mut rates = Vec::new();
        for sink in [
            Sink::Xdp,
            Sink::NftVmap,
            Sink::NftTree,
            Sink::NftLinear,
            Sink::Userspace,
        ] {
            let f = highest_exact(sink, generator, &lab, &p);
            println!(
                "{:<28} {:>13.3} Mpps {:>10.3} Mpps, {:>6.2}% {:>8}",
                sink.name(),
                f.rate / 1e6,
                f.full.pps / 1e6,
                100.0 * f.full.counted as f64 / f.full.sent.max(1) as f64,
                f.trials
            );
            rates.push((sink, f.rate));
        }
        let user = rates
            .iter()
            .find(|r| r.0 == Sink::Userspace)
            .map_or(0.0, |r| r.1);
        for (sink, r) in &rates {
            if *sink != Sink::Userspace {
                println!(
                    "ratio {} / userspace recvmmsg: {:.2}x",
                    sink.name(),
                    r / user.max(1.0)
                );
            }
        }
    }
}
