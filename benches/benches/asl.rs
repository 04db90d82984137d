//! ASL benchmark: each figure beside its peer, measured in the same run.
//!
//! - ingest GB/s of 64 MiB artifacts vs `b3sum --num-threads 1` on the same bytes
//!   (files on the same file system), plus in-process single-thread BLAKE3;
//! - appends/s of 1 KiB artifacts (read from files) per durability mode vs
//!   `git hash-object -w --stdin-paths` on the same files;
//! - lookups/s of present and absent keys (beside a plain `HashMap` probe).
//!
//! Stores for ingest and lookups live on /dev/shm (tmpfs) when present; the append
//! benchmark uses the system temp dir (a real disk here), so fsync costs are real.
//! `PFS_ASL_BENCH_QUICK=1` shrinks the sizes.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pfs_control::asl::{ArtifactKey, Durability, Store, StoreOptions};

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&splitmix(&mut x).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn fast_dir() -> tempfile::TempDir {
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
        ..StoreOptions::default()
    }
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ingest(quick: bool) {
    let n = if quick { 2 } else { 4 };
    let size = 64usize << 20;
    let tmp = fast_dir();
    let arts: Vec<Vec<u8>> = (0..n).map(|i| random_bytes(i as u64 + 1, size)).collect();
    let total = (n * size) as f64;
    let reps = 3;

    let mut ours = f64::MAX;
    for r in 0..reps {
        let dir = tmp.path().join(format!("s{r}"));
        let mut s = Store::create(&dir, opts(Durability::None)).unwrap();
        let t = Instant::now();
        for a in &arts {
            black_box(s.put(a, None).unwrap());
        }
        ours = ours.min(t.elapsed().as_secs_f64());
        s.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let mut inproc = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        for a in &arts {
            black_box(blake3::hash(a));
        }
        inproc = inproc.min(t.elapsed().as_secs_f64());
    }
    let files: Vec<PathBuf> = arts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let p = tmp.path().join(format!("a{i}"));
            std::fs::write(&p, a).unwrap();
            p
        })
        .collect();
    // The floor: writing the same bytes to fresh files (page allocation included).
    let mut write_only = f64::MAX;
    for r in 0..reps {
        let t = Instant::now();
        for (i, a) in arts.iter().enumerate() {
            std::fs::write(tmp.path().join(format!("w{r}-{i}")), a).unwrap();
        }
        write_only = write_only.min(t.elapsed().as_secs_f64());
        for i in 0..arts.len() {
            std::fs::remove_file(tmp.path().join(format!("w{r}-{i}"))).unwrap();
        }
    }
    let gbps = |s: f64| total / s / 1e9;

    println!(
        "ingest {n} x 64 MiB (store on {}): pfs asl put {:.2} GB/s | in-process blake3 1 thread {:.2} GB/s",
        tmp.path().display(),
        gbps(ours),
        gbps(inproc)
    );
    println!(
        "  reference: write(2) of the same bytes to fresh files there {:.2} GB/s",
        gbps(write_only)
    );
    if have("b3sum", "--version") {
        let mut peer = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            let o = Command::new("b3sum")
                .args(["--num-threads", "1"])
                .args(&files)
                .output()
                .unwrap();
            assert!(o.status.success());
            peer = peer.min(t.elapsed().as_secs_f64());
        }
        println!(
            "  peer b3sum --num-threads 1: {:.2} GB/s | ours/peer {:.2} (target >= 0.70)",
            gbps(peer),
            peer / ours
        );
    } else {
        println!("  peer b3sum not installed (cargo install b3sum): skipped");
    }
}

