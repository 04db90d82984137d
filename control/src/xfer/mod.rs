//! Arithmetic transfer commands: `pfs blob setup|status` (the VirtualBlob) and
//! `pfs xfer compile|send|recv`. The pure parts live in `pfs_dataplane::iprog`;
//! this module maps files, drives the sans-I/O core over UDP, and reports.
//! Specs: `specs/iprog.md`, `specs/udp-transfer.md`.

pub mod compile;
pub mod receipt;
pub mod source;
pub mod transport;
pub mod vblob;

use std::path::PathBuf;

/// Errors of the transfer commands that are not bad input.
#[derive(Debug, thiserror::Error)]
pub enum XferError {
    /// A file could not be read, written or mapped.
    #[error("{path}: {what}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A socket call failed.
    #[error("{what}: {source}")]
    Net {
        /// Which call.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The transfer failed.
    #[error("transfer failed: {0}")]
    Failed(pfs_dataplane::iprog::proto::FailReason),
}

/// `pfs xfer` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum XferCommand {
    /// Compile a file into a BREF program against the blob (or a shared base) and
    /// report sizes, BLAKE3, wire size and tx_ratio.
    Compile(compile::CompileArgs),
    /// Send a file as offsets over UDP to `pfs xfer recv`.
    Send(transport::SendArgs),
    /// Receive one transfer over UDP; write the file only if its BLAKE3 matches.
    Recv(transport::RecvArgs),
}

/// Runs a `pfs xfer` subcommand.
pub fn run(cmd: &XferCommand) -> anyhow::Result<()> {
    match cmd {
        XferCommand::Compile(a) => compile::run(a),
        XferCommand::Send(a) => transport::run_send(a),
        XferCommand::Recv(a) => transport::run_recv(a),
    }
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
