//! The `xsk` (AF_XDP) backend across a lab veth: TX of N frames we build
//! ourselves (received by an mmsg socket, so the kernel checked our IPv4 header),
//! RX of N probes through the `redirect` XDP program (sent by mmsg), payload
//! integrity checked per probe; the mode in use is reported; the program is
//! detached when the run ends.

mod io_common;

use std::process::Command;

use pfs_netns_tests::require_root;

/// Fewer than the 4096 frames of the RX half of the UMEM, so a receiver
/// descheduled on a busy machine still loses nothing.
const N: u64 = 2000;

fn xdp_attached(ns: &str, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-j", "-n", ns, "link", "show", "dev", dev])
        .output()
        .expect("ip link");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    v[0].get("xdp").is_some()
}

#[test]
fn xsk_tx_across_veth() {
    if !require_root("xsk_tx_across_veth") {
        return;
    }
    let lab = io_common::lab('x');
    for size in [64usize, 1472] {
        let (t, r, _) = io_common::run(&lab.0, "xsk", "mmsg", false, N, size);
        io_common::assert_exact(&t, &r, N, size);
    }
    assert!(
        !xdp_attached(lab.0.ns_a(), lab.0.veth_a()),
        "redirect left on a"
    );
}

#[test]
fn xsk_rx_across_veth() {
    if !require_root("xsk_rx_across_veth") {
        return;
    }
    let lab = io_common::lab('x');
    let (t, r, fin) = io_common::run(&lab.0, "mmsg", "xsk", false, N, 64);
    io_common::assert_exact(&t, &r, N, 64);
    // veth has no zero-copy: the fallback to copy mode is reported.
    assert!(fin.mode.starts_with("copy "), "mode: {}", fin.mode);
    assert!(
        !xdp_attached(lab.0.ns_b(), lab.0.veth_b()),
        "redirect left on b"
    );
}

#[test]
fn xsk_reflect_across_veth() {
    if !require_root("xsk_reflect_across_veth") {
        return;
    }
    let lab = io_common::lab('x');
    let (t, r, _) = io_common::run(&lab.0, "xsk", "xsk", true, 1000, 100);
    io_common::assert_exact(&t, &r, 1000, 100);
    assert_eq!(r.echoed, 1000);
    assert_eq!(t.echoes, 1000);
}

#[test]
fn port_taken_and_missing_lab_are_usage_errors() {
    if !require_root("port_taken_and_missing_lab_are_usage_errors") {
        return;
    }
    let lab = io_common::lab('x');
    // A UDP socket already holds the rx port in namespace b.
    let held = pfs_dataplane::netns::with_netns(lab.0.ns_b(), || {
        std::net::UdpSocket::bind((lab.0.addr_b(), 47000)).expect("bind")
    })
    .expect("enter b");
    for backend in ["mmsg", "uring"] {
        let a = pfs_control::linerate::LinerateArgs {
            role: pfs_control::linerate::Role::Rx,
            backend: backend.into(),
            size: 64,
            rate: "max".into(),
            duration: 1.0,
            count: Some(1),
            lab: Some(lab.0.name().to_string()),
            json: false,
            port: 47000,
            batch: 32,
            core: None,
            xdp_mode: "auto".into(),
            quiet: true,
        };
        let plan = pfs_control::linerate::plan(&a).expect("plan");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let e = pfs_control::linerate::execute(&plan, &stop, |_| {}, |_, _| {}).unwrap_err();
        assert!(
            e.downcast_ref::<pfs_control::usage::UsageError>().is_some(),
            "{e:#}"
        );
        assert!(e.to_string().contains("10.77.0.2:47000"), "{e}");
    }
    drop(held);
    // An xsk run on a lab that was removed is refused, naming the lab.
    let name = lab.0.name().to_string();
    drop(lab);
    let a = pfs_control::linerate::LinerateArgs {
        role: pfs_control::linerate::Role::Rx,
        backend: "xsk".into(),
        size: 64,
        rate: "max".into(),
        duration: 1.0,
        count: Some(1),
        lab: Some(name.clone()),
        json: false,
        port: 47000,
        batch: 32,
        core: None,
        xdp_mode: "auto".into(),
        quiet: true,
    };
    let e = pfs_control::linerate::plan(&a).unwrap_err();
    assert!(e.downcast_ref::<pfs_control::usage::UsageError>().is_some());
    assert!(e.to_string().contains(&name), "{e}");
}

#[test]
fn interface_without_native_xdp_is_a_usage_error_and_leaves_nothing() {
    if !require_root("interface_without_native_xdp_is_a_usage_error_and_leaves_nothing") {
        return;
    }
    let lab = io_common::lab('x');
    let a = pfs_control::linerate::LinerateArgs {
        role: pfs_control::linerate::Role::Rx,
        backend: "xsk".into(),
        size: 64,
        rate: "max".into(),
        duration: 1.0,
        count: Some(1),
        lab: Some(lab.0.name().to_string()),
        json: false,
        port: 47000,
        batch: 32,
        core: None,
        xdp_mode: "native".into(),
        quiet: true,
    };
    let mut plan = pfs_control::linerate::plan(&a).expect("plan");
    // Point the AF_XDP socket at b's loopback, which has no native XDP.
    if let Some((x, _)) = plan.xsk.as_mut() {
        x.ifname = "lo".into();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let e = pfs_control::linerate::execute(&plan, &stop, |_| {}, |_, _| {}).unwrap_err();
    assert!(
        e.downcast_ref::<pfs_control::usage::UsageError>().is_some(),
        "{e:#}"
    );
    println!("refused: {e}");
    assert!(e.to_string().contains("redirect XDP program to lo"), "{e}");
    assert!(
        !xdp_attached(lab.0.ns_b(), "lo"),
        "a program was left on lo"
    );
    assert!(!xdp_attached(lab.0.ns_b(), lab.0.veth_b()));
}
