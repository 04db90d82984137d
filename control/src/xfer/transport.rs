//! `pfs xfer send` / `pfs xfer recv`: the sans-I/O core (`iprog::proto`) driven
//! over one UDP socket. Every datagram is ≤ 1200 bytes.
//!
//! Backends: `std` (a `std::net::UdpSocket`, nonblocking loop) and, through the
//! `pfs_dataplane::io::Io` trait, `mmsg` (sendmmsg/recvmmsg), `uring` (io_uring)
//! and `xsk` (AF_XDP). `xsk` runs inside a namespace of a `pfs lab`: the lab and
//! its end are inferred from the local address (10.77.0.1 is end a, 10.77.0.2 end
//! b; the interface holding it names the lab), and the socket is opened and the
//! `redirect` XDP program attached the way `pfs linerate --backend xsk` does
//! (`crate::linerate::{lab_xsk_config, attach_redirect}`).

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pfs_dataplane::io::{self as pio, Backend, Io, IoConfig};
use pfs_dataplane::iprog::proto::{
    Config, FailReason, Receiver, ReceiverConfig, ReceiverState, ResumeState, Sender, SenderState,
    Stats,
};

use super::compile::{ProgramArgs, compile_file, describe};
use super::receipt::{self, Receipt};
use super::source::{Source, SourceArgs};
use super::{XferError, hex};
use crate::lab::{self, Lab};
use crate::linerate::{SetupError, XdpMode, attach_redirect, lab_xsk_config};
use crate::usage::bad;

/// Timer and test flags shared by send and recv.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkArgs {
    /// I/O backend: std (std::net::UdpSocket), mmsg (sendmmsg/recvmmsg), uring
    /// (io_uring) or xsk (AF_XDP, inside a `pfs lab` namespace; the lab is inferred
    /// from the local address), the last three from pfs_dataplane::io.
    #[arg(long, default_value = "mmsg")]
    pub backend: String,
    /// First retransmission timeout in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub rto_ms: u64,
    /// Give up after this many seconds without a valid frame from the peer.
    #[arg(long, default_value_t = 10)]
    pub idle_timeout_s: u64,
    /// Sender flow control: most windows sent beyond the highest one ACKed.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: u32,
    /// Receipts directory (default $PFS_RECEIPTS or ~/.local/state/pfs/receipts).
    #[arg(long)]
    pub receipts: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not store the receipt in the ASL store ($PFS_ASL, else
    /// $XDG_DATA_HOME/pfs/asl, else ~/.local/share/pfs/asl).
    #[arg(long)]
    pub no_asl: bool,
    /// ASL store for the receipt (default: as above).
    #[arg(long, conflicts_with = "no_asl")]
    pub asl_store: Option<PathBuf>,
    /// Test shim: drop this percentage of this side's outgoing datagrams.
    #[arg(long, default_value_t = 0.0, hide = true)]
    pub loss_percent: f64,
    /// Test shim (sender): vanish after sending this many WIN frames.
    #[arg(long, hide = true)]
    pub vanish_after: Option<u64>,
}

/// Arguments of `pfs xfer send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The file to send.
    pub file: PathBuf,
    /// The receiver's address (IP:PORT).
    #[arg(long)]
    pub to: String,
    /// Local address to bind.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub bind: String,
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// Arguments of `pfs xfer recv`.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    /// Address to listen on (IP:PORT).
    #[arg(long)]
    pub listen: String,
    /// Directory the verified file is written into.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Refuse transfers that carry RAW sections.
    #[arg(long)]
    pub strict: bool,
    /// Replace an existing file of the same name (otherwise the new one gets a
    /// `.<hash prefix>` suffix).
    #[arg(long)]
    pub force: bool,
    /// Largest object accepted, in bytes.
    #[arg(long, default_value_t = 8 << 30)]
    pub max_size: u64,
    /// Give up if no transfer starts within this many seconds (0: wait forever).
    #[arg(long, default_value_t = 0)]
    pub wait_s: u64,
    /// After DONE, keep answering the sender until it is quiet this long (ms).
    #[arg(long, default_value_t = 300)]
    pub linger_ms: u64,
    /// Resume from the state a failed receive saved (`DIR/.pfs-resume-*.json`):
    /// only the windows still missing are asked for.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// What a transfer reports (both sides).
