//! io_uring backend: a batch of `IORING_OP_SEND` entries submitted with one
//! `io_uring_enter`, and one multishot `IORING_OP_RECVMSG` that takes buffers from a
//! provided buffer ring (`IORING_REGISTER_PBUF_RING`), so receiving costs no
//! syscall per packet. Sends and receives use separate rings.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, types};
use memmap2::MmapMut;

use super::{Backend, Io, IoConfig, IoError, sys};

/// Bytes per send slot.
const SLOT: usize = 2048;
/// Provided receive buffers (a power of two, at most 32768).
const RX_BUFS: u16 = 4096;
/// Bytes per provided receive buffer (recvmsg_out header, name, payload).
const RX_BUF: usize = 2048;
/// Buffer group id of the receive ring.
const BGID: u16 = 7;
/// user_data of the multishot receive.
const RECV_UD: u64 = u64::MAX;
/// user_data of its cancellation.
const CANCEL_UD: u64 = u64::MAX - 1;

/// Whether io_uring with `send`, `recvmsg` and extended wait arguments works here.
pub fn probe() -> Result<(), IoError> {
    let unsupported = |reason: String| IoError::Unsupported {
        backend: Backend::Uring,
        reason,
    };
    let ring = IoUring::new(8).map_err(|e| unsupported(format!("io_uring_setup: {e}")))?;
    if !ring.params().is_feature_ext_arg() {
        return Err(unsupported(
            "kernel lacks IORING_FEAT_EXT_ARG (5.11+)".into(),
        ));
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| unsupported(format!("IORING_REGISTER_PROBE: {e}")))?;
    for (code, name) in [
        (opcode::Send::CODE, "IORING_OP_SEND"),
        (opcode::RecvMsg::CODE, "IORING_OP_RECVMSG"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
    ] {
        if !probe.is_supported(code) {
            return Err(unsupported(format!("kernel lacks {name}")));
        }
    }
    Ok(())
}

/// The receive side: a ring, a provided buffer ring and its buffers.
struct RxRing {
    ring: IoUring,
    /// Ring entries (`io_uring_buf`, 16 bytes each), page aligned.
    entries: MmapMut,
    /// `RX_BUFS` buffers of `RX_BUF` bytes.
    bufs: MmapMut,
    /// The msghdr template the multishot recvmsg was armed with (boxed: the
    /// kernel reads it when the entry is issued and `RecvMsgOut::parse` needs it).
    msghdr: Box<libc::msghdr>,
    tail: u16,
    armed: bool,
}

impl std::fmt::Debug for RxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxRing")
            .field("tail", &self.tail)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

// SAFETY: the boxed msghdr holds null pointers only (no name/iov buffers of its
// own); the mappings are owned by this struct; io_uring rings may be used from any
// one thread at a time.
unsafe impl Send for RxRing {}

impl RxRing {
    fn new() -> Result<RxRing, IoError> {
        let err = |call, e| IoError::sys(Backend::Uring, call, e);
        let ring = IoUring::builder()
            .setup_cqsize(8192)
            .build(8)
            .map_err(|e| err("io_uring_setup", e))?;
        let entries =
            MmapMut::map_anon(RX_BUFS as usize * std::mem::size_of::<types::BufRingEntry>())
                .map_err(|e| err("mmap", e))?;
        let bufs = MmapMut::map_anon(RX_BUFS as usize * RX_BUF).map_err(|e| err("mmap", e))?;
        // SAFETY: `entries` is page aligned, holds RX_BUFS entries and lives as
        // long as the ring: it is unregistered in Drop before the mapping goes.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries.as_ptr() as u64, RX_BUFS, BGID, 0)
                .map_err(|e| err("IORING_REGISTER_PBUF_RING", e))?;
        }
        // SAFETY: msghdr is a plain C struct; all-zero is valid.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let mut rx = RxRing {
            ring,
            entries,
            bufs,
            msghdr,
            tail: 0,
            armed: false,
        };
        for bid in 0..RX_BUFS {
            rx.push_buffer(bid);
        }
        rx.publish_tail();
        Ok(rx)
    }

    fn entries_ptr(&mut self) -> *mut types::BufRingEntry {
        self.entries.as_mut_ptr().cast()
    }

    /// Puts buffer `bid` back at the ring's tail (published by `publish_tail`).
    fn push_buffer(&mut self, bid: u16) {
        let slot = (self.tail & (RX_BUFS - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * RX_BUF as u64;
        let base = self.entries_ptr();
        // SAFETY: `slot < RX_BUFS`, so the entry lies inside `entries`; the kernel
        // reads entries only up to the published tail, which does not cover this
        // slot until `publish_tail`.
        let entry = unsafe { &mut *base.add(slot) };
        entry.set_addr(addr);
        entry.set_len(RX_BUF as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the tail to the kernel (release store).
    fn publish_tail(&mut self) {
        let base = self.entries_ptr();
        // SAFETY: the tail field overlays the first entry's `resv`, inside the
        // mapping, 2-byte aligned; the kernel reads it with acquire semantics, so
        // an atomic release store is the protocol.
        let tail = unsafe { &*(types::BufRingEntry::tail(base) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn arm(&mut self, fd: RawFd) -> Result<(), IoError> {
        let sqe = opcode::RecvMsgMulti::new(types::Fd(fd), &*self.msghdr, BGID)
            .build()
            .user_data(RECV_UD);
        // SAFETY: the entry references `msghdr` (boxed, alive as long as the ring)
        // and buffers from the registered ring, both valid until cancel in Drop.
        unsafe {
            self.ring
                .submission()
                .push(&sqe)
                .map_err(|_| IoError::Config {
                    backend: Backend::Uring,
                    what: "receive submission queue full".into(),
                })?;
        }
        self.armed = true;
        Ok(())
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        if self.armed {
            let cancel = opcode::AsyncCancel::new(RECV_UD)
                .build()
                .user_data(CANCEL_UD);
            // SAFETY: a cancel entry references no memory.
            let pushed = unsafe { self.ring.submission().push(&cancel).is_ok() };
            if pushed {
                let ts = types::Timespec::new().nsec(100_000_000);
                let args = types::SubmitArgs::new().timespec(&ts);
                for _ in 0..16 {
                    let _ = self.ring.submitter().submit_with_args(1, &args);
                    let mut done = false;
                    for cqe in self.ring.completion() {
                        if cqe.user_data() == RECV_UD && !cqueue::more(cqe.flags()) {
                            done = true;
                        }
                    }
                    if done {
                        break;
                    }
                }
            }
        }
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}

/// The io_uring backend.
pub struct Uring {
    sock: UdpSocket,
    local: SocketAddrV4,
    batch: usize,
    tx: IoUring,
    tx_bufs: Vec<u8>,
    names: Vec<libc::sockaddr_in>,
    rx: Option<RxRing>,
    drops: u64,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("local", &self.local)
            .field("batch", &self.batch)
            .field("rx", &self.rx)
            .finish_non_exhaustive()
    }
}

impl Uring {
    /// Binds `cfg.local` and sets up the send ring (the receive ring is made on
    /// the first receive).
    pub fn open(cfg: &IoConfig) -> Result<Uring, IoError> {
        let sock = super::bind_udp(Backend::Uring, cfg.local)?;
        let local = match sock.local_addr() {
            Ok(std::net::SocketAddr::V4(a)) => a,
            Ok(_) => cfg.local,
            Err(e) => return Err(IoError::sys(Backend::Uring, "getsockname", e)),
        };
        super::mmsg::tune_buffers(sock.as_raw_fd());
        let entries = (cfg.batch as u32).next_power_of_two().max(8);
        let tx = IoUring::builder()
            .setup_cqsize(entries * 2)
            .build(entries)
            .map_err(|e| IoError::sys(Backend::Uring, "io_uring_setup", e))?;
        let zero = sys::sockaddr_in(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));
        Ok(Uring {
            sock,
            local,
            batch: cfg.batch,
            tx,
            tx_bufs: vec![0u8; cfg.batch * SLOT],
            names: vec![zero; cfg.batch],
            rx: None,
            drops: 0,
        })
    }
}

impl Io for Uring {
    fn backend(&self) -> Backend {
        Backend::Uring
    }

    fn mode(&self) -> String {
        format!(
            "send batch {}, multishot recvmsg, {} x {} B provided buffers",
            self.batch, RX_BUFS, RX_BUF
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
        let n = n.min(self.batch);
        let len = len.min(SLOT);
        let fd = types::Fd(self.sock.as_raw_fd());
        let name = sys::sockaddr_in(dst);
        let mut pushed = 0;
        for i in 0..n {
            fill(i, &mut self.tx_bufs[i * SLOT..i * SLOT + len]);
            self.names[i] = name;
            let sqe = opcode::Send::new(fd, self.tx_bufs[i * SLOT..].as_ptr(), len as u32)
                .dest_addr((&self.names[i] as *const libc::sockaddr_in).cast())
                .dest_addr_len(std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
                .build()
                .user_data(i as u64);
            // SAFETY: the entry points at `tx_bufs[i]` and `names[i]`, which are
            // not touched again until every completion of this batch is reaped
            // below (submit_and_wait waits for all `pushed`).
            if unsafe { self.tx.submission().push(&sqe) }.is_err() {
                break;
            }
            pushed += 1;
        }
        let mut reaped = 0;
        while reaped < pushed {
            match self.tx.submit_and_wait(pushed - reaped) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(IoError::sys(Backend::Uring, "io_uring_enter", e)),
            }
            for cqe in self.tx.completion() {
                reaped += 1;
                if cqe.result() < 0 {
                    self.drops += 1;
                }
            }
        }
        Ok(pushed)
    }

    fn recv(
        &mut self,
        max: usize,
        timeout: Duration,
        on: &mut dyn FnMut(&[u8], SocketAddrV4),
    ) -> Result<usize, IoError> {
        if self.rx.is_none() {
            self.rx = Some(RxRing::new()?);
        }
        let fd = self.sock.as_raw_fd();
        let Some(rx) = self.rx.as_mut() else {
            return Ok(0);
        };
        let mut pushed = false;
        if !rx.armed {
            rx.arm(fd)?;
            pushed = true;
        }
        if rx.ring.completion().is_empty() && !timeout.is_zero() {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            match rx.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(e) => return Err(IoError::sys(Backend::Uring, "io_uring_enter", e)),
            }
        } else if pushed {
            rx.ring
                .submit()
                .map_err(|e| IoError::sys(Backend::Uring, "io_uring_enter", e))?;
        }
        let mut got = 0;
        let mut recycled = false;
        let mut failure = None;
        let bufs_ptr = rx.bufs.as_ptr();
        let mut cq = rx.ring.completion();
        let mut to_recycle: [u16; 64] = [0; 64];
        let mut nrec = 0;
        while got < max && nrec < to_recycle.len() {
            let Some(cqe) = cq.next() else { break };
            if cqe.user_data() != RECV_UD {
                continue;
            }
            let flags = cqe.flags();
            if !cqueue::more(flags) {
                rx.armed = false;
            }
            let res = cqe.result();
            if res < 0 {
                if res == -libc::ENOBUFS {
                    self.drops += 1;
                } else if res != -libc::ECANCELED {
                    failure = Some(std::io::Error::from_raw_os_error(-res));
                }
                continue;
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                continue;
            };
            if bid >= RX_BUFS {
                continue;
            }
            let len = (res as usize).min(RX_BUF);
            // SAFETY: the kernel handed buffer `bid` to us with this completion and
            // will not write it again until we push it back to the ring below; it
            // lies inside `bufs` (bid < RX_BUFS, len <= RX_BUF).
            let buf =
                unsafe { std::slice::from_raw_parts(bufs_ptr.add(bid as usize * RX_BUF), len) };
            if let Ok(out) = types::RecvMsgOut::parse(buf, &rx.msghdr) {
                if out.is_payload_truncated() {
                    self.drops += 1;
                } else if let Some(src) = sys::sockaddr_in_from_bytes(out.name_data()) {
                    on(out.payload_data(), src);
                    got += 1;
                }
            }
            to_recycle[nrec] = bid;
            nrec += 1;
        }
        drop(cq);
        for bid in &to_recycle[..nrec] {
            rx.push_buffer(*bid);
            recycled = true;
        }
        if recycled {
            rx.publish_tail();
        }
        if let Some(e) = failure {
            return Err(IoError::sys(Backend::Uring, "recvmsg (multishot)", e));
        }
        Ok(got)
    }

    fn drops(&self) -> u64 {
        self.drops
    }

    fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
