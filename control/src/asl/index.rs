//! The store state replayed from the log, its bloom filter, and the index file that
//! caches both (sans-I/O). Normative: `specs/asl.md` §6 and §7.

use std::collections::{BTreeMap, HashMap};

use super::ArtifactKey;
use super::record::{Location, Record, RecordBody};

/// Index file magic.
pub const INDEX_MAGIC: [u8; 8] = *b"PFSASLI\0";
/// Index file version.
pub const INDEX_VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 80;
const BLOCK_LEN: usize = 56;
const SNAP_LEN: usize = 16;

/// One artifact's bytes and its place in the current view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Where the bytes are.
    pub loc: Location,
    /// Type tag of the put.
    pub type_tag: Option<u32>,
    /// Logseq of the latest PUT of this key.
    pub logseq: u64,
    /// Visible in the current view (false after a tombstone).
    pub live: bool,
}

/// What the log says about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockInfo {
    /// Bytes of the data region in use (the sealed length once sealed).
    pub data_len: u64,
    /// BLAKE3 of the data region, once sealed.
    pub sealed: Option<[u8; 32]>,
    /// Deleted by gc.
    pub freed: bool,
}

/// State replayed from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Every key whose bytes are stored (live or tombstoned).
    pub entries: HashMap<ArtifactKey, Entry>,
    /// Every block the log names.
    pub blocks: BTreeMap<u64, BlockInfo>,
    /// Live snapshots: id (logseq) → clock.
    pub snapshots: BTreeMap<u64, u64>,
    /// Logseq of the last record (0 when empty).
    pub last_logseq: u64,
    /// Clock of the last record.
    pub last_clock: u64,
    /// Log bytes replayed.
    pub log_len: u64,
    /// Offset of the last frame replayed.
    pub last_frame_offset: u64,
}

impl State {
    /// Applies one record whose frame starts at `offset` and is `len` bytes long.
    pub fn apply(&mut self, r: &Record, offset: u64, len: u64) {
        self.last_logseq = r.header.logseq;
        self.last_clock = r.header.clock_ns;
        self.last_frame_offset = offset;
        self.log_len = offset + len;
        match &r.body {
            RecordBody::Session { .. } => {}
            RecordBody::Put { key, loc, type_tag } => {
                self.touch_block(loc);
                self.entries.insert(
                    *key,
                    Entry {
                        loc: *loc,
                        type_tag: *type_tag,
                        logseq: r.header.logseq,
                        live: true,
                    },
                );
            }
            RecordBody::Seal {
                block_id,
                data_len,
                checksum,
            } => {
                let b = self.blocks.entry(*block_id).or_default();
                b.data_len = *data_len;
                b.sealed = Some(*checksum);
            }
            RecordBody::Tombstone { key } => {
                if let Some(e) = self.entries.get_mut(key) {
                    e.live = false;
                }
            }
            RecordBody::Snapshot { .. } => {
                self.snapshots.insert(r.header.logseq, r.header.clock_ns);
            }
            RecordBody::SnapshotDrop { id } => {
                self.snapshots.remove(id);
            }
            RecordBody::Move { key, loc } => {
                self.touch_block(loc);
                if let Some(e) = self.entries.get_mut(key) {
                    e.loc = *loc;
                }
            }
            RecordBody::Free { block_id } => {
                self.blocks.entry(*block_id).or_default().freed = true;
                self.entries.retain(|_, e| e.loc.block_id != *block_id);
            }
        }
    }

    fn touch_block(&mut self, loc: &Location) {
        let b = self.blocks.entry(loc.block_id).or_default();
        if b.sealed.is_none() {
            b.data_len = b.data_len.max(loc.offset.saturating_add(loc.length));
        }
    }

    /// The unsealed, unfreed block small artifacts are appended to, if any.
    pub fn open_block(&self) -> Option<u64> {
        self.blocks
            .iter()
            .rev()
            .find(|(_, b)| b.sealed.is_none() && !b.freed)
            .map(|(id, _)| *id)
    }

    /// The next unused block id.
    pub fn next_block_id(&self) -> u64 {
        self.blocks.keys().next_back().map_or(1, |id| id + 1)
    }
}

/// A blocked bloom filter over artifact keys: a 512-bit block chosen by key bytes
/// 0..8, six bits in it chosen by key bytes 8..16 (keys are already uniform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
}

/// Bits of filter per key when sized.
const BLOOM_BITS_PER_KEY: usize = 16;

