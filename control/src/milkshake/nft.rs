//! The nftables backend (`specs/milkshake.md` §8): the program's rules compiled
//! into one table of the `ip` family — a prerouting base chain at priority raw
//! (-300) dispatching on `udp dport` to one chain per port, in which byte rules
//! become a two-level tree on the payload byte's nibbles — with one named counter
//! per rule. Applied and read back with `nft -j` through the `nftables` crate.
//!
//! The pure half ([`ruleset`], [`table_name`], [`parse_table_name`],
//! [`parse_counters`], [`parse_tables`]) has no I/O; [`NftTable`] runs `nft`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nftables::batch::Batch;
use nftables::expr::{
    Expression, NamedExpression, Payload, PayloadBase, PayloadField, PayloadRaw, SetItem,
};
use nftables::schema::{Chain, Counter, NfListObject, Nftables, Rule as NftRule, Table};
use nftables::stmt::{self, JumpTarget, Match, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::MilkshakeError;
use super::program::Rule;

/// Prefix of every table Milkshake makes (`pfs lab down` removes `pfs*` tables).
pub const TABLE_PREFIX: &str = "pfs_milkshake_";

/// The base chain's name.
pub const BASE_CHAIN: &str = "pre";

/// Priority of the base chain: raw (-300), before conntrack.
pub const BASE_PRIORITY: i32 = -300;

/// Fewer byte values than this at one offset of a port are always one rule each.
pub const LINEAR_MAX: usize = 4;

/// How the byte rules of one port and offset are laid out (§8.2). Measured
/// against each other by `benches/benches/milkshake.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One rule per value, evaluated in turn (256 for `histogram`).
    Linear,
    /// Two levels on the byte's nibbles: at most 16 + 16 rules.
    Tree,
    /// An anonymous verdict map on the byte, jumping to a one-rule chain per
    /// value: one lookup (the default).
    Vmap,
}

impl Layout {
    /// The layout's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Linear => "linear",
            Layout::Tree => "nibble tree",
            Layout::Vmap => "vmap",
        }
    }
}

const FAMILY: NfFamily = NfFamily::IP;

/// A unique table name for this process: `pfs_milkshake_<pid>_<n>` (§8.1).
pub fn table_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{TABLE_PREFIX}{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pid a Milkshake table name carries, or `None` if it is not one.
pub fn parse_table_name(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TABLE_PREFIX)?;
    let (pid, n) = rest.split_once('_')?;
    if pid.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The name of rule `i`'s counter.
pub fn counter_name(i: usize) -> String {
    format!("r{i}")
}

fn port_chain(port: u16) -> String {
    format!("p{port}")
}

fn raw(byte_offset: u16, bit: u32, len: u32) -> Expression<'static> {
    // UDP header is 8 bytes: payload byte k is at bit 64 + 8k of the transport header.
    Expression::Named(NamedExpression::Payload(Payload::PayloadRaw(PayloadRaw {
        base: PayloadBase::TH,
        offset: 64 + 8 * u32::from(byte_offset) + bit,
        len,
    })))
}

fn eq(left: Expression<'static>, right: u32) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::Number(right),
        op: Operator::EQ,
    })
}

fn counter(i: usize) -> Statement<'static> {
    Statement::Counter(stmt::Counter::Named(Cow::Owned(counter_name(i))))
}

fn jump(target: String) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: Cow::Owned(target),
    })
}

fn dport() -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: "udp".into(),
            field: "dport".into(),
        },
    )))
}

/// Compiles rules into the nftables document that creates table `table` (§8.2):
/// every rule a packet matches counts it; packets to a rule's port are dropped.
pub fn ruleset(table: &str, rules: &[Rule]) -> Nftables<'static> {
    ruleset_with(table, rules, Layout::Vmap)
}

