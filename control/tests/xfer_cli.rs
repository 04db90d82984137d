//! `pfs blob setup/status` and `pfs xfer compile` through the binary: output,
//! exit codes, and one-line errors for bad input.

use std::process::Command;

fn pfs(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_pfs"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn setup_status_compile() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("vb.bin");
    let b = blob.to_str().unwrap();
    let (code, out, err) = pfs(&[
        "blob", "setup", "--name", "n1", "--size", "300000", "--seed", "5", "--path", b, "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["identity"]["name"], "n1");
    assert_eq!(v["matches_identity"], true);
    let (code, out, _) = pfs(&["blob", "status", "--path", b, "--json"]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["fingerprint"], v["fingerprint"]);

    let zeros = dir.path().join("z.bin");
    std::fs::write(&zeros, vec![0u8; 65_536]).unwrap();
    let (code, out, err) = pfs(&[
        "xfer",
        "compile",
        zeros.to_str().unwrap(),
        "--blob",
        b,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["size"], 65_536);
    assert_eq!(r["raw_bytes"], 0);
    assert!(r["tx_ratio"].as_f64().unwrap() > 10.0);

    // Unexpressible: exit 2, one line naming the file and the offset.
    let noisy = dir.path().join("n.bin");
    let mut data = vec![0u8; 1000];
    data.extend((0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    std::fs::write(&noisy, &data).unwrap();
    let (code, _, err) = pfs(&["xfer", "compile", noisy.to_str().unwrap(), "--blob", b]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("offset 10"), "{err}");

    for (args, want) in [
        (
            vec!["xfer", "compile", "/nonexistent", "--blob", b],
            "no such file",
        ),
        (
            vec![
                "xfer",
                "compile",
                zeros.to_str().unwrap(),
                "--blob",
                b,
                "--mode",
                "zip",
            ],
            "mode",
        ),
        (
            vec![
                "xfer",
                "compile",
                zeros.to_str().unwrap(),
                "--blob",
                b,
                "--allow-raw",
            ],
            "--allow-raw",
        ),
        (
            vec![
                "xfer",
                "compile",
                zeros.to_str().unwrap(),
                "--blob",
                "/nonexistent",
            ],
            "pfs blob setup",
        ),
        (
            vec![
                "blob", "setup", "--name", "a/b", "--size", "300000", "--seed", "1", "--path", b,
            ],
            "name",
        ),
        (
            vec![
                "blob", "setup", "--name", "a", "--size", "10", "--seed", "1", "--path", b,
            ],
            "size",
        ),
        (
            vec![
                "xfer",
                "send",
                zeros.to_str().unwrap(),
                "--to",
                "nowhere",
                "--blob",
                b,
            ],
            "--to",
        ),
        (
            vec![
                "xfer",
                "send",
                zeros.to_str().unwrap(),
                "--to",
                "127.0.0.1:9",
                "--blob",
                b,
                "--backend",
                "dpdk",
            ],
            "--backend",
        ),
    ] {
        let (code, _, err) = pfs(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
