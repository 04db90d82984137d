//! `pfs linerate tx|rx|reflect`: line-rate UDP probes over one I/O backend on a
//! pinned worker, a live line per second on stderr, a summary (or `--json`) at the
//! end. Normative probe format and figures: `specs/linerate.md`.
//!
//! Without `--lab` everything runs on loopback (127.0.0.1). With `--lab NAME`, `tx`
//! runs in namespace a and sends to b's address; `rx`/`reflect` run in namespace b.
//! The worker thread enters the namespace itself (`NetnsGuard`); AF_XDP attaches
//! the `redirect` XDP program to its interface and detaches it when the worker ends.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use pfs_dataplane::io::{self, Backend, Io, IoConfig, IoError, XskConfig, frame, sys};
use pfs_dataplane::linerate::run::{self, RxParams, RxReport, TxParams, TxReport};
use pfs_dataplane::linerate::wire::HEADER_LEN;
use pfs_dataplane::netns::NetnsGuard;
use pfs_dataplane::stats::Latency;
use pfs_dataplane::workers::{self, Counters};
use serde_json::json;

use crate::lab::Lab;
use crate::usage::bad;

/// What this end does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Send probes (and record echoes' round-trip times).
    Tx,
    /// Receive and account probes.
    Rx,
    /// Receive probes and send each back to its source.
    Reflect,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Tx => "tx",
            Role::Rx => "rx",
            Role::Reflect => "reflect",
        }
    }
}

/// Arguments of `pfs linerate`.
#[derive(Debug, Clone, clap::Args)]
pub struct LinerateArgs {
    /// tx, rx or reflect.
    #[arg(value_enum)]
    pub role: Role,
    /// I/O backend: xsk, uring or mmsg.
    #[arg(long)]
    pub backend: String,
    /// UDP payload bytes per probe (32 .. MTU − 28).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Probes per second, or `max`.
    #[arg(long, default_value = "max")]
    pub rate: String,
    /// Seconds the run lasts at most.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many probes.
    #[arg(long)]
    pub count: Option<u64>,
    /// Run across this pfs lab (tx in namespace a, rx/reflect in namespace b).
    #[arg(long)]
    pub lab: Option<String>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// UDP port of rx/reflect (tx sends from port + 1).
    #[arg(long, default_value_t = 47000)]
    pub port: u16,
    /// Probes per syscall / ring batch (1..=64 for xsk, 1..=1024 otherwise).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Core to pin the worker to (default: tx 1, rx/reflect 0, modulo cores).
    #[arg(long)]
    pub core: Option<usize>,
    /// XDP attach mode for xsk's redirect program: native, generic or auto
    /// (native, falling back to generic with a warning).
    #[arg(long, default_value = "auto")]
    pub xdp_mode: String,
    /// No live line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Role.
    pub role: Role,
    /// Backend.
    pub backend: Backend,
    /// UDP payload bytes.
    pub size: usize,
    /// Probes per second (`None`: max).
    pub rate: Option<u64>,
    /// Longest run.
    pub duration: Duration,
    /// Most probes.
    pub count: Option<u64>,
    /// Batch.
    pub batch: usize,
    /// Worker core index.
    pub core: usize,
    /// Namespace the worker enters (`None`: stay).
    pub netns: Option<String>,
    /// Local address.
    pub local: SocketAddrV4,
    /// Where tx sends.
    pub dst: SocketAddrV4,
    /// AF_XDP: interface, peer MAC and XDP mode.
    pub xsk: Option<(XskConfig, XdpMode)>,
    /// Run id (tx).
    pub run: u32,
}

/// How to attach the redirect program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
    /// Native, else generic with a warning.
    Auto,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// tx.
    Tx(TxReport),
    /// rx or reflect.
    Rx(RxReport),
}

/// A finished run: the plan, how the backend ran, and what happened.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The plan.
    pub plan: Plan,
    /// The backend's mode line.
    pub mode: String,
    /// Where the worker ran.
    pub pinned: Option<usize>,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Results.
    pub outcome: Outcome,
}

