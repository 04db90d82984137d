//! `pfs blob setup/status` and `pfs xfer compile` through the binary: output,
//! exit codes, one-line errors for bad input, and receipts in the ASL store.

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
        (
            // Outside a lab (or without AF_XDP): refused, naming the backend.
            vec![
                "xfer",
                "send",
                zeros.to_str().unwrap(),
                "--to",
                "127.0.0.1:9",
                "--blob",
                b,
                "--backend",
                "xsk",
            ],
            "--backend xsk",
        ),
    ] {
        let (code, _, err) = pfs(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `pfs xfer recv` and `pfs xfer send` through the binary with `PFS_ASL` set:
/// both receipts end up in that store, equal to the JSON files; with `--no-asl`
/// nothing more is stored.
#[test]
fn receipts_go_to_the_store_named_by_pfs_asl() {
    use pfs_control::asl::Store;
    use pfs_control::xfer::receipt::TAG_RECEIPT;
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s);
    let blob = d("vb.bin");
    let b = blob.to_str().unwrap();
    let (code, _, err) = pfs(&[
        "blob", "setup", "--name", "n1", "--size", "300000", "--seed", "5", "--path", b,
    ]);
    assert_eq!(code, 0, "{err}");
    let obj = d("zeros.bin");
    std::fs::write(&obj, vec![0u8; 200_000]).unwrap();
    std::fs::create_dir(d("out")).unwrap();
    let transfer = |extra: &[&str]| {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cmd = |args: &[&str]| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_pfs"));
            c.args(args)
                .args(extra)
                .env("PFS_ASL", d("asl"))
                .env("PFS_RECEIPTS", d("receipts"));
            c
        };
        let r = cmd(&[
            "xfer",
            "recv",
            "--listen",
            &addr,
            "--out",
            d("out").to_str().unwrap(),
            "--blob",
            b,
            "--force",
            "--wait-s",
            "20",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let s = cmd(&[
            "xfer",
            "send",
            obj.to_str().unwrap(),
            "--to",
            &addr,
            "--blob",
            b,
            "--json",
        ])
        .output()
        .unwrap();
        let r = r.wait_with_output().unwrap();
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        [s.stdout, r.stdout].map(|o| serde_json::from_slice::<serde_json::Value>(&o).unwrap())
    };
    let sums = transfer(&[]);
    let store = Store::open_reader(&d("asl")).unwrap();
    let listed = store.list(0, Some(TAG_RECEIPT));
    assert_eq!(listed.len(), 2, "one receipt per side");
    for s in &sums {
        let key = s["receipt_asl_key"].as_str().expect("stored");
        let (k, _) = listed.iter().find(|(k, _)| k.to_hex() == key).unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&store.get(k).unwrap()).unwrap();
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s["receipt_path"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(stored, file);
    }
    drop(store);
    let sums = transfer(&["--no-asl"]);
    assert!(sums.iter().all(|s| s["receipt_asl_key"].is_null()));
    let store = Store::open_reader(&d("asl")).unwrap();
    assert_eq!(store.list(0, Some(TAG_RECEIPT)).len(), 2);
}
