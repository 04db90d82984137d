//! `pfs pasm` end to end through the binary: exit statuses, one-line errors,
//! files written, assembler round trip, runs recorded and shown.

use std::path::Path;
use std::process::{Command, Output};

fn pfs(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(args)
        .current_dir(dir)
        .env("PFS_ASL", dir.join("asl"))
        .output()
        .expect("run pfs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const HELLO: &str = include_str!("../examples/hello.pasm");

#[test]
fn plan_executes_nothing_and_run_writes_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hello.pasm"), HELLO).unwrap();
    let o = pfs(d.path(), &["pasm", "plan", "hello.pasm"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("3 steps") && out.contains("send udp://127.0.0.1:9999"),
        "{out}"
    );
    assert!(!d.path().join("plans").exists() && !d.path().join("logs").exists());

    let o = pfs(d.path(), &["pasm", "run", "hello.pasm"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("log: done msg_id=\"hello1\""), "{out}");
    assert!(out.contains(": ok: 3 ok"), "{out}");
    let plans: Vec<_> = std::fs::read_dir(d.path().join("plans")).unwrap().collect();
    let logs: Vec<_> = std::fs::read_dir(d.path().join("logs")).unwrap().collect();
    assert_eq!((plans.len(), logs.len()), (1, 1));

    let o = pfs(d.path(), &["pasm", "runs"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let runs = text(&o.stdout);
    let run_id = runs
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let o = pfs(d.path(), &["pasm", "show", &run_id, "--events"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let shown = text(&o.stdout);
    assert!(shown.contains("pfs.pasm.planfile/1") && shown.contains("\"event\":\"run.end\""));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&[u8], &str)] = &[
        (
            br#"[{"op":"state.set","scope":"s","key":"k","value":1}]"#,
            "step 0 (/0/value)",
        ),
        (
            br#"[{"op":"pkt.send","target":"udp://127.0.0.1:1","payload":"a"#,
            "malformed JSON",
        ),
        (
            b"[{\"op\":\"pkt.send\",\"target\":\"udp://127.0.0.1:1\",\"payload\":\"\xff\"}]",
            "step 0, /0/payload: not UTF-8",
        ),
        (br#"[{"op":"jump"}]"#, "unknown op \"jump\""),
    ];
    for (i, (src, want)) in cases.iter().enumerate() {
        let f = format!("bad{i}.pasm");
        std::fs::write(d.path().join(&f), src).unwrap();
        for cmd in ["plan", "run"] {
            let o = pfs(d.path(), &["pasm", cmd, &f]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {f}");
            let err = text(&o.stderr);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(want), "{cmd} {f}: {err}");
        }
    }
    // A lab that pfs did not make.
    std::fs::write(d.path().join("hello.pasm"), HELLO).unwrap();
    let o = pfs(
        d.path(),
        &["pasm", "run", "hello.pasm", "--netns", "nosuch0"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--netns nosuch0"));
    // A refused step: exit 1, planfile still written.
    std::fs::write(
        d.path().join("far.pasm"),
        r#"[{"op":"pkt.send","target":"udp://192.0.2.1:9","payload":"x"}]"#,
    )
    .unwrap();
    let o = pfs(
        d.path(),
        &[
            "pasm",
            "run",
            "far.pasm",
            "--no-record",
            "--plans-dir",
            "p2",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("refused: /0/target"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read_dir(d.path().join("p2")).unwrap().count(), 1);
}

#[test]
fn asm_and_disasm_round_trip() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hello.pasm"), HELLO).unwrap();
    let o = pfs(
        d.path(),
        &["pasm", "asm", "--disasm", "hello.pasm", "-o", "hello.txt"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t = std::fs::read_to_string(d.path().join("hello.txt")).unwrap();
    assert!(t.starts_with("set kv:/demo hello world\n"), "{t}");
    let o = pfs(d.path(), &["pasm", "asm", "hello.txt"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_str(HELLO).unwrap();
    assert_eq!(a, b);
    std::fs::write(d.path().join("bad.txt"), "sleep 1\nsend nowhere \"x\"\n").unwrap();
    let o = pfs(d.path(), &["pasm", "asm", "bad.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("line 2"), "{}", text(&o.stderr));
}

#[test]
fn ctrl_c_still_writes_the_planfile() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("slow.pasm"),
        r#"[{"op":"state.set","scope":"s","key":"k","value":"v"},
            {"op":"barrier.sleep","ms":10000},
            {"op":"log.info","message":"never"}]"#,
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(["pasm", "run", "slow.pasm", "--no-record"])
        .current_dir(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run has started (its event log exists), then SIGINT it.
    let logs = d.path().join("logs");
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&logs).map_or(true, |mut r| r.next().is_none()) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let plan = std::fs::read_dir(d.path().join("plans"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pf: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    assert_eq!(pf["status"], "interrupted");
    let outcomes: Vec<_> = pf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["ok", "error", "not_run"]);
}
