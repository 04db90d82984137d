//! Behaviour of the artifact store: host contract, idempotent puts, one writer with
//! readers alongside, durability reports, snapshots, tombstones, gc, the index cache,
//! and the CLI's error lines and exit codes.

use std::fs;
use std::path::Path;
use std::process::Command;

use pfs_control::asl::{
    ArtifactKey, AslError, Durability, ErrorKind, SnapshotId, Store, StoreOptions,
};

fn opts(d: Durability) -> StoreOptions {
    StoreOptions {
        durability: d,
        block_size: 16 << 10,
        large_threshold: 8 << 10,
        ..StoreOptions::default()
    }
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[test]
fn create_open_and_bad_directories() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    Store::create(&dir, opts(Durability::Fsync))
        .unwrap()
        .close()
        .unwrap();
    let e = Store::create(&dir, opts(Durability::Fsync)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exists);

    let foreign = tmp.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), "x").unwrap();
    let e = Store::create(&foreign, opts(Durability::Fsync)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exists);
    assert!(e.to_string().contains("notes.txt"), "{e}");
    let e = Store::open(&foreign, opts(Durability::Fsync)).unwrap_err();
    assert!(matches!(e, AslError::NotAStore { .. }));
    assert_eq!(e.kind(), ErrorKind::NotFound);
    fs::write(foreign.join("ASL"), [0u8; 64]).unwrap();
    let e = Store::open_reader(&foreign).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");

    // A future format version (valid checksum) is named as such.
    let mut sb = fs::read(dir.join("ASL")).unwrap();
    sb[8] = 2;
    let crc = crc32c::crc32c(&sb[..60]);
    sb[60..].copy_from_slice(&crc.to_le_bytes());
    fs::write(dir.join("ASL"), &sb).unwrap();
    let e = Store::open(&dir, opts(Durability::Fsync)).unwrap_err();
    assert!(
        matches!(
            e,
            AslError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    sb[9] = 1; // breaks the checksum
    fs::write(dir.join("ASL"), &sb).unwrap();
    let e = Store::open(&dir, opts(Durability::Fsync)).unwrap_err();
    assert!(matches!(e, AslError::Corrupt { .. }), "{e}");
}

#[test]
fn put_is_idempotent_by_content_and_get_checks_keys() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::Fsync)).unwrap();
    let a = s.put(b"alpha", Some(1)).unwrap();
    assert!(a.new && a.durable);
    assert_eq!(a.key, ArtifactKey::of(b"alpha"));
    let again = s.put(b"alpha", Some(1)).unwrap();
    assert!(!again.new);
    assert_eq!(again.logseq, a.logseq);
    let e = s.put(b"alpha", Some(2)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exists);
    assert!(e.to_string().contains(&a.key.to_hex()));
    // The store still works after a refused put.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let b = s.put(&big, None).unwrap();
    assert!(!s.put(&big, None).unwrap().new);
    let empty = s.put(b"", None).unwrap();
    assert_eq!(s.get(&a.key).unwrap(), b"alpha");
    assert_eq!(s.get(&b.key).unwrap(), big);
    assert_eq!(s.get(&empty.key).unwrap(), b"");
    let e = s.get(&ArtifactKey([7; 32])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(ErrorKind::of(&s.get(&a.key)), ErrorKind::Ok);
    s.close().unwrap();
    let blocks = fs::read_dir(dir.join("blocks")).unwrap().count();
    assert_eq!(blocks, 2, "one packed block, one for the large artifact");
    let s = Store::open_reader(&dir).unwrap();
    assert_eq!(s.list(0, None).len(), 3);
    assert_eq!(s.list(0, Some(1)).len(), 1);
    assert_eq!(s.list(b.logseq, None).len(), 2);
}

#[test]
fn one_writer_readers_alongside() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut w = Store::create(&dir, opts(Durability::Group)).unwrap();
    let e = Store::open(&dir, opts(Durability::Fsync)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConcurrentModification);
    assert!(e.to_string().contains("another writer"), "{e}");
    let mut r = Store::open_reader(&dir).unwrap();
    let e = r.put(b"x", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConcurrentModification);

    let rc = w.put(b"grouped", None).unwrap();
    assert!(
        !rc.durable,
        "group mode: not durable until the group commits"
    );
    assert!(w.durable_logseq() < rc.logseq);
    let d = w.sync().unwrap();
    assert!(d >= rc.logseq);
    r.refresh().unwrap();
    assert_eq!(r.get(&rc.key).unwrap(), b"grouped");
    drop(w);
    let w2 = Store::open(&dir, opts(Durability::Fsync)).unwrap();
    assert_eq!(w2.get(&rc.key).unwrap(), b"grouped");
    assert!(w2.clock() > 0);
    assert_eq!(w2.identity().uid, r.identity().uid);
}

#[test]
fn group_commit_reports_durability_monotonically() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut o = opts(Durability::Group);
    o.group_max = 8;
    let mut s = Store::create(&dir, o.clone()).unwrap();
    let mut last_durable = 0;
    let mut receipts = Vec::new();
    for i in 0..400u32 {
        let r = s.put(&i.to_le_bytes(), None).unwrap();
        let d = s.durable_logseq();
        assert!(d >= last_durable, "durable logseq never goes back");
        assert!(!r.durable || d >= r.logseq);
        last_durable = d;
        receipts.push(r);
    }
    let d = s.sync().unwrap();
    assert_eq!(d, s.last_logseq());
    drop(s);
    let s = Store::open_reader(&dir).unwrap();
    for r in &receipts {
        assert_eq!(s.get(&r.key).unwrap().len(), 4);
    }
}

