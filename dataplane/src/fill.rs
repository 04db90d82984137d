//! Deterministic blob fills (`zero`, `random`, `ramp`), generated in independent
//! 1 MiB chunks so several threads can write one file.

use std::fmt;
use std::str::FromStr;

/// The content of a generated blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// All bytes 0.
    Zero,
    /// Bytes from xoshiro256++ seeded per 1 MiB chunk by SplitMix64(seed, chunk).
    Random,
    /// Byte `i` is `i mod 256` (absolute file offset).
    Ramp,
}

impl FromStr for Fill {
    type Err = String;
    fn from_str(s: &str) -> Result<Fill, String> {
        match s {
            "zero" => Ok(Fill::Zero),
            "random" => Ok(Fill::Random),
            "ramp" => Ok(Fill::Ramp),
            other => Err(format!(
                "fill: unknown fill {other:?} (expected zero, random or ramp)"
            )),
        }
    }
}

impl fmt::Display for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fill::Zero => "zero",
            Fill::Random => "random",
            Fill::Ramp => "ramp",
        })
    }
}

/// The chunk size fills are defined in.
pub const CHUNK: usize = 1 << 20;

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes chunk number `chunk` of the fill into `buf` (`buf.len() <= CHUNK`;
/// the last chunk of a file may be short).
pub fn fill_chunk(fill: Fill, seed: u64, chunk: u64, buf: &mut [u8]) {
    match fill {
        Fill::Zero => buf.fill(0),
        Fill::Ramp => {
            // CHUNK is a multiple of 256, so every chunk starts at byte value 0.
            for (i, b) in buf.iter_mut().enumerate() {
                *b = i as u8;
            }
        }
        Fill::Random => {
            let mut sm = seed ^ chunk.wrapping_mul(0xd1b5_4a32_d192_ed03);
            let mut s = [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ];
            let mut words = buf.chunks_exact_mut(8);
            for w in &mut words {
                w.copy_from_slice(&xoshiro(&mut s).to_le_bytes());
            }
            let rest = words.into_remainder();
            let last = xoshiro(&mut s).to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&last[..n]);
        }
    }
}

#[inline(always)]
fn xoshiro(s: &mut [u64; 4]) -> u64 {
    let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_are_deterministic_and_distinct_per_chunk() {
        let mut a = vec![0u8; 1000];
        let mut b = vec![0u8; 1000];
        fill_chunk(Fill::Random, 42, 3, &mut a);
        fill_chunk(Fill::Random, 42, 3, &mut b);
        assert_eq!(a, b);
        fill_chunk(Fill::Random, 42, 4, &mut b);
        assert_ne!(a, b);
        fill_chunk(Fill::Random, 43, 3, &mut b);
        assert_ne!(a, b);
        fill_chunk(Fill::Ramp, 0, 9, &mut a);
        assert_eq!(&a[..3], &[0, 1, 2]);
        assert_eq!(a[256], 0);
        fill_chunk(Fill::Zero, 0, 0, &mut a);
        assert!(a.iter().all(|&x| x == 0));
        assert!("bogus".parse::<Fill>().is_err());
    }
}
