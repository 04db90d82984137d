//! Crash-consistency tests of the artifact store (in the spirit of ALICE and
//! CrashMonkey): a log cut at every byte offset, a writer SIGKILLed at random
//! moments, bit flips in sealed blocks, damage in the middle of the log.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pfs_control::asl::cli::torture_bytes;
use pfs_control::asl::record::{Record, RecordBody};
use pfs_control::asl::{ArtifactKey, AslError, Durability, ErrorKind, Store, StoreOptions};

/// A scratch directory on tmpfs when there is one: these tests simulate crashes by
/// cutting and killing, so the disk's own fsync cost only slows them down.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn opts(d: Durability) -> StoreOptions {
    StoreOptions {
        durability: d,
        block_size: 8192,
        ..StoreOptions::default()
    }
}

fn bytes_for(i: u32) -> Vec<u8> {
    let len = 50 + (i as usize * 37) % 900;
    (0..len).map(|j| (i as usize * 131 + j * 7) as u8).collect()
}

/// Every file of the store, keyed by path relative to it.
fn save(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    for sub in [dir.to_path_buf(), dir.join("blocks")] {
        for e in fs::read_dir(&sub).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
                m.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    m
}

fn restore(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>, log_cut: usize) {
    for e in fs::read_dir(dir.join("blocks")).unwrap().flatten() {
        fs::remove_file(e.path()).unwrap();
    }
    for (rel, b) in files {
        let p = dir.join(rel);
        if p.exists() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let b = if rel == Path::new("log") {
            &b[..log_cut]
        } else {
            &b[..]
        };
        fs::write(&p, b).unwrap();
    }
}

#[test]
fn log_cut_at_every_offset_of_the_last_records() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::None)).unwrap();
    let mut all: HashMap<ArtifactKey, Vec<u8>> = HashMap::new();
    for i in 0..30 {
        let b = bytes_for(i);
        let r = s.put(&b, Some(i)).unwrap();
        all.insert(r.key, b);
    }
    // The index cache is written here; later cuts fall on both sides of it.
    s.snapshot().unwrap();
    let dead = ArtifactKey::of(&bytes_for(3));
    s.tombstone(&dead).unwrap();
    for i in 30..36 {
        let b = bytes_for(i);
        let r = s.put(&b, None).unwrap();
        all.insert(r.key, b);
    }
    s.sync().unwrap();
    drop(s);
    let files = save(&dir);
    let log = files[Path::new("log")].clone();
    let mut frames = Vec::new();
    let mut o = 0;
    while o < log.len() {
        let (r, n) = Record::decode(&log[o..]).unwrap();
        frames.push((o, o + n, r));
        o += n;
    }
    assert_eq!(o, log.len());
    let first_cut = frames[frames.len() - 12].0;
    let mut checked = 0;
    for cut in first_cut..=log.len() {
        restore(&dir, &files, cut);
        let survivors: Vec<&Record> = frames
            .iter()
            .filter(|(_, end, _)| *end <= cut)
            .map(|(_, _, r)| r)
            .collect();
        let mut live: HashMap<ArtifactKey, ()> = HashMap::new();
        for r in &survivors {
            match &r.body {
                RecordBody::Put { key, .. } => {
                    live.insert(*key, ());
                }
                RecordBody::Tombstone { key } => {
                    live.remove(key);
                }
                _ => {}
            }
        }
        let mut s = Store::open(&dir, opts(Durability::None)).unwrap();
        assert_eq!(s.last_logseq(), survivors.len() as u64, "cut {cut}");
        assert_eq!(
            fs::metadata(dir.join("log")).unwrap().len(),
            frames
                .iter()
                .filter(|(_, e, _)| *e <= cut)
                .map(|f| f.1)
                .max()
                .unwrap_or(0) as u64,
            "torn tail truncated at cut {cut}"
        );
        for (k, b) in &all {
            if live.contains_key(k) {
                assert_eq!(&s.get(k).unwrap(), b, "cut {cut} key {k}");
            } else {
                assert_eq!(
                    s.get(k).unwrap_err().kind(),
                    ErrorKind::NotFound,
                    "cut {cut}"
                );
            }
        }
        // The recovered store accepts appends and stays consistent.
        let extra = format!("after cut {cut}").into_bytes();
        let r = s.put(&extra, None).unwrap();
        assert_eq!(r.logseq, survivors.len() as u64 + 2); // SESSION + PUT
        s.close().unwrap();
        let mut s = Store::open_reader(&dir).unwrap();
        assert_eq!(s.get(&r.key).unwrap(), extra);
        let v = s.verify().unwrap();
        assert!(v.problems.is_empty(), "cut {cut}: {:?}", v.problems);
        checked += 1;
    }
    assert!(checked > 500, "only {checked} cuts");
}

