//! `pfs_count` run by the kernel on crafted frames (BPF_PROG_TEST_RUN, root, no
//! interface): random rule sets and packets against the Rust oracle
//! `pfs_ebpf::rules::matching_rules`, and every frame class of spec §1 (VLAN,
//! IPv6, ARP, IP options, fragments, truncation at every length).

use pfs_ebpf::rules::{self, CountRule};
use pfs_ebpf::{Action, Counter, RuleCount};
use pfs_netns_tests::require_root;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// A deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Ethernet (ethertype) + IPv4 (ihl words, protocol, frag_off) + UDP (dport) + payload.
fn frame(ethertype: u16, ihl: u8, proto: u8, frag_off: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    let ip_len = usize::from(ihl) * 4;
    let total = (ip_len + 8 + payload.len()) as u16;
    let mut ip = vec![0u8; ip_len.max(20)];
    ip[0] = 0x40 | (ihl & 0x0f);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6..8].copy_from_slice(&frag_off.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 77, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 77, 0, 2]);
    f.extend_from_slice(&ip[..ip_len.max(20)]);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// (name, frame, returned action, rules hit, stat: 0 matched 1 stray 2 other 3 short)
type Case = (String, Vec<u8>, u32, Vec<usize>, usize);

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    frame(0x0800, 5, 17, 0, dport, payload)
}

#[test]
fn random_rules_and_packets_match_the_oracle() {
    if !require_root("random_rules_and_packets_match_the_oracle") {
        return;
    }
    for seed in 1..=3u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        // Up to 6 ports near each other, each with a port rule (maybe) and byte
        // rules at up to 4 offsets; duplicates skipped.
        let mut rule_list: Vec<CountRule> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let dport = 5000 + rng.below(6) as u16;
            let byte = if rng.below(5) == 0 {
                None
            } else {
                let off = [0u16, 1, 7, 200][rng.below(4) as usize];
                Some((off, rng.below(4) as u8))
            };
            let r = CountRule { dport, byte };
            if seen.insert(r) {
                rule_list.push(r);
            }
        }
        let action = if seed % 2 == 0 {
            Action::Pass
        } else {
            Action::Drop
        };
        let tables = rules::compile(&rule_list).unwrap();
        let mut c = Counter::load_unattached(&rule_list, action).unwrap();
        let mut want = vec![RuleCount::default(); rule_list.len()];
        let (mut stray, mut matched) = (0u64, 0u64);
        for _ in 0..2000 {
            let dport = 4999 + rng.below(8) as u16;
            let len = rng.below(260) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.below(4) as u8).collect();
            let f = udp(dport, &payload);
            let hits = rules::matching_rules(&tables, dport, &payload);
            let r = c.test_run(&f, 1).unwrap();
            for &i in &hits {
                want[i].packets += 1;
                want[i].bytes += f.len() as u64;
            }
            let expect = if hits.is_empty() {
                stray += 1;
                XDP_PASS
            } else {
                matched += 1;
                if action == Action::Drop {
                    XDP_DROP
                } else {
                    XDP_PASS
                }
            };
            assert_eq!(
                r.action, expect,
                "seed {seed} port {dport} payload {payload:?}"
            );
        }
        assert_eq!(c.read().unwrap(), want, "seed {seed}");
        let st = c.stats().unwrap();
        assert_eq!((st.stray.packets, st.matched.packets), (stray, matched));
        assert!(stray > 0 && matched > 0, "the draw exercised both paths");
    }
}

