//! The runner (`specs/pasm.md` §6): executes a checked program step by step,
//! writing the event log as it goes and the planfile at start and at the end.
//! A refused or failed step stops the run (unless `keep_going`); the rest are
//! recorded `not_run`. Ctrl-C stops the run the same way.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::PasmError;
use super::gates::{Backend, Gates, GatesRecord, Verdict};
use super::lab::LabRef;
use super::nft::NftSession;
use super::program::{
    COUNTER_SENT_BYTES, COUNTER_SENT_PACKETS, Predicate, Program, Side, Step, Target, XdpAction,
    payload_bytes,
};
use super::raw::RawSocket;
use super::stamp;

/// Format tag of planfiles.
pub const PLANFILE_FORMAT: &str = "pfs.pasm.planfile/1";

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran and succeeded.
    Ok,
    /// Ran and failed (or was interrupted).
    Error,
    /// A gate refused it.
    Refused,
    /// Never started.
    NotRun,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running (a planfile written at start).
    Running,
    /// Every step ok.
    Ok,
    /// Some step was refused or failed.
    Failed,
    /// Stopped by Ctrl-C.
    Interrupted,
}

/// Options of a run.
#[derive(Debug)]
pub struct RunOptions {
    /// Continue past refused and failed steps.
    pub keep_going: bool,
    /// Where planfiles go.
    pub plans_dir: PathBuf,
    /// Where event logs go.
    pub logs_dir: PathBuf,
    /// The gates in force (and the lab, if any).
    pub gates: Gates,
    /// The program's file, for the record.
    pub program_path: Option<PathBuf>,
    /// Set to stop the run (Ctrl-C).
    pub interrupt: Option<&'static AtomicBool>,
    /// Print `log.info` messages to stdout as they run.
    pub echo_logs: bool,
}

impl RunOptions {
    /// Defaults: `plans/` and `logs/` under the current directory, default gates.
    pub fn new() -> RunOptions {
        RunOptions {
            keep_going: false,
            plans_dir: PathBuf::from("plans"),
            logs_dir: PathBuf::from("logs"),
            gates: Gates::default(),
            program_path: None,
            interrupt: None,
            echo_logs: false,
        }
    }
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions::new()
    }
}

/// The program, as recorded in a planfile.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramRecord {
    /// Its file, if it came from one.
    pub path: Option<String>,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
    /// Its size.
    pub bytes: u64,
    /// Steps.
    pub steps: u64,
}

/// The host, as recorded in a planfile.
#[derive(Debug, Clone, Serialize)]
pub struct HostRecord {
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel: String,
    /// `/etc/machine-id`, if readable.
    pub machine_id: Option<String>,
    /// Real user id of the runner.
    pub uid: u32,
    /// Process id of the runner.
    pub pid: u32,
}

impl HostRecord {
    /// This host.
    pub fn current() -> HostRecord {
        use std::os::unix::fs::MetadataExt;
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        HostRecord {
            hostname: read("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            machine_id: read("/etc/machine-id"),
            uid: std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(u32::MAX),
            pid: std::process::id(),
        }
    }
}

/// One step's record in a planfile.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Step index.
    pub index: usize,
    /// Op.
    pub op: &'static str,
    /// Backend it ran (or would have run) on.
    pub backend: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time (µs).
    pub duration_us: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Packets sent.
    pub packets_sent: u64,
}

/// The planfile (`specs/pasm.md` §6.2; schema `specs/pasm-planfile.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Planfile {
    /// [`PLANFILE_FORMAT`].
    pub format: &'static str,
    /// Run id (the timestamp in the file names).
    pub run_id: String,
    /// How the run ended.
    pub status: RunStatus,
    /// The program.
    pub program: ProgramRecord,
    /// The host.
    pub host: HostRecord,
    /// The gates in force.
    pub gates: GatesRecord,
    /// Start, RFC 3339 UTC.
    pub started: String,
    /// Start, µs since the epoch.
    pub started_unix_us: u64,
    /// End, RFC 3339 UTC (absent while running).
    pub ended: Option<String>,
    /// End, µs since the epoch.
    pub ended_unix_us: Option<u64>,
    /// The event log's file.
    pub event_log: String,
    /// One record per step, in order.
    pub steps: Vec<StepRecord>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    /// The planfile as written.
    pub planfile: Planfile,
    /// Its path.
    pub planfile_path: PathBuf,
    /// The event log's path.
    pub event_log_path: PathBuf,
}

/// Appends events, one JSON object per line.
struct EventLog {
    out: BufWriter<File>,
    path: PathBuf,
    seq: u64,
    start: Instant,
    run_id: String,
}

