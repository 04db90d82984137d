//! `pfs milkshake` as a user runs it without root: `rules` prints what a run would
//! install, and every bad input is one line with exit status 2.

use std::process::{Command, Output};

fn pfs_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pfs"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run pfs")
}

fn pfs(args: &[&str]) -> Output {
    pfs_env(args, &[])
}

fn bad(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let s = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(s.trim_end().lines().count(), 1, "one line expected: {s:?}");
    assert!(s.contains(needle), "{needle:?} not in {s:?}");
}

#[test]
fn rules_lists_histogram_for_both_backends() {
    for backend in ["nft", "xdp"] {
        let o = pfs(&[
            "milkshake",
            "rules",
            "--backend",
            backend,
            "--program",
            "histogram",
            "--text",
            "hi",
        ]);
        assert!(o.status.success(), "{o:?}");
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(
            s.contains("257 rules, ports 51999..=51999, 2 packets"),
            "{s}"
        );
        assert!(
            s.contains("255\tudp dport 51999 payload[0] == 0xff\n"),
            "{s}"
        );
        assert!(s.contains("256\tudp dport 51999\n"), "{s}");
        assert_eq!(backend == "nft", s.contains("\"nftables\""), "{s}");
    }
}

#[test]
fn rules_lists_word_ports() {
    let o = pfs(&[
        "milkshake",
        "rules",
        "--backend",
        "nft",
        "--program",
        "word",
        "--text",
        "Hi",
        "--port",
        "40000",
    ]);
    assert!(o.status.success(), "{o:?}");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("2 rules, ports 40000..=40001, 177 packets"),
        "{s}"
    );
}

#[test]
fn bad_inputs_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("write");
    let empty = empty.to_str().expect("utf8");
    let run = |extra: &[&str]| {
        let mut a = vec!["milkshake", "run", "--lab", "nosuchlb"];
        a.extend_from_slice(extra);
        pfs(&a)
    };
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "histogram",
            "--input",
            empty,
        ]),
        "input: empty",
    );
    bad(
        &run(&["--backend", "nft", "--program", "word", "--text", ""]),
        "input: empty",
    );
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "word",
            "--text",
            "abc",
            "--port",
            "65534",
        ]),
        "past 65535 (2 ports available from 65534)",
    );
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "histogram",
            "--text",
            "a",
            "--pps",
            "0",
        ]),
        "--pps: \"0\"",
    );
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "histogram",
            "--text",
            "a",
            "--port",
            "53",
        ]),
        "--port: 53 is reserved",
    );
    bad(
        &run(&["--backend", "nft", "--program", "counteq", "--text", "a"]),
        "--imm",
    );
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "counteq",
            "--text",
            "a",
            "--imm",
            "300",
        ]),
        "--imm: 300",
    );
    bad(
        &run(&["--backend", "ebpf", "--program", "histogram", "--text", "a"]),
        "--backend: unknown backend \"ebpf\"",
    );
    bad(
        &run(&["--backend", "nft", "--program", "sum", "--text", "a"]),
        "--program: unknown program \"sum\"",
    );
    bad(
        &run(&["--backend", "xdp", "--program", "histogram", "--text", "a"]),
        "lab \"nosuchlb\" does not exist",
    );
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "histogram",
            "--text",
            "a",
            "--seconds",
            "0",
        ]),
        "--seconds: 0",
    );
    bad(
        &run(&[
            "--backend",
            "nft",
            "--program",
            "histogram",
            "--input",
            "/nonexistent/x",
        ]),
        "--input /nonexistent/x",
    );
    for secs in ["1e300", "NaN", "-1"] {
        bad(
            &run(&[
                "--backend",
                "nft",
                "--program",
                "word",
                "--text",
                "a",
                "--seconds",
                secs,
            ]),
            "--seconds: ",
        );
    }
    let long = "x".repeat(1100);
    bad(
        &run(&["--backend", "xdp", "--program", "word", "--text", &long]),
        "more than 1024 distinct ports",
    );
    bad(
        &pfs_env(
            &[
                "milkshake",
                "run",
                "--lab",
                "nosuchlb",
                "--backend",
                "nft",
                "--program",
                "word",
                "--text",
                "a",
            ],
            &[("PFS_NFT", "/nonexistent/nft")],
        ),
        "install the nftables package",
    );
}
