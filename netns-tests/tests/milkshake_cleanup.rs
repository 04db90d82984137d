//! Milkshake leaves no rules behind: on success (see `milkshake_oracle`), on an
//! error before and after install, and after SIGKILL (found and removed by the
//! next run) — `specs/milkshake.md` §8.4.

mod milkshake_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use milkshake_common::{TestLab, assert_clean, tables, xdp_attached};
use pfs_control::milkshake::MilkshakeError;
use pfs_control::milkshake::nft::{self, NftTable};
use pfs_control::milkshake::program::{Program, ProgramKind};
use pfs_control::milkshake::run::{BackendKind, Pps, SendLimits, XdpCounters, run_program};
use pfs_netns_tests::require_root;

/// Env var that turns [`zz_milkshake_child`] into an install-and-hang child:
/// `BACKEND:NS:IFNAME`.
const CHILD_ENV: &str = "PFS_NETNS_TEST_MILKSHAKE_CHILD";

const LIMITS: SendLimits = SendLimits {
    pps: Pps::Rate(50_000),
    seconds: 10.0,
    generator: pfs_dataplane::io::Backend::Mmsg,
};

fn word(text: &str) -> Program {
    Program::new(ProgramKind::Word, None, 45000, text.as_bytes().to_vec()).unwrap()
}

#[test]
fn milkshake_port_collision_is_refused_and_leaves_nothing() {
    if !require_root("milkshake_port_collision_is_refused_and_leaves_nothing") {
        return;
    }
    let l = TestLab::up('c');
    // A live run (this process) holds ports 45000..=45004.
    let held = NftTable::install(l.lab.ns_b(), &word("hello").rules()).unwrap();
    let p = Program::new(ProgramKind::Histogram, None, 45002, vec![1, 2, 3]).unwrap();
    let e = run_program(BackendKind::Nft, &p, l.name(), LIMITS).unwrap_err();
    assert!(
        matches!(e, MilkshakeError::PortCollision { .. }) && e.is_usage(),
        "{e}"
    );
    assert!(e.to_string().contains(held.name()), "{e}");
    assert_eq!(tables(&l).len(), 1);
    // XDP would take the live nft run's packets: refused the same way.
    let e = run_program(BackendKind::Xdp, &p, l.name(), LIMITS).unwrap_err();
    assert!(
        matches!(e, MilkshakeError::PortCollision { .. }) && e.is_usage(),
        "{e}"
    );
    assert!(!xdp_attached(&l));
    // A disjoint range is fine beside it.
    let q = Program::new(ProgramKind::Histogram, None, 46000, vec![1, 2, 3]).unwrap();
    let r = run_program(BackendKind::Nft, &q, l.name(), LIMITS).unwrap();
    assert!(r.accounting.exact && r.matches_cpu, "{r:?}");
    drop(held);
    assert_clean(&l, "after collision");
}

#[test]
fn milkshake_error_mid_run_removes_rules() {
    if !require_root("milkshake_error_mid_run_removes_rules") {
        return;
    }
    let l = TestLab::up('e');
    // Rules are installed, then the sender fails: namespace a has no route to b
    // once its veth is down.
    let down = Command::new("ip")
        .args(["-n", l.lab.ns_a(), "link", "set", l.lab.veth_a(), "down"])
        .status()
        .unwrap();
    assert!(down.success());
    for backend in [BackendKind::Nft, BackendKind::Xdp] {
        let e = run_program(backend, &word("abc"), l.name(), LIMITS).unwrap_err();
        assert!(
            matches!(e, MilkshakeError::Io(_)),
            "{}: {e}",
            backend.name()
        );
        assert_clean(&l, &format!("after a failed {} run", backend.name()));
    }
}

#[test]
fn milkshake_xdp_busy_is_refused() {
    if !require_root("milkshake_xdp_busy_is_refused") {
        return;
    }
    let l = TestLab::up('b');
    let held = XdpCounters::attach(l.lab.ns_b(), l.lab.veth_b(), &word("hold").rules()).unwrap();
    let e = run_program(BackendKind::Xdp, &word("second"), l.name(), LIMITS).unwrap_err();
    assert!(
        matches!(e, MilkshakeError::XdpBusy { .. }) && e.is_usage(),
        "{e}"
    );
    assert!(tables(&l).is_empty());
    held.detach().unwrap();
    assert_clean(&l, "after a refused second XDP run");
}