#[derive(Debug, Clone, serde::Serialize)]
pub struct XferSummary {
    /// The receipt written.
    pub receipt: Receipt,
    /// Where it was written.
    pub receipt_path: PathBuf,
    /// Its key in the ASL store (hex), if stored there.
    pub receipt_asl_key: Option<String>,
    /// Sender only: seconds compiling (before the first datagram).
    pub compile_s: Option<f64>,
    /// The backend used.
    pub backend: String,
    /// How it ran (`Io::mode`, e.g. `copy ... need-wakeup` for xsk; `std` for std).
    pub backend_mode: String,
    /// Receiver only: datagrams from other addresses, ignored.
    pub foreign_datagrams: u64,
}

/// Which socket implementation drives the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Std,
    Io(Backend),
}

fn check_backend(b: &str) -> anyhow::Result<Kind> {
    match b {
        "std" => Ok(Kind::Std),
        o => match o.parse::<Backend>() {
            Ok(k) => {
                k.probe().map_err(|e| bad(format!("--backend {o}: {e}")))?;
                Ok(Kind::Io(k))
            }
            Err(_) => Err(bad(format!(
                "--backend {o:?}: unknown (expected mmsg, uring, xsk or std)"
            ))),
        },
    }
}

fn parse_addr(flag: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse()
        .map_err(|_| bad(format!("{flag} {s:?}: not an IP:PORT address")))
}

fn cfg(l: &LinkArgs) -> anyhow::Result<Config> {
    if l.rto_ms == 0 || l.idle_timeout_s == 0 || l.max_in_flight == 0 {
        return Err(bad(
            "--rto-ms, --idle-timeout-s and --max-in-flight must be at least 1",
        ));
    }
    if !(0.0..=100.0).contains(&l.loss_percent) {
        return Err(bad(format!(
            "--loss-percent {}: must be 0..=100",
            l.loss_percent
        )));
    }
    Ok(Config {
        rto: Duration::from_millis(l.rto_ms),
        max_rto: Duration::from_secs(1).max(Duration::from_millis(l.rto_ms)),
        idle_timeout: Duration::from_secs(l.idle_timeout_s),
        max_in_flight: l.max_in_flight,
    })
}

/// Test shim: drops a percentage of outgoing datagrams (xorshift, time-seeded).
struct Shim {
    loss: f64,
    rng: u64,
    dropped: u64,
}

impl Shim {
    fn new(loss: f64) -> Shim {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Shim {
            loss,
            rng: seed,
            dropped: 0,
        }
    }

    fn drops(&mut self) -> bool {
        if self.loss <= 0.0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let d = (self.rng % 1_000_000) as f64 / 10_000.0 < self.loss;
        self.dropped += u64::from(d);
        d
    }
}

/// A std UDP socket with a wait that does not spin.
struct Udp {
    sock: UdpSocket,
    nonblocking: bool,
}

impl Udp {
    fn bind(addr: SocketAddr) -> Result<Udp, XferError> {
        let sock = UdpSocket::bind(addr).map_err(|source| XferError::Net {
            what: "bind",
            source,
        })?;
        let s = socket2::SockRef::from(&sock);
        // Best effort: the kernel caps these at rmem_max / wmem_max.
        let _ = s.set_recv_buffer_size(8 << 20);
        let _ = s.set_send_buffer_size(8 << 20);
        sock.set_nonblocking(true)
            .map_err(|source| XferError::Net {
                what: "set_nonblocking",
                source,
            })?;
        Ok(Udp {
            sock,
            nonblocking: true,
        })
    }

    fn send(&mut self, buf: &[u8], to: SocketAddr) -> Result<(), XferError> {
        self.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match self.sock.send_to(buf, to) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        // A full send buffer for a second: treat as loss.
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
                // An ICMP error from an earlier datagram: the peer is not (yet) there.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
                Err(source) => {
                    return Err(XferError::Net {
                        what: "sendto",
                        source,
                    });
                }
            }
        }
    }

    fn set_nonblocking(&mut self, nb: bool) -> Result<(), XferError> {
        if self.nonblocking != nb {
            self.sock
                .set_nonblocking(nb)
                .map_err(|source| XferError::Net {
                    what: "set_nonblocking",
                    source,
                })?;
            self.nonblocking = nb;
        }
        Ok(())
    }

    /// One datagram: immediately (`wait` = None) or waiting up to `wait`.
    fn recv(
        &mut self,
        buf: &mut [u8],
        wait: Option<Duration>,
    ) -> Result<Option<(usize, SocketAddr)>, XferError> {
        match wait {
            None => self.set_nonblocking(true)?,
            Some(d) => {
                self.set_nonblocking(false)?;
                self.sock
                    .set_read_timeout(Some(d.max(Duration::from_micros(100))))
                    .map_err(|source| XferError::Net {
                        what: "set_read_timeout",
                        source,
                    })?;
            }
        }
        match self.sock.recv_from(buf) {
            Ok(x) => Ok(Some(x)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(XferError::Net {
                what: "recvfrom",
                source,
            }),
        }
    }
}

