//! `pfs edge serve`, `pfs compute` and `pfs bench edge` as the CLI runs them
//! (in-process: the argument structs parsed by clap, then the `run_*` functions
//! the dispatcher calls). Bad input is a `UsageError` (exit status 2 via
//! `cli::report`) naming the flag; a served job succeeds.

use clap::Parser;
use pfs_control::edge::client::{
    ComputeArgs, EdgeBenchArgs, ServeArgs, run_bench, run_compute, run_serve,
};
use pfs_control::edge::{EdgeConfig, EdgeServer};
use pfs_control::usage::UsageError;

#[derive(Debug, Parser)]
struct Serve {
    #[command(flatten)]
    a: ServeArgs,
}

#[derive(Debug, Parser)]
struct Compute {
    #[command(flatten)]
    a: ComputeArgs,
}

#[derive(Debug, Parser)]
struct Bench {
    #[command(flatten)]
    a: EdgeBenchArgs,
}

fn usage(r: anyhow::Result<()>) -> String {
    let e = r.expect_err("expected a usage error");
    assert_eq!(
        format!("{:?}", pfs_control::cli::report(&e)),
        format!("{:?}", std::process::ExitCode::from(2)),
        "{e:#}"
    );
    let u = e.downcast_ref::<UsageError>().unwrap();
    let msg = u.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    msg
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    let s = Serve::parse_from(["serve", "--listen", "127.0.0.1:0", "--streams", "11"]);
    assert!(usage(run_serve(&s.a)).contains("--streams"));
    let s = Serve::parse_from([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-root",
        "/nonexistent/pfs-edge",
    ]);
    assert!(usage(run_serve(&s.a)).contains("--data-root"));
    let s = Serve::parse_from([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--origin-ca",
        "/nonexistent/ca.pem",
    ]);
    assert!(usage(run_serve(&s.a)).contains("--origin-ca"));
    let c = Compute::parse_from(["compute", "--data-url", "file:///x", "--instructions", "{"]);
    assert!(usage(run_compute(&c.a)).contains("--instructions"));
    let b = Bench::parse_from(["bench", "--data-url", "file:///x", "--op", "mul"]);
    assert!(usage(run_bench(&b.a)).contains("unknown op"));
}

#[test]
fn compute_runs_and_refusals_are_usage_errors() {
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
    let http = format!("{ep}/data/d.bin");
    let instrs = r#"[{"op":"crc32c","offset":0,"length":9}]"#;
    for url in [&file, &http] {
        let c = Compute::parse_from([
            "compute",
            "--endpoint",
            &ep,
            "--data-url",
            url,
            "--instructions",
            instrs,
            "--token",
            "t0k",
        ]);
        run_compute(&c.a).unwrap();
    }
    let c = Compute::parse_from([
        "compute",
        "--endpoint",
        &ep,
        "--data-url",
        &file,
        "--instructions",
        instrs,
    ]);
    assert!(usage(run_compute(&c.a)).contains("401"));
    let b = Bench::parse_from([
        "bench",
        "--endpoint",
        &ep,
        "--data-url",
        &file,
        "--windows",
        "1",
        "--token",
        "t0k",
    ]);
    // 9 bytes cannot hold a window of 1 MiB: the server's 422 names it.
    let e = run_bench(&b.a).unwrap_err();
    assert!(format!("{e:#}").contains("422"), "{e:#}");
}