/// [`ruleset`] with the byte-rule layout given (offsets with fewer than
/// [`LINEAR_MAX`] values are linear in every layout).
pub fn ruleset_with(table: &str, rules: &[Rule], layout: Layout) -> Nftables<'static> {
    let t: Cow<'static, str> = Cow::Owned(table.to_string());
    let mut b = Batch::new();
    b.add(NfListObject::Table(Table {
        family: FAMILY,
        name: t.clone(),
        handle: None,
    }));
    for i in 0..rules.len() {
        b.add(NfListObject::Counter(Counter {
            family: FAMILY,
            table: t.clone(),
            name: Cow::Owned(counter_name(i)),
            handle: None,
            packets: Some(0),
            bytes: Some(0),
        }));
    }
    let chain = |name: String| Chain {
        family: FAMILY,
        table: t.clone(),
        name: Cow::Owned(name),
        ..Chain::default()
    };
    let rule = |chain: String, expr: Vec<Statement<'static>>| {
        NfListObject::Rule(NftRule {
            family: FAMILY,
            table: t.clone(),
            chain: Cow::Owned(chain),
            expr: Cow::Owned(expr),
            ..NftRule::default()
        })
    };
    b.add(NfListObject::Chain(Chain {
        _type: Some(NfChainType::Filter),
        hook: Some(NfHook::Prerouting),
        prio: Some(BASE_PRIORITY),
        policy: Some(NfChainPolicy::Accept),
        ..chain(BASE_CHAIN.to_string())
    }));
    // Rules grouped by port, keeping each rule's global index and order.
    let mut by_port: BTreeMap<u16, Vec<(usize, Rule)>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        by_port.entry(r.dport).or_default().push((i, *r));
    }
    for &port in by_port.keys() {
        b.add(NfListObject::Chain(chain(port_chain(port))));
    }
    // Dispatch: one rule for one port, else a verdict map on udp dport.
    let dispatch = if by_port.len() == 1 {
        let port = *by_port.keys().next().unwrap_or(&0);
        vec![eq(dport(), u32::from(port)), jump(port_chain(port))]
    } else {
        let data = by_port
            .keys()
            .map(|&p| {
                SetItem::Mapping(
                    Expression::Number(u32::from(p)),
                    Expression::Verdict(nftables::expr::Verdict::Jump(JumpTarget {
                        target: Cow::Owned(port_chain(p)),
                    })),
                )
            })
            .collect();
        vec![Statement::VerdictMap(VerdictMap {
            key: dport(),
            data: Expression::Named(NamedExpression::Set(data)),
        })]
    };
    b.add(rule(BASE_CHAIN.to_string(), dispatch));
    for (&port, prs) in &by_port {
        let pc = port_chain(port);
        // Port-only rules: count every packet of the port, no verdict.
        for &(i, r) in prs {
            if r.byte.is_none() {
                b.add(rule(pc.clone(), vec![counter(i)]));
            }
        }
        // Byte rules by offset, then value; rules with equal (offset, value)
        // share one nft rule with one counter statement each.
        let mut by_off: BTreeMap<u16, BTreeMap<u8, Vec<usize>>> = BTreeMap::new();
        for &(i, r) in prs {
            if let Some((off, v)) = r.byte {
                by_off.entry(off).or_default().entry(v).or_default().push(i);
            }
        }
        for (k, (off, vals)) in by_off.into_iter().enumerate() {
            let leaf = |m: Statement<'static>, idx: &[usize]| {
                let mut e = vec![m];
                e.extend(idx.iter().map(|&i| counter(i)));
                e
            };
            if vals.len() < LINEAR_MAX || layout == Layout::Linear {
                for (v, idx) in &vals {
                    b.add(rule(
                        pc.clone(),
                        leaf(eq(raw(off, 0, 8), u32::from(*v)), idx),
                    ));
                }
            } else if layout == Layout::Vmap {
                let mut data = Vec::new();
                for (v, idx) in vals {
                    let sub = format!("{pc}_{k}_v{v}");
                    b.add(NfListObject::Chain(chain(sub.clone())));
                    b.add(rule(sub.clone(), idx.iter().map(|&i| counter(i)).collect()));
                    data.push(SetItem::Mapping(
                        Expression::Number(u32::from(v)),
                        Expression::Verdict(nftables::expr::Verdict::Jump(JumpTarget {
                            target: Cow::Owned(sub),
                        })),
                    ));
                }
                b.add(rule(
                    pc.clone(),
                    vec![Statement::VerdictMap(VerdictMap {
                        key: raw(off, 0, 8),
                        data: Expression::Named(NamedExpression::Set(data)),
                    })],
                ));
            } else {
                let mut hi: BTreeMap<u8, Vec<(u8, Vec<usize>)>> = BTreeMap::new();
                for (v, idx) in vals {
                    hi.entry(v >> 4).or_default().push((v & 0x0f, idx));
                }
                for (h, los) in hi {
                    let sub = format!("{pc}_{k}_{h:x}");
                    b.add(NfListObject::Chain(chain(sub.clone())));
                    b.add(rule(
                        pc.clone(),
                        vec![eq(raw(off, 0, 4), u32::from(h)), jump(sub.clone())],
                    ));
                    for (lo, idx) in los {
                        b.add(rule(
                            sub.clone(),
                            leaf(eq(raw(off, 4, 4), u32::from(lo)), &idx),
                        ));
                    }
                }
            }
        }
        b.add(rule(pc.clone(), vec![Statement::Drop(None)]));
    }
    b.to_nftables()
}

