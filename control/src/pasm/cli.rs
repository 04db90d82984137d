//! `pfs pasm ...`: plan, run, assemble and disassemble step programs.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::asm;
use super::gates::Gates;
use super::lab::LabRef;
use super::plan::Plan;
use super::program::Program;
use super::runner::{self, Outcome, RunOptions, RunStatus};
use super::{PasmError, signal};
use crate::usage::bad;

/// `pfs pasm` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PasmCommand {
    /// Validate a program and print its plan; executes nothing.
    Plan(PlanArgs),
    /// Run a program: planfile in plans/, event log in logs/.
    Run(RunArgs),
    /// Assemble the text form into JSON (or, with --disasm, JSON into text).
    Asm(AsmArgs),
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
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                let rec = g.record(false);
                println!(
                    "plan {}: {} steps, blake3 {}, {} refused",
                    a.file.display(),
                    p.steps.len(),
                    blake3::hash(&bytes).to_hex(),
                    plan.refused
                );
                println!(
                    "gates: udp to {}; sleep <= {} ms; wait <= {} ms; real backends {}",
                    rec.udp_allow.join(", "),
                    rec.max_sleep_ms,
                    rec.max_wait_ms,
                    match &rec.netns {
                        Some(n) => format!("on (lab {n})"),
                        None => "off (enable with --netns NAME)".into(),
                    }
                );
                print!("{}", plan.render());
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
                interrupt: Some(signal::flag()),
                echo_logs: true,
            };
            signal::install().context("installing the SIGINT handler")?;
            let rep = runner::run(&p, &bytes, &opts).map_err(lift)?;
            let pf = &rep.planfile;
            let n = |o: Outcome| pf.steps.iter().filter(|s| s.outcome == o).count();
            println!(
                "run {}: {:?}: {} ok, {} error, {} refused, {} not_run",
                pf.run_id,
                pf.status,
                n(Outcome::Ok),
                n(Outcome::Error),
                n(Outcome::Refused),
                n(Outcome::NotRun)
            );
            println!("planfile: {}", rep.planfile_path.display());
            println!("event log: {}", rep.event_log_path.display());
            match pf.status {
                RunStatus::Ok => Ok(()),
                _ => {
                    let first = pf
                        .steps
                        .iter()
                        .find(|s| matches!(s.outcome, Outcome::Error | Outcome::Refused));
                    match first {
                        Some(s) => anyhow::bail!(
                            "run {} {:?}: step {} ({}) {:?}: {}",
                            pf.run_id,
                            pf.status,
                            s.index,
                            s.op,
                            s.outcome,
                            s.reason.as_deref().unwrap_or("")
                        ),
                        None => anyhow::bail!("run {} {:?}", pf.run_id, pf.status),
                    }
                }
            }
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
                None => print!("{out}"),
            }
            Ok(())
        }
    }
}
