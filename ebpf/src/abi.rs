//! Rust mirrors of the structs and constants in `bpf/pfs_xdp.h` (spec
//! `specs/xdp.md` §3). A test compiles a C program against the header and compares
//! every size, field offset and constant with these.

use bytemuck::{Pod, Zeroable};

/// `PFS_MAX_RULES`: counter rules.
pub const MAX_RULES: usize = 4096;
/// `PFS_MAX_PORTS`: distinct ports per program.
pub const MAX_PORTS: usize = 1024;
/// `PFS_MAX_SLOTS_PER_PORT`: distinct payload offsets with byte rules, per port.
pub const MAX_SLOTS_PER_PORT: usize = 4;
/// `PFS_BYTE_SLOTS`: (port, offset) pairs with byte rules, over all ports.
pub const BYTE_SLOTS: usize = 64;
/// `PFS_MAX_PAYLOAD_OFFSET`: largest payload offset a byte rule may test.
pub const MAX_PAYLOAD_OFFSET: u16 = 4095;
/// `PFS_MAX_QUEUES`: entries of the XSKMAP (rx queue index).
pub const MAX_QUEUES: u32 = 64;

/// `PFS_STAT_MATCHED`: IPv4 UDP matching at least one rule.
pub const STAT_MATCHED: u32 = 0;
/// `PFS_STAT_STRAY`: IPv4 UDP matching no rule.
pub const STAT_STRAY: u32 = 1;
/// `PFS_STAT_OTHER`: not IPv4 UDP, or a non-first fragment.
pub const STAT_OTHER: u32 = 2;
/// `PFS_STAT_SHORT`: headers cut short or invalid.
pub const STAT_SHORT: u32 = 3;
/// `PFS_STATS`.
pub const STATS: u32 = 4;

/// `PFS_RSTAT_REDIRECTED`.
pub const RSTAT_REDIRECTED: u32 = 0;
/// `PFS_RSTAT_PASSED`.
pub const RSTAT_PASSED: u32 = 1;
/// `PFS_RSTATS`.
pub const RSTATS: u32 = 2;

/// `XDP_DROP` / `XDP_PASS` as stored in [`CountCfg::action`].
pub const XDP_DROP: u32 = 1;
/// See [`XDP_DROP`].
pub const XDP_PASS: u32 = 2;

/// `struct pfs_port_slot`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortSlot {
    /// Payload offset of the byte tested.
    pub offset: u16,
    /// Which 256-entry block of `pfs_count_bytes`.
    pub slot: u16,
}

/// `struct pfs_port_cfg`, the value of `pfs_count_ports`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortCfg {
    /// Rule index + 1 of the port-only rule; 0 = none.
    pub port_rule: u32,
    /// Used entries of `slots`.
    pub n_slots: u32,
    /// The (offset, slot) pairs of this port's byte rules.
    pub slots: [PortSlot; MAX_SLOTS_PER_PORT],
}

/// `struct pfs_counter`: one rule's (or statistic's) count, summed over CPUs when
/// read through the loader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RuleCount {
    /// Packets.
    pub packets: u64,
    /// Frame bytes (Ethernet header to the end of the frame).
    pub bytes: u64,
}

/// `struct pfs_count_cfg`, entry 0 of `pfs_count_cfg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct CountCfg {
    /// [`XDP_DROP`] or [`XDP_PASS`] for packets matching a rule.
    pub action: u32,
    /// Zero.
    pub reserved: u32,
}

// SAFETY: each type is #[repr(C)], Copy, 'static, made only of integers with no
// padding (bytemuck's Pod derive checks that), so any byte pattern is a valid value,
// which is what aya::Pod requires for reading and writing map entries.
unsafe impl aya::Pod for PortSlot {}
// SAFETY: as above.
unsafe impl aya::Pod for PortCfg {}
// SAFETY: as above.
unsafe impl aya::Pod for RuleCount {}
// SAFETY: as above.
unsafe impl aya::Pod for CountCfg {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use std::process::Command;