/// The socket under the driver: a std socket, or an `Io` backend (IPv4 only).
struct Link {
    shim: Shim,
    /// xsk: the attached redirect program (dropped, i.e. detached, before the
    /// socket) and a UDP socket holding the port so the kernel does not answer
    /// it with ICMP or give it to someone else.
    _xsk_hold: Option<(Box<dyn std::any::Any>, UdpSocket)>,
    sock: Sock,
}

/// Where an xsk end is: the lab, which end (a or b) and its AF_XDP settings.
fn xsk_lab_end(local: Ipv4Addr) -> anyhow::Result<(Lab, bool)> {
    let end_a = if local == lab::ADDR_A {
        true
    } else if local == lab::ADDR_B {
        false
    } else {
        return Err(bad(format!(
            "--backend xsk: local address {local} is not a pfs lab address ({} or {}); run inside a lab namespace (ip netns exec pfs-NAME-a|b ...)",
            lab::ADDR_A,
            lab::ADDR_B
        )));
    };
    let json = lab::ip::ip(&["-j", "addr", "show"])
        .map_err(|e| anyhow::Error::new(e).context("listing this namespace's addresses"))?;
    let ifaces = lab::ip::parse_addr_json(&json, "ip -j addr show")?;
    let want = local.to_string();
    let Some(iface) = ifaces
        .iter()
        .find(|i| i.addrs.iter().any(|a| a.local == want))
    else {
        return Err(bad(format!(
            "--backend xsk: no interface in this network namespace has {local}; run inside the lab namespace (ip netns exec pfs-NAME-{} ...)",
            if end_a { 'a' } else { 'b' }
        )));
    };
    let name = iface
        .ifname
        .strip_prefix("pfs")
        .and_then(|n| n.strip_suffix(if end_a { 'a' } else { 'b' }))
        .ok_or_else(|| {
            bad(format!(
                "--backend xsk: {local} is on {}, not a pfs lab veth (pfsNAMEa|b)",
                iface.ifname
            ))
        })?;
    let l = Lab::open(name).map_err(|e| {
        if e.is_usage() {
            bad(format!("--backend xsk: {e}"))
        } else {
            anyhow::Error::new(e).context("opening the lab")
        }
    })?;
    Ok((l, end_a))
}

/// The local address of an xsk sender: `bind`, or (unspecified) the lab end
/// facing `to`, and (port 0) a free port the kernel picks.
fn xsk_send_local(bind: SocketAddr, to: SocketAddr) -> anyhow::Result<SocketAddr> {
    let (SocketAddr::V4(b), SocketAddr::V4(t)) = (bind, to) else {
        return Err(bad("--backend xsk: IPv4 addresses only"));
    };
    let ip = if !b.ip().is_unspecified() {
        *b.ip()
    } else if *t.ip() == lab::ADDR_B {
        lab::ADDR_A
    } else if *t.ip() == lab::ADDR_A {
        lab::ADDR_B
    } else {
        return Err(bad(format!(
            "--backend xsk: --to {t} is not a pfs lab address ({} or {}); give --bind",
            lab::ADDR_A,
            lab::ADDR_B
        )));
    };
    Ok(SocketAddr::V4(SocketAddrV4::new(ip, b.port())))
}

enum Sock {
    Std(Udp),
    Io {
        io: Box<dyn Io>,
        queue: std::collections::VecDeque<(Vec<u8>, SocketAddr)>,
    },
}

