//! `pfs milkshake run` and `pfs milkshake rules` (`specs/milkshake.md` §9): the
//! I/O shell around [`super::program`]: lab, backend, sender, settle, report.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use pfs_dataplane::io::{self, IoConfig};
use pfs_dataplane::kernels::Kernels;
use pfs_dataplane::linerate::pace::Pacer;
use pfs_dataplane::netns::NetnsGuard;
use pfs_ebpf::{Action, CountRule, Counter, ModeRequest};
use serde::Serialize;

use super::MilkshakeError;
use super::nft::{self, NftTable};
use super::program::{self, Accounting, Decoded, Oracle, Program, ProgramKind, Rule, SentTally};
use crate::lab::Lab;

/// Which kernel counters do the counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The XDP `count` program (per-CPU counters).
    Xdp,
    /// nftables named counters.
    Nft,
}

impl FromStr for BackendKind {
    type Err = MilkshakeError;
    fn from_str(s: &str) -> Result<BackendKind, MilkshakeError> {
        match s {
            "xdp" => Ok(BackendKind::Xdp),
            "nft" => Ok(BackendKind::Nft),
            other => Err(MilkshakeError::UnknownBackend(other.to_string())),
        }
    }
}

impl BackendKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Xdp => "xdp",
            BackendKind::Nft => "nft",
        }
    }
}

/// A send rate: packets per second, or as fast as the generator goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pps {
    /// Paced to this many packets per second.
    Rate(u64),
    /// Unpaced.
    Max,
}

impl FromStr for Pps {
    type Err = MilkshakeError;
    fn from_str(s: &str) -> Result<Pps, MilkshakeError> {
        if s == "max" {
            return Ok(Pps::Max);
        }
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Pps::Rate(n)),
            _ => Err(MilkshakeError::BadPps(s.to_string())),
        }
    }
}

/// Arguments shared by `run` and `rules`: what program, on which backend.
#[derive(Debug, Clone, clap::Args)]
pub struct ProgramArgs {
    /// Counter backend: xdp or nft.
    #[arg(long)]
    pub backend: String,
    /// Program: histogram, counteq or word.
    #[arg(long)]
    pub program: String,
    /// Input file (its bytes are the data).
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    pub input: Option<PathBuf>,
    /// Input text (its UTF-8 bytes are the data).
    #[arg(long)]
    pub text: Option<String>,
    /// Immediate for counteq (also reported by histogram).
    #[arg(long, allow_negative_numbers = true)]
    pub imm: Option<i64>,
    /// UDP port (word: first of a range of one port per byte).
    #[arg(long, default_value_t = program::DEFAULT_PORT)]
    pub port: u16,
}

/// Arguments of `pfs milkshake run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The program and backend.
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Lab name (made by `pfs lab up`).
    #[arg(long, default_value = crate::lab::DEFAULT_NAME)]
    pub lab: String,
    /// Send rate: packets per second, or `max`.
    #[arg(long, default_value = "max", allow_negative_numbers = true)]
    pub pps: String,
    /// Longest time to send, in seconds (the run stops sending then).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Generator: mmsg (sendmmsg), uring (io_uring) or xsk (AF_XDP frames on veth a).
    #[arg(long, default_value = "mmsg")]
    pub generator: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `pfs milkshake rules`.
#[derive(Debug, Clone, clap::Args)]
pub struct RulesArgs {
    /// The program and backend.
    #[command(flatten)]
    pub program: ProgramArgs,
}

/// Builds the checked program from arguments.
pub fn program_from(a: &ProgramArgs) -> Result<(BackendKind, Program), MilkshakeError> {
    let backend: BackendKind = a.backend.parse()?;
    let kind: ProgramKind = a.program.parse()?;
    let input = match (&a.input, &a.text) {
        (Some(p), _) => std::fs::read(p).map_err(|source| MilkshakeError::Input {
            path: p.display().to_string(),
            source,
        })?,
        (None, Some(t)) => t.as_bytes().to_vec(),
        (None, None) => Vec::new(),
    };
    Ok((backend, Program::new(kind, a.imm, a.port, input)?))
}

