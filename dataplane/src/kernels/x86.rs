//! x86_64 SIMD backends (SSE4.2, AVX2, AVX-512BW). Each function is a safe
//! `#[target_feature]` function: calling it is only sound on a CPU with those
//! features, which [`super::Backend::is_available`] checks once at start.
//!
//! Tails shorter than a vector are handled with masked loads (AVX-512) or the
//! scalar oracle (SSE4.2, AVX2), so no load ever reads past the slice.

use core::arch::x86_64::*;

use super::scalar;

// ---------------------------------------------------------------- SSE4.2

#[target_feature(enable = "sse4.2,popcnt")]
pub fn counteq_sse42(data: &[u8], imm: u8) -> u64 {
    let needle = _mm_set1_epi8(imm as i8);
    let mut n = 0u64;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` is exactly 16 readable bytes; loadu has no alignment need.
        let v = unsafe { _mm_loadu_si128(c.as_ptr().cast()) };
        n += u64::from((_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) as u32).count_ones());
    }
    n + scalar::counteq(chunks.remainder(), imm)
}

#[target_feature(enable = "sse4.2")]
pub fn xor_sse42(data: &[u8]) -> u8 {
    let mut acc = _mm_setzero_si128();
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` is exactly 16 readable bytes.
        let v = unsafe { _mm_loadu_si128(c.as_ptr().cast()) };
        acc = _mm_xor_si128(acc, v);
    }
    let lanes = [
        _mm_cvtsi128_si64(acc) as u64,
        _mm_extract_epi64::<1>(acc) as u64,
    ];
    fold_u64_xor(lanes[0] ^ lanes[1]) ^ scalar::xor(chunks.remainder())
}

#[target_feature(enable = "sse4.2")]
pub fn add_sse42(data: &[u8]) -> u64 {
    let zero = _mm_setzero_si128();
    let mut acc = _mm_setzero_si128();
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: `c` is exactly 16 readable bytes.
        let v = unsafe { _mm_loadu_si128(c.as_ptr().cast()) };
        acc = _mm_add_epi64(acc, _mm_sad_epu8(v, zero));
    }
    let s = (_mm_cvtsi128_si64(acc) as u64).wrapping_add(_mm_extract_epi64::<1>(acc) as u64);
    s.wrapping_add(scalar::add(chunks.remainder()))
}

// ---------------------------------------------------------------- AVX2

#[target_feature(enable = "avx2,popcnt")]
pub fn counteq_avx2(data: &[u8], imm: u8) -> u64 {
    // `vpcmpeqb` yields -1 in matching lanes; subtracting it adds 1 to byte
    // counters, folded into u64 lanes with `vpsadbw` every 255 blocks.
    let needle = _mm256_set1_epi8(imm as i8);
    let zero = _mm256_setzero_si256();
    let mut total = zero;
    let mut blocks = data.chunks_exact(128);
    let mut n_blocks = blocks.len();
    while n_blocks > 0 {
        let batch = n_blocks.min(255);
        n_blocks -= batch;
        let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
        for c in blocks.by_ref().take(batch) {
            let p = c.as_ptr();
            // SAFETY: `c` is exactly 128 readable bytes; the four 32-byte loads are
            // inside it.
            let (v0, v1, v2, v3) = unsafe {
                (
                    _mm256_loadu_si256(p.cast()),
                    _mm256_loadu_si256(p.add(32).cast()),
                    _mm256_loadu_si256(p.add(64).cast()),
                    _mm256_loadu_si256(p.add(96).cast()),
                )
            };
            a0 = _mm256_sub_epi8(a0, _mm256_cmpeq_epi8(v0, needle));
            a1 = _mm256_sub_epi8(a1, _mm256_cmpeq_epi8(v1, needle));
            a2 = _mm256_sub_epi8(a2, _mm256_cmpeq_epi8(v2, needle));
            a3 = _mm256_sub_epi8(a3, _mm256_cmpeq_epi8(v3, needle));
        }
        total = _mm256_add_epi64(total, _mm256_sad_epu8(a0, zero));
        total = _mm256_add_epi64(total, _mm256_sad_epu8(a1, zero));
        total = _mm256_add_epi64(total, _mm256_sad_epu8(a2, zero));
        total = _mm256_add_epi64(total, _mm256_sad_epu8(a3, zero));
    }
    let n = (_mm256_extract_epi64::<0>(total) as u64)
        + (_mm256_extract_epi64::<1>(total) as u64)
        + (_mm256_extract_epi64::<2>(total) as u64)
        + (_mm256_extract_epi64::<3>(total) as u64);
    n + counteq_sse42(blocks.remainder(), imm)
}

