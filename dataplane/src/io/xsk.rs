//! AF_XDP backend on one interface queue, built on `s2n-quic-xdp`'s UMEM and
//! rings: a UMEM of [`FRAMES`] frames of [`FRAME_SIZE`] bytes, half given to the
//! fill ring for receiving, half kept for transmitting; RX, TX, fill and completion
//! rings; `XDP_USE_NEED_WAKEUP`. Binding asks for zero-copy first and falls back to
//! copy mode when the driver refuses (veth: `EOPNOTSUPP`); [`Io::mode`] says which.
//!
//! Frames are Ethernet/IPv4/UDP built by [`super::frame`]. Receiving needs an XDP
//! program that redirects the wanted UDP port into an XSKMAP holding this socket
//! (`pfs_ebpf::Redirect`, with [`Io::raw_fd`]); that is the caller's job.

use std::ffi::CString;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use s2n_quic_xdp::if_xdp::{Address, RxTxDescriptor, UmemDescriptor, XdpFlags};
use s2n_quic_xdp::{ring, socket, syscall, umem::Umem};

use super::frame::{self, UdpFrameRepr};
use super::{Backend, Io, IoConfig, IoError, XskConfig, sys};

/// Bytes per UMEM frame.
pub const FRAME_SIZE: u32 = 2048;
/// UMEM frames (half RX, half TX): 16 MiB (root is exempt from RLIMIT_MEMLOCK for it).
pub const FRAMES: u32 = 8192;
/// Entries per ring.
const RING: u32 = FRAMES / 2;
/// Frames the kernel transmits per wakeup in copy mode (its TX_BATCH_SIZE),
/// unless `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+) raised it.
const COPY_TX_BUDGET: usize = 32;
/// `XDP_MAX_TX_SKB_BUDGET` socket option (SOL_XDP), Linux 6.17+.
const XDP_MAX_TX_SKB_BUDGET: i32 = 9;
/// The copy-mode TX budget asked for with it.
const WANT_TX_BUDGET: usize = 256;

/// Whether this kernel has AF_XDP and we may open such sockets.
pub fn probe() -> Result<(), IoError> {
    sys::probe_af_xdp().map_err(|e| IoError::Unsupported {
        backend: Backend::Xsk,
        reason: match e.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => "kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)".into(),
            Some(libc::EPERM | libc::EACCES) => {
                "opening an AF_XDP socket needs CAP_NET_RAW (run as root)".into()
            }
            _ => format!("socket(AF_XDP): {e}"),
        },
    })
}

/// The AF_XDP backend.
pub struct Xsk {
    // Rings first: they unmap before the socket closes and the UMEM goes.
    rx: ring::Rx,
    tx: ring::Tx,
    fill: ring::Fill,
    comp: ring::Completion,
    umem: Umem,
    fd: socket::Fd,
    free: Vec<UmemDescriptor>,
    refill: Vec<u64>,
    local: SocketAddrV4,
    local_mac: [u8; 6],
    peer_mac: [u8; 6],
    ifname: String,
    queue: u32,
    zerocopy: bool,
    tx_budget: usize,
    ident: u16,
    pending_tx: usize,
    foreign: u64,
}

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk")
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("zerocopy", &self.zerocopy)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

fn sys_err(call: &'static str) -> impl Fn(std::io::Error) -> IoError {
    move |e| IoError::sys(Backend::Xsk, call, e)
}

struct Parts {
    rx: ring::Rx,
    tx: ring::Tx,
    fill: ring::Fill,
    comp: ring::Completion,
    umem: Umem,
    fd: socket::Fd,
}

/// Socket, UMEM and rings, bound to `ifindex`/`queue` with `flags`.
fn build(ifindex: u32, queue: u32, flags: XdpFlags) -> Result<Parts, IoError> {
    let fd = socket::Fd::open().map_err(sys_err("socket(AF_XDP)"))?;
    let umem = Umem::builder();
    let umem = s2n_quic_xdp::umem::Builder {
        frame_size: FRAME_SIZE,
        frame_count: FRAMES,
        ..umem
    }
    .build()
    .map_err(sys_err("mmap UMEM"))?;
    fd.attach_umem(&umem).map_err(sys_err("XDP_UMEM_REG"))?;
    let offsets = syscall::offsets(&fd).map_err(sys_err("XDP_MMAP_OFFSETS"))?;
    let fill = ring::Fill::new(fd.clone(), &offsets, RING).map_err(sys_err("fill ring"))?;
    let comp =
        ring::Completion::new(fd.clone(), &offsets, RING).map_err(sys_err("completion ring"))?;
    let rx = ring::Rx::new(fd.clone(), &offsets, RING).map_err(sys_err("RX ring"))?;
    let tx = ring::Tx::new(fd.clone(), &offsets, RING).map_err(sys_err("TX ring"))?;
    let mut addr = Address {
        flags,
        ifindex,
        queue_id: queue,
        ..Address::default()
    };
    // A socket closed just before on this queue releases its buffer pool from a
    // kernel work item, so a quick re-bind can see EBUSY: retry for up to 1 s.
    let mut tries = 0;
    loop {
        match syscall::bind(&fd, &mut addr) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(IoError::sys(Backend::Xsk, "bind(AF_XDP)", e)),
        }
    }
    Ok(Parts {
        rx,
        tx,
        fill,
        comp,
        umem,
        fd,
    })
}