#[test]
fn snapshots_tombstones_and_gc() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::None)).unwrap();
    let a_bytes = vec![0xaa; 6000];
    let a = s.put(&a_bytes, None).unwrap().key;
    let b = s.put(b"small b", None).unwrap().key;
    let snap = s.snapshot().unwrap();
    s.tombstone(&a).unwrap();
    assert_eq!(s.tombstone(&a).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.get(&a).unwrap_err().kind(), ErrorKind::NotFound);
    let mut view = s.mount_snapshot(snap).unwrap();
    assert_eq!(view.get(&a).unwrap(), a_bytes);
    assert_eq!(
        view.put(b"no").unwrap_err().kind(),
        ErrorKind::ConcurrentModification
    );
    assert_eq!(
        s.mount_snapshot(SnapshotId(999)).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // gc keeps what the snapshot sees.
    let r = s.gc().unwrap();
    assert_eq!(r.blocks_freed, 0);
    assert_eq!(view.get(&a).unwrap(), a_bytes);
    drop(view);

    s.drop_snapshot(snap).unwrap();
    let r = s.gc().unwrap();
    assert_eq!(r.blocks_freed, 1);
    assert_eq!(
        r.artifacts_moved, 1,
        "b copied out of the mostly-dead block"
    );
    assert_eq!(r.artifacts_dropped, 1);
    assert_eq!(s.get(&b).unwrap(), b"small b");
    assert!(s.locate(&a).is_none());
    // Putting a's bytes again stores them again.
    s.put(&a_bytes, None).unwrap();
    s.close().unwrap();
    let mut s = Store::open(&dir, opts(Durability::None)).unwrap();
    assert_eq!(s.get(&a).unwrap(), a_bytes);
    let v = s.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn index_cache_is_checked_and_rebuilt() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::None)).unwrap();
    let keys: Vec<_> = (0..50u32)
        .map(|i| s.put(&i.to_le_bytes(), Some(i)).unwrap().key)
        .collect();
    s.close().unwrap();
    let mut r = Store::open_reader(&dir).unwrap();
    let v = r.verify().unwrap();
    assert!(v.problems.is_empty() && v.notes.is_empty(), "{v:?}");

    // A damaged cache is reported, ignored on open and rewritten by the writer.
    let mut idx = fs::read(dir.join("index")).unwrap();
    idx[70] ^= 4;
    fs::write(dir.join("index"), &idx).unwrap();
    let mut w = Store::open(&dir, opts(Durability::None)).unwrap();
    for k in &keys {
        assert!(w.contains(k));
    }
    let v = w.verify().unwrap();
    assert!(v.problems.iter().any(|p| p.contains("index file")), "{v:?}");
    assert!(v.notes.iter().any(|n| n.contains("rewritten")), "{v:?}");
    let v = w.verify().unwrap();
    assert!(v.problems.is_empty(), "{v:?}");
    w.close().unwrap();
}

fn pfs(store: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .arg("asl")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cli_round_trip_and_error_lines() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let (c, o, e) = pfs(&dir, &["init", dir.to_str().unwrap()]);
    assert_eq!(c, 0, "init: stdout {o:?} stderr {e:?}");
    let f = tmp.path().join("f");
    fs::write(&f, b"cli bytes").unwrap();
    let (c, key, _) = pfs(&dir, &["put", f.to_str().unwrap(), "--type-tag", "0x10"]);
    assert_eq!(c, 0);
    let key = key.trim().to_owned();
    assert_eq!(key, ArtifactKey::of(b"cli bytes").to_hex());
    let (c, out, _) = pfs(&dir, &["get", &key]);
    assert_eq!((c, out.as_str()), (0, "cli bytes"));
    let (_, out, _) = pfs(&dir, &["ls", "--type-tag", "16"]);
    assert!(out.contains(&key));
    let (_, out, _) = pfs(&dir, &["ls", "--type-tag", "17"]);
    assert!(out.is_empty());
    let (c, out, _) = pfs(&dir, &["verify"]);
    assert_eq!(c, 0, "{out}");

    for (args, needle) in [
        (vec!["get", "xyz"], "malformed key 'xyz'"),
        (vec!["get", &"0".repeat(64)], "not found"),
        (vec!["put", "/nonexistent/file"], "/nonexistent/file"),
        (
            vec!["put", f.to_str().unwrap(), "--type-tag", "4294967296"],
            "--type-tag",
        ),
        (vec!["init", dir.to_str().unwrap()], "already exists"),
    ] {
        let (c, _, e) = pfs(&dir, &args);
        assert_eq!(c, 2, "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let (c, _, e) = pfs(tmp.path(), &["ls"]);
    assert_eq!(c, 2);
    assert!(e.contains("is not an ASL store"), "{e}");

    // A second writer is refused with exit 2; a reader is not.
    let w = Store::open(&dir, StoreOptions::default()).unwrap();
    let (c, _, e) = pfs(&dir, &["put", f.to_str().unwrap()]);
    assert_eq!(c, 2);
    assert!(e.contains("another writer"), "{e}");
    let (c, out, _) = pfs(&dir, &["get", &key]);
    assert_eq!((c, out.as_str()), (0, "cli bytes"));
    drop(w);
}