fn parse_rate(s: &str) -> anyhow::Result<Option<u64>> {
    if s == "max" {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(0) => Err(bad(
            "--rate 0: must be a positive number of packets per second or `max`",
        )),
        Ok(r) => Ok(Some(r)),
        Err(_) => Err(bad(format!(
            "--rate {s:?}: expected packets per second (a positive integer) or `max`"
        ))),
    }
}

fn parse_xdp_mode(s: &str) -> anyhow::Result<XdpMode> {
    match s {
        "native" => Ok(XdpMode::Native),
        "generic" => Ok(XdpMode::Generic),
        "auto" => Ok(XdpMode::Auto),
        other => Err(bad(format!(
            "--xdp-mode {other:?}: expected native, generic or auto"
        ))),
    }
}

/// MAC address of `ifname` inside namespace `ns` (read by a thread that enters it).
pub fn mac_in_netns(ns: &str, ifname: &str) -> anyhow::Result<[u8; 6]> {
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<[u8; 6]> {
            let _g = NetnsGuard::enter(&ns)?;
            sys::hwaddr(&ifname).with_context(|| format!("MAC address of {ifname} in {ns}"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread reading the MAC of {ifname} panicked"))?
    })
}

/// AF_XDP settings for one end of `lab`: its veth in namespace a (`end_a`) or b,
/// queue 0, zero-copy if the driver allows, frames sent to the other end's MAC.
pub fn lab_xsk_config(lab: &Lab, end_a: bool) -> anyhow::Result<XskConfig> {
    let (ifname, peer_ns, peer_if) = if end_a {
        (lab.veth_a(), lab.ns_b(), lab.veth_b())
    } else {
        (lab.veth_b(), lab.ns_a(), lab.veth_a())
    };
    let peer_mac = mac_in_netns(peer_ns, peer_if)?;
    Ok(XskConfig {
        ifname: ifname.to_string(),
        queue: 0,
        zerocopy: None,
        peer_mac,
    })
}

/// Checks the arguments and resolves addresses (and, with a lab, namespaces).
pub fn plan(a: &LinerateArgs) -> anyhow::Result<Plan> {
    let backend: Backend = a
        .backend
        .parse()
        .map_err(|e: IoError| bad(format!("--backend: {e}")))?;
    let rate = parse_rate(&a.rate)?;
    if !(a.duration.is_finite() && a.duration > 0.0 && a.duration <= 86_400.0) {
        return Err(bad(format!(
            "--duration {}: must be more than 0 and at most 86400 seconds",
            a.duration
        )));
    }
    if a.count == Some(0) {
        return Err(bad("--count 0: must be at least 1"));
    }
    let max_batch = if backend == Backend::Xsk { 64 } else { 1024 };
    if a.batch == 0 || a.batch > max_batch {
        return Err(bad(format!(
            "--batch {}: must be 1..={max_batch} for backend {backend}",
            a.batch
        )));
    }
    if a.port == 0 || a.port == u16::MAX {
        return Err(bad(format!("--port {}: must be 1..=65534", a.port)));
    }
    let xdp_mode = parse_xdp_mode(&a.xdp_mode)?;
    let lab = match &a.lab {
        Some(name) => Some(Lab::open(name).map_err(|e| {
            if e.is_usage() {
                bad(format!("--lab: {e}"))
            } else {
                anyhow::Error::new(e).context("opening the lab")
            }
        })?),
        None => None,
    };
    let mtu = match &lab {
        Some(l) => l.mtu() as usize,
        None => 1500,
    };
    let max_size = (mtu - 28).min(frame::MAX_UDP_PAYLOAD);
    if a.size < HEADER_LEN || a.size > max_size {
        return Err(bad(format!(
            "--size {}: must be {HEADER_LEN} (the probe header) .. {max_size} (MTU {mtu} − 28)",
            a.size
        )));
    }
    if let Err(e) = backend.probe() {
        return Err(bad(format!("--backend {backend}: {e}")));
    }
    let (rx_ip, tx_ip) = match &lab {
        Some(l) => (l.addr_b(), l.addr_a()),
        None => (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST),
    };
    let rx_addr = SocketAddrV4::new(rx_ip, a.port);
    let tx_addr = SocketAddrV4::new(tx_ip, a.port + 1);
    let (local, dst) = match a.role {
        Role::Tx => (tx_addr, rx_addr),
        Role::Rx | Role::Reflect => (rx_addr, tx_addr),
    };
    let netns = lab.as_ref().map(|l| match a.role {
        Role::Tx => l.ns_a().to_string(),
        Role::Rx | Role::Reflect => l.ns_b().to_string(),
    });
    let xsk = if backend == Backend::Xsk {
        let Some(l) = &lab else {
            return Err(bad(
                "--backend xsk needs --lab NAME (AF_XDP binds to an interface of the lab)",
            ));
        };
        Some((lab_xsk_config(l, a.role == Role::Tx)?, xdp_mode))
    } else {
        None
    };
    let core = a.core.unwrap_or(match a.role {
        Role::Tx => 1,
        Role::Rx | Role::Reflect => 0,
    });
    let run = (sys::monotonic_ns() as u32) ^ std::process::id().rotate_left(16);
    Ok(Plan {
        role: a.role,
        backend,
        size: a.size,
        rate,
        duration: Duration::from_secs_f64(a.duration),
        count: a.count,
        batch: a.batch,
        core,
        netns,
        local,
        dst,
        xsk,
        run,
    })
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] pfs_dataplane::netns::NetnsError),
    /// The backend refused.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The XDP redirect program could not be attached.
    #[error("attaching the redirect XDP program to {ifname}: {detail}")]
    Xdp {
        /// Interface.
        ifname: String,
        /// Why.
        detail: String,
    },
}

