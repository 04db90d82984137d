//! The README's main command: `pfs demo` runs end to end and every computed result
//! equals the oracle. (As root it also runs the lab line-rate step.)

use std::process::Command;

#[test]
fn demo_runs_end_to_end() {
    let o = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(["demo", "--size-mib", "8"])
        .output()
        .expect("run pfs demo");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "pfs demo failed: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for op in ["counteq(0)", "xor", "add", "fnv", "crc32c"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("bench local {op} ")))
            .unwrap_or_else(|| panic!("no row for {op}: {out}"));
        assert!(row.contains("= oracle"), "{row}");
    }
    assert!(out.contains("edge compute file://"), "{out}");
    assert!(out.contains("edge compute http://"), "{out}");
    let pasm = out
        .lines()
        .find(|l| l.starts_with("pasm run hello.pasm"))
        .expect("pasm row");
    assert!(pasm.contains("3/3 steps ok"), "{pasm}");
}