/// Sender limits and generator.
#[derive(Debug, Clone, Copy)]
pub struct SendLimits {
    /// Rate.
    pub pps: Pps,
    /// Longest sending time.
    pub seconds: f64,
    /// Generator: an `io` backend (mmsg by default; xsk sends AF_XDP frames from
    /// veth a, the fastest here; uring).
    pub generator: io::Backend,
}

/// What the sender did.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    /// Packets sent per port.
    #[serde(skip)]
    pub tally: SentTally,
    /// Packets sent.
    pub sent: u64,
    /// Seconds from first to last send.
    pub seconds: f64,
    /// sent / seconds.
    pub pps: f64,
    /// Sending stopped at the time bound before every packet was sent.
    pub timed_out: bool,
    /// Generator used.
    pub generator: String,
}

/// `ip -j -n NS link show dev IFNAME`, parsed (the link object).
fn link_json(ns: &str, ifname: &str) -> Result<serde_json::Value, String> {
    let o = std::process::Command::new("ip")
        .args(["-j", "-n", ns, "link", "show", "dev", ifname])
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| format!("ip -j link show {ifname} in {ns}: {e}"))?;
    Ok(v[0].clone())
}

/// The MAC address of `ifname` in namespace `ns` (from `ip -j link show`).
pub fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6], MilkshakeError> {
    let fail = |detail: String| MilkshakeError::Send {
        step: "peer MAC",
        source: std::io::Error::other(detail),
    };
    let v = link_json(ns, ifname).map_err(fail)?;
    let addr = v["address"].as_str().unwrap_or_default();
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = addr.split(':').collect();
    if parts.len() != 6 {
        return Err(fail(format!(
            "{ifname} in {ns} has no MAC address ({addr:?})"
        )));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|e| fail(format!("{addr}: {e}")))?;
    }
    Ok(mac)
}

/// Sends the program's packets from the lab's namespace a to b's address,
/// bounded by count (the program's packets) and by time, paced to `pps`, with
/// the chosen `io` generator (batches of 64; a batch never spans ports).
pub fn send(p: &Program, lab: &Lab, limits: SendLimits) -> Result<SendReport, MilkshakeError> {
    let src = lab.addr_a();
    let dst = lab.addr_b();
    let mut cfg = IoConfig::new(limits.generator, SocketAddrV4::new(src, 0));
    if limits.generator == io::Backend::Xsk {
        cfg.xsk = Some(io::XskConfig {
            ifname: lab.veth_a().to_string(),
            queue: 0,
            zerocopy: None,
            peer_mac: mac_of(lab.ns_b(), lab.veth_b())?,
        });
    }
    let mut io = {
        let _g = NetnsGuard::enter(lab.ns_a())?;
        io::open(&cfg)?
    };
    let generator = format!("io::{} ({})", io.backend().name(), io.mode());
    let mut tally = SentTally::for_program(p);
    let deadline = Duration::from_secs_f64(limits.seconds);
    let rate = match limits.pps {
        Pps::Rate(r) => Some(r),
        Pps::Max => None,
    };
    let start = Instant::now();
    let now_ns = || start.elapsed().as_nanos() as u64;
    let mut pacer = Pacer::new(rate, 0, BATCH);
    let planned = p.packet_count();
    let mut timed_out = false;
    let mut last = start;
    let mut pkts = p.packets().peekable();
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    'outer: while pkts.peek().is_some() {
        if start.elapsed() >= deadline {
            timed_out = true;
            break;
        }
        let allow = pacer.allowance(now_ns(), planned - pacer.total());
        if allow == 0 {
            let wait = Duration::from_nanos(pacer.wait_ns(now_ns()));
            std::thread::sleep(wait.min(deadline.saturating_sub(start.elapsed())));
            continue;
        }
        let Some(first) = pkts.peek().copied() else {
            break;
        };
        batch.clear();
        while batch.len() < allow
            && let Some(pk) = pkts.next_if(|q| q.dport == first.dport)
        {
            batch.push(pk.payload);
        }
        let to = SocketAddrV4::new(dst, first.dport);
        let mut done = 0;
        while done < batch.len() {
            let rest = &batch[done..];
            let k = io.send(to, rest.len(), 1, &mut |i, buf| buf[0] = rest[i])?;
            for _ in 0..k {
                tally.record(first.dport);
            }
            pacer.sent(k);
            done += k;
            if k > 0 {
                last = Instant::now();
            } else if start.elapsed() >= deadline {
                timed_out = true;
                break 'outer;
            } else {
                // The socket buffer is full: let the receiver's softirq drain it.
                std::thread::yield_now();
            }
        }
    }
    let seconds = (last - start).as_secs_f64();
    let sent = tally.total();
    Ok(SendReport {
        tally,
        sent,
        seconds,
        pps: if seconds > 0.0 {
            sent as f64 / seconds
        } else {
            0.0
        },
        timed_out,
        generator,
    })
}

