//! Ctrl-C during `pfs pasm run`: SIGINT sets a flag the runner polls, so an
//! interrupted run still removes its nftables tables and writes its planfile.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// The flag SIGINT sets once [`install`] has run.
pub fn flag() -> &'static AtomicBool {
    &INTERRUPTED
}

/// Installs the SIGINT handler for the rest of the process (a second Ctrl-C is
/// also only recorded; the run stops at its next check, at most ~50 ms later).
pub fn install() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we set
    // the handler to an `extern "C"` function that only stores to an atomic,
    // which is async-signal-safe; the old action pointer may be null.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