impl Link {
    fn open(kind: Kind, addr: SocketAddr, loss: f64) -> anyhow::Result<Link> {
        let shim = Shim::new(loss);
        match kind {
            Kind::Std => Ok(Link {
                shim,
                _xsk_hold: None,
                sock: Sock::Std(Udp::bind(addr)?),
            }),
            Kind::Io(Backend::Xsk) => {
                let SocketAddr::V4(v4) = addr else {
                    return Err(bad(format!(
                        "--backend xsk: needs an IPv4 address, got {addr}"
                    )));
                };
                let (l, end_a) = xsk_lab_end(*v4.ip())?;
                // Hold the port (and learn it when 0 was asked for).
                let hold = UdpSocket::bind(v4).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        bad(format!("--backend xsk: address {v4} is already in use"))
                    } else {
                        anyhow::Error::new(XferError::Net {
                            what: "bind",
                            source: e,
                        })
                    }
                })?;
                let local = match hold.local_addr() {
                    Ok(SocketAddr::V4(a)) => a,
                    _ => v4,
                };
                let mut cfg = IoConfig::new(Backend::Xsk, local);
                cfg.max_payload = 1200;
                cfg.xsk = Some(lab_xsk_config(&l, end_a)?);
                let io = pio::open(&cfg).map_err(|e| {
                    if e.is_usage() {
                        bad(format!("--backend xsk: {e}"))
                    } else {
                        anyhow::Error::new(e)
                    }
                })?;
                let x = cfg.xsk.as_ref().map_or("", |x| x.ifname.as_str());
                let redirect = attach_redirect(x, XdpMode::Auto, local.port(), 0, io.raw_fd())
                    .map_err(SetupError::into_anyhow)?;
                Ok(Link {
                    shim,
                    _xsk_hold: Some((redirect, hold)),
                    sock: Sock::Io {
                        io,
                        queue: std::collections::VecDeque::new(),
                    },
                })
            }
            Kind::Io(b) => {
                let SocketAddr::V4(v4) = addr else {
                    return Err(bad(format!(
                        "--backend {b}: needs an IPv4 address, got {addr}"
                    )));
                };
                let mut cfg = IoConfig::new(b, v4);
                cfg.max_payload = 1200;
                let io = pio::open(&cfg).map_err(|e| {
                    if e.is_usage() {
                        bad(format!("--backend {b}: {e}"))
                    } else {
                        anyhow::Error::new(e)
                    }
                })?;
                Ok(Link {
                    shim,
                    _xsk_hold: None,
                    sock: Sock::Io {
                        io,
                        queue: std::collections::VecDeque::new(),
                    },
                })
            }
        }
    }

    /// How the socket runs, for the summary.
    fn mode(&self) -> String {
        match &self.sock {
            Sock::Std(_) => "std::net::UdpSocket".into(),
            Sock::Io { io, .. } => io.mode(),
        }
    }

    fn send(&mut self, buf: &[u8], to: SocketAddr) -> anyhow::Result<()> {
        if self.shim.drops() {
            return Ok(());
        }
        match &mut self.sock {
            Sock::Std(u) => Ok(u.send(buf, to)?),
            Sock::Io { io, .. } => {
                let SocketAddr::V4(dst) = to else {
                    return Err(bad(format!("{to}: the io backends are IPv4 only")));
                };
                let deadline = Instant::now() + Duration::from_secs(1);
                loop {
                    let k = io.send(dst, 1, buf.len(), &mut |_, b| b.copy_from_slice(buf))?;
                    if k == 1 || Instant::now() > deadline {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        }
    }

    fn recv(
        &mut self,
        buf: &mut [u8],
        wait: Option<Duration>,
    ) -> anyhow::Result<Option<(usize, SocketAddr)>> {
        match &mut self.sock {
            Sock::Std(u) => Ok(u.recv(buf, wait)?),
            Sock::Io { io, queue } => {
                if queue.is_empty() {
                    io.recv(64, wait.unwrap_or(Duration::ZERO), &mut |d, src| {
                        queue.push_back((d.to_vec(), SocketAddr::V4(src)));
                    })?;
                }
                Ok(queue.pop_front().map(|(d, src)| {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    (n, src)
                }))
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn session_id() -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(
        &SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes(),
    );
    let b = h.finalize();
    u32::from_le_bytes([
        b.as_bytes()[0],
        b.as_bytes()[1],
        b.as_bytes()[2],
        b.as_bytes()[3],
    ])
}

fn bar(total: u64, show: bool) -> Option<indicatif::ProgressBar> {
    show.then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} windows {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    })
}

fn gbps(bytes: u64, s: f64) -> f64 {
    bytes as f64 / s.max(1e-9) / 1e9
}

fn ratio(obj: u64, wire: u64) -> f64 {
    if wire == 0 {
        0.0
    } else {
        obj as f64 / wire as f64
    }
}

/// Sends `args.file`; returns the summary (also on failure, as an error after
/// the receipt is written).
pub fn send(args: &SendArgs, progress: bool) -> anyhow::Result<XferSummary> {
    send_observed(args, progress, &mut |_, _| {})
}

/// [`send`], calling `observe(stats, windows in the object)` about every 100 ms
/// while the transfer runs (the edge server's `GET /transfers/{id}`).
pub fn send_observed(
    args: &SendArgs,
    progress: bool,
    observe: &mut dyn FnMut(&Stats, u64),
) -> anyhow::Result<XferSummary> {
    let kind = check_backend(&args.link.backend)?;
    let to = parse_addr("--to", &args.to)?;
    let bind = parse_addr("--bind", &args.bind)?;
    let cfg = cfg(&args.link)?;
    let compiled = compile_file(&args.file, &args.program, false)?;
    let compile_s = compiled.report.source_s + compiled.report.index_s + compiled.report.compile_s;
    let report = compiled.report.clone();
    let bind = if kind == Kind::Io(Backend::Xsk) {
        xsk_send_local(bind, to)?
    } else {
        bind
    };
    let mut udp = Link::open(kind, bind, args.link.loss_percent)?;
    let start = Instant::now();
    let session = session_id();
    let mut s = Sender::new(cfg, session, compiled.transfer, start)
        .map_err(|e| bad(format!("{}: {e}", args.file.display())))?;
    let total = s.transfer().windows.len() as u64;
    let pb = bar(total, progress);
    let mut buf = Vec::with_capacity(1200);
    let mut rbuf = vec![0u8; 2048];
    let mut last_draw = start;
    let mut last_observed = start;
    loop {
        let now = Instant::now();
        if now.duration_since(last_observed) > Duration::from_millis(100) {
            last_observed = now;
            observe(s.stats(), total);
        }
        let mut sent = 0;
        while sent < 64 && s.poll_transmit(now, &mut buf) {
            udp.send(&buf, to)?;
            sent += 1;
        }
        if args
            .link
            .vanish_after
            .is_some_and(|n| s.stats().windows >= n)
        {
            return Err(anyhow::anyhow!(
                "test shim: sender vanished after {} windows",
                s.stats().windows
            ));
        }
        let mut got = 0;
        while let Some((n, from)) = udp.recv(&mut rbuf, None)? {
            if from == to {
                s.handle_datagram(Instant::now(), &rbuf[..n]);
            }
            got += 1;
            if got > 256 {
                break;
            }
        }
        s.handle_timeout(Instant::now());
        if s.is_finished() {
            break;
        }
        if let Some(b) = &pb
            && now.duration_since(last_draw) > Duration::from_millis(100)
        {
            last_draw = now;
            let st = s.stats();
            b.set_position(st.windows.min(total));
            let done = report.size * st.windows.min(total) / total.max(1);
            b.set_message(format!(
                "{:.2} GB/s (object bytes sent), tx_ratio {:.2}, {} retransmits",
                gbps(done, now.duration_since(start).as_secs_f64()),
                ratio(report.size, st.bytes_out + st.bytes_in),
                st.retransmits
            ));
        }
        if sent == 0 && got == 0 {
            let wait = s
                .poll_timeout()
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_millis(100));
            if let Some((n, from)) = udp.recv(&mut rbuf, Some(wait))?
                && from == to
            {
                s.handle_datagram(Instant::now(), &rbuf[..n]);
            }
        }
    }
    if let Some(b) = &pb {
        b.finish_and_clear();
    }
    let dur = start.elapsed().as_secs_f64();
    let st: Stats = *s.stats();
    let outcome = match s.state() {
        SenderState::Done => "ok".to_string(),
        SenderState::Failed(r) => format!("failed: {r}"),
        other => format!("failed: ended in {other:?}"),
    };
    let r = Receipt {
        role: "send",
        session: format!("{session:08x}"),
        outcome,
        name: s.transfer().mfst.name.clone(),
        object_blake3: report.blake3.clone(),
        object_size: report.size,
        source: report.source.clone(),
        blob_fingerprint: report.source_fingerprint.clone(),
        mode: report.mode.clone(),
        windows: total,
        wire_bytes_sent: st.bytes_out,
        wire_bytes_received: st.bytes_in,
        retransmits: st.retransmits,
        duration_s: dur,
        goodput_gbps: if s.state() == SenderState::Done {
            gbps(report.size, dur)
        } else {
            0.0
        },
        tx_ratio: ratio(report.size, st.bytes_out + st.bytes_in),
        written_to: None,
        unix_time: unix_now(),
        stats: st,
    };
    let dir = args
        .link
        .receipts
        .clone()
        .unwrap_or_else(receipt::default_dir);
    let receipt_path = receipt::write(&dir, &r)?;
    let receipt_asl_key = receipt::store_default(&receipt_path, &args.link).map(|k| k.to_hex());
    if let SenderState::Failed(reason) = s.state() {
        return Err(
            anyhow::Error::new(XferError::Failed(reason)).context(format!(
                "{} (receipt {})",
                args.file.display(),
                receipt_path.display()
            )),
        );
    }
    if !args.link.json {
        eprintln!("{}", describe(&report));
    }
    Ok(XferSummary {
        receipt: r,
        receipt_path,
        receipt_asl_key,
        compile_s: Some(compile_s),
        backend: args.link.backend.clone(),
        backend_mode: udp.mode(),
        foreign_datagrams: 0,
    })
}

fn print_summary(s: &XferSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
        return Ok(());
    }
    let r = &s.receipt;
    println!(
        "{} {} ({} bytes, blake3 {}): {} in {:.3} s, goodput {:.3} GB/s, wire {} B out / {} B in, tx_ratio {:.2}, {} retransmits{}{}; backend {} ({}); receipt {}",
        r.role,
        r.name,
        r.object_size,
        &r.object_blake3[..16.min(r.object_blake3.len())],
        r.outcome,
        r.duration_s,
        r.goodput_gbps,
        r.wire_bytes_sent,
        r.wire_bytes_received,
        r.tx_ratio,
        r.retransmits,
        s.compile_s
            .map(|c| format!(", compile {c:.3} s"))
            .unwrap_or_default(),
        r.written_to
            .as_ref()
            .map(|p| format!(", wrote {}", p.display()))
            .unwrap_or_default(),
        s.backend,
        s.backend_mode,
        s.receipt_path.display()
    );
    Ok(())
}

/// Runs `pfs xfer send`.
pub fn run_send(args: &SendArgs) -> anyhow::Result<()> {
    let progress = std::io::stderr().is_terminal() && !args.link.json;
    let s = send(args, progress)?;
    print_summary(&s, args.link.json)
}

/// Writes the verified object into `dir`, beside-then-rename; never replaces a
/// file unless `force` (the new one then gets a `.<hash prefix>` suffix).
fn write_object(
    dir: &Path,
    name: &str,
    hash: &str,
    bytes: &[u8],
    force: bool,
) -> Result<PathBuf, XferError> {
    let short = hash.get(..16).unwrap_or("object");
    let base = if name.is_empty() {
        format!("{short}.bin")
    } else {
        name.to_string()
    };
    let mut target = dir.join(&base);
    if target.exists() && !force {
        target = dir.join(format!("{base}.{short}"));
    }
    let tmp = dir.join(format!(".{base}.pfs-part-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|source| XferError::File {
        path: tmp.clone(),
        what: "writing the received object",
        source,
    })?;
    std::fs::rename(&tmp, &target).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        XferError::File {
            path: target.clone(),
            what: "renaming the received object into place",
            source,
        }
    })?;
    Ok(target)
}