fn appends(quick: bool) {
    let n = if quick { 2000 } else { 20_000 };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            let p = src.join(format!("{i:06}"));
            std::fs::write(&p, random_bytes(1_000_000 + i as u64, 1024)).unwrap();
            p
        })
        .collect();
    let mem: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    println!(
        "appends of 1 KiB artifacts read from files (store and git repo in {}):",
        tmp.path().display()
    );
    let mut rates = HashMap::new();
    for (mode, name, count) in [
        (Durability::Fsync, "fsync", if quick { 200 } else { 1000 }),
        (Durability::Group, "group", n),
        (Durability::None, "none", n),
    ] {
        let dir = tmp.path().join(format!("store-{name}"));
        let mut s = Store::create(&dir, opts(mode)).unwrap();
        let t = Instant::now();
        for p in &paths[..count] {
            let b = std::fs::read(p).unwrap();
            black_box(s.put(&b, None).unwrap());
        }
        let d = s.sync().unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(d >= count as u64);
        s.close().unwrap();
        let rate = count as f64 / secs;
        rates.insert(name, rate);
        // The same artifacts already in memory: the store's own cost.
        let dir = tmp.path().join(format!("store-{name}-mem"));
        let mut s = Store::create(&dir, opts(mode)).unwrap();
        let t = Instant::now();
        for b in &mem[..count] {
            black_box(s.put(b, None).unwrap());
        }
        s.sync().unwrap();
        let mem_rate = count as f64 / t.elapsed().as_secs_f64();
        s.close().unwrap();
        println!(
            "  pfs asl {name:5}: {rate:>10.0} appends/s from files, {mem_rate:>10.0}/s from memory ({count} appends, durable at the end)"
        );
    }
    if have("git", "--version") {
        let repo = tmp.path().join("git");
        let st = Command::new("git")
            .args(["init", "-q"])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(st.success());
        let list: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
        let t = Instant::now();
        let mut c = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["hash-object", "-w", "--stdin-paths"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success());
        let git = n as f64 / t.elapsed().as_secs_f64();
        println!("  peer git hash-object -w --stdin-paths: {git:>10.0} objects/s ({n} objects)");
        for name in ["fsync", "group", "none"] {
            println!("  ratio {name}/git: {:.2}", rates[name] / git);
        }
        println!("  targets: group >= 50,000/s and >= 10x git");
    } else {
        println!("  peer git not installed: skipped");
    }
}

fn lookups(quick: bool) {
    let n = if quick { 20_000 } else { 200_000 };
    let tmp = fast_dir();
    let dir = tmp.path().join("s");
    let mut s = Store::create(&dir, opts(Durability::None)).unwrap();
    let mut keys = Vec::with_capacity(n);
    for i in 0..n as u64 {
        keys.push(s.put(&i.to_le_bytes(), None).unwrap().key);
    }
    s.close().unwrap();
    let s = Store::open_reader(&dir).unwrap();
    let absent: Vec<ArtifactKey> = (0..n as u64)
        .map(|i| ArtifactKey::of(&(i + (1 << 40)).to_le_bytes()))
        .collect();
    let mut x = 7u64;
    let order: Vec<usize> = (0..1_000_000)
        .map(|_| (splitmix(&mut x) % n as u64) as usize)
        .collect();
    let time = |ks: &[ArtifactKey], f: &dyn Fn(&ArtifactKey) -> bool| {
        let t = Instant::now();
        let mut hits = 0usize;
        for &i in &order {
            hits += usize::from(f(black_box(&ks[i])));
        }
        (order.len() as f64 / t.elapsed().as_secs_f64(), hits)
    };
    let (p, ph) = time(&keys, &|k| s.locate(k).is_some());
    let (a, ah) = time(&absent, &|k| s.locate(k).is_some());
    assert_eq!((ph, ah), (order.len(), 0));
    let map: HashMap<ArtifactKey, u64> = keys.iter().map(|k| (*k, 0)).collect();
    let (hp, _) = time(&keys, &|k| map.contains_key(k));
    let (ha, _) = time(&absent, &|k| map.contains_key(k));
    println!("lookups in a store of {n} artifacts (1,000,000 random probes each):");
    println!("  pfs asl locate present: {p:>12.0}/s | std HashMap probe: {hp:>12.0}/s");
    println!(
        "  pfs asl locate absent:  {a:>12.0}/s | std HashMap probe: {ha:>12.0}/s (target >= 1,000,000/s)"
    );
}

fn main() {
    let quick = std::env::var("PFS_ASL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if run("ingest") {
        ingest(quick);
    }
    if run("appends") {
        appends(quick);
    }
    if run("lookups") {
        lookups(quick);
    }
}
