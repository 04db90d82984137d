//! Runner tests on loopback: every op, refusals and `--keep-going`, failures,
//! interruption, planfiles and event logs validated against the JSON Schemas,
//! a UDP listener that must receive exactly what `pkt.send` sent, and recording
//! in the artifact store.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;

use super::program::Program;
use super::record;
use super::runner::{Outcome, RunOptions, RunReport, RunStatus, run};
use super::schema::validate;

const PLANFILE_SCHEMA: &str = include_str!("../../../specs/pasm-planfile.schema.json");
const EVENT_SCHEMA: &str = include_str!("../../../specs/pasm-event.schema.json");

fn opts(dir: &Path) -> RunOptions {
    RunOptions {
        plans_dir: dir.join("plans"),
        logs_dir: dir.join("logs"),
        ..RunOptions::new()
    }
}

/// Validates the planfile and every event line against the schemas; returns the events.
fn check_files(rep: &RunReport) -> Vec<Value> {
    let ps: Value = serde_json::from_str(PLANFILE_SCHEMA).unwrap();
    let es: Value = serde_json::from_str(EVENT_SCHEMA).unwrap();
    let pf: Value = serde_json::from_slice(&std::fs::read(&rep.planfile_path).unwrap()).unwrap();
    assert_eq!(validate(&ps, &pf), Vec::<String>::new(), "{pf:#}");
    let name = rep.planfile_path.file_name().unwrap().to_str().unwrap();
    assert_eq!(name, format!("pasm_{}.json", rep.planfile.run_id));
    let log = std::fs::read_to_string(&rep.event_log_path).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(validate(&es, e), Vec::<String>::new(), "{e}");
        assert_eq!(e["seq"], i as u64);
    }
    assert_eq!(events.first().unwrap()["event"], "run.start");
    assert_eq!(events.last().unwrap()["event"], "run.end");
    events
}

fn outcomes(rep: &RunReport) -> Vec<Outcome> {
    rep.planfile.steps.iter().map(|s| s.outcome).collect()
}

fn parse(s: &str) -> Program {
    Program::parse(s.as_bytes()).unwrap()
}

#[test]
fn every_sim_op_runs_and_is_logged() {
    let d = tempfile::tempdir().unwrap();
    let src = r#"[
 {"op":"state.set","scope":"kv:/demo","key":"hello","value":"world"},
 {"op":"barrier.wait","predicate":{"kind":"kv","scope":"kv:/demo","key":"hello","equals":"world"},"timeout_ms":1000},
 {"op":"log.info","message":"m","fields":{"a":"x","n":-1,"b":true}},
 {"op":"barrier.sleep","ms":30},
 {"op":"pkt.send","target":"udp://127.0.0.1:9","payload":"abc","meta":{"count":4}},
 {"op":"barrier.wait","predicate":{"kind":"counter","name":"pasm.sent_packets","cmp":"==","value":4},"timeout_ms":1000},
 {"op":"barrier.wait","predicate":{"kind":"counter","name":"pasm.sent_bytes","cmp":">=","value":12},"timeout_ms":1000}
]"#;
    let rep = run(&parse(src), src.as_bytes(), &opts(d.path())).unwrap();
    assert_eq!(rep.planfile.status, RunStatus::Ok);
    assert!(outcomes(&rep).iter().all(|o| *o == Outcome::Ok));
    assert_eq!(rep.planfile.steps[4].bytes_sent, 12);
    assert_eq!(rep.planfile.steps[4].packets_sent, 4);
    assert!(rep.planfile.steps[3].duration_us >= 30_000);
    assert_eq!(
        rep.planfile.program.blake3,
        blake3::hash(src.as_bytes()).to_hex().to_string()
    );
    let ev = check_files(&rep);
    assert_eq!(ev.len(), 2 + 7);
    assert_eq!(ev[1]["data"]["value"], "world");
    assert_eq!(ev[3]["data"]["fields"]["n"], -1);
    assert_eq!(ev[6]["data"]["observed"], 4);
}

#[test]
fn loopback_listener_receives_exactly_what_was_sent() {
    let d = tempfile::tempdir().unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let port = rx.local_addr().unwrap().port();
    let src = format!(
        r#"[{{"op":"pkt.send","target":"udp://127.0.0.1:{port}","payload":"Hello, wörld!","meta":{{"count":300,"pps":3000,"ttl":7}}}},
            {{"op":"pkt.send","target":"udp://127.0.0.1:{port}","payload":"00ff10","encoding":"hex","meta":{{"count":2}}}}]"#
    );
    // Receive concurrently: the socket buffer would not hold the whole stream.
    let listener = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(buf[..n].to_vec());
            if got.len() > 302 {
                break;
            }
        }
        got
    });
    let rep = run(&parse(&src), src.as_bytes(), &opts(d.path())).unwrap();
    assert_eq!(rep.planfile.status, RunStatus::Ok);
    let got = listener.join().unwrap();
    assert_eq!(got.len(), 302, "datagrams received");
    assert!(got[..300].iter().all(|g| g == "Hello, wörld!".as_bytes()));
    assert!(got[300..].iter().all(|g| g == &[0x00, 0xff, 0x10]));
    let s = &rep.planfile.steps;
    assert_eq!((s[0].packets_sent, s[0].bytes_sent), (300, 300 * 14));
    assert_eq!((s[1].packets_sent, s[1].bytes_sent), (2, 6));
    let ev = check_files(&rep);
    assert_eq!(ev[1]["data"]["packets"], 300);
    assert!(ev[1]["data"]["pps_achieved"].as_f64().unwrap() > 0.0);
}

