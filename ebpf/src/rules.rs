//! Count rules compiled into the `pfs_count` maps (spec `specs/xdp.md` §4.2).
//! Pure: no maps, no syscalls.

use std::collections::BTreeMap;

use crate::EbpfError;
use crate::abi::{BYTE_SLOTS, MAX_PAYLOAD_OFFSET, MAX_PORTS, MAX_RULES, MAX_SLOTS_PER_PORT};
use crate::abi::{PortCfg, PortSlot};

/// One counter rule: UDP destination port, and optionally one payload byte
/// (offset from the first UDP payload byte, value) that must be equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountRule {
    /// UDP destination port.
    pub dport: u16,
    /// `(payload offset, value)`: the byte at that offset must equal the value.
    pub byte: Option<(u16, u8)>,
}

/// The map contents for a rule list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountTables {
    /// `pfs_count_ports` entries.
    pub ports: BTreeMap<u16, PortCfg>,
    /// Non-zero `pfs_count_bytes` entries: index `slot * 256 + value` → rule + 1.
    pub bytes: BTreeMap<u32, u32>,
}

fn rule_err(index: usize, rule: &CountRule, reason: String) -> EbpfError {
    EbpfError::Rule {
        index,
        rule: format!("{rule:?}"),
        reason,
    }
}

/// Compiles `rules` (rule `i` counts into counter `i`). Errors name the rule:
/// a duplicate, an offset past [`MAX_PAYLOAD_OFFSET`], or a limit exceeded.
pub fn compile(rules: &[CountRule]) -> Result<CountTables, EbpfError> {
    if rules.len() > MAX_RULES {
        return Err(EbpfError::TooMany {
            what: "count rules",
            got: rules.len(),
            limit: MAX_RULES,
        });
    }
    let mut t = CountTables::default();
    let mut next_slot: u16 = 0;
    for (i, r) in rules.iter().enumerate() {
        // i < MAX_RULES = 4096, so i + 1 fits in u32.
        let tag = i as u32 + 1;
        if !t.ports.contains_key(&r.dport) && t.ports.len() >= MAX_PORTS {
            return Err(rule_err(
                i,
                r,
                format!("more than {MAX_PORTS} distinct ports"),
            ));
        }
        let cfg = t.ports.entry(r.dport).or_default();
        match r.byte {
            None => {
                if cfg.port_rule != 0 {
                    return Err(rule_err(
                        i,
                        r,
                        format!("duplicate of rule {}", cfg.port_rule - 1),
                    ));
                }
                cfg.port_rule = tag;
            }
            Some((offset, value)) => {
                if offset > MAX_PAYLOAD_OFFSET {
                    return Err(rule_err(
                        i,
                        r,
                        format!("payload offset {offset} is past {MAX_PAYLOAD_OFFSET}"),
                    ));
                }
                let used = cfg.n_slots as usize;
                let slot = match cfg.slots[..used].iter().find(|s| s.offset == offset) {
                    Some(s) => s.slot,
                    None => {
                        if used >= MAX_SLOTS_PER_PORT {
                            return Err(rule_err(
                                i,
                                r,
                                format!(
                                    "port {} would test more than {MAX_SLOTS_PER_PORT} distinct payload offsets",
                                    r.dport
                                ),
                            ));
                        }
                        if usize::from(next_slot) >= BYTE_SLOTS {
                            return Err(rule_err(
                                i,
                                r,
                                format!(
                                    "more than {BYTE_SLOTS} distinct (port, payload offset) pairs"
                                ),
                            ));
                        }
                        let s = next_slot;
                        next_slot += 1;
                        cfg.slots[used] = PortSlot { offset, slot: s };
                        cfg.n_slots += 1;
                        s
                    }
                };
                let idx = u32::from(slot) * 256 + u32::from(value);
                if let Some(prev) = t.bytes.insert(idx, tag) {
                    return Err(rule_err(i, r, format!("duplicate of rule {}", prev - 1)));
                }
            }
        }
    }
    Ok(t)
}