/// Receives one transfer.
pub fn recv(args: &RecvArgs, progress: bool) -> anyhow::Result<XferSummary> {
    let kind = check_backend(&args.link.backend)?;
    let listen = parse_addr("--listen", &args.listen)?;
    let cfg = cfg(&args.link)?;
    if !args.out.is_dir() {
        return Err(bad(format!(
            "--out {}: not a directory",
            args.out.display()
        )));
    }
    let src = Source::open(&args.source)?;
    let mut udp = Link::open(kind, listen, args.link.loss_percent)?;
    let rcfg = ReceiverConfig {
        proto: cfg,
        max_object: args.max_size,
        accept_raw: !args.strict,
    };
    let opened = Instant::now();
    let mut written_to: Option<PathBuf> = None;
    let mut r = match &args.resume {
        Some(f) => Receiver::resume(rcfg, src.bytes(), src.fingerprint, load_resume(f)?, opened),
        None => Receiver::new(rcfg, src.bytes(), src.fingerprint, opened),
    };
    let mut peer: Option<SocketAddr> = None;
    let mut started: Option<Instant> = None;
    let mut finished_at: Option<Instant> = None;
    let mut last_rx = opened;
    let mut buf = Vec::with_capacity(1200);
    let mut rbuf = vec![0u8; 2048];
    let mut pb: Option<indicatif::ProgressBar> = None;
    let mut last_draw = opened;
    let linger = Duration::from_millis(args.linger_ms);
    let mut foreign = 0u64;
    loop {
        let mut got = 0;
        while let Some((n, from)) = udp.recv(&mut rbuf, None)? {
            let now = Instant::now();
            match peer {
                Some(p) if p != from => {
                    foreign += 1;
                    continue;
                }
                _ => {}
            }
            r.handle_datagram(now, &rbuf[..n]);
            last_rx = now;
            if peer.is_none() && r.session().is_some() {
                peer = Some(from);
                started = Some(now);
            }
            got += 1;
            if got >= 256 {
                break;
            }
        }
        let now = Instant::now();
        r.handle_timeout(now);
        if let Some(p) = peer {
            while r.poll_transmit(now, &mut buf) {
                udp.send(&buf, p)?;
            }
        }
        if r.is_finished() {
            finished_at.get_or_insert(now);
            // Write the verified object now; linger only to answer the sender.
            if let Some(obj) = r.take_object() {
                let m = r.manifest().map(|m| (m.name.clone(), hex(&m.object_hash)));
                let (name, hash) = m.unwrap_or_default();
                written_to = Some(write_object(&args.out, &name, &hash, &obj, args.force)?);
            }
            if matches!(r.state(), ReceiverState::Failed(_)) || now.duration_since(last_rx) > linger
            {
                break;
            }
        }
        if started.is_none()
            && args.wait_s > 0
            && now.duration_since(opened).as_secs() >= args.wait_s
        {
            return Err(anyhow::anyhow!(
                "no transfer arrived on {listen} within {} s",
                args.wait_s
            ));
        }
        if let Some(m) = r.manifest()
            && progress
        {
            let b = pb.get_or_insert_with(|| {
                bar(u64::from(m.windows), true).unwrap_or_else(indicatif::ProgressBar::hidden)
            });
            if now.duration_since(last_draw) > Duration::from_millis(100) {
                last_draw = now;
                let (have, want) = r.progress();
                let st = r.stats();
                let el = started.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
                b.set_position(have);
                b.set_message(format!(
                    "{:.2} GB/s, tx_ratio {:.2}",
                    gbps(m.object_size * have / want.max(1), el),
                    ratio(
                        m.object_size * have / want.max(1),
                        st.bytes_in + st.bytes_out
                    )
                ));
            }
        }
        if got == 0 {
            let t = r
                .poll_timeout()
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(now)
                })
                .min(Duration::from_millis(100));
            // Wait for the next datagram (or the next timer) without spinning.
            if let Some((n, from)) = udp.recv(&mut rbuf, Some(t))? {
                let now = Instant::now();
                if peer.is_none_or(|p| p == from) {
                    r.handle_datagram(now, &rbuf[..n]);
                    last_rx = now;
                    if peer.is_none() && r.session().is_some() {
                        peer = Some(from);
                        started = Some(now);
                    }
                } else {
                    foreign += 1;
                }
            }
        }
    }
    if let Some(b) = &pb {
        b.finish_and_clear();
    }
    let start = started.unwrap_or(opened);
    let dur = finished_at
        .unwrap_or_else(Instant::now)
        .duration_since(start)
        .as_secs_f64();
    let st = *r.stats();
    let (name, size, hash, windows) =
        r.manifest()
            .map_or((String::new(), 0, String::new(), 0), |m| {
                (
                    m.name.clone(),
                    m.object_size,
                    hex(&m.object_hash),
                    u64::from(m.windows),
                )
            });
    let mode = r
        .preface()
        .map_or("", |p| if p.mode == 2 { "offs" } else { "pvrt" })
        .to_string();
    let state = r.state();
    let outcome = match state {
        ReceiverState::Done => "ok".to_string(),
        ReceiverState::Failed(f) => format!("failed: {f}"),
        other => format!("failed: ended in {other:?}"),
    };
    let rc = Receipt {
        role: "recv",
        session: r.session().map_or(String::new(), |s| format!("{s:08x}")),
        outcome,
        name,
        object_blake3: hash,
        object_size: size,
        source: src.kind.to_string(),
        blob_fingerprint: hex(&src.fingerprint),
        mode,
        windows,
        wire_bytes_sent: st.bytes_out,
        wire_bytes_received: st.bytes_in,
        retransmits: st.duplicate_windows,
        duration_s: dur,
        goodput_gbps: if written_to.is_some() {
            gbps(size, dur)
        } else {
            0.0
        },
        tx_ratio: ratio(size, st.bytes_in + st.bytes_out),
        written_to,
        unix_time: unix_now(),
        stats: st,
    };
    let dir = args
        .link
        .receipts
        .clone()
        .unwrap_or_else(receipt::default_dir);
    let receipt_path = receipt::write(&dir, &rc)?;
    let receipt_asl_key = receipt::store_default(&receipt_path, &args.link).map(|k| k.to_hex());
    if let ReceiverState::Failed(reason) = state {
        let saved = match (reason, r.resume_state()) {
            (FailReason::PeerVanished, Some(st)) => Some(save_resume(&args.out, &st)?),
            _ => None,
        };
        return Err(
            anyhow::Error::new(XferError::Failed(reason)).context(format!(
                "receipt {}{}",
                receipt_path.display(),
                saved
                    .map(|p| format!("; resume with --resume {}", p.display()))
                    .unwrap_or_default()
            )),
        );
    }
    Ok(XferSummary {
        receipt: rc,
        receipt_path,
        receipt_asl_key,
        compile_s: None,
        backend: args.link.backend.clone(),
        backend_mode: udp.mode(),
        foreign_datagrams: foreign,
    })
}

