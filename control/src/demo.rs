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
    demo_linerate(dir.path(), &mut rows)?;
    demo_edge(dir.path(), &mut rows)?;
    demo_pasm(dir.path(), &mut rows)?;
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
                "{:.2} GB/s, p99 {:.0} us, {} busy workers",
                r.throughput_gbps, r.p99_us, r.busy_workers
            ),
        });
    }
    Ok(())
}

/// When privileged: a lab, and a 2-second `pfs linerate` run per backend across
/// it (rx in b, tx at max in a). Otherwise a row saying what was skipped and why.
fn demo_linerate(_dir: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::lab::Lab;
    use crate::linerate::{self, LinerateArgs, Outcome, Role};

    let skip = |rows: &mut Vec<Row>, why: String| {
        println!("linerate: skipped: {why}");
        rows.push(Row {
            step: "linerate (lab, 2 s per backend)".into(),
            outcome: "skipped".into(),
            figure: why,
        });
    };
    if !pfs_dataplane::io::sys::is_root() {
        skip(
            rows,
            "needs root (network namespaces, veth, XDP); run `sudo pfs demo`".into(),
        );
        return Ok(());
    }
    let name = format!("dm{}", std::process::id() % 1_000_000);
    if let Err(e) = Lab::up(&name) {
        skip(rows, format!("lab up failed: {e}"));
        return Ok(());
    }
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = crate::lab::Lab::down(&self.0);
            let _ = std::fs::remove_file(crate::lab::state::lock_path(&self.0));
        }
    }
    let _down = Down(name.clone());
    let args = |role, backend: &str| LinerateArgs {
        role,
        backend: backend.to_string(),
        size: 64,
        rate: "max".into(),
        duration: if role == Role::Tx { 2.0 } else { 3.0 },
        count: None,
        lab: Some(name.clone()),
        json: false,
        port: 47000,
        batch: 64,
        core: None,
        xdp_mode: "auto".into(),
        quiet: true,
    };
    for (backend, probe) in pfs_dataplane::io::probe() {
        let step = format!("linerate {backend} 64 B, lab {name}");
        if let Err(e) = probe {
            rows.push(Row {
                step,
                outcome: "skipped".into(),
                figure: e.to_string(),
            });
            continue;
        }
        let rx_plan = linerate::plan(&args(Role::Rx, backend.name()))?;
        let tx_plan = linerate::plan(&args(Role::Tx, backend.name()))?;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (rxf, txf) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                linerate::execute(
                    &rx_plan,
                    &stop,
                    |_| {
                        let _ = ready_tx.send(());
                    },
                    |_, _| {},
                )
            });
            let txf = match ready_rx.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(()) => linerate::execute(&tx_plan, &stop, |_| {}, |_, _| {}),
                Err(_) => Err(anyhow::anyhow!("rx did not become ready")),
            };
            let rxf = h
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("rx worker panicked")));
            (rxf, txf)
        });
        match (rxf, txf) {
            (Ok(rxf), Ok(txf)) => {
                let (Outcome::Rx(r), Outcome::Tx(t)) = (&rxf.outcome, &txf.outcome) else {
                    anyhow::bail!("linerate {backend}: unexpected outcomes");
                };
                rows.push(Row {
                    step,
                    outcome: format!(
                        "sent {} recv {} lost {} corrupt {}",
                        t.sent, r.packets, r.lost, r.corrupt
                    ),
                    figure: format!(
                        "tx {:.0} pps, rx {:.0} pps, one-way p50 {:.0} us p99 {:.0} us ({})",
                        txf.pps(),
                        rxf.pps(),
                        r.latency.quantile_us(0.5),
                        r.latency.quantile_us(0.99),
                        txf.mode.split(',').next().unwrap_or("")
                    ),
                });
            }
            (Err(e), _) | (_, Err(e)) => rows.push(Row {
                step,
                outcome: "failed".into(),
                figure: format!("{e:#}"),
            }),
        }
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

/// The seed's hello program (`control/examples/hello.pasm`), planned, run on
/// loopback with planfile and event log in the demo directory, recorded in an ASL
/// store there and read back from it.
fn demo_pasm(dir: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use crate::pasm::{program::Program, record, runner};
    let source = include_bytes!("../examples/hello.pasm");
    let program = Program::parse(source)?;
    let mut opts = runner::RunOptions::new();
    opts.plans_dir = dir.join("plans");
    opts.logs_dir = dir.join("logs");
    opts.echo_logs = false;
    let report = runner::run(&program, source, &opts)?;
    let ok = report
        .planfile
        .steps
        .iter()
        .filter(|s| s.outcome == runner::Outcome::Ok)
        .count();
    let store = dir.join("asl");
    let (key, _) = record::record(&store, &report, source)?;
    let listed = record::runs(&store)?;
    anyhow::ensure!(
        listed.iter().any(|(k, _)| *k == key),
        "the run recorded as {key} is not listed by the store"
    );
    rows.push(Row {
        step: "pasm run hello.pasm (loopback)".into(),
        outcome: format!("{ok}/{} steps ok", report.planfile.steps.len()),
        figure: format!("recorded in ASL as {}", &key.to_string()[..16]),
    });
    Ok(())
}