/// The document that deletes table `table`.
pub fn delete_doc(table: &str) -> Nftables<'static> {
    let mut b = Batch::new();
    b.delete(NfListObject::Table(Table {
        family: FAMILY,
        name: Cow::Owned(table.to_string()),
        handle: None,
    }));
    b.to_nftables()
}

/// Reads `nft -j list table` output into one count per rule (§8.3). A missing or
/// duplicated counter is an error, never a zero.
pub fn parse_counters(json: &str, rules: usize) -> Result<Vec<u64>, MilkshakeError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| MilkshakeError::Nft {
        step: "reading counters",
        detail: format!("invalid JSON: {e}"),
    })?;
    let mut out: Vec<Option<u64>> = vec![None; rules];
    let objs = v["nftables"].as_array().cloned().unwrap_or_default();
    for o in &objs {
        let Some(c) = o.get("counter") else { continue };
        let (Some(name), Some(packets)) = (c["name"].as_str(), c["packets"].as_u64()) else {
            continue;
        };
        let Some(i) = name.strip_prefix('r').and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        if i < rules {
            if out[i].is_some() {
                return Err(MilkshakeError::Nft {
                    step: "reading counters",
                    detail: format!("counter {name} listed twice"),
                });
            }
            out[i] = Some(packets);
        }
    }
    out.iter()
        .enumerate()
        .map(|(i, c)| {
            c.ok_or_else(|| MilkshakeError::Nft {
                step: "reading counters",
                detail: format!("counter {} missing from the table", counter_name(i)),
            })
        })
        .collect()
}

/// A Milkshake table found in a namespace: name, owner pid, ports of its chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTable {
    /// Table name.
    pub name: String,
    /// The pid in its name.
    pub pid: u32,
    /// Ports it counts (from its `p<port>` chains), sorted.
    pub ports: Vec<u16>,
}

/// Milkshake tables (family `ip`) in `nft -j list ruleset` output.
pub fn parse_tables(json: &str) -> Result<Vec<FoundTable>, MilkshakeError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| MilkshakeError::Nft {
        step: "listing tables",
        detail: format!("invalid JSON: {e}"),
    })?;
    let mut found: BTreeMap<String, FoundTable> = BTreeMap::new();
    let objs = v["nftables"].as_array().cloned().unwrap_or_default();
    for o in &objs {
        if let Some(t) = o.get("table")
            && t["family"] == "ip"
            && let Some(name) = t["name"].as_str()
            && let Some(pid) = parse_table_name(name)
        {
            found.insert(
                name.to_string(),
                FoundTable {
                    name: name.to_string(),
                    pid,
                    ports: Vec::new(),
                },
            );
        }
    }
    for o in &objs {
        if let Some(c) = o.get("chain")
            && c["family"] == "ip"
            && let (Some(t), Some(name)) = (c["table"].as_str(), c["name"].as_str())
            && let Some(ft) = found.get_mut(t)
            && let Some(port) = name.strip_prefix('p').and_then(|p| p.parse::<u16>().ok())
        {
            ft.ports.push(port);
        }
    }
    let mut out: Vec<FoundTable> = found.into_values().collect();
    for t in &mut out {
        t.ports.sort_unstable();
    }
    Ok(out)
}

/// Environment variable naming the `nft` binary to use (default: found on `PATH`).
pub const NFT_ENV: &str = "PFS_NFT";

