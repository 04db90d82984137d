//! Entering a named network namespace (`/run/netns/NAME`, as made by `ip netns add`)
//! for the current thread, and leaving it again.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Errors entering or leaving a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened (no such namespace, or no permission).
    #[error("netns {name}: cannot open {path}: {source}")]
    Open {
        /// Namespace name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// setns(2) failed (needs CAP_SYS_ADMIN).
    #[error("netns {name}: setns failed: {source} (needs root / CAP_SYS_ADMIN)")]
    Setns {
        /// Namespace name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    PathBuf::from(NETNS_DIR).join(name).exists()
}

/// While alive, the current thread is in another network namespace; dropping it
/// returns the thread to the namespace it was in before. Not `Send`: namespaces
/// are per thread.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
    previous: File,
    _not_send: std::marker::PhantomData<*const ()>,
}

fn setns(file: &File, name: &str) -> Result<(), NetnsError> {
    // SAFETY: setns takes a valid open fd (borrowed from `file`, alive for the
    // call) and a namespace type constant; it changes only this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetnsError::Setns {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl NetnsGuard {
    /// Moves the current thread into namespace `name` until the guard drops.
    pub fn enter(name: &str) -> Result<NetnsGuard, NetnsError> {
        let self_path = PathBuf::from("/proc/thread-self/ns/net");
        let previous = File::open(&self_path).map_err(|source| NetnsError::Open {
            name: "(current)".into(),
            path: self_path,
            source,
        })?;
        let path = PathBuf::from(NETNS_DIR).join(name);
        let target = File::open(&path).map_err(|source| NetnsError::Open {
            name: name.to_string(),
            path,
            source,
        })?;
        setns(&target, name)?;
        Ok(NetnsGuard {
            name: name.to_string(),
            previous,
            _not_send: std::marker::PhantomData,
        })
    }

    /// The namespace entered.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // Returning to a namespace we were already in cannot lack permission;
        // if it fails anyway the thread stays where it is, which the caller sees
        // in later socket errors.
        let _ = setns(&self.previous, "(previous)");
    }
}

/// Runs `f` with the current thread inside namespace `name`.
pub fn with_netns<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let _guard = NetnsGuard::enter(name)?;
    Ok(f())
}
