//! `pfs xfer send/recv` over real UDP sockets on loopback: lossless, with 5% loss
//! injected by the driver's test shim on both sides, a mismatched blob, and a
//! shared base with RAW sections.

use std::path::{Path, PathBuf};

use pfs_control::xfer::compile::ProgramArgs;
use pfs_control::xfer::source::SourceArgs;
use pfs_control::xfer::transport::{LinkArgs, RecvArgs, SendArgs, recv, send};
use pfs_control::xfer::vblob::setup;
use pfs_dataplane::iprog::vblob::{FILLER_OFFSET, Identity, palette};

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn link_on(backend: &str, receipts: &Path, loss: f64) -> LinkArgs {
    LinkArgs {
        backend: backend.into(),
        rto_ms: 10,
        idle_timeout_s: 5,
        max_in_flight: 512,
        receipts: Some(receipts.to_path_buf()),
        json: true,
        loss_percent: loss,
        vanish_after: None,
        no_asl: true,
        asl_store: None,
    }
}

/// Pieces of 8..60 bytes from the palette: strictly expressible, many windows.
fn palette_object(n: usize, seed: u64) -> Vec<u8> {
    let p = palette();
    let mut x = seed | 1;
    let mut o = Vec::new();
    while o.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 8 + (x % 52) as usize;
        let at = 131_072 + ((x >> 16) as usize % (p.len() - 131_072 - 64));
        o.extend_from_slice(&p[at..at + len]);
    }
    o
}

struct Case {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Case {
    fn new(seed: u64) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let id = Identity {
            name: "loop".into(),
            size: FILLER_OFFSET + 65_536,
            seed,
        };
        setup(id, &root.join("blob.bin"), false).unwrap();
        std::fs::create_dir(root.join("out")).unwrap();
        Case { _dir: dir, root }
    }

    fn p(&self, s: &str) -> PathBuf {
        self.root.join(s)
    }
}

fn program(blob: &Path, base: Option<&Path>, allow_raw: bool) -> ProgramArgs {
    ProgramArgs {
        mode: "pvrt".into(),
        source: SourceArgs {
            blob: blob.to_path_buf(),
            base: base.map(Path::to_path_buf),
        },
        allow_raw,
    }
}

fn run(
    c: &Case,
    file: &Path,
    send_prog: ProgramArgs,
    recv_src: SourceArgs,
    loss: f64,
) -> (anyhow::Result<f64>, anyhow::Result<Option<PathBuf>>) {
    run_on("std", c, file, send_prog, recv_src, loss)
}

fn run_on(
    backend: &str,
    c: &Case,
    file: &Path,
    send_prog: ProgramArgs,
    recv_src: SourceArgs,
    loss: f64,
) -> (anyhow::Result<f64>, anyhow::Result<Option<PathBuf>>) {
    let port = free_port();
    let ra = RecvArgs {
        listen: format!("127.0.0.1:{port}"),
        out: c.p("out"),
        source: recv_src,
        strict: false,
        force: false,
        max_size: 1 << 30,
        wait_s: 10,
        linger_ms: 200,
        resume: None,
        link: link_on(backend, &c.p("receipts"), loss),
    };
    let h = std::thread::spawn(move || recv(&ra, false).map(|s| s.receipt.written_to));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let sa = SendArgs {
        file: file.to_path_buf(),
        to: format!("127.0.0.1:{port}"),
        bind: "127.0.0.1:0".into(),
        program: send_prog,
        link: link_on(backend, &c.p("receipts"), loss),
    };
    let s = send(&sa, false).map(|s| s.receipt.goodput_gbps);
    (s, h.join().unwrap())
}

#[test]
fn lossless_and_lossy_transfers_are_byte_identical() {
    for (i, loss) in [0.0, 5.0].into_iter().enumerate() {
        let c = Case::new(1);
        let obj = palette_object(400_000, 7 + i as u64);
        let f = c.p("obj.bin");
        std::fs::write(&f, &obj).unwrap();
        let src = SourceArgs {
            blob: c.p("blob.bin"),
            base: None,
        };
        let (s, r) = run(&c, &f, program(&c.p("blob.bin"), None, false), src, loss);
        s.unwrap();
        let written = r.unwrap().expect("written");
        assert_eq!(std::fs::read(&written).unwrap(), obj, "loss {loss}%");
        let receipts: Vec<_> = std::fs::read_dir(c.p("receipts")).unwrap().collect();
        assert_eq!(receipts.len(), 2, "one receipt per side");
    }
}

