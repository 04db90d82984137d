//! Shared by the `io_*` netns tests: a lab guard, and one tx → rx run across the
//! lab veth through `pfs linerate`'s engine, with every probe's header CRC and
//! filler checked by the receiver (payload integrity).

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use pfs_control::lab::Lab;
use pfs_control::linerate::{self, Finished, LinerateArgs, Outcome, Role};
use pfs_dataplane::linerate::run::{RxReport, TxReport};

/// A lab removed on every exit path (its lock file too: the name is ours).
pub struct TestLab(pub Lab);

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = Lab::down(self.0.name());
        let _ = std::fs::remove_file(pfs_control::lab::state::lock_path(self.0.name()));
    }
}

fn mac(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args(["-j", "-n", ns, "link", "show", "dev", dev])
        .output()
        .expect("ip link show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v[0]["address"].as_str().expect("a MAC address").to_string()
}

fn neigh(ns: &str, addr: &str, mac: &str, dev: &str) {
    let ok = Command::new("ip")
        .args([
            "-n",
            ns,
            "neigh",
            "replace",
            addr,
            "lladdr",
            mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ])
        .status()
        .expect("ip neigh");
    assert!(ok.success(), "ip neigh replace in {ns}");
}

/// A fresh lab with permanent neighbour entries both ways (no datagram waits
/// for ARP).
pub fn lab(tag: char) -> TestLab {
    let lab = Lab::up(&pfs_netns_tests::unique_lab_name(tag)).expect("lab up");
    let guard = TestLab(lab);
    let l = &guard.0;
    let (mac_a, mac_b) = (mac(l.ns_a(), l.veth_a()), mac(l.ns_b(), l.veth_b()));
    neigh(l.ns_a(), &l.addr_b().to_string(), &mac_b, l.veth_a());
    neigh(l.ns_b(), &l.addr_a().to_string(), &mac_a, l.veth_b());
    guard
}

fn args(role: Role, backend: &str, lab: &str, count: u64, size: usize) -> LinerateArgs {
    LinerateArgs {
        role,
        backend: backend.to_string(),
        size,
        // Paced well below what any backend sustains, so nothing is lost to
        // a starved receiver on a busy 2-core machine.
        rate: "20000".into(),
        duration: 15.0,
        count: Some(count),
        lab: Some(lab.to_string()),
        json: false,
        port: 47000,
        batch: 32,
        core: None,
        xdp_mode: "auto".into(),
        quiet: true,
    }
}

/// Runs `rx_backend` (or reflect) in namespace b and `tx_backend` in namespace a
/// for `count` probes of `size` bytes. Bounded: `count` probes and 15 s.
pub fn run(
    lab: &Lab,
    tx_backend: &str,
    rx_backend: &str,
    reflect: bool,
    count: u64,
    size: usize,
) -> (TxReport, RxReport, Finished) {
    let rx_role = if reflect { Role::Reflect } else { Role::Rx };
    let rx_plan =
        linerate::plan(&args(rx_role, rx_backend, lab.name(), count, size)).expect("rx plan");
    let tx_plan =
        linerate::plan(&args(Role::Tx, tx_backend, lab.name(), count, size)).expect("tx plan");
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (rxf, txf) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            linerate::execute(
                &rx_plan,
                &stop,
                |_| {
                    let _ = ready_tx.send(());
                },
                |_, _| {},
            )
        });
        let ready = ready_rx.recv_timeout(Duration::from_secs(20));
        let txf = ready.map(|()| linerate::execute(&tx_plan, &stop, |_| {}, |_, _| {}));
        let rxf = h.join().expect("rx thread");
        (rxf, txf)
    });
    let rxf = rxf.expect("rx run");
    let txf = txf.expect("rx became ready").expect("tx run");
    let Outcome::Tx(t) = txf.outcome.clone() else {
        panic!("tx outcome")
    };
    let Outcome::Rx(r) = rxf.outcome.clone() else {
        panic!("rx outcome")
    };
    (t, r, rxf)
}

/// Every probe arrived once, intact, in the run that sent it.
pub fn assert_exact(t: &TxReport, r: &RxReport, count: u64, size: usize) {
    assert_eq!(t.sent, count, "tx sent");
    assert_eq!(r.packets, count, "rx packets");
    assert_eq!(r.bytes, count * size as u64, "rx bytes");
    assert_eq!(
        (r.lost, r.duplicates, r.corrupt, r.invalid, r.foreign),
        (0, 0, 0, 0, 0),
        "lost, duplicates, corrupt, invalid, foreign"
    );
    assert_eq!(r.latency.count(), count);
}
