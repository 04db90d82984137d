//! Shared by the `milkshake_*` netns tests: a lab removed on drop, and probes for
//! what Milkshake may have left behind in it.

#![allow(dead_code)]

use std::process::Command;

use pfs_control::lab::{self, Lab};
use pfs_control::milkshake::nft;

/// A lab with a unique name, removed on every exit path.
pub struct TestLab {
    pub lab: Lab,
}

impl TestLab {
    pub fn up(tag: char) -> TestLab {
        let name = pfs_netns_tests::unique_lab_name(tag);
        let lab = Lab::up(&name).expect("lab up");
        TestLab { lab }
    }

    pub fn name(&self) -> &str {
        self.lab.name()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let name = self.lab.name().to_string();
        let _ = Lab::down(&name);
        let _ = std::fs::remove_file(lab::state::lock_path(&name));
    }
}

/// Milkshake tables in the lab's namespace b.
pub fn tables(l: &TestLab) -> Vec<nft::FoundTable> {
    nft::tables_in(l.lab.ns_b()).expect("list tables")
}

/// Whether an XDP program is attached to the lab's veth b.
pub fn xdp_attached(l: &TestLab) -> bool {
    let o = Command::new("ip")
        .args([
            "-j",
            "-n",
            l.lab.ns_b(),
            "link",
            "show",
            "dev",
            l.lab.veth_b(),
        ])
        .output()
        .expect("ip link");
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ip json");
    v[0].get("xdp").is_some()
}

/// Nothing of Milkshake is left in the lab.
pub fn assert_clean(l: &TestLab, when: &str) {
    let t = tables(l);
    assert!(t.is_empty(), "{when}: tables left: {t:?}");
    assert!(
        !xdp_attached(l),
        "{when}: XDP program left on {}",
        l.lab.veth_b()
    );
}

/// Deterministic test data.
pub fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