impl SetupError {
    /// A usage error (exit 2) when the user's setup is at fault, else a failure.
    pub fn into_anyhow(self) -> anyhow::Error {
        let usage = match &self {
            SetupError::Io(e) => e.is_usage(),
            SetupError::Xdp { .. } => true,
            SetupError::Netns(_) => false,
        };
        if usage {
            bad(self)
        } else {
            anyhow::Error::new(self)
        }
    }
}

/// Attaches the `redirect` program for `port` on `ifname` and puts `fd` in its
/// XSKMAP at queue `queue`. The returned handle detaches on drop.
pub fn attach_redirect(
    ifname: &str,
    mode: XdpMode,
    port: u16,
    queue: u32,
    fd: std::os::fd::RawFd,
) -> Result<Box<dyn std::any::Any>, SetupError> {
    let req = match mode {
        XdpMode::Native => pfs_ebpf::ModeRequest::Native,
        XdpMode::Generic => pfs_ebpf::ModeRequest::Generic,
        XdpMode::Auto => pfs_ebpf::ModeRequest::NativeOrGeneric,
    };
    let xdp = |e: pfs_ebpf::EbpfError| SetupError::Xdp {
        ifname: ifname.to_string(),
        detail: e.to_string(),
    };
    let mut redirect = pfs_ebpf::Redirect::attach(ifname, req, &[port]).map_err(xdp)?;
    redirect.register_xsk(queue, fd).map_err(xdp)?;
    Ok(Box::new(redirect))
}

enum Msg {
    Ready { mode: String, pinned: Option<usize> },
    Failed(SetupError),
    Done(Result<Outcome, IoError>),
}

