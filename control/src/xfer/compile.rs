//! `pfs xfer compile`: a file → BREF program (IPROG) and its accounting.

use std::path::PathBuf;
use std::time::Instant;

use pfs_dataplane::iprog::codec::{IprogHeader, Mode, encode_iprog};
use pfs_dataplane::iprog::compile::{CompileError, CompileOptions, compile};
use pfs_dataplane::iprog::proto::Transfer;
use pfs_dataplane::mapped::MappedFile;

use super::source::{Source, SourceArgs, object_name};
use super::{XferError, hex};
use crate::usage::bad;

/// Arguments of `pfs xfer compile`.
#[derive(Debug, clap::Args)]
pub struct CompileArgs {
    /// The file to compile.
    pub file: PathBuf,
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Also write the IPROG (`specs/iprog.md` §4) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags that decide the program (shared by compile and send).
#[derive(Debug, Clone, clap::Args)]
pub struct ProgramArgs {
    /// Window container: pvrt (compact sections) or offs (13-byte offset tuples).
    #[arg(long, default_value = "pvrt")]
    pub mode: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Shared-base mode only: carry bytes no match covers as RAW sections
    /// (counted separately). Without it, compilation is strict: no RAW.
    #[arg(long)]
    pub allow_raw: bool,
}

/// What `compile` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompileReport {
    /// The input file.
    pub file: PathBuf,
    /// Object bytes.
    pub size: u64,
    /// BLAKE3 of the object (hex).
    pub blake3: String,
    /// pvrt or offs.
    pub mode: String,
    /// blob or base.
    pub source: String,
    /// The blob or base file.
    pub source_path: PathBuf,
    /// Its fingerprint (hex).
    pub source_fingerprint: String,
    /// BREF sections.
    pub brefs: u64,
    /// RAW sections (0 unless --allow-raw).
    pub raw_sections: u64,
    /// Bytes carried as RAW.
    pub raw_bytes: u64,
    /// Windows (WIN datagrams of a lossless transfer).
    pub windows: u64,
    /// Bytes of all datagrams a lossless transfer sends (PREFACE, MFST, WINs, END).
    pub wire_bytes: u64,
    /// Object bytes / wire bytes (below 1 when the program is larger than the object).
    pub tx_ratio: f64,
    /// Bytes of the IPROG encoding (not computed by `send`).
    pub iprog_bytes: Option<u64>,
    /// Seconds to map and fingerprint the source.
    pub source_s: f64,
    /// Seconds to build the index.
    pub index_s: f64,
    /// Seconds to compile and cut windows.
    pub compile_s: f64,
    /// Where the IPROG was written, if asked.
    pub out: Option<PathBuf>,
}

/// A compiled file, ready to send.
#[derive(Debug)]
pub struct Compiled {
    /// The report.
    pub report: CompileReport,
    /// The transfer (PREFACE, MFST, windows).
    pub transfer: Transfer,
    /// The IPROG bytes.
    pub iprog: Vec<u8>,
}