#[target_feature(enable = "avx2")]
pub fn xor_avx2(data: &[u8]) -> u8 {
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        let p = c.as_ptr();
        // SAFETY: `c` is exactly 64 readable bytes.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(32).cast()),
            )
        };
        a0 = _mm256_xor_si256(a0, a);
        a1 = _mm256_xor_si256(a1, b);
    }
    let x = _mm256_xor_si256(a0, a1);
    let lanes = (_mm256_extract_epi64::<0>(x)
        ^ _mm256_extract_epi64::<1>(x)
        ^ _mm256_extract_epi64::<2>(x)
        ^ _mm256_extract_epi64::<3>(x)) as u64;
    fold_u64_xor(lanes) ^ xor_sse42(chunks.remainder())
}

#[target_feature(enable = "avx2")]
pub fn add_avx2(data: &[u8]) -> u64 {
    let zero = _mm256_setzero_si256();
    let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        let p = c.as_ptr();
        // SAFETY: `c` is exactly 64 readable bytes.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(32).cast()),
            )
        };
        a0 = _mm256_add_epi64(a0, _mm256_sad_epu8(a, zero));
        a1 = _mm256_add_epi64(a1, _mm256_sad_epu8(b, zero));
    }
    let s = _mm256_add_epi64(a0, a1);
    let total = (_mm256_extract_epi64::<0>(s) as u64)
        .wrapping_add(_mm256_extract_epi64::<1>(s) as u64)
        .wrapping_add(_mm256_extract_epi64::<2>(s) as u64)
        .wrapping_add(_mm256_extract_epi64::<3>(s) as u64);
    total.wrapping_add(add_sse42(chunks.remainder()))
}

// ---------------------------------------------------------------- AVX-512BW

/// Mask selecting the first `n` (< 64) bytes of a 64-byte vector.
#[inline(always)]
fn tail_mask(n: usize) -> u64 {
    debug_assert!(n < 64);
    (1u64 << n) - 1
}

#[target_feature(enable = "avx512f,avx512bw,popcnt")]
pub fn counteq_avx512(data: &[u8], imm: u8) -> u64 {
    // Byte counters in vectors: each compare adds 1 to the lanes that match (a
    // masked subtract of -1), and every 255 blocks `vpsadbw` folds the byte
    // counters into u64 lanes before they can wrap. This keeps the loop on vector
    // ports instead of moving every mask to a general register.
    let needle = _mm512_set1_epi8(imm as i8);
    let minus_one = _mm512_set1_epi8(-1);
    let zero = _mm512_setzero_si512();
    let mut total = zero;
    let mut blocks = data.chunks_exact(256);
    let mut n_blocks = blocks.len();
    while n_blocks > 0 {
        let batch = n_blocks.min(255);
        n_blocks -= batch;
        let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
        for c in blocks.by_ref().take(batch) {
            let p = c.as_ptr();
            // SAFETY: `c` is exactly 256 readable bytes; the four 64-byte loads are
            // inside it.
            let (v0, v1, v2, v3) = unsafe {
                (
                    _mm512_loadu_si512(p.cast()),
                    _mm512_loadu_si512(p.add(64).cast()),
                    _mm512_loadu_si512(p.add(128).cast()),
                    _mm512_loadu_si512(p.add(192).cast()),
                )
            };
            a0 = _mm512_mask_sub_epi8(a0, _mm512_cmpeq_epi8_mask(v0, needle), a0, minus_one);
            a1 = _mm512_mask_sub_epi8(a1, _mm512_cmpeq_epi8_mask(v1, needle), a1, minus_one);
            a2 = _mm512_mask_sub_epi8(a2, _mm512_cmpeq_epi8_mask(v2, needle), a2, minus_one);
            a3 = _mm512_mask_sub_epi8(a3, _mm512_cmpeq_epi8_mask(v3, needle), a3, minus_one);
        }
        total = _mm512_add_epi64(total, _mm512_sad_epu8(a0, zero));
        total = _mm512_add_epi64(total, _mm512_sad_epu8(a1, zero));
        total = _mm512_add_epi64(total, _mm512_sad_epu8(a2, zero));
        total = _mm512_add_epi64(total, _mm512_sad_epu8(a3, zero));
    }
    let mut n = _mm512_reduce_add_epi64(total) as u64;
    let mut rest = blocks.remainder().chunks_exact(64);
    for c in &mut rest {
        // SAFETY: `c` is exactly 64 readable bytes.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        n += u64::from(_mm512_cmpeq_epi8_mask(v, needle).count_ones());
    }
    let tail = rest.remainder();
    if !tail.is_empty() {
        let k = tail_mask(tail.len());
        // SAFETY: a masked load touches only the bytes selected by `k`, which are
        // the `tail.len()` readable bytes of `tail`; masked-off lanes never fault.
        let v = unsafe { _mm512_maskz_loadu_epi8(k, tail.as_ptr().cast()) };
        n += u64::from(_mm512_mask_cmpeq_epi8_mask(k, v, needle).count_ones());
    }
    n
}

