//! The line-rate probe payload (normative: `specs/linerate.md`): a 32-byte header
//! (magic, version, kind, length, run id, sequence number, CLOCK_MONOTONIC send
//! time, CRC-32C of the header) followed by a filler that depends only on the run
//! id and the byte offset, so a sender writes it once per buffer and a receiver
//! checks it with one comparison.

use std::ops::Range;

/// Header bytes; the smallest probe.
pub const HEADER_LEN: usize = 32;
/// `PFSL`.
pub const MAGIC: [u8; 4] = *b"PFSL";
/// Wire version.
pub const VERSION: u8 = 1;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const LEN: Range<usize> = 6..8;
    pub const RUN: Range<usize> = 8..12;
    pub const SEQ: Range<usize> = 12..20;
    pub const SENT_NS: Range<usize> = 20..28;
    pub const CRC: Range<usize> = 28..32;
}

/// What a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sent by `tx`.
    Data,
    /// Bounced back by `reflect`.
    Echo,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Data => 0,
            Kind::Echo => 1,
        }
    }
}

/// Why bytes are not a valid probe (small and `Copy`: the hot path never allocates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Fewer than 32 bytes, or fewer than the length field says.
    #[error("probe truncated")]
    Truncated,
    /// Not `PFSL` version 1.
    #[error("not a PacketFS line-rate probe")]
    BadMagic,
    /// Unknown kind byte.
    #[error("unknown probe kind")]
    BadKind,
    /// The header CRC does not match.
    #[error("probe header checksum mismatch")]
    BadCrc,
    /// The filler after the header is not the run's filler.
    #[error("probe payload damaged")]
    BadFiller,
}

/// The parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRepr {
    /// Data or echo.
    pub kind: Kind,
    /// Total probe length (header + filler), bytes.
    pub len: u16,
    /// The sender's run id.
    pub run: u32,
    /// Sequence number, from 0 per run.
    pub seq: u64,
    /// CLOCK_MONOTONIC at send, nanoseconds.
    pub sent_ns: u64,
}

/// Filler byte at offset `i` (≥ 32) of a probe of run `run` (spec §3).
pub fn filler_byte(run: u32, i: usize) -> u8 {
    ((i % 251) as u8) ^ (run as u8)
}

/// Writes the filler of run `run` into `buf[32..]`.
pub fn write_filler(run: u32, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = filler_byte(run, i);
    }
}

fn be_u64(b: &[u8], r: Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8], r: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

/// A byte view of a probe: `new_checked` validates the header, then accessors
/// cannot panic.
#[derive(Debug, Clone, Copy)]
pub struct ProbePacket<B: AsRef<[u8]>> {
    buf: B,
}

impl<B: AsRef<[u8]>> ProbePacket<B> {
    /// Checks magic, version, kind, length and header CRC (not the filler).
    pub fn new_checked(buf: B) -> Result<ProbePacket<B>, ProbeError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ProbeError::Truncated);
        }
        if b[field::MAGIC] != MAGIC || b[field::VERSION] != VERSION {
            return Err(ProbeError::BadMagic);
        }
        if b[field::KIND] > 1 {
            return Err(ProbeError::BadKind);
        }
        let len = u16::from_be_bytes([b[field::LEN.start], b[field::LEN.start + 1]]) as usize;
        if len < HEADER_LEN || len > b.len() {
            return Err(ProbeError::Truncated);
        }
        if crc32c::crc32c(&b[..field::CRC.start]) != be_u32(b, field::CRC) {
            return Err(ProbeError::BadCrc);
        }
        Ok(ProbePacket { buf })
    }

    /// The parsed header.
    pub fn repr(&self) -> ProbeRepr {
        let b = self.buf.as_ref();
        ProbeRepr {
            kind: if b[field::KIND] == 1 {
                Kind::Echo
            } else {
                Kind::Data
            },
            len: u16::from_be_bytes([b[field::LEN.start], b[field::LEN.start + 1]]),
            run: be_u32(b, field::RUN),
            seq: be_u64(b, field::SEQ),
            sent_ns: be_u64(b, field::SENT_NS),
        }
    }

    /// Whether the filler equals the run's (payload integrity, spec §3).
    pub fn filler_ok(&self) -> bool {
        let b = self.buf.as_ref();
        let r = self.repr();
        b[HEADER_LEN..r.len as usize]
            .iter()
            .enumerate()
            .all(|(i, v)| *v == filler_byte(r.run, i + HEADER_LEN))
    }

    /// Checks everything, filler included.
    pub fn check(buf: B) -> Result<ProbeRepr, ProbeError> {
        let p = ProbePacket::new_checked(buf)?;
        if !p.filler_ok() {
            return Err(ProbeError::BadFiller);
        }
        Ok(p.repr())
    }
}

