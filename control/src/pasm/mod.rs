//! P-ASM: step programs with plans, planfiles, JSONL event logs, safety gates,
//! guards and netns-gated real backends. Normative: `specs/pasm.md`.
//!
//! The pure parts (program parsing, gates, planning, the assembler) do no I/O;
//! the runner drives them against backends (in-memory KV, UDP sockets, nftables
//! and AF_PACKET inside a lab).

pub mod asm;
pub mod cli;
pub mod gates;
pub mod lab;
pub mod locate;
pub mod nft;
pub mod plan;
pub mod program;
pub mod raw;
pub mod record;
pub mod runner;
#[cfg(test)]
mod runner_tests;
pub mod schema;
#[cfg(test)]
mod spec_tests;
pub mod stamp;

use std::path::PathBuf;

pub use gates::{Backend, Gates, Verdict};
pub use plan::{Plan, PlannedStep};
pub use program::{Program, Step};
pub use runner::{Outcome, RunOptions, RunReport, run};

/// Errors of P-ASM: bad programs (each naming step and JSON pointer), bad
/// assembler text, and failures around a run (files, lab, nftables).
#[derive(Debug, thiserror::Error)]
pub enum PasmError {
    /// A step is wrong: which step, which field (JSON pointer), what.
    #[error("step {step} ({pointer}): {msg}")]
    Step {
        /// Step index (0-based).
        step: usize,
        /// JSON pointer of the field.
        pointer: String,
        /// What is wrong.
        msg: String,
    },
    /// The file is not valid JSON.
    #[error("malformed JSON at line {line} column {column} ({}): {msg}", place(*.step, .pointer))]
    Json {
        /// Step the error is in, if inside one.
        step: Option<usize>,
        /// JSON pointer of the value being read.
        pointer: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        msg: String,
    },
    /// The file has bytes that are not UTF-8.
    #[error("{}: not UTF-8 (invalid byte at offset {offset})", place(*.step, .pointer))]
    NotUtf8 {
        /// Step the byte is in, if inside one.
        step: Option<usize>,
        /// JSON pointer of the value holding the byte.
        pointer: String,
        /// Byte offset in the file.
        offset: usize,
    },
    /// The top level is not a program.
    #[error("{msg}")]
    Shape {
        /// What is wrong.
        msg: String,
    },
    /// The file is over the size bound.
    #[error("program is {bytes} bytes; the bound is {max}")]
    TooLarge {
        /// Size.
        bytes: usize,
        /// Bound.
        max: usize,
    },
    /// The program has too many steps.
    #[error("program has {steps} steps; the bound is {max}")]
    TooManySteps {
        /// Steps.
        steps: usize,
        /// Bound.
        max: usize,
    },
    /// Assembler text is wrong at a line.
    #[error("line {line}: {msg}")]
    Asm {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// `--netns NAME` does not name a lab made by `pfs lab up`.
    #[error("--netns {name}: {msg}")]
    Lab {
        /// The name given.
        name: String,
        /// Why it is refused.
        msg: String,
    },
    /// The artifact store failed.
    #[error("artifact store: {0}")]
    Asl(String),
    /// `pfs pasm show RUN` found no such run.
    #[error("{0}")]
    NoSuchRun(String),
    /// An nftables command failed.
    #[error("nftables: {0}")]
    Nft(String),
    /// A file could not be read or written.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn place(step: Option<usize>, pointer: &str) -> String {
    match step {
        Some(s) => format!("step {s}, {pointer}"),
        None if pointer.is_empty() => "top level".into(),
        None => pointer.to_string(),
    }
}

impl PasmError {
    /// Whether the error is the user's input (exit status 2) rather than a failure.
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            PasmError::Nft(_) | PasmError::Io { .. } | PasmError::Asl(_)
        )
    }
}
