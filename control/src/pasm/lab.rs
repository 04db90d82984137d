//! Which lab a run may touch: `--netns NAME` names a lab made by `pfs lab up`,
//! recognised by its state file `/run/pfs/labs/NAME.json` (CONTRACTS: lab). The
//! host namespace and namespaces without such a state file are refused.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::PasmError;
use super::program::Side;

/// Where `pfs lab up` records the labs it made.
pub const LABS_DIR: &str = "/run/pfs/labs";

/// A lab made by pfs, as a run sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabRef {
    /// Lab name (`[a-z0-9]{1,8}`).
    pub name: String,
    /// Namespace of side a (`pfs-NAME-a`).
    pub ns_a: String,
    /// Namespace of side b (`pfs-NAME-b`).
    pub ns_b: String,
    /// veth in side a.
    pub veth_a: String,
    /// veth in side b.
    pub veth_b: String,
    /// Address of side a.
    pub addr_a: Ipv4Addr,
    /// Address of side b.
    pub addr_b: Ipv4Addr,
    /// MTU of the veth pair.
    pub mtu: u32,
}

#[derive(Debug, serde::Deserialize)]
struct StateFile {
    name: String,
    namespaces: Vec<String>,
    veth: Vec<String>,
    addrs: Vec<Ipv4Addr>,
    mtu: u32,
}

fn name_ok(name: &str) -> bool {
    (1..=8).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl LabRef {
    /// Opens lab `name` from the state files in [`LABS_DIR`], checking that its
    /// namespaces exist.
    pub fn open(name: &str) -> Result<LabRef, PasmError> {
        LabRef::open_in(
            Path::new(LABS_DIR),
            name,
            Path::new(pfs_dataplane::netns::NETNS_DIR),
        )
    }

    /// [`LabRef::open`] with the state-file and namespace directories given.
    pub fn open_in(labs: &Path, name: &str, netns_dir: &Path) -> Result<LabRef, PasmError> {
        let refuse = |msg: String| PasmError::Lab {
            name: name.to_string(),
            msg,
        };
        if !name_ok(name) {
            return Err(refuse(
                "a lab name is [a-z0-9]{1,8} as given to `pfs lab up --name NAME`; the host \
                 namespace and namespaces pfs did not make are refused"
                    .into(),
            ));
        }
        let path: PathBuf = labs.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            refuse(format!(
                "no lab state file {} ({e}): not a lab made by `pfs lab up --name {name}`",
                path.display()
            ))
        })?;
        let st: StateFile = serde_json::from_str(&text)
            .map_err(|e| refuse(format!("state file {} is malformed: {e}", path.display())))?;
        let want_ns = [format!("pfs-{name}-a"), format!("pfs-{name}-b")];
        let want_veth = [format!("pfs{name}a"), format!("pfs{name}b")];
        if st.name != name
            || st.namespaces != want_ns
            || st.veth != want_veth
            || st.addrs.len() != 2
        {
            return Err(refuse(format!(
                "state file {} does not describe lab {name} (expected namespaces {want_ns:?}, \
                 veths {want_veth:?}, two addresses)",
                path.display()
            )));
        }
        for ns in &want_ns {
            if !netns_dir.join(ns).exists() {
                return Err(refuse(format!(
                    "namespace {ns} does not exist (is the lab down? `pfs lab up --name {name}`)"
                )));
            }
        }
        let [ns_a, ns_b] = want_ns;
        let [veth_a, veth_b] = want_veth;
        Ok(LabRef {
            name: name.to_string(),
            ns_a,
            ns_b,
            veth_a,
            veth_b,
            addr_a: st.addrs[0],
            addr_b: st.addrs[1],
            mtu: st.mtu,
        })
    }

    /// Namespace of a side.
    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::A => &self.ns_a,
            Side::B => &self.ns_b,
        }
    }

    /// Namespace holding interface `iface`, if it is one of the lab's veths.
    pub fn ns_of_iface(&self, iface: &str) -> Option<&str> {
        if iface == self.veth_a {
            Some(&self.ns_a)
        } else if iface == self.veth_b {
            Some(&self.ns_b)
        } else {
            None
        }
    }

    /// Whether `ip` is one of the lab's addresses.
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        ip == self.addr_a || ip == self.addr_b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_lab(dir: &Path, name: &str) {
        let st = serde_json::json!({"name":name,"namespaces":[format!("pfs-{name}-a"),format!("pfs-{name}-b")],
            "veth":[format!("pfs{name}a"),format!("pfs{name}b")],"addrs":["10.77.0.1","10.77.0.2"],
            "mtu":1500,"pid":1,"created_unix":0});
        std::fs::write(dir.join(format!("{name}.json")), st.to_string()).unwrap();
    }

    #[test]
    fn opens_a_recorded_lab_and_refuses_others() {
        let labs = tempfile::tempdir().unwrap();
        let ns = tempfile::tempdir().unwrap();
        write_lab(labs.path(), "t1");
        // Namespaces missing: refused.
        let e = LabRef::open_in(labs.path(), "t1", ns.path()).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        std::fs::write(ns.path().join("pfs-t1-a"), "").unwrap();
        std::fs::write(ns.path().join("pfs-t1-b"), "").unwrap();
        let lab = LabRef::open_in(labs.path(), "t1", ns.path()).unwrap();
        assert_eq!(lab.ns(Side::B), "pfs-t1-b");
        assert_eq!(lab.ns_of_iface("pfst1a"), Some("pfs-t1-a"));
        assert!(lab.owns(Ipv4Addr::new(10, 77, 0, 2)));
        // A namespace pfs did not make (no state file), and the host namespace.
        std::fs::write(ns.path().join("other"), "").unwrap();
        for n in ["other", "host", "pfs-t1-a", ""] {
            let e = LabRef::open_in(labs.path(), n, ns.path()).unwrap_err();
            assert!(matches!(e, PasmError::Lab { .. }), "{n}: {e}");
        }
    }
}