#[test]
fn mismatched_blob_is_refused_and_nothing_is_written() {
    let c = Case::new(1);
    setup(
        Identity {
            name: "loop".into(),
            size: FILLER_OFFSET + 65_536,
            seed: 2,
        },
        &c.p("other.bin"),
        false,
    )
    .unwrap();
    let obj = palette_object(50_000, 3);
    let f = c.p("obj.bin");
    std::fs::write(&f, &obj).unwrap();
    let src = SourceArgs {
        blob: c.p("other.bin"),
        base: None,
    };
    let (s, r) = run(&c, &f, program(&c.p("blob.bin"), None, false), src, 0.0);
    let e = s.unwrap_err();
    assert!(format!("{e:#}").contains("blob mismatch"), "{e:#}");
    let e = r.unwrap_err();
    assert!(format!("{e:#}").contains("blob mismatch"), "{e:#}");
    assert_eq!(std::fs::read_dir(c.p("out")).unwrap().count(), 0);
}

#[test]
fn shared_base_with_raw_sections() {
    let c = Case::new(1);
    // Base: 1 MiB of pseudo-random bytes; object: the base with 1% bytes changed.
    let mut x = 0x1234_5678_9abc_def1u64;
    let base: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut obj = base.clone();
    for i in 0..obj.len() / 100 {
        let j = (i * 7919 * 13) % obj.len();
        obj[j] = obj[j].wrapping_add(1);
    }
    std::fs::write(c.p("base.bin"), &base).unwrap();
    let f = c.p("new.bin");
    std::fs::write(&f, &obj).unwrap();
    let src = SourceArgs {
        blob: c.p("blob.bin"),
        base: Some(c.p("base.bin")),
    };
    let (s, r) = run(
        &c,
        &f,
        program(&c.p("blob.bin"), Some(&c.p("base.bin")), true),
        src,
        5.0,
    );
    s.unwrap();
    assert_eq!(std::fs::read(r.unwrap().unwrap()).unwrap(), obj);
}

#[test]
fn io_backends_mmsg_and_uring() {
    use pfs_dataplane::io::Backend;
    for (name, b) in [("mmsg", Backend::Mmsg), ("uring", Backend::Uring)] {
        if let Err(e) = b.probe() {
            println!("SKIP: {name}: {e}");
            continue;
        }
        for loss in [0.0, 5.0] {
            let c = Case::new(3);
            let obj = palette_object(300_000, 11);
            let f = c.p("obj.bin");
            std::fs::write(&f, &obj).unwrap();
            let src = SourceArgs {
                blob: c.p("blob.bin"),
                base: None,
            };
            let (s, r) = run_on(
                name,
                &c,
                &f,
                program(&c.p("blob.bin"), None, false),
                src,
                loss,
            );
            s.unwrap_or_else(|e| panic!("{name} {loss}%: {e:#}"));
            let written = r.unwrap().expect("written");
            assert_eq!(std::fs::read(&written).unwrap(), obj, "{name} {loss}%");
        }
    }
}

