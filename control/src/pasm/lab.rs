//! Which lab a run may touch: `--netns NAME` names a lab made by `pfs lab up`
//! (`crate::lab`, recognised by its state file `/run/pfs/labs/NAME.json`). The
//! host namespace and namespaces without such a state file are refused.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::PasmError;
use super::program::Side;

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

impl From<&crate::lab::Lab> for LabRef {
    fn from(l: &crate::lab::Lab) -> LabRef {
        LabRef {
            name: l.name().to_string(),
            ns_a: l.ns_a().to_string(),
            ns_b: l.ns_b().to_string(),
            veth_a: l.veth_a().to_string(),
            veth_b: l.veth_b().to_string(),
            addr_a: l.addr_a(),
            addr_b: l.addr_b(),
            mtu: l.mtu(),
        }
    }
}

impl LabRef {
    /// Opens lab `name` with [`crate::lab::Lab::open`]: it must have been made by
    /// `pfs lab up` (state file present, namespaces present). Anything else — the
    /// host namespace, a namespace pfs did not make, a half-made lab — is refused.
    pub fn open(name: &str) -> Result<LabRef, PasmError> {
        let lab = crate::lab::Lab::open(name).map_err(|e| PasmError::Lab {
            name: name.to_string(),
            msg: format!("{e} (real backends run only in a lab made by `pfs lab up --name NAME`)"),
        })?;
        Ok(LabRef::from(&lab))
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

    #[test]
    fn refuses_what_pfs_did_not_make() {
        // Names that are not labs (bad names; no state file) are refused.
        for n in ["", "pfs-x-a", "UPPER", "nolab0zz"] {
            let e = LabRef::open(n).unwrap_err();
            assert!(matches!(e, PasmError::Lab { .. }), "{n}: {e}");
            assert!(e.to_string().contains("pfs lab up"), "{e}");
        }
    }

    #[test]
    fn sides_and_ifaces() {
        let l = LabRef {
            name: "t".into(),
            ns_a: "pfs-t-a".into(),
            ns_b: "pfs-t-b".into(),
            veth_a: "pfsta".into(),
            veth_b: "pfstb".into(),
            addr_a: Ipv4Addr::new(10, 77, 0, 1),
            addr_b: Ipv4Addr::new(10, 77, 0, 2),
            mtu: 1500,
        };
        assert_eq!(l.ns(Side::B), "pfs-t-b");
        assert_eq!(l.ns_of_iface("pfsta"), Some("pfs-t-a"));
        assert_eq!(l.ns_of_iface("eth0"), None);
        assert!(l.owns(Ipv4Addr::new(10, 77, 0, 2)));
        assert!(!l.owns(Ipv4Addr::new(10, 77, 0, 3)));
    }
}