/// Longest `--seconds` accepted (a day).
pub const MAX_SECONDS: f64 = 86_400.0;

/// Packets per sendmmsg call.
const BATCH: usize = 64;

/// The XDP `count` program on the lab's veth b; detached (inside namespace b) on drop.
#[derive(Debug)]
pub struct XdpCounters {
    ns: String,
    counter: Option<Counter>,
}

impl XdpCounters {
    /// Attaches `rules` to `ifname` in namespace `ns` (native, else generic with a
    /// warning), action drop.
    pub fn attach(ns: &str, ifname: &str, rules: &[Rule]) -> Result<XdpCounters, MilkshakeError> {
        let cr = count_rules(rules);
        // One XDP program per interface: another one (a running milkshake, or
        // anyone's) is a collision, reported as such rather than as a failure.
        if let Ok(link) = link_json(ns, ifname)
            && let Some(x) = link.get("xdp")
        {
            return Err(MilkshakeError::XdpBusy {
                ifname: ifname.to_string(),
                prog: x["prog"]["name"].as_str().unwrap_or("?").to_string(),
                id: x["prog"]["id"].as_u64().unwrap_or(0),
            });
        }
        let _g = NetnsGuard::enter(ns)?;
        let counter = Counter::attach(ifname, ModeRequest::NativeOrGeneric, &cr, Action::Drop)
            .map_err(|e| MilkshakeError::Xdp {
                step: "attach",
                detail: e.to_string(),
            })?;
        Ok(XdpCounters {
            ns: ns.to_string(),
            counter: Some(counter),
        })
    }

