//! Every command the lab runs (`ip`, `nft`) goes through [`run`], which checks the
//! exit status and puts stderr into the error. Parsing of `ip -j` output is pure.

use std::process::Command;

use serde::{Deserialize, Serialize};

use super::LabError;

/// Runs `prog args...`, returning stdout on success and an error naming the
/// command, its exit status and its stderr otherwise.
pub fn run(prog: &str, args: &[&str]) -> Result<String, LabError> {
    let line = || format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            command: line(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: line(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    run("ip", args)
}

/// One address of an interface, from `ip -j addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    /// `inet` or `inet6`.
    pub family: String,
    /// The address.
    pub local: String,
    /// Prefix length.
    pub prefixlen: u8,
}

/// An XDP attachment reported by `ip -j link` / `ip -j addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpInfo {
    /// iproute2's mode number (1 native/driver, 2 generic/skb, 3 offload, 4 multi).
    pub mode: u32,
    /// Program id, when one program is attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
}

/// One interface of a namespace, from `ip -j addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    /// Interface name.
    pub ifname: String,
    /// Interface index inside its namespace.
    pub ifindex: u32,
    /// MTU.
    pub mtu: u32,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, ...).
    pub operstate: String,
    /// Administratively up (`UP` in flags).
    pub admin_up: bool,
    /// Addresses.
    pub addrs: Vec<Addr>,
    /// XDP program attached, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp: Option<XdpInfo>,
}

#[derive(Debug, Deserialize)]
struct RawIface {
    ifname: String,
    ifindex: u32,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    operstate: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
    #[serde(default)]
    xdp: Option<RawXdp>,
}

#[derive(Debug, Deserialize)]
struct RawAddr {
    #[serde(default)]
    family: String,
    #[serde(default)]
    local: String,
    #[serde(default)]
    prefixlen: u8,
}

#[derive(Debug, Deserialize)]
struct RawXdp {
    mode: u32,
    #[serde(default)]
    prog: Option<RawProg>,
}

#[derive(Debug, Deserialize)]
struct RawProg {
    id: u32,
}

/// Parses the JSON printed by `ip -j addr` (or `ip -j link`, which has no
/// `addr_info`). `what` names the source for the error.
pub fn parse_addr_json(json: &str, what: &str) -> Result<Vec<Iface>, LabError> {
    let raw: Vec<RawIface> = serde_json::from_str(json).map_err(|e| LabError::Parse {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    Ok(raw
        .into_iter()
        .map(|r| Iface {
            admin_up: r.flags.iter().any(|f| f == "UP"),
            ifname: r.ifname,
            ifindex: r.ifindex,
            mtu: r.mtu,
            operstate: r.operstate,
            addrs: r
                .addr_info
                .into_iter()
                .map(|a| Addr {
                    family: a.family,
                    local: a.local,
                    prefixlen: a.prefixlen,
                })
                .collect(),
            xdp: r.xdp.map(|x| XdpInfo {
                mode: x.mode,
                prog_id: x.prog.map(|p| p.id),
            }),
        })
        .collect())
}

/// The interfaces of namespace `ns` with their addresses and XDP attachments.
pub fn ns_ifaces(ns: &str) -> Result<Vec<Iface>, LabError> {
    let addr = ip(&["-j", "-n", ns, "addr", "show"])?;
    let mut ifaces = parse_addr_json(&addr, &format!("ip -j -n {ns} addr"))?;
    // `ip addr` omits the XDP attachment on some iproute2 versions; `ip link` has it.
    let link = ip(&["-j", "-n", ns, "link", "show"])?;
    let links = parse_addr_json(&link, &format!("ip -j -n {ns} link"))?;
    for i in &mut ifaces {
        if i.xdp.is_none()
            && let Some(l) = links.iter().find(|l| l.ifindex == i.ifindex)
        {
            i.xdp = l.xdp.clone();
        }
    }
    Ok(ifaces)
}

/// A table listed by `nft -j list tables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftTable {
    /// Family (`ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`).
    pub family: String,
    /// Name.
    pub name: String,
}

/// Parses `nft -j list tables`.
pub fn parse_nft_tables(json: &str) -> Result<Vec<NftTable>, LabError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| LabError::Parse {
        what: "nft -j list tables".into(),
        detail: e.to_string(),
    })?;
    let mut out = Vec::new();
    if let Some(items) = v.get("nftables").and_then(|x| x.as_array()) {
        for it in items {
            if let Some(t) = it.get("table") {
                let family = t.get("family").and_then(|x| x.as_str());
                let name = t.get("name").and_then(|x| x.as_str());
                if let (Some(family), Some(name)) = (family, name) {
                    out.push(NftTable {
                        family: family.to_string(),
                        name: name.to_string(),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"link_index":2,"ifname":"pfsproba","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"4a:76:45:2d:b3:3c","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"xdp":{"mode":2,"prog":{"id":77,"name":"pfs_count","tag":"0011223344556677","jited":1}},"addr_info":[{"family":"inet","local":"10.77.0.1","prefixlen":24,"scope":"global","label":"pfsproba","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#;

    #[test]
    fn parses_ip_addr_json() {
        let v = parse_addr_json(ADDR, "test").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].ifname, "lo");
        assert!(v[0].admin_up);
        assert_eq!(v[0].addrs[0].local, "127.0.0.1");
        assert_eq!(v[1].ifname, "pfsproba");
        assert_eq!(v[1].mtu, 1500);
        assert_eq!(
            v[1].addrs,
            vec![Addr {
                family: "inet".into(),
                local: "10.77.0.1".into(),
                prefixlen: 24
            }]
        );
        assert_eq!(
            v[1].xdp,
            Some(XdpInfo {
                mode: 2,
                prog_id: Some(77)
            })
        );
        assert!(v[0].xdp.is_none());
    }

    #[test]
    fn bad_json_is_an_error_naming_the_source() {
        let e = parse_addr_json("{not json", "ip -j -n x addr").unwrap_err();
        assert!(e.to_string().contains("ip -j -n x addr"), "{e}");
        assert!(parse_addr_json("[]", "x").unwrap().is_empty());
    }

    #[test]
    fn parses_nft_tables() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "pfs_fw", "handle": 1}}, {"table": {"family": "ip", "name": "other", "handle": 2}}]}"#;
        let t = parse_nft_tables(j).unwrap();
        assert_eq!(
            t,
            vec![
                NftTable {
                    family: "inet".into(),
                    name: "pfs_fw".into()
                },
                NftTable {
                    family: "ip".into(),
                    name: "other".into()
                }
            ]
        );
        assert!(parse_nft_tables("nope").is_err());
    }

    #[test]
    fn run_reports_status_and_stderr() {
        let e = run("sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("oops") && s.contains("sh -c"), "{s}");
        let e = run("/nonexistent/pfs-no-such-tool", &[]).unwrap_err();
        assert!(e.to_string().contains("pfs-no-such-tool"));
        assert_eq!(run("sh", &["-c", "printf hi"]).unwrap(), "hi");
    }
}