#[test]
fn sigkill_at_random_moments_loses_nothing_reported_durable() {
    let tmp = scratch();
    let seed = 0x5eed_u64;
    let mut rng = 0x1234_5678_9abc_def0_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut durable: BTreeMap<u64, (ArtifactKey, u64)> = BTreeMap::new();
    let mut total = 0;
    let kills = 210;
    // Seven stores, 30 kills each, so no store grows large.
    for it in 0..kills {
        let dir = tmp.path().join(format!("s{}", it / 30));
        if it % 30 == 0 {
            Store::create(&dir, opts(Durability::Fsync))
                .unwrap()
                .close()
                .unwrap();
        }
        let mode = ["group", "group", "fsync", "none"][it % 4];
        let out_path = tmp.path().join(format!("out{it}"));
        let out = fs::File::create(&out_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pfs"))
            .args(["asl", "--store"])
            .arg(&dir)
            .args(["--durability", mode, "torture", "--seed"])
            .arg(seed.to_string())
            .arg("--start")
            .arg((it as u64 * 1_000_000).to_string())
            .args(["--max-size", "2048"])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(
                fs::File::create(tmp.path().join("err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        // Kill at a random moment after the child opened the store (so that the
        // moments fall among appends however loaded the machine is).
        let t0 = std::time::Instant::now();
        while !fs::read_to_string(&out_path).unwrap().starts_with("R\n")
            && t0.elapsed() < Duration::from_secs(20)
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_micros(300));
        }
        std::thread::sleep(Duration::from_micros(next() % 25_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let text = fs::read_to_string(&out_path).unwrap();
        fs::remove_file(&out_path).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            // A line cut by the kill has fewer fields (or a short key): skip it.
            if f.len() != 4
                || f[0] != "D"
                || f[2].len() != 64
                || !text.contains(&format!("{line}\n"))
            {
                continue;
            }
            let key = ArtifactKey::parse(f[2]).unwrap();
            durable.insert(f[3].parse().unwrap(), (key, f[1].parse().unwrap()));
        }
        // Recovery by a new writer; every append reported durable is there (all of
        // them at the end of a store's 30 kills, the new ones otherwise).
        let mut s = Store::open(&dir, opts(Durability::Fsync)).unwrap();
        let last = it % 30 == 29;
        let from = if last { 0 } else { it as u64 * 1_000_000 };
        for (i, (key, logseq)) in durable.range(from..) {
            let got = s
                .get(key)
                .unwrap_or_else(|e| panic!("kill {it}: artifact {i} (logseq {logseq}) lost: {e}"));
            assert_eq!(
                got,
                torture_bytes(seed, *i, 2048),
                "kill {it}: artifact {i}"
            );
            assert!(s.last_logseq() >= *logseq);
        }
        if last {
            let v = s.verify().unwrap();
            assert!(v.problems.is_empty(), "{:?}", v.problems);
            total += durable.len();
            durable.clear();
            s.close().unwrap();
            fs::remove_dir_all(&dir).unwrap();
        } else {
            s.close().unwrap();
        }
    }
    eprintln!("{total} appends reported durable over {kills} kills");
    assert!(
        total > 100,
        "only {total} appends were reported durable; last child's stderr: {}",
        fs::read_to_string(tmp.path().join("err")).unwrap_or_default()
    );
}

#[test]
fn bit_flips_in_sealed_blocks_are_named_and_contained() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::Fsync)).unwrap();
    let mut all = Vec::new();
    for i in 0..60 {
        let b = bytes_for(i);
        let r = s.put(&b, None).unwrap();
        all.push((r.key, b));
    }
    s.close().unwrap();
    let s = Store::open_reader(&dir).unwrap();
    let victim = all[20].0;
    let loc = s.locate(&victim).unwrap().loc;
    let name = format!("{:016x}.blk", loc.block_id);
    let p = dir.join("blocks").join(&name);
    let mut b = fs::read(&p).unwrap();
    assert!(
        fs::metadata(&p).unwrap().permissions().readonly(),
        "sealed blocks are read-only"
    );
    b[64 + loc.offset as usize + 5] ^= 0x10;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&p, &b).unwrap();
    drop(s);

    let mut s = Store::open_reader(&dir).unwrap();
    let v = s.verify().unwrap();
    assert_eq!(v.corrupt_keys, vec![victim]);
    assert_eq!(v.corrupt_blocks, vec![loc.block_id]);
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains(&name) && p.contains("sealed BLAKE3"))
    );
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains(&victim.to_hex()) && p.contains(&name))
    );
    let e = s.get(&victim).unwrap_err();
    assert!(matches!(e, AslError::Corrupt { .. }));
    assert_eq!(e.kind(), ErrorKind::IoError);
    assert!(e.to_string().contains(&victim.to_hex()) && e.to_string().contains(&name));
    for (k, b) in &all {
        if *k != victim {
            assert_eq!(&s.get(k).unwrap(), b);
        }
    }

    // A flip in another block's trailer names that block and no artifact.
    let other = s.locate(&all[55].0).unwrap().loc.block_id;
    assert_ne!(other, loc.block_id);
    let q = dir.join("blocks").join(format!("{other:016x}.blk"));
    let mut b = fs::read(&q).unwrap();
    let n = b.len();
    b[n - 30] ^= 1;
    fs::set_permissions(&q, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&q, &b).unwrap();
    let v = s.verify().unwrap();
    assert_eq!(v.corrupt_blocks, vec![loc.block_id, other]);
    assert_eq!(v.corrupt_keys, vec![victim]);
    assert_eq!(s.get(&all[55].0).unwrap(), all[55].1);
}

#[test]
fn damage_inside_the_log_is_refused_not_truncated() {
    let tmp = scratch();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::Fsync)).unwrap();
    for i in 0..10 {
        s.put(&bytes_for(i), None).unwrap();
    }
    s.close().unwrap();
    fs::remove_file(dir.join("index")).unwrap();
    let log = dir.join("log");
    let mut b = fs::read(&log).unwrap();
    b[200] ^= 0x01;
    fs::write(&log, &b).unwrap();
    let e = Store::open(&dir, opts(Durability::Fsync)).unwrap_err();
    assert!(matches!(e, AslError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("not a torn tail"), "{e}");
    assert_eq!(fs::read(&log).unwrap(), b, "nothing was cut off the log");
    let e = Store::open_reader(&dir).unwrap_err();
    assert!(e.to_string().contains("log record at offset"), "{e}");
}
