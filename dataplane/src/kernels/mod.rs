//! Byte kernels over windows: `counteq(imm)`, `xor`, `add`, `fnv`, `crc32c`.
//!
//! Results are defined in `specs/kernels.md`. One safe entry point ([`Kernels`]) picks
//! a backend once per process (or as forced by `PFS_KERNEL`) and calls it through a
//! cached function table. The scalar backend is always compiled and is the oracle.

pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Environment variable that forces a backend (`scalar`, `sse42`, `avx2`, `avx512`).
pub const BACKEND_ENV: &str = "PFS_KERNEL";

/// Errors from choosing a backend or parsing an op.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The op name is not one of the five kernels.
    #[error("op: unknown op {0:?} (expected counteq, xor, add, fnv or crc32c)")]
    UnknownOp(String),
    /// `imm` was outside 0..=255.
    #[error("imm: {0} is outside 0..=255")]
    ImmOutOfRange(i64),
    /// counteq was given without an imm.
    #[error("imm: counteq needs an imm in 0..=255")]
    MissingImm,
    /// The backend name is not known.
    #[error("{BACKEND_ENV}: unknown backend {0:?} (expected scalar, sse42, avx2 or avx512)")]
    UnknownBackend(String),
    /// The backend is known but this CPU lacks its features.
    #[error("{BACKEND_ENV}: backend {0} is not supported by this CPU")]
    Unsupported(Backend),
}

/// One kernel with its immediate, if it takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Count of bytes equal to the immediate.
    CountEq(u8),
    /// XOR of all bytes.
    Xor,
    /// Wrapping u64 sum of all bytes.
    Add,
    /// FNV-1a 64 (byte-serial).
    Fnv,
    /// CRC32C (Castagnoli).
    Crc32c,
}