#[target_feature(enable = "avx512f,avx512bw")]
pub fn xor_avx512(data: &[u8]) -> u8 {
    let (mut a0, mut a1, mut a2, mut a3) = (
        _mm512_setzero_si512(),
        _mm512_setzero_si512(),
        _mm512_setzero_si512(),
        _mm512_setzero_si512(),
    );
    let mut chunks = data.chunks_exact(256);
    for c in &mut chunks {
        let p = c.as_ptr();
        // SAFETY: `c` is exactly 256 readable bytes.
        unsafe {
            a0 = _mm512_xor_si512(a0, _mm512_loadu_si512(p.cast()));
            a1 = _mm512_xor_si512(a1, _mm512_loadu_si512(p.add(64).cast()));
            a2 = _mm512_xor_si512(a2, _mm512_loadu_si512(p.add(128).cast()));
            a3 = _mm512_xor_si512(a3, _mm512_loadu_si512(p.add(192).cast()));
        }
    }
    let mut rest = chunks.remainder().chunks_exact(64);
    for c in &mut rest {
        // SAFETY: `c` is exactly 64 readable bytes.
        a0 = _mm512_xor_si512(a0, unsafe { _mm512_loadu_si512(c.as_ptr().cast()) });
    }
    let tail = rest.remainder();
    if !tail.is_empty() {
        // SAFETY: the masked load reads only the `tail.len()` bytes of `tail`;
        // masked-off lanes are zero and never fault.
        let v = unsafe { _mm512_maskz_loadu_epi8(tail_mask(tail.len()), tail.as_ptr().cast()) };
        a1 = _mm512_xor_si512(a1, v);
    }
    let x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    let lo = _mm512_castsi512_si256(x);
    let hi = _mm512_extracti64x4_epi64::<1>(x);
    let y = _mm256_xor_si256(lo, hi);
    let lanes = (_mm256_extract_epi64::<0>(y)
        ^ _mm256_extract_epi64::<1>(y)
        ^ _mm256_extract_epi64::<2>(y)
        ^ _mm256_extract_epi64::<3>(y)) as u64;
    fold_u64_xor(lanes)
}

#[target_feature(enable = "avx512f,avx512bw")]
pub fn add_avx512(data: &[u8]) -> u64 {
    let zero = _mm512_setzero_si512();
    let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
    let mut chunks = data.chunks_exact(256);
    for c in &mut chunks {
        let p = c.as_ptr();
        // SAFETY: `c` is exactly 256 readable bytes.
        unsafe {
            a0 = _mm512_add_epi64(a0, _mm512_sad_epu8(_mm512_loadu_si512(p.cast()), zero));
            a1 = _mm512_add_epi64(
                a1,
                _mm512_sad_epu8(_mm512_loadu_si512(p.add(64).cast()), zero),
            );
            a2 = _mm512_add_epi64(
                a2,
                _mm512_sad_epu8(_mm512_loadu_si512(p.add(128).cast()), zero),
            );
            a3 = _mm512_add_epi64(
                a3,
                _mm512_sad_epu8(_mm512_loadu_si512(p.add(192).cast()), zero),
            );
        }
    }
    let mut rest = chunks.remainder().chunks_exact(64);
    for c in &mut rest {
        // SAFETY: `c` is exactly 64 readable bytes.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        a0 = _mm512_add_epi64(a0, _mm512_sad_epu8(v, zero));
    }
    let tail = rest.remainder();
    if !tail.is_empty() {
        // SAFETY: the masked load reads only the `tail.len()` bytes of `tail`.
        let v = unsafe { _mm512_maskz_loadu_epi8(tail_mask(tail.len()), tail.as_ptr().cast()) };
        a1 = _mm512_add_epi64(a1, _mm512_sad_epu8(v, zero));
    }
    let s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
    _mm512_reduce_add_epi64(s) as u64
}

/// Folds the 8 bytes of a u64 into their XOR.
#[inline(always)]
fn fold_u64_xor(mut x: u64) -> u8 {
    x ^= x >> 32;
    x ^= x >> 16;
    x ^= x >> 8;
    x as u8
}

/// CRC32C with the hardware `crc32` instruction (the `crc32c` crate).
pub fn crc32c_hw(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// CRC32C with carry-less multiply folding (the `crc-fast` crate, which uses
/// VPCLMULQDQ on AVX-512 CPUs).
pub fn crc32c_clmul(crc: u32, data: &[u8]) -> u32 {
    if crc == 0 {
        crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
    } else {
        let tail = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
        crc32c::crc32c_combine(crc, tail, data.len())
    }
}
