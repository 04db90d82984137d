//! The artifact store on a full disk: a 2 MiB tmpfs mounted by the test. Appends
//! fail with IO_ERROR (ENOSPC, naming the store and file) and nothing appended
//! before is lost or altered, before and after a reopen.

use std::path::{Path, PathBuf};
use std::process::Command;

use pfs_control::asl::{ArtifactKey, Durability, ErrorKind, Store, StoreOptions};

/// A tmpfs mounted on a fresh temporary directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let name = format!("pfsasl{}", std::process::id());
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                &name,
            ])
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", mnt.display());
        Tmpfs { dir, mnt }
    }

    fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        let _ = &self.dir;
    }
}

fn artifact(i: u32) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; 1024];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

#[test]
fn full_disk_fails_appends_and_loses_nothing() {
    if !pfs_netns_tests::require_root("asl_fulldisk") {
        return;
    }
    let fs = Tmpfs::mount("2m");
    let dir = fs.path().join("store");
    for mode in [Durability::Fsync, Durability::Group] {
        let _ = std::fs::remove_dir_all(&dir);
        let opts = StoreOptions {
            durability: mode,
            block_size: 64 << 10,
            ..StoreOptions::default()
        };
        let mut s = Store::create(&dir, opts.clone()).unwrap();
        let mut stored: Vec<(ArtifactKey, Vec<u8>)> = Vec::new();
        let mut err = None;
        for i in 0..20_000u32 {
            let b = artifact(i);
            match s.put(&b, None) {
                Ok(r) => stored.push((r.key, b)),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
            if i % 100 == 99 && s.sync().is_err() {
                break;
            }
        }
        let durable = s.durable_logseq();
        let e = err.unwrap_or_else(|| {
            s.put(&artifact(999_999), None)
                .expect_err("the disk must be full by now")
        });
        assert_eq!(e.kind(), ErrorKind::IoError, "{mode:?}: {e}");
        assert!(
            e.is_disk_full() || e.to_string().contains("earlier write failed"),
            "{e}"
        );
        assert!(
            e.to_string().contains(dir.to_str().unwrap()),
            "names the store: {e}"
        );
        assert!(
            stored.len() > 100,
            "{mode:?}: only {} appends fit",
            stored.len()
        );
        // The handle keeps refusing writes but still reads.
        assert_eq!(s.put(b"more", None).unwrap_err().kind(), ErrorKind::IoError);
        for (k, b) in &stored {
            assert_eq!(&s.get(k).unwrap(), b);
        }
        drop(s);

        // Recovery on the full disk: everything durable is there, byte-identical.
        let mut s = Store::open(&dir, opts.clone()).unwrap();
        let present = stored.iter().filter(|(k, _)| s.contains(k)).count();
        for (k, b) in &stored {
            if let Ok(got) = s.get(k) {
                assert_eq!(&got, b);
            }
        }
        assert!(s.last_logseq() >= durable);
        let kept = s
            .records()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.header.logseq <= durable)
            .count();
        assert_eq!(
            kept as u64, durable,
            "{mode:?}: durable records all present"
        );
        if mode == Durability::Fsync {
            assert_eq!(
                present,
                stored.len(),
                "fsync: every acknowledged put survives"
            );
        }
        let v = s.verify().unwrap();
        assert!(v.problems.is_empty(), "{mode:?}: {:?}", v.problems);
        drop(s);
    }
    cli_reports_full_disk(&dir);
}

/// The `pfs` binary beside this test's (`target/debug/pfs`), when the workspace
/// test run built it from this tree (it knows `pfs asl`).
fn pfs_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("pfs");
    let knows_asl = Command::new(&p)
        .args(["asl", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    knows_asl.then_some(p)
}

/// `pfs asl put` on the full disk: one line naming the store and the cause, exit 2,
/// and the store still verifies.
fn cli_reports_full_disk(dir: &Path) {
    let Some(pfs) = pfs_binary() else {
        println!("note: no pfs binary with `asl` beside this test; CLI full-disk check not run");
        return;
    };
    let big = dir.parent().unwrap().parent().unwrap().join("big");
    std::fs::write(&big, vec![0x5a; 3 << 20]).unwrap();
    let o = Command::new(&pfs)
        .args(["asl", "--store"])
        .arg(dir)
        .arg("put")
        .arg(&big)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = Command::new(&pfs)
        .args(["asl", "--store"])
        .arg(dir)
        .arg("verify")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
