//! Program codecs (`specs/iprog.md`): BREF/RAW sections, the section stream, the
//! IPROG object program, and the PVRT / OFFS window containers.
//!
//! Every decoder checks lengths before reading; none panics on any input.

use super::WireError;

/// The transform a BREF applies to the blob bytes it references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// Bytes as they are in the blob.
    Identity,
    /// Each byte XOR `k` (1..=31).
    Xor(u8),
    /// Each byte plus `k` modulo 256 (1..=31).
    Add(u8),
}

impl Transform {
    /// The 2-bit transform code and the imm5 of `specs/iprog.md` §2.
    pub fn code(self) -> (u8, u8) {
        match self {
            Transform::Identity => (0, 0),
            Transform::Xor(k) => (1, k & 31),
            Transform::Add(k) => (2, k & 31),
        }
    }

    /// The transform from a code and an imm5; `None` when not canonical
    /// (identity with imm5 ≠ 0, XOR/ADD with imm5 = 0, code 3).
    pub fn from_code(code: u8, imm5: u8) -> Option<Transform> {
        match (code, imm5) {
            (0, 0) => Some(Transform::Identity),
            (1, 1..=31) => Some(Transform::Xor(imm5)),
            (2, 1..=31) => Some(Transform::Add(imm5)),
            _ => None,
        }
    }

    /// Applies the transform to one byte.
    #[inline]
    pub fn byte(self, b: u8) -> u8 {
        match self {
            Transform::Identity => b,
            Transform::Xor(k) => b ^ k,
            Transform::Add(k) => b.wrapping_add(k),
        }
    }

    /// Writes `src` transformed into `dst` (equal lengths).
    pub fn apply(self, src: &[u8], dst: &mut [u8]) {
        match self {
            Transform::Identity => dst.copy_from_slice(src),
            Transform::Xor(k) => dst.iter_mut().zip(src).for_each(|(d, s)| *d = s ^ k),
            Transform::Add(k) => dst
                .iter_mut()
                .zip(src)
                .for_each(|(d, s)| *d = s.wrapping_add(k)),
        }
    }
}

/// A blob reference: `len` bytes at blob `offset`, transformed by `xf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bref {
    /// Absolute byte offset in the blob.
    pub offset: u64,
    /// Number of bytes (≥ 1).
    pub len: u64,
    /// Transform applied to each byte.
    pub xf: Transform,
}

/// One step of a program, as the compiler produces it: RAW bytes are not stored
/// here but taken from the object at the step's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A blob reference.
    Bref(Bref),
    /// `len` literal bytes of the object (shared-base mode with `--allow-raw` only).
    Raw(u64),
}

impl Op {
    /// Object bytes this step produces.
    pub fn len(&self) -> u64 {
        match self {
            Op::Bref(b) => b.len,
            Op::Raw(n) => *n,
        }
    }

    /// Whether the step produces no bytes (never true in a valid program).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoded section, borrowing RAW bytes from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section<'a> {
    /// A blob reference.
    Bref(Bref),
    /// Literal bytes.
    Raw(&'a [u8]),
}

impl Section<'_> {
    /// Object bytes this section produces.
    pub fn len(&self) -> u64 {
        match self {
            Section::Bref(b) => b.len,
            Section::Raw(r) => r.len() as u64,
        }
    }

    /// Whether the section produces no bytes (never true once decoded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a section could not be applied against a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The reference reaches past the end of the blob.
    #[error("BREF [{offset}, +{len}) is outside the blob of {blob_len} bytes")]
    OutsideBlob {
        /// BREF offset.
        offset: u64,
        /// BREF length.
        len: u64,
        /// Blob size.
        blob_len: u64,
    },
    /// The sections produce a different number of bytes than the output holds.
    #[error("sections produce {produced} bytes, expected {expected}")]
    Length {
        /// Bytes the sections would produce (saturating).
        produced: u64,
        /// Bytes expected.
        expected: u64,
    },
}