/// Compiles `file` with `args`; unexpressible input is bad input naming the offset.
pub fn compile_file(
    file: &std::path::Path,
    args: &ProgramArgs,
    want_iprog: bool,
) -> anyhow::Result<Compiled> {
    let mode: Mode = args.mode.parse().map_err(bad)?;
    if args.allow_raw && args.source.base.is_none() {
        return Err(bad(
            "--allow-raw: only in shared-base mode (give --base FILE); the palette is strict",
        ));
    }
    if !file.is_file() {
        return Err(bad(format!("{}: no such file", file.display())));
    }
    let obj = MappedFile::open(file).map_err(|e| match e {
        pfs_dataplane::mapped::MapError::Open { path, source }
        | pfs_dataplane::mapped::MapError::Map { path, source } => XferError::File {
            path,
            what: "mapping",
            source,
        },
    })?;
    let src = Source::open(&args.source)?;
    let t = Instant::now();
    let index = src.index()?;
    let index_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let opts = CompileOptions {
        allow_raw: args.allow_raw,
    };
    let prog = compile(src.bytes(), &index, obj.bytes(), opts).map_err(|e| match e {
        CompileError::Unmatchable { offset } => bad(format!(
            "{}: byte at offset {offset} cannot be expressed as a BREF into the {} (strict: no RAW{})",
            file.display(),
            src.kind,
            if src.is_base() {
                "; --allow-raw carries such bytes as RAW"
            } else {
                ""
            }
        )),
        other => bad(format!("{}: {other}", file.display())),
    })?;
    let transfer = Transfer::new(
        mode,
        src.bytes().len() as u64,
        src.fingerprint,
        &prog.ops,
        obj.bytes(),
        &object_name(file),
    )
    .map_err(|e| bad(format!("{}: --mode {mode}: {e}", file.display())))?;
    let compile_s = t.elapsed().as_secs_f64();
    let header = IprogHeader {
        raw: prog.raw_sections > 0,
        object_size: obj.bytes().len() as u64,
        blob_size: src.bytes().len() as u64,
        sections: prog.ops.len() as u64,
        object_hash: transfer.mfst.object_hash,
        blob_fingerprint: src.fingerprint,
    };
    let iprog = if want_iprog {
        encode_iprog(&header, &prog.ops, obj.bytes())
    } else {
        Vec::new()
    };
    let wire = transfer.wire_bytes();
    let size = obj.bytes().len() as u64;
    let report = CompileReport {
        file: file.to_path_buf(),
        size,
        blake3: hex(&transfer.mfst.object_hash),
        mode: mode.to_string(),
        source: src.kind.to_string(),
        source_path: src.path.clone(),
        source_fingerprint: hex(&src.fingerprint),
        brefs: prog.brefs,
        raw_sections: prog.raw_sections,
        raw_bytes: prog.raw_bytes,
        windows: transfer.windows.len() as u64,
        wire_bytes: wire,
        tx_ratio: size as f64 / wire as f64,
        iprog_bytes: want_iprog.then_some(iprog.len() as u64),
        source_s: src.open_s,
        index_s,
        compile_s,
        out: None,
    };
    Ok(Compiled {
        report,
        transfer,
        iprog,
    })
}

/// One human line for a report.
pub fn describe(r: &CompileReport) -> String {
    format!(
        "{}: {} bytes, blake3 {}, {} via {} {} — {} BREF, {} RAW section(s) ({} RAW bytes), {} windows, wire {} bytes, tx_ratio {:.2}{}",
        r.file.display(),
        r.size,
        &r.blake3[..16],
        r.mode,
        r.source,
        r.source_path.display(),
        r.brefs,
        r.raw_sections,
        r.raw_bytes,
        r.windows,
        r.wire_bytes,
        r.tx_ratio,
        if r.tx_ratio < 1.0 {
            " (below 1: the program is larger than the object)"
        } else {
            ""
        }
    )
}

/// Runs `pfs xfer compile`.
pub fn run(args: &CompileArgs) -> anyhow::Result<()> {
    let mut c = compile_file(&args.file, &args.program, true)?;
    if let Some(out) = &args.out {
        std::fs::write(out, &c.iprog).map_err(|source| XferError::File {
            path: out.clone(),
            what: "writing the IPROG",
            source,
        })?;
        c.report.out = Some(out.clone());
    }
    if args.json {
        println!("{}", serde_json::to_string(&c.report)?);
    } else {
        println!("{}", describe(&c.report));
        println!(
            "  index {:.3} s, compile {:.3} s, IPROG {} bytes{}",
            c.report.index_s,
            c.report.compile_s,
            c.report.iprog_bytes.unwrap_or(0),
            c.report
                .out
                .as_ref()
                .map(|p| format!(" written to {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}