/// Runs `pfs xfer recv`.
pub fn run_recv(args: &RecvArgs) -> anyhow::Result<()> {
    let progress = std::io::stderr().is_terminal() && !args.link.json;
    let s = recv(args, progress)?;
    print_summary(&s, args.link.json)
}

/// The resume file: the key and the held windows as ranges; the bytes are in
/// the `.part` file beside it (`specs/udp-transfer.md` §4.3).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ResumeFile {
    blob_fingerprint: String,
    mode: u8,
    object_hash: String,
    object_size: u64,
    windows: u32,
    /// `(first, count)` ranges of windows held.
    held: Vec<(u32, u32)>,
    /// The partial object.
    part: PathBuf,
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let v = pfs_dataplane::specvec::unhex(s)?;
    v.try_into().ok()
}

fn save_resume(dir: &Path, st: &ResumeState) -> anyhow::Result<PathBuf> {
    let (fp, mode, oh, size, windows) = st.key;
    let tag = &hex(&oh)[..16];
    let part = dir.join(format!(".pfs-resume-{tag}.part"));
    std::fs::write(&part, &st.object).map_err(|source| XferError::File {
        path: part.clone(),
        what: "writing the partial object",
        source,
    })?;
    let mut held = Vec::new();
    let mut i = 0usize;
    while i < st.have.len() {
        if !st.have[i] {
            i += 1;
            continue;
        }
        let a = i;
        while i < st.have.len() && st.have[i] {
            i += 1;
        }
        held.push((a as u32, (i - a) as u32));
    }
    let f = ResumeFile {
        blob_fingerprint: hex(&fp),
        mode,
        object_hash: hex(&oh),
        object_size: size,
        windows,
        held,
        part,
    };
    let p = dir.join(format!(".pfs-resume-{tag}.json"));
    std::fs::write(&p, serde_json::to_vec_pretty(&f)?).map_err(|source| XferError::File {
        path: p.clone(),
        what: "writing the resume state",
        source,
    })?;
    Ok(p)
}

