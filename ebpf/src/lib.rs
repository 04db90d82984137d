//! PacketFS eBPF: the XDP programs (C sources and committed objects under `bpf/`)
//! and the loader that embeds and attaches them (aya 0.14). Normative:
//! `specs/xdp.md`.
//!
//! - [`Redirect`]: UDP to a set of ports → the AF_XDP socket of the receiving
//!   queue (`bpf/redirect.c`).
//! - [`Counter`]: exact per-CPU counters per [`CountRule`], then [`Action`]
//!   (`bpf/count.c`).
//!
//! Both attach in native (driver) mode unless asked otherwise; with
//! [`ModeRequest::NativeOrGeneric`] a failed native attach falls back to generic
//! mode with a warning on stderr, never silently; `.mode()` says which. Both must be
//! made on a thread inside the interface's network namespace, and detach when
//! dropped (they hold a bpf_link: the program also goes when the process dies).

pub mod abi;
mod attach;
mod counter;
mod redirect;
pub mod rules;

pub use abi::RuleCount;
pub use attach::{AttachMode, AttachTimings, ModeRequest, TestRun};
pub use counter::{Action, CountStats, Counter};
pub use redirect::{Redirect, RedirectStats};
pub use rules::CountRule;

/// The committed `bpf/count.o`.
pub static COUNT_OBJ: &[u8] = aya::include_bytes_aligned!("../bpf/count.o");
/// The committed `bpf/redirect.o`.
pub static REDIRECT_OBJ: &[u8] = aya::include_bytes_aligned!("../bpf/redirect.o");

/// Errors of the loader.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The interface name cannot be a Linux interface name.
    #[error("interface {ifname:?}: {reason}")]
    BadInterface {
        /// The name given.
        ifname: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// No interface of that name in this thread's network namespace.
    #[error(
        "interface {ifname:?} does not exist in this thread's network namespace (enter it with NetnsGuard first)"
    )]
    NoSuchInterface {
        /// The name given.
        ifname: String,
    },
    /// The object could not be parsed or its maps created.
    #[error("loading {object}: {source}")]
    Object {
        /// Which object.
        object: &'static str,
        /// aya's error.
        source: Box<aya::EbpfError>,
    },
    /// The program was not found or the verifier refused it.
    #[error("loading program {program}: {}", error_chain(source))]
    Load {
        /// Program name.
        program: &'static str,
        /// aya's error (with the verifier log when the verifier refused).
        source: Box<aya::programs::ProgramError>,
    },
    /// Attaching failed.
    #[error("attaching {program} to {ifname} in {mode} mode: {detail}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface.
        ifname: String,
        /// The mode tried.
        mode: AttachMode,
        /// aya's error with its causes (e.g. the errno).
        detail: String,
        /// aya's error.
        source: Box<aya::programs::ProgramError>,
    },
    /// A map is missing from the object.
    #[error("map {map} is missing from the object")]
    MissingMap {
        /// Map name.
        map: &'static str,
    },
    /// A map operation failed.
    #[error("map {map}: {op}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What was done.
        op: String,
        /// aya's error.
        source: Box<aya::maps::MapError>,
    },
    /// BPF_PROG_TEST_RUN failed.
    #[error("test run of {program}: {detail}")]
    TestRun {
        /// Program name.
        program: &'static str,
        /// aya's error with its causes.
        detail: String,
    },
    /// A count rule is invalid.
    #[error("count rule {index} ({rule}): {reason}")]
    Rule {
        /// Index in the rule list.
        index: usize,
        /// The rule.
        rule: String,
        /// Why.
        reason: String,
    },
    /// Too many of something.
    #[error("{got} {what} given; at most {limit} are supported")]
    TooMany {
        /// What.
        what: &'static str,
        /// How many were given.
        got: usize,
        /// The limit.
        limit: usize,
    },
}

/// An error and its causes, joined with ": ".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    fn send_and_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_move_between_threads() {
        send_and_sync::<crate::Counter>();
        send_and_sync::<crate::Redirect>();
        send_and_sync::<crate::EbpfError>();
    }

    #[test]
    fn embedded_objects_are_bpf_elf() {
        for obj in [crate::COUNT_OBJ, crate::REDIRECT_OBJ] {
            assert_eq!(&obj[..4], b"\x7fELF");
            assert_eq!(obj[4], 2, "ELF64");
            // e_machine EM_BPF = 247, little-endian.
            assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), 247);
            assert_eq!(obj.as_ptr() as usize % 8, 0, "8-byte aligned");
        }
    }
}