/// Runs a plan on a pinned worker; `live` gets each one-second sample.
pub fn execute(
    plan: &Plan,
    stop: &AtomicBool,
    on_ready: impl FnOnce(&str),
    mut live: impl FnMut(&workers::Snapshot, f64),
) -> anyhow::Result<Finished> {
    let counters = Counters::default();
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    std::thread::scope(|s| -> anyhow::Result<Finished> {
        let counters = &counters;
        s.spawn(move || {
            let pinned = workers::pin_current(plan.core);
            let _guard = match plan.netns.as_deref().map(NetnsGuard::enter).transpose() {
                Ok(g) => g,
                Err(e) => {
                    let _ = tx.send(Msg::Failed(e.into()));
                    return;
                }
            };
            let mut cfg = IoConfig::new(plan.backend, plan.local);
            cfg.batch = plan.batch;
            cfg.max_payload = plan.size;
            cfg.xsk = plan.xsk.as_ref().map(|(x, _)| x.clone());
            // tx talks to one peer; rx and reflect take any source.
            cfg.peer = (plan.role == Role::Tx).then_some(plan.dst);
            let mut io = match io::open(&cfg) {
                Ok(io) => io,
                Err(e) => {
                    let _ = tx.send(Msg::Failed(e.into()));
                    return;
                }
            };
            // Declared after `io`, so it drops (detaches) first.
            let _redirect = match &plan.xsk {
                Some((x, mode)) => {
                    match attach_redirect(&x.ifname, *mode, plan.local.port(), x.queue, io.raw_fd())
                    {
                        Ok(r) => Some(r),
                        Err(e) => {
                            let _ = tx.send(Msg::Failed(e));
                            return;
                        }
                    }
                }
                None => None,
            };
            let _ = tx.send(Msg::Ready {
                mode: io.mode(),
                pinned,
            });
            let out = run_role(io.as_mut(), plan, stop, counters);
            let _ = tx.send(Msg::Done(out));
        });
        let (mode, pinned) = match rx.recv() {
            Ok(Msg::Ready { mode, pinned }) => (mode, pinned),
            Ok(Msg::Failed(e)) => return Err(e.into_anyhow()),
            Ok(Msg::Done(_)) | Err(_) => anyhow::bail!("the worker ended before it was ready"),
        };
        on_ready(&mode);
        let msgs = workers::monitor(&rx, 1, &[counters], Duration::from_secs(1), &mut live);
        match msgs.into_iter().next() {
            Some(Msg::Done(Ok(outcome))) => Ok(Finished {
                plan: plan.clone(),
                mode,
                pinned,
                interrupted: stop.load(Ordering::Relaxed),
                outcome,
            }),
            Some(Msg::Done(Err(e))) => Err(anyhow::Error::new(e).context("during the run")),
            _ => anyhow::bail!("the worker ended without a result"),
        }
    })
}