impl Xsk {
    /// Opens an AF_XDP socket on `cfg.xsk.ifname` queue `cfg.xsk.queue` (in the
    /// calling thread's namespace). Frames are sent from `cfg.local` to the peer MAC.
    pub fn open(cfg: &IoConfig) -> Result<Xsk, IoError> {
        let Some(x) = cfg.xsk.as_ref() else {
            return Err(IoError::Config {
                backend: Backend::Xsk,
                what: "needs an interface (lab) to bind to".into(),
            });
        };
        let XskConfig {
            ifname,
            queue,
            zerocopy,
            peer_mac,
        } = x.clone();
        if CString::new(ifname.clone()).is_err() {
            return Err(IoError::Config {
                backend: Backend::Xsk,
                what: format!("bad interface name {ifname:?}"),
            });
        }
        let no_such_if = |e: std::io::Error| IoError::Config {
            backend: Backend::Xsk,
            what: format!("interface {ifname}: {e}"),
        };
        let ifindex = sys::ifindex(&ifname).map_err(no_such_if)?;
        let local_mac = sys::hwaddr(&ifname).map_err(no_such_if)?;
        let wake = XdpFlags::USE_NEED_WAKEUP;
        let (parts, zc) = match zerocopy {
            Some(true) => (build(ifindex, queue, wake | XdpFlags::ZEROCOPY)?, true),
            Some(false) => (build(ifindex, queue, wake | XdpFlags::COPY)?, false),
            None => match build(ifindex, queue, wake | XdpFlags::ZEROCOPY) {
                Ok(p) => (p, true),
                Err(IoError::Sys { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EPROTONOSUPPORT)
                    ) =>
                {
                    (build(ifindex, queue, wake | XdpFlags::COPY)?, false)
                }
                Err(e) => return Err(e),
            },
        };
        let Parts {
            rx,
            tx,
            mut fill,
            comp,
            umem,
            fd,
        } = parts;
        let frames: Vec<UmemDescriptor> = umem.frames().collect();
        let (rx_frames, tx_frames) = frames.split_at(RING as usize);
        // Give the RX half to the kernel.
        let avail = fill.acquire(RING) as usize;
        let mut given = 0;
        {
            let (head, tail) = fill.data();
            for (slot, d) in head.iter_mut().chain(tail.iter_mut()).zip(rx_frames) {
                if given == avail {
                    break;
                }
                *slot = *d;
                given += 1;
            }
        }
        fill.release(given as u32);
        // Raise the copy-mode frames per wakeup where the kernel allows it.
        let tx_budget = match sys::setsockopt_int(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            WANT_TX_BUDGET as i32,
        ) {
            Ok(()) => WANT_TX_BUDGET,
            Err(_) => COPY_TX_BUDGET,
        };
        Ok(Xsk {
            rx,
            tx,
            fill,
            comp,
            umem,
            fd,
            free: tx_frames.to_vec(),
            refill: Vec::with_capacity(RING as usize),
            local: cfg.local,
            local_mac,
            peer_mac,
            ifname,
            queue,
            zerocopy: zc,
            tx_budget,
            ident: 0,
            pending_tx: 0,
            foreign: 0,
        })
    }

    /// Takes completed TX frames back.
    fn reap(&mut self) {
        let n = self.comp.acquire(1) as usize;
        if n == 0 {
            return;
        }
        let (head, tail) = self.comp.data();
        for d in head.iter().chain(tail.iter()).take(n) {
            let base = d.address - d.address % FRAME_SIZE as u64;
            self.free.push(UmemDescriptor { address: base });
        }
        self.comp.release(n as u32);
        self.pending_tx = self.pending_tx.saturating_sub(n);
    }

    fn kick_tx(&mut self, frames: usize) -> Result<(), IoError> {
        if !self.tx.needs_wakeup() {
            return Ok(());
        }
        let calls = if self.zerocopy {
            1
        } else {
            frames.div_ceil(self.tx_budget).max(1)
        };
        for _ in 0..calls {
            match syscall::wake_tx(&self.fd) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR)
                    ) => {}
                Err(e) => return Err(IoError::sys(Backend::Xsk, "sendto (TX wakeup)", e)),
            }
        }
        Ok(())
    }

    /// Frames received for another address or port (not ours, skipped).
    pub fn foreign(&self) -> u64 {
        self.foreign
    }
}

