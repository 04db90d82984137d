//! `sendmmsg(2)` / `recvmmsg(2)` on one UDP socket: one syscall per batch.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::{Backend, Io, IoConfig, IoError, sys};

/// Bytes per buffer slot (a datagram up to the largest payload we allow).
const SLOT: usize = 2048;

/// The mmsg backend.
#[derive(Debug)]
pub struct Mmsg {
    sock: UdpSocket,
    local: SocketAddrV4,
    batch: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs`/`names` only ever point into
// this struct's own heap buffers and are rewritten before every syscall; no other
// owner shares them, so moving the whole struct to another thread is sound.
unsafe impl Send for Mmsg {}

impl Mmsg {
    /// Binds `cfg.local` and allocates `cfg.batch` buffers.
    pub fn open(cfg: &IoConfig) -> Result<Mmsg, IoError> {
        let sock = super::bind_udp(Backend::Mmsg, cfg.local)?;
        let local = match sock.local_addr() {
            Ok(std::net::SocketAddr::V4(a)) => a,
            Ok(_) => cfg.local,
            Err(e) => return Err(IoError::sys(Backend::Mmsg, "getsockname", e)),
        };
        tune_buffers(sock.as_raw_fd());
        let batch = cfg.batch;
        let zero_name = sys::sockaddr_in(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));
        Ok(Mmsg {
            sock,
            local,
            batch,
            bufs: vec![0u8; batch * SLOT],
            names: vec![zero_name; batch],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                batch
            ],
            // SAFETY: mmsghdr is a plain C struct; all-zero is a valid empty header.
            hdrs: vec![unsafe { std::mem::zeroed() }; batch],
        })
    }

    /// Points header `i` at buffer slot `i` (length `len`) and name `i`.
    fn wire(&mut self, i: usize, len: usize) {
        self.iovs[i] = libc::iovec {
            iov_base: self.bufs[i * SLOT..].as_mut_ptr().cast(),
            iov_len: len,
        };
        let h = &mut self.hdrs[i];
        h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in).cast();
        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_hdr.msg_iov = &mut self.iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }
}

/// Socket buffer bytes asked for: about 3,600 full-size datagrams.
pub const SOCKET_BUFFER: i32 = 8 << 20;

/// Asks for [`SOCKET_BUFFER`]-byte socket buffers: with `SO_RCVBUFFORCE` /
/// `SO_SNDBUFFORCE` when privileged (past `rmem_max`/`wmem_max`), else the plain
/// options, which the kernel caps. Failure only means smaller buffers.
pub(crate) fn tune_buffers(fd: RawFd) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if sys::setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
            let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
        }
    }
}

impl Io for Mmsg {
    fn backend(&self) -> Backend {
        Backend::Mmsg
    }

    fn mode(&self) -> String {
        format!("sendmmsg/recvmmsg, batch {}", self.batch)
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
        let name = sys::sockaddr_in(dst);
        for i in 0..n {
            fill(i, &mut self.bufs[i * SLOT..i * SLOT + len]);
            self.names[i] = name;
            self.wire(i, len);
        }
        let mut done = 0;
        while done < n {
            match sys::sendmmsg(self.sock.as_raw_fd(), &mut self.hdrs[done..n]) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR)
                    ) =>
                {
                    break;
                }
                Err(_) if done > 0 => break,
                Err(e) => return Err(IoError::sys(Backend::Mmsg, "sendmmsg", e)),
            }
        }
        Ok(done)
    }

    fn recv(
        &mut self,
        max: usize,
        timeout: Duration,
        on: &mut dyn FnMut(&[u8], SocketAddrV4),
    ) -> Result<usize, IoError> {
        let n = max.min(self.batch);
        for i in 0..n {
            self.wire(i, SLOT);
        }
        let fd = self.sock.as_raw_fd();
        let mut got = sys::recvmmsg_nowait(fd, &mut self.hdrs[..n])
            .map_err(|e| IoError::sys(Backend::Mmsg, "recvmmsg", e))?;
        if got == 0 {
            if timeout.is_zero() {
                return Ok(0);
            }
            let readable = sys::poll_readable(fd, timeout)
                .map_err(|e| IoError::sys(Backend::Mmsg, "poll", e))?;
            if !readable {
                return Ok(0);
            }
            got = sys::recvmmsg_nowait(fd, &mut self.hdrs[..n])
                .map_err(|e| IoError::sys(Backend::Mmsg, "recvmmsg", e))?;
        }
        for i in 0..got {
            let len = (self.hdrs[i].msg_len as usize).min(SLOT);
            let Some(src) = sys::from_sockaddr_in(&self.names[i]) else {
                continue;
            };
            on(&self.bufs[i * SLOT..i * SLOT + len], src);
        }
        Ok(got)
    }

    fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
