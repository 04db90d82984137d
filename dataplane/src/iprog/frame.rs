//! Datagram frames of the arithmetic transfer (`specs/udp-transfer.md`):
//! a 10-byte header, a typed payload, a CRC-16/CCITT-FALSE trailer; ≤ 1200 bytes.
//!
//! [`FramePacket`] is the byte view (checked once by `new_checked`, then no
//! accessor can panic); [`FrameRepr`] is the parsed form.

use super::WireError;
use super::crc16::crc16;

/// Largest datagram: no IP fragmentation on a 1280-byte IPv6 path.
pub const MAX_DATAGRAM: usize = 1200;
/// Header bytes.
pub const HEADER_LEN: usize = 10;
/// Trailer (CRC16) bytes.
pub const TRAILER_LEN: usize = 2;
/// Largest payload.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - HEADER_LEN - TRAILER_LEN;
/// Magic: ASCII "PF".
pub const MAGIC: [u8; 2] = *b"PF";
/// Protocol version.
pub const VERSION: u8 = 1;
/// Bytes of a WIN payload before its container.
pub const WIN_FIXED: usize = 16;
/// Largest container in one WIN frame.
pub const MAX_CONTAINER: usize = MAX_PAYLOAD - WIN_FIXED;
/// Bytes of one NEED range.
pub const NEED_RANGE_LEN: usize = 8;
/// Most ranges in one NEED frame.
pub const MAX_NEED_RANGES: usize = (MAX_PAYLOAD - 10) / NEED_RANGE_LEN;
/// Longest MFST name in bytes.
pub const MAX_NAME: usize = 255;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const SESSION: Range<usize> = 4..8;
    pub const LENGTH: Range<usize> = 8..10;
}

/// Frame type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Blob identity, anchor and mode (sender → receiver).
    Preface = 1,
    /// Object manifest (sender → receiver).
    Mfst = 2,
    /// Missing windows (receiver → sender).
    Need = 3,
    /// One window's container (sender → receiver).
    Win = 4,
    /// A NEED round was served (sender → receiver).
    End = 5,
    /// Outcome (receiver → sender).
    Done = 6,
    /// Flow-control progress (receiver → sender).
    Ack = 7,
}

impl FrameType {
    /// From the wire code.
    pub fn from_code(c: u8) -> Option<FrameType> {
        Some(match c {
            1 => FrameType::Preface,
            2 => FrameType::Mfst,
            3 => FrameType::Need,
            4 => FrameType::Win,
            5 => FrameType::End,
            6 => FrameType::Done,
            7 => FrameType::Ack,
            _ => return None,
        })
    }
}

/// A datagram viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct FramePacket<B: AsRef<[u8]>> {
    buf: B,
}

impl<B: AsRef<[u8]>> FramePacket<B> {
    /// Checks size limits, magic, version, type, length and CRC.
    pub fn new_checked(buf: B) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() > MAX_DATAGRAM {
            return Err(WireError::TooLarge {
                what: "datagram",
                need: b.len(),
                max: MAX_DATAGRAM,
            });
        }
        if b.len() < HEADER_LEN + TRAILER_LEN {
            return Err(WireError::Truncated {
                at: b.len(),
                need: HEADER_LEN + TRAILER_LEN - b.len(),
            });
        }
        if b[field::MAGIC] != MAGIC {
            return Err(WireError::BadMagic { at: 0 });
        }
        if b[field::VERSION] != VERSION {
            return Err(WireError::Version(b[field::VERSION]));
        }
        let len = usize::from(u16::from_le_bytes([b[8], b[9]]));
        let want = HEADER_LEN + len + TRAILER_LEN;
        if b.len() < want {
            return Err(WireError::Truncated {
                at: b.len(),
                need: want - b.len(),
            });
        }
        if b.len() > want {
            return Err(WireError::Trailing {
                at: want,
                extra: b.len() - want,
            });
        }
        let computed = crc16(&b[..HEADER_LEN + len]);
        let carried = u16::from_be_bytes([b[HEADER_LEN + len], b[HEADER_LEN + len + 1]]);
        if computed != carried {
            return Err(WireError::Crc { computed, carried });
        }
        if FrameType::from_code(b[field::TYPE]).is_none() {
            return Err(WireError::UnknownType(b[field::TYPE]));
        }
        Ok(FramePacket { buf })
    }

    /// The frame type.
    pub fn frame_type(&self) -> FrameType {
        FrameType::from_code(self.buf.as_ref()[field::TYPE]).unwrap_or(FrameType::Done)
    }

    /// The session id.
    pub fn session(&self) -> u32 {
        let b = &self.buf.as_ref()[field::SESSION];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        let len = usize::from(u16::from_le_bytes([
            b[field::LENGTH][0],
            b[field::LENGTH][1],
        ]));
        &b[HEADER_LEN..HEADER_LEN + len]
    }
}

