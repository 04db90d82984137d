//! [`Counter`]: the `pfs_count` program attached with its rules.

use aya::maps::{Array, HashMap, PerCpuArray};

use crate::abi::{self, CountCfg, PortCfg, RuleCount};
use crate::attach::{AttachMode, Attached, ModeRequest};
use crate::rules::{self, CountRule};
use crate::{COUNT_OBJ, EbpfError};

/// What happens to a packet that matches at least one rule. Packets matching no
/// rule always pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`.
    Pass,
}

/// The program's own statistics (spec `specs/xdp.md` §4.3), summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountStats {
    /// IPv4 UDP packets that matched at least one rule.
    pub matched: RuleCount,
    /// IPv4 UDP packets that matched no rule.
    pub stray: RuleCount,
    /// Packets that are not IPv4 UDP (ARP, IPv6, ...) or non-first fragments.
    pub other: RuleCount,
    /// Packets whose headers were cut short or invalid.
    pub short: RuleCount,
}

/// The counting program attached to an interface. Detaches on drop.
#[derive(Debug)]
pub struct Counter {
    att: Attached,
    nrules: usize,
}

const PROGRAM: &str = "pfs_count";
const M_CFG: &str = "pfs_count_cfg";
const M_PORTS: &str = "pfs_count_ports";
const M_BYTES: &str = "pfs_count_bytes";
const M_COUNTERS: &str = "pfs_count_counters";
const M_STATS: &str = "pfs_count_stats";

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

impl Counter {
    /// Loads `pfs_count`, fills its maps from `rules` (rule `i` counts into
    /// `read()[i]`) and attaches it to `ifname` (in this thread's namespace).
    pub fn attach(
        ifname: &str,
        req: ModeRequest,
        rules: &[CountRule],
        action: Action,
    ) -> Result<Counter, EbpfError> {
        let mut c = Counter::load(Some(ifname), rules, action)?;
        c.att.attach(req)?;
        Ok(c)
    }

    /// Loads `pfs_count` with its rules without attaching it anywhere: for
    /// [`Counter::test_run`] (exercising the program on crafted frames).
    pub fn load_unattached(rules: &[CountRule], action: Action) -> Result<Counter, EbpfError> {
        Counter::load(None, rules, action)
    }

    /// Runs the program `repeat` times on `frame` (BPF_PROG_TEST_RUN): counters
    /// change as for `repeat` real packets.
    pub fn test_run(&mut self, frame: &[u8], repeat: u32) -> Result<crate::TestRun, EbpfError> {
        self.att.test_run(frame, repeat)
    }

    fn load(
        ifname: Option<&str>,
        rules: &[CountRule],
        action: Action,
    ) -> Result<Counter, EbpfError> {
        let tables = rules::compile(rules)?;
        let mut att = Attached::load("count.o", COUNT_OBJ, PROGRAM, ifname)?;
        {
            let map = att
                .ebpf
                .map_mut(M_CFG)
                .ok_or(EbpfError::MissingMap { map: M_CFG })?;
            let mut cfg: Array<_, CountCfg> =
                Array::try_from(map).map_err(map_err(M_CFG, "open"))?;
            let action = match action {
                Action::Drop => abi::XDP_DROP,
                Action::Pass => abi::XDP_PASS,
            };
            cfg.set(
                0,
                CountCfg {
                    action,
                    reserved: 0,
                },
                0,
            )
            .map_err(map_err(M_CFG, "set action"))?;
        }
        {
            let map = att
                .ebpf
                .map_mut(M_BYTES)
                .ok_or(EbpfError::MissingMap { map: M_BYTES })?;
            let mut bytes: Array<_, u32> =
                Array::try_from(map).map_err(map_err(M_BYTES, "open"))?;
            for (idx, tag) in &tables.bytes {
                bytes
                    .set(*idx, tag, 0)
                    .map_err(map_err(M_BYTES, format!("set {idx}")))?;
            }
        }
        {
            let map = att
                .ebpf
                .map_mut(M_PORTS)
                .ok_or(EbpfError::MissingMap { map: M_PORTS })?;
            let mut ports: HashMap<_, u16, PortCfg> =
                HashMap::try_from(map).map_err(map_err(M_PORTS, "open"))?;
            for (port, cfg) in &tables.ports {
                ports
                    .insert(port, cfg, 0)
                    .map_err(map_err(M_PORTS, format!("insert port {port}")))?;
            }
        }
        Ok(Counter {
            att,
            nrules: rules.len(),
        })
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

    fn sum(&self, map: &'static str, index: u32) -> Result<RuleCount, EbpfError> {
        let m = self
            .att
            .ebpf
            .map(map)
            .ok_or(EbpfError::MissingMap { map })?;
        let arr: PerCpuArray<_, RuleCount> =
            PerCpuArray::try_from(m).map_err(map_err(map, "open"))?;
        let per_cpu = arr
            .get(&index, 0)
            .map_err(map_err(map, format!("get {index}")))?;
        Ok(per_cpu.iter().fold(RuleCount::default(), |a, c| RuleCount {
            packets: a.packets + c.packets,
            bytes: a.bytes + c.bytes,
        }))
    }

    /// Per-rule counts, summed over CPUs, in rule order.
    pub fn read(&self) -> Result<Vec<RuleCount>, EbpfError> {
        (0..self.nrules)
            // nrules <= MAX_RULES = 4096 fits u32.
            .map(|i| self.sum(M_COUNTERS, i as u32))
            .collect()
    }

    /// The program's statistics, summed over CPUs.
    pub fn stats(&self) -> Result<CountStats, EbpfError> {
        Ok(CountStats {
            matched: self.sum(M_STATS, abi::STAT_MATCHED)?,
            stray: self.sum(M_STATS, abi::STAT_STRAY)?,
            other: self.sum(M_STATS, abi::STAT_OTHER)?,
            short: self.sum(M_STATS, abi::STAT_SHORT)?,
        })
    }
}