#[test]
fn refusal_stops_the_run_unless_keep_going() {
    let src = r#"[
 {"op":"state.set","scope":"s","key":"k","value":"v"},
 {"op":"pkt.send","target":"udp://192.0.2.1:9","payload":"x"},
 {"op":"barrier.sleep","ms":10001},
 {"op":"fw.counter","name":"c","port":1},
 {"op":"pkt.send","target":"raw://pfsxa","payload":"00000000000000000000000000000000","encoding":"hex"},
 {"op":"state.set","scope":"s","key":"k2","value":"v"}
]"#;
    let d = tempfile::tempdir().unwrap();
    let rep = run(&parse(src), src.as_bytes(), &opts(d.path())).unwrap();
    use Outcome::*;
    assert_eq!(
        outcomes(&rep),
        [Ok, Refused, NotRun, NotRun, NotRun, NotRun]
    );
    assert_eq!(rep.planfile.status, RunStatus::Failed);
    let r = rep.planfile.steps[1].reason.as_deref().unwrap();
    assert!(
        r.starts_with("/1/target: ") && r.contains("outside the gate"),
        "{r}"
    );
    check_files(&rep);

    let mut o = opts(d.path());
    o.keep_going = true;
    let rep = run(&parse(src), src.as_bytes(), &o).unwrap();
    assert_eq!(outcomes(&rep), [Ok, Refused, Refused, Refused, Refused, Ok]);
    let reasons: Vec<_> = rep
        .planfile
        .steps
        .iter()
        .filter_map(|s| s.reason.clone())
        .collect();
    assert!(reasons[1].starts_with("/2/ms: "), "{reasons:?}");
    assert!(reasons[2].contains("pfs lab up --name NAME"), "{reasons:?}");
    assert!(reasons[3].contains("--netns NAME"), "{reasons:?}");
    assert_eq!(rep.planfile.status, RunStatus::Failed);
    assert!(rep.planfile.gates.keep_going);
    check_files(&rep);
}

#[test]
fn a_failed_wait_stops_the_run() {
    let src = r#"[
 {"op":"barrier.wait","predicate":{"kind":"kv","scope":"s","key":"k","equals":"v"},"timeout_ms":50},
 {"op":"state.set","scope":"s","key":"k","value":"v"}
]"#;
    let d = tempfile::tempdir().unwrap();
    let rep = run(&parse(src), src.as_bytes(), &opts(d.path())).unwrap();
    assert_eq!(outcomes(&rep), [Outcome::Error, Outcome::NotRun]);
    let r = rep.planfile.steps[0].reason.as_deref().unwrap();
    assert!(
        r.contains("timed out after") && r.contains("observed null"),
        "{r}"
    );
    check_files(&rep);
}

#[test]
fn interrupted_run_writes_its_planfile() {
    static FLAG: AtomicBool = AtomicBool::new(false);
    let src = r#"[
 {"op":"state.set","scope":"s","key":"k","value":"v"},
 {"op":"barrier.sleep","ms":10000},
 {"op":"state.set","scope":"s","key":"k","value":"w"}
]"#;
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.interrupt = Some(&FLAG);
    let t = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        FLAG.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let rep = run(&parse(src), src.as_bytes(), &o).unwrap();
    t.join().unwrap();
    assert_eq!(rep.planfile.status, RunStatus::Interrupted);
    assert_eq!(
        outcomes(&rep),
        [Outcome::Ok, Outcome::Error, Outcome::NotRun]
    );
    assert_eq!(rep.planfile.steps[1].reason.as_deref(), Some("interrupted"));
    let ev = check_files(&rep);
    assert_eq!(ev.last().unwrap()["status"], "interrupted");
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(&rep.planfile_path).unwrap()).unwrap();
    assert_eq!(on_disk["steps"][2]["outcome"], "not_run");
}

#[test]
fn runs_are_recorded_in_the_store() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("asl");
    let src = r#"[{"op":"log.info","message":"one"}]"#;
    let a = run(&parse(src), src.as_bytes(), &opts(d.path())).unwrap();
    let b = run(&parse(src), src.as_bytes(), &opts(d.path())).unwrap();
    let (ka, ma) = record::record(&store, &a, src.as_bytes()).unwrap();
    let (_, mb) = record::record(&store, &b, src.as_bytes()).unwrap();
    assert_eq!(ma.program, mb.program, "same program, same artifact");
    let runs = record::runs(&store).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].1, ma);
    let (m, plan, events) = record::show(&store, &a.planfile.run_id).unwrap();
    assert_eq!(m, ma);
    assert_eq!(plan, std::fs::read(&a.planfile_path).unwrap());
    assert_eq!(events, std::fs::read(&a.event_log_path).unwrap());
    assert_eq!(record::show(&store, &ka.to_hex()).unwrap().0, ma);
    assert!(record::show(&store, "1999").is_err());
}
