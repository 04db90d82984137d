//! Measures the loader: `load_time` parses the kernel BTF and creates count.o's
//! maps three times; `load_time IFNAME` also attaches `pfs_count` with a 256-rule
//! byte histogram to IFNAME (in the current namespace, native mode) three times.
//! Run it in release mode, as root, e.g.
//! `ip netns exec pfs-lab-b target/release/examples/load_time pfslabb`.

use pfs_ebpf::{Action, CountRule, Counter, ModeRequest};

fn main() {
    let ifname = std::env::args().nth(1);
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let btf = aya::Btf::from_sys_fs();
        let btf_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = std::time::Instant::now();
        let obj = aya::Ebpf::load(pfs_ebpf::COUNT_OBJ);
        println!(
            "kernel BTF parse {btf_ms:.1} ms ({}), Ebpf::load(count.o) {:.1} ms ({})",
            if btf.is_ok() { "ok" } else { "failed" },
            t.elapsed().as_secs_f64() * 1e3,
            if obj.is_ok() { "ok" } else { "failed" },
        );
        let Some(ifname) = &ifname else { continue };
        let rules: Vec<CountRule> = (0..=255u8)
            .map(|v| CountRule {
                dport: 9000,
                byte: Some((0, v)),
            })
            .collect();
        let t = std::time::Instant::now();
        match Counter::attach(ifname, ModeRequest::Native, &rules, Action::Drop) {
            Ok(c) => {
                let tm = c.timings();
                println!(
                    "Counter::attach({ifname}, 256 rules, {}) {:.1} ms: load {:.1}, fill {:.1}, attach {:.1}",
                    c.mode(),
                    t.elapsed().as_secs_f64() * 1e3,
                    tm.load.as_secs_f64() * 1e3,
                    tm.fill.as_secs_f64() * 1e3,
                    tm.attach.as_secs_f64() * 1e3
                );
            }
            Err(e) => println!("Counter::attach({ifname}): {e}"),
        }
    }
}
