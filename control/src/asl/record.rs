//! Log records (sans-I/O): the frame (`length`, `crc32c`, payload) and the parsed
//! record forms. Normative: `specs/asl.md` §4.

use super::ArtifactKey;

/// Bytes before the payload: length (u32 LE) and CRC-32C (u32 LE).
pub const FRAME_HEADER: usize = 8;
/// Bytes of the payload's common header (kind .. host_id).
pub const RECORD_HEADER: usize = 32;
/// Largest payload accepted; anything longer is a corrupt or torn frame.
pub const MAX_PAYLOAD: usize = 4096;

/// Record kinds (payload byte 0).
pub mod kind {
    /// A writer session began: pid and host name.
    pub const SESSION: u8 = 1;
    /// An artifact became visible.
    pub const PUT: u8 = 2;
    /// A block was sealed.
    pub const SEAL: u8 = 3;
    /// An artifact was hidden from the current view.
    pub const TOMBSTONE: u8 = 4;
    /// A snapshot was taken (its id is this record's logseq).
    pub const SNAPSHOT: u8 = 5;
    /// A snapshot was dropped.
    pub const SNAPSHOT_DROP: u8 = 6;
    /// An artifact's bytes moved to another block (gc compaction).
    pub const MOVE: u8 = 7;
    /// A block's file was deleted by gc.
    pub const FREE: u8 = 8;
}

/// Fields every record carries (payload bytes 0..32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Position in the log, strictly increasing from 1.
    pub logseq: u64,
    /// Store clock in nanoseconds since the Unix epoch, strictly increasing.
    pub clock_ns: u64,
    /// First 8 bytes (LE) of BLAKE3(host name) of the writer.
    pub host_id: u64,
    /// Real user id of the writer.
    pub uid: u32,
}

/// Where an artifact's bytes live: `length` bytes at `offset` of the block's data region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Block id.
    pub block_id: u64,
    /// Offset inside the block's data region.
    pub offset: u64,
    /// Artifact length in bytes.
    pub length: u64,
}

/// A parsed record body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// A writer session began.
    Session {
        /// Writer process id.
        pid: u32,
        /// Writer host name (at most 255 bytes).
        host: String,
    },
    /// An artifact became visible in the current view.
    Put {
        /// BLAKE3 of the artifact's bytes.
        key: ArtifactKey,
        /// Where its bytes are.
        loc: Location,
        /// Optional 32-bit type tag.
        type_tag: Option<u32>,
    },
    /// A block was sealed: its data region is `data_len` bytes with this BLAKE3.
    Seal {
        /// Block id.
        block_id: u64,
        /// Data region length.
        data_len: u64,
        /// BLAKE3 of the data region.
        checksum: [u8; 32],
    },
    /// An artifact was hidden from the current view.
    Tombstone {
        /// The hidden key.
        key: ArtifactKey,
    },
    /// A snapshot was taken; the id is the record's logseq.
    Snapshot {
        /// Artifacts visible in the snapshot.
        artifacts: u64,
    },
    /// A snapshot was dropped.
    SnapshotDrop {
        /// The dropped snapshot's id.
        id: u64,
    },
    /// An artifact's bytes moved.
    Move {
        /// Moved key.
        key: ArtifactKey,
        /// New location.
        loc: Location,
    },
    /// A block's file was deleted.
    Free {
        /// Block id.
        block_id: u64,
    },
}

/// A whole record: header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Common fields.
    pub header: RecordHeader,
    /// Kind-specific fields.
    pub body: RecordBody,
}

/// Why a frame did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the frame header or the frame's length says.
    #[error("frame truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Length field out of range.
    #[error("frame length {0} out of range")]
    BadLength(u32),
    /// CRC-32C mismatch.
    #[error("frame checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// The payload is not a valid record.
    #[error("bad record: {0}")]
    Payload(&'static str),
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn key_at(b: &[u8], o: usize) -> ArtifactKey {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[o..o + 32]);
    ArtifactKey(a)
}

/// The frame checksum: CRC-32C over the length field then the payload.
pub fn frame_crc(len_field: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_field), payload)
}

