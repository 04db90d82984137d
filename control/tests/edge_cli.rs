//! `pfs edge serve`, `pfs compute` and `pfs bench edge` as a user runs them: bad
//! input exits 2 with one line naming the flag; a served job prints its results.

use std::process::{Command, Stdio};

use pfs_control::edge::{EdgeConfig, EdgeServer};

fn pfs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let (code, _, err) = pfs(&[
        "edge",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--streams",
        "11",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--streams") && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = pfs(&[
        "edge",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-root",
        "/nonexistent/pfs-edge",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--data-root"), "{err}");
    let (code, _, err) = pfs(&["compute", "--data-url", "file:///x", "--instructions", "{"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--instructions"), "{err}");
    let (code, _, err) = pfs(&["bench", "edge", "--data-url", "file:///x", "--op", "mul"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown op"), "{err}");
}

#[test]
fn compute_prints_results_and_refusals_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.bin"), b"123456789").unwrap();
    let server = EdgeServer::start(EdgeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_root: Some(dir.path().to_path_buf()),
        token: Some("t0k".into()),
        ..EdgeConfig::default()
    })
    .unwrap();
    let ep = server.url();
    let file = format!("file://{}/d.bin", dir.path().display());
    let instrs = r#"[{"op":"crc32c","offset":0,"length":9}]"#;
    let (code, out, err) = pfs(&[
        "compute",
        "--endpoint",
        &ep,
        "--data-url",
        &file,
        "--instructions",
        instrs,
        "--token",
        "t0k",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-> 3808858755"), "{out}");
    let http = format!("{ep}/data/d.bin");
    let (code, out, err) = pfs(&[
        "compute",
        "--endpoint",
        &ep,
        "--data-url",
        &http,
        "--instructions",
        instrs,
        "--token",
        "t0k",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["results"][0], 3808858755u64);
    let (code, _, err) = pfs(&[
        "compute",
        "--endpoint",
        &ep,
        "--data-url",
        &file,
        "--instructions",
        instrs,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("401"), "{err}");
}
