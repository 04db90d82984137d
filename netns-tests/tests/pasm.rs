//! P-ASM's real backends in a lab: `fw.counter` (nftables) read back by
//! `barrier.wait`, UDP to the lab's address, raw frames over AF_PACKET, cleanup
//! of the nftables tables on success and failure, and refusal of namespaces pfs
//! did not make.

use std::process::Command;

use pfs_control::lab::Lab;
use pfs_control::pasm::lab::LabRef;
use pfs_control::pasm::runner::{Outcome, RunOptions, RunStatus, run};
use pfs_control::pasm::{Gates, PasmError, Program};
use pfs_netns_tests::{LabDown, require_root, unique_lab_name};

fn tables(ns: &str) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn opts(dir: &std::path::Path, lab: &LabRef) -> RunOptions {
    RunOptions {
        plans_dir: dir.join("plans"),
        logs_dir: dir.join("logs"),
        gates: Gates {
            lab: Some(lab.clone()),
            ..Gates::default()
        },
        ..RunOptions::new()
    }
}

/// Internet checksum of an IPv4 header.
fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + UDP frame (UDP checksum 0, allowed over IPv4).
fn udp_frame(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn mac_of(ns: &str, ifname: &str) -> [u8; 6] {
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{ifname}/address"),
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[test]
fn fw_counter_and_barrier_wait_in_a_lab() {
    if !require_root("fw_counter_and_barrier_wait_in_a_lab") {
        return;
    }
    let name = unique_lab_name('p');
    let _down = LabDown(name.clone());
    let lab = Lab::up(&name).unwrap();
    let lref = LabRef::open(&name).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // UDP from side a to side b: 2,000 packets whose first payload byte is 'H'
    // (counted) and 300 starting with 'x' (not counted by `rx`, counted by `all`).
    let frame = udp_frame(
        mac_of(lab.ns_b(), lab.veth_b()),
        lab.addr_a().octets(),
        lab.addr_b().octets(),
        7777,
        b"Hraw frame",
    );
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let src = format!(
        r#"[
 {{"op":"fw.counter","name":"rx","port":9999,"byte":{{"offset":0,"value":72}}}},
 {{"op":"fw.counter","name":"all","port":9999}},
 {{"op":"fw.counter","name":"raw","port":7777,"side":"b","byte":{{"offset":1,"value":114}}}},
 {{"op":"fw.counter","name":"lo","port":5555,"side":"a"}},
 {{"op":"pkt.send","target":"udp://{b}:9999","payload":"Hello","meta":{{"count":2000,"pps":20000}}}},
 {{"op":"pkt.send","target":"udp://{b}:9999","payload":"xyz","meta":{{"count":300,"pps":20000}}}},
 {{"op":"pkt.send","target":"raw://{va}","payload":"{hex}","encoding":"hex","meta":{{"count":50,"pps":5000}}}},
 {{"op":"pkt.send","target":"udp://127.0.0.1:5555","payload":"lo","meta":{{"count":7}}}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"rx","cmp":"==","value":2000}},"timeout_ms":5000}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"all","cmp":"==","value":2300}},"timeout_ms":5000}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"raw","cmp":"==","value":50}},"timeout_ms":5000}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"lo","cmp":"==","value":7}},"timeout_ms":5000}}
]"#,
        b = lab.addr_b(),
        va = lab.veth_a()
    );
    let p = Program::parse(src.as_bytes()).unwrap();
    let rep = run(&p, src.as_bytes(), &opts(dir.path(), &lref)).unwrap();
    let reasons: Vec<_> = rep
        .planfile
        .steps
        .iter()
        .map(|s| (s.outcome, s.reason.clone()))
        .collect();
    assert_eq!(rep.planfile.status, RunStatus::Ok, "{reasons:?}");
    assert_eq!(rep.planfile.steps[6].packets_sent, 50);
    assert_eq!(rep.planfile.steps[6].bytes_sent, 50 * frame.len() as u64);
    let log = std::fs::read_to_string(&rep.event_log_path).unwrap();
    assert!(log.contains("\"observed\":2000"), "{log}");
    // Tables are gone after the run.
    for ns in [lab.ns_a(), lab.ns_b()] {
        assert!(!tables(ns).contains("pfs_pasm_"), "{ns}: {}", tables(ns));
    }

    // A wait that cannot hold fails at its timeout; the tables still go.
    let src = format!(
        r#"[
 {{"op":"fw.counter","name":"rx","port":9999}},
 {{"op":"pkt.send","target":"udp://{b}:9999","payload":"Hello","meta":{{"count":10}}}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"rx","cmp":">=","value":11}},"timeout_ms":300}},
 {{"op":"log.info","message":"never"}}
]"#,
        b = lab.addr_b()
    );
    let p = Program::parse(src.as_bytes()).unwrap();
    let rep = run(&p, src.as_bytes(), &opts(dir.path(), &lref)).unwrap();
    let o: Vec<_> = rep.planfile.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(
        o,
        [Outcome::Ok, Outcome::Ok, Outcome::Error, Outcome::NotRun]
    );
    let r = rep.planfile.steps[2].reason.clone().unwrap();
    assert!(r.contains("timed out") && r.contains("observed 10"), "{r}");
    assert!(!tables(lab.ns_b()).contains("pfs_pasm_"));

    // Lab gates: addresses outside the lab and veths of other labs stay refused.
    let src = r#"[{"op":"pkt.send","target":"udp://10.77.0.9:9","payload":"x"},
                  {"op":"pkt.send","target":"raw://lo","payload":"0000000000000000000000000000","encoding":"hex"}]"#;
    let mut o = opts(dir.path(), &lref);
    o.keep_going = true;
    let rep = run(&Program::parse(src.as_bytes()).unwrap(), src.as_bytes(), &o).unwrap();
    let o: Vec<_> = rep.planfile.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(o, [Outcome::Refused, Outcome::Refused]);
}

