//! Every Milkshake program on both backends gives the CPU oracle's answer, exactly
//! accounted, and leaves no rules behind (`specs/milkshake.md` §2–§6).

mod milkshake_common;

use milkshake_common::{TestLab, assert_clean, data};
use pfs_control::milkshake::program::{Decoded, Program, ProgramKind};
use pfs_control::milkshake::run::{BackendKind, Pps, SendLimits, run_program};
use pfs_netns_tests::require_root;

const LIMITS: SendLimits = SendLimits {
    pps: Pps::Rate(100_000),
    seconds: 20.0,
    generator: pfs_dataplane::io::Backend::Mmsg,
};

fn programs() -> Vec<Program> {
    let mut zeros = data(5000, 3);
    for b in zeros.iter_mut().step_by(7) {
        *b = 0;
    }
    vec![
        Program::new(ProgramKind::Histogram, Some(7), 51999, data(30_000, 1)).unwrap(),
        Program::new(ProgramKind::CountEq, Some(0), 52999, zeros).unwrap(),
        Program::new(ProgramKind::CountEq, Some(255), 1024, data(3000, 5)).unwrap(),
        Program::new(
            ProgramKind::Word,
            None,
            40000,
            b"Milkshake: firewall compute you own".to_vec(),
        )
        .unwrap(),
    ]
}

#[test]
fn milkshake_every_program_on_both_backends_equals_cpu() {
    if !require_root("milkshake_every_program_on_both_backends_equals_cpu") {
        return;
    }
    let l = TestLab::up('m');
    for backend in [BackendKind::Nft, BackendKind::Xdp] {
        for p in programs() {
            let what = format!("{} on {}", p.kind().name(), backend.name());
            let r = run_program(backend, &p, l.name(), LIMITS).expect(&what);
            assert!(r.matches_cpu, "{what}: {:?} vs {:?}", r.result, r.cpu);
            assert!(r.accounting.exact, "{what}: {:?}", r.accounting);
            assert_eq!(r.accounting.sent, p.packet_count(), "{what}");
            assert_eq!(r.accounting.counted, p.packet_count(), "{what}");
            if let Decoded::Word { text, .. } = &r.result {
                assert_eq!(text.as_bytes(), p.input(), "{what}");
            }
            assert_clean(&l, &format!("after {what}"));
        }
    }
}

#[test]
fn milkshake_stray_traffic_is_reported() {
    if !require_root("milkshake_stray_traffic_is_reported") {
        return;
    }
    // Stray packets: a second sender to the same port while the program runs.
    // Sent at a fixed count from namespace a to b; the run must not call it exact.
    let l = TestLab::up('s');
    for backend in [BackendKind::Nft, BackendKind::Xdp] {
        let p = Program::new(ProgramKind::Histogram, None, 51999, data(20_000, 9)).unwrap();
        let ns_a = l.lab.ns_a().to_string();
        let dst = std::net::SocketAddrV4::new(l.lab.addr_b(), 51999);
        let src = std::net::SocketAddrV4::new(l.lab.addr_a(), 0);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let stray = std::thread::spawn(move || {
            let _g = pfs_dataplane::netns::NetnsGuard::enter(&ns_a).unwrap();
            let s = std::net::UdpSocket::bind(src).unwrap();
            // Bounded: at most 5000 packets and 10 s, one per millisecond.
            let t0 = std::time::Instant::now();
            for _ in 0..5000 {
                if stop2.load(std::sync::atomic::Ordering::Relaxed) || t0.elapsed().as_secs() >= 10
                {
                    break;
                }
                s.send_to(b"z", dst).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let limits = SendLimits {
            pps: Pps::Rate(20_000),
            seconds: 20.0,
            generator: pfs_dataplane::io::Backend::Mmsg,
        };
        let r = run_program(backend, &p, l.name(), limits);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        stray.join().unwrap();
        let r = r.unwrap();
        let a = &r.accounting;
        assert!(a.stray > 0, "{}: {a:?}", backend.name());
        assert!(!a.exact, "{}: {a:?}", backend.name());
        assert_eq!(a.counted, a.sent + a.stray - a.not_counted);
        assert_clean(&l, "after stray run");
    }
}
