//! Every raw syscall the I/O backends make, in one place: `sendmmsg`/`recvmmsg`,
//! `poll`, `clock_gettime`, interface ioctls, socket options and the stop-signal
//! handler. (The `io-uring` and `s2n-quic-xdp` crates make their own ring syscalls.)

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A `sockaddr_in` for `addr` (network byte order fields).
pub fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The IPv4 address in a `sockaddr_in`, or `None` for another family.
pub fn from_sockaddr_in(sa: &libc::sockaddr_in) -> Option<SocketAddrV4> {
    (i32::from(sa.sin_family) == libc::AF_INET).then(|| {
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
            u16::from_be(sa.sin_port),
        )
    })
}

/// Parses a `sockaddr_in` out of raw bytes (as io_uring hands it back).
pub fn sockaddr_in_from_bytes(bytes: &[u8]) -> Option<SocketAddrV4> {
    if bytes.len() < 8 {
        return None;
    }
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    if i32::from(family) != libc::AF_INET {
        return None;
    }
    let port = u16::from_be_bytes([bytes[2], bytes[3]]);
    let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
    Some(SocketAddrV4::new(ip, port))
}

/// `sendmmsg(fd, hdrs, 0)`: returns how many messages the kernel accepted.
///
/// Every header's pointers (name, iovec, buffers) must point into memory that is
/// alive and readable for the call; the caller builds them from borrowed buffers.
pub fn sendmmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let n = u32::try_from(hdrs.len()).unwrap_or(u32::MAX);
    // SAFETY: `hdrs` is a valid slice of `n` initialised mmsghdr; their name and
    // iovec pointers reference buffers the caller keeps alive across this call
    // (documented contract above); the kernel only reads them (and writes msg_len).
    let rc = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// `recvmmsg(fd, hdrs, MSG_DONTWAIT)`: returns how many messages arrived (0 when
/// none were waiting).
///
/// Every header's pointers must point into memory that is alive and writable.
pub fn recvmmsg_nowait(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let n = u32::try_from(hdrs.len()).unwrap_or(u32::MAX);
    // SAFETY: `hdrs` is a valid slice of `n` mmsghdr whose name and iovec pointers
    // reference writable buffers of the stated lengths that the caller keeps alive
    // for the call; a null timeout is allowed.
    let rc = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

/// Waits until `fd` is readable or `timeout` passes. `true` when readable.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd on the stack, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}

/// `poll(POLLIN)` with a zero timeout on a raw fd (for AF_XDP wakeups).
pub fn poll_once(fd: RawFd, timeout: Duration) -> io::Result<()> {
    poll_readable(fd, timeout).map(drop)
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall on x86-64).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has used, in nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a valid i32 on the stack, its length is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ifreq(ifname: &str) -> io::Result<libc::ifreq> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {ifname:?}"),
        ));
    }
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn ioctl_ifreq(ifname: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    let mut req = ifreq(ifname)?;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| {
        // A namespace without any address still has AF_INET sockets; binding
        // port 0 cannot fail for lack of ports in practice.
        std::net::UdpSocket::bind("127.0.0.1:0")
    })?;
    use std::os::fd::AsRawFd;
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name; the request is
    // one of the SIOCGIF* reads that only write into `req`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

/// The hardware (MAC) address of `ifname` in the calling thread's namespace.
pub fn hwaddr(ifname: &str) -> io::Result<[u8; 6]> {
    let req = ioctl_ifreq(ifname, libc::SIOCGIFHWADDR)?;
    // SAFETY: after SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// The MTU of `ifname` in the calling thread's namespace.
pub fn mtu(ifname: &str) -> io::Result<u32> {
    let req = ioctl_ifreq(ifname, libc::SIOCGIFMTU)?;
    // SAFETY: after SIOCGIFMTU the union holds `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as u32)
}

/// The interface index of `ifname` in the calling thread's namespace.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let req = ioctl_ifreq(ifname, libc::SIOCGIFINDEX)?;
    // SAFETY: after SIOCGIFINDEX the union holds `ifru_ifindex`.
    let idx = unsafe { req.ifr_ifru.ifru_ifindex };
    Ok(idx.max(0) as u32)
}

/// Opens and immediately closes an `AF_XDP` socket: says whether the kernel has
/// XDP sockets and we may open them.
pub fn probe_af_xdp() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the fd is closed right after.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened by us and is closed exactly once.
    unsafe { libc::close(fd) };
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs a SIGINT/SIGTERM handler that sets a flag (async-signal-safe: one
/// atomic store) and returns the flag. The first Ctrl-C stops a run cleanly; the
/// handler stays installed for the life of the process.
pub fn stop_flag() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is zeroable; we set a handler that only performs an
        // atomic store, which is async-signal-safe; the previous action is not needed.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    &STOP
}

/// Whether the process runs with euid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 47000);
        assert_eq!(from_sockaddr_in(&sockaddr_in(a)), Some(a));
        let sa = sockaddr_in(a);
        // SAFETY: sockaddr_in is plain old data; we view its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&sa as *const libc::sockaddr_in).cast::<u8>(),
                std::mem::size_of::<libc::sockaddr_in>(),
            )
        };
        assert_eq!(sockaddr_in_from_bytes(bytes), Some(a));
        assert_eq!(sockaddr_in_from_bytes(&bytes[..4]), None);
    }

    #[test]
    fn loopback_has_an_mtu_and_index() {
        assert!(mtu("lo").unwrap() >= 1500);
        assert!(ifindex("lo").unwrap() >= 1);
        assert!(hwaddr("pfs-no-such-if0").is_err());
        assert!(mtu("").is_err());
    }

    #[test]
    fn clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