impl ProbeRepr {
    /// Writes the 32-byte header into `buf` (which must hold `len` bytes; the
    /// filler is written separately by [`write_filler`]).
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<(), ProbeError> {
        if buf.len() < HEADER_LEN || buf.len() < self.len as usize {
            return Err(ProbeError::Truncated);
        }
        buf[field::MAGIC].copy_from_slice(&MAGIC);
        buf[field::VERSION] = VERSION;
        buf[field::KIND] = self.kind.byte();
        buf[field::LEN].copy_from_slice(&self.len.to_be_bytes());
        buf[field::RUN].copy_from_slice(&self.run.to_be_bytes());
        buf[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        buf[field::SENT_NS].copy_from_slice(&self.sent_ns.to_be_bytes());
        let crc = crc32c::crc32c(&buf[..field::CRC.start]);
        buf[field::CRC].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }

    /// Writes the whole probe (header and filler) into `buf[..len]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), ProbeError> {
        self.emit_header(buf)?;
        write_filler(self.run, &mut buf[..self.len as usize]);
        Ok(())
    }
}

/// Turns a data probe into an echo in place (kind byte and CRC), as `reflect`
/// does. Returns `false` (and leaves `buf` alone) when it is not a valid probe.
pub fn make_echo(buf: &mut [u8]) -> bool {
    let Ok(p) = ProbePacket::new_checked(&*buf) else {
        return false;
    };
    let mut r = p.repr();
    r.kind = Kind::Echo;
    r.emit_header(buf).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specvec;

    fn spec_vector() -> (ProbeRepr, Vec<u8>) {
        let md = include_str!("../../../specs/linerate.md");
        let blocks = specvec::blocks(md, "vectors");
        assert_eq!(blocks.len(), 1, "specs/linerate.md has one vectors block");
        let mut repr = None;
        let mut hex = String::new();
        for line in blocks[0].lines() {
            if let Some(rest) = line.strip_prefix("fields ") {
                let mut kv = std::collections::HashMap::new();
                for part in rest.split_whitespace() {
                    let (k, v) = part.split_once('=').expect("key=value");
                    kv.insert(k, v);
                }
                let num = |k: &str| {
                    let v = kv[k];
                    match v.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).unwrap(),
                        None => v.parse().unwrap(),
                    }
                };
                repr = Some(ProbeRepr {
                    kind: if kv["kind"] == "echo" {
                        Kind::Echo
                    } else {
                        Kind::Data
                    },
                    len: num("len") as u16,
                    run: num("run") as u32,
                    seq: num("seq"),
                    sent_ns: num("sent_ns"),
                });
            } else if let Some(h) = line.strip_prefix("bytes ") {
                hex.push_str(h);
            }
        }
        (
            repr.expect("a fields line"),
            specvec::unhex(&hex).expect("valid hex"),
        )
    }

    #[test]
    fn spec_vector_decodes_and_encodes() {
        let (repr, bytes) = spec_vector();
        assert_eq!(ProbePacket::check(&bytes[..]).unwrap(), repr);
        let mut out = vec![0u8; repr.len as usize];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn round_trip_all_lengths() {
        for len in [32usize, 33, 64, 251, 300, 1472] {
            let r = ProbeRepr {
                kind: Kind::Data,
                len: len as u16,
                run: 0xdead_beef,
                seq: len as u64 * 1000,
                sent_ns: 123_456_789,
            };
            let mut buf = vec![0u8; len];
            r.emit(&mut buf).unwrap();
            assert_eq!(ProbePacket::check(&buf[..]).unwrap(), r);
            assert!(make_echo(&mut buf));
            let e = ProbePacket::check(&buf[..]).unwrap();
            assert_eq!(e.kind, Kind::Echo);
            assert_eq!(e.seq, r.seq);
        }
    }

    #[test]
    fn damage_is_detected_without_panic() {
        let r = ProbeRepr {
            kind: Kind::Data,
            len: 100,
            run: 9,
            seq: 1,
            sent_ns: 2,
        };
        let mut buf = vec![0u8; 100];
        r.emit(&mut buf).unwrap();
        for cut in 0..100 {
            assert!(ProbePacket::check(&buf[..cut]).is_err());
        }
        for i in 0..100 {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(ProbePacket::check(&bad[..]).is_err(), "flip at {i}");
        }
        let mut junk = vec![0u8; 64];
        assert!(!make_echo(&mut junk));
        assert_eq!(junk, vec![0u8; 64]);
    }
}
