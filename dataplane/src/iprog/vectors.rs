//! The hex test vectors of `specs/iprog.md` and `specs/udp-transfer.md`: each
//! named vector is built here from its parsed form, and must equal the spec's
//! hex byte for byte and decode back to the same form.

use super::codec::{
    Bref, ContainerPacket, IprogHeader, IprogPacket, Mode, Op, Section, Transform,
    encode_container, encode_iprog, get_section, put_section,
};
use super::crc16::crc16;
use super::frame::{
    AckRepr, DoneRepr, DoneStatus, EndRepr, FrameRepr, MfstRepr, NeedRepr, PrefaceRepr, WinRepr,
    decode,
};
use super::vblob::{Identity, VirtualBlob};

const ANCHOR: u64 = 0x8_0000; // blob of 1 MiB

fn b(offset: u64, len: u64, xf: Transform) -> Section<'static> {
    Section::Bref(Bref { offset, len, xf })
}

fn sections() -> Vec<Section<'static>> {
    vec![
        b(ANCHOR, 100, Transform::Identity),
        b(0x1000, 512, Transform::Identity),
        b(0x1000, 512, Transform::Xor(5)),
        Section::Raw(b"hi"),
        b(0x1204, 4, Transform::Add(31)),
    ]
}

/// `(name, bytes)` of every vector.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    v.push(("crc16-check", crc16(b"123456789").to_be_bytes().to_vec()));
    let mut s = Vec::new();
    let mut cursor = ANCHOR;
    for sec in sections() {
        put_section(&mut s, &mut cursor, &sec);
    }
    v.push(("sections", s));
    let mut p = Vec::new();
    let secs = sections();
    encode_container(Mode::Pvrt, ANCHOR, &secs, &mut p).unwrap_or(());
    v.push(("pvrt", p));
    let mut o = Vec::new();
    let brefs: Vec<Section<'_>> = secs
        .iter()
        .copied()
        .filter(|s| matches!(s, Section::Bref(_)))
        .collect();
    encode_container(Mode::Offs, ANCHOR, &brefs, &mut o).unwrap_or(());
    v.push(("offs", o));
    let obj = b"\x00\x00\x00\x00hi";
    let ops = [
        Op::Bref(Bref {
            offset: 0x1000,
            len: 4,
            xf: Transform::Identity,
        }),
        Op::Raw(2),
    ];
    let h = IprogHeader {
        raw: true,
        object_size: 6,
        blob_size: 1 << 20,
        sections: 2,
        object_hash: *blake3::hash(obj).as_bytes(),
        blob_fingerprint: [0xAB; 32],
    };
    v.push(("iprog", encode_iprog(&h, &ops, obj)));
    let blob = VirtualBlob::new(Identity {
        name: "pfs_vblob_palette".into(),
        size: 1 << 20,
        seed: 1337,
    })
    .map(|b| b.header().to_vec())
    .unwrap_or_default();
    v.push(("vblob-header", blob));
    for (name, f) in frames() {
        v.push((name, f.to_datagram(0x0102_0304).unwrap_or_default()));
    }
    v
}

fn frames() -> Vec<(&'static str, FrameRepr<'static>)> {
    vec![
        (
            "frame-preface",
            FrameRepr::Preface(PrefaceRepr {
                mode: 1,
                flags: 0,
                anchor: ANCHOR,
                blob_size: 1 << 20,
                blob_fingerprint: [0x11; 32],
            }),
        ),
        (
            "frame-mfst",
            FrameRepr::Mfst(MfstRepr {
                object_size: 8192,
                object_hash: [0x22; 32],
                windows: 2,
                name: "a.bin".into(),
            }),
        ),
        (
            "frame-need",
            FrameRepr::Need(NeedRepr {
                seq: 1,
                missing: 3,
                ranges: vec![(0, 1), (5, 2)],
            }),
        ),
        (
            "frame-win",
            FrameRepr::Win(WinRepr {
                index: 1,
                offset: 4096,
                len: 4,
                container: b"PVRT\x01\x00\x01\x00\x20\xff\x3f\x04",
            }),
        ),
        ("frame-end", FrameRepr::End(EndRepr { seq: 1, sent: 3 })),
        (
            "frame-done",
            FrameRepr::Done(DoneRepr {
                status: DoneStatus::Ok,
                object_hash: [0x33; 32],
            }),
        ),
        ("frame-ack", FrameRepr::Ack(AckRepr { seq: 1, highest: 9 })),
    ]
}