#[test]
fn milkshake_xdp_refusal_leaves_nothing() {
    if !require_root("milkshake_xdp_refusal_leaves_nothing") {
        return;
    }
    let l = TestLab::up('r');
    // More ports than the XDP count program takes (1024): refused before attach.
    let long = "x".repeat(1100);
    let p = Program::new(ProgramKind::Word, None, 20000, long.into_bytes()).unwrap();
    let e = run_program(BackendKind::Xdp, &p, l.name(), LIMITS).unwrap_err();
    assert!(
        matches!(e, MilkshakeError::XdpRules(_)) && e.is_usage(),
        "{e}"
    );
    assert_clean(&l, "after refused attach");
}

fn spawn_child(backend: &str, l: &TestLab) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "zz_milkshake_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{backend}:{}:{}", l.lab.ns_b(), l.lab.veth_b()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let t0 = Instant::now();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if line.contains("MILKSHAKE-CHILD-READY") {
            return child;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "child never ready");
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("child exited before it was ready");
}

#[test]
fn milkshake_sigkill_leftovers_are_removed_by_the_next_run() {
    if !require_root("milkshake_sigkill_leftovers_are_removed_by_the_next_run") {
        return;
    }
    let l = TestLab::up('k');
    // nft: the table outlives the killed process, and the next run removes it.
    let mut child = spawn_child("nft", &l);
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = tables(&l);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].pid, pid);
    assert!(!nft::pid_alive(pid));
    let r = run_program(BackendKind::Nft, &word("again"), l.name(), LIMITS).unwrap();
    assert!(r.accounting.exact && r.matches_cpu, "{r:?}");
    assert_clean(&l, "after the run following a SIGKILLed nft run");

    // A stale table is also removed by an XDP run.
    let mut child = spawn_child("nft", &l);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(tables(&l).len(), 1);
    let r = run_program(BackendKind::Xdp, &word("xdp"), l.name(), LIMITS).unwrap();
    assert!(r.accounting.exact && r.matches_cpu, "{r:?}");
    assert_clean(&l, "after an XDP run following a SIGKILLed nft run");

    // xdp: the program is attached through a BPF link owned by the process, so
    // it goes when the process dies; the next run attaches normally.
    let mut child = spawn_child("xdp", &l);
    assert!(xdp_attached(&l));
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    while xdp_attached(&l) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !xdp_attached(&l),
        "XDP program outlived its SIGKILLed owner"
    );
    let r = run_program(BackendKind::Xdp, &word("after"), l.name(), LIMITS).unwrap();
    assert!(r.accounting.exact && r.matches_cpu, "{r:?}");
    assert_clean(&l, "after the run following a SIGKILLed xdp run");
}

#[test]
fn milkshake_lab_down_removes_tables() {
    if !require_root("milkshake_lab_down_removes_tables") {
        return;
    }
    let l = TestLab::up('d');
    let t = NftTable::install(l.lab.ns_b(), &word("x").rules()).unwrap();
    assert_eq!(tables(&l).len(), 1);
    pfs_control::lab::Lab::down(l.name()).unwrap();
    assert!(!pfs_dataplane::netns::exists(l.lab.ns_b()));
    // The namespace and the table with it are gone; dropping the guard must not
    // panic (its delete fails quietly).
    drop(t);
}

/// Not a test on its own: with [`CHILD_ENV`] set it installs rules, says so and
/// hangs until killed (bounded at 60 s).
#[test]
fn zz_milkshake_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut f = spec.splitn(3, ':');
    let (backend, ns, ifname) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
    let rules = word("child").rules();
    let _keep: Box<dyn std::any::Any> = match backend {
        "nft" => Box::new(NftTable::install(ns, &rules).unwrap()),
        _ => Box::new(XdpCounters::attach(ns, ifname, &rules).unwrap()),
    };
    println!("MILKSHAKE-CHILD-READY");
    std::thread::sleep(Duration::from_secs(60));
}