#[test]
fn vanished_sender_then_resume() {
    let c = Case::new(4);
    let obj = palette_object(600_000, 21);
    let f = c.p("obj.bin");
    std::fs::write(&f, &obj).unwrap();
    let src = || SourceArgs {
        blob: c.p("blob.bin"),
        base: None,
    };
    let recv_args = |port: u16, resume: Option<PathBuf>| RecvArgs {
        listen: format!("127.0.0.1:{port}"),
        out: c.p("out"),
        source: src(),
        strict: true,
        force: false,
        max_size: 1 << 30,
        wait_s: 10,
        linger_ms: 200,
        resume,
        link: LinkArgs {
            idle_timeout_s: 1,
            ..link_on("mmsg", &c.p("receipts"), 0.0)
        },
    };
    let send_args = |port: u16, vanish_after: Option<u64>| SendArgs {
        file: f.clone(),
        to: format!("127.0.0.1:{port}"),
        bind: "127.0.0.1:0".into(),
        program: program(&c.p("blob.bin"), None, false),
        link: LinkArgs {
            vanish_after,
            ..link_on("mmsg", &c.p("receipts"), 0.0)
        },
    };
    // 1. The sender vanishes after 100 windows: the receiver fails and saves state.
    let port = free_port();
    let ra = recv_args(port, None);
    let h = std::thread::spawn(move || recv(&ra, false).map(|_| ()));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let e = send(&send_args(port, Some(100)), false).unwrap_err();
    assert!(format!("{e:#}").contains("vanished"), "{e:#}");
    let e = h.join().unwrap().unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("peer vanished") && msg.contains("--resume"),
        "{msg}"
    );
    let state = std::fs::read_dir(c.p("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("resume file");
    // 2. Resume: only the missing windows travel.
    let port = free_port();
    let ra = recv_args(port, Some(state));
    let h = std::thread::spawn(move || recv(&ra, false).map(|s| s.receipt.written_to));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let s = send(&send_args(port, None), false).unwrap();
    let written = h.join().unwrap().unwrap().unwrap();
    assert_eq!(std::fs::read(written).unwrap(), obj);
    assert!(s.receipt.windows > 150, "{}", s.receipt.windows);
    assert!(
        s.receipt.stats.windows + 90 <= s.receipt.windows,
        "sent {} of {} windows",
        s.receipt.stats.windows,
        s.receipt.windows
    );
}

#[test]
fn receipts_of_both_sides_are_stored_in_the_asl_store() {
    use pfs_control::asl::Store;
    use pfs_control::xfer::receipt::TAG_RECEIPT;
    let c = Case::new(3);
    let obj = palette_object(100_000, 11);
    let f = c.p("obj.bin");
    std::fs::write(&f, &obj).unwrap();
    let store = c.p("asl");
    let with_asl = || LinkArgs {
        no_asl: false,
        asl_store: Some(store.clone()),
        ..link_on("std", &c.p("receipts"), 0.0)
    };
    let port = free_port();
    let ra = RecvArgs {
        listen: format!("127.0.0.1:{port}"),
        out: c.p("out"),
        source: SourceArgs {
            blob: c.p("blob.bin"),
            base: None,
        },
        strict: true,
        force: false,
        max_size: 1 << 30,
        wait_s: 10,
        linger_ms: 200,
        resume: None,
        link: with_asl(),
    };
    let h = std::thread::spawn(move || recv(&ra, false));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let sa = SendArgs {
        file: f.clone(),
        to: format!("127.0.0.1:{port}"),
        bind: "127.0.0.1:0".into(),
        program: program(&c.p("blob.bin"), None, false),
        link: with_asl(),
    };
    let s = send(&sa, false).unwrap();
    let r = h.join().unwrap().unwrap();
    assert_eq!(
        std::fs::read(r.receipt.written_to.as_ref().unwrap()).unwrap(),
        obj
    );
    let st = Store::open_reader(&store).unwrap();
    let listed: Vec<_> = st
        .list(0, Some(TAG_RECEIPT))
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(listed.len(), 2, "one receipt per side");
    for side in [&s, &r] {
        let key = side.receipt_asl_key.as_ref().expect("stored");
        let k = listed.iter().find(|k| &k.to_hex() == key).expect("listed");
        let stored: serde_json::Value = serde_json::from_slice(&st.get(k).unwrap()).unwrap();
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&side.receipt_path).unwrap()).unwrap();
        assert_eq!(stored, file);
        assert_eq!(stored["outcome"], "ok");
    }
}

#[test]
fn an_unusable_asl_store_does_not_fail_the_transfer() {
    let c = Case::new(4);
    let obj = palette_object(20_000, 5);
    let f = c.p("obj.bin");
    std::fs::write(&f, &obj).unwrap();
    // A regular file where the store directory should be: opening fails.
    std::fs::write(c.p("not-a-store"), b"x").unwrap();
    let port = free_port();
    let bad_store = || LinkArgs {
        no_asl: false,
        asl_store: Some(c.p("not-a-store")),
        ..link_on("std", &c.p("receipts"), 0.0)
    };
    let ra = RecvArgs {
        listen: format!("127.0.0.1:{port}"),
        out: c.p("out"),
        source: SourceArgs {
            blob: c.p("blob.bin"),
            base: None,
        },
        strict: true,
        force: false,
        max_size: 1 << 30,
        wait_s: 10,
        linger_ms: 200,
        resume: None,
        link: bad_store(),
    };
    let h = std::thread::spawn(move || recv(&ra, false));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let sa = SendArgs {
        file: f.clone(),
        to: format!("127.0.0.1:{port}"),
        bind: "127.0.0.1:0".into(),
        program: program(&c.p("blob.bin"), None, false),
        link: bad_store(),
    };
    let s = send(&sa, false).unwrap();
    let r = h.join().unwrap().unwrap();
    assert!(s.receipt_asl_key.is_none() && r.receipt_asl_key.is_none());
    assert!(s.receipt_path.is_file() && r.receipt_path.is_file());
    assert_eq!(
        std::fs::read(r.receipt.written_to.as_ref().unwrap()).unwrap(),
        obj
    );
}