    /// Per-rule packets, per-CPU counters summed.
    pub fn read(&self) -> Result<Vec<u64>, MilkshakeError> {
        let c = self.counter.as_ref().ok_or(MilkshakeError::Xdp {
            step: "read",
            detail: "already detached".into(),
        })?;
        c.read()
            .map(|v| v.iter().map(|rc| rc.packets).collect())
            .map_err(|e| MilkshakeError::Xdp {
                step: "read",
                detail: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        match &self.counter {
            Some(c) => format!("xdp count on {} ({})", c.ifname(), c.mode()),
            None => "xdp (detached)".into(),
        }
    }

    /// Detaches now, inside namespace b.
    pub fn detach(mut self) -> Result<(), MilkshakeError> {
        let _g = NetnsGuard::enter(&self.ns)?;
        drop(self.counter.take());
        Ok(())
    }
}

impl Drop for XdpCounters {
    fn drop(&mut self) {
        if let Some(c) = self.counter.take() {
            // Detach where the interface is; if the namespace is gone, so is the link.
            let _g = NetnsGuard::enter(&self.ns);
            drop(c);
        }
    }
}

/// Installed counters of either backend; removed on drop.
#[derive(Debug)]
pub enum Installed {
    /// nftables table.
    Nft(NftTable),
    /// XDP count program.
    Xdp(XdpCounters),
}

impl Installed {
    /// Installs `rules` in the lab's namespace b.
    pub fn install(
        kind: BackendKind,
        lab: &Lab,
        rules: &[Rule],
    ) -> Result<Installed, MilkshakeError> {
        match kind {
            BackendKind::Nft => Ok(Installed::Nft(NftTable::install(lab.ns_b(), rules)?)),
            BackendKind::Xdp => Ok(Installed::Xdp(XdpCounters::attach(
                lab.ns_b(),
                lab.veth_b(),
                rules,
            )?)),
        }
    }

    /// One count per rule.
    pub fn read(&self) -> Result<Vec<u64>, MilkshakeError> {
        match self {
            Installed::Nft(t) => t.read(),
            Installed::Xdp(x) => x.read(),
        }
    }

    /// Where the counters live (table name, or interface and mode).
    pub fn describe(&self) -> String {
        match self {
            Installed::Nft(t) => format!("table ip {}", t.name()),
            Installed::Xdp(x) => x.describe(),
        }
    }

    /// Removes the rules, reporting failure.
    pub fn remove(self) -> Result<(), MilkshakeError> {
        match self {
            Installed::Nft(t) => t.remove(),
            Installed::Xdp(x) => x.detach(),
        }
    }
}

/// Polls counters until two readings `interval` apart are equal (at most `limit`).
pub fn settle(
    inst: &Installed,
    interval: Duration,
    limit: Duration,
) -> Result<(Vec<u64>, f64), MilkshakeError> {
    let start = Instant::now();
    let mut prev = inst.read()?;
    loop {
        std::thread::sleep(interval);
        let cur = inst.read()?;
        if cur == prev || start.elapsed() >= limit {
            return Ok((cur, start.elapsed().as_secs_f64()));
        }
        prev = cur;
    }
}

/// The result of a run (`--json` prints exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Program name.
    pub program: ProgramKind,
    /// Backend.
    pub backend: BackendKind,
    /// Lab.
    pub lab: String,
    /// Ports used (inclusive).
    pub ports: (u16, u16),
    /// Rules installed.
    pub rules: usize,
    /// Where the counters lived.
    pub counters_in: String,
    /// Input bytes.
    pub input_bytes: usize,
    /// The sender.
    pub send: SendReport,
    /// Seconds spent waiting for the counters to settle.
    pub settle_s: f64,
    /// Seconds from install to removal.
    pub total_s: f64,
    /// Accounting.
    pub accounting: Accounting,
    /// The decoded counters.
    pub result: Decoded,
    /// The CPU kernels' answer over the same data.
    pub cpu: Oracle,
    /// The result equals the CPU's.
    pub matches_cpu: bool,
}

/// Runs a program in a lab end to end. Rules are removed on every path.
pub fn run_program(
    backend: BackendKind,
    p: &Program,
    lab_name: &str,
    limits: SendLimits,
) -> Result<RunReport, MilkshakeError> {
    if !(limits.seconds > 0.0 && limits.seconds <= MAX_SECONDS) {
        return Err(MilkshakeError::BadSeconds(limits.seconds));
    }
    if backend == BackendKind::Xdp {
        xdp_tables(&p.rules())?;
    }
    let nft_ok = match (backend, nft::find_nft()) {
        (BackendKind::Nft, Err(e)) => return Err(e),
        (_, r) => r.is_ok(),
    };
    let lab = Lab::open(lab_name)
        .map_err(|e| MilkshakeError::NoLab(lab_name.to_string(), e.to_string()))?;
    if backend == BackendKind::Xdp && nft_ok {
        // A stale table of a SIGKILLed nft run never sees a packet under XDP,
        // but it is litter: remove it (best effort; the nft backend does the
        // same before installing, and fails if it cannot).
        let _ = nft::remove_stale(lab.ns_b());
        // XDP runs before nftables: it would take a live nft run's packets.
        nft::check_ports_free(lab.ns_b(), &p.rules())?;
    }
    let kernels = Kernels::get()?;
    let rules = p.rules();
    let t0 = Instant::now();
    let inst = Installed::install(backend, &lab, &rules)?;
    let counters_in = inst.describe();
    let outcome = (|| {
        // Counters start at zero: anything that arrives between install and
        // send is stray traffic and is reported as such.
        let sr = send(p, &lab, limits)?;
        let (counters, settle_s) =
            settle(&inst, Duration::from_millis(30), Duration::from_secs(3))?;
        Ok::<_, MilkshakeError>((sr, counters, settle_s))
    })();
    let removed = inst.remove();
    let (sr, counters, settle_s) = outcome?;
    removed?;
    let total_s = t0.elapsed().as_secs_f64();
    let (result, accounting) = program::decode(p, &counters, &sr.tally)?;
    let cpu = program::oracle(p, kernels);
    let matches_cpu = result == cpu.expected;
    Ok(RunReport {
        program: p.kind(),
        backend,
        lab: lab_name.to_string(),
        ports: p.ports(),
        rules: rules.len(),
        counters_in,
        input_bytes: p.input().len(),
        send: sr,
        settle_s,
        total_s,
        accounting,
        result,
        cpu,
        matches_cpu,
    })
}

fn usage(e: MilkshakeError) -> anyhow::Error {
    if e.is_usage() {
        crate::usage::bad(e)
    } else {
        anyhow::Error::new(e)
    }
}

/// `pfs milkshake run`.
pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    let (backend, p) = program_from(&a.program).map_err(usage)?;
    let pps: Pps = a.pps.parse().map_err(usage)?;
    let generator: io::Backend = a
        .generator
        .parse()
        .map_err(|e| crate::usage::bad(format!("--generator: {e}")))?;
    let limits = SendLimits {
        pps,
        seconds: a.seconds,
        generator,
    };
    let r = run_program(backend, &p, &a.lab, limits).map_err(usage)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", render(&r));
    }
    if !r.accounting.exact || !r.matches_cpu {
        anyhow::bail!(
            "result is {} and {} the CPU's",
            if r.accounting.exact {
                "exact"
            } else {
                "not exact"
            },
            if r.matches_cpu {
                "equals"
            } else {
                "differs from"
            }
        );
    }
    Ok(())
}