impl Record {
    /// Appends this record, framed, to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; FRAME_HEADER]);
        let p = out.len();
        let (k, body): (u8, Vec<u8>) = match &self.body {
            RecordBody::Session { pid, host } => {
                let mut n = host.len().min(255);
                while !host.is_char_boundary(n) {
                    n -= 1;
                }
                let h = &host.as_bytes()[..n];
                let mut b = Vec::with_capacity(6 + h.len());
                b.extend_from_slice(&pid.to_le_bytes());
                b.extend_from_slice(&(h.len() as u16).to_le_bytes());
                b.extend_from_slice(h);
                (kind::SESSION, b)
            }
            RecordBody::Put { key, loc, type_tag } => {
                let mut b = Vec::with_capacity(64);
                b.extend_from_slice(&key.0);
                push_loc(&mut b, loc);
                b.extend_from_slice(&type_tag.unwrap_or(0).to_le_bytes());
                b.push(u8::from(type_tag.is_some()));
                b.extend_from_slice(&[0u8; 3]);
                (kind::PUT, b)
            }
            RecordBody::Seal {
                block_id,
                data_len,
                checksum,
            } => {
                let mut b = Vec::with_capacity(48);
                b.extend_from_slice(&block_id.to_le_bytes());
                b.extend_from_slice(&data_len.to_le_bytes());
                b.extend_from_slice(checksum);
                (kind::SEAL, b)
            }
            RecordBody::Tombstone { key } => (kind::TOMBSTONE, key.0.to_vec()),
            RecordBody::Snapshot { artifacts } => {
                (kind::SNAPSHOT, artifacts.to_le_bytes().to_vec())
            }
            RecordBody::SnapshotDrop { id } => (kind::SNAPSHOT_DROP, id.to_le_bytes().to_vec()),
            RecordBody::Move { key, loc } => {
                let mut b = Vec::with_capacity(56);
                b.extend_from_slice(&key.0);
                push_loc(&mut b, loc);
                (kind::MOVE, b)
            }
            RecordBody::Free { block_id } => (kind::FREE, block_id.to_le_bytes().to_vec()),
        };
        let h = &self.header;
        out.push(k);
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(&h.uid.to_le_bytes());
        out.extend_from_slice(&h.logseq.to_le_bytes());
        out.extend_from_slice(&h.clock_ns.to_le_bytes());
        out.extend_from_slice(&h.host_id.to_le_bytes());
        out.extend_from_slice(&body);
        let len = (out.len() - p) as u32;
        let lf = len.to_le_bytes();
        let crc = frame_crc(lf, &out[p..]);
        out[start..start + 4].copy_from_slice(&lf);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// The framed bytes of this record.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FRAME_HEADER + RECORD_HEADER + 64);
        self.encode_into(&mut v);
        v
    }

    /// Decodes one frame at the start of `buf`; returns the record and the frame's
    /// total length.
    pub fn decode(buf: &[u8]) -> Result<(Record, usize), FrameError> {
        if buf.len() < FRAME_HEADER {
            return Err(FrameError::Truncated {
                need: FRAME_HEADER,
                have: buf.len(),
            });
        }
        let len = u32_at(buf, 0);
        if (len as usize) < RECORD_HEADER || len as usize > MAX_PAYLOAD {
            return Err(FrameError::BadLength(len));
        }
        let total = FRAME_HEADER + len as usize;
        if buf.len() < total {
            return Err(FrameError::Truncated {
                need: total,
                have: buf.len(),
            });
        }
        let stored = u32_at(buf, 4);
        let payload = &buf[FRAME_HEADER..total];
        let computed = frame_crc(len.to_le_bytes(), payload);
        if stored != computed {
            return Err(FrameError::Checksum { stored, computed });
        }
        Ok((Self::decode_payload(payload)?, total))
    }

    fn decode_payload(p: &[u8]) -> Result<Record, FrameError> {
        if p[1..4] != [0, 0, 0] {
            return Err(FrameError::Payload("reserved header bytes not zero"));
        }
        let header = RecordHeader {
            uid: u32_at(p, 4),
            logseq: u64_at(p, 8),
            clock_ns: u64_at(p, 16),
            host_id: u64_at(p, 24),
        };
        let b = &p[RECORD_HEADER..];
        let need = |n: usize| -> Result<(), FrameError> {
            if b.len() == n {
                Ok(())
            } else {
                Err(FrameError::Payload("body length does not match kind"))
            }
        };
        let body = match p[0] {
            kind::SESSION => {
                if b.len() < 6 {
                    return Err(FrameError::Payload("session body too short"));
                }
                let hl = u16::from_le_bytes([b[4], b[5]]) as usize;
                if hl > 255 {
                    return Err(FrameError::Payload("host name longer than 255 bytes"));
                }
                need(6 + hl)?;
                let host = std::str::from_utf8(&b[6..])
                    .map_err(|_| FrameError::Payload("host name not UTF-8"))?
                    .to_owned();
                RecordBody::Session {
                    pid: u32_at(b, 0),
                    host,
                }
            }
            kind::PUT => {
                need(64)?;
                let has = match b[60] {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::Payload("has_type_tag not 0 or 1")),
                };
                RecordBody::Put {
                    key: key_at(b, 0),
                    loc: loc_at(b, 32),
                    type_tag: has.then(|| u32_at(b, 56)),
                }
            }
            kind::SEAL => {
                need(48)?;
                let mut checksum = [0u8; 32];
                checksum.copy_from_slice(&b[16..48]);
                RecordBody::Seal {
                    block_id: u64_at(b, 0),
                    data_len: u64_at(b, 8),
                    checksum,
                }
            }
            kind::TOMBSTONE => {
                need(32)?;
                RecordBody::Tombstone { key: key_at(b, 0) }
            }
            kind::SNAPSHOT => {
                need(8)?;
                RecordBody::Snapshot {
                    artifacts: u64_at(b, 0),
                }
            }
            kind::SNAPSHOT_DROP => {
                need(8)?;
                RecordBody::SnapshotDrop { id: u64_at(b, 0) }
            }
            kind::MOVE => {
                need(56)?;
                RecordBody::Move {
                    key: key_at(b, 0),
                    loc: loc_at(b, 32),
                }
            }
            kind::FREE => {
                need(8)?;
                RecordBody::Free {
                    block_id: u64_at(b, 0),
                }
            }
            _ => return Err(FrameError::Payload("unknown record kind")),
        };
        Ok(Record { header, body })
    }
}

