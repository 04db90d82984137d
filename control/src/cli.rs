//! Command-line parsing and dispatch for `pfs`. Exit status: 0 success, 1 failure,
//! 2 bad input (one line naming the field and value).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::usage::UsageError;
use crate::{asl, bench_local, blob, demo, edge, lab, linerate, milkshake, pasm, plan, xfer};

/// PacketFS: measured packet dataplane, edge compute and lab tooling.
#[derive(Debug, Parser)]
#[command(name = "pfs", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run what exists end to end on embedded defaults, in a temporary directory.
    Demo(demo::DemoArgs),
    /// Plan byte ranges.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Create and inspect blobs.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The netns lab: two namespaces joined by a veth pair.
    #[command(subcommand)]
    Lab(lab::cmd::LabCommand),
    /// P-ASM step programs: plan, run, assemble (specs/pasm.md).
    #[command(subcommand)]
    Pasm(pasm::cli::PasmCommand),
    /// The artifact store (content-addressed, append-only, crash-safe).
    Asl(asl::cli::AslArgs),
    /// Firewall-counter compute on XDP and nftables counters (specs/milkshake.md).
    #[command(subcommand)]
    Milkshake(milkshake::run::MilkshakeCommand),
    /// Line-rate UDP probes: tx, rx or reflect over xsk, uring or mmsg.
    Linerate(linerate::LinerateArgs),
    /// Arithmetic transfer: compile to offsets, send and receive over UDP.
    #[command(subcommand)]
    Xfer(xfer::XferCommand),
    /// Edge compute server (specs/edge-api.md).
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Run one compute job on an edge server and print the results.
    Compute(edge::client::ComputeArgs),
}

#[derive(Debug, Subcommand)]
enum EdgeCommand {
    /// Serve /compute, /health, /metrics and (with --data-root) /data/PATH.
    Serve(edge::client::ServeArgs),
}

#[derive(Debug, Subcommand)]
enum PlanCommand {
    /// Windows → 1 MiB aligned, sorted, coalesced ranges (JSON).
    Ranges(plan::RangesArgs),
}

#[derive(Debug, Subcommand)]
enum BlobCommand {
    /// Write a blob file of a deterministic fill.
    Create(blob::CreateArgs),
    /// Write the VirtualBlob for (name, size, seed) (tmpfs by default).
    Setup(xfer::vblob::SetupArgs),
    /// Show a VirtualBlob's identity and fingerprint.
    Status(xfer::vblob::StatusArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Kernels over windows of a mapped file on pinned workers.
    Local(bench_local::LocalArgs),
    /// The seed's benchmark against an edge server (windows of 1 MiB per request).
    Edge(edge::client::EdgeBenchArgs),
}

/// Parses the command line, runs it and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Plan(PlanCommand::Ranges(a)) => plan::run_ranges(&a),
        Command::Blob(BlobCommand::Create(a)) => blob::run_create(&a),
        Command::Blob(BlobCommand::Setup(a)) => xfer::vblob::run_setup(&a),
        Command::Blob(BlobCommand::Status(a)) => xfer::vblob::run_status(&a),
        Command::Xfer(c) => xfer::run(&c),
        Command::Bench(BenchCommand::Local(a)) => bench_local::run(&a),
        Command::Lab(c) => lab::cmd::run(&c),
        Command::Milkshake(c) => milkshake::run::dispatch(&c),
        Command::Linerate(a) => linerate::run(&a),
        Command::Bench(BenchCommand::Edge(a)) => edge::client::run_bench(&a),
        Command::Edge(EdgeCommand::Serve(a)) => edge::client::run_serve(&a),
        Command::Compute(a) => edge::client::run_compute(&a),
        Command::Pasm(c) => pasm::cli::run(&c),
        Command::Asl(a) => asl::cli::run(&a),
    }
}

/// Prints an error and returns its exit code: 2 for bad input, 1 otherwise.
pub fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(u) = e.downcast_ref::<UsageError>() {
        eprintln!("pfs: error: {u}");
        return ExitCode::from(2);
    }
    eprintln!("pfs: error: {e:#}");
    ExitCode::from(1)
}
