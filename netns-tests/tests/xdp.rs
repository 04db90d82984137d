//! The XDP programs on a lab veth: load and attach in native and generic mode,
//! exact per-rule counting (port rules, payload-byte rules, a 256-rule byte
//! histogram, stray packets), redirect port matching, detach on drop.

use std::net::{SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use pfs_control::lab::Lab;
use pfs_dataplane::netns::{NetnsGuard, with_netns};
use pfs_ebpf::{
    Action, AttachMode, CountRule, Counter, EbpfError, ModeRequest, Redirect, RuleCount,
};
use pfs_netns_tests::{require_root, unique_lab_name};

/// A lab removed on every exit path (also removes its lock file: the name is ours).
struct TestLab(Lab);
impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = Lab::down(self.0.name());
        let _ = std::fs::remove_file(pfs_control::lab::state::lock_path(self.0.name()));
    }
}

fn lab(tag: char) -> TestLab {
    let lab = Lab::up(&unique_lab_name(tag)).expect("lab up");
    // A permanent neighbour entry, so no datagram waits for (or is dropped by) ARP.
    let out = Command::new("ip")
        .args(["-j", "-n", lab.ns_b(), "link", "show", "dev", lab.veth_b()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mac = v[0]["address"].as_str().unwrap().to_string();
    let ok = Command::new("ip")
        .args([
            "-n",
            lab.ns_a(),
            "neigh",
            "replace",
            &lab.addr_b().to_string(),
            "lladdr",
            &mac,
            "dev",
            lab.veth_a(),
            "nud",
            "permanent",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    TestLab(lab)
}

/// Sends `count` datagrams of `payload` from namespace a to b's `port`; bounded in
/// packets and in time (10 s). Returns how many were sent.
fn send(lab: &Lab, port: u16, payload: &[u8], count: u64) -> u64 {
    let _in_a = NetnsGuard::enter(lab.ns_a()).unwrap();
    let sock = UdpSocket::bind(SocketAddrV4::new(lab.addr_a(), 0)).unwrap();
    let to = SocketAddrV4::new(lab.addr_b(), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while sent < count && Instant::now() < deadline {
        if sock.send_to(payload, to).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// `ip -j link` of `dev` in `ns`: (xdp mode number, prog id), if one is attached.
fn xdp_of(ns: &str, dev: &str) -> Option<(u64, u64)> {
    let out = Command::new("ip")
        .args(["-j", "-n", ns, "link", "show", "dev", dev])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let x = v[0].get("xdp")?;
    Some((x["mode"].as_u64()?, x["prog"]["id"].as_u64().unwrap_or(0)))
}

/// Frame bytes of one datagram with `payload` bytes: Ethernet 14 + IPv4 20 + UDP 8.
fn frame(payload: usize) -> u64 {
    (14 + 20 + 8 + payload) as u64
}

fn counts_exactly_in(mode: ModeRequest, want_mode: AttachMode, tag: char) {
    let l = lab(tag);
    let lab = &l.0;
    // Rules: 0 = port 7001 (any payload); 1..=256 = port 7002 byte 0 == v (a byte
    // histogram); 257 = port 7003 byte 5 == 0xab; 258 = port 7003 (any payload).
    let mut rules = vec![CountRule {
        dport: 7001,
        byte: None,
    }];
    rules.extend((0..=255u8).map(|v| CountRule {
        dport: 7002,
        byte: Some((0, v)),
    }));
    rules.push(CountRule {
        dport: 7003,
        byte: Some((5, 0xab)),
    });
    rules.push(CountRule {
        dport: 7003,
        byte: None,
    });
    let t0 = Instant::now();
    let mut counter = with_netns(lab.ns_b(), || {
        Counter::attach(lab.veth_b(), mode, &rules, Action::Drop)
    })
    .unwrap()
    .unwrap();
    let tm = counter.timings();
    println!(
        "load+attach of pfs_count with {} rules in {} mode: {:.1} ms (load {:.1}, fill maps {:.1}, attach {:.1})",
        rules.len(),
        counter.mode(),
        t0.elapsed().as_secs_f64() * 1e3,
        tm.load.as_secs_f64() * 1e3,
        tm.fill.as_secs_f64() * 1e3,
        tm.attach.as_secs_f64() * 1e3
    );
    assert_eq!(counter.mode(), want_mode);
    let id = counter.prog_id().expect("program id");
    let want_ip_mode = if want_mode == AttachMode::Native {
        1
    } else {
        2
    };
    assert_eq!(
        xdp_of(lab.ns_b(), lab.veth_b()),
        Some((want_ip_mode, u64::from(id)))
    );
    // `pfs lab status` shows the attachment.
    let st = Lab::status(lab.name()).unwrap();
    let b = st.namespaces.iter().find(|n| n.name == lab.ns_b()).unwrap();
    let veth = b
        .interfaces
        .iter()
        .find(|i| i.ifname == lab.veth_b())
        .unwrap();
    let xdp = veth.xdp.as_ref().expect("status shows the XDP program");
    assert_eq!((u64::from(xdp.mode), xdp.prog_id), (want_ip_mode, Some(id)));

    let mut want = vec![RuleCount::default(); rules.len()];
    let mut add = |rule: usize, n: u64, payload: usize| {
        want[rule].packets += n;
        want[rule].bytes += n * frame(payload);
    };
    let n = 3000;
    assert_eq!(send(lab, 7001, &[9u8; 64], n), n);
    add(0, n, 64);
    // Histogram: values 0..=255 with counts 1 + v % 7, payload sizes varying.
    let mut hist_total = 0;
    for v in 0..=255u8 {
        let k = 1 + u64::from(v) % 7;
        let len = 1 + usize::from(v) * 3;
        let mut p = vec![0x5au8; len];
        p[0] = v;
        assert_eq!(send(lab, 7002, &p, k), k);
        add(1 + usize::from(v), k, len);
        hist_total += k;
    }
    // Port 7003: 500 with byte 5 == 0xab (both rules), 400 with another value, 300
    // too short to have byte 5 (port rule only).
    let mut p = vec![0u8; 100];
    p[5] = 0xab;
    assert_eq!(send(lab, 7003, &p, 500), 500);
    add(257, 500, 100);
    add(258, 500, 100);
    p[5] = 0xac;
    assert_eq!(send(lab, 7003, &p, 400), 400);
    add(258, 400, 100);
    assert_eq!(send(lab, 7003, &[0xab; 5], 300), 300);
    add(258, 300, 5);
    // Strays: a port without rules, and an empty datagram to the histogram port.
    assert_eq!(send(lab, 7999, &[1u8; 32], 700), 700);
    assert_eq!(send(lab, 7002, &[], 11), 11);

    let got = counter.read().unwrap();
    assert_eq!(got.len(), rules.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "rule {i} ({:?})", rules[i]);
    }
    let st = counter.stats().unwrap();
    assert_eq!(st.stray.packets, 711, "{st:?}");
    assert_eq!(st.stray.bytes, 700 * frame(32) + 11 * frame(0));
    assert_eq!(st.matched.packets, n + hist_total + 500 + 400 + 300);
    assert_eq!(st.short.packets, 0);

    drop(counter);
    assert_eq!(xdp_of(lab.ns_b(), lab.veth_b()), None, "detached on drop");
}

#[test]
fn count_is_exact_in_native_mode() {
    if !require_root("count_is_exact_in_native_mode") {
        return;
    }
    counts_exactly_in(ModeRequest::Native, AttachMode::Native, 'n');
}

#[test]
fn count_is_exact_in_generic_mode() {
    if !require_root("count_is_exact_in_generic_mode") {
        return;
    }
    counts_exactly_in(ModeRequest::Generic, AttachMode::Generic, 'g');
}

#[test]
fn pass_action_lets_counted_packets_through() {
    if !require_root("pass_action_lets_counted_packets_through") {
        return;
    }
    let l = lab('p');
    let lab = &l.0;
    let rules = [CountRule {
        dport: 7100,
        byte: Some((0, 1)),
    }];
    let rx = with_netns(lab.ns_b(), || {
        UdpSocket::bind(SocketAddrV4::new(lab.addr_b(), 7100)).unwrap()
    })
    .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let counter = with_netns(lab.ns_b(), || {
        Counter::attach(lab.veth_b(), ModeRequest::Native, &rules, Action::Pass)
    })
    .unwrap()
    .unwrap();
    assert_eq!(send(lab, 7100, &[1, 2, 3], 20), 20);
    assert_eq!(send(lab, 7100, &[2, 2, 3], 5), 5);
    let mut buf = [0u8; 64];
    for i in 0..25 {
        let (len, _) = rx
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert_eq!(len, 3);
    }
    assert_eq!(counter.read().unwrap()[0].packets, 20);
    assert_eq!(counter.stats().unwrap().stray.packets, 5);
}

fn redirect_in(mode: ModeRequest, want: AttachMode, tag: char) {
    let l = lab(tag);
    let lab = &l.0;
    let (rx, mut red) = with_netns(lab.ns_b(), || {
        let rx = UdpSocket::bind(SocketAddrV4::new(lab.addr_b(), 7200)).unwrap();
        let red = Redirect::attach(lab.veth_b(), mode, &[7200, 7201]).unwrap();
        (rx, red)
    })
    .unwrap();
    assert_eq!(red.mode(), want);
    let id = red.prog_id().unwrap();
    let ip_mode = if want == AttachMode::Native { 1 } else { 2 };
    assert_eq!(
        xdp_of(lab.ns_b(), lab.veth_b()),
        Some((ip_mode, u64::from(id)))
    );
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // No socket registered for queue 0: redirected packets fall back to XDP_PASS
    // and reach the UDP socket.
    assert_eq!(send(lab, 7200, b"hello", 50), 50);
    assert_eq!(send(lab, 7300, b"other", 7), 7);
    let mut buf = [0u8; 16];
    for _ in 0..50 {
        let (len, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"hello");
    }
    let st = red.stats().unwrap();
    assert_eq!(st.redirected.packets, 50);
    assert_eq!(st.redirected.bytes, 50 * frame(5));
    assert!(st.passed.packets >= 7, "{st:?}");
    // Bad input: a queue index past the map, a descriptor that is not a socket.
    assert!(matches!(
        red.register_xsk(64, 0),
        Err(EbpfError::TooMany { .. })
    ));
    assert!(red.register_xsk(0, -1).is_err());
    drop(red);
    assert_eq!(xdp_of(lab.ns_b(), lab.veth_b()), None);
}

#[test]
fn redirect_matches_ports_in_native_mode() {
    if !require_root("redirect_matches_ports_in_native_mode") {
        return;
    }
    redirect_in(ModeRequest::Native, AttachMode::Native, 'r');
}

#[test]
fn redirect_matches_ports_in_generic_mode() {
    if !require_root("redirect_matches_ports_in_generic_mode") {
        return;
    }
    redirect_in(ModeRequest::Generic, AttachMode::Generic, 's');
}

#[test]
fn fallback_to_generic_is_reported_and_bad_interfaces_are_named() {
    if !require_root("fallback_to_generic_is_reported_and_bad_interfaces_are_named") {
        return;
    }
    let l = lab('f');
    let lab = &l.0;
    let rules = [CountRule {
        dport: 1,
        byte: None,
    }];
    with_netns(lab.ns_a(), || {
        // Loopback has no native XDP: Native fails, NativeOrGeneric falls back.
        let e = Counter::attach("lo", ModeRequest::Native, &rules, Action::Pass).unwrap_err();
        assert!(
            matches!(
                e,
                EbpfError::Attach {
                    mode: AttachMode::Native,
                    ..
                }
            ),
            "{e}"
        );
        let c = Counter::attach("lo", ModeRequest::NativeOrGeneric, &rules, Action::Pass).unwrap();
        assert_eq!(c.mode(), AttachMode::Generic);
        drop(c);
        // The other lab end is not in this namespace.
        let e =
            Counter::attach(lab.veth_b(), ModeRequest::Native, &rules, Action::Pass).unwrap_err();
        assert!(matches!(e, EbpfError::NoSuchInterface { .. }), "{e}");
        assert!(e.to_string().contains(lab.veth_b()));
        for bad in ["", "a/b", "name-longer-than-15", "nul\0x"] {
            let e = Redirect::attach(bad, ModeRequest::Native, &[1]).unwrap_err();
            assert!(matches!(e, EbpfError::BadInterface { .. }), "{bad:?}: {e}");
        }
        let e = Counter::attach(
            lab.veth_a(),
            ModeRequest::Native,
            &[rules[0], rules[0]],
            Action::Pass,
        )
        .unwrap_err();
        assert!(matches!(e, EbpfError::Rule { index: 1, .. }), "{e}");
        // Nothing is left attached after the failures.
        assert_eq!(xdp_of(lab.ns_a(), lab.veth_a()), None);
    })
    .unwrap();
}

#[test]
fn lab_down_removes_attached_programs_and_links() {
    if !require_root("lab_down_removes_attached_programs_and_links") {
        return;
    }
    let l = lab('d');
    let lab = l.0.clone();
    let rules = [CountRule {
        dport: 1,
        byte: None,
    }];
    // A program attached and still held by this process when the lab goes down.
    let counter = with_netns(lab.ns_b(), || {
        Counter::attach(lab.veth_b(), ModeRequest::Native, &rules, Action::Pass)
    })
    .unwrap()
    .unwrap();
    assert!(xdp_of(lab.ns_b(), lab.veth_b()).is_some());
    Lab::down(lab.name()).unwrap();
    assert!(!pfs_dataplane::netns::exists(lab.ns_a()));
    assert!(!pfs_dataplane::netns::exists(lab.ns_b()));
    let status = Command::new("ip")
        .args(["link", "show", "dev", lab.veth_b()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "veth still visible");
    // Dropping the loader after its device is gone must not fail or panic.
    drop(counter);
}

#[test]
fn histogram_counts_exactly_at_full_sender_speed() {
    if !require_root("histogram_counts_exactly_at_full_sender_speed") {
        return;
    }
    let l = lab('h');
    let lab = &l.0;
    let rules: Vec<CountRule> = (0..=255u8)
        .map(|v| CountRule {
            dport: 9000,
            byte: Some((0, v)),
        })
        .collect();
    let counter = with_netns(lab.ns_b(), || {
        Counter::attach(lab.veth_b(), ModeRequest::Native, &rules, Action::Drop)
    })
    .unwrap()
    .unwrap();
    // As fast as one std socket sends: byte 0 cycles through a fixed pattern.
    let total = 300_000u64;
    let mut want = vec![0u64; 256];
    let t0 = Instant::now();
    let sent = {
        let _in_a = NetnsGuard::enter(lab.ns_a()).unwrap();
        let sock = UdpSocket::bind(SocketAddrV4::new(lab.addr_a(), 0)).unwrap();
        let to = SocketAddrV4::new(lab.addr_b(), 9000);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut p = [0u8; 64];
        let mut sent = 0u64;
        while sent < total && Instant::now() < deadline {
            let v = (sent.wrapping_mul(2_654_435_761) >> 7) as u8;
            p[0] = v;
            if sock.send_to(&p, to).is_ok() {
                want[usize::from(v)] += 1;
                sent += 1;
            }
        }
        sent
    };
    let secs = t0.elapsed().as_secs_f64();
    let got = counter.read().unwrap();
    println!(
        "histogram: {sent} datagrams in {secs:.2} s ({:.0} pps), counted {}",
        sent as f64 / secs,
        got.iter().map(|c| c.packets).sum::<u64>()
    );
    for v in 0..256 {
        assert_eq!(got[v].packets, want[v], "byte value {v}");
        assert_eq!(got[v].bytes, want[v] * frame(64));
    }
    assert!(sent > 0);
    assert_eq!(counter.stats().unwrap().stray.packets, 0);
}
