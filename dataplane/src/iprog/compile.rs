//! The compiler (`specs/iprog.md` §6): an object → BREF steps into a source
//! (the VirtualBlob's palette, or a shared base file), found through a 4-byte
//! k-gram index, extended greedily both ways.
//!
//! Strict by default: a byte no match can cover is an error naming its offset.
//! With `allow_raw`, such bytes become RAW steps, counted separately.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::codec::{Bref, Op, Transform};
use super::vblob::{PALETTE_LEN, PALETTE_OFFSET, palette};

/// The k in k-gram.
pub const K: usize = 4;
/// Bases above this many bytes are indexed every `step` positions (see
/// [`Index::sampled`]).
pub const DENSE_LIMIT: usize = 4 << 20;

/// Why a compile failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Strict mode: this byte is not covered by any match.
    #[error("byte at offset {offset} cannot be expressed as a BREF (strict mode, no RAW)")]
    Unmatchable {
        /// Object offset of the first unmatchable byte.
        offset: u64,
    },
    /// Positions are stored as u32.
    #[error("base of {0} bytes is larger than the 4 GiB the index addresses")]
    BaseTooLarge(u64),
}

/// A multiply-shift hasher for u32 grams (SipHash would dominate the lookups).
#[derive(Debug, Default, Clone, Copy)]
pub struct GramHasher(u64);

impl Hasher for GramHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, g: u32) {
        self.0 = (u64::from(g) ^ 0x5bd1_e995).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 ^= self.0 >> 29;
    }
}

type GramMap = HashMap<u32, u32, BuildHasherDefault<GramHasher>>;

