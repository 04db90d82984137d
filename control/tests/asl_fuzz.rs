//! Deterministic fuzzing of the store's decoders (record frames, block header and
//! trailer, index file): random and mutated inputs never panic, and whatever a
//! decoder accepts re-encodes to the same bytes.

use pfs_control::asl::ArtifactKey;
use pfs_control::asl::block::{BlockHeader, BlockTrailer};
use pfs_control::asl::index::{self, State};
use pfs_control::asl::record::{Location, Record, RecordBody, RecordHeader};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn valid_log() -> Vec<u8> {
    let mut log = Vec::new();
    for i in 1..=20u64 {
        let key = ArtifactKey::of(&i.to_le_bytes());
        let body = match i % 4 {
            0 => RecordBody::Tombstone { key },
            1 => RecordBody::Put {
                key,
                loc: Location {
                    block_id: 1,
                    offset: i * 10,
                    length: 10,
                },
                type_tag: (i % 3 == 0).then_some(i as u32),
            },
            2 => RecordBody::Seal {
                block_id: i,
                data_len: i * 100,
                checksum: key.0,
            },
            _ => RecordBody::Session {
                pid: i as u32,
                host: "h".repeat(i as usize),
            },
        };
        Record {
            header: RecordHeader {
                logseq: i,
                clock_ns: 1000 + i,
                host_id: 7,
                uid: 0,
            },
            body,
        }
        .encode_into(&mut log);
    }
    log
}

fn decode_all(buf: &[u8]) {
    let mut o = 0;
    while o < buf.len() {
        match Record::decode(&buf[o..]) {
            Ok((r, n)) => {
                assert_eq!(r.encode(), &buf[o..o + n], "accepted frame re-encodes");
                o += n;
            }
            Err(_) => o += 1,
        }
    }
}

#[test]
fn record_decoder_survives_random_and_mutated_input() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(300);
        let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        decode_all(&buf);
    }
    let log = valid_log();
    for _ in 0..5_000 {
        let mut m = log.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len());
            match rng.below(3) {
                0 => m[i] ^= 1 << rng.below(8),
                1 => m[i] = rng.next() as u8,
                _ => m.truncate(i),
            }
            if m.is_empty() {
                break;
            }
        }
        decode_all(&m);
    }
}

#[test]
fn block_and_index_decoders_survive_mutations() {
    let mut rng = Rng(42);
    let mut st = State::default();
    let log = valid_log();
    let mut o = 0;
    while o < log.len() {
        let (r, n) = Record::decode(&log[o..]).unwrap();
        st.apply(&r, o as u64, n as u64);
        o += n;
    }
    let idx = index::encode(&st);
    for _ in 0..5_000 {
        let mut m = idx.clone();
        let i = rng.below(m.len());
        m[i] ^= 1 << rng.below(8);
        if rng.below(4) == 0 {
            m.truncate(rng.below(m.len()));
        }
        assert!(index::decode(&m).is_err(), "a damaged index is refused");
        let mut h = [0u8; 64];
        let mut t = [0u8; 64];
        for b in h.iter_mut().chain(t.iter_mut()) {
            *b = rng.next() as u8;
        }
        if let Ok(x) = BlockHeader::decode(&h) {
            assert_eq!(x.encode(), h);
        }
        if let Ok(x) = BlockTrailer::decode(&t) {
            assert_eq!(x.encode(), t);
        }
    }
    // Random bytes with a valid CRC reach the field checks and must not panic.
    for _ in 0..5_000 {
        let len = 64 + rng.below(400);
        let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        m[..8].copy_from_slice(b"PFSASLI\0");
        m[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c(&m[..len - 4]);
        m[len - 4..].copy_from_slice(&crc.to_le_bytes());
        let _ = index::decode(&m);
    }
}
