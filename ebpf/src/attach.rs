//! Loading an embedded object and attaching its XDP program, with the mode policy.

use std::sync::Once;

use aya::Ebpf;
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};

use crate::EbpfError;

/// The XDP mode a program is attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Native (driver) mode, `XDP_FLAGS_DRV_MODE`.
    Native,
    /// Generic (skb) mode, `XDP_FLAGS_SKB_MODE`.
    Generic,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        })
    }
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }
}

/// Which mode to attach in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModeRequest {
    /// Native only; fail if the driver cannot.
    Native,
    /// Generic only.
    Generic,
    /// Native, else generic with a warning on stderr.
    NativeOrGeneric,
}

/// A loaded object with its program attached to one interface.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) ebpf: Ebpf,
    program: &'static str,
    link: Option<XdpLinkId>,
    pub(crate) mode: AttachMode,
    pub(crate) ifname: String,
}

/// Raises RLIMIT_MEMLOCK once (best effort). Kernels since 5.11 charge BPF memory
/// to the cgroup instead, so a failure here only matters on older kernels, where
/// map creation then fails with a clear EPERM.
fn raise_memlock() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads the rlimit struct we pass by reference, which is
        // valid for the call; it has no other effect on memory.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
    });
}

/// Checks an interface name and returns its index in this thread's namespace.
pub(crate) fn ifindex(ifname: &str) -> Result<u32, EbpfError> {
    let bad = |reason| EbpfError::BadInterface {
        ifname: ifname.to_string(),
        reason,
    };
    if ifname.is_empty() {
        return Err(bad("empty name"));
    }
    if ifname.len() > 15 {
        return Err(bad("longer than 15 bytes (IFNAMSIZ)"));
    }
    if ifname
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return Err(bad("contains NUL, '/' or whitespace"));
    }
    // No NUL inside, checked above.
    let c = std::ffi::CString::new(ifname).map_err(|_| bad("contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string alive for the call;
    // if_nametoindex only reads it.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(EbpfError::NoSuchInterface {
            ifname: ifname.to_string(),
        });
    }
    Ok(idx)
}

impl Attached {
    /// Loads `obj` and its program `program` (maps are created, nothing attached).
    pub(crate) fn load(
        object: &'static str,
        obj: &[u8],
        program: &'static str,
        ifname: &str,
    ) -> Result<Attached, EbpfError> {
        ifindex(ifname)?;
        raise_memlock();
        let ebpf = Ebpf::load(obj).map_err(|e| EbpfError::Object {
            object,
            source: Box::new(e),
        })?;
        let mut a = Attached {
            ebpf,
            program,
            link: None,
            mode: AttachMode::Native,
            ifname: ifname.to_string(),
        };
        a.xdp()?.load().map_err(|e| EbpfError::Load {
            program,
            source: Box::new(e),
        })?;
        Ok(a)
    }

    fn xdp(&mut self) -> Result<&mut Xdp, EbpfError> {
        let program = self.program;
        let missing = || EbpfError::Load {
            program,
            source: Box::new(aya::programs::ProgramError::UnexpectedProgramType),
        };
        let p = self.ebpf.program_mut(program).ok_or_else(missing)?;
        p.try_into().map_err(|e| EbpfError::Load {
            program,
            source: Box::new(e),
        })
    }

    /// Attaches per `req` (after the maps are filled).
    pub(crate) fn attach(&mut self, req: ModeRequest) -> Result<(), EbpfError> {
        let idx = ifindex(&self.ifname)?;
        let first = match req {
            ModeRequest::Native | ModeRequest::NativeOrGeneric => AttachMode::Native,
            ModeRequest::Generic => AttachMode::Generic,
        };
        match self.attach_mode(idx, first) {
            Ok(()) => Ok(()),
            Err(e) if req == ModeRequest::NativeOrGeneric => {
                eprintln!(
                    "pfs-ebpf: warning: {e}; falling back to generic (skb) mode, which is slower"
                );
                self.attach_mode(idx, AttachMode::Generic)
            }
            Err(e) => Err(e),
        }
    }

    fn attach_mode(&mut self, ifindex: u32, mode: AttachMode) -> Result<(), EbpfError> {
        let program = self.program;
        let ifname = self.ifname.clone();
        let link = self
            .xdp()?
            .attach_to_if_index(ifindex, mode.xdp_mode())
            .map_err(|e| EbpfError::Attach {
                program,
                ifname,
                mode,
                source: Box::new(e),
            })?;
        self.link = Some(link);
        self.mode = mode;
        Ok(())
    }

    /// The kernel's id of the loaded program.
    pub(crate) fn prog_id(&mut self) -> Option<u32> {
        self.xdp().ok()?.info().ok().map(|i| i.id())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(link) = self.link.take()
            && let Ok(x) = self.xdp()
        {
            // Dropping the Ebpf would detach too; doing it first makes the order
            // explicit. A device already gone has nothing left to detach.
            let _ = x.detach(link);
        }
    }
}