fn run_role(
    io: &mut dyn Io,
    plan: &Plan,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<Outcome, IoError> {
    match plan.role {
        Role::Tx => run::tx(
            io,
            &TxParams {
                dst: plan.dst,
                size: plan.size,
                rate: plan.rate,
                duration: plan.duration,
                count: plan.count,
                batch: plan.batch,
                run: plan.run,
                echoes: true,
            },
            stop,
            counters,
        )
        .map(Outcome::Tx),
        Role::Rx | Role::Reflect => run::rx(
            io,
            &RxParams {
                duration: plan.duration,
                count: plan.count,
                batch: plan.batch,
                reflect: plan.role == Role::Reflect,
            },
            stop,
            counters,
        )
        .map(Outcome::Rx),
    }
}

fn latency_json(l: &Latency) -> serde_json::Value {
    json!({
        "count": l.count(),
        "p50": l.quantile_us(0.50),
        "p90": l.quantile_us(0.90),
        "p99": l.quantile_us(0.99),
        "p999": l.quantile_us(0.999),
        "max": l.max_us(),
        "mean": l.mean_us(),
    })
}

impl Finished {
    /// Probes per second.
    pub fn pps(&self) -> f64 {
        match &self.outcome {
            Outcome::Tx(t) => t.pps(),
            Outcome::Rx(r) => r.pps(),
        }
    }

    /// Gbit/s of Ethernet frames (spec §6); rx counts the sizes it received.
    pub fn gbps(&self) -> f64 {
        match &self.outcome {
            Outcome::Tx(t) => run::gbps(t.pps(), self.plan.size),
            Outcome::Rx(r) => {
                let frames = r.bytes + r.packets * frame::HEADERS as u64;
                run::rate(frames, r.elapsed_s) * 8.0 / 1e9
            }
        }
    }

    /// The machine-readable summary.
    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.plan;
        let mut v = json!({
            "role": p.role.name(),
            "backend": p.backend.name(),
            "mode": self.mode,
            "rate": p.rate,
            "local": p.local.to_string(),
            "pinned": self.pinned,
            "netns": p.netns,
            "interrupted": self.interrupted,
            "pps": self.pps(),
            "gbps": self.gbps(),
        });
        let extra = match &self.outcome {
            Outcome::Tx(t) => json!({
                "size": p.size,
                "dst": p.dst.to_string(),
                "run": p.run,
                "packets": t.sent,
                "elapsed_s": t.elapsed_s,
                "echoes": t.echoes,
                "lost": (t.echoes > 0).then(|| t.sent - t.echoes.min(t.sent)),
                "drops": t.drops,
                "cpu_s": t.cpu_s,
                "cpu_ns_per_packet": t.cpu_ns_per_packet(),
                "latency_kind": "rtt",
                "latency_us": latency_json(&t.rtt),
            }),
            Outcome::Rx(r) => json!({
                "run": r.run,
                "packets": r.packets,
                "bytes": r.bytes,
                "elapsed_s": r.elapsed_s,
                "lost": r.lost,
                "duplicates": r.duplicates,
                "reordered": r.reordered,
                "late": r.late,
                "invalid": r.invalid,
                "corrupt": r.corrupt,
                "foreign": r.foreign,
                "echoed": r.echoed,
                "drops": r.drops,
                "cpu_s": r.cpu_s,
                "cpu_ns_per_packet": r.cpu_ns_per_packet(),
                "latency_kind": "one-way",
                "latency_us": latency_json(&r.latency),
            }),
        };
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let p = &self.plan;
        let lat = |name: &str, l: &Latency| {
            if l.count() == 0 {
                format!("{name}: none recorded")
            } else {
                format!(
                    "{name} us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)",
                    l.quantile_us(0.5),
                    l.quantile_us(0.9),
                    l.quantile_us(0.99),
                    l.quantile_us(0.999),
                    l.max_us(),
                    l.count()
                )
            }
        };
        let size = match &self.outcome {
            Outcome::Tx(_) => format!(" size {} B", p.size),
            Outcome::Rx(_) => String::new(),
        };
        let head = format!(
            "linerate {} {} ({}){}{}: {:.0} pps, {:.3} Gbit/s",
            p.role.name(),
            p.backend,
            self.mode,
            size,
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            },
            self.pps(),
            self.gbps()
        );
        match &self.outcome {
            Outcome::Tx(t) => format!(
                "{head}\n  sent {} to {} in {:.3} s, echoes {}, drops {}, worker CPU {:.0} ns/packet\n  {}",
                t.sent,
                p.dst,
                t.elapsed_s,
                t.echoes,
                t.drops,
                t.cpu_ns_per_packet(),
                lat("rtt", &t.rtt)
            ),
            Outcome::Rx(r) => format!(
                "{head}\n  received {} on {} in {:.3} s: lost {}, duplicates {}, reordered {}, corrupt {}, invalid {}, foreign {}, echoed {}, drops {}, worker CPU {:.0} ns/packet\n  {}",
                r.packets,
                p.local,
                r.elapsed_s,
                r.lost,
                r.duplicates,
                r.reordered,
                r.corrupt,
                r.invalid,
                r.foreign,
                r.echoed,
                r.drops,
                r.cpu_ns_per_packet(),
                lat("one-way latency", &r.latency)
            ),
        }
    }
}