/// Where candidate positions come from.
#[derive(Debug)]
enum Table {
    /// Exact map 4-gram → first position (the palette).
    Exact(&'static GramMap),
    /// Hash table of u32 positions (+1, 0 = empty), one slot per hash, first
    /// writer wins; positions sampled every `step`.
    Sampled { slots: Vec<u32>, bits: u32 },
}

/// A 4-gram index over a source.
#[derive(Debug)]
pub struct Index {
    table: Table,
    step: usize,
    /// Search XOR/ADD imm5 variants of each gram through the index (palette).
    transforms: bool,
}

fn gram(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn hash(g: u32, bits: u32) -> usize {
    (g.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize
}

impl Index {
    /// The index of the VirtualBlob palette (every position, exact, with
    /// transforms). Positions are blob offsets; built once per process.
    pub fn palette() -> Index {
        static MAP: OnceLock<GramMap> = OnceLock::new();
        let map = MAP.get_or_init(|| {
            let p = palette();
            let mut m = GramMap::with_capacity_and_hasher(PALETTE_LEN / 2, Default::default());
            for i in 0..=PALETTE_LEN - K {
                m.entry(gram(p, i))
                    .or_insert((PALETTE_OFFSET as usize + i) as u32);
            }
            m
        });
        Index {
            table: Table::Exact(map),
            step: 1,
            transforms: true,
        }
    }

    /// An index of a shared base: every position up to [`DENSE_LIMIT`] bytes,
    /// above that every `step` = the power of two keeping about 4 Mi samples.
    /// Identity matches only (transforms are tried at the repeat offset).
    pub fn sampled(base: &[u8]) -> Result<Index, CompileError> {
        if base.len() as u64 > u64::from(u32::MAX) {
            return Err(CompileError::BaseTooLarge(base.len() as u64));
        }
        let step = (base.len() / DENSE_LIMIT).max(1).next_power_of_two();
        let samples = (base.len() / step).max(1);
        let bits = (samples.next_power_of_two().trailing_zeros() + 1).clamp(10, 26);
        let mut slots = vec![0u32; 1 << bits];
        if base.len() >= K {
            // Backwards with plain stores: the earliest sample ends up in each slot
            // (first writer wins) without a load per position.
            let last = (base.len() - K) / step * step;
            let mut i = last;
            loop {
                slots[hash(gram(base, i), bits)] = i as u32 + 1;
                if i < step {
                    break;
                }
                i -= step;
            }
        }
        Ok(Index {
            table: Table::Sampled { slots, bits },
            step,
            transforms: false,
        })
    }

    /// The sampling step.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Bytes of memory the table holds (approximate for the exact map).
    pub fn memory_bytes(&self) -> usize {
        match &self.table {
            Table::Exact(m) => m.capacity() * 8,
            Table::Sampled { slots, .. } => slots.len() * 4,
        }
    }

    fn candidate(&self, g: u32) -> Option<usize> {
        match &self.table {
            Table::Exact(m) => m.get(&g).map(|&p| p as usize),
            Table::Sampled { slots, bits } => {
                let v = slots[hash(g, *bits)];
                (v != 0).then(|| v as usize - 1)
            }
        }
    }
}

/// A compiled program and its accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The steps, in object order.
    pub ops: Vec<Op>,
    /// Object bytes.
    pub object_len: u64,
    /// BREF steps.
    pub brefs: u64,
    /// RAW steps.
    pub raw_sections: u64,
    /// Bytes carried as RAW.
    pub raw_bytes: u64,
}

/// Options of [`compile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// Carry unmatched bytes as RAW instead of failing.
    pub allow_raw: bool,
}

/// Length of the common prefix of `a` and `b`.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let d = x ^ y;
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Forward match length of `obj[p..]` against `src[c..]` under `xf`.
fn fwd(obj: &[u8], p: usize, src: &[u8], c: usize, xf: Transform) -> usize {
    if c >= src.len() {
        return 0;
    }
    match xf {
        Transform::Identity => common_prefix(&obj[p..], &src[c..]),
        _ => obj[p..]
            .iter()
            .zip(&src[c..])
            .take_while(|(o, s)| **o == xf.byte(**s))
            .count(),
    }
}

/// Backward match length: how many bytes before `p` (not before `floor`) equal
/// the bytes before `c` under `xf`.
fn back(obj: &[u8], p: usize, floor: usize, src: &[u8], c: usize, xf: Transform) -> usize {
    let mut n = 0;
    while p - n > floor && c > n && obj[p - n - 1] == xf.byte(src[c - n - 1]) {
        n += 1;
    }
    n
}

struct Candidate {
    /// Object position the match starts at (after backward extension).
    start: usize,
    /// Source position matching `start`.
    src: usize,
    len: usize,
    xf: Transform,
}

/// Compiles `obj` against `src` through `index`.
pub fn compile(
    src: &[u8],
    index: &Index,
    obj: &[u8],
    opts: CompileOptions,
) -> Result<Program, CompileError> {
    let n = obj.len();
    let mut prog = Program {
        ops: Vec::new(),
        object_len: n as u64,
        brefs: 0,
        raw_sections: 0,
        raw_bytes: 0,
    };
    let mut p = 0usize;
    // Source position minus object position of the last match (the repeat offset).
    let mut rep: Option<isize> = None;
    // Unmatched bytes [raw_start, p).
    let mut raw_start = 0usize;
    // In strict mode a byte stays pending until a match extending backward covers
    // it; past this many bytes, no sampled match can reach back to it.
    let strict_reach = index.step + K;
    while p < n {
        let best = find(src, index, obj, p, raw_start, rep);
        match best {
            Some(c) => {
                if c.start > raw_start {
                    if !opts.allow_raw {
                        return Err(CompileError::Unmatchable {
                            offset: raw_start as u64,
                        });
                    }
                    let r = (c.start - raw_start) as u64;
                    prog.ops.push(Op::Raw(r));
                    prog.raw_sections += 1;
                    prog.raw_bytes += r;
                }
                prog.ops.push(Op::Bref(Bref {
                    offset: c.src as u64,
                    len: c.len as u64,
                    xf: c.xf,
                }));
                prog.brefs += 1;
                p = c.start + c.len;
                raw_start = p;
                rep = Some(c.src as isize - c.start as isize);
            }
            None => {
                p += 1;
                if !opts.allow_raw && p - raw_start > strict_reach {
                    return Err(CompileError::Unmatchable {
                        offset: raw_start as u64,
                    });
                }
            }
        }
    }
    if raw_start < n {
        if !opts.allow_raw {
            return Err(CompileError::Unmatchable {
                offset: raw_start as u64,
            });
        }
        let r = (n - raw_start) as u64;
        prog.ops.push(Op::Raw(r));
        prog.raw_sections += 1;
        prog.raw_bytes += r;
    }
    Ok(prog)
}

/// The longest match found at object position `p` (or, near the end of the
/// object, through a gram starting up to K−1 bytes earlier), extended backward
/// down to `floor` and forward as far as it goes.
fn find(
    src: &[u8],
    index: &Index,
    obj: &[u8],
    p: usize,
    floor: usize,
    rep: Option<isize>,
) -> Option<Candidate> {
    let n = obj.len();
    let mut best: Option<Candidate> = None;
    let consider = |best: &mut Option<Candidate>, at: usize, c: usize, xf: Transform| {
        // `at` is where the gram starts in the object, `c` its source position.
        let f = fwd(obj, at, src, c, xf);
        if f < K.min(n - at) {
            return;
        }
        // Part at or after p; `at` may be before p only near the end of the object.
        let (at2, c2, f2) = if at < p {
            let skip = p - at;
            if f <= skip {
                return;
            }
            (p, c + skip, f - skip)
        } else {
            (at, c, f)
        };
        let b = back(obj, at2, floor, src, c2, xf);
        let cand = Candidate {
            start: at2 - b,
            src: c2 - b,
            len: f2 + b,
            xf,
        };
        let better = match best {
            None => true,
            Some(o) => cand.start < o.start || (cand.start == o.start && cand.len > o.len),
        };
        if better {
            *best = Some(cand);
        }
    };
    // 1. The repeat offset, identity then the transforms of the first byte.
    if let Some(d) = rep {
        let c = p as isize + d;
        if c >= 0 && (c as usize) < src.len() {
            let c = c as usize;
            consider(&mut best, p, c, Transform::Identity);
            if best.as_ref().is_none_or(|b| b.len < 16) {
                let (o, s) = (obj[p], src[c]);
                let k = o ^ s;
                if (1..=31).contains(&k) {
                    consider(&mut best, p, c, Transform::Xor(k));
                }
                let a = o.wrapping_sub(s);
                if (1..=31).contains(&a) {
                    consider(&mut best, p, c, Transform::Add(a));
                }
            }
            if best
                .as_ref()
                .is_some_and(|b| b.len >= 32 || b.start + b.len == n)
            {
                return best;
            }
            // Shared base: a substituted byte (the repeat offset matches again
            // right after it) is left uncovered without probing the index.
            if best.is_none()
                && !index.transforms
                && p + 1 + K <= n
                && c + 1 + K <= src.len()
                && obj[p + 1..p + 1 + K] == src[c + 1..c + 1 + K]
            {
                return None;
            }
        }
    }
    // 2. The index: the gram at p, or the last gram of the object near its end.
    if n < K {
        // A whole object shorter than a gram: search the first MiB of the source.
        let lim = src.len().min(1 << 20);
        if let Some(c) = src[..lim].windows(n - p).position(|w| w == &obj[p..]) {
            consider(&mut best, p, c, Transform::Identity);
        }
        return best;
    }
    // Grams starting at p, then (when nothing covers p yet) up to K−1 bytes
    // earlier: a gram that overlaps covered bytes can still cover p.
    let first = p.min(n - K);
    // (Only for the exact palette index: with a sampled base, backward extension
    // of a later match does this job.)
    let lowest = if index.transforms {
        first.saturating_sub(K - 1)
    } else {
        first
    };
    for at in (lowest..=first).rev() {
        if at != first && best.is_some() {
            break;
        }
        let g = gram(obj, at);
        if let Some(c) = index.candidate(g) {
            consider(&mut best, at, c, Transform::Identity);
        }
        if index.transforms && best.as_ref().is_none_or(|b| b.len < 16) {
            for k in 1..=31u8 {
                let kk = u32::from_le_bytes([k; 4]);
                if let Some(c) = index.candidate(g ^ kk) {
                    consider(&mut best, at, c, Transform::Xor(k));
                }
                let sub = u32::from_le_bytes(g.to_le_bytes().map(|b| b.wrapping_sub(k)));
                if let Some(c) = index.candidate(sub) {
                    consider(&mut best, at, c, Transform::Add(k));
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iprog::codec::{Section, apply_section};
    use crate::iprog::vblob::{FILLER_OFFSET, Identity, VirtualBlob};

    fn rebuild(src: &[u8], prog: &Program, obj: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; obj.len()];
        let mut pos = 0usize;
        for op in &prog.ops {
            let s = match *op {
                Op::Bref(b) => Section::Bref(b),
                Op::Raw(r) => Section::Raw(&obj[pos..pos + r as usize]),
            };
            apply_section(src, &s, &mut out[pos..]).unwrap();
            pos += op.len() as usize;
        }
        assert_eq!(pos, obj.len());
        out
    }

    fn blob() -> Vec<u8> {
        VirtualBlob::new(Identity {
            name: "c".into(),
            size: FILLER_OFFSET,
            seed: 1,
        })
        .unwrap()
        .to_vec()
    }

    #[test]
    fn palette_friendly_inputs_compile_strictly() {
        let b = blob();
        let idx = Index::palette();
        let strict = CompileOptions { allow_raw: false };
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![0u8; 8192],
            (0..5000u32).map(|i| i as u8).collect(),
            crate::iprog::vblob::palette()[208 * 1024 + 1000..208 * 1024 + 3000].repeat(3),
            b"abcdefghijklmnopqrstuvwxyz0123456789".repeat(20),
            vec![0x41u8 ^ 7; 1000],
            (0..3000u32).map(|i| (i as u8).wrapping_add(9)).collect(),
            vec![1, 2],
            vec![],
        ];
        inputs.push([vec![7u8; 100], vec![200u8; 4], vec![9u8; 50]].concat());
        for obj in inputs {
            let prog = compile(&b, &idx, &obj, strict).unwrap();
            assert_eq!(prog.raw_bytes, 0);
            assert_eq!(rebuild(&b, &prog, &obj), obj);
        }
    }

    #[test]
    fn random_input_fails_strictly_with_offset() {
        let b = blob();
        let idx = Index::palette();
        let mut obj = vec![0u8; 1000];
        // Bytes from the blob's filler are not in the palette.
        let v = VirtualBlob::new(Identity {
            name: "x".into(),
            size: FILLER_OFFSET + 4096,
            seed: 3,
        })
        .unwrap();
        let mut noise = vec![0u8; 64];
        v.fill(FILLER_OFFSET + 100, &mut noise);
        obj.extend_from_slice(&noise);
        let e = compile(&b, &idx, &obj, CompileOptions { allow_raw: false }).unwrap_err();
        let CompileError::Unmatchable { offset } = e else {
            panic!("{e:?}")
        };
        assert!((1000..1064).contains(&offset), "{offset}");
    }

    #[test]
    fn shared_base_with_changes() {
        let v = VirtualBlob::new(Identity {
            name: "b".into(),
            size: FILLER_OFFSET + (3 << 20),
            seed: 5,
        })
        .unwrap();
        let base = v.to_vec();
        let mut obj = base.clone();
        let mut x: u64 = 99;
        for _ in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let i = (x >> 20) as usize % obj.len();
            obj[i] = obj[i].wrapping_add(1 + (x >> 8) as u8 % 200);
        }
        // An insertion shifts the rest.
        obj.splice(1000..1000, b"inserted!".iter().copied());
        let idx = Index::sampled(&base).unwrap();
        let prog = compile(&base, &idx, &obj, CompileOptions { allow_raw: true }).unwrap();
        assert_eq!(rebuild(&base, &prog, &obj), obj);
        assert!(prog.raw_bytes < 2000 + 20, "{}", prog.raw_bytes);
        assert!(compile(&base, &idx, &obj, CompileOptions { allow_raw: false }).is_err());
        // Identical input: one BREF, strict.
        let same = compile(&base, &idx, &base, CompileOptions { allow_raw: false }).unwrap();
        assert_eq!(same.ops.len(), 1);
    }

    #[test]
    fn sampled_base_strict_finds_shifted_matches() {
        let v = VirtualBlob::new(Identity {
            name: "s".into(),
            size: FILLER_OFFSET + (17 << 20),
            seed: 6,
        })
        .unwrap();
        let base = v.to_vec();
        let idx = Index::sampled(&base).unwrap();
        assert!(idx.step() > 1);
        // A slice at an odd offset: found through sampling plus backward extension.
        let obj = base[1_000_003..1_200_000].to_vec();
        let prog = compile(&base, &idx, &obj, CompileOptions { allow_raw: false }).unwrap();
        assert_eq!(rebuild(&base, &prog, &obj), obj);
    }

    proptest::proptest! {
        #[test]
        fn compile_rebuilds_anything_with_raw(obj in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let b = blob();
            let prog = compile(&b, &Index::palette(), &obj, CompileOptions { allow_raw: true }).unwrap();
            proptest::prop_assert_eq!(rebuild(&b, &prog, &obj), obj.clone());
            let strict = compile(&b, &Index::palette(), &obj, CompileOptions { allow_raw: false });
            if let Ok(p) = strict { proptest::prop_assert_eq!(p.raw_bytes, 0); proptest::prop_assert_eq!(rebuild(&b, &p, &obj), obj); }
        }
    }
}