/// What the program does with one packet given the tables: the rules it counts
/// into (indices). The oracle for the C program's matching, used by tests.
pub fn matching_rules(t: &CountTables, dport: u16, payload: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let Some(cfg) = t.ports.get(&dport) else {
        return out;
    };
    if cfg.port_rule != 0 {
        out.push(cfg.port_rule as usize - 1);
    }
    for s in &cfg.slots[..cfg.n_slots as usize] {
        if let Some(&v) = payload.get(usize::from(s.offset)) {
            let idx = u32::from(s.slot) * 256 + u32::from(v);
            if let Some(&tag) = t.bytes.get(&idx) {
                out.push(tag as usize - 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(dport: u16) -> CountRule {
        CountRule { dport, byte: None }
    }
    fn byte(dport: u16, off: u16, v: u8) -> CountRule {
        CountRule {
            dport,
            byte: Some((off, v)),
        }
    }

    #[test]
    fn histogram_of_256_rules_uses_one_slot() {
        let rules: Vec<CountRule> = (0..=255u8).map(|v| byte(9000, 0, v)).collect();
        let t = compile(&rules).unwrap();
        assert_eq!(t.ports.len(), 1);
        assert_eq!(t.ports[&9000].n_slots, 1);
        assert_eq!(t.bytes.len(), 256);
        for v in 0..=255u8 {
            assert_eq!(matching_rules(&t, 9000, &[v, 1, 2]), vec![usize::from(v)]);
        }
        assert!(matching_rules(&t, 9000, &[]).is_empty());
        assert!(matching_rules(&t, 9001, &[0]).is_empty());
    }

    #[test]
    fn port_and_byte_rules_both_count() {
        let rules = [port(53), byte(53, 4, 7), byte(53, 0, 1), byte(54, 4, 7)];
        let t = compile(&rules).unwrap();
        assert_eq!(matching_rules(&t, 53, &[1, 0, 0, 0, 7]), vec![0, 1, 2]);
        assert_eq!(matching_rules(&t, 53, &[2, 0, 0, 0, 7]), vec![0, 1]);
        assert_eq!(matching_rules(&t, 53, &[1]), vec![0, 2]);
        assert_eq!(matching_rules(&t, 54, &[0, 0, 0, 0, 7]), vec![3]);
        assert_eq!(
            matching_rules(&t, 54, &[0, 0, 0, 0, 8]),
            Vec::<usize>::new()
        );
        // Distinct slots per (port, offset).
        assert_ne!(t.ports[&53].slots[0].slot, t.ports[&54].slots[0].slot);
    }

    #[test]
    fn bad_rules_are_named() {
        let e = compile(&[port(1), port(1)]).unwrap_err().to_string();
        assert!(
            e.contains("rule 1") && e.contains("duplicate of rule 0"),
            "{e}"
        );
        let e = compile(&[byte(1, 2, 3), byte(1, 2, 3)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate"), "{e}");
        let e = compile(&[byte(1, 4096, 0)]).unwrap_err().to_string();
        assert!(e.contains("4096") && e.contains("rule 0"), "{e}");
        let five: Vec<_> = (0..5).map(|o| byte(1, o, 0)).collect();
        let e = compile(&five).unwrap_err().to_string();
        assert!(
            e.contains("rule 4") && e.contains("distinct payload offsets"),
            "{e}"
        );
        let many: Vec<_> = (0..65).map(|p| byte(p, 0, 0)).collect();
        assert!(compile(&many).unwrap_err().to_string().contains("rule 64"));
        let ports: Vec<_> = (0..1025).map(port).collect();
        assert!(
            compile(&ports)
                .unwrap_err()
                .to_string()
                .contains("rule 1024")
        );
        let too_many: Vec<_> = (0..4097u32)
            .map(|i| byte((i / 256) as u16, 0, (i % 256) as u8))
            .collect();
        assert!(matches!(
            compile(&too_many),
            Err(EbpfError::TooMany { limit: 4096, .. })
        ));
        assert_eq!(compile(&[]).unwrap(), CountTables::default());
    }
}
