//! Batched UDP send and receive behind one small trait, [`Io`], with three
//! backends: [`mmsg`] (`sendmmsg`/`recvmmsg`), [`uring`] (io_uring batched sends,
//! multishot `recvmsg` with a provided buffer ring) and [`xsk`] (AF_XDP: UMEM,
//! fill/completion/RX/TX rings, needs-wakeup). [`probe`] says which the running
//! kernel supports; [`open`] refuses an unsupported one with a clear error.
//!
//! Raw syscalls live in [`sys`]; [`frame`] builds and parses the Ethernet/IPv4/UDP
//! frames AF_XDP needs (pure, no I/O).

pub mod frame;
pub mod mmsg;
pub mod sys;
pub mod uring;
pub mod xsk;

use std::fmt;
use std::net::SocketAddrV4;
use std::str::FromStr;
use std::time::Duration;

/// An I/O backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `sendmmsg(2)` / `recvmmsg(2)` on a UDP socket.
    Mmsg,
    /// io_uring: batched `send`, multishot `recvmsg` with a provided buffer ring.
    Uring,
    /// AF_XDP socket on one interface queue.
    Xsk,
}

impl Backend {
    /// All backends, in the order they are reported.
    pub const ALL: [Backend; 3] = [Backend::Mmsg, Backend::Uring, Backend::Xsk];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mmsg => "mmsg",
            Backend::Uring => "uring",
            Backend::Xsk => "xsk",
        }
    }

    /// Whether the running kernel (and our privileges) support this backend.
    pub fn probe(self) -> Result<(), IoError> {
        match self {
            Backend::Mmsg => Ok(()),
            Backend::Uring => uring::probe(),
            Backend::Xsk => xsk::probe(),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = IoError;
    fn from_str(s: &str) -> Result<Backend, IoError> {
        match s {
            "mmsg" => Ok(Backend::Mmsg),
            "uring" => Ok(Backend::Uring),
            "xsk" => Ok(Backend::Xsk),
            other => Err(IoError::UnknownBackend(other.to_string())),
        }
    }
}

/// What each backend's probe said.
pub fn probe() -> Vec<(Backend, Result<(), IoError>)> {
    Backend::ALL.iter().map(|b| (*b, b.probe())).collect()
}

/// Errors of the I/O backends.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A backend name that does not exist.
    #[error("unknown backend {0:?} (expected mmsg, uring or xsk)")]
    UnknownBackend(String),
    /// The running kernel or our privileges do not allow this backend.
    #[error("backend {backend} is not supported here: {reason}")]
    Unsupported {
        /// Which backend.
        backend: Backend,
        /// Why.
        reason: String,
    },
    /// The local UDP port is already taken.
    #[error("{backend}: address {addr} is already in use")]
    AddrInUse {
        /// Which backend.
        backend: Backend,
        /// The address asked for.
        addr: SocketAddrV4,
    },
    /// A configuration the backend cannot honour.
    #[error("{backend}: {what}")]
    Config {
        /// Which backend.
        backend: Backend,
        /// What is wrong.
        what: String,
    },
    /// A syscall failed.
    #[error("{backend}: {call} failed: {source}")]
    Sys {
        /// Which backend.
        backend: Backend,
        /// Which call.
        call: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl IoError {
    /// Whether the error comes from the user's input (unknown backend, port taken,
    /// unsupported backend, impossible configuration) rather than from a failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            IoError::UnknownBackend(_)
                | IoError::Unsupported { .. }
                | IoError::AddrInUse { .. }
                | IoError::Config { .. }
        )
    }

    pub(crate) fn sys(backend: Backend, call: &'static str, source: std::io::Error) -> IoError {
        IoError::Sys {
            backend,
            call,
            source,
        }
    }
}

/// AF_XDP settings (only for [`Backend::Xsk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskConfig {
    /// Interface to bind to (in the calling thread's namespace).
    pub ifname: String,
    /// Its queue.
    pub queue: u32,
    /// Ask for zero-copy; `None` tries zero-copy and falls back to copy mode
    /// (reported by [`Io::mode`]).
    pub zerocopy: Option<bool>,
    /// MAC address frames are sent to.
    pub peer_mac: [u8; 6],
}

/// How to open a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoConfig {
    /// Which backend.
    pub backend: Backend,
    /// Local address to bind (and, for xsk, the source address of frames and the
    /// destination address frames are accepted for).
    pub local: SocketAddrV4,
    /// Most datagrams per call.
    pub batch: usize,
    /// Largest UDP payload sent or received.
    pub max_payload: usize,
    /// AF_XDP settings.
    pub xsk: Option<XskConfig>,
}

impl IoConfig {
    /// A config for `backend` bound at `local`, batch 64, payloads up to 1472 bytes.
    pub fn new(backend: Backend, local: SocketAddrV4) -> IoConfig {
        IoConfig {
            backend,
            local,
            batch: 64,
            max_payload: 1472,
            xsk: None,
        }
    }
}

