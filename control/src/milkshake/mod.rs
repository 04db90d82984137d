//! Milkshake: firewall-counter compute (`specs/milkshake.md`). Data is encoded
//! as packets; kernel counters (nftables or the XDP `count` program) aggregate
//! them; the counters decode into a result checked against the CPU kernels.
//!
//! - [`program`]: the pure part (rules, packets, decoding, accounting, oracle);
//! - [`nft`]: the nftables backend (JSON through `nft -j`);
//! - [`run`]: the `pfs milkshake` command: lab, sender, settle, report.

pub mod nft;
pub mod program;
pub mod run;

/// Errors of Milkshake. The `Usage`-class variants (see [`MilkshakeError::is_usage`])
/// are the user's bad input and exit with status 2.
#[derive(Debug, thiserror::Error)]
pub enum MilkshakeError {
    /// `--program` is not known.
    #[error("--program: unknown program {0:?} (expected histogram, counteq or word)")]
    UnknownProgram(String),
    /// `--backend` is not known.
    #[error("--backend: unknown backend {0:?} (expected xdp or nft)")]
    UnknownBackend(String),
    /// Input is empty.
    #[error("input: empty (nothing to send)")]
    EmptyInput,
    /// counteq without --imm.
    #[error("--imm: counteq needs --imm in 0..=255")]
    MissingImm,
    /// --imm outside a byte.
    #[error("--imm: {0} is outside 0..=255")]
    ImmOutOfRange(i64),
    /// A port below 1024.
    #[error("--port: {0} is reserved (ports below 1024 are refused)")]
    ReservedPort(u16),
    /// The word needs more ports than exist above `port`.
    #[error(
        "--text: {len} bytes need ports {port}..{port}+{len}-1, past 65535 ({available} ports available from {port})"
    )]
    TextTooLong {
        /// Text length.
        len: usize,
        /// First port.
        port: u16,
        /// Ports from `port` to 65535.
        available: usize,
    },
    /// Another live run in the same lab uses overlapping ports.
    #[error(
        "--port: ports {lo}..={hi} collide with a running milkshake (table {table}, ports {olo}..={ohi}) in lab namespace {ns}"
    )]
    PortCollision {
        /// Our first port.
        lo: u16,
        /// Our last port.
        hi: u16,
        /// Their table.
        table: String,
        /// Their first port.
        olo: u16,
        /// Their last port.
        ohi: u16,
        /// Namespace.
        ns: String,
    },
    /// `--pps 0` or unparsable.
    #[error("--pps: {0:?} is not a positive packet rate or \"max\"")]
    BadPps(String),
    /// `--seconds` not positive.
    #[error("--seconds: {0} is not a number of seconds in (0, 86400]")]
    BadSeconds(f64),
    /// The lab does not exist (or was not made by pfs).
    #[error("--lab: lab {0:?} does not exist ({1}); run `pfs lab up --name {0}` first")]
    NoLab(String, String),
    /// `nft` is not installed.
    #[error("nft: the nft command was not found ({0}); install the nftables package")]
    NftMissing(String),
    /// `nft` ran and failed.
    #[error("nft {step}: {detail}")]
    Nft {
        /// What was being done.
        step: &'static str,
        /// nft's message.
        detail: String,
    },
    /// A counter reading did not have one value per rule.
    #[error("counters: expected {expected} (one per rule), got {got}")]
    CounterCount {
        /// Rules.
        expected: usize,
        /// Counters read.
        got: usize,
    },
    /// An XDP program is already attached to the lab's veth b.
    #[error(
        "--backend xdp: {ifname} already has XDP program {prog} (id {id}) attached (another milkshake or XDP user in this lab); wait for it or use --backend nft on other ports"
    )]
    XdpBusy {
        /// Interface.
        ifname: String,
        /// Program name.
        prog: String,
        /// Program id.
        id: u64,
    },
    /// The XDP loader refuses the program's rules (its limits).
    #[error("--backend xdp: the count program cannot hold these rules: {0}")]
    XdpRules(String),
    /// The XDP backend failed.
    #[error("xdp {step}: {detail}")]
    Xdp {
        /// What was being done.
        step: &'static str,
        /// The loader's message.
        detail: String,
    },
    /// Entering a namespace failed.
    #[error(transparent)]
    Netns(#[from] pfs_dataplane::netns::NetnsError),
    /// Reading the input file failed.
    #[error("--input {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A socket call of the sender failed.
    #[error("sender {step}: {source}")]
    Send {
        /// Which call.
        step: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The generator (`pfs_dataplane::io`) failed.
    #[error("sender: {0}")]
    Io(#[from] pfs_dataplane::io::IoError),
    /// The CPU kernels could not be chosen.
    #[error(transparent)]
    Kernel(#[from] pfs_dataplane::kernels::KernelError),
}

impl MilkshakeError {
    /// Whether this is the user's bad input (exit status 2).
    pub fn is_usage(&self) -> bool {
        use MilkshakeError as E;
        matches!(
            self,
            E::UnknownProgram(_)
                | E::UnknownBackend(_)
                | E::EmptyInput
                | E::MissingImm
                | E::ImmOutOfRange(_)
                | E::ReservedPort(_)
                | E::TextTooLong { .. }
                | E::PortCollision { .. }
                | E::XdpBusy { .. }
                | E::XdpRules(_)
                | E::BadPps(_)
                | E::BadSeconds(_)
                | E::NoLab(..)
                | E::NftMissing(_)
                | E::Input { .. }
                | E::Kernel(_)
        )
    }
}