impl Op {
    /// Every op name, in spec order.
    pub const NAMES: [&'static str; 5] = ["counteq", "xor", "add", "fnv", "crc32c"];

    /// Parses an op name and optional immediate. `imm` is required for `counteq`
    /// and, when given to the other ops, must still lie in 0..=255 (it is ignored).
    pub fn parse(name: &str, imm: Option<i64>) -> Result<Op, KernelError> {
        let imm = match imm {
            Some(v) if !(0..=255).contains(&v) => return Err(KernelError::ImmOutOfRange(v)),
            Some(v) => Some(v as u8),
            None => None,
        };
        Ok(match name {
            "counteq" => Op::CountEq(imm.ok_or(KernelError::MissingImm)?),
            "xor" => Op::Xor,
            "add" => Op::Add,
            "fnv" => Op::Fnv,
            "crc32c" => Op::Crc32c,
            other => return Err(KernelError::UnknownOp(other.to_string())),
        })
    }

    /// The op's name as written in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Op::CountEq(_) => "counteq",
            Op::Xor => "xor",
            Op::Add => "add",
            Op::Fnv => "fnv",
            Op::Crc32c => "crc32c",
        }
    }

    /// The immediate (0 for ops without one).
    pub fn imm(self) -> u8 {
        match self {
            Op::CountEq(v) => v,
            _ => 0,
        }
    }

    /// Whether the op can be split into windows computed independently and
    /// combined. FNV-1a is byte-serial and cannot.
    pub fn is_splittable(self) -> bool {
        !matches!(self, Op::Fnv)
    }

    /// The result of the op over empty input (and the start state for chaining).
    pub fn identity(self) -> u64 {
        match self {
            Op::Fnv => scalar::FNV_OFFSET_BASIS,
            _ => 0,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CountEq(v) => write!(f, "counteq({v})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The result of an op over a span of `len` bytes, in a form that combines with
/// the result over the span that follows (see [`Partial::then`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// The op's result over the span.
    pub value: u64,
    /// Length of the span in bytes.
    pub len: u64,
}

impl Partial {
    /// The result over an empty span.
    pub fn empty(op: Op) -> Partial {
        Partial {
            value: op.identity(),
            len: 0,
        }
    }

    /// Combines `self` (the earlier span) with `next` (the span right after it),
    /// giving the result over the concatenation. Not defined for `fnv`, whose
    /// windows are chained instead (the caller passes the state along).
    pub fn then(self, op: Op, next: Partial) -> Partial {
        let value = match op {
            Op::CountEq(_) | Op::Add => self.value.wrapping_add(next.value),
            Op::Xor => self.value ^ next.value,
            Op::Crc32c => u64::from(crc32c::crc32c_combine(
                self.value as u32,
                next.value as u32,
                next.len as usize,
            )),
            Op::Fnv => next.value,
        };
        Partial {
            value,
            len: self.len + next.len,
        }
    }
}

/// A kernel backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable scalar code: the oracle.
    Scalar,
    /// SSE4.2 (16-byte vectors, hardware `crc32`).
    Sse42,
    /// AVX2 (32-byte vectors).
    Avx2,
    /// AVX-512BW (64-byte vectors, masked tails, VPCLMULQDQ CRC).
    Avx512,
}

impl Backend {
    /// All backends, slowest first.
    pub const ALL: [Backend; 4] = [
        Backend::Scalar,
        Backend::Sse42,
        Backend::Avx2,
        Backend::Avx512,
    ];

    /// The backend's name as accepted by `PFS_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Sse42 => "sse42",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// Vector width in bytes (1 for scalar).
    pub fn lane_bytes(self) -> usize {
        match self {
            Backend::Scalar => 1,
            Backend::Sse42 => 16,
            Backend::Avx2 => 32,
            Backend::Avx512 => 64,
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Sse42 => {
                is_x86_feature_detected!("sse4.2") && is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("sse4.2")
                    && is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("sse4.2")
                    && is_x86_feature_detected!("popcnt")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest backend this CPU supports.
    pub fn best() -> Backend {
        Backend::ALL
            .into_iter()
            .rev()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Scalar)
    }

    /// Backends this CPU supports, slowest first.
    pub fn available() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    }
}

impl FromStr for Backend {
    type Err = KernelError;
    fn from_str(s: &str) -> Result<Backend, KernelError> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| KernelError::UnknownBackend(s.to_string()))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

type CountEqFn = unsafe fn(&[u8], u8) -> u64;
type XorFn = unsafe fn(&[u8]) -> u8;
type AddFn = unsafe fn(&[u8]) -> u64;
type CrcFn = unsafe fn(u32, &[u8]) -> u32;

/// A backend's function table. Built only for a backend the CPU supports, so
/// every call through it is sound.
#[derive(Clone, Copy)]
pub struct Kernels {
    backend: Backend,
    counteq: CountEqFn,
    xor: XorFn,
    add: AddFn,
    crc32c: CrcFn,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Kernels {
    /// The kernels of one backend, or an error if this CPU cannot run it.
    pub fn new(backend: Backend) -> Result<Kernels, KernelError> {
        if !backend.is_available() {
            return Err(KernelError::Unsupported(backend));
        }
        Ok(Self::table(backend))
    }

    #[cfg(target_arch = "x86_64")]
    fn table(backend: Backend) -> Kernels {
        match backend {
            Backend::Scalar => Kernels::scalar(),
            Backend::Sse42 => Kernels {
                backend,
                counteq: x86::counteq_sse42,
                xor: x86::xor_sse42,
                add: x86::add_sse42,
                crc32c: x86::crc32c_hw,
            },
            Backend::Avx2 => Kernels {
                backend,
                counteq: x86::counteq_avx2,
                xor: x86::xor_avx2,
                add: x86::add_avx2,
                crc32c: x86::crc32c_hw,
            },
            Backend::Avx512 => Kernels {
                backend,
                counteq: x86::counteq_avx512,
                xor: x86::xor_avx512,
                add: x86::add_avx512,
                crc32c: x86::crc32c_clmul,
            },
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn table(_backend: Backend) -> Kernels {
        Kernels::scalar()
    }

    /// The scalar oracle.
    pub fn scalar() -> Kernels {
        Kernels {
            backend: Backend::Scalar,
            counteq: scalar::counteq,
            xor: scalar::xor,
            add: scalar::add,
            crc32c: scalar::crc32c,
        }
    }

    /// The process-wide kernels: chosen once, from `PFS_KERNEL` if set, else the
    /// best backend. Fails if `PFS_KERNEL` names an unknown or unsupported backend.
    pub fn get() -> Result<&'static Kernels, KernelError> {
        static CHOSEN: OnceLock<Result<Kernels, KernelError>> = OnceLock::new();
        CHOSEN
            .get_or_init(|| match std::env::var(BACKEND_ENV) {
                Ok(name) if !name.is_empty() => Kernels::new(name.parse()?),
                _ => Kernels::new(Backend::best()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The backend behind this table.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Count of bytes equal to `imm`.
    pub fn counteq(&self, data: &[u8], imm: u8) -> u64 {
        // SAFETY: the table was built by `new`/`scalar` only for a backend whose
        // CPU features were detected at runtime.
        unsafe { (self.counteq)(data, imm) }
    }

    /// XOR of all bytes.
    pub fn xor(&self, data: &[u8]) -> u8 {
        // SAFETY: as in `counteq`: the backend's features were detected.
        unsafe { (self.xor)(data) }
    }

    /// Wrapping u64 sum of all bytes.
    pub fn add(&self, data: &[u8]) -> u64 {
        // SAFETY: as in `counteq`: the backend's features were detected.
        unsafe { (self.add)(data) }
    }

    /// CRC32C continued from a finished CRC `crc` (0 to start).
    pub fn crc32c(&self, crc: u32, data: &[u8]) -> u32 {
        // SAFETY: as in `counteq`: the backend's features were detected.
        unsafe { (self.crc32c)(crc, data) }
    }

    /// FNV-1a 64 continued from `state` ([`scalar::FNV_OFFSET_BASIS`] to start).
    /// Byte-serial on every backend: each byte's multiply depends on the last.
    pub fn fnv(&self, state: u64, data: &[u8]) -> u64 {
        scalar::fnv(state, data)
    }

    /// The op's result over `data`.
    pub fn eval(&self, op: Op, data: &[u8]) -> u64 {
        self.eval_from(op, op.identity(), data)
    }

    /// The op's result over `data`, continuing a chainable state (`fnv` and
    /// `crc32c`; ignored by the others, which combine with [`Partial::then`]).
    pub fn eval_from(&self, op: Op, state: u64, data: &[u8]) -> u64 {
        match op {
            Op::CountEq(imm) => self.counteq(data, imm),
            Op::Xor => u64::from(self.xor(data)),
            Op::Add => self.add(data),
            Op::Fnv => self.fnv(state, data),
            Op::Crc32c => u64::from(self.crc32c(state as u32, data)),
        }
    }

    /// The op's result over `data` as a combinable [`Partial`].
    pub fn partial(&self, op: Op, data: &[u8]) -> Partial {
        Partial {
            value: self.eval(op, data),
            len: data.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ops() -> Vec<Op> {
        vec![
            Op::CountEq(0),
            Op::CountEq(0xa5),
            Op::CountEq(255),
            Op::Xor,
            Op::Add,
            Op::Fnv,
            Op::Crc32c,
        ]
    }

    fn pattern(len: usize, salt: u64) -> Vec<u8> {
        // Deterministic bytes with plenty of zeros, 0xa5 and 0xff.
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ salt;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 5 {
                    0 => 0,
                    1 => 0xa5,
                    2 => 0xff,
                    _ => (x >> 24) as u8,
                }
            })
            .collect()
    }

    /// Every available backend equals the scalar oracle at every length
    /// 0..=4×lane width and every misalignment within a lane.
    #[test]
    fn every_backend_matches_scalar_at_every_length_and_misalignment() {
        let oracle = Kernels::scalar();
        let buf = pattern(64 * 4 + 64 + 64, 7);
        for backend in Backend::available() {
            let k = Kernels::new(backend).unwrap();
            let lane = backend.lane_bytes().max(16);
            for misalign in 0..lane.max(64) {
                for len in 0..=4 * lane.max(64) {
                    let data = &buf[misalign..misalign + len];
                    for op in all_ops() {
                        assert_eq!(
                            k.eval(op, data),
                            oracle.eval(op, data),
                            "{backend} {op} len {len} misalign {misalign}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn large_buffers_match_scalar() {
        let oracle = Kernels::scalar();
        // Random-ish bytes, and uniform buffers where every lane's byte counter
        // reaches its flush limit (counteq keeps 8-bit counters between folds).
        let bufs = [
            pattern(3 * 1024 * 1024 + 77, 11),
            vec![0u8; 1024 * 1024 + 333],
            vec![0xffu8; 300_000],
        ];
        for buf in &bufs {
            for backend in Backend::available() {
                let k = Kernels::new(backend).unwrap();
                for op in all_ops() {
                    assert_eq!(k.eval(op, buf), oracle.eval(op, buf), "{backend} {op}");
                }
            }
        }
    }

    #[test]
    fn split_and_combine_equals_whole() {
        let k = Kernels::get().unwrap();
        let buf = pattern(10_000, 3);
        for op in all_ops() {
            let whole = k.eval(op, &buf);
            for cut in [0, 1, 63, 64, 4096, 9_999, 10_000] {
                let (a, b) = buf.split_at(cut);
                let combined = if op.is_splittable() {
                    k.partial(op, a).then(op, k.partial(op, b)).value
                } else {
                    k.eval_from(op, k.eval(op, a), b)
                };
                assert_eq!(combined, whole, "{op} cut {cut}");
            }
        }
    }

    #[test]
    fn op_parse_rejects_bad_input() {
        assert_eq!(
            Op::parse("nope", None),
            Err(KernelError::UnknownOp("nope".into()))
        );
        assert_eq!(
            Op::parse("counteq", Some(256)),
            Err(KernelError::ImmOutOfRange(256))
        );
        assert_eq!(
            Op::parse("counteq", Some(-1)),
            Err(KernelError::ImmOutOfRange(-1))
        );
        assert_eq!(Op::parse("counteq", None), Err(KernelError::MissingImm));
        assert_eq!(Op::parse("counteq", Some(7)), Ok(Op::CountEq(7)));
        assert_eq!(Op::parse("xor", None), Ok(Op::Xor));
        assert!("avx9000".parse::<Backend>().is_err());
    }

    /// Reads the hex test vectors from `specs/kernels.md` and checks every backend.
    #[test]
    fn spec_vectors() {
        let spec = include_str!("../../../specs/kernels.md");
        let vectors = crate::specvec::blocks(spec, "vectors");
        assert!(!vectors.is_empty(), "specs/kernels.md has no vectors block");
        let mut n = 0;
        for block in vectors {
            for line in block.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let f: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(f.len(), 4, "vector line {line:?}");
                let imm = if f[1] == "-" {
                    None
                } else {
                    Some(i64::from_str_radix(f[1], 16).unwrap())
                };
                let op = Op::parse(f[0], imm).unwrap();
                let input = if f[2] == "-" {
                    Vec::new()
                } else {
                    crate::specvec::unhex(f[2]).unwrap()
                };
                let want = u64::from_str_radix(f[3], 16).unwrap();
                for backend in Backend::available() {
                    let k = Kernels::new(backend).unwrap();
                    assert_eq!(k.eval(op, &input), want, "{backend} {line}");
                }
                n += 1;
            }
        }
        assert!(n >= 15, "only {n} vectors");
    }
}
