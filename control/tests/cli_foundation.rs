//! The foundation commands as a user runs them: `pfs blob create`, `pfs bench
//! local`, `pfs plan ranges`, and their bad-input errors (exit 2, one line).

use std::process::{Command, Output};

fn pfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(args)
        .output()
        .expect("run pfs")
}

fn stderr_line(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(s.trim_end().lines().count(), 1, "one line expected: {s:?}");
    s
}

#[test]
fn blob_then_bench_every_op_matches_known_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp.bin");
    let p = path.to_str().unwrap();
    let o = pfs(&["blob", "create", p, "--size-mib", "4", "--fill", "ramp"]);
    assert!(o.status.success(), "{o:?}");
    // A ramp has each byte value 4 MiB / 256 times; its xor is 0 (every value an
    // even number of times) and its sum is 4 MiB / 256 * (0 + ... + 255).
    let per_value = (4u64 << 20) / 256;
    for (op, imm, want) in [
        ("counteq", "7", per_value),
        ("xor", "0", 0),
        ("add", "0", per_value * (255 * 256 / 2)),
    ] {
        let o = pfs(&[
            "bench",
            "local",
            p,
            "--concurrency",
            "3",
            "--windows",
            "4",
            "--op",
            op,
            "--imm",
            imm,
            "--json",
        ]);
        assert!(o.status.success(), "{op}: {o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["result"].as_u64(), Some(want), "{op}");
        assert_eq!(v["windows"].as_u64(), Some(4));
        assert_eq!(v["bytes"].as_u64(), Some(4 << 20));
        assert_eq!(v["verified"].as_bool(), Some(true));
        for key in [
            "op",
            "imm",
            "elapsed_s",
            "throughput_gbps",
            "cpupwn_gbps",
            "p50_us",
            "p99_us",
            "backend",
        ] {
            assert!(!v[key].is_null(), "{key} missing");
        }
    }
    for op in ["fnv", "crc32c"] {
        let o = pfs(&["bench", "local", p, "--windows", "4", "--op", op, "--json"]);
        assert!(o.status.success(), "{op}: {o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["verified"].as_bool(), Some(true), "{op}");
    }
}

#[test]
fn bad_input_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.bin");
    let p = path.to_str().unwrap();
    assert!(
        pfs(&["blob", "create", p, "--size-mib", "2"])
            .status
            .success()
    );
    let missing = dir.path().join("missing.bin");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["bench", "local", missing.to_str().unwrap()],
            "missing.bin",
        ),
        (vec!["bench", "local", p, "--windows", "3"], "windows"),
        (vec!["bench", "local", p, "--windows", "0"], "windows"),
        (vec!["bench", "local", p, "--op", "nope"], "op"),
        (vec!["bench", "local", p, "--imm", "256"], "imm: 256"),
        (vec!["bench", "local", p, "--imm", "-1"], "imm: -1"),
        (
            vec!["plan", "ranges", "--windows", "[{"],
            "windows: malformed JSON",
        ),
        (
            vec![
                "plan",
                "ranges",
                "--windows",
                r#"[{"offset":0,"length":0}]"#,
            ],
            "windows[0].length",
        ),
        (
            vec![
                "plan",
                "ranges",
                "--windows",
                r#"[{"offset":0,"lenght":5}]"#,
            ],
            "windows",
        ),
        (
            vec![
                "plan",
                "ranges",
                "--windows",
                r#"[{"offset":18446744073709551615,"length":2}]"#,
            ],
            "windows[0]",
        ),
        (
            vec!["blob", "create", p, "--size-mib", "1"],
            "already exists",
        ),
        (
            vec![
                "blob",
                "create",
                "/tmp/x.bin",
                "--size-mib",
                "1",
                "--fill",
                "foo",
            ],
            "fill",
        ),
    ];
    for (args, needle) in cases {
        let o = pfs(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let line = stderr_line(&o);
        assert!(line.contains(needle), "{args:?}: {line:?} lacks {needle:?}");
    }
}

#[test]
fn plan_ranges_prints_coalesced_json() {
    let o = pfs(&[
        "plan",
        "ranges",
        "--windows",
        r#"[{"offset":0,"length":65536},{"offset":65536,"length":65536},{"offset":5242880,"length":1}]"#,
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ranges = v["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges[0]["offset"], 0);
    assert_eq!(ranges[0]["length"], 1048576);
    assert_eq!(ranges[1]["offset"], 5242880);
}

#[test]
fn forcing_an_unknown_kernel_backend_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.bin");
    let p = path.to_str().unwrap();
    assert!(
        pfs(&["blob", "create", p, "--size-mib", "1"])
            .status
            .success()
    );
    let o = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(["bench", "local", p, "--windows", "1"])
        .env("PFS_KERNEL", "avx9000")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr_line(&o).contains("PFS_KERNEL"));
    let o = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(["bench", "local", p, "--windows", "1", "--json"])
        .env("PFS_KERNEL", "scalar")
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "scalar");
}