/// PREFACE payload: the transfer's blob identity, anchor and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefaceRepr {
    /// Container mode code (1 PVRT, 2 OFFS).
    pub mode: u8,
    /// Bit 0: RAW sections may appear (shared-base `--allow-raw`).
    pub flags: u8,
    /// The anchor (middle of the blob).
    pub anchor: u64,
    /// Blob size in bytes.
    pub blob_size: u64,
    /// Blob fingerprint.
    pub blob_fingerprint: [u8; 32],
}

/// MFST payload: what object is being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfstRepr {
    /// Object bytes.
    pub object_size: u64,
    /// BLAKE3 of the object.
    pub object_hash: [u8; 32],
    /// Number of windows.
    pub windows: u32,
    /// File name (a single path component, UTF-8, ≤ 255 bytes; may be empty).
    pub name: String,
}

/// NEED payload: windows the receiver still lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedRepr {
    /// NEED sequence number (0 is the first NEED of a session).
    pub seq: u32,
    /// Windows missing in total (may exceed what `ranges` lists).
    pub missing: u32,
    /// `(first window, count)` ranges, count ≥ 1, at most [`MAX_NEED_RANGES`].
    pub ranges: Vec<(u32, u32)>,
}

/// WIN payload: one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinRepr<'a> {
    /// Window index.
    pub index: u32,
    /// Object offset of the window's first byte.
    pub offset: u64,
    /// Object bytes the window produces.
    pub len: u32,
    /// The PVRT or OFFS container.
    pub container: &'a [u8],
}

/// END payload: all windows asked for by NEED `seq` were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRepr {
    /// The NEED served (`u32::MAX` before any NEED arrived is never sent).
    pub seq: u32,
    /// Windows sent for it.
    pub sent: u32,
}

/// ACK payload: flow-control progress within the round of NEED `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    /// The receiver's current NEED seq.
    pub seq: u32,
    /// Highest window index received since that NEED was sent.
    pub highest: u32,
}

/// DONE status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DoneStatus {
    /// Object rebuilt and its BLAKE3 verified.
    Ok = 0,
    /// The receiver's blob does not match the PREFACE.
    BlobMismatch = 1,
    /// All windows arrived but the object's BLAKE3 differs.
    HashMismatch = 2,
    /// The receiver refuses the transfer (size limit, bad manifest, busy).
    Refused = 3,
}

impl DoneStatus {
    /// From the wire code.
    pub fn from_code(c: u8) -> Option<DoneStatus> {
        Some(match c {
            0 => DoneStatus::Ok,
            1 => DoneStatus::BlobMismatch,
            2 => DoneStatus::HashMismatch,
            3 => DoneStatus::Refused,
            _ => return None,
        })
    }
}

/// DONE payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneRepr {
    /// Outcome.
    pub status: DoneStatus,
    /// The receiver's BLAKE3 of the rebuilt object (zeros when none).
    pub object_hash: [u8; 32],
}