impl Io for Xsk {
    fn backend(&self) -> Backend {
        Backend::Xsk
    }

    fn mode(&self) -> String {
        format!(
            "{} {}q{}, need-wakeup, {} x {} B UMEM, TX budget {}",
            if self.zerocopy { "zero-copy" } else { "copy" },
            self.ifname,
            self.queue,
            FRAMES,
            FRAME_SIZE,
            self.tx_budget
        )
    }

    fn local(&self) -> SocketAddrV4 {
        self.local
    }

    fn send(
        &mut self,
        dst: SocketAddrV4,
        n: usize,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [u8]),
    ) -> Result<usize, IoError> {
        if len > frame::MAX_UDP_PAYLOAD {
            return Err(IoError::Config {
                backend: Backend::Xsk,
                what: format!("payload {len} exceeds {}", frame::MAX_UDP_PAYLOAD),
            });
        }
        self.reap();
        if self.free.is_empty() {
            // Everything is in flight: let the kernel transmit, then reap.
            self.kick_tx(self.pending_tx)?;
            self.reap();
        }
        let want = n.min(self.free.len());
        let room = self.tx.acquire(want as u32) as usize;
        let k = want.min(room);
        if k == 0 {
            return Ok(0);
        }
        let mut repr = UdpFrameRepr {
            src_mac: self.local_mac,
            dst_mac: self.peer_mac,
            src: self.local,
            dst,
            ident: 0,
            payload_len: len,
        };
        let mut descs = [RxTxDescriptor::default(); 64];
        let k = k.min(descs.len());
        for (i, slot) in descs.iter_mut().enumerate().take(k) {
            let Some(d) = self.free.pop() else { break };
            repr.ident = self.ident;
            self.ident = self.ident.wrapping_add(1);
            // SAFETY: `d` came off our free list, so no other descriptor or the
            // kernel refers to this frame until we put it on the TX ring below;
            // it is in bounds (made by `umem.frames()`).
            let buf = unsafe { self.umem.get_mut(d) };
            let flen = repr.emit(buf).map_err(|e| IoError::Config {
                backend: Backend::Xsk,
                what: format!("frame: {e}"),
            })?;
            fill(i, &mut buf[frame::HEADERS..flen]);
            *slot = d.with_len(flen as u32);
        }
        {
            let (head, tail) = self.tx.data();
            for (slot, d) in head.iter_mut().chain(tail.iter_mut()).zip(&descs[..k]) {
                *slot = *d;
            }
        }
        self.tx.release(k as u32);
        self.pending_tx += k;
        self.kick_tx(k)?;
        Ok(k)
    }

    fn recv(
        &mut self,
        max: usize,
        timeout: Duration,
        on: &mut dyn FnMut(&[u8], SocketAddrV4),
    ) -> Result<usize, IoError> {
        let mut n = self.rx.acquire(1) as usize;
        if n == 0 {
            if timeout.is_zero() && !self.fill.needs_wakeup() {
                return Ok(0);
            }
            // poll() wakes the driver when the fill ring needs it, then waits.
            sys::poll_once(self.fd.as_raw_fd(), timeout).map_err(sys_err("poll"))?;
            n = self.rx.acquire(1) as usize;
            if n == 0 {
                return Ok(0);
            }
        }
        let n = n.min(max).min(RING as usize);
        let mut got = 0;
        self.refill.clear();
        {
            let (head, tail) = self.rx.data();
            for d in head.iter().chain(tail.iter()).take(n) {
                // SAFETY: the kernel handed this frame to us on the RX ring and
                // will not touch it until we give it back on the fill ring below.
                let bytes = unsafe { self.umem.get(*d) };
                match UdpFrameRepr::parse(bytes) {
                    Ok((repr, payload)) if repr.dst.port() == self.local.port() => {
                        on(payload, repr.src);
                        got += 1;
                    }
                    _ => self.foreign += 1,
                }
                self.refill.push(d.address - d.address % FRAME_SIZE as u64);
            }
        }
        self.rx.release(n as u32);
        let room = self.fill.acquire(n as u32) as usize;
        let k = room.min(self.refill.len());
        {
            let (head, tail) = self.fill.data();
            for (slot, a) in head
                .iter_mut()
                .chain(tail.iter_mut())
                .zip(&self.refill[..k])
            {
                *slot = UmemDescriptor { address: *a };
            }
        }
        self.fill.release(k as u32);
        Ok(got)
    }

    fn drops(&self) -> u64 {
        syscall::statistics(&self.fd)
            .map(|s| s.rx_dropped + s.tx_invalid_descriptors)
            .unwrap_or(0)
    }

    fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
