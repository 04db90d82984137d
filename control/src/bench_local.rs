//! `pfs bench local`: the seed's local benchmark — N windows of 1 MiB of a mapped
//! file, computed by pinned workers, checked against the scalar oracle.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pfs_dataplane::exec::{self, ExecOptions, Instruction};
use pfs_dataplane::kernels::{Kernels, Op};
use pfs_dataplane::mapped::{self, MappedFile};
use pfs_dataplane::ranges::WINDOW;
use serde::Serialize;

use crate::usage::bad;

/// Arguments of `pfs bench local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// Input file (mapped read-only).
    pub path: PathBuf,
    /// Worker threads (more than cores is allowed and reported).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Windows of 1 MiB, starting at offset 0.
    #[arg(long, default_value_t = 256)]
    pub windows: u64,
    /// Kernel: counteq, xor, add, fnv or crc32c.
    #[arg(long, default_value = "counteq")]
    pub op: String,
    /// Immediate for counteq (0..=255).
    #[arg(long, allow_negative_numbers = true)]
    pub imm: Option<i64>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Skip the scalar-oracle check.
    #[arg(long)]
    pub no_verify: bool,
}

/// The benchmark's result (`--json` prints exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct LocalReport {
    /// Op name.
    pub op: String,
    /// Immediate (0 for ops without one).
    pub imm: u8,
    /// The op over all windows, combined as `specs/kernels.md` §3.3 says.
    pub result: u64,
    /// Windows computed.
    pub windows: u64,
    /// Bytes computed.
    pub bytes: u64,
    /// Seconds from the first window's start to the last window's end.
    pub elapsed_s: f64,
    /// bytes / elapsed_s / 1e9.
    pub throughput_gbps: f64,
    /// Bytes computed per second, in GB/s: the same figure as throughput.
    pub cpupwn_gbps: f64,
    /// Median per-window latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile per-window latency, microseconds.
    pub p99_us: f64,
    /// Kernel backend.
    pub backend: String,
    /// Worker threads.
    pub workers: usize,
    /// Workers that computed at least one window (1 for `fnv`, which is serial).
    pub busy_workers: usize,
    /// Cores available.
    pub cores: usize,
    /// More workers than cores.
    pub oversubscribed: bool,
    /// Core of each worker (null where pinning failed).
    pub pinned: Vec<Option<usize>>,
    /// Page kind backing the mapping.
    pub pages: String,
    /// Seconds spent mapping (and pre-faulting) the file, not in elapsed_s.
    pub map_s: f64,
    /// `true` when checked equal to the scalar oracle, `null` when not checked.
    pub verified: Option<bool>,
}

/// Runs the local benchmark on an already-mapped buffer.
pub fn bench_buffer(
    kernels: &Kernels,
    data: &[u8],
    op: Op,
    windows: u64,
    concurrency: usize,
    verify: bool,
) -> anyhow::Result<LocalReport> {
    let bytes = windows
        .checked_mul(WINDOW)
        .ok_or_else(|| bad(format!("windows: {windows} windows overflow")))?;
    if windows == 0 {
        return Err(bad("windows: 0 is not allowed"));
    }
    if concurrency == 0 {
        return Err(bad("concurrency: 0 is not allowed"));
    }
    if bytes > data.len() as u64 {
        return Err(bad(format!(
            "windows: {windows} windows of 1 MiB need {bytes} bytes, but the input has {}",
            data.len()
        )));
    }
    let instrs = [Instruction {
        op,
        offset: 0,
        length: bytes,
    }];
    let opts = ExecOptions {
        workers: concurrency,
        pin: true,
        window: WINDOW,
    };
    let r = exec::execute(kernels, data, &instrs, opts).map_err(bad)?;
    let verified = if verify {
        let want = exec::oracle(data, &instrs).map_err(bad)?;
        if want != r.results {
            anyhow::bail!(
                "result mismatch: backend {} gave {:#x}, the scalar oracle {:#x}",
                kernels.backend(),
                r.results[0],
                want[0]
            );
        }
        Some(true)
    } else {
        None
    };
    let elapsed_s = r.elapsed.as_secs_f64();
    let gbps = r.bytes as f64 / elapsed_s.max(1e-9) / 1e9;
    Ok(LocalReport {
        op: op.name().to_string(),
        imm: op.imm(),
        result: r.results[0],
        windows: r.windows,
        bytes: r.bytes,
        elapsed_s,
        throughput_gbps: gbps,
        cpupwn_gbps: gbps,
        p50_us: r.latency.quantile_us(0.50),
        p99_us: r.latency.quantile_us(0.99),
        backend: kernels.backend().to_string(),
        workers: r.placement.workers,
        busy_workers: r.busy_workers,
        cores: r.placement.cores,
        oversubscribed: r.placement.oversubscribed(),
        pinned: r.placement.pinned,
        pages: mapped::page_kind(data.as_ptr() as usize, data.len()),
        map_s: 0.0,
        verified,
    })
}

/// Maps `path` and runs the benchmark.
pub fn bench_file(
    path: &Path,
    op: Op,
    windows: u64,
    concurrency: usize,
    verify: bool,
) -> anyhow::Result<LocalReport> {
    let kernels = Kernels::get().map_err(bad)?;
    let t = Instant::now();
    let map = MappedFile::open(path).map_err(bad)?;
    let map_s = t.elapsed().as_secs_f64();
    let mut r =
        bench_buffer(kernels, map.bytes(), op, windows, concurrency, verify).map_err(|e| {
            match e.downcast::<crate::usage::UsageError>() {
                Ok(u) => bad(format!("{}: {u}", path.display())),
                Err(e) => e,
            }
        })?;
    r.map_s = map_s;
    Ok(r)
}

/// Prints a report for people.
pub fn print_human(path: &Path, r: &LocalReport) {
    let pins: Vec<String> = r
        .pinned
        .iter()
        .map(|p| p.map_or("-".into(), |c| c.to_string()))
        .collect();
    println!(
        "pfs bench local {}: op={} imm={} backend={} pages={}",
        path.display(),
        r.op,
        r.imm,
        r.backend,
        r.pages
    );
    println!(
        "windows={} bytes={} elapsed_s={:.4} throughput={:.2} GB/s cpupwn={:.2} GB/s",
        r.windows, r.bytes, r.elapsed_s, r.throughput_gbps, r.cpupwn_gbps
    );
    println!(
        "window latency p50={:.1} us p99={:.1} us; workers={} ({} busy) on {} cores{} (pinned to cores {})",
        r.p50_us,
        r.p99_us,
        r.workers,
        r.busy_workers,
        r.cores,
        if r.oversubscribed {
            ", oversubscribed"
        } else {
            ""
        },
        pins.join(",")
    );
    let check = match r.verified {
        Some(true) => "equals the scalar oracle",
        Some(false) => "DIFFERS from the scalar oracle",
        None => "not checked",
    };
    println!(
        "result={} ({check}); map+prefault {:.3} s not included",
        r.result, r.map_s
    );
}

/// Runs `pfs bench local`.
pub fn run(args: &LocalArgs) -> anyhow::Result<()> {
    let op = Op::parse(&args.op, args.imm.or(Some(0))).map_err(bad)?;
    let r = bench_file(
        &args.path,
        op,
        args.windows,
        args.concurrency,
        !args.no_verify,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print_human(&args.path, &r);
    }
    Ok(())
}
