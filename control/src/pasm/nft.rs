//! The `fw.counter` backend: nftables inside a lab namespace, driven with
//! `ip netns exec NS nft` (rules written as nft script, counters read back
//! with `nft -j`). Every table this creates is named `pfs_pasm_<pid>_<n>` and is
//! deleted when the [`NftSession`] drops, on success, error and Ctrl-C alike.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::PasmError;
use super::program::ByteMatch;

static NEXT_TABLE: AtomicU64 = AtomicU64::new(0);

/// The nftables object name of counter `name`: prefixed, so that a counter
/// named like an nft keyword (`all`, `counter`) still parses.
pub fn object_name(name: &str) -> String {
    format!("pasm_{name}")
}

/// The nft text for one counter rule: UDP destination port, optionally one
/// payload byte (`@th,BITS,8`, bit offset 64 = first UDP payload byte).
pub fn rule_text(table: &str, name: &str, port: u16, byte: Option<ByteMatch>) -> String {
    let mut r = format!("add rule inet {table} count udp dport {port}");
    if let Some(b) = byte {
        let bits = 64 + 8 * u32::from(b.offset);
        r.push_str(&format!(" @th,{bits},8 0x{:02x}", b.value));
    }
    r.push_str(&format!(" counter name \"{}\"", object_name(name)));
    r
}

/// Runs `nft` in namespace `ns` with `args`, feeding `stdin`; returns stdout.
fn nft(ns: &str, args: &[&str], stdin: &str) -> Result<String, PasmError> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PasmError::Nft(format!("cannot run `ip netns exec {ns} nft`: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes())
            .map_err(|e| PasmError::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| PasmError::Nft(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        return Err(PasmError::Nft(format!(
            "`ip netns exec {ns} nft {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Packets and bytes of a named counter, from `nft -j list counter` output.
pub fn parse_counter(json: &str, name: &str) -> Result<(u64, u64), PasmError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| PasmError::Nft(format!("nft -j output is not JSON: {e}")))?;
    let items = v["nftables"]
        .as_array()
        .ok_or_else(|| PasmError::Nft("nft -j output has no \"nftables\" array".into()))?;
    for it in items {
        let c = &it["counter"];
        if c["name"] == name {
            let p = c["packets"].as_u64();
            let b = c["bytes"].as_u64();
            if let (Some(p), Some(b)) = (p, b) {
                return Ok((p, b));
            }
        }
    }
    Err(PasmError::Nft(format!(
        "counter {name:?} not in nft -j output"
    )))
}

/// The tables one run made, per namespace; removed on drop.
#[derive(Debug, Default)]
pub struct NftSession {
    tables: Vec<(String, String)>,
}

impl NftSession {
    /// A session that has made nothing yet.
    pub fn new() -> NftSession {
        NftSession::default()
    }

    /// The table of namespace `ns`, created (with its prerouting chain) on first use.
    pub fn table(&mut self, ns: &str) -> Result<String, PasmError> {
        if let Some((_, t)) = self.tables.iter().find(|(n, _)| n == ns) {
            return Ok(t.clone());
        }
        let t = format!(
            "pfs_pasm_{}_{}",
            std::process::id(),
            NEXT_TABLE.fetch_add(1, Ordering::Relaxed)
        );
        let script = format!(
            "add table inet {t}\nadd chain inet {t} count {{ type filter hook prerouting priority -150; policy accept; }}\n"
        );
        nft(ns, &["-f", "-"], &script)?;
        self.tables.push((ns.to_string(), t.clone()));
        Ok(t)
    }

    /// Adds named counter `name` and its rule in namespace `ns`; returns the table.
    pub fn add_counter(
        &mut self,
        ns: &str,
        name: &str,
        port: u16,
        byte: Option<ByteMatch>,
    ) -> Result<String, PasmError> {
        let t = self.table(ns)?;
        let script = format!(
            "add counter inet {t} {}\n{}\n",
            object_name(name),
            rule_text(&t, name, port, byte)
        );
        nft(ns, &["-f", "-"], &script)?;
        Ok(t)
    }

    /// Reads (packets, bytes) of counter `name` in `table` of namespace `ns`.
    pub fn read(ns: &str, table: &str, name: &str) -> Result<(u64, u64), PasmError> {
        let obj = object_name(name);
        let out = nft(ns, &["-j", "list", "counter", "inet", table, &obj], "")?;
        parse_counter(&out, &obj)
    }

    /// Deletes every table made; returns the errors (also done on drop).
    pub fn close(&mut self) -> Vec<PasmError> {
        let mut errs = Vec::new();
        for (ns, t) in self.tables.drain(..) {
            if let Err(e) = nft(&ns, &["delete", "table", "inet", &t], "") {
                errs.push(e);
            }
        }
        errs
    }
}

impl Drop for NftSession {
    fn drop(&mut self) {
        for e in self.close() {
            eprintln!("pfs: warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_with_and_without_byte() {
        assert_eq!(
            rule_text("t", "rx", 9999, None),
            "add rule inet t count udp dport 9999 counter name \"pasm_rx\""
        );
        assert_eq!(
            rule_text(
                "t",
                "rx",
                1,
                Some(ByteMatch {
                    offset: 2,
                    value: 0x48
                })
            ),
            "add rule inet t count udp dport 1 @th,80,8 0x48 counter name \"pasm_rx\""
        );
    }

    #[test]
    fn parses_nft_json() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"counter": {"family": "inet", "name": "rx", "table": "t", "handle": 2, "packets": 10000, "bytes": 50000}}]}"#;
        assert_eq!(parse_counter(j, "rx").unwrap(), (10000, 50000));
        assert!(parse_counter(j, "tx").is_err());
        assert!(parse_counter("nope", "rx").is_err());
        assert!(parse_counter("{}", "rx").is_err());
    }
}
