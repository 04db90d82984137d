//! The store's few system calls that std does not wrap: `flock` and `getuid`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes an exclusive, non-blocking `flock` on `f`. `Ok(false)` when another open
/// file description holds it. The lock lives as long as `f` stays open.
pub fn try_lock_exclusive(f: &File) -> io::Result<bool> {
    // SAFETY: the fd is owned by `f`, which is open for the duration of the call;
    // flock takes no pointers.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Releases a `flock` held through `f`'s open file description, also for copies
/// of it that a concurrently forked child still holds until its exec.
pub fn unlock(f: &File) {
    // SAFETY: as in `try_lock_exclusive`; unlocking an unlocked fd is harmless.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
}

/// The real user id of this process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// This host's name (from the kernel), or `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