/// `pfs linerate ...`.
pub fn run(a: &LinerateArgs) -> anyhow::Result<()> {
    let plan = plan(a)?;
    let stop = sys::stop_flag();
    let label = plan.role.name();
    let quiet = a.quiet;
    if !quiet {
        eprintln!(
            "pfs linerate {label}: backend {}, {} -> {}, size {} B, rate {}, up to {:.1} s{}",
            plan.backend,
            plan.local,
            plan.dst,
            plan.size,
            plan.rate.map_or("max".to_string(), |r| format!("{r} pps")),
            plan.duration.as_secs_f64(),
            plan.netns
                .as_deref()
                .map(|n| format!(", in netns {n}"))
                .unwrap_or_default()
        );
    }
    let done = execute(
        &plan,
        stop,
        |mode| {
            if !quiet {
                eprintln!("pfs linerate {label}: ready ({mode})");
            }
        },
        |d, secs| {
            if !quiet {
                eprintln!("{}", workers::live_line(label, d, secs));
            }
        },
    )?;
    let text = if a.json {
        done.to_json().to_string()
    } else {
        done.summary()
    };
    // A closed stdout (e.g. piped into `head`) is not a failure of the run.
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: LinerateArgs,
    }

    fn args(line: &str) -> LinerateArgs {
        T::try_parse_from(std::iter::once("t").chain(line.split_whitespace()))
            .unwrap()
            .a
    }

    fn usage_msg(line: &str) -> String {
        let e = plan(&args(line)).unwrap_err();
        assert!(
            e.downcast_ref::<crate::usage::UsageError>().is_some(),
            "{line}: not a usage error: {e:#}"
        );
        e.to_string()
    }

    #[test]
    fn bad_input_names_the_thing() {
        assert!(usage_msg("tx --backend dpdk").contains("dpdk"));
        assert!(usage_msg("tx --backend mmsg --rate 0").contains("--rate 0"));
        assert!(usage_msg("tx --backend mmsg --rate fast").contains("fast"));
        assert!(usage_msg("tx --backend mmsg --size 31").contains("--size 31"));
        assert!(usage_msg("tx --backend mmsg --size 1473").contains("--size 1473"));
        assert!(usage_msg("tx --backend mmsg --duration 0").contains("--duration"));
        assert!(usage_msg("tx --backend mmsg --count 0").contains("--count 0"));
        assert!(usage_msg("tx --backend mmsg --batch 0").contains("--batch 0"));
        assert!(usage_msg("tx --backend mmsg --lab NOPE").contains("NOPE"));
        assert!(usage_msg("tx --backend mmsg --lab zq9none").contains("zq9none"));
        assert!(usage_msg("tx --backend mmsg --xdp-mode turbo").contains("turbo"));
        assert!(usage_msg("rx --backend xsk").contains("--lab"));
    }

    #[test]
    fn loopback_plan_addresses() {
        let p = plan(&args("tx --backend mmsg --port 40000 --rate 1000")).unwrap();
        assert_eq!(p.local.to_string(), "127.0.0.1:40001");
        assert_eq!(p.dst.to_string(), "127.0.0.1:40000");
        assert_eq!(p.rate, Some(1000));
        let p = plan(&args("reflect --backend mmsg --port 40000")).unwrap();
        assert_eq!(p.local.to_string(), "127.0.0.1:40000");
        assert!(p.netns.is_none());
    }

    /// rx and tx through `execute` on loopback, and a taken port is a usage error.
    #[test]
    fn execute_on_loopback_and_port_taken() {
        // A port p with p and p + 1 free right now (tx binds p + 1).
        let port = (0..100)
            .find_map(|_| {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
                let p = s.local_addr().ok()?.port();
                (p < 65534 && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()).then_some(p)
            })
            .expect("a free pair of UDP ports");
        let rx_plan = plan(&args(&format!(
            "rx --backend mmsg --port {port} --count 200 --duration 10"
        )))
        .unwrap();
        let tx_plan = plan(&args(&format!(
            "tx --backend mmsg --port {port} --count 200 --rate 5000 --duration 10"
        )))
        .unwrap();
        let stop = AtomicBool::new(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (rxf, txf) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                execute(
                    &rx_plan,
                    &stop,
                    |_| {
                        let _ = ready_tx.send(());
                    },
                    |_, _| {},
                )
            });
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("rx became ready");
            // The rx port is now taken: a second rx must be refused as usage.
            let e = execute(&rx_plan, &stop, |_| {}, |_, _| {}).unwrap_err();
            assert!(
                e.downcast_ref::<crate::usage::UsageError>().is_some(),
                "{e:#}"
            );
            assert!(e.to_string().contains(&rx_plan.local.to_string()), "{e}");
            let t = execute(&tx_plan, &stop, |_| {}, |_, _| {}).unwrap();
            (h.join().unwrap().unwrap(), t)
        });
        let Outcome::Rx(r) = &rxf.outcome else {
            panic!("rx outcome")
        };
        assert_eq!(r.packets, 200);
        assert_eq!(r.lost + r.corrupt + r.duplicates, 0);
        let j = rxf.to_json();
        for k in ["pps", "gbps", "packets", "lost", "latency_us"] {
            assert!(j.get(k).is_some(), "json lacks {k}");
        }
        assert_eq!(j["packets"], 200);
        let Outcome::Tx(t) = &txf.outcome else {
            panic!("tx outcome")
        };
        assert_eq!(t.sent, 200);
        assert!(txf.summary().contains("sent 200"));
    }
}
