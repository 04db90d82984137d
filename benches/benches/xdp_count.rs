//! The 256-rule byte histogram (UDP port 9000, one rule per value of payload byte
//! 0), counted exactly by `pfs_count` (XDP, native and generic) beside the same 256
//! rules in nftables (netdev ingress hook, `@th,64,8 0xVV counter drop`), on a lab
//! veth pair, in the same run. One std UdpSocket sends 64-byte datagrams from
//! namespace a; on veth the receiver's XDP / nftables work runs on the sender's
//! core, so the pps figures are what one core does sending *and* classifying.
//! Every run checks the counts equal what was sent, per value. Also prints the
//! kernel's BPF_PROG_TEST_RUN time per packet of the program alone.
//!
//! Needs root; prints `SKIP: reason` otherwise. Run:
//! `cargo bench -p pfs-benches --bench xdp_count`.

use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pfs_control::lab::Lab;
use pfs_dataplane::netns::{NetnsGuard, with_netns};
use pfs_ebpf::{Action, CountRule, Counter, ModeRequest};

const PACKETS: u64 = 400_000;
const MAX_SECS: u64 = 20;
const PORT: u16 = 9000;

struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = Lab::down(&self.0);
        let _ = std::fs::remove_file(pfs_control::lab::state::lock_path(&self.0));
    }
}

/// Byte 0 of datagram `i`.
fn value(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 7) as u8
}

/// Sends up to PACKETS datagrams (bounded by MAX_SECS); returns (sent per value, seconds).
fn send(lab: &Lab) -> (Vec<u64>, f64) {
    let _in_a = NetnsGuard::enter(lab.ns_a()).expect("enter namespace a");
    let sock = UdpSocket::bind(SocketAddrV4::new(lab.addr_a(), 0)).expect("bind");
    sock.connect(SocketAddrV4::new(lab.addr_b(), PORT))
        .expect("connect");
    let mut per = vec![0u64; 256];
    let mut p = [0u8; 64];
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(MAX_SECS);
    let mut i = 0u64;
    while i < PACKETS && Instant::now() < deadline {
        p[0] = value(i);
        if sock.send(&p).is_ok() {
            per[usize::from(p[0])] += 1;
            i += 1;
        }
    }
    (per, t0.elapsed().as_secs_f64())
}

fn rules() -> Vec<CountRule> {
    (0..=255u8)
        .map(|v| CountRule {
            dport: PORT,
            byte: Some((0, v)),
        })
        .collect()
}

struct Row {
    name: String,
    pps: f64,
    exact: bool,
}

fn run_xdp(lab: &Lab, mode: ModeRequest, name: &str) -> Result<Row, String> {
    let counter = with_netns(lab.ns_b(), || {
        Counter::attach(lab.veth_b(), mode, &rules(), Action::Drop)
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let (per, secs) = send(lab);
    let got = counter.read().map_err(|e| e.to_string())?;
    let exact = got.iter().zip(&per).all(|(g, w)| g.packets == *w);
    let sent: u64 = per.iter().sum();
    Ok(Row {
        name: format!("{name} ({})", counter.mode()),
        pps: sent as f64 / secs,
        exact,
    })
}

fn nft(ns: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let (Some(text), Some(mut si)) = (stdin, child.stdin.take()) {
        si.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_nft(lab: &Lab) -> Result<Row, String> {
    let mut rs = format!(
        "table netdev pfs_bench {{\n chain ingress {{\n  type filter hook ingress device \"{}\" priority 0; policy accept;\n",
        lab.veth_b()
    );
    for v in 0..=255u8 {
        rs.push_str(&format!(
            "  udp dport {PORT} @th,64,8 0x{v:02x} counter drop\n"
        ));
    }
    rs.push_str(" }\n}\n");
    nft(lab.ns_b(), &["-f", "-"], Some(&rs))?;
    let (per, secs) = send(lab);
    let json = nft(
        lab.ns_b(),
        &["-j", "list", "table", "netdev", "pfs_bench"],
        None,
    )?;
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(exprs) = item["rule"]["expr"].as_array() {
            for e in exprs {
                if let Some(p) = e["counter"]["packets"].as_u64() {
                    got.push(p);
                }
            }
        }
    }
    nft(
        lab.ns_b(),
        &["delete", "table", "netdev", "pfs_bench"],
        None,
    )?;
    let exact = got.len() == 256 && got.iter().zip(&per).all(|(g, w)| g == w);
    let sent: u64 = per.iter().sum();
    Ok(Row {
        name: "nftables netdev ingress, 256 rules".into(),
        pps: sent as f64 / secs,
        exact,
    })
}

fn main() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: xdp_count bench needs root (namespaces, XDP, nftables)");
        return;
    }
    let name = format!("bx{}", std::process::id() % 100_000);
    let _down = Down(name.clone());
    let lab = match Lab::up(&name) {
        Ok(l) => l,
        Err(e) => {
            println!("SKIP: lab up failed: {e}");
            return;
        }
    };
    // Resolve b's address before measuring (ARP is not part of either figure).
    let _ = send_warmup(&lab);

    let mut tr = Counter::load_unattached(&rules(), Action::Drop).expect("load pfs_count");
    let mut frame = vec![0u8; 14 + 20 + 8 + 64];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[23] = 17;
    frame[36..38].copy_from_slice(&PORT.to_be_bytes());
    frame[42] = 0x37;
    let t = tr.test_run(&frame, 1_000_000).expect("test run");
    println!(
        "pfs_count alone (BPF_PROG_TEST_RUN, 1e6 runs): {} ns per packet, {:.1} Mpps per core",
        t.duration.as_nanos(),
        1e3 / t.duration.as_nanos().max(1) as f64
    );

    let mut rows = Vec::new();
    for (mode, label) in [
        (ModeRequest::Native, "pfs_count XDP, 256 rules"),
        (ModeRequest::Generic, "pfs_count XDP, 256 rules"),
    ] {
        match run_xdp(&lab, mode, label) {
            Ok(r) => rows.push(r),
            Err(e) => println!("{label}: failed: {e}"),
        }
    }
    let peer = match run_nft(&lab) {
        Ok(r) => Some(r),
        Err(e) => {
            println!("nftables: failed: {e}");
            None
        }
    };
    println!(
        "{} datagrams of 64 B (bounded by {MAX_SECS} s), one std UdpSocket sender, veth, sender + receiver work on one core:",
        PACKETS
    );
    for r in rows.iter().chain(peer.iter()) {
        println!(
            "  {:<44} {:>10.0} pps   counts exact: {}",
            r.name, r.pps, r.exact
        );
    }
    if let Some(p) = &peer {
        for r in &rows {
            println!("  ratio {} / nftables: {:.2}", r.name, r.pps / p.pps);
        }
    }
}

/// One datagram to a port without rules, so the neighbour entry is resolved.
fn send_warmup(lab: &Lab) -> std::io::Result<()> {
    let _in_a = NetnsGuard::enter(lab.ns_a()).map_err(std::io::Error::other)?;
    let sock = UdpSocket::bind(SocketAddrV4::new(lab.addr_a(), 0))?;
    sock.send_to(b"warmup", SocketAddrV4::new(lab.addr_b(), 9))?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}