fn push_loc(b: &mut Vec<u8>, loc: &Location) {
    b.extend_from_slice(&loc.block_id.to_le_bytes());
    b.extend_from_slice(&loc.offset.to_le_bytes());
    b.extend_from_slice(&loc.length.to_le_bytes());
}

fn loc_at(b: &[u8], o: usize) -> Location {
    Location {
        block_id: u64_at(b, o),
        offset: u64_at(b, o + 8),
        length: u64_at(b, o + 16),
    }
}

/// Finds a valid frame starting at some offset in `buf[1..]` whose logseq exceeds
/// `after_logseq`; used to tell a torn tail (none) from damage in the middle of the
/// log (some). Returns the offset relative to `buf`.
pub fn find_later_frame(buf: &[u8], after_logseq: u64) -> Option<usize> {
    (1..buf.len()).find(
        |&o| matches!(Record::decode(&buf[o..]), Ok((r, _)) if r.header.logseq > after_logseq),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(logseq: u64) -> RecordHeader {
        RecordHeader {
            logseq,
            clock_ns: 1_700_000_000_000_000_000 + logseq,
            host_id: 0x1122_3344_5566_7788,
            uid: 1000,
        }
    }

    pub(crate) fn samples() -> Vec<Record> {
        let key = ArtifactKey([0xab; 32]);
        let loc = Location {
            block_id: 3,
            offset: 4096,
            length: 1024,
        };
        [
            RecordBody::Session {
                pid: 42,
                host: "lab1".into(),
            },
            RecordBody::Put {
                key,
                loc,
                type_tag: Some(7),
            },
            RecordBody::Put {
                key,
                loc,
                type_tag: None,
            },
            RecordBody::Seal {
                block_id: 3,
                data_len: 5120,
                checksum: [0x5a; 32],
            },
            RecordBody::Tombstone { key },
            RecordBody::Snapshot { artifacts: 9 },
            RecordBody::SnapshotDrop { id: 6 },
            RecordBody::Move { key, loc },
            RecordBody::Free { block_id: 3 },
        ]
        .into_iter()
        .enumerate()
        .map(|(i, body)| Record {
            header: hdr(i as u64 + 1),
            body,
        })
        .collect()
    }

    #[test]
    fn roundtrip_every_kind() {
        for r in samples() {
            let e = r.encode();
            let (d, n) = Record::decode(&e).unwrap();
            assert_eq!(n, e.len());
            assert_eq!(d, r);
        }
    }

    #[test]
    fn long_and_multibyte_host_names_stay_decodable() {
        let host = "é".repeat(200);
        let r = Record {
            header: hdr(1),
            body: RecordBody::Session { pid: 1, host },
        };
        let (d, _) = Record::decode(&r.encode()).unwrap();
        let RecordBody::Session { host, .. } = d.body else {
            panic!("kind changed")
        };
        assert_eq!(host, "é".repeat(127));
    }

    #[test]
    fn every_prefix_and_every_bit_flip_is_rejected() {
        for r in samples() {
            let e = r.encode();
            for cut in 0..e.len() {
                assert!(Record::decode(&e[..cut]).is_err(), "cut {cut}");
            }
            for bit in 0..e.len() * 8 {
                let mut f = e.clone();
                f[bit / 8] ^= 1 << (bit % 8);
                assert!(Record::decode(&f).is_err(), "bit {bit}");
            }
        }
    }

    #[test]
    fn later_frame_is_found_after_damage() {
        let s = samples();
        let mut log = Vec::new();
        for r in &s {
            r.encode_into(&mut log);
        }
        let first = s[0].encode().len();
        log[first + 10] ^= 0xff;
        let damaged = &log[first..];
        assert!(Record::decode(damaged).is_err());
        let o = find_later_frame(damaged, 1).unwrap();
        let (r, _) = Record::decode(&damaged[o..]).unwrap();
        assert_eq!(r.header.logseq, 3);
        assert_eq!(find_later_frame(&log[..first + 20], 1), None);
    }
}
