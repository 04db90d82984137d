//! `pfs pasm ...`: plan, run, assemble and disassemble step programs.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::asm;
use super::gates::Gates;
use super::lab::LabRef;
use super::plan::Plan;
use super::program::Program;
use super::runner::{self, Outcome, RunOptions, RunStatus};
use super::{PasmError, record};
use crate::usage::bad;

/// Writes to stdout; a closed pipe (`pfs pasm plan F | head`) is not an error
/// and never a panic.
fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(args);
}

macro_rules! out {
    ($($t:tt)*) => { say(format_args!($($t)*)) };
}

macro_rules! outln {
    ($($t:tt)*) => { say(format_args!("{}\n", format_args!($($t)*))) };
}

/// `pfs pasm` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PasmCommand {
    /// Validate a program and print its plan; executes nothing.
    Plan(PlanArgs),
    /// Run a program: planfile in plans/, event log in logs/.
    Run(RunArgs),
    /// Assemble the text form into JSON (or, with --disasm, JSON into text).
    Asm(AsmArgs),
    /// List the runs recorded in the artifact store.
    Runs(StoreArgs),
    /// Print one recorded run: manifest, planfile (and event log with --events).
    Show(ShowArgs),
}

/// Where runs are recorded.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Artifact store directory. Default: $PFS_ASL, else $XDG_DATA_HOME/pfs/asl,
    /// else $HOME/.local/share/pfs/asl.
    #[arg(long)]
    pub store: Option<PathBuf>,
}

/// Arguments of `pfs pasm show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Run id (or a unique prefix of it, or the manifest key).
    pub run: String,
    /// Print the event log too.
    #[arg(long)]
    pub events: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `pfs pasm plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Program file (JSON, `.pasm`).
    pub file: PathBuf,
    /// Plan against lab NAME (made by `pfs lab up --name NAME`).
    #[arg(long)]
    pub netns: Option<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `pfs pasm run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Program file (JSON, `.pasm`).
    pub file: PathBuf,
    /// Continue past refused and failed steps.
    #[arg(long)]
    pub keep_going: bool,
    /// Directory for planfiles.
    #[arg(long, default_value = "plans")]
    pub plans_dir: PathBuf,
    /// Directory for event logs.
    #[arg(long, default_value = "logs")]
    pub logs_dir: PathBuf,
    /// Run against lab NAME (made by `pfs lab up --name NAME`): enables lab
    /// addresses, fw.counter (nftables) and raw:// (AF_PACKET).
    #[arg(long)]
    pub netns: Option<String>,
    /// Do not record the run in the artifact store.
    #[arg(long)]
    pub no_record: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `pfs pasm asm`.
#[derive(Debug, clap::Args)]
pub struct AsmArgs {
    /// Input file (text form; JSON with --disasm).
    pub file: PathBuf,
    /// JSON → text instead of text → JSON.
    #[arg(long)]
    pub disasm: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Maps a P-ASM error to exit status 2 when it is the user's input.
fn lift(e: PasmError) -> anyhow::Error {
    if e.is_usage() {
        bad(e)
    } else {
        anyhow::Error::new(e)
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if meta.len() > super::program::MAX_PROGRAM_BYTES as u64 {
        return Err(lift(PasmError::TooLarge {
            bytes: meta.len() as usize,
            max: super::program::MAX_PROGRAM_BYTES,
        }));
    }
    std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))
}

fn load(path: &Path) -> anyhow::Result<(Vec<u8>, Program)> {
    let bytes = read(path)?;
    let p = Program::parse(&bytes).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    Ok((bytes, p))
}

fn store_dir(a: &StoreArgs) -> anyhow::Result<PathBuf> {
    a.store
        .clone()
        .or_else(crate::asl::cli::default_store)
        .ok_or_else(|| bad("no store location: pass --store DIR or set PFS_ASL (HOME is unset)"))
}

fn gates(netns: Option<&str>) -> anyhow::Result<Gates> {
    let lab = match netns {
        None => None,
        Some(n) => Some(LabRef::open(n).map_err(lift)?),
    };
    Ok(Gates {
        lab,
        ..Gates::default()
    })
}