fn summary(d: &Decoded) -> String {
    match d {
        Decoded::Histogram {
            bytes,
            sum,
            xor,
            counteq,
            rest,
            histogram,
        } => {
            let distinct = histogram.iter().filter(|&&c| c > 0).count();
            let mut s =
                format!("bytes={bytes} sum={sum} xor=0x{xor:02x} distinct={distinct} rest={rest}");
            if let Some((v, c)) = counteq {
                s += &format!(" counteq({v})={c}");
            }
            s
        }
        Decoded::CountEq { imm, count, rest } => format!("counteq({imm})={count} rest={rest}"),
        Decoded::Word { text, counts, .. } => format!("text={text:?} ({} ports)", counts.len()),
    }
}

/// The human-readable report.
pub fn render(r: &RunReport) -> String {
    let a = &r.accounting;
    format!(
        "milkshake {} on {} in lab {} ({}, {} rules, ports {}..={})\n\
         sent {} of {} packets in {:.3} s ({:.0} pps, {}){}\n\
         counted {}, stray {}, sent but not counted {}: {}\n\
         result: {}\n\
         cpu:    {} ({} kernels): {}\n\
         settle {:.3} s, total {:.3} s\n",
        r.program.name(),
        r.backend.name(),
        r.lab,
        r.counters_in,
        r.rules,
        r.ports.0,
        r.ports.1,
        a.sent,
        a.planned,
        r.send.seconds,
        r.send.pps,
        r.send.generator,
        if r.send.timed_out {
            " [stopped at --seconds]"
        } else {
            ""
        },
        a.counted,
        a.stray,
        a.not_counted,
        if a.exact { "EXACT" } else { "NOT EXACT" },
        summary(&r.result),
        summary(&r.cpu.expected),
        r.cpu.backend,
        if r.matches_cpu { "match" } else { "MISMATCH" },
        r.settle_s,
        r.total_s,
    )
}