fn load_resume(p: &Path) -> anyhow::Result<ResumeState> {
    let bad_file = |what: &str| bad(format!("--resume {}: {what}", p.display()));
    let text = std::fs::read(p).map_err(|e| bad_file(&e.to_string()))?;
    let f: ResumeFile =
        serde_json::from_slice(&text).map_err(|e| bad_file(&format!("not a resume file: {e}")))?;
    let fp = unhex32(&f.blob_fingerprint).ok_or_else(|| bad_file("bad blob_fingerprint"))?;
    let oh = unhex32(&f.object_hash).ok_or_else(|| bad_file("bad object_hash"))?;
    let object =
        std::fs::read(&f.part).map_err(|e| bad_file(&format!("{}: {e}", f.part.display())))?;
    if object.len() as u64 != f.object_size {
        return Err(bad_file("the .part file has the wrong size"));
    }
    let mut have = vec![false; f.windows as usize];
    for (a, n) in f.held {
        let end = a as usize + n as usize;
        if n == 0 || end > have.len() {
            return Err(bad_file("a held range is outside the window count"));
        }
        have[a as usize..end].iter_mut().for_each(|h| *h = true);
    }
    Ok(ResumeState {
        key: (fp, f.mode, oh, f.object_size, f.windows),
        have,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn xsk_sender_address_faces_the_peer() {
        let b = a("0.0.0.0:0");
        assert_eq!(
            xsk_send_local(b, a("10.77.0.2:7000")).unwrap(),
            a("10.77.0.1:0")
        );
        assert_eq!(
            xsk_send_local(b, a("10.77.0.1:7000")).unwrap(),
            a("10.77.0.2:0")
        );
        assert_eq!(
            xsk_send_local(a("10.77.0.1:5"), a("192.0.2.1:7000")).unwrap(),
            a("10.77.0.1:5")
        );
        let e = xsk_send_local(b, a("192.0.2.1:7000")).unwrap_err();
        assert!(e.to_string().contains("--to 192.0.2.1:7000"), "{e}");
        assert!(xsk_send_local(a("[::]:0"), a("[::1]:7")).is_err());
    }

    #[test]
    fn xsk_outside_a_lab_is_refused() {
        let e = xsk_lab_end(Ipv4Addr::LOCALHOST).unwrap_err();
        assert!(e.to_string().contains("not a pfs lab address"), "{e}");
        assert!(e.downcast_ref::<crate::usage::UsageError>().is_some());
        assert!(check_backend("dpdk").is_err());
    }
}
