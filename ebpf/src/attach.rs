//! Loading an embedded object and attaching its XDP program, with the mode policy.

use std::sync::Once;
use std::time::{Duration, Instant};

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

/// How long the steps of an attach took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttachTimings {
    /// Parsing the object, creating its maps, verifying and loading the program.
    pub load: Duration,
    /// Filling the maps.
    pub fill: Duration,
    /// Attaching (including a failed native try before a fallback).
    pub attach: Duration,
}

/// The result of a BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRun {
    /// The XDP action returned (1 `XDP_DROP`, 2 `XDP_PASS`, 4 `XDP_REDIRECT`).
    pub action: u32,
    /// The kernel's measured average duration of one run.
    pub duration: Duration,
}

/// A loaded object with its program attached to one interface.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) ebpf: Ebpf,
    program: &'static str,
    link: Option<XdpLinkId>,
    pub(crate) mode: AttachMode,
    pub(crate) ifname: String,
    pub(crate) timings: AttachTimings,
    loaded_at: Instant,
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
    /// `ifname` (checked to exist) is where `attach` will attach; `None` loads a
    /// program that is only ever run with [`Attached::test_run`].
    pub(crate) fn load(
        object: &'static str,
        obj: &[u8],
        program: &'static str,
        ifname: Option<&str>,
    ) -> Result<Attached, EbpfError> {
        if let Some(ifname) = ifname {
            ifindex(ifname)?;
        }
        let t0 = Instant::now();
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
            ifname: ifname.unwrap_or_default().to_string(),
            timings: AttachTimings::default(),
            loaded_at: t0,
        };
        a.xdp()?.load().map_err(|e| EbpfError::Load {
            program,
            source: Box::new(e),
        })?;
        a.timings.load = t0.elapsed();
        a.loaded_at = Instant::now();
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
        let t0 = Instant::now();
        self.timings.fill = t0.duration_since(self.loaded_at);
        let r = self.attach_inner(req);
        self.timings.attach = t0.elapsed();
        r
    }

    fn attach_inner(&mut self, req: ModeRequest) -> Result<(), EbpfError> {
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
                detail: crate::error_chain(&e),
                source: Box::new(e),
            })?;
        self.link = Some(link);
        self.mode = mode;
        Ok(())
    }

    /// Runs the loaded program `repeat` times on `frame` with BPF_PROG_TEST_RUN
    /// (maps are updated as for a real packet).
    pub(crate) fn test_run(&mut self, frame: &[u8], repeat: u32) -> Result<TestRun, EbpfError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program = self.program;
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let r = self.xdp()?.test_run(opts).map_err(|e| EbpfError::TestRun {
            program,
            detail: crate::error_chain(&e),
        })?;
        Ok(TestRun {
            action: r.return_value,
            duration: r.duration,
        })
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