/// Batched UDP send and receive on one local address. `Send`: a backend may be
/// opened on one thread (e.g. inside a namespace) and driven from another.
pub trait Io: Send {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// How it runs (e.g. `copy, need-wakeup` for xsk), for reports.
    fn mode(&self) -> String;
    /// The bound local address.
    fn local(&self) -> SocketAddrV4;
    /// Sends up to `n` datagrams of `len` bytes each to `dst`; `fill(i, buf)`
    /// writes datagram `i` (its `buf` is exactly `len` bytes). Returns how many the
    /// kernel accepted, in order (datagrams `0..k`); the rest may be retried.
    fn send(
        &mut self,
        dst: SocketAddrV4,
        n: usize,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [u8]),
    ) -> Result<usize, IoError>;
    /// Receives up to `max` datagrams, waiting at most `timeout` for the first,
    /// and calls `on(payload, source)` for each. Returns how many arrived.
    fn recv(
        &mut self,
        max: usize,
        timeout: Duration,
        on: &mut dyn FnMut(&[u8], SocketAddrV4),
    ) -> Result<usize, IoError>;
    /// Packets the backend dropped or could not take so far (e.g. AF_XDP ring
    /// drops, io_uring buffer exhaustion).
    fn drops(&self) -> u64 {
        0
    }
    /// The raw socket fd (AF_XDP: to register in an XSKMAP).
    fn raw_fd(&self) -> std::os::fd::RawFd;
}

/// Opens the backend `cfg.backend`, after checking the kernel supports it.
pub fn open(cfg: &IoConfig) -> Result<Box<dyn Io>, IoError> {
    cfg.backend.probe()?;
    if cfg.batch == 0 || cfg.batch > 1024 {
        return Err(IoError::Config {
            backend: cfg.backend,
            what: format!("batch {} must be 1..=1024", cfg.batch),
        });
    }
    if cfg.max_payload == 0 || cfg.max_payload > frame::MAX_UDP_PAYLOAD {
        return Err(IoError::Config {
            backend: cfg.backend,
            what: format!(
                "payload size {} must be 1..={}",
                cfg.max_payload,
                frame::MAX_UDP_PAYLOAD
            ),
        });
    }
    Ok(match cfg.backend {
        Backend::Mmsg => Box::new(mmsg::Mmsg::open(cfg)?),
        Backend::Uring => Box::new(uring::Uring::open(cfg)?),
        Backend::Xsk => Box::new(xsk::Xsk::open(cfg)?),
    })
}

/// Binds a UDP socket for `backend`, mapping "address in use" to its own error.
pub(crate) fn bind_udp(
    backend: Backend,
    local: SocketAddrV4,
) -> Result<std::net::UdpSocket, IoError> {
    std::net::UdpSocket::bind(local).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            IoError::AddrInUse {
                backend,
                addr: local,
            }
        } else {
            IoError::sys(backend, "bind", e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        let e = "dpdk".parse::<Backend>().unwrap_err();
        assert!(e.to_string().contains("\"dpdk\""), "{e}");
        assert!(e.is_usage());
    }

    #[test]
    fn mmsg_always_probes() {
        assert!(Backend::Mmsg.probe().is_ok());
        assert_eq!(probe().len(), 3);
    }

    #[test]
    fn port_taken_is_named() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = held.local_addr().unwrap() else {
            unreachable!("bound an IPv4 address")
        };
        for b in [Backend::Mmsg, Backend::Uring] {
            if b.probe().is_err() {
                continue;
            }
            let err = open(&IoConfig::new(b, addr)).err().expect("port is taken");
            assert!(matches!(err, IoError::AddrInUse { .. }), "{err}");
            assert!(err.to_string().contains(&addr.to_string()), "{err}");
        }
    }

    /// Every socket backend moves datagrams of several sizes over loopback intact,
    /// with the right source address, in batches of 1, 17 and 64.
    #[test]
    fn loopback_batches_arrive_intact() {
        let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        for backend in [Backend::Mmsg, Backend::Uring] {
            if let Err(e) = backend.probe() {
                println!("SKIP: {backend}: {e}");
                continue;
            }
            let mut a = open(&IoConfig::new(backend, any)).unwrap();
            let mut b = open(&IoConfig::new(backend, any)).unwrap();
            let pattern = |batch: usize, i: usize, len: usize| -> Vec<u8> {
                (0..len).map(|j| (batch * 31 + i * 7 + j) as u8).collect()
            };
            let plan = [(1usize, 1usize), (17, 300), (64, 1472)];
            let mut want = Vec::new();
            for (batch, &(n, len)) in plan.iter().enumerate() {
                let mut sent = 0;
                while sent < n {
                    let k = a
                        .send(b.local(), n - sent, len, &mut |i, buf| {
                            buf.copy_from_slice(&pattern(batch, sent + i, len));
                        })
                        .unwrap();
                    sent += k;
                }
                want.extend((0..n).map(|i| pattern(batch, i, len)));
            }
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while got.len() < want.len() && std::time::Instant::now() < deadline {
                b.recv(64, Duration::from_millis(100), &mut |p, src| {
                    assert_eq!(src, a.local(), "{backend}");
                    got.push(p.to_vec());
                })
                .unwrap();
            }
            assert_eq!(got, want, "{backend}");
            assert_eq!(b.drops(), 0, "{backend}");
        }
    }

    #[test]
    fn bad_batch_and_size_are_refused() {
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let mut cfg = IoConfig::new(Backend::Mmsg, local);
        cfg.batch = 0;
        assert!(open(&cfg).err().unwrap().is_usage());
        cfg.batch = 8;
        cfg.max_payload = 9000;
        assert!(open(&cfg).err().unwrap().to_string().contains("9000"));
    }
}