/// Runs a `pfs pasm` subcommand.
pub fn run(cmd: &PasmCommand) -> anyhow::Result<()> {
    match cmd {
        PasmCommand::Plan(a) => {
            let (bytes, p) = load(&a.file)?;
            let g = gates(a.netns.as_deref())?;
            let plan = Plan::new(&p, &g);
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                let rec = g.record(false);
                outln!(
                    "plan {}: {} steps, blake3 {}, {} refused",
                    a.file.display(),
                    p.steps.len(),
                    blake3::hash(&bytes).to_hex(),
                    plan.refused
                );
                outln!(
                    "gates: udp to {}; sleep <= {} ms; wait <= {} ms; real backends {}",
                    rec.udp_allow.join(", "),
                    rec.max_sleep_ms,
                    rec.max_wait_ms,
                    match &rec.netns {
                        Some(n) => format!("on (lab {n})"),
                        None => "off (enable with --netns NAME)".into(),
                    }
                );
                out!("{}", plan.render());
            }
            Ok(())
        }
        PasmCommand::Run(a) => {
            let (bytes, p) = load(&a.file)?;
            let opts = RunOptions {
                keep_going: a.keep_going,
                plans_dir: a.plans_dir.clone(),
                logs_dir: a.logs_dir.clone(),
                gates: gates(a.netns.as_deref())?,
                program_path: Some(a.file.clone()),
                // The process-wide SIGINT/SIGTERM flag that `pfs linerate` uses too.
                interrupt: Some(pfs_dataplane::io::sys::stop_flag()),
                echo_logs: true,
            };
            let rep = runner::run(&p, &bytes, &opts).map_err(lift)?;
            let pf = &rep.planfile;
            let n = |o: Outcome| pf.steps.iter().filter(|s| s.outcome == o).count();
            let status = serde_json::to_value(pf.status)?;
            let status = status.as_str().unwrap_or("?");
            outln!(
                "run {}: {status}: {} ok, {} error, {} refused, {} not_run",
                pf.run_id,
                n(Outcome::Ok),
                n(Outcome::Error),
                n(Outcome::Refused),
                n(Outcome::NotRun)
            );
            outln!("planfile: {}", rep.planfile_path.display());
            outln!("event log: {}", rep.event_log_path.display());
            if !a.no_record {
                let dir = store_dir(&a.store)?;
                let (key, _) = record::record(&dir, &rep, &bytes).map_err(lift)?;
                outln!("recorded: run manifest {key} in {}", dir.display());
            }
            match pf.status {
                RunStatus::Ok => Ok(()),
                _ => {
                    let first = pf
                        .steps
                        .iter()
                        .find(|s| matches!(s.outcome, Outcome::Error | Outcome::Refused));
                    match first {
                        Some(s) => anyhow::bail!(
                            "run {} {status}: step {} ({}) {}: {}",
                            pf.run_id,
                            s.index,
                            s.op,
                            serde_json::to_value(s.outcome)?.as_str().unwrap_or("?"),
                            s.reason.as_deref().unwrap_or("")
                        ),
                        None => anyhow::bail!("run {} {status}", pf.run_id),
                    }
                }
            }
        }
        PasmCommand::Runs(a) => {
            let dir = store_dir(a)?;
            let runs = record::runs(&dir).map_err(lift)?;
            outln!(
                "{:<24} {:<11} {:>7} {:>7}  program",
                "run",
                "status",
                "steps",
                "ok"
            );
            for (_, m) in runs {
                outln!(
                    "{:<24} {:<11} {:>7} {:>7}  {}",
                    m.run_id,
                    m.status,
                    m.steps,
                    m.ok,
                    m.program_path.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        PasmCommand::Show(a) => {
            let dir = store_dir(&a.store)?;
            let (m, plan, events) = record::show(&dir, &a.run).map_err(lift)?;
            outln!("{}", serde_json::to_string_pretty(&m)?);
            out!("{}", String::from_utf8_lossy(&plan));
            if a.events {
                out!("{}", String::from_utf8_lossy(&events));
            }
            Ok(())
        }
        PasmCommand::Asm(a) => {
            let bytes = read(&a.file)?;
            let out = if a.disasm {
                let p = Program::parse(&bytes)
                    .map_err(|e| bad(format!("{}: {e}", a.file.display())))?;
                asm::disasm(&p)
            } else {
                let text = std::str::from_utf8(&bytes).map_err(|e| {
                    bad(format!(
                        "{}: not UTF-8 (invalid byte at offset {})",
                        a.file.display(),
                        e.valid_up_to()
                    ))
                })?;
                asm::asm(text)
                    .map_err(|e| bad(format!("{}: {e}", a.file.display())))?
                    .to_json()
            };
            match &a.output {
                Some(o) => {
                    std::fs::write(o, out).with_context(|| format!("writing {}", o.display()))?
                }
                None => out!("{out}"),
            }
            Ok(())
        }
    }
}
