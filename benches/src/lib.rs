//! Shared measurement helpers for the PacketFS benches: timing loops, a
//! load-bound streaming-read reference and huge-page buffers.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `f` `reps` times per sample, `samples` times, and returns the best
/// (shortest) per-call time. Best-of is the usual choice for throughput on a
/// shared machine: interference only ever makes a run slower.
pub fn best_of<T>(samples: usize, reps: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..samples.max(1) {
        let t = Instant::now();
        for _ in 0..reps.max(1) {
            black_box(f());
        }
        best = best.min(t.elapsed() / reps.max(1) as u32);
    }
    best
}

/// GB/s (1e9 bytes per second) for `bytes` in `d`.
pub fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-12) / 1e9
}

/// The streaming-read reference: the fastest load-bound loop this CPU runs over
/// `data` (64-byte loads OR-ed into four accumulators; AVX-512 when available,
/// else AVX2, else scalar u64 words). Returns the OR so nothing is optimised away.
pub fn stream_read(data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked on the line above.
            return unsafe { stream_read_avx512(data) };
        }
    }
    let mut acc = 0u64;
    for w in data.chunks_exact(8) {
        acc |= u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    }
    acc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn stream_read_avx512(data: &[u8]) -> u64 {
    use core::arch::x86_64::*;
    let z = _mm512_setzero_si512();
    let (mut a, mut b, mut c, mut d) = (z, z, z, z);
    for ch in data.chunks_exact(256) {
        let p = ch.as_ptr();
        // SAFETY: `ch` is exactly 256 readable bytes; the four loads are inside it.
        unsafe {
            a = _mm512_or_si512(a, _mm512_loadu_si512(p.cast()));
            b = _mm512_or_si512(b, _mm512_loadu_si512(p.add(64).cast()));
            c = _mm512_or_si512(c, _mm512_loadu_si512(p.add(128).cast()));
            d = _mm512_or_si512(d, _mm512_loadu_si512(p.add(192).cast()));
        }
    }
    let x = _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d));
    _mm512_reduce_or_epi64(x) as u64
}

/// An anonymous, huge-page-advised, pre-touched buffer.
#[derive(Debug)]
pub struct HugeBuf {
    ptr: *mut u8,
    len: usize,
}

impl HugeBuf {
    /// Maps `len` bytes (rounded up to 2 MiB), asks for transparent huge pages and
    /// fills them with `fill(i)`.
    pub fn new(len: usize, fill: impl Fn(usize) -> u8) -> HugeBuf {
        let len = len.next_multiple_of(2 << 20);
        // SAFETY: an anonymous private mapping with no address hint; the result is
        // checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap of {len} bytes failed");
        // SAFETY: `ptr..ptr+len` is the mapping just made; madvise only advises.
        unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
        let ptr = ptr.cast::<u8>();
        // SAFETY: the mapping is `len` bytes, readable and writable, and owned here.
        let s = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        for (i, b) in s.iter_mut().enumerate() {
            *b = fill(i);
        }
        HugeBuf { ptr, len }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping lives as long as `self` and was fully initialised.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for HugeBuf {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A fast deterministic byte pattern (xorshift) for bench inputs.
pub fn noise(i: usize) -> u8 {
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x >> 32) as u8
}
