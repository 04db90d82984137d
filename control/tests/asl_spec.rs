//! The hex test vectors of `specs/asl.md` §13, read back from the spec: every one
//! must equal what the code encodes, and decode to the value it names.

use pfs_control::asl::ArtifactKey;
use pfs_control::asl::block::{BlockHeader, BlockKind, BlockTrailer};
use pfs_control::asl::index::{self, State};
use pfs_control::asl::record::{Location, Record, RecordBody, RecordHeader};
use pfs_control::asl::store::{Identity, superblock};
use pfs_dataplane::specvec::{blocks, unhex};

fn vectors() -> Vec<(String, Vec<u8>)> {
    let md = include_str!("../../specs/asl.md");
    blocks(md, "asl-vectors")
        .into_iter()
        .map(|b| {
            let (name, hex) = b.split_once('\n').expect("name line then hex");
            (name.trim().to_owned(), unhex(hex).expect("valid hex"))
        })
        .collect()
}

fn records() -> Vec<(&'static str, Record)> {
    let key = ArtifactKey::of(b"hello");
    let h = |logseq: u64| RecordHeader {
        logseq,
        clock_ns: 1_700_000_000_000_000_000 + logseq,
        host_id: 0x1122_3344_5566_7788,
        uid: 1000,
    };
    let body = [
        (
            "record_session",
            RecordBody::Session {
                pid: 42,
                host: "lab1".into(),
            },
        ),
        (
            "record_put",
            RecordBody::Put {
                key,
                loc: Location {
                    block_id: 1,
                    offset: 0,
                    length: 5,
                },
                type_tag: Some(7),
            },
        ),
        (
            "record_seal",
            RecordBody::Seal {
                block_id: 1,
                data_len: 5,
                checksum: key.0,
            },
        ),
        ("record_tombstone", RecordBody::Tombstone { key }),
        ("record_snapshot", RecordBody::Snapshot { artifacts: 1 }),
    ];
    body.into_iter()
        .enumerate()
        .map(|(i, (n, body))| {
            (
                n,
                Record {
                    header: h(i as u64 + 1),
                    body,
                },
            )
        })
        .collect()
}

#[test]
fn spec_vectors_match_the_code() {
    let v = vectors();
    let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "record_session",
            "record_put",
            "record_seal",
            "record_tombstone",
            "record_snapshot",
            "block_header",
            "block_trailer",
            "superblock",
            "index"
        ]
    );
    let get = |n: &str| &v.iter().find(|(m, _)| m == n).unwrap().1;
    let recs = records();
    for (n, r) in &recs {
        assert_eq!(&r.encode(), get(n), "{n}");
        let (d, len) = Record::decode(get(n)).unwrap();
        assert_eq!((&d, len), (r, get(n).len()), "{n}");
    }
    let key = ArtifactKey::of(b"hello");
    let h = BlockHeader {
        block_id: 1,
        kind: BlockKind::Packed,
    };
    assert_eq!(&h.encode()[..], &get("block_header")[..]);
    assert_eq!(
        BlockHeader::decode(get("block_header").as_slice().try_into().unwrap()),
        Ok(h)
    );
    let t = BlockTrailer {
        data_len: 5,
        checksum: key.0,
    };
    assert_eq!(&t.encode()[..], &get("block_trailer")[..]);
    assert_eq!(
        BlockTrailer::decode(get("block_trailer").as_slice().try_into().unwrap()),
        Ok(t)
    );
    let id = Identity {
        host: "lab1".into(),
        host_id: 0x1122_3344_5566_7788,
        uid: 1000,
    };
    assert_eq!(
        &superblock(1_700_000_000_000_000_000, &id)[..],
        &get("superblock")[..]
    );

    let mut st = State::default();
    let mut log = Vec::new();
    for (_, r) in &recs[..3] {
        let o = log.len() as u64;
        r.encode_into(&mut log);
        st.apply(r, o, log.len() as u64 - o);
    }
    assert_eq!(&index::encode(&st), get("index"));
    let (d, bloom) = index::decode(get("index")).unwrap();
    assert_eq!(d, st);
    assert!(bloom.may_contain(&key));
    assert_eq!(d.entries[&key].loc.length, 5);
}