/// The rules as the XDP loader compiles them; its limits (1024 ports, 4096
/// rules) refuse a program as bad input before anything is installed.
pub fn xdp_tables(rules: &[Rule]) -> Result<pfs_ebpf::rules::CountTables, MilkshakeError> {
    pfs_ebpf::rules::compile(&count_rules(rules))
        .map_err(|e| MilkshakeError::XdpRules(e.to_string()))
}

fn count_rules(rules: &[Rule]) -> Vec<CountRule> {
    rules
        .iter()
        .map(|r| CountRule {
            dport: r.dport,
            byte: r.byte,
        })
        .collect()
}

/// What `pfs milkshake rules` prints.
pub fn rules_text(backend: BackendKind, p: &Program) -> Result<String, MilkshakeError> {
    let rules = p.rules();
    let mut s = format!(
        "# milkshake {} on {}: {} rules, ports {}..={}, {} packets to send\n",
        p.kind().name(),
        backend.name(),
        rules.len(),
        p.ports().0,
        p.ports().1,
        p.packet_count()
    );
    for (i, r) in rules.iter().enumerate() {
        s += &format!("{i}\t{r}\n");
    }
    match backend {
        BackendKind::Nft => {
            s += "# nft -j -f - document (table name chosen at install):\n";
            let doc = nft::ruleset("pfs_milkshake_PID_N", &rules);
            s += &serde_json::to_string_pretty(&doc).unwrap_or_default();
            s.push('\n');
        }
        BackendKind::Xdp => {
            s += "# XDP count program on the lab's veth b, native (else generic), action drop; every matching rule counts\n";
            let t = xdp_tables(&rules)?;
            s += &format!(
                "# maps: pfs_count_ports {} entries, pfs_count_bytes {} entries\n",
                t.ports.len(),
                t.bytes.len()
            );
        }
    }
    Ok(s)
}

/// `pfs milkshake` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MilkshakeCommand {
    /// Install counter rules in the lab, send the data as packets, read the
    /// counters, decode, remove the rules; print beside the CPU kernels' result.
    Run(RunArgs),
    /// Print the rules a run would install, without installing them.
    Rules(RulesArgs),
}

/// Runs a `pfs milkshake` subcommand.
pub fn dispatch(c: &MilkshakeCommand) -> anyhow::Result<()> {
    match c {
        MilkshakeCommand::Run(a) => run(a),
        MilkshakeCommand::Rules(a) => rules(a),
    }
}

/// `pfs milkshake rules`.
pub fn rules(a: &RulesArgs) -> anyhow::Result<()> {
    let (backend, p) = program_from(&a.program).map_err(usage)?;
    print!("{}", rules_text(backend, &p).map_err(usage)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pps_parses() {
        assert_eq!("max".parse::<Pps>().ok(), Some(Pps::Max));
        assert_eq!("10000".parse::<Pps>().ok(), Some(Pps::Rate(10000)));
        assert!(matches!("0".parse::<Pps>(), Err(MilkshakeError::BadPps(_))));
        assert!(matches!(
            "-3".parse::<Pps>(),
            Err(MilkshakeError::BadPps(_))
        ));
        assert!(matches!(
            "fast".parse::<Pps>(),
            Err(MilkshakeError::BadPps(_))
        ));
    }

    #[test]
    fn backend_parses() {
        assert_eq!("nft".parse::<BackendKind>().ok(), Some(BackendKind::Nft));
        assert!(matches!(
            "bpf".parse::<BackendKind>(),
            Err(MilkshakeError::UnknownBackend(_))
        ));
    }

    #[test]
    fn rules_text_lists_every_rule() {
        let p = Program::new(ProgramKind::CountEq, Some(3), 4000, vec![1, 3]).expect("p");
        let t = rules_text(BackendKind::Nft, &p).expect("text");
        assert!(t.contains("0\tudp dport 4000 payload[0] == 0x03"));
        assert!(t.contains("1\tudp dport 4000\n"));
        assert!(t.contains("\"nftables\""));
    }
}