/// A parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameRepr<'a> {
    /// PREFACE.
    Preface(PrefaceRepr),
    /// MFST.
    Mfst(MfstRepr),
    /// NEED.
    Need(NeedRepr),
    /// WIN.
    Win(WinRepr<'a>),
    /// END.
    End(EndRepr),
    /// DONE.
    Done(DoneRepr),
    /// ACK.
    Ack(AckRepr),
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn exact(p: &[u8], n: usize) -> Result<(), WireError> {
    let at = HEADER_LEN + p.len();
    if p.len() < n {
        Err(WireError::Truncated {
            at,
            need: n - p.len(),
        })
    } else if p.len() > n {
        Err(WireError::Trailing {
            at: HEADER_LEN + n,
            extra: p.len() - n,
        })
    } else {
        Ok(())
    }
}

fn at_least(p: &[u8], n: usize) -> Result<(), WireError> {
    if p.len() < n {
        Err(WireError::Truncated {
            at: HEADER_LEN + p.len(),
            need: n - p.len(),
        })
    } else {
        Ok(())
    }
}

impl<'a> FrameRepr<'a> {
    /// Parses a checked packet's payload.
    pub fn parse(pkt: &FramePacket<&'a [u8]>) -> Result<FrameRepr<'a>, WireError> {
        FrameRepr::parse_inner(pkt.buf, pkt.frame_type())
    }

    fn parse_inner(b: &'a [u8], ty: FrameType) -> Result<FrameRepr<'a>, WireError> {
        let len = usize::from(u16::from_le_bytes([b[8], b[9]]));
        let p: &'a [u8] = &b[HEADER_LEN..HEADER_LEN + len];
        let h = HEADER_LEN;
        Ok(match ty {
            FrameType::Preface => {
                exact(p, 52)?;
                if super::codec::Mode::from_code(p[0]).is_none() {
                    return Err(WireError::Invalid {
                        field: "PREFACE mode",
                        at: h,
                    });
                }
                if p[1] & !1 != 0 {
                    return Err(WireError::Invalid {
                        field: "PREFACE flags",
                        at: h + 1,
                    });
                }
                if p[2] != 0 || p[3] != 0 {
                    return Err(WireError::Invalid {
                        field: "PREFACE reserved",
                        at: h + 2,
                    });
                }
                let mut fp = [0u8; 32];
                fp.copy_from_slice(&p[20..52]);
                FrameRepr::Preface(PrefaceRepr {
                    mode: p[0],
                    flags: p[1],
                    anchor: rd_u64(p, 4),
                    blob_size: rd_u64(p, 12),
                    blob_fingerprint: fp,
                })
            }
            FrameType::Mfst => {
                at_least(p, 46)?;
                let n = usize::from(u16::from_le_bytes([p[44], p[45]]));
                exact(p, 46 + n)?;
                if n > MAX_NAME {
                    return Err(WireError::Invalid {
                        field: "MFST name length",
                        at: h + 44,
                    });
                }
                let name = std::str::from_utf8(&p[46..46 + n]).map_err(|_| WireError::Invalid {
                    field: "MFST name (not UTF-8)",
                    at: h + 46,
                })?;
                let mut oh = [0u8; 32];
                oh.copy_from_slice(&p[8..40]);
                FrameRepr::Mfst(MfstRepr {
                    object_size: rd_u64(p, 0),
                    object_hash: oh,
                    windows: rd_u32(p, 40),
                    name: name.to_string(),
                })
            }
            FrameType::Need => {
                at_least(p, 10)?;
                let n = usize::from(u16::from_le_bytes([p[8], p[9]]));
                exact(p, 10 + n * NEED_RANGE_LEN)?;
                let mut ranges = Vec::with_capacity(n);
                for i in 0..n {
                    let at = 10 + i * NEED_RANGE_LEN;
                    let (first, count) = (rd_u32(p, at), rd_u32(p, at + 4));
                    if count == 0 || first.checked_add(count).is_none() {
                        return Err(WireError::Invalid {
                            field: "NEED range",
                            at: h + at,
                        });
                    }
                    ranges.push((first, count));
                }
                FrameRepr::Need(NeedRepr {
                    seq: rd_u32(p, 0),
                    missing: rd_u32(p, 4),
                    ranges,
                })
            }
            FrameType::Win => {
                at_least(p, WIN_FIXED)?;
                FrameRepr::Win(WinRepr {
                    index: rd_u32(p, 0),
                    offset: rd_u64(p, 4),
                    len: rd_u32(p, 12),
                    container: &p[WIN_FIXED..],
                })
            }
            FrameType::End => {
                exact(p, 8)?;
                FrameRepr::End(EndRepr {
                    seq: rd_u32(p, 0),
                    sent: rd_u32(p, 4),
                })
            }
            FrameType::Ack => {
                exact(p, 8)?;
                FrameRepr::Ack(AckRepr {
                    seq: rd_u32(p, 0),
                    highest: rd_u32(p, 4),
                })
            }
            FrameType::Done => {
                exact(p, 36)?;
                let status = DoneStatus::from_code(p[0]).ok_or(WireError::Invalid {
                    field: "DONE status",
                    at: h,
                })?;
                if p[1..4] != [0, 0, 0] {
                    return Err(WireError::Invalid {
                        field: "DONE reserved",
                        at: h + 1,
                    });
                }
                let mut oh = [0u8; 32];
                oh.copy_from_slice(&p[4..36]);
                FrameRepr::Done(DoneRepr {
                    status,
                    object_hash: oh,
                })
            }
        })
    }

    /// The frame type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            FrameRepr::Preface(_) => FrameType::Preface,
            FrameRepr::Mfst(_) => FrameType::Mfst,
            FrameRepr::Need(_) => FrameType::Need,
            FrameRepr::Win(_) => FrameType::Win,
            FrameRepr::End(_) => FrameType::End,
            FrameRepr::Done(_) => FrameType::Done,
            FrameRepr::Ack(_) => FrameType::Ack,
        }
    }

    fn emit_payload(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match self {
            FrameRepr::Preface(p) => {
                out.push(p.mode);
                out.push(p.flags);
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&p.anchor.to_le_bytes());
                out.extend_from_slice(&p.blob_size.to_le_bytes());
                out.extend_from_slice(&p.blob_fingerprint);
            }
            FrameRepr::Mfst(m) => {
                if m.name.len() > MAX_NAME {
                    return Err(WireError::TooLarge {
                        what: "MFST name",
                        need: m.name.len(),
                        max: MAX_NAME,
                    });
                }
                out.extend_from_slice(&m.object_size.to_le_bytes());
                out.extend_from_slice(&m.object_hash);
                out.extend_from_slice(&m.windows.to_le_bytes());
                out.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
                out.extend_from_slice(m.name.as_bytes());
            }
            FrameRepr::Need(n) => {
                if n.ranges.len() > MAX_NEED_RANGES {
                    return Err(WireError::TooLarge {
                        what: "NEED ranges",
                        need: n.ranges.len(),
                        max: MAX_NEED_RANGES,
                    });
                }
                out.extend_from_slice(&n.seq.to_le_bytes());
                out.extend_from_slice(&n.missing.to_le_bytes());
                out.extend_from_slice(&(n.ranges.len() as u16).to_le_bytes());
                for (first, count) in &n.ranges {
                    out.extend_from_slice(&first.to_le_bytes());
                    out.extend_from_slice(&count.to_le_bytes());
                }
            }
            FrameRepr::Win(w) => {
                out.extend_from_slice(&w.index.to_le_bytes());
                out.extend_from_slice(&w.offset.to_le_bytes());
                out.extend_from_slice(&w.len.to_le_bytes());
                out.extend_from_slice(w.container);
            }
            FrameRepr::End(e) => {
                out.extend_from_slice(&e.seq.to_le_bytes());
                out.extend_from_slice(&e.sent.to_le_bytes());
            }
            FrameRepr::Ack(a) => {
                out.extend_from_slice(&a.seq.to_le_bytes());
                out.extend_from_slice(&a.highest.to_le_bytes());
            }
            FrameRepr::Done(d) => {
                out.push(d.status as u8);
                out.extend_from_slice(&[0, 0, 0]);
                out.extend_from_slice(&d.object_hash);
            }
        }
        Ok(())
    }

    /// Appends the whole datagram (header, payload, CRC) to `out`; fails, leaving
    /// `out` as it was, when it would exceed [`MAX_DATAGRAM`].
    pub fn emit(&self, session: u32, out: &mut Vec<u8>) -> Result<usize, WireError> {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.frame_type() as u8);
        out.extend_from_slice(&session.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        if let Err(e) = self.emit_payload(out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start - HEADER_LEN;
        if len > MAX_PAYLOAD {
            out.truncate(start);
            return Err(WireError::TooLarge {
                what: "datagram",
                need: len + HEADER_LEN + TRAILER_LEN,
                max: MAX_DATAGRAM,
            });
        }
        out[start + 8..start + 10].copy_from_slice(&(len as u16).to_le_bytes());
        let crc = crc16(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(out.len() - start)
    }

    /// The datagram as a new vector.
    pub fn to_datagram(&self, session: u32) -> Result<Vec<u8>, WireError> {
        let mut v = Vec::with_capacity(64);
        self.emit(session, &mut v)?;
        Ok(v)
    }
}

/// Checks and parses a datagram in one step: `(session, frame)`.
pub fn decode(b: &[u8]) -> Result<(u32, FrameRepr<'_>), WireError> {
    let pkt = FramePacket::new_checked(b)?;
    Ok((pkt.session(), FrameRepr::parse(&pkt)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_frame() -> impl Strategy<Value = (u32, FrameRepr<'static>)> {
        let preface = (
            1u8..=2,
            0u8..=1,
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(mode, flags, anchor, blob_size, blob_fingerprint)| {
                FrameRepr::Preface(PrefaceRepr {
                    mode,
                    flags,
                    anchor,
                    blob_size,
                    blob_fingerprint,
                })
            });
        let mfst = (
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            "[a-z0-9._-]{0,40}",
        )
            .prop_map(|(object_size, object_hash, windows, name)| {
                FrameRepr::Mfst(MfstRepr {
                    object_size,
                    object_hash,
                    windows,
                    name,
                })
            });
        let need = (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec((0u32..1 << 30, 1u32..1 << 20), 0..MAX_NEED_RANGES),
        )
            .prop_map(|(seq, missing, ranges)| {
                FrameRepr::Need(NeedRepr {
                    seq,
                    missing,
                    ranges,
                })
            });
        let win = (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..MAX_CONTAINER),
        )
            .prop_map(|(index, offset, len, c)| {
                let c: &'static [u8] = Box::leak(c.into_boxed_slice());
                FrameRepr::Win(WinRepr {
                    index,
                    offset,
                    len,
                    container: c,
                })
            });
        let end = (any::<u32>(), any::<u32>())
            .prop_map(|(seq, sent)| FrameRepr::End(EndRepr { seq, sent }));
        let done = (0u8..=3, any::<[u8; 32]>()).prop_map(|(s, object_hash)| {
            FrameRepr::Done(DoneRepr {
                status: DoneStatus::from_code(s).unwrap_or(DoneStatus::Ok),
                object_hash,
            })
        });
        (
            any::<u32>(),
            prop_oneof![preface, mfst, need, win, end, done],
        )
    }

    proptest! {
        #[test]
        fn roundtrip((session, f) in arb_frame()) {
            let d = f.to_datagram(session).unwrap();
            prop_assert!(d.len() <= MAX_DATAGRAM);
            let (s, back) = decode(&d).unwrap();
            prop_assert_eq!(s, session);
            prop_assert_eq!(back, f);
        }

        #[test]
        fn any_bit_flip_is_caught((session, f) in arb_frame(), bit in any::<usize>()) {
            let mut d = f.to_datagram(session).unwrap();
            let bit = bit % (d.len() * 8);
            d[bit / 8] ^= 1 << (bit % 8);
            // CRC16 detects every single-bit error.
            prop_assert!(decode(&d).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let _ = decode(&b);
        }

        #[test]
        fn arbitrary_payload_with_valid_crc_never_panics(ty in 0u8..8, p in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut d = vec![b'P', b'F', VERSION, ty, 1, 0, 0, 0];
            d.extend_from_slice(&(p.len() as u16).to_le_bytes());
            d.extend_from_slice(&p);
            let crc = crc16(&d);
            d.extend_from_slice(&crc.to_be_bytes());
            // Whatever decodes is canonical: it re-encodes to the same bytes.
            if let Ok((s, f)) = decode(&d) {
                prop_assert_eq!(f.to_datagram(s).unwrap(), d);
            }
        }

        #[test]
        fn truncation_is_an_error((session, f) in arb_frame(), cut in any::<usize>()) {
            let d = f.to_datagram(session).unwrap();
            let cut = cut % d.len();
            prop_assert!(decode(&d[..cut]).is_err());
        }
    }

    #[test]
    fn oversize_is_refused() {
        let c = vec![0u8; MAX_CONTAINER + 1];
        let f = FrameRepr::Win(WinRepr {
            index: 0,
            offset: 0,
            len: 0,
            container: &c,
        });
        assert!(matches!(f.to_datagram(1), Err(WireError::TooLarge { .. })));
        assert!(matches!(
            decode(&[0u8; 1201]),
            Err(WireError::TooLarge { .. })
        ));
    }
}