#[derive(Serialize)]
struct EventHead<'a> {
    seq: u64,
    t_us: u64,
    run: &'a str,
    event: &'a str,
}

impl EventLog {
    fn emit(&mut self, event: &str, body: Value) -> Result<(), PasmError> {
        let head = EventHead {
            seq: self.seq,
            t_us: self.start.elapsed().as_micros() as u64,
            run: &self.run_id,
            event,
        };
        self.seq += 1;
        // One object: the head's fields, then the body's (both serialise as
        // objects; the head's closing brace becomes a comma).
        let mut line = serde_json::to_vec(&head).unwrap_or_default();
        let body = serde_json::to_vec(&body).unwrap_or_default();
        if body.len() > 2 && line.last() == Some(&b'}') {
            line.pop();
            line.push(b',');
            line.extend_from_slice(&body[1..]);
        }
        line.push(b'\n');
        self.out.write_all(&line).map_err(|source| PasmError::Io {
            what: "writing event log",
            path: self.path.clone(),
            source,
        })
    }

    fn flush(&mut self) -> Result<(), PasmError> {
        self.out.flush().map_err(|source| PasmError::Io {
            what: "writing event log",
            path: self.path.clone(),
            source,
        })
    }
}

/// What one `pkt.send` stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SendStats {
    /// Packets sent.
    pub packets: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// From the first send to the last (ns).
    pub span_ns: u64,
}

impl SendStats {
    /// Achieved rate over the stream: (packets − 1) / span.
    pub fn pps(&self) -> Option<f64> {
        (self.packets > 1 && self.span_ns > 0)
            .then(|| (self.packets - 1) as f64 * 1e9 / self.span_ns as f64)
    }
}