    /// Every (C expression, Rust value) pair that must agree.
    fn facts() -> Vec<(&'static str, u64)> {
        let u = |x: usize| x as u64;
        vec![
            ("sizeof(struct pfs_port_slot)", u(size_of::<PortSlot>())),
            (
                "offsetof(struct pfs_port_slot, offset)",
                u(offset_of!(PortSlot, offset)),
            ),
            (
                "offsetof(struct pfs_port_slot, slot)",
                u(offset_of!(PortSlot, slot)),
            ),
            ("sizeof(struct pfs_port_cfg)", u(size_of::<PortCfg>())),
            (
                "offsetof(struct pfs_port_cfg, port_rule)",
                u(offset_of!(PortCfg, port_rule)),
            ),
            (
                "offsetof(struct pfs_port_cfg, n_slots)",
                u(offset_of!(PortCfg, n_slots)),
            ),
            (
                "offsetof(struct pfs_port_cfg, slots)",
                u(offset_of!(PortCfg, slots)),
            ),
            ("sizeof(struct pfs_counter)", u(size_of::<RuleCount>())),
            (
                "offsetof(struct pfs_counter, packets)",
                u(offset_of!(RuleCount, packets)),
            ),
            (
                "offsetof(struct pfs_counter, bytes)",
                u(offset_of!(RuleCount, bytes)),
            ),
            ("sizeof(struct pfs_count_cfg)", u(size_of::<CountCfg>())),
            (
                "offsetof(struct pfs_count_cfg, action)",
                u(offset_of!(CountCfg, action)),
            ),
            (
                "offsetof(struct pfs_count_cfg, reserved)",
                u(offset_of!(CountCfg, reserved)),
            ),
            ("PFS_MAX_RULES", u(MAX_RULES)),
            ("PFS_MAX_PORTS", u(MAX_PORTS)),
            ("PFS_MAX_SLOTS_PER_PORT", u(MAX_SLOTS_PER_PORT)),
            ("PFS_BYTE_SLOTS", u(BYTE_SLOTS)),
            ("PFS_MAX_PAYLOAD_OFFSET", u64::from(MAX_PAYLOAD_OFFSET)),
            ("PFS_MAX_QUEUES", u64::from(MAX_QUEUES)),
            ("PFS_STAT_MATCHED", u64::from(STAT_MATCHED)),
            ("PFS_STAT_STRAY", u64::from(STAT_STRAY)),
            ("PFS_STAT_OTHER", u64::from(STAT_OTHER)),
            ("PFS_STAT_SHORT", u64::from(STAT_SHORT)),
            ("PFS_STATS", u64::from(STATS)),
            ("PFS_RSTAT_REDIRECTED", u64::from(RSTAT_REDIRECTED)),
            ("PFS_RSTAT_PASSED", u64::from(RSTAT_PASSED)),
            ("PFS_RSTATS", u64::from(RSTATS)),
        ]
    }

    #[test]
    fn layouts_and_constants_agree_with_the_c_header() {
        let dir = tempfile::tempdir().unwrap();
        let facts = facts();
        let mut c = String::from(
            "#include <stddef.h>\n#include <stdio.h>\n#include \"pfs_xdp.h\"\nint main(void) {\n",
        );
        for (expr, _) in &facts {
            c.push_str(&format!(
                "  printf(\"%llu\\n\", (unsigned long long)({expr}));\n"
            ));
        }
        c.push_str("  return 0;\n}\n");
        let src = dir.path().join("layout.c");
        let exe = dir.path().join("layout");
        std::fs::write(&src, c).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
        let include = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf");
        let out = Command::new(&cc)
            .args(["-Wall", "-Werror", "-I", include])
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
        assert!(
            out.status.success(),
            "{cc} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe).output().unwrap();
        assert!(run.status.success());
        let got: Vec<u64> = String::from_utf8(run.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(got.len(), facts.len());
        for ((expr, want), got) in facts.iter().zip(got) {
            assert_eq!(got, *want, "{expr}: C says {got}, Rust says {want}");
        }
    }
}
