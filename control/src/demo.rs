//! `pfs demo`: runs what PacketFS has end to end on embedded defaults, in a
//! temporary directory, and prints a short summary table.

use std::path::Path;

use pfs_dataplane::fill::Fill;
use pfs_dataplane::kernels::{Backend, Kernels, Op};

use crate::{bench_local, blob};

/// Arguments of `pfs demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Blob size in MiB.
    #[arg(long, default_value_t = 64)]
    pub size_mib: u64,
    /// Keep the temporary directory (its path is printed).
    #[arg(long)]
    pub keep: bool,
}

/// One row of the summary.
#[derive(Debug)]
pub struct Row {
    /// What ran.
    pub step: String,
    /// Its outcome.
    pub outcome: String,
    /// A figure, if any.
    pub figure: String,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("pfs-demo-").tempdir()?;
    println!("pfs demo: working in {}", dir.path().display());
    let mut rows = Vec::new();
    demo_kernels(dir.path(), args.size_mib, &mut rows)?;
    print_table(&rows);
    if args.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}

fn demo_kernels(dir: &Path, size_mib: u64, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let path = dir.join("blob.bin");
    let r = blob::create(&path, size_mib, Fill::Random, 1337, false, false)?;
    rows.push(Row {
        step: format!("blob create {size_mib} MiB random"),
        outcome: "ok".into(),
        figure: format!("{:.2} GB/s write", r.throughput_gbps),
    });
    let kernels = Kernels::get()?;
    let available: Vec<&str> = Backend::available().iter().map(|b| b.name()).collect();
    println!(
        "kernel backend: {} (available: {})",
        kernels.backend(),
        available.join(", ")
    );
    let concurrency = pfs_dataplane::workers::cores().len().max(1) * 2;
    for op in [Op::CountEq(0), Op::Xor, Op::Add, Op::Fnv, Op::Crc32c] {
        let r = bench_local::bench_file(&path, op, size_mib, concurrency, true)?;
        rows.push(Row {
            step: format!("bench local {op}"),
            outcome: format!("result {} = oracle", r.result),
            figure: format!(
                "{:.2} GB/s, p99 {:.0} us, {} workers",
                r.throughput_gbps, r.p99_us, r.workers
            ),
        });
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    let w0 = rows.iter().map(|r| r.step.len()).max().unwrap_or(4).max(4);
    let w1 = rows
        .iter()
        .map(|r| r.outcome.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!();
    println!("{:<w0$}  {:<w1$}  figure", "step", "outcome");
    println!("{}  {}  {}", "-".repeat(w0), "-".repeat(w1), "-".repeat(6));
    for r in rows {
        println!("{:<w0$}  {:<w1$}  {}", r.step, r.outcome, r.figure);
    }
}