#[test]
fn every_frame_class_is_counted_where_the_spec_says() {
    if !require_root("every_frame_class_is_counted_where_the_spec_says") {
        return;
    }
    let rules = [
        CountRule {
            dport: 9000,
            byte: None,
        },
        CountRule {
            dport: 9000,
            byte: Some((3, 0x42)),
        },
    ];
    let mut c = Counter::load_unattached(&rules, Action::Drop).unwrap();
    let good = udp(9000, &[0, 0, 0, 0x42]);
    let mut cases: Vec<Case> = vec![
        (
            "udp with byte".into(),
            good.clone(),
            XDP_DROP,
            vec![0, 1],
            0,
        ),
        (
            "udp other byte".into(),
            udp(9000, &[0, 0, 0, 0x43]),
            XDP_DROP,
            vec![0],
            0,
        ),
        (
            "udp payload too short for byte 3".into(),
            udp(9000, &[0, 0, 0]),
            XDP_DROP,
            vec![0],
            0,
        ),
        (
            "udp other port".into(),
            udp(9001, &[0, 0, 0, 0x42]),
            XDP_PASS,
            vec![],
            1,
        ),
        (
            "ip options (ihl 6)".into(),
            frame(0x0800, 6, 17, 0, 9000, &[0, 0, 0, 0x42]),
            XDP_DROP,
            vec![0, 1],
            0,
        ),
        (
            "first fragment (MF set)".into(),
            frame(0x0800, 5, 17, 0x2000, 9000, &[0; 4]),
            XDP_DROP,
            vec![0],
            0,
        ),
        (
            "non-first fragment".into(),
            frame(0x0800, 5, 17, 0x0001, 9000, &[0; 4]),
            XDP_PASS,
            vec![],
            2,
        ),
        (
            "tcp".into(),
            frame(0x0800, 5, 6, 0, 9000, &[0; 4]),
            XDP_PASS,
            vec![],
            2,
        ),
        (
            "ipv6 ethertype".into(),
            frame(0x86dd, 5, 17, 0, 9000, &[0; 4]),
            XDP_PASS,
            vec![],
            2,
        ),
        (
            "vlan tagged".into(),
            frame(0x8100, 5, 17, 0, 9000, &[0; 4]),
            XDP_PASS,
            vec![],
            2,
        ),
        (
            "arp".into(),
            frame(0x0806, 5, 17, 0, 9000, &[0; 4]),
            XDP_PASS,
            vec![],
            2,
        ),
        (
            "ihl 4".into(),
            frame(0x0800, 4, 17, 0, 9000, &[0; 4]),
            XDP_PASS,
            vec![],
            3,
        ),
    ];
    let mut v6 = good.clone();
    v6[14] = 0x65; // IPv4 ethertype, version 6
    cases.push((
        "ip version 6 under ethertype ipv4".into(),
        v6,
        XDP_PASS,
        vec![],
        3,
    ));
    // Truncated at every length from the end of Ethernet to the end of UDP
    // (BPF_PROG_TEST_RUN needs at least the 14-byte Ethernet header).
    for len in 14..42 {
        cases.push((
            format!("cut at {len}"),
            good[..len].to_vec(),
            XDP_PASS,
            vec![],
            3,
        ));
    }
    let mut want = vec![RuleCount::default(); rules.len()];
    let mut want_stats = [RuleCount::default(); 4];
    for (name, f, action, hits, stat) in &cases {
        let r = c.test_run(f, 1).unwrap();
        assert_eq!(r.action, *action, "{name}");
        for &i in hits {
            want[i].packets += 1;
            want[i].bytes += f.len() as u64;
        }
        want_stats[*stat].packets += 1;
        want_stats[*stat].bytes += f.len() as u64;
        let st = c.stats().unwrap();
        assert_eq!(
            [st.matched, st.stray, st.other, st.short],
            want_stats,
            "stats after {name}"
        );
        assert_eq!(c.read().unwrap(), want, "rules after {name}");
    }
}

#[test]
fn histogram_cost_per_packet_is_reported() {
    if !require_root("histogram_cost_per_packet_is_reported") {
        return;
    }
    // The 256-rule byte histogram: the kernel's own timing of 200,000 runs, and
    // the counter must equal the repeat count exactly.
    let rules: Vec<CountRule> = (0..=255u8)
        .map(|v| CountRule {
            dport: 9000,
            byte: Some((0, v)),
        })
        .collect();
    let mut c = Counter::load_unattached(&rules, Action::Drop).unwrap();
    let f = udp(9000, &[0x37; 64]);
    let r = c.test_run(&f, 200_000).unwrap();
    assert_eq!(r.action, XDP_DROP);
    let got = c.read().unwrap();
    assert_eq!(got[0x37].packets, 200_000);
    assert_eq!(got[0x37].bytes, 200_000 * f.len() as u64);
    assert_eq!(got.iter().map(|x| x.packets).sum::<u64>(), 200_000);
    println!(
        "pfs_count, 256-rule histogram, 64 B payload: {} ns per packet in BPF_PROG_TEST_RUN",
        r.duration.as_nanos()
    );
}

#[test]
fn spec_vectors_hold_in_the_kernel() {
    if !require_root("spec_vectors_hold_in_the_kernel") {
        return;
    }
    let spec = include_str!("../../specs/xdp.md");
    let blocks = pfs_dataplane::specvec::blocks(spec, "xdp-vectors");
    assert_eq!(blocks.len(), 1);
    let rules = [
        CountRule {
            dport: 9000,
            byte: None,
        },
        CountRule {
            dport: 9000,
            byte: Some((3, 0x42)),
        },
    ];
    let mut n = 0;
    for line in blocks[0].lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(';').map(str::trim).collect();
        assert_eq!(f.len(), 5, "{line}");
        let frame = pfs_dataplane::specvec::unhex(f[1]).unwrap();
        let action: u32 = f[2].parse().unwrap();
        let hits: Vec<usize> = f[3]
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        // A fresh program per vector, so its counters hold this frame alone.
        let mut c = Counter::load_unattached(&rules, Action::Drop).unwrap();
        let r = c.test_run(&frame, 1).unwrap();
        assert_eq!(r.action, action, "{}", f[0]);
        let got = c.read().unwrap();
        for (i, g) in got.iter().enumerate() {
            let want = u64::from(hits.contains(&i));
            assert_eq!(g.packets, want, "{}: rule {i}", f[0]);
            assert_eq!(g.bytes, want * frame.len() as u64, "{}: rule {i}", f[0]);
        }
        let st = c.stats().unwrap();
        let which = match f[4] {
            "matched" => st.matched,
            "stray" => st.stray,
            "other" => st.other,
            "short" => st.short,
            s => panic!("unknown stat {s}"),
        };
        assert_eq!(which.packets, 1, "{}", f[0]);
        let total = st.matched.packets + st.stray.packets + st.other.packets + st.short.packets;
        assert_eq!(total, 1, "{}", f[0]);
        n += 1;
    }
    assert_eq!(n, 6);
}
