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
    demo_edge(dir.path(), &mut rows)?;
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

/// One in-process edge server on an ephemeral loopback port, with `dir` as its
/// data root: one compute job on `file://` data and one on `http://` data from
/// its own origin mode, both checked against the scalar oracle.
fn demo_edge(dir: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use pfs_dataplane::exec::{Instruction, oracle};

    use crate::edge::client::EdgeClient;
    use crate::edge::{EdgeConfig, EdgeServer};

    let blob = dir.join("edge.bin");
    blob::create(&blob, 8, Fill::Random, 4, true, false)?;
    let bytes = std::fs::read(&blob)?;
    let server = EdgeServer::start(EdgeConfig {
        listen: "127.0.0.1:0".parse()?,
        data_root: Some(dir.to_path_buf()),
        ..EdgeConfig::default()
    })?;
    println!(
        "edge server: {} (data root {})",
        server.url(),
        dir.display()
    );
    // Windows that cross 1 MiB boundaries and end in a partial window.
    let len = bytes.len() as u64;
    let instrs = [
        Instruction {
            op: Op::CountEq(0),
            offset: 0,
            length: len,
        },
        Instruction {
            op: Op::Crc32c,
            offset: 1000,
            length: 3 << 20,
        },
        Instruction {
            op: Op::Fnv,
            offset: (1 << 20) - 7,
            length: (2 << 20) + 100,
        },
    ];
    let want = oracle(&bytes, &instrs)?;
    let body_instrs: Vec<serde_json::Value> = instrs
        .iter()
        .map(|i| serde_json::json!({"op": i.op.name(), "imm": i.op.imm(), "offset": i.offset, "length": i.length}))
        .collect();
    let client = EdgeClient::new(&server.url(), None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (kind, url) in [
        ("file://", format!("file://{}", blob.display())),
        ("http://", format!("{}/data/edge.bin", server.url())),
    ] {
        let v = rt.block_on(
            client.compute(&serde_json::json!({"data_url": url, "instructions": body_instrs})),
        )?;
        let got: Vec<u64> = v["results"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        anyhow::ensure!(
            got == want,
            "edge {kind}: results {got:?}, the oracle says {want:?}"
        );
        rows.push(Row {
            step: format!("edge compute {kind} (3 instructions, 8 MiB)"),
            outcome: "results = oracle".into(),
            figure: format!(
                "{:.2} ms, fetched {} B in {} ranges",
                v["timing"]["elapsed_ms"].as_f64().unwrap_or(0.0),
                v["timing"]["bytes_fetched"],
                v["timing"]["ranges"]
            ),
        });
    }
    server.stop();
    Ok(())
}
