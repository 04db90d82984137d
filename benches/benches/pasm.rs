//! P-ASM benchmarks, each beside a peer measured in the same run:
//! 1. planning a 100,000-step program (parse + gates + plan) vs. parsing the same
//!    bytes into a `serde_json::Value` (the floor for any JSON planner);
//! 2. `state.set` steps/s through the runner with the event log on vs. a bare
//!    loop doing the same map insert and JSONL line write;
//! 3. `pkt.send` pacing accuracy on loopback at 1k..100k pps vs. a naive loop
//!    that sleeps 1/pps between sends.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pfs_control::pasm::runner::{RunOptions, paced, run, send_udp};
use pfs_control::pasm::{Gates, Plan, Program};

fn program_text(steps: usize, all_state_set: bool) -> String {
    let mut s = String::from("[\n");
    for i in 0..steps {
        let step = if all_state_set {
            format!(
                r#"{{"op":"state.set","scope":"kv:/bench","key":"k{}","value":"v{i}"}}"#,
                i % 1024
            )
        } else {
            match i % 5 {
                0 => format!(
                    r#"{{"op":"state.set","scope":"kv:/bench","key":"k{i}","value":"v{i}"}}"#
                ),
                1 => format!(
                    r#"{{"op":"pkt.send","target":"udp://127.0.0.1:9999","payload":"p{i}","meta":{{"ttl":64,"count":10,"pps":1000}}}}"#
                ),
                2 => format!(
                    r#"{{"op":"log.info","message":"m{i}","fields":{{"i":{i},"ok":true}}}}"#
                ),
                3 => r#"{"op":"barrier.sleep","ms":1}"#.to_string(),
                _ => format!(
                    r#"{{"op":"barrier.wait","predicate":{{"kind":"kv","scope":"kv:/bench","key":"k{}","equals":"v{}"}},"timeout_ms":10}}"#,
                    i - 4,
                    i - 4
                ),
            }
        };
        s.push_str(&step);
        s.push_str(if i + 1 < steps { ",\n" } else { "\n" });
    }
    s.push_str("]\n");
    s
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.expect("n > 0"))
}

fn bench_plan() {
    let text = program_text(100_000, false);
    let (ours, plan) = best_of(3, || {
        let p = Program::parse(text.as_bytes()).expect("bench program parses");
        Plan::new(&p, &Gates::default())
    });
    let (peer, v) = best_of(3, || {
        serde_json::from_slice::<serde_json::Value>(text.as_bytes()).expect("valid JSON")
    });
    assert_eq!(plan.steps.len(), v.as_array().map_or(0, Vec::len));
    println!(
        "plan 100,000 steps ({:.1} MB): pfs pasm {:.3} s | peer serde_json::Value parse {:.3} s | ratio {:.2}x (target < 1 s)",
        text.len() as f64 / 1e6,
        ours.as_secs_f64(),
        peer.as_secs_f64(),
        ours.as_secs_f64() / peer.as_secs_f64()
    );
}

fn bench_state_set() {
    const N: usize = 200_000;
    let text = program_text(N, true);
    let p = Program::parse(text.as_bytes()).expect("parses");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        plans_dir: dir.path().join("plans"),
        logs_dir: dir.path().join("logs"),
        ..RunOptions::new()
    };
    let (ours, rep) = best_of(3, || run(&p, text.as_bytes(), &opts).expect("run"));
    let log_bytes = std::fs::metadata(&rep.event_log_path).map_or(0, |m| m.len());
    // Peer: the same inserts and one serde_json line per step, nothing else.
    let (peer, _) = best_of(3, || {
        let f = std::fs::File::create(dir.path().join("peer.jsonl")).expect("create");
        let mut w = BufWriter::with_capacity(1 << 16, f);
        let mut kv: HashMap<(String, String), String> = HashMap::new();
        for (i, s) in p.steps.iter().enumerate() {
            if let pfs_control::pasm::Step::StateSet { scope, key, value } = s {
                kv.insert((scope.clone(), key.clone()), value.clone());
                let line = serde_json::json!({"seq":i,"event":"step","step":i,"op":"state.set",
                    "data":{"scope":scope,"key":key,"value":value}});
                serde_json::to_writer(&mut w, &line).expect("write");
                w.write_all(b"\n").expect("write");
            }
        }
        w.flush().expect("flush");
        kv.len()
    });
    let ours_rate = N as f64 / ours.as_secs_f64();
    let peer_rate = N as f64 / peer.as_secs_f64();
    println!(
        "state.set with event log ({N} steps, {:.1} MB log): pfs pasm {:.0} steps/s | peer bare insert+JSONL loop {:.0} steps/s | ratio {:.2}x (target >= 100,000/s)",
        log_bytes as f64 / 1e6,
        ours_rate,
        peer_rate,
        ours_rate / peer_rate
    );
}

/// A loopback receiver counting datagrams until `stop`.
fn receiver() -> (
    UdpSocket,
    Arc<AtomicU64>,
    Arc<AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let got = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (g, s) = (got.clone(), stop.clone());
    let r = rx.try_clone().expect("clone");
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s.load(Ordering::Relaxed) {
            if r.recv(&mut buf).is_ok() {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (rx, got, stop, h)
}

fn bench_pps() {
    let (rx, got, stop, h) = receiver();
    let to = match rx.local_addr().expect("addr") {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(_) => unreachable!("bound to IPv4"),
    };
    println!("pkt.send pacing on loopback, 64-byte payload, 0.5 s per rate:");
    for pps in [1_000u64, 10_000, 50_000, 100_000] {
        let count = pps / 2;
        let payload = [0x48u8; 64];
        let before = got.load(Ordering::Relaxed);
        let st = send_udp(to, &payload, None, count, Some(pps), None).expect("send");
        std::thread::sleep(Duration::from_millis(100));
        let recv_ours = got.load(Ordering::Relaxed) - before;
        let ours = st.pps().unwrap_or(0.0);
        // Peer: sleep 1/pps between sends.
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
        let gap = Duration::from_nanos(1_000_000_000 / pps);
        let before = got.load(Ordering::Relaxed);
        let peer = paced(count, None, None, || {
            std::thread::sleep(gap);
            sock.send_to(&payload, to)
        })
        .expect("peer send");
        std::thread::sleep(Duration::from_millis(100));
        let recv_peer = got.load(Ordering::Relaxed) - before;
        let peer_pps = peer.pps().unwrap_or(0.0);
        let err = |x: f64| (x - pps as f64) / pps as f64 * 100.0;
        println!(
            "  asked {pps:>7} pps: pfs pasm {ours:>10.0} pps ({:+.2}%, received {recv_ours}/{count}) | peer sleep-loop {peer_pps:>10.0} pps ({:+.2}%, received {recv_peer}/{count}) (target within 2%)",
            err(ours),
            err(peer_pps)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
}

fn main() {
    bench_plan();
    bench_state_set();
    bench_pps();
}
