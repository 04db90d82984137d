//! [`Redirect`]: the `pfs_redirect` program attached with its ports.

use std::os::fd::RawFd;

use aya::maps::{HashMap, PerCpuArray, XskMap};

use crate::abi::{self, RuleCount};
use crate::attach::{AttachMode, Attached, ModeRequest};
use crate::{EbpfError, REDIRECT_OBJ};

const PROGRAM: &str = "pfs_redirect";
const M_PORTS: &str = "pfs_redirect_ports";
const M_XSKS: &str = "pfs_xsks";
const M_STATS: &str = "pfs_redirect_stats";

/// The redirect program's statistics, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedirectStats {
    /// Packets handed to `bpf_redirect_map` (they pass when no socket is
    /// registered for their queue).
    pub redirected: RuleCount,
    /// Everything else (passed to the stack).
    pub passed: RuleCount,
}

/// The redirect program attached to an interface. Detaches on drop.
#[derive(Debug)]
pub struct Redirect {
    att: Attached,
}

fn map_err(
    map: &'static str,
    op: impl Into<String>,
) -> impl FnOnce(aya::maps::MapError) -> EbpfError {
    let op = op.into();
    move |e| EbpfError::Map {
        map,
        op,
        source: Box::new(e),
    }
}

impl Redirect {
    /// Loads `pfs_redirect` with the UDP destination `ports` to redirect and
    /// attaches it to `ifname` (in this thread's namespace).
    pub fn attach(ifname: &str, req: ModeRequest, ports: &[u16]) -> Result<Redirect, EbpfError> {
        let mut unique = ports.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() > abi::MAX_PORTS {
            return Err(EbpfError::TooMany {
                what: "redirect ports",
                got: unique.len(),
                limit: abi::MAX_PORTS,
            });
        }
        let mut att = Attached::load("redirect.o", REDIRECT_OBJ, PROGRAM, Some(ifname))?;
        {
            let map = att
                .ebpf
                .map_mut(M_PORTS)
                .ok_or(EbpfError::MissingMap { map: M_PORTS })?;
            let mut m: HashMap<_, u16, u32> =
                HashMap::try_from(map).map_err(map_err(M_PORTS, "open"))?;
            for p in &unique {
                m.insert(p, 1u32, 0)
                    .map_err(map_err(M_PORTS, format!("insert port {p}")))?;
            }
        }
        att.attach(req)?;
        Ok(Redirect { att })
    }

    /// Sends packets arriving on rx queue `queue_id` to the AF_XDP socket `xsk_fd`
    /// (which must be bound to this interface and queue; the map holds its own
    /// reference, the caller keeps ownership of the fd).
    pub fn register_xsk(&mut self, queue_id: u32, xsk_fd: RawFd) -> Result<(), EbpfError> {
        if queue_id >= abi::MAX_QUEUES {
            return Err(EbpfError::TooMany {
                what: "rx queue index",
                got: queue_id as usize + 1,
                limit: abi::MAX_QUEUES as usize,
            });
        }
        let map = self
            .att
            .ebpf
            .map_mut(M_XSKS)
            .ok_or(EbpfError::MissingMap { map: M_XSKS })?;
        let mut m = XskMap::try_from(map).map_err(map_err(M_XSKS, "open"))?;
        m.set(queue_id, xsk_fd, 0).map_err(map_err(
            M_XSKS,
            format!("set queue {queue_id} to fd {xsk_fd}"),
        ))
    }

    /// Removes the socket of rx queue `queue_id` (its packets pass again).
    pub fn unregister_xsk(&mut self, queue_id: u32) -> Result<(), EbpfError> {
        let map = self
            .att
            .ebpf
            .map_mut(M_XSKS)
            .ok_or(EbpfError::MissingMap { map: M_XSKS })?;
        let mut m = XskMap::try_from(map).map_err(map_err(M_XSKS, "open"))?;
        m.unset(queue_id)
            .map_err(map_err(M_XSKS, format!("unset queue {queue_id}")))
    }

    /// How long loading, filling the maps and attaching took.
    pub fn timings(&self) -> crate::AttachTimings {
        self.att.timings
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachMode {
        self.att.mode
    }

    /// The interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.att.ifname
    }

    /// The kernel's id of the program (as `ip link` shows it).
    pub fn prog_id(&mut self) -> Option<u32> {
        self.att.prog_id()
    }

    /// The program's statistics, summed over CPUs.
    pub fn stats(&self) -> Result<RedirectStats, EbpfError> {
        let m = self
            .att
            .ebpf
            .map(M_STATS)
            .ok_or(EbpfError::MissingMap { map: M_STATS })?;
        let arr: PerCpuArray<_, RuleCount> =
            PerCpuArray::try_from(m).map_err(map_err(M_STATS, "open"))?;
        let sum = |i: u32| -> Result<RuleCount, EbpfError> {
            let v = arr
                .get(&i, 0)
                .map_err(map_err(M_STATS, format!("get {i}")))?;
            Ok(v.iter().fold(RuleCount::default(), |a, c| RuleCount {
                packets: a.packets + c.packets,
                bytes: a.bytes + c.bytes,
            }))
        };
        Ok(RedirectStats {
            redirected: sum(abi::RSTAT_REDIRECTED)?,
            passed: sum(abi::RSTAT_PASSED)?,
        })
    }
}
