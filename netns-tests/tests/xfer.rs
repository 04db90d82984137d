//! `pfs xfer` across the veth of a pfs lab this test brings up (and down): 0% loss,
//! 5% random loss injected by nftables (`numgen random mod 100 < 5 drop`) on the
//! receiver's input, and a mismatched blob refused at PREFACE. Root only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use pfs_control::lab::Lab;
use pfs_control::xfer::compile::ProgramArgs;
use pfs_control::xfer::source::SourceArgs;
use pfs_control::xfer::transport::{LinkArgs, RecvArgs, SendArgs, recv, send};
use pfs_control::xfer::vblob::setup;
use pfs_dataplane::iprog::vblob::{FILLER_OFFSET, Identity, palette};
use pfs_dataplane::netns::with_netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) -> Result<(), String> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&o.stderr)))
    }
}

/// A pfs lab (`pfs_control::lab`, specs/lab.md) of a unique name; brought down on drop.
struct Pair {
    lab: Lab,
    b: String,
    addr_b: String,
}

impl Pair {
    fn new() -> Result<Pair, String> {
        let name = format!(
            "x{}{}",
            std::process::id() % 1_000_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab::up(&name).map_err(|e| format!("lab up {name}: {e}"))?;
        Ok(Pair {
            b: lab.ns_b().to_string(),
            addr_b: lab.addr_b().to_string(),
            lab,
        })
    }

    fn ns_a(&self) -> &str {
        self.lab.ns_a()
    }

    fn drop_percent_on_b(&self, port: u16, percent: u32) -> Result<(), String> {
        let rule = format!(
            "add table inet pfsxfer\nadd chain inet pfsxfer in {{ type filter hook input priority 0; }}\nadd rule inet pfsxfer in udp dport {port} numgen random mod 100 < {percent} counter drop\n"
        );
        let f = std::env::temp_dir().join(format!("pfsx-{}-{port}.nft", std::process::id()));
        std::fs::write(&f, rule).map_err(|e| e.to_string())?;
        let r = sh(&[
            "ip",
            "netns",
            "exec",
            &self.b,
            "nft",
            "-f",
            f.to_str().unwrap_or(""),
        ]);
        let _ = std::fs::remove_file(&f);
        r
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Lab::down(self.lab.name());
    }
}

impl Pair {
    /// Packets the nftables drop rule counted in b.
    fn dropped_on_b(&self) -> u64 {
        let o = Command::new("ip")
            .args([
                "netns", "exec", &self.b, "nft", "list", "table", "inet", "pfsxfer",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        o.split("counter packets ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

fn link(dir: &Path, backend: &str) -> LinkArgs {
    LinkArgs {
        backend: backend.into(),
        rto_ms: 20,
        idle_timeout_s: 5,
        max_in_flight: 512,
        receipts: Some(dir.join("receipts")),
        json: true,
        loss_percent: 0.0,
        vanish_after: None,
        no_asl: true,
        asl_store: None,
    }
}

fn palette_object(n: usize) -> Vec<u8> {
    let p = palette();
    let mut x = 0x2545_f491_4f6c_dd1du64;
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

/// Receiver in b, sender in a; returns (send result, recv result).
fn transfer(
    backend: &str,
    pair: &Pair,
    dir: &Path,
    file: &Path,
    send_blob: &Path,
    recv_blob: &Path,
    port: u16,
) -> (Result<(), String>, Result<Option<PathBuf>, String>) {
    let (s, r) = transfer_modes(backend, pair, dir, file, send_blob, recv_blob, port, 0.0);
    (s.map(|_| ()), r.map(|(w, _)| w))
}

/// As [`transfer`], also returning each side's backend mode; the sender drops
/// `send_loss` percent of its datagrams (the transport's test shim).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn transfer_modes(
    backend: &str,
    pair: &Pair,
    dir: &Path,
    file: &Path,
    send_blob: &Path,
    recv_blob: &Path,
    port: u16,
    send_loss: f64,
) -> (
    Result<String, String>,
    Result<(Option<PathBuf>, String), String>,
) {
    let out = dir.join("out");
    let _ = std::fs::create_dir_all(&out);
    let ra = RecvArgs {
        listen: format!("{}:{port}", pair.addr_b),
        out,
        source: SourceArgs {
            blob: recv_blob.to_path_buf(),
            base: None,
        },
        strict: true,
        force: true,
        max_size: 1 << 30,
        wait_s: 10,
        linger_ms: 200,
        resume: None,
        link: link(dir, backend),
    };
    let nb = pair.b.clone();
    let h = std::thread::spawn(move || {
        with_netns(&nb, || {
            recv(&ra, false)
                .map(|s| (s.receipt.written_to, s.backend_mode))
                .map_err(|e| format!("{e:#}"))
        })
        .map_err(|e| e.to_string())
        .and_then(|r| r)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let sa = SendArgs {
        file: file.to_path_buf(),
        to: format!("{}:{port}", pair.addr_b),
        bind: "0.0.0.0:0".into(),
        program: ProgramArgs {
            mode: "pvrt".into(),
            source: SourceArgs {
                blob: send_blob.to_path_buf(),
                base: None,
            },
            allow_raw: false,
        },
        link: LinkArgs {
            loss_percent: send_loss,
            ..link(dir, backend)
        },
    };
    let na = pair.ns_a().to_string();
    let s = with_netns(&na, || {
        send(&sa, false)
            .map(|s| s.backend_mode)
            .map_err(|e| format!("{e:#}"))
    })
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let r = h
        .join()
        .unwrap_or_else(|_| Err("receiver thread panicked".into()));
    (s, r)
}

#[test]
fn xfer_over_veth_lossless_lossy_and_mismatch() {
    if !pfs_netns_tests::require_root("xfer_over_veth_lossless_lossy_and_mismatch") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.bin");
    let id = Identity {
        name: "veth".into(),
        size: FILLER_OFFSET + 4096,
        seed: 11,
    };
    setup(id.clone(), &blob, false).unwrap();
    let obj = palette_object(2 << 20);
    let file = dir.path().join("obj.bin");
    std::fs::write(&file, &obj).unwrap();

    let pair = Pair::new().unwrap();
    // 0% loss.
    for (backend, port) in [("mmsg", 7601), ("uring", 7604), ("std", 7605)] {
        let (s, r) = transfer(backend, &pair, dir.path(), &file, &blob, &blob, port);
        s.unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(
            std::fs::read(r.unwrap().unwrap()).unwrap(),
            obj,
            "{backend}"
        );
    }
    // 5% random loss on the receiver's input.
    pair.drop_percent_on_b(7602, 5).unwrap();
    let (s, r) = transfer("mmsg", &pair, dir.path(), &file, &blob, &blob, 7602);
    s.unwrap();
    assert_eq!(std::fs::read(r.unwrap().unwrap()).unwrap(), obj);
    assert!(pair.dropped_on_b() > 0, "nftables dropped nothing");
    // A different blob on the receiver: refused at PREFACE, nothing written.
    let other = dir.path().join("other.bin");
    setup(Identity { seed: 12, ..id }, &other, false).unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("out"));
    let (s, r) = transfer("mmsg", &pair, dir.path(), &file, &blob, &other, 7603);
    assert!(s.unwrap_err().contains("blob mismatch"));
    assert!(r.unwrap_err().contains("blob mismatch"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        0
    );
}

/// Both ends on AF_XDP (copy mode on veth, the redirect XDP program attached by
/// pfs xfer itself; the lab inferred from the addresses): a 2 MiB object arrives
/// byte-identical, lossless and with 5% of the sender's datagrams dropped.
/// Bounded by the receiver's --wait-s 10 and --idle-timeout-s 5.
#[test]
fn xfer_over_veth_xsk() {
    if !pfs_netns_tests::require_root("xfer_over_veth_xsk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.bin");
    let id = Identity {
        name: "vethx".into(),
        size: FILLER_OFFSET + 4096,
        seed: 13,
    };
    setup(id, &blob, false).unwrap();
    let obj = palette_object(2 << 20);
    let file = dir.path().join("obj.bin");
    std::fs::write(&file, &obj).unwrap();
    let pair = Pair::new().unwrap();
    let started = std::time::Instant::now();
    let (s, r) = transfer_modes("xsk", &pair, dir.path(), &file, &blob, &blob, 7611, 0.0);
    let send_mode = s.unwrap_or_else(|e| panic!("xsk send: {e}"));
    let (written, recv_mode) = r.unwrap_or_else(|e| panic!("xsk recv: {e}"));
    println!(
        "xsk send mode: {send_mode}; recv mode: {recv_mode}; {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(send_mode.starts_with("copy "), "{send_mode}");
    assert!(recv_mode.starts_with("copy "), "{recv_mode}");
    assert_eq!(std::fs::read(written.unwrap()).unwrap(), obj);
    // 5% of the sender's datagrams dropped (nftables does not see AF_XDP
    // traffic, so the loss is the transport's own shim): NAK repair over xsk.
    let _ = std::fs::remove_dir_all(dir.path().join("out"));
    let (s, r) = transfer_modes("xsk", &pair, dir.path(), &file, &blob, &blob, 7612, 5.0);
    s.unwrap_or_else(|e| panic!("xsk send, 5% loss: {e}"));
    let (written, _) = r.unwrap_or_else(|e| panic!("xsk recv, 5% loss: {e}"));
    assert_eq!(std::fs::read(written.unwrap()).unwrap(), obj);
}