/// Finds `nft`: `$PFS_NFT` if set, else on `PATH` (and in `/usr/sbin`, `/sbin`).
pub fn find_nft() -> Result<PathBuf, MilkshakeError> {
    if let Some(p) = std::env::var_os(NFT_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(MilkshakeError::NftMissing(format!(
                "{NFT_ENV}={} is not an executable file",
                p.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    for d in dirs {
        let p = d.join("nft");
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err(MilkshakeError::NftMissing(
        "not on PATH, /usr/sbin or /sbin".into(),
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn nft_err(step: &'static str, e: nftables::helper::NftablesError) -> MilkshakeError {
    use nftables::helper::NftablesError as N;
    match e {
        N::NftExecution { inner, .. } if inner.kind() == std::io::ErrorKind::NotFound => {
            MilkshakeError::NftMissing(inner.to_string())
        }
        N::NftFailed { stdout, stderr, .. } => MilkshakeError::Nft {
            step,
            detail: format!("nft failed: {}{}", stderr.trim(), stdout.trim()),
        },
        other => MilkshakeError::Nft {
            step,
            detail: other.to_string(),
        },
    }
}

/// Whether process `pid` is alive (in our pid namespace).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs `nft` inside namespace `ns` (the calling thread enters it; `nft` inherits it).
struct Nft {
    ns: String,
    bin: PathBuf,
}

impl Nft {
    fn apply(&self, doc: &Nftables, step: &'static str) -> Result<(), MilkshakeError> {
        let _g = pfs_dataplane::netns::NetnsGuard::enter(&self.ns)?;
        nftables::helper::apply_ruleset_with_args(
            doc,
            Some(&self.bin),
            nftables::helper::DEFAULT_ARGS,
        )
        .map_err(|e| nft_err(step, e))
    }

    fn list(&self, args: &[&str], step: &'static str) -> Result<String, MilkshakeError> {
        let _g = pfs_dataplane::netns::NetnsGuard::enter(&self.ns)?;
        nftables::helper::get_current_ruleset_raw(Some(&self.bin), args)
            .map_err(|e| nft_err(step, e))
    }
}

/// Removes Milkshake tables in `ns` whose owner process is gone (a SIGKILLed
/// run, §8.4). Returns the names removed.
pub fn remove_stale(ns: &str) -> Result<Vec<String>, MilkshakeError> {
    let nft = Nft {
        ns: ns.to_string(),
        bin: find_nft()?,
    };
    remove_stale_with(&nft)
}

fn remove_stale_with(nft: &Nft) -> Result<Vec<String>, MilkshakeError> {
    let json = nft.list(&["list", "ruleset"], "listing tables")?;
    let mut removed = Vec::new();
    for t in parse_tables(&json)? {
        if !pid_alive(t.pid) {
            nft.apply(&delete_doc(&t.name), "removing a stale table")?;
            removed.push(t.name);
        }
    }
    Ok(removed)
}

/// Refuses `rules` if a live Milkshake table in `ns` counts any of their ports
/// (§8.4): both runs would count each other's packets (or, under XDP, steal them).
pub fn check_ports_free(ns: &str, rules: &[Rule]) -> Result<(), MilkshakeError> {
    let nft = Nft {
        ns: ns.to_string(),
        bin: find_nft()?,
    };
    check_collision(&nft, rules)
}

fn check_collision(nft: &Nft, rules: &[Rule]) -> Result<(), MilkshakeError> {
    let lo = rules.iter().map(|r| r.dport).min().unwrap_or(0);
    let hi = rules.iter().map(|r| r.dport).max().unwrap_or(0);
    let json = nft.list(&["list", "ruleset"], "listing tables")?;
    for t in parse_tables(&json)? {
        if let (Some(&olo), Some(&ohi)) = (t.ports.first(), t.ports.last())
            && t.ports.iter().any(|p| (lo..=hi).contains(p))
        {
            return Err(MilkshakeError::PortCollision {
                lo,
                hi,
                table: t.name,
                olo,
                ohi,
                ns: nft.ns.clone(),
            });
        }
    }
    Ok(())
}

/// Milkshake tables present in namespace `ns`.
pub fn tables_in(ns: &str) -> Result<Vec<FoundTable>, MilkshakeError> {
    let nft = Nft {
        ns: ns.to_string(),
        bin: find_nft()?,
    };
    parse_tables(&nft.list(&["list", "ruleset"], "listing tables")?)
}

/// An installed table; deleted on drop (§8.4).
#[derive(Debug)]
pub struct NftTable {
    ns: String,
    bin: PathBuf,
    table: String,
    rules: usize,
    removed: bool,
}

impl NftTable {
    /// Removes stale tables in `ns`, refuses ports that a live run's table uses,
    /// then installs `rules` in a new table.
    pub fn install(ns: &str, rules: &[Rule]) -> Result<NftTable, MilkshakeError> {
        NftTable::install_with(ns, rules, Layout::Vmap)
    }

    /// [`NftTable::install`] with the layout of [`ruleset_with`] (benchmarks
    /// compare the layouts).
    pub fn install_with(
        ns: &str,
        rules: &[Rule],
        layout: Layout,
    ) -> Result<NftTable, MilkshakeError> {
        let nft = Nft {
            ns: ns.to_string(),
            bin: find_nft()?,
        };
        remove_stale_with(&nft)?;
        check_collision(&nft, rules)?;
        let table = table_name();
        let me = NftTable {
            ns: ns.to_string(),
            bin: nft.bin.clone(),
            table: table.clone(),
            rules: rules.len(),
            removed: false,
        };
        // `me` is built before applying so that a partial failure is cleaned up
        // by its Drop (nft applies a document atomically, so none is expected).
        nft.apply(&ruleset_with(&table, rules, layout), "installing rules")?;
        Ok(me)
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// One count per rule, exactly as `nft -j list table` reports.
    pub fn read(&self) -> Result<Vec<u64>, MilkshakeError> {
        let nft = self.nft();
        let json = nft.list(&["list", "table", "ip", &self.table], "reading counters")?;
        parse_counters(&json, self.rules)
    }

    /// Deletes the table now, reporting failure.
    pub fn remove(mut self) -> Result<(), MilkshakeError> {
        self.removed = true;
        self.nft()
            .apply(&delete_doc(&self.table), "removing the table")
    }

    fn nft(&self) -> Nft {
        Nft {
            ns: self.ns.clone(),
            bin: self.bin.clone(),
        }
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        if !self.removed {
            // Best effort on an error path; a table left behind is found by the
            // next run (`remove_stale`) once this process is gone.
            let _ = self
                .nft()
                .apply(&delete_doc(&self.table), "removing the table");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milkshake::program::{DEFAULT_PORT, Program, ProgramKind};

    fn json(doc: &Nftables) -> serde_json::Value {
        serde_json::to_value(doc).expect("serialize")
    }

    #[test]
    fn table_names_round_trip() {
        let a = table_name();
        let b = table_name();
        assert_ne!(a, b);
        assert_eq!(parse_table_name(&a), Some(std::process::id()));
        assert_eq!(parse_table_name("pfs_milkshake_12_0"), Some(12));
        assert_eq!(parse_table_name("pfs_milkshake_12"), None);
        assert_eq!(parse_table_name("pfs_milkshake_x_1"), None);
        assert_eq!(parse_table_name("filter"), None);
    }

    #[test]
    fn histogram_compiles_to_a_vmap() {
        let p = Program::new(ProgramKind::Histogram, None, DEFAULT_PORT, vec![1]).expect("p");
        let v = json(&ruleset("pfs_milkshake_1_0", &p.rules()));
        let objs = v["nftables"].as_array().expect("array");
        let count = |k: &str| objs.iter().filter(|o| o["add"].get(k).is_some()).count();
        assert_eq!(count("counter"), 257);
        // base + port chain + 256 leaf chains
        assert_eq!(count("chain"), 258);
        // dispatch + total + vmap + 256 leaves + drop
        assert_eq!(count("rule"), 260);
        let text = v.to_string();
        assert!(
            text.contains(r#"{"vmap":{"data":{"set":[[0,{"jump":{"target":"p51999_0_v0"}}]"#),
            "{text}"
        );
        assert!(text.contains(r#""key":{"payload":{"base":"th","len":8,"offset":64}}"#));
    }

    #[test]
    fn histogram_compiles_to_a_nibble_tree() {
        let p = Program::new(ProgramKind::Histogram, None, DEFAULT_PORT, vec![1]).expect("p");
        let v = json(&ruleset_with("pfs_milkshake_1_0", &p.rules(), Layout::Tree));
        let objs = v["nftables"].as_array().expect("array");
        let count = |k: &str| objs.iter().filter(|o| o["add"].get(k).is_some()).count();
        assert_eq!(count("table"), 1);
        assert_eq!(count("counter"), 257);
        // base + port chain + 16 nibble chains
        assert_eq!(count("chain"), 18);
        // dispatch + total + 16 jumps + 256 leaves + drop
        assert_eq!(count("rule"), 275);
        let text = v.to_string();
        assert!(
            text.contains(r#"{"base":"th","len":4,"offset":64}"#),
            "{text}"
        );
        assert!(text.contains(r#"{"counter":"r256"}"#));
        assert!(text.contains(r#""prio":-300"#));
    }

    #[test]
    fn word_dispatches_by_vmap() {
        let p = Program::new(ProgramKind::Word, None, 40000, b"abc".to_vec()).expect("p");
        let v = json(&ruleset("t", &p.rules())).to_string();
        assert!(v.contains(r#""vmap""#), "{v}");
        assert!(v.contains(r#"[40002,{"jump":{"target":"p40002"}}]"#), "{v}");
    }

    #[test]
    fn short_runs_stay_linear() {
        let p = Program::new(ProgramKind::CountEq, Some(65), DEFAULT_PORT, vec![1]).expect("p");
        let v = json(&ruleset("t", &p.rules())).to_string();
        assert!(
            v.contains(r#"{"base":"th","len":8,"offset":64}},"op":"==","right":65}"#),
            "{v}"
        );
        assert!(!v.contains(r#""len":4"#));
    }

    #[test]
    fn linear_layout_has_one_rule_per_value() {
        let p = Program::new(ProgramKind::Histogram, None, 2000, vec![1]).expect("p");
        let v = json(&ruleset_with("t", &p.rules(), Layout::Linear)).to_string();
        assert_eq!(v.matches(r#""len":8"#).count(), 256);
        assert!(!v.contains("vmap"));
    }

    #[test]
    fn counters_parse_exactly() {
        let out = r#"{"nftables":[{"metainfo":{}},{"table":{"family":"ip","name":"t"}},
            {"counter":{"family":"ip","name":"r1","table":"t","packets":7,"bytes":1}},
            {"counter":{"family":"ip","name":"r0","table":"t","packets":3,"bytes":1}}]}"#;
        assert_eq!(parse_counters(out, 2).expect("ok"), vec![3, 7]);
        assert!(matches!(
            parse_counters(out, 3),
            Err(MilkshakeError::Nft { .. })
        ));
        assert!(parse_counters("nope", 1).is_err());
        let dup = r#"{"nftables":[{"counter":{"name":"r0","packets":1}},{"counter":{"name":"r0","packets":1}}]}"#;
        assert!(parse_counters(dup, 1).is_err());
    }

    proptest::proptest! {
        /// Whatever `nft` prints, reading it never panics.
        #[test]
        fn readers_never_panic(text in ".{0,300}", n in 0usize..300) {
            let _ = parse_counters(&text, n);
            let _ = parse_tables(&text);
            let wrapped = format!(r#"{{"nftables":[{{"counter":{text}}},{{"table":{text}}},{{"chain":{text}}}]}}"#);
            let _ = parse_counters(&wrapped, n);
            let _ = parse_tables(&wrapped);
        }
    }

    #[test]
    fn tables_are_found_with_their_ports() {
        let out = r#"{"nftables":[{"table":{"family":"ip","name":"pfs_milkshake_5_0"}},
            {"table":{"family":"ip","name":"filter"}},
            {"chain":{"family":"ip","table":"pfs_milkshake_5_0","name":"p51999"}},
            {"chain":{"family":"ip","table":"pfs_milkshake_5_0","name":"p51999_0_a"}},
            {"chain":{"family":"ip","table":"pfs_milkshake_5_0","name":"pre"}},
            {"chain":{"family":"ip","table":"filter","name":"p1"}}]}"#;
        let t = parse_tables(out).expect("ok");
        assert_eq!(
            t,
            vec![FoundTable {
                name: "pfs_milkshake_5_0".into(),
                pid: 5,
                ports: vec![51999]
            }]
        );
    }
}