/// Writes `s` into `out[..s.len()]`, reading BREFs from `blob`.
/// `out.len()` must be at least `s.len()` (checked; `Length` otherwise).
pub fn apply_section(blob: &[u8], s: &Section<'_>, out: &mut [u8]) -> Result<(), ApplyError> {
    let len = s.len();
    if len > out.len() as u64 {
        return Err(ApplyError::Length {
            produced: len,
            expected: out.len() as u64,
        });
    }
    let n = len as usize;
    match s {
        Section::Raw(r) => out[..n].copy_from_slice(r),
        Section::Bref(b) => {
            let blob_len = blob.len() as u64;
            let end = b.offset.checked_add(b.len);
            match end {
                Some(end) if end <= blob_len => {
                    let src = &blob[b.offset as usize..end as usize];
                    b.xf.apply(src, &mut out[..n]);
                }
                _ => {
                    return Err(ApplyError::OutsideBlob {
                        offset: b.offset,
                        len: b.len,
                        blob_len,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The anchor of a blob of `blob_len` bytes: its middle, `floor(blob_len / 2)`.
pub fn anchor(blob_len: u64) -> u64 {
    blob_len / 2
}

// ---------------------------------------------------------------- varints

/// Appends `v` as unsigned LEB128 (1..=10 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `put_varint(v)` writes.
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads an unsigned LEB128 at `*pos`, advancing it. Rejects overlong
/// encodings (a last byte of 0 after the first) and values above 2^64 − 1.
pub fn get_varint(buf: &[u8], pos: &mut usize, field: &'static str) -> Result<u64, WireError> {
    let start = *pos;
    // Fast path: one byte (most lengths and deltas).
    if let Some(&b) = buf.get(start)
        && b < 0x80
    {
        *pos = start + 1;
        return Ok(u64::from(b));
    }
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(start + i) else {
            return Err(WireError::Truncated {
                at: start + i,
                need: 1,
            });
        };
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return Err(WireError::Invalid { field, at: start });
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(WireError::Invalid { field, at: start });
            }
            *pos = start + i + 1;
            return Ok(v);
        }
    }
    Err(WireError::Invalid { field, at: start })
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

// ---------------------------------------------------------------- sections

const OP_XF_SHIFT: u8 = 6;
const OP_HAS_OFFSET: u8 = 0x20;
const OP_RAW: u8 = 3;

/// Bytes `put_section` would append for `s` at `cursor`.
pub fn section_len(cursor: u64, s: &Section<'_>) -> usize {
    match s {
        Section::Bref(b) => {
            let off = if b.offset == cursor {
                0
            } else {
                varint_len(zigzag(b.offset.wrapping_sub(cursor) as i64))
            };
            1 + off + varint_len(b.len)
        }
        Section::Raw(r) => {
            let n = r.len();
            1 + if (1..=31).contains(&n) {
                0
            } else {
                varint_len(n as u64)
            } + n
        }
    }
}

/// Appends one section (`specs/iprog.md` §3) and advances the cursor by its
/// length (a BREF sets it to `offset + len`).
pub fn put_section(out: &mut Vec<u8>, cursor: &mut u64, s: &Section<'_>) {
    match s {
        Section::Bref(b) => {
            let (code, imm) = b.xf.code();
            let mut op = (code << OP_XF_SHIFT) | imm;
            if b.offset != *cursor {
                op |= OP_HAS_OFFSET;
                out.push(op);
                put_varint(out, zigzag(b.offset.wrapping_sub(*cursor) as i64));
            } else {
                out.push(op);
            }
            put_varint(out, b.len);
            *cursor = b.offset.wrapping_add(b.len);
        }
        Section::Raw(r) => {
            let n = r.len();
            if (1..=31).contains(&n) {
                out.push((OP_RAW << OP_XF_SHIFT) | n as u8);
            } else {
                out.push(OP_RAW << OP_XF_SHIFT);
                put_varint(out, n as u64);
            }
            out.extend_from_slice(r);
            *cursor = cursor.wrapping_add(n as u64);
        }
    }
}

/// Reads one section at `*pos` against `*cursor`, advancing both.
pub fn get_section<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    cursor: &mut u64,
) -> Result<Section<'a>, WireError> {
    let at = *pos;
    let Some(&op) = buf.get(at) else {
        return Err(WireError::Truncated { at, need: 1 });
    };
    *pos += 1;
    let code = op >> OP_XF_SHIFT;
    let imm = op & 31;
    if code == OP_RAW {
        if op & OP_HAS_OFFSET != 0 {
            return Err(WireError::Invalid {
                field: "section op",
                at,
            });
        }
        let n = if imm != 0 {
            u64::from(imm)
        } else {
            let n = get_varint(buf, pos, "RAW length")?;
            if n <= 31 {
                // 1..=31 must be inline; 0 is never valid.
                return Err(WireError::Invalid {
                    field: "RAW length",
                    at: at + 1,
                });
            }
            n
        };
        let avail = (buf.len() - *pos) as u64;
        if n > avail {
            return Err(WireError::Truncated {
                at: *pos,
                need: usize::try_from(n - avail).unwrap_or(usize::MAX),
            });
        }
        let r = &buf[*pos..*pos + n as usize];
        *pos += n as usize;
        *cursor = cursor.wrapping_add(n);
        return Ok(Section::Raw(r));
    }
    let Some(xf) = Transform::from_code(code, imm) else {
        return Err(WireError::Invalid {
            field: "transform",
            at,
        });
    };
    let offset = if op & OP_HAS_OFFSET != 0 {
        let d_at = *pos;
        let d = get_varint(buf, pos, "BREF delta")?;
        if d == 0 {
            // Delta 0 must use the short form.
            return Err(WireError::Invalid {
                field: "BREF delta",
                at: d_at,
            });
        }
        cursor.wrapping_add(unzigzag(d) as u64)
    } else {
        *cursor
    };
    let len_at = *pos;
    let len = get_varint(buf, pos, "BREF length")?;
    if len == 0 {
        return Err(WireError::Invalid {
            field: "BREF length",
            at: len_at,
        });
    }
    *cursor = offset.wrapping_add(len);
    Ok(Section::Bref(Bref { offset, len, xf }))
}

/// Reads `count` sections from `buf[start..]`, which must hold exactly them.
/// Calls `f` on each; stops at the first error (from decoding or from `f`).
pub fn for_each_section<'a, E: From<WireError>>(
    buf: &'a [u8],
    start: usize,
    count: u64,
    anchor: u64,
    mut f: impl FnMut(Section<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let mut pos = start;
    let mut cursor = anchor;
    for _ in 0..count {
        let s = get_section(buf, &mut pos, &mut cursor)?;
        f(s)?;
    }
    if pos != buf.len() {
        return Err(WireError::Trailing {
            at: pos,
            extra: buf.len() - pos,
        }
        .into());
    }
    Ok(())
}

fn need(buf: &[u8], at: usize, n: usize) -> Result<(), WireError> {
    if buf.len() < at + n {
        Err(WireError::Truncated {
            at: buf.len(),
            need: at + n - buf.len(),
        })
    } else {
        Ok(())
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

// ---------------------------------------------------------------- PVRT

/// PVRT container magic.
pub const PVRT_MAGIC: [u8; 4] = *b"PVRT";
/// OFFS container magic.
pub const OFFS_MAGIC: [u8; 4] = *b"OFFS";
/// Bytes of a PVRT or OFFS container header.
pub const CONTAINER_HEADER_LEN: usize = 8;
/// Bytes of one OFFS tuple.
pub const OFFS_TUPLE_LEN: usize = 13;
/// Container flag: RAW sections present (PVRT only, shared-base `--allow-raw`).
pub const FLAG_RAW: u8 = 0x01;
/// OFFS tuple flag: the offset field is a delta from the anchor.
pub const OFFS_RELATIVE: u8 = 0x01;

/// Which container a window uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// PVRT: compact section stream.
    Pvrt,
    /// OFFS: fixed 13-byte offset tuples, BREF only.
    Offs,
}

impl Mode {
    /// Wire code (PREFACE `mode`).
    pub fn code(self) -> u8 {
        match self {
            Mode::Pvrt => 1,
            Mode::Offs => 2,
        }
    }

    /// From a wire code.
    pub fn from_code(c: u8) -> Option<Mode> {
        match c {
            1 => Some(Mode::Pvrt),
            2 => Some(Mode::Offs),
            _ => None,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "pvrt" => Ok(Mode::Pvrt),
            "offs" => Ok(Mode::Offs),
            o => Err(format!("mode: unknown mode {o:?} (expected pvrt or offs)")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Pvrt => "pvrt",
            Mode::Offs => "offs",
        })
    }
}

/// Bytes one section takes in a container of `mode` at `cursor`; `None` when the
/// mode cannot carry it (RAW in OFFS, or an OFFS length above u32).
pub fn container_section_len(mode: Mode, cursor: u64, s: &Section<'_>) -> Option<usize> {
    match mode {
        Mode::Pvrt => Some(section_len(cursor, s)),
        Mode::Offs => match s {
            Section::Bref(b) if b.len <= u64::from(u32::MAX) => Some(OFFS_TUPLE_LEN),
            _ => None,
        },
    }
}

/// Encodes a container of `mode` holding `sections` (anchor-relative).
/// Fails on RAW in OFFS, a BREF longer than u32 in OFFS, or more than 65,535 sections.
pub fn encode_container(
    mode: Mode,
    anchor: u64,
    sections: &[Section<'_>],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let count = u16::try_from(sections.len()).map_err(|_| WireError::TooLarge {
        what: "container section count",
        need: sections.len(),
        max: u16::MAX as usize,
    })?;
    let raw = sections.iter().any(|s| matches!(s, Section::Raw(_)));
    match mode {
        Mode::Pvrt => {
            out.extend_from_slice(&PVRT_MAGIC);
            out.push(1);
            out.push(if raw { FLAG_RAW } else { 0 });
            out.extend_from_slice(&count.to_le_bytes());
            let mut cursor = anchor;
            for s in sections {
                put_section(out, &mut cursor, s);
            }
        }
        Mode::Offs => {
            out.extend_from_slice(&OFFS_MAGIC);
            out.push(1);
            out.push(0);
            out.extend_from_slice(&count.to_le_bytes());
            for s in sections {
                let Section::Bref(b) = s else {
                    return Err(WireError::Invalid {
                        field: "OFFS section (RAW is not expressible)",
                        at: out.len(),
                    });
                };
                let len = u32::try_from(b.len).map_err(|_| WireError::TooLarge {
                    what: "OFFS tuple length",
                    need: usize::try_from(b.len).unwrap_or(usize::MAX),
                    max: u32::MAX as usize,
                })?;
                let (code, imm) = b.xf.code();
                out.push(OFFS_RELATIVE | (code << 1) | (imm << 3));
                out.extend_from_slice(&b.offset.wrapping_sub(anchor).to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// A PVRT or OFFS container viewed in place. `new_checked` validates the header
/// and every section, so iteration afterwards cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct ContainerPacket<B: AsRef<[u8]>> {
    buf: B,
    mode: Mode,
    anchor: u64,
    decoded: u64,
}

impl<B: AsRef<[u8]>> ContainerPacket<B> {
    /// Validates `buf` as a container (magic, version, flags, every section,
    /// no trailing bytes). `allow_raw` is whether RAW sections may appear.
    pub fn new_checked(buf: B, anchor: u64, allow_raw: bool) -> Result<Self, WireError> {
        let b = buf.as_ref();
        need(b, 0, CONTAINER_HEADER_LEN)?;
        let mode = match [b[0], b[1], b[2], b[3]] {
            PVRT_MAGIC => Mode::Pvrt,
            OFFS_MAGIC => Mode::Offs,
            _ => return Err(WireError::BadMagic { at: 0 }),
        };
        if b[4] != 1 {
            return Err(WireError::Version(b[4]));
        }
        let flags = b[5];
        let count = u64::from(u16_at(b, 6));
        let mut decoded: u64 = 0;
        match mode {
            Mode::Pvrt => {
                if flags & !FLAG_RAW != 0 || (flags & FLAG_RAW != 0 && !allow_raw) {
                    return Err(WireError::Invalid {
                        field: "PVRT flags",
                        at: 5,
                    });
                }
                let raw_ok = flags & FLAG_RAW != 0;
                for_each_section::<WireError>(b, CONTAINER_HEADER_LEN, count, anchor, |s| {
                    if !raw_ok && matches!(s, Section::Raw(_)) {
                        return Err(WireError::Invalid {
                            field: "RAW section in a BREF-only container",
                            at: 0,
                        });
                    }
                    decoded = decoded.saturating_add(s.len());
                    Ok(())
                })?;
            }
            Mode::Offs => {
                if flags != 0 {
                    return Err(WireError::Invalid {
                        field: "OFFS flags",
                        at: 5,
                    });
                }
                let want = CONTAINER_HEADER_LEN + count as usize * OFFS_TUPLE_LEN;
                need(b, 0, want)?;
                if b.len() != want {
                    return Err(WireError::Trailing {
                        at: want,
                        extra: b.len() - want,
                    });
                }
                for i in 0..count as usize {
                    let at = CONTAINER_HEADER_LEN + i * OFFS_TUPLE_LEN;
                    let tf = b[at];
                    if Transform::from_code((tf >> 1) & 3, tf >> 3).is_none() {
                        return Err(WireError::Invalid {
                            field: "OFFS tuple flags",
                            at,
                        });
                    }
                    let len = u32_at(b, at + 9);
                    if len == 0 {
                        return Err(WireError::Invalid {
                            field: "OFFS tuple length",
                            at: at + 9,
                        });
                    }
                    decoded = decoded.saturating_add(u64::from(len));
                }
            }
        }
        Ok(ContainerPacket {
            buf,
            mode,
            anchor,
            decoded,
        })
    }

    /// The container's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of sections.
    pub fn count(&self) -> u16 {
        u16_at(self.buf.as_ref(), 6)
    }

    /// Whether the RAW flag is set.
    pub fn has_raw(&self) -> bool {
        self.mode == Mode::Pvrt && self.buf.as_ref()[5] & FLAG_RAW != 0
    }

    /// Calls `f` on each section in order.
    pub fn for_each<'s, E: From<WireError>>(
        &'s self,
        mut f: impl FnMut(Section<'s>) -> Result<(), E>,
    ) -> Result<(), E> {
        let b = self.buf.as_ref();
        match self.mode {
            Mode::Pvrt => for_each_section(
                b,
                CONTAINER_HEADER_LEN,
                u64::from(self.count()),
                self.anchor,
                f,
            ),
            Mode::Offs => {
                for i in 0..self.count() as usize {
                    let at = CONTAINER_HEADER_LEN + i * OFFS_TUPLE_LEN;
                    let tf = b[at];
                    let xf =
                        Transform::from_code((tf >> 1) & 3, tf >> 3).ok_or(WireError::Invalid {
                            field: "OFFS tuple flags",
                            at,
                        })?;
                    let raw_off = u64_at(b, at + 1);
                    let offset = if tf & OFFS_RELATIVE != 0 {
                        self.anchor.wrapping_add(raw_off)
                    } else {
                        raw_off
                    };
                    let len = u64::from(u32_at(b, at + 9));
                    f(Section::Bref(Bref { offset, len, xf }))?;
                }
                Ok(())
            }
        }
    }

    /// Total bytes the sections produce (saturating).
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Rebuilds the container's bytes into `out` from `blob`; `out.len()` must
    /// equal the decoded length exactly.
    pub fn apply(&self, blob: &[u8], out: &mut [u8]) -> Result<(), ApplyError> {
        let expected = out.len() as u64;
        let produced = self.decoded_len();
        if produced != expected {
            return Err(ApplyError::Length { produced, expected });
        }
        let mut pos = 0usize;
        let r: Result<(), ContainerApply> = self.for_each(|s| {
            apply_section(blob, &s, &mut out[pos..]).map_err(ContainerApply::Apply)?;
            pos += s.len() as usize;
            Ok(())
        });
        match r {
            Ok(()) => Ok(()),
            Err(ContainerApply::Apply(e)) => Err(e),
            // Unreachable after new_checked, but mapped rather than unwrapped.
            Err(ContainerApply::Wire) => Err(ApplyError::Length { produced, expected }),
        }
    }
}

enum ContainerApply {
    Apply(ApplyError),
    Wire,
}

impl From<WireError> for ContainerApply {
    fn from(_: WireError) -> Self {
        ContainerApply::Wire
    }
}

/// Why a window could not be applied in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The container is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A section reaches outside the blob or the output.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Checks and applies a container in one pass: the same checks as
/// [`ContainerPacket::new_checked`] plus `decoded length == out.len()`, writing
/// each section into `out` as it is read. On error, `out` may be partly written.
pub fn apply_container(
    buf: &[u8],
    anchor: u64,
    allow_raw: bool,
    blob: &[u8],
    out: &mut [u8],
) -> Result<Mode, WindowError> {
    need(buf, 0, CONTAINER_HEADER_LEN)?;
    let mode = match [buf[0], buf[1], buf[2], buf[3]] {
        PVRT_MAGIC => Mode::Pvrt,
        OFFS_MAGIC => Mode::Offs,
        _ => return Err(WireError::BadMagic { at: 0 }.into()),
    };
    if buf[4] != 1 {
        return Err(WireError::Version(buf[4]).into());
    }
    let (flags, count) = (buf[5], u16_at(buf, 6) as usize);
    let mut pos = 0usize;
    match mode {
        Mode::Pvrt => {
            if flags & !FLAG_RAW != 0 || (flags & FLAG_RAW != 0 && !allow_raw) {
                return Err(WireError::Invalid {
                    field: "PVRT flags",
                    at: 5,
                }
                .into());
            }
            let raw_ok = flags & FLAG_RAW != 0;
            let mut at = CONTAINER_HEADER_LEN;
            let mut cursor = anchor;
            for _ in 0..count {
                let s = get_section(buf, &mut at, &mut cursor)?;
                if !raw_ok && matches!(s, Section::Raw(_)) {
                    return Err(WireError::Invalid {
                        field: "RAW section in a BREF-only container",
                        at,
                    }
                    .into());
                }
                apply_section(blob, &s, &mut out[pos..])?;
                pos += s.len() as usize;
            }
            if at != buf.len() {
                return Err(WireError::Trailing {
                    at,
                    extra: buf.len() - at,
                }
                .into());
            }
        }
        Mode::Offs => {
            if flags != 0 {
                return Err(WireError::Invalid {
                    field: "OFFS flags",
                    at: 5,
                }
                .into());
            }
            let want = CONTAINER_HEADER_LEN + count * OFFS_TUPLE_LEN;
            need(buf, 0, want)?;
            if buf.len() != want {
                return Err(WireError::Trailing {
                    at: want,
                    extra: buf.len() - want,
                }
                .into());
            }
            for i in 0..count {
                let at = CONTAINER_HEADER_LEN + i * OFFS_TUPLE_LEN;
                let tf = buf[at];
                let xf =
                    Transform::from_code((tf >> 1) & 3, tf >> 3).ok_or(WireError::Invalid {
                        field: "OFFS tuple flags",
                        at,
                    })?;
                let raw_off = u64_at(buf, at + 1);
                let offset = if tf & OFFS_RELATIVE != 0 {
                    anchor.wrapping_add(raw_off)
                } else {
                    raw_off
                };
                let len = u64::from(u32_at(buf, at + 9));
                if len == 0 {
                    return Err(WireError::Invalid {
                        field: "OFFS tuple length",
                        at: at + 9,
                    }
                    .into());
                }
                let s = Section::Bref(Bref { offset, len, xf });
                apply_section(blob, &s, &mut out[pos..])?;
                pos += len as usize;
            }
        }
    }
    if pos != out.len() {
        return Err(ApplyError::Length {
            produced: pos as u64,
            expected: out.len() as u64,
        }
        .into());
    }
    Ok(mode)
}

// ---------------------------------------------------------------- IPROG

/// IPROG magic.
pub const IPROG_MAGIC: [u8; 4] = *b"IPRG";
/// Bytes of the IPROG header.
pub const IPROG_HEADER_LEN: usize = 96;

/// The parsed IPROG header (`specs/iprog.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IprogHeader {
    /// Whether RAW sections may appear (shared-base `--allow-raw`).
    pub raw: bool,
    /// Bytes of the object the program rebuilds.
    pub object_size: u64,
    /// Bytes of the blob (or shared base) it references.
    pub blob_size: u64,
    /// Number of sections.
    pub sections: u64,
    /// BLAKE3 of the object.
    pub object_hash: [u8; 32],
    /// Fingerprint of the blob.
    pub blob_fingerprint: [u8; 32],
}

impl IprogHeader {
    /// Appends the 96-byte header.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&IPROG_MAGIC);
        out.push(1);
        out.push(if self.raw { FLAG_RAW } else { 0 });
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.object_size.to_le_bytes());
        out.extend_from_slice(&self.blob_size.to_le_bytes());
        out.extend_from_slice(&self.sections.to_le_bytes());
        out.extend_from_slice(&self.object_hash);
        out.extend_from_slice(&self.blob_fingerprint);
    }

    /// Parses the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<IprogHeader, WireError> {
        need(b, 0, IPROG_HEADER_LEN)?;
        if b[0..4] != IPROG_MAGIC {
            return Err(WireError::BadMagic { at: 0 });
        }
        if b[4] != 1 {
            return Err(WireError::Version(b[4]));
        }
        if b[5] & !FLAG_RAW != 0 {
            return Err(WireError::Invalid {
                field: "IPROG flags",
                at: 5,
            });
        }
        if b[6] != 0 || b[7] != 0 {
            return Err(WireError::Invalid {
                field: "IPROG reserved",
                at: 6,
            });
        }
        let mut object_hash = [0u8; 32];
        object_hash.copy_from_slice(&b[32..64]);
        let mut blob_fingerprint = [0u8; 32];
        blob_fingerprint.copy_from_slice(&b[64..96]);
        Ok(IprogHeader {
            raw: b[5] & FLAG_RAW != 0,
            object_size: u64_at(b, 8),
            blob_size: u64_at(b, 16),
            sections: u64_at(b, 24),
            object_hash,
            blob_fingerprint,
        })
    }
}

/// Encodes an IPROG: header, then `ops` as sections (cursor starting at the
/// anchor of `header.blob_size`), RAW bytes taken from `object`.
/// `header.sections` is overwritten with `ops.len()`.
pub fn encode_iprog(header: &IprogHeader, ops: &[Op], object: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(IPROG_HEADER_LEN + ops.len() * 4);
    let h = IprogHeader {
        sections: ops.len() as u64,
        ..*header
    };
    h.emit(&mut out);
    let mut cursor = anchor(header.blob_size);
    let mut pos = 0usize;
    for op in ops {
        let s = match *op {
            Op::Bref(b) => Section::Bref(b),
            Op::Raw(n) => Section::Raw(&object[pos..pos + n as usize]),
        };
        pos += op.len() as usize;
        put_section(&mut out, &mut cursor, &s);
    }
    out
}

/// An IPROG viewed in place; `new_checked` validates every section.
#[derive(Debug, Clone, Copy)]
pub struct IprogPacket<B: AsRef<[u8]>> {
    buf: B,
    header: IprogHeader,
}

impl<B: AsRef<[u8]>> IprogPacket<B> {
    /// Validates the header and every section, that no RAW appears unless the
    /// flag says so, and that the sections produce exactly `object_size` bytes.
    pub fn new_checked(buf: B) -> Result<Self, WireError> {
        let b = buf.as_ref();
        let header = IprogHeader::parse(b)?;
        let mut total: u64 = 0;
        for_each_section::<WireError>(
            b,
            IPROG_HEADER_LEN,
            header.sections,
            anchor(header.blob_size),
            |s| {
                if !header.raw && matches!(s, Section::Raw(_)) {
                    return Err(WireError::Invalid {
                        field: "RAW section in a BREF-only IPROG",
                        at: IPROG_HEADER_LEN,
                    });
                }
                total = total.saturating_add(s.len());
                Ok(())
            },
        )?;
        if total != header.object_size {
            return Err(WireError::Invalid {
                field: "object size (sections disagree)",
                at: 8,
            });
        }
        Ok(IprogPacket { buf, header })
    }

    /// The header.
    pub fn header(&self) -> &IprogHeader {
        &self.header
    }

    /// Calls `f` on each section in order.
    pub fn for_each<'s, E: From<WireError>>(
        &'s self,
        f: impl FnMut(Section<'s>) -> Result<(), E>,
    ) -> Result<(), E> {
        for_each_section(
            self.buf.as_ref(),
            IPROG_HEADER_LEN,
            self.header.sections,
            anchor(self.header.blob_size),
            f,
        )
    }

    /// Rebuilds the object from `blob` (whose length must be `blob_size`).
    pub fn rebuild(&self, blob: &[u8]) -> Result<Vec<u8>, ApplyError> {
        let size = usize::try_from(self.header.object_size).map_err(|_| ApplyError::Length {
            produced: self.header.object_size,
            expected: usize::MAX as u64,
        })?;
        let mut out = vec![0u8; size];
        let mut pos = 0usize;
        let r: Result<(), ContainerApply> = self.for_each(|s| {
            apply_section(blob, &s, &mut out[pos..]).map_err(ContainerApply::Apply)?;
            pos += s.len() as usize;
            Ok(())
        });
        match r {
            Ok(()) => Ok(out),
            Err(ContainerApply::Apply(e)) => Err(e),
            Err(ContainerApply::Wire) => Err(ApplyError::Length {
                produced: pos as u64,
                expected: size as u64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn xf() -> impl Strategy<Value = Transform> {
        prop_oneof![
            Just(Transform::Identity),
            (1u8..=31).prop_map(Transform::Xor),
            (1u8..=31).prop_map(Transform::Add),
        ]
    }

    fn bref() -> impl Strategy<Value = Bref> {
        (any::<u64>(), 1u64..=u64::MAX, xf()).prop_map(|(offset, len, xf)| Bref { offset, len, xf })
    }

    #[derive(Debug, Clone)]
    enum OwnedSection {
        Bref(Bref),
        Raw(Vec<u8>),
    }

    fn owned() -> impl Strategy<Value = OwnedSection> {
        prop_oneof![
            bref().prop_map(OwnedSection::Bref),
            proptest::collection::vec(any::<u8>(), 1..80).prop_map(OwnedSection::Raw),
        ]
    }

    fn borrow(v: &[OwnedSection]) -> Vec<Section<'_>> {
        v.iter()
            .map(|s| match s {
                OwnedSection::Bref(b) => Section::Bref(*b),
                OwnedSection::Raw(r) => Section::Raw(r),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn varint_roundtrip(v in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut pos = 0;
            prop_assert_eq!(get_varint(&out, &mut pos, "v"), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn section_stream_roundtrip(v in proptest::collection::vec(owned(), 0..40), anchor in any::<u64>()) {
            let secs = borrow(&v);
            let mut out = Vec::new();
            let mut cursor = anchor;
            let mut predicted = 0;
            for s in &secs {
                predicted += section_len(cursor, s);
                put_section(&mut out, &mut cursor, s);
            }
            prop_assert_eq!(predicted, out.len());
            let mut back = Vec::new();
            for_each_section::<WireError>(&out, 0, secs.len() as u64, anchor, |s| { back.push(s); Ok(()) }).unwrap();
            prop_assert_eq!(back, secs);
        }

        #[test]
        fn pvrt_roundtrip(v in proptest::collection::vec(owned(), 0..40), anchor in any::<u64>()) {
            let secs = borrow(&v);
            let mut out = Vec::new();
            encode_container(Mode::Pvrt, anchor, &secs, &mut out).unwrap();
            let c = ContainerPacket::new_checked(&out[..], anchor, true).unwrap();
            let mut back = Vec::new();
            c.for_each::<WireError>(|s| { back.push(s); Ok(()) }).unwrap();
            prop_assert_eq!(back, secs.clone());
            let has_raw = secs.iter().any(|s| matches!(s, Section::Raw(_)));
            prop_assert_eq!(ContainerPacket::new_checked(&out[..], anchor, false).is_ok(), !has_raw);
        }

        #[test]
        fn offs_roundtrip(v in proptest::collection::vec((any::<u64>(), 1u64..=u32::MAX as u64, xf()), 0..40), anchor in any::<u64>()) {
            let secs: Vec<Section<'_>> = v.iter().map(|&(offset, len, xf)| Section::Bref(Bref { offset, len, xf })).collect();
            let mut out = Vec::new();
            encode_container(Mode::Offs, anchor, &secs, &mut out).unwrap();
            prop_assert_eq!(out.len(), CONTAINER_HEADER_LEN + secs.len() * OFFS_TUPLE_LEN);
            let c = ContainerPacket::new_checked(&out[..], anchor, false).unwrap();
            let mut back = Vec::new();
            c.for_each::<WireError>(|s| { back.push(s); Ok(()) }).unwrap();
            prop_assert_eq!(back, secs);
        }

        #[test]
        fn one_pass_apply_equals_checked_apply(v in proptest::collection::vec((0u64..4000, 1u64..100, 0u8..3, any::<bool>()), 0..30), pvrt in any::<bool>(), extra in 0usize..3) {
            let blob: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 256) as u8).collect();
            let raws: Vec<Vec<u8>> = v.iter().map(|&(_, n, _, _)| vec![n as u8; n as usize]).collect();
            let secs: Vec<Section<'_>> = v.iter().zip(&raws).map(|(&(o, n, x, raw), r)| {
                if raw && pvrt { Section::Raw(r) } else {
                    let xf = [Transform::Identity, Transform::Xor(3), Transform::Add(9)][x as usize];
                    Section::Bref(Bref { offset: o, len: n, xf })
                }
            }).collect();
            let mode = if pvrt { Mode::Pvrt } else { Mode::Offs };
            let mut c = Vec::new();
            encode_container(mode, 2048, &secs, &mut c).unwrap();
            let total: u64 = secs.iter().map(|s| s.len()).sum();
            let mut a = vec![0u8; total as usize + extra];
            let mut b = vec![0u8; total as usize + extra];
            let one = apply_container(&c, 2048, true, &blob, &mut a);
            let two = ContainerPacket::new_checked(&c[..], 2048, true).map_err(WindowError::from).and_then(|p| p.apply(&blob, &mut b).map_err(WindowError::from));
            prop_assert_eq!(one.is_ok(), two.is_ok());
            if one.is_ok() { prop_assert_eq!(a, b); }
        }

        #[test]
        fn one_pass_apply_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300), n in 0usize..500) {
            let mut out = vec![0u8; n];
            let _ = apply_container(&b, 100, true, &[5u8; 300], &mut out);
        }

        #[test]
        fn containers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200), anchor in any::<u64>()) {
            if let Ok(c) = ContainerPacket::new_checked(&b[..], anchor, true) {
                let _ = c.decoded_len();
                let mut out = vec![0u8; 64];
                let _ = c.apply(&[1, 2, 3], &mut out);
            }
            let _ = IprogPacket::new_checked(&b[..]).map(|p| p.rebuild(&[0; 16]));
        }

        #[test]
        fn containers_with_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), count in any::<u16>(), pvrt in any::<bool>()) {
            let mut b = if pvrt { PVRT_MAGIC.to_vec() } else { OFFS_MAGIC.to_vec() };
            b.push(1);
            b.push(if pvrt { FLAG_RAW } else { 0 });
            b.extend_from_slice(&(count % 8).to_le_bytes());
            b.extend_from_slice(&tail);
            if let Ok(c) = ContainerPacket::new_checked(&b[..], 1 << 20, true) {
                let n = c.decoded_len().min(1 << 16) as usize;
                let mut out = vec![0u8; n];
                let _ = c.apply(&[7u8; 4096], &mut out);
            }
        }

        #[test]
        fn iprog_roundtrip(data in proptest::collection::vec(any::<u8>(), 1..300), cut in proptest::collection::vec(1u64..40, 1..20)) {
            // A program over a blob equal to the data itself: alternate BREFs and RAWs.
            let blob = data.clone();
            let mut ops = Vec::new();
            let mut pos = 0u64;
            for (i, c) in cut.iter().enumerate() {
                let n = (*c).min(data.len() as u64 - pos);
                if n == 0 { break; }
                ops.push(if i % 2 == 0 { Op::Bref(Bref { offset: pos, len: n, xf: Transform::Identity }) } else { Op::Raw(n) });
                pos += n;
            }
            let rest = data.len() as u64 - pos;
            if rest > 0 { ops.push(Op::Bref(Bref { offset: pos, len: rest, xf: Transform::Identity })); }
            let h = IprogHeader { raw: true, object_size: data.len() as u64, blob_size: blob.len() as u64, sections: 0, object_hash: [1; 32], blob_fingerprint: [2; 32] };
            let enc = encode_iprog(&h, &ops, &data);
            let p = IprogPacket::new_checked(&enc[..]).unwrap();
            prop_assert_eq!(p.header().sections, ops.len() as u64);
            prop_assert_eq!(p.rebuild(&blob).unwrap(), data);
        }
    }

    #[test]
    fn transforms() {
        assert_eq!(Transform::Xor(3).byte(1), 2);
        assert_eq!(Transform::Add(5).byte(254), 3);
        assert_eq!(Transform::from_code(0, 1), None);
        assert_eq!(Transform::from_code(1, 0), None);
        assert_eq!(Transform::from_code(3, 0), None);
    }

    #[test]
    fn varint_rejects_overlong() {
        let mut pos = 0;
        assert!(get_varint(&[0x80, 0x00], &mut pos, "v").is_err());
        let mut pos = 0;
        assert!(get_varint(&[0xff; 11], &mut pos, "v").is_err());
        let mut pos = 0;
        assert!(
            get_varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                &mut pos,
                "v"
            )
            .is_err()
        );
    }

    #[test]
    fn apply_rejects_outside_blob() {
        let s = Section::Bref(Bref {
            offset: 10,
            len: 10,
            xf: Transform::Identity,
        });
        let mut out = [0u8; 10];
        assert!(matches!(
            apply_section(&[0u8; 15], &s, &mut out),
            Err(ApplyError::OutsideBlob { .. })
        ));
        let s = Section::Bref(Bref {
            offset: u64::MAX,
            len: 2,
            xf: Transform::Identity,
        });
        assert!(matches!(
            apply_section(&[0u8; 15], &s, &mut out),
            Err(ApplyError::OutsideBlob { .. })
        ));
    }
}
