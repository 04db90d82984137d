//! Kernel throughput per op and backend, on a 256 MiB buffer in RAM and a 1 MiB
//! buffer in cache, each beside a streaming-read reference measured in the same
//! run, and beside peers: the `bytecount` crate (counteq), the `crc32c` crate and
//! `crc-fast` (crc32c), and numpy's `count_nonzero(a == 0)` when available.
//!
//! Run: `cargo bench -p pfs-benches --bench kernels` (one core, the bench thread).

use std::hint::black_box;
use std::io::Write;
use std::process::Command;

use pfs_benches::{HugeBuf, best_of, gbps, noise, stream_read};
use pfs_dataplane::kernels::{Backend, Kernels, Op};
use pfs_dataplane::mapped::page_kind;

struct Case {
    name: &'static str,
    bytes: usize,
    samples: usize,
    reps: usize,
}

fn main() {
    // Pin to one core so "one core" means one core.
    if let Some(core) = core_ids().first() {
        core_affinity::set_for_current(*core);
    }
    let big = HugeBuf::new(256 << 20, noise);
    let small = HugeBuf::new(2 << 20, noise);
    let cases = [
        (
            Case {
                name: "256 MiB in RAM",
                bytes: 256 << 20,
                samples: 5,
                reps: 1,
            },
            &big,
        ),
        (
            Case {
                name: "1 MiB in cache",
                bytes: 1 << 20,
                samples: 7,
                reps: 400,
            },
            &small,
        ),
    ];
    for (case, buf) in cases {
        let data = &buf.bytes()[..case.bytes];
        let pages = page_kind(data.as_ptr() as usize, data.len());
        let reference = gbps(
            case.bytes,
            best_of(case.samples, case.reps, || stream_read(black_box(data))),
        );
        println!();
        println!(
            "== {} ({} pages), one core; streaming-read reference {:.2} GB/s",
            case.name, pages, reference
        );
        println!(
            "{:<12} {:<8} {:>10} {:>10}",
            "op", "backend", "GB/s", "vs ref"
        );
        for op in [Op::CountEq(0), Op::Xor, Op::Add, Op::Fnv, Op::Crc32c] {
            for backend in Backend::available() {
                let k = Kernels::new(backend).expect("available backend");
                // Slow byte-serial kernels get fewer reps so the bench stays short.
                let reps = if backend == Backend::Scalar || op == Op::Fnv {
                    (case.reps / 20).max(1)
                } else {
                    case.reps
                };
                let g = gbps(
                    case.bytes,
                    best_of(case.samples.min(3), reps, || k.eval(op, black_box(data))),
                );
                println!(
                    "{:<12} {:<8} {:>10.2} {:>9.0}%",
                    op.to_string(),
                    backend.name(),
                    g,
                    g / reference * 100.0
                );
            }
            match op {
                Op::CountEq(_) => {
                    let g = gbps(
                        case.bytes,
                        best_of(case.samples, case.reps, || {
                            bytecount::count(black_box(data), 0)
                        }),
                    );
                    println!(
                        "{:<12} {:<8} {:>10.2} {:>9.0}%   (peer: bytecount, runtime-dispatch-simd)",
                        "counteq(0)",
                        "peer",
                        g,
                        g / reference * 100.0
                    );
                }
                Op::Crc32c => {
                    let g = gbps(
                        case.bytes,
                        best_of(case.samples, case.reps, || crc32c::crc32c(black_box(data))),
                    );
                    println!(
                        "{:<12} {:<8} {:>10.2} {:>9.0}%   (peer: crc32c crate)",
                        "crc32c",
                        "peer",
                        g,
                        g / reference * 100.0
                    );
                }
                _ => {}
            }
        }
        numpy_peer(data, reference);
    }
    println!();
    println!(
        "Figures are best-of-samples on one pinned core; the reference is a load-bound \
         loop (64-byte loads OR-ed into four accumulators) over the same buffer in the same run."
    );
}

fn core_ids() -> Vec<core_affinity::CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// numpy's `count_nonzero(a == 0)` over the same bytes (written to /dev/shm and
/// loaded by numpy), when python3 with numpy is installed.
fn numpy_peer(data: &[u8], reference: f64) {
    let has_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_numpy {
        println!(
            "{:<12} {:<8} {:>10}   (peer: numpy not installed; `pip install numpy` to compare)",
            "counteq(0)", "numpy", "-"
        );
        return;
    }
    let path = format!("/dev/shm/pfs-bench-numpy-{}.bin", std::process::id());
    let ok = std::fs::File::create(&path).and_then(|mut f| f.write_all(data));
    if ok.is_err() {
        println!("numpy peer: cannot write {path}");
        return;
    }
    let script = format!(
        "import numpy as np, time\n\
         a = np.fromfile('{path}', dtype=np.uint8)\n\
         best = 1e9\n\
         for _ in range(5):\n\
         \x20   t = time.perf_counter(); n = np.count_nonzero(a == 0); best = min(best, time.perf_counter() - t)\n\
         print(a.size / best / 1e9)\n"
    );
    let out = Command::new("python3").args(["-c", &script]).output();
    let _ = std::fs::remove_file(&path);
    match out {
        Ok(o) if o.status.success() => {
            let g: f64 = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0.0);
            println!(
                "{:<12} {:<8} {:>10.2} {:>9.0}%   (peer: numpy count_nonzero(a == 0))",
                "counteq(0)",
                "numpy",
                g,
                g / reference * 100.0
            );
        }
        _ => println!("numpy peer: python3 failed"),
    }
}
