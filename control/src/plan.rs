//! `pfs plan ranges`: windows → 1 MiB aligned, coalesced ranges (`specs/ranges.md`).

use pfs_dataplane::ranges::{self, PlanOptions, Range, Window};
use serde::Serialize;

use crate::usage::bad;

/// Arguments of `pfs plan ranges`.
#[derive(Debug, clap::Args)]
pub struct RangesArgs {
    /// Windows as JSON: `[{"offset":0,"length":65536}, ...]`, or `@FILE`.
    #[arg(long)]
    pub windows: String,
    /// Object size in bytes: refuse windows past it and clamp the last range.
    #[arg(long)]
    pub size: Option<u64>,
    /// Split ranges longer than this many bytes (rounded down to 1 MiB).
    #[arg(long)]
    pub max_range: Option<u64>,
}

/// The planner's output.
#[derive(Debug, Serialize)]
pub struct PlanOutput {
    /// Alignment in bytes.
    pub align: u64,
    /// Windows given.
    pub windows: usize,
    /// Bytes the windows ask for (overlaps counted once per window).
    pub window_bytes: u64,
    /// Bytes the ranges cover.
    pub range_bytes: u64,
    /// The planned ranges.
    pub ranges: Vec<Range>,
}

/// Reads a JSON argument that may be `@FILE`.
pub fn read_json_arg(arg: &str, what: &str) -> anyhow::Result<String> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| bad(format!("{what}: cannot read {path}: {e}"))),
        None => Ok(arg.to_string()),
    }
}

/// Parses the windows JSON, naming the position of a syntax error.
pub fn parse_windows(json: &str) -> anyhow::Result<Vec<Window>> {
    serde_json::from_str::<Vec<Window>>(json)
        .map_err(|e| bad(format!("windows: malformed JSON: {e}")))
}

/// Runs `pfs plan ranges`.
pub fn run_ranges(args: &RangesArgs) -> anyhow::Result<()> {
    let windows = parse_windows(&read_json_arg(&args.windows, "windows")?)?;
    let opts = PlanOptions {
        size: args.size,
        max_len: args.max_range,
        ..PlanOptions::default()
    };
    let ranges = ranges::plan(&windows, opts).map_err(bad)?;
    let out = PlanOutput {
        align: opts.align,
        windows: windows.len(),
        window_bytes: windows.iter().fold(0u64, |a, w| a.saturating_add(w.length)),
        range_bytes: ranges.iter().map(|r| r.length).sum(),
        ranges,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