fn stopped(interrupt: Option<&AtomicBool>) -> bool {
    interrupt.is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Waits until `due`: sleeps when far, spins when near (sleep overshoots by
/// tens of µs, more than a 10 µs packet interval).
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_micros(300) {
            std::thread::sleep(left - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Sends `count` packets with `send`, paced to `pps` on an absolute schedule
/// (packet i is due at start + i/pps, so lateness is caught up, not
/// accumulated). Stops early when `interrupt` is set.
pub fn paced<F>(
    count: u64,
    pps: Option<u64>,
    interrupt: Option<&AtomicBool>,
    mut send: F,
) -> Result<SendStats, String>
where
    F: FnMut() -> std::io::Result<usize>,
{
    let mut st = SendStats::default();
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = start;
    for i in 0..count {
        if i % 64 == 0 && stopped(interrupt) {
            return Err(format!("interrupted after {} packets", st.packets));
        }
        if let Some(p) = pps {
            let due = start
                + Duration::from_nanos((u128::from(i) * 1_000_000_000 / u128::from(p)) as u64);
            wait_until(due);
        }
        match send() {
            Ok(n) => {
                last = Instant::now();
                first.get_or_insert(last);
                st.packets += 1;
                st.bytes += n as u64;
            }
            Err(e) => return Err(format!("send failed after {} packets: {e}", st.packets)),
        }
    }
    st.span_ns = first.map_or(0, |f| (last - f).as_nanos() as u64);
    Ok(st)
}

/// Sends a UDP stream from the calling thread's namespace.
pub fn send_udp(
    to: SocketAddrV4,
    payload: &[u8],
    ttl: Option<u8>,
    count: u64,
    pps: Option<u64>,
    interrupt: Option<&AtomicBool>,
) -> Result<SendStats, String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("udp socket: {e}"))?;
    if let Some(t) = ttl {
        sock.set_ttl(u32::from(t))
            .map_err(|e| format!("set ttl {t}: {e}"))?;
    }
    paced(count, pps, interrupt, || sock.send_to(payload, to))
}

/// Where a counter is read from.
#[derive(Debug, Clone)]
enum CounterSource {
    SentPackets,
    SentBytes,
    Nft { ns: String, table: String },
    Xdp(usize),
}

/// Runs `f` on a thread inside namespace `ns` (or on this thread when `None`).
fn in_ns<T: Send>(
    ns: Option<&str>,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    match ns {
        None => f(),
        Some(ns) => std::thread::scope(|s| {
            s.spawn(|| {
                let _g = pfs_dataplane::netns::NetnsGuard::enter(ns).map_err(|e| e.to_string())?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err("sender thread panicked".into()))
        }),
    }
}

struct Engine<'a> {
    kv: HashMap<(String, String), String>,
    counters: HashMap<String, CounterSource>,
    sent_packets: u64,
    sent_bytes: u64,
    nft: NftSession,
    xdp: Vec<pfs_ebpf::Counter>,
    lab: Option<&'a LabRef>,
    interrupt: Option<&'static AtomicBool>,
    echo_logs: bool,
}

/// The result of executing one step.
struct Done {
    data: Value,
    packets: u64,
    bytes: u64,
}

impl Engine<'_> {
    fn counter(&self, name: &str) -> Result<u64, String> {
        match self.counters.get(name) {
            Some(CounterSource::SentPackets) => Ok(self.sent_packets),
            Some(CounterSource::SentBytes) => Ok(self.sent_bytes),
            Some(CounterSource::Nft { ns, table }) => NftSession::read(ns, table, name)
                .map(|(p, _)| p)
                .map_err(|e| e.to_string()),
            Some(CounterSource::Xdp(i)) => self.xdp[*i]
                .read()
                .map_err(|e| format!("reading XDP counter {name:?}: {e}"))
                .map(|v| v.first().map_or(0, |r| r.packets)),
            None => Err(format!("counter {name:?} is not declared")),
        }
    }

    fn sleep(&self, ms: u64) -> Result<(), String> {
        let end = Instant::now() + Duration::from_millis(ms);
        loop {
            if stopped(self.interrupt) {
                return Err("interrupted".into());
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }

    fn exec(&mut self, step: &Step) -> Result<Done, String> {
        let plain = |data: Value| Done {
            data,
            packets: 0,
            bytes: 0,
        };
        match step {
            Step::StateSet { scope, key, value } => {
                self.kv.insert((scope.clone(), key.clone()), value.clone());
                Ok(plain(json!({"scope":scope,"key":key,"value":value})))
            }
            Step::LogInfo { message, fields } => {
                if self.echo_logs {
                    let mut line = format!("log: {message}");
                    for (k, v) in fields {
                        line.push_str(&format!(
                            " {k}={}",
                            serde_json::to_string(v).unwrap_or_default()
                        ));
                    }
                    // A closed stdout must not stop (or panic) the run.
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
                Ok(plain(json!({"message":message,"fields":fields})))
            }
            Step::Sleep { ms } => {
                self.sleep(*ms)?;
                Ok(plain(json!({"ms":ms})))
            }
            Step::Wait {
                predicate,
                timeout_ms,
            } => {
                let start = Instant::now();
                let deadline = start + Duration::from_millis(*timeout_ms);
                let poll = match predicate {
                    Predicate::Counter { name, .. }
                        if matches!(self.counters.get(name), Some(CounterSource::Nft { .. })) =>
                    {
                        Duration::from_millis(20)
                    }
                    _ => Duration::from_millis(5),
                };
                loop {
                    let (holds, observed) = match predicate {
                        Predicate::Kv { scope, key, equals } => {
                            let v = self.kv.get(&(scope.clone(), key.clone()));
                            (v == Some(equals), json!(v))
                        }
                        Predicate::Counter { name, cmp, value } => {
                            let n = self.counter(name)?;
                            (cmp.holds(n, *value), json!(n))
                        }
                    };
                    let waited = start.elapsed().as_millis() as u64;
                    if holds {
                        return Ok(plain(
                            json!({"predicate":predicate,"observed":observed,"waited_ms":waited}),
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "timed out after {waited} ms: observed {observed}, predicate {}",
                            serde_json::to_string(predicate).unwrap_or_default()
                        ));
                    }
                    if stopped(self.interrupt) {
                        return Err("interrupted".into());
                    }
                    std::thread::sleep(
                        poll.min(deadline.saturating_duration_since(Instant::now())),
                    );
                }
            }
            Step::FwCounter {
                name,
                port,
                side,
                byte,
            } => {
                let lab = self.lab.ok_or("fw.counter needs --netns")?;
                let ns = lab.ns(*side).to_string();
                let table = self
                    .nft
                    .add_counter(&ns, name, *port, *byte)
                    .map_err(|e| e.to_string())?;
                self.counters.insert(
                    name.clone(),
                    CounterSource::Nft {
                        ns: ns.clone(),
                        table: table.clone(),
                    },
                );
                Ok(plain(
                    json!({"name":name,"netns":ns,"table":format!("inet {table}"),"port":port,"byte":byte}),
                ))
            }
            Step::XdpCounter {
                name,
                port,
                side,
                byte,
                action,
            } => {
                let lab = self.lab.ok_or("xdp.counter needs --netns")?;
                let ns = lab.ns(*side).to_string();
                let ifname = match side {
                    Side::A => lab.veth_a.clone(),
                    Side::B => lab.veth_b.clone(),
                };
                let rule = pfs_ebpf::CountRule {
                    dport: *port,
                    byte: byte.map(|b| (b.offset, b.value)),
                };
                let act = match action {
                    XdpAction::Pass => pfs_ebpf::Action::Pass,
                    XdpAction::Drop => pfs_ebpf::Action::Drop,
                };
                // Attach from this thread inside the veth's namespace, then return.
                let c = pfs_dataplane::netns::with_netns(&ns, || {
                    pfs_ebpf::Counter::attach(
                        &ifname,
                        pfs_ebpf::ModeRequest::NativeOrGeneric,
                        &[rule],
                        act,
                    )
                })
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("attaching XDP count on {ifname} in {ns}: {e}"))?;
                let mode = c.mode().to_string();
                self.xdp.push(c);
                self.counters
                    .insert(name.clone(), CounterSource::Xdp(self.xdp.len() - 1));
                Ok(plain(
                    json!({"name":name,"netns":ns,"ifname":ifname,"mode":mode,
                    "port":port,"byte":byte,"action":action}),
                ))
            }
            Step::PktSend {
                target,
                payload,
                encoding,
                meta,
            } => {
                let bytes = payload_bytes(payload, *encoding);
                let count = meta.count.unwrap_or(1);
                let interrupt = self.interrupt;
                let st = match target {
                    Target::Udp(to) => {
                        let ns = self.lab.map(|l| l.ns_a.as_str());
                        in_ns(ns, || {
                            send_udp(*to, &bytes, meta.ttl, count, meta.pps, interrupt)
                        })?
                    }
                    Target::Raw(iface) => {
                        let lab = self.lab.ok_or("raw:// needs --netns")?;
                        let ns = lab
                            .ns_of_iface(iface)
                            .ok_or_else(|| format!("{iface} is not a lab veth"))?;
                        in_ns(Some(ns), || {
                            let s = RawSocket::open(iface)
                                .map_err(|e| format!("AF_PACKET on {iface}: {e}"))?;
                            paced(count, meta.pps, interrupt, || s.send(&bytes))
                        })?
                    }
                };
                self.sent_packets += st.packets;
                self.sent_bytes += st.bytes;
                Ok(Done {
                    data: json!({"target":target,"packets":st.packets,"bytes":st.bytes,
                        "pps_asked":meta.pps,"pps_achieved":st.pps()}),
                    packets: st.packets,
                    bytes: st.bytes,
                })
            }
        }
    }
}

fn write_json_atomic(path: &Path, v: &impl Serialize) -> Result<(), PasmError> {
    let io = |source| PasmError::Io {
        what: "writing planfile",
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_vec_pretty(v).map_err(|e| io(e.into()))?;
    text.push(b'\n');
    std::fs::write(&tmp, &text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Runs `program` (whose file bytes are `source`) under `opts`.
/// Errors only when the planfile or event log cannot be written; step
/// failures are in the report.
pub fn run(program: &Program, source: &[u8], opts: &RunOptions) -> Result<RunReport, PasmError> {
    for d in [&opts.plans_dir, &opts.logs_dir] {
        std::fs::create_dir_all(d).map_err(|source| PasmError::Io {
            what: "creating directory",
            path: d.clone(),
            source,
        })?;
    }
    // A fresh run id: the start time, bumped by 1 µs if its files exist.
    let mut started_us = stamp::unix_us(SystemTime::now());
    let (run_id, plan_path, log_path, log_file) = loop {
        let id = stamp::run_stamp(started_us);
        let plan = opts.plans_dir.join(format!("pasm_{id}.json"));
        let log = opts.logs_dir.join(format!("pasm_run_{id}.jsonl"));
        match File::options().write(true).create_new(true).open(&log) {
            Ok(f) if !plan.exists() => break (id, plan, log, f),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(PasmError::Io {
                    what: "creating event log",
                    path: log,
                    source,
                });
            }
        }
        started_us += 1;
    };
    let gates = &opts.gates;
    let mut planfile = Planfile {
        format: PLANFILE_FORMAT,
        run_id: run_id.clone(),
        status: RunStatus::Running,
        program: ProgramRecord {
            path: opts.program_path.as_ref().map(|p| p.display().to_string()),
            blake3: blake3::hash(source).to_hex().to_string(),
            bytes: source.len() as u64,
            steps: program.steps.len() as u64,
        },
        host: HostRecord::current(),
        gates: gates.record(opts.keep_going),
        started: stamp::rfc3339(started_us),
        started_unix_us: started_us,
        ended: None,
        ended_unix_us: None,
        event_log: log_path.display().to_string(),
        steps: program
            .steps
            .iter()
            .enumerate()
            .map(|(index, s)| StepRecord {
                index,
                op: s.op(),
                backend: Backend::of(s).name(),
                outcome: Outcome::NotRun,
                reason: None,
                duration_us: 0,
                bytes_sent: 0,
                packets_sent: 0,
            })
            .collect(),
    };
    write_json_atomic(&plan_path, &planfile)?;
    let mut log = EventLog {
        out: BufWriter::with_capacity(1 << 16, log_file),
        path: log_path.clone(),
        seq: 0,
        start: Instant::now(),
        run_id: run_id.clone(),
    };
    log.emit(
        "run.start",
        json!({"ts":planfile.started,"program_blake3":planfile.program.blake3,
            "steps":program.steps.len(),"host":planfile.host,"gates":planfile.gates,
            "planfile":plan_path.display().to_string()}),
    )?;
    let mut engine = Engine {
        kv: HashMap::new(),
        counters: HashMap::from([
            (COUNTER_SENT_PACKETS.to_string(), CounterSource::SentPackets),
            (COUNTER_SENT_BYTES.to_string(), CounterSource::SentBytes),
        ]),
        sent_packets: 0,
        sent_bytes: 0,
        nft: NftSession::new(),
        xdp: Vec::new(),
        lab: gates.lab.as_ref(),
        interrupt: opts.interrupt,
        echo_logs: opts.echo_logs,
    };
    let mut status = RunStatus::Ok;
    let mut log_err = None;
    for (i, step) in program.steps.iter().enumerate() {
        if stopped(opts.interrupt) {
            status = RunStatus::Interrupted;
            break;
        }
        let t0 = Instant::now();
        let rec = &mut planfile.steps[i];
        let (outcome, data) = match gates.check(i, step) {
            Verdict::Refuse { pointer, reason } => {
                rec.reason = Some(format!("{pointer}: {reason}"));
                (Outcome::Refused, json!({"pointer":pointer}))
            }
            Verdict::Allow => match engine.exec(step) {
                Ok(d) => {
                    rec.packets_sent = d.packets;
                    rec.bytes_sent = d.bytes;
                    (Outcome::Ok, d.data)
                }
                Err(e) => {
                    rec.reason = Some(e);
                    (Outcome::Error, Value::Null)
                }
            },
        };
        rec.outcome = outcome;
        rec.duration_us = t0.elapsed().as_micros() as u64;
        let mut body = json!({"step":i,"op":rec.op,"backend":rec.backend,"outcome":outcome,
            "duration_us":rec.duration_us});
        if let Some(r) = &rec.reason {
            body["reason"] = json!(r);
        }
        if outcome == Outcome::Ok && rec.packets_sent > 0 {
            body["bytes_sent"] = json!(rec.bytes_sent);
        }
        if !data.is_null() {
            body["data"] = data;
        }
        if let Err(e) = log.emit("step", body) {
            log_err = Some(e);
            status = RunStatus::Failed;
            break;
        }
        if !matches!(step, Step::StateSet { .. } | Step::LogInfo { .. }) {
            // Long steps: make the log readable while the run goes on.
            let _ = log.flush();
        }
        if outcome != Outcome::Ok {
            if stopped(opts.interrupt) {
                status = RunStatus::Interrupted;
                break;
            }
            status = RunStatus::Failed;
            if !opts.keep_going {
                break;
            }
        }
    }
    let nft_errs = engine.nft.close();
    // Dropping the counters detaches their XDP programs.
    engine.xdp.clear();
    let ended_us = stamp::unix_us(SystemTime::now()).max(started_us);
    planfile.status = status;
    planfile.ended = Some(stamp::rfc3339(ended_us));
    planfile.ended_unix_us = Some(ended_us);
    let count = |o: Outcome| planfile.steps.iter().filter(|s| s.outcome == o).count();
    let end = json!({"ts":planfile.ended,"status":status,"ok":count(Outcome::Ok),
        "error":count(Outcome::Error),"refused":count(Outcome::Refused),
        "not_run":count(Outcome::NotRun),
        "cleanup_errors":nft_errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()});
    if log_err.is_none() {
        log_err = log.emit("run.end", end).and_then(|()| log.flush()).err();
    }
    write_json_atomic(&plan_path, &planfile)?;
    if let Some(e) = log_err {
        return Err(e);
    }
    Ok(RunReport {
        planfile,
        planfile_path: plan_path,
        event_log_path: log_path,
    })
}