fn spec_vectors() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for spec in [
        include_str!("../../../specs/iprog.md"),
        include_str!("../../../specs/udp-transfer.md"),
    ] {
        for block in crate::specvec::blocks(spec, "vectors") {
            // A vector is a name line followed by hex lines, ended by a blank line.
            let mut name: Option<String> = None;
            let mut hex = String::new();
            for line in block.lines().chain(std::iter::once("")) {
                let line = line.trim();
                if line.starts_with('#') {
                    continue;
                }
                if line.is_empty() {
                    if let Some(n) = name.take() {
                        out.push((
                            n,
                            crate::specvec::unhex(&hex)
                                .unwrap_or_else(|| panic!("bad hex in {hex}")),
                        ));
                        hex.clear();
                    }
                } else if name.is_none() {
                    name = Some(line.to_string());
                } else {
                    hex.push_str(line);
                }
            }
        }
    }
    out
}

fn hexlines(b: &[u8]) -> String {
    b.chunks(32)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints the vectors for pasting into the specs (`cargo test -- --ignored print_vectors --nocapture`).
#[test]
#[ignore]
fn print_vectors() {
    for (n, b) in cases() {
        println!("{n}\n{}\n", hexlines(&b));
    }
}

#[test]
fn specs_match_code() {
    let spec = spec_vectors();
    let cases = cases();
    assert_eq!(
        spec.len(),
        cases.len(),
        "spec has {} vectors, code {}",
        spec.len(),
        cases.len()
    );
    for (name, bytes) in &cases {
        let Some((_, want)) = spec.iter().find(|(n, _)| n == name) else {
            panic!("vector {name} missing from the specs");
        };
        assert_eq!(hexlines(bytes), hexlines(want), "vector {name}");
    }
}

#[test]
fn spec_vectors_decode() {
    let spec = spec_vectors();
    let get = |n: &str| {
        spec.iter()
            .find(|(m, _)| m == n)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("crc16-check"), vec![0x29, 0xb1]);
    let s = get("sections");
    let (mut pos, mut cursor) = (0, ANCHOR);
    let mut back = Vec::new();
    while pos < s.len() {
        back.push(get_section(&s, &mut pos, &mut cursor).unwrap());
    }
    assert_eq!(back, sections());
    let p = get("pvrt");
    let c = ContainerPacket::new_checked(&p[..], ANCHOR, true).unwrap();
    let mut back = Vec::new();
    c.for_each::<super::WireError>(|s| {
        back.push(s);
        Ok(())
    })
    .unwrap();
    assert_eq!(back, sections());
    assert!(
        ContainerPacket::new_checked(&p[..], ANCHOR, false).is_err(),
        "RAW refused when not allowed"
    );
    let o = get("offs");
    let c = ContainerPacket::new_checked(&o[..], ANCHOR, false).unwrap();
    assert_eq!(c.count(), 4);
    let i = get("iprog");
    let ip = IprogPacket::new_checked(&i[..]).unwrap();
    let mut blob = vec![0u8; 1 << 20];
    blob[0x1000..0x1004].copy_from_slice(&[0; 4]);
    assert_eq!(ip.rebuild(&blob).unwrap(), b"\x00\x00\x00\x00hi");
    let id = VirtualBlob::parse_header(&get("vblob-header")).unwrap();
    assert_eq!(
        id,
        Identity {
            name: "pfs_vblob_palette".into(),
            size: 1 << 20,
            seed: 1337
        }
    );
    for (name, f) in frames() {
        let d = get(name);
        let (session, back) = decode(&d).unwrap();
        assert_eq!(session, 0x0102_0304);
        assert_eq!(back, f, "{name}");
    }
}