impl Bloom {
    /// A filter sized for `n` keys (a power-of-two number of 512-bit blocks).
    pub fn with_capacity(n: usize) -> Bloom {
        let blocks = (n * BLOOM_BITS_PER_KEY)
            .div_ceil(512)
            .max(1)
            .next_power_of_two();
        Bloom {
            words: vec![0; blocks * 8],
        }
    }

    /// A filter sized for and filled with `keys`.
    pub fn build<'a>(n: usize, keys: impl Iterator<Item = &'a ArtifactKey>) -> Bloom {
        let mut b = Bloom::with_capacity(n);
        for k in keys {
            b.insert(k);
        }
        b
    }

    /// Keys the filter was sized for.
    pub fn capacity(&self) -> usize {
        self.words.len() * 64 / BLOOM_BITS_PER_KEY
    }

    fn probe(&self, k: &ArtifactKey) -> (usize, u64, [u32; 6]) {
        let mut a = [0u8; 8];
        a.copy_from_slice(&k.0[0..8]);
        let blocks = (self.words.len() / 8) as u64;
        let block = (u64::from_le_bytes(a) & (blocks - 1)) as usize;
        a.copy_from_slice(&k.0[8..16]);
        let h = u64::from_le_bytes(a);
        let mut bits = [0u32; 6];
        for (i, b) in bits.iter_mut().enumerate() {
            *b = ((h >> (9 * i)) & 511) as u32;
        }
        (block * 8, h, bits)
    }

    /// Adds a key.
    pub fn insert(&mut self, k: &ArtifactKey) {
        let (base, _, bits) = self.probe(k);
        for b in bits {
            self.words[base + (b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// False means certainly absent.
    pub fn may_contain(&self, k: &ArtifactKey) -> bool {
        let (base, _, bits) = self.probe(k);
        bits.iter()
            .all(|&b| self.words[base + (b / 64) as usize] & (1 << (b % 64)) != 0)
    }
}

/// Why an index file was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Too short or lengths disagree.
    #[error("index truncated or lengths disagree")]
    Length,
    /// Wrong magic.
    #[error("index magic wrong")]
    Magic,
    /// Unknown version.
    #[error("index version {0} unknown")]
    Version(u32),
    /// CRC-32C mismatch.
    #[error("index checksum mismatch")]
    Checksum,
    /// A field has an impossible value.
    #[error("index field invalid")]
    Field,
}

fn rd64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn rd32(b: &[u8], o: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(a)
}

/// Encodes the index file for `s` (entries sorted by key) with a bloom filter
/// sized for its entries.
pub fn encode(s: &State) -> Vec<u8> {
    let mut keys: Vec<&ArtifactKey> = s.entries.keys().collect();
    keys.sort();
    let bloom = Bloom::build(keys.len(), keys.iter().copied());
    let mut b = Vec::with_capacity(
        HEADER_LEN + keys.len() * ENTRY_LEN + s.blocks.len() * BLOCK_LEN + bloom.words.len() * 8,
    );
    b.extend_from_slice(&INDEX_MAGIC);
    b.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for v in [s.log_len, s.last_frame_offset, s.last_logseq, s.last_clock] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    b.extend_from_slice(&(s.blocks.len() as u32).to_le_bytes());
    b.extend_from_slice(&(s.snapshots.len() as u32).to_le_bytes());
    for k in keys {
        let e = &s.entries[k];
        b.extend_from_slice(&k.0);
        for v in [e.loc.block_id, e.loc.offset, e.loc.length, e.logseq] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&e.type_tag.unwrap_or(0).to_le_bytes());
        b.push(u8::from(e.type_tag.is_some()) | (u8::from(e.live) << 1));
        b.extend_from_slice(&[0u8; 11]);
    }
    for (id, bi) in &s.blocks {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&bi.data_len.to_le_bytes());
        b.push(u8::from(bi.sealed.is_some()) | (u8::from(bi.freed) << 1));
        b.extend_from_slice(&[0u8; 7]);
        b.extend_from_slice(&bi.sealed.unwrap_or([0; 32]));
    }
    for (id, clock) in &s.snapshots {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&clock.to_le_bytes());
    }
    b.extend_from_slice(&((bloom.words.len() / 8) as u64).to_le_bytes());
    for w in &bloom.words {
        b.extend_from_slice(&w.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes an index file into the state and bloom filter it caches.
pub fn decode(b: &[u8]) -> Result<(State, Bloom), IndexError> {
    if b.len() < HEADER_LEN + 12 {
        return Err(IndexError::Length);
    }
    if b[0..8] != INDEX_MAGIC {
        return Err(IndexError::Magic);
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(IndexError::Checksum);
    }
    let v = rd32(b, 8);
    if v != INDEX_VERSION {
        return Err(IndexError::Version(v));
    }
    let n_entries = usize::try_from(rd64(b, 48)).map_err(|_| IndexError::Length)?;
    let n_blocks = rd32(b, 56) as usize;
    let n_snaps = rd32(b, 60) as usize;
    let mut s = State {
        log_len: rd64(b, 16),
        last_frame_offset: rd64(b, 24),
        last_logseq: rd64(b, 32),
        last_clock: rd64(b, 40),
        ..State::default()
    };
    let need = n_entries
        .checked_mul(ENTRY_LEN)
        .and_then(|x| x.checked_add(n_blocks * BLOCK_LEN + n_snaps * SNAP_LEN + HEADER_LEN + 8))
        .ok_or(IndexError::Length)?;
    if body.len() < need {
        return Err(IndexError::Length);
    }
    let mut o = HEADER_LEN;
    s.entries.reserve(n_entries);
    for _ in 0..n_entries {
        let mut k = [0u8; 32];
        k.copy_from_slice(&b[o..o + 32]);
        let flags = b[o + 68];
        if flags > 3 {
            return Err(IndexError::Field);
        }
        let e = Entry {
            loc: Location {
                block_id: rd64(b, o + 32),
                offset: rd64(b, o + 40),
                length: rd64(b, o + 48),
            },
            logseq: rd64(b, o + 56),
            type_tag: (flags & 1 != 0).then(|| rd32(b, o + 64)),
            live: flags & 2 != 0,
        };
        s.entries.insert(ArtifactKey(k), e);
        o += ENTRY_LEN;
    }
    for _ in 0..n_blocks {
        let flags = b[o + 16];
        if flags > 3 {
            return Err(IndexError::Field);
        }
        let mut c = [0u8; 32];
        c.copy_from_slice(&b[o + 24..o + 56]);
        s.blocks.insert(
            rd64(b, o),
            BlockInfo {
                data_len: rd64(b, o + 8),
                sealed: (flags & 1 != 0).then_some(c),
                freed: flags & 2 != 0,
            },
        );
        o += BLOCK_LEN;
    }
    for _ in 0..n_snaps {
        s.snapshots.insert(rd64(b, o), rd64(b, o + 8));
        o += SNAP_LEN;
    }
    let n_bloom_blocks = usize::try_from(rd64(b, o)).map_err(|_| IndexError::Length)?;
    o += 8;
    if !n_bloom_blocks.is_power_of_two()
        || n_bloom_blocks
            .checked_mul(64)
            .is_none_or(|x| body.len() != o + x)
    {
        return Err(IndexError::Length);
    }
    let words = (0..n_bloom_blocks * 8)
        .map(|i| rd64(b, o + 8 * i))
        .collect();
    Ok((s, Bloom { words }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let keys: Vec<ArtifactKey> = (0u32..5000)
            .map(|i| ArtifactKey::of(&i.to_le_bytes()))
            .collect();
        let b = Bloom::build(keys.len(), keys.iter());
        assert!(keys.iter().all(|k| b.may_contain(k)));
        let fp = (5000u32..105_000)
            .filter(|i| b.may_contain(&ArtifactKey::of(&i.to_le_bytes())))
            .count();
        assert!(fp < 2000, "false positives {fp} of 100000");
    }

    #[test]
    fn index_roundtrip_and_rejects_damage() {
        let mut s = State::default();
        for i in 0u64..10 {
            let key = ArtifactKey::of(&i.to_le_bytes());
            s.entries.insert(
                key,
                Entry {
                    loc: Location {
                        block_id: 1 + i / 4,
                        offset: i * 8,
                        length: 8,
                    },
                    type_tag: (i % 2 == 0).then_some(i as u32),
                    logseq: i + 1,
                    live: i != 3,
                },
            );
        }
        s.blocks.insert(
            1,
            BlockInfo {
                data_len: 32,
                sealed: Some([7; 32]),
                freed: false,
            },
        );
        s.blocks.insert(2, BlockInfo::default());
        s.snapshots.insert(5, 99);
        s.last_logseq = 11;
        s.log_len = 1234;
        let enc = encode(&s);
        let (d, bloom) = decode(&enc).unwrap();
        assert_eq!(d, s);
        assert!(s.entries.keys().all(|k| bloom.may_contain(k)));
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err());
        }
        let mut f = enc.clone();
        f[100] ^= 1;
        assert_eq!(decode(&f).unwrap_err(), IndexError::Checksum);
    }
}