#[test]
fn netns_that_pfs_did_not_make_is_refused() {
    if !require_root("netns_that_pfs_did_not_make_is_refused") {
        return;
    }
    // A namespace with a lab's name but no state file.
    let name = unique_lab_name('q');
    let ns = format!("pfs-{name}-a");
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let _del = Del(ns.clone());
    for n in [name.as_str(), ns.as_str(), "host"] {
        match LabRef::open(n) {
            Err(PasmError::Lab { msg, .. }) => assert!(msg.contains("pfs lab up"), "{n}: {msg}"),
            other => panic!("{n}: {other:?}"),
        }
    }
}

#[test]
fn xdp_counter_and_barrier_wait_in_a_lab() {
    if !require_root("xdp_counter_and_barrier_wait_in_a_lab") {
        return;
    }
    let name = unique_lab_name('x');
    let _down = LabDown(name.clone());
    let lab = Lab::up(&name).unwrap();
    let lref = LabRef::open(&name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // XDP counts 'H'-first packets on side b and passes them on, so the nftables
    // counter behind it sees them too; 'x'-first packets match neither.
    let src = format!(
        r#"[
 {{"op":"xdp.counter","name":"xrx","port":9999,"side":"b","byte":{{"offset":0,"value":72}}}},
 {{"op":"fw.counter","name":"frx","port":9999,"side":"b","byte":{{"offset":0,"value":72}}}},
 {{"op":"pkt.send","target":"udp://{b}:9999","payload":"Hello","meta":{{"count":3000,"pps":30000}}}},
 {{"op":"pkt.send","target":"udp://{b}:9999","payload":"xyz","meta":{{"count":100}}}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"xrx","cmp":"==","value":3000}},"timeout_ms":5000}},
 {{"op":"barrier.wait","predicate":{{"kind":"counter","name":"frx","cmp":"==","value":3000}},"timeout_ms":5000}}
]"#,
        b = lab.addr_b()
    );
    let p = Program::parse(src.as_bytes()).unwrap();
    let rep = run(&p, src.as_bytes(), &opts(dir.path(), &lref)).unwrap();
    let reasons: Vec<_> = rep
        .planfile
        .steps
        .iter()
        .map(|s| (s.outcome, s.reason.clone()))
        .collect();
    assert_eq!(rep.planfile.status, RunStatus::Ok, "{reasons:?}");
    assert_eq!(rep.planfile.steps[0].backend, "xdp");
    // The program is detached after the run: no XDP on the veth.
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.ns_b(),
            "ip",
            "-d",
            "link",
            "show",
            "dev",
            lab.veth_b(),
        ])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&o.stdout);
    assert!(!link.contains("prog/xdp"), "{link}");
}
