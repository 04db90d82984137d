//! The netns lab: two network namespaces joined by a veth pair, made and removed
//! with iproute2. Normative: `specs/lab.md`.
//!
//! `Lab::up` is idempotent, cleans up after a failure half-way, and replaces a lab
//! left half-made by a killed run. `Lab::down` detaches XDP programs, deletes
//! `pfs*` nftables tables, deletes the veth pair and both namespaces.

pub mod cmd;
pub mod ip;
pub mod state;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use self::ip::Iface;
use self::state::{LabState, PHASE_CREATING, PHASE_UP};

/// Address of namespace a's veth end.
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Address of namespace b's veth end.
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Prefix length of both addresses.
pub const PREFIX_LEN: u8 = 24;
/// MTU of both veth ends.
pub const MTU: u32 = 1500;
/// Name used when none is given.
pub const DEFAULT_NAME: &str = "lab";
/// Longest lab name.
pub const MAX_NAME_LEN: usize = 8;
/// Test hook (spec §5.4): after the named step of `up`, sleep this long.
pub const STALL_ENV: &str = "PFS_LAB_STALL_AFTER";

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The name does not match `[a-z0-9]{1,8}`.
    #[error("lab name {name:?} is invalid: it must match [a-z0-9]{{1,8}}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The process lacks capabilities.
    #[error("the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); this process lacks {missing}")]
    Privileges {
        /// The missing capabilities.
        missing: String,
    },
    /// No usable lab of that name made by pfs.
    #[error("lab {name:?} does not exist: {reason}")]
    NotFound {
        /// Lab name.
        name: String,
        /// Why (no state file, half-made, ...).
        reason: String,
    },
    /// Namespaces with the lab's names exist but pfs did not make them.
    #[error(
        "namespace {ns} exists but has no state file {}: it was not made by pfs, so pfs leaves it alone (remove it with `ip netns del {ns}`)",
        state.display()
    )]
    NotMadeByPfs {
        /// The namespace.
        ns: String,
        /// The state file that is missing.
        state: PathBuf,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// Output or a file could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was parsed.
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// The state file or lock could not be read or written.
    #[error("{}: {step}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// `up` failed half-way; what it had made was removed.
    #[error(
        "lab {name:?}: up failed at step {step}: {source}{}",
        cleanup_note(cleanup)
    )]
    UpFailed {
        /// Lab name.
        name: String,
        /// The step that failed.
        step: &'static str,
        /// Why.
        source: Box<LabError>,
        /// `None` when cleanup succeeded, else why it did not.
        cleanup: Option<Box<LabError>>,
    },
    /// After `down`, something is still there.
    #[error("lab {name:?}: after down, {what} still exists")]
    Leftover {
        /// Lab name.
        name: String,
        /// What is left.
        what: String,
    },
}

fn cleanup_note(c: &Option<Box<LabError>>) -> String {
    match c {
        None => " (cleaned up what it had made)".to_string(),
        Some(e) => format!(" (and cleanup failed too: {e})"),
    }
}

impl LabError {
    /// Whether the error is the user's bad input (CLI exit status 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            LabError::InvalidName { .. }
                | LabError::NotFound { .. }
                | LabError::NotMadeByPfs { .. }
        )
    }
}

/// Checks a lab name against `[a-z0-9]{1,8}`.
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// The names of lab `name`'s objects (spec §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `pfs-NAME-a`.
    pub ns_a: String,
    /// `pfs-NAME-b`.
    pub ns_b: String,
    /// `pfsNAMEa`.
    pub veth_a: String,
    /// `pfsNAMEb`.
    pub veth_b: String,
}

impl Names {
    /// Names for a (validated) lab name.
    pub fn of(name: &str) -> Names {
        Names {
            ns_a: format!("pfs-{name}-a"),
            ns_b: format!("pfs-{name}-b"),
            veth_a: format!("pfs{name}a"),
            veth_b: format!("pfs{name}b"),
        }
    }
}

/// A lab made by pfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    name: String,
    names: Names,
    mtu: u32,
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum UpOutcome {
    /// Made a new lab.
    Created,
    /// The lab was already up and intact; nothing changed.
    AlreadyUp,
    /// A half-made or damaged lab was removed and made again; why.
    Replaced(String),
}

/// One namespace in a status report.
#[derive(Debug, Clone, Serialize)]
pub struct NsStatus {
    /// Namespace name.
    pub name: String,
    /// Whether `/run/netns/NAME` exists.
    pub exists: bool,
    /// Its interfaces (empty when it does not exist).
    pub interfaces: Vec<Iface>,
}

/// `status` of a lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    /// Lab name.
    pub name: String,
    /// `up`, `creating` (an `up` is running or was killed) or `damaged`.
    pub state: String,
    /// The state file.
    pub state_file: PathBuf,
    /// Process that ran `up`.
    pub pid: u32,
    /// Whether that process is still alive.
    pub pid_alive: bool,
    /// When `up` started.
    pub created_unix: u64,
    /// MTU.
    pub mtu: u32,
    /// Both namespaces.
    pub namespaces: Vec<NsStatus>,
    /// What is wrong, when `state` is `damaged`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Lab {
    fn from_name(name: &str) -> Lab {
        Lab {
            name: name.to_string(),
            names: Names::of(name),
            mtu: MTU,
        }
    }

    /// Makes lab `name` (idempotent: an intact lab is returned as is).
    pub fn up(name: &str) -> Result<Lab, LabError> {
        Lab::up_with_outcome(name).map(|(lab, _)| lab)
    }

    /// [`Lab::up`], also saying what it did.
    pub fn up_with_outcome(name: &str) -> Result<(Lab, UpOutcome), LabError> {
        validate_name(name)?;
        state::check_privileges()?;
        let _lock = state::lock(name)?;
        let lab = Lab::from_name(name);
        let mut outcome = UpOutcome::Created;
        match state::read(name)? {
            Some(st) => {
                let problems = if st.phase == PHASE_UP {
                    lab.problems()
                } else {
                    vec![format!(
                        "a previous up (pid {}{}) did not finish",
                        st.pid,
                        if state::pid_alive(st.pid) {
                            ""
                        } else {
                            ", dead"
                        }
                    )]
                };
                if problems.is_empty() {
                    return Ok((lab, UpOutcome::AlreadyUp));
                }
                lab.teardown()?;
                outcome = UpOutcome::Replaced(problems.join("; "));
            }
            None => lab.refuse_foreign()?,
        }
        lab.create()?;
        Ok((lab, outcome))
    }

    /// Opens lab `name`: it must exist, be made by pfs and be complete.
    pub fn open(name: &str) -> Result<Lab, LabError> {
        validate_name(name)?;
        let not_found = |reason: String| LabError::NotFound {
            name: name.to_string(),
            reason,
        };
        let Some(st) = state::read(name)? else {
            let lab = Lab::from_name(name);
            return Err(not_found(match lab.refuse_foreign() {
                Err(foreign) => foreign.to_string(),
                Ok(()) => format!(
                    "no state file {} (run `pfs lab up --name {name}`)",
                    state::state_path(name).display()
                ),
            }));
        };
        if st.phase != PHASE_UP {
            return Err(not_found(format!(
                "it is half-made (phase {}); run `pfs lab up --name {name}` again",
                st.phase
            )));
        }
        let lab = Lab::from_name(name);
        for ns in [&lab.names.ns_a, &lab.names.ns_b] {
            if !pfs_dataplane::netns::exists(ns) {
                return Err(not_found(format!("namespace {ns} is missing")));
            }
        }
        Ok(lab)
    }

    /// Removes lab `name`: XDP programs, `pfs*` nftables tables, the veth pair,
    /// both namespaces and the state file. A half-made lab is removed too.
    pub fn down(name: &str) -> Result<(), LabError> {
        validate_name(name)?;
        state::check_privileges()?;
        let _lock = state::lock(name)?;
        let lab = Lab::from_name(name);
        if state::read(name)?.is_none() {
            lab.refuse_foreign()?;
            return Err(LabError::NotFound {
                name: name.to_string(),
                reason: format!("no state file {}", state::state_path(name).display()),
            });
        }
        lab.teardown()
    }

    /// Status of lab `name` (which must have a state file).
    pub fn status(name: &str) -> Result<LabStatus, LabError> {
        validate_name(name)?;
        let Some(st) = state::read(name)? else {
            let lab = Lab::from_name(name);
            lab.refuse_foreign()?;
            return Err(LabError::NotFound {
                name: name.to_string(),
                reason: format!("no state file {}", state::state_path(name).display()),
            });
        };
        // Listing a namespace's interfaces (`ip -n`) enters it.
        state::check_privileges()?;
        let lab = Lab::from_name(name);
        let mut namespaces = Vec::new();
        for ns in [&lab.names.ns_a, &lab.names.ns_b] {
            let exists = pfs_dataplane::netns::exists(ns);
            let interfaces = if exists {
                ip::ns_ifaces(ns)?
            } else {
                Vec::new()
            };
            namespaces.push(NsStatus {
                name: ns.clone(),
                exists,
                interfaces,
            });
        }
        let (state, problems) = if st.phase != PHASE_UP {
            (st.phase.clone(), Vec::new())
        } else {
            let p = lab.problems();
            if p.is_empty() {
                ("up".to_string(), p)
            } else {
                ("damaged".to_string(), p)
            }
        };
        Ok(LabStatus {
            name: name.to_string(),
            state,
            state_file: state::state_path(name),
            pid: st.pid,
            pid_alive: state::pid_alive(st.pid),
            created_unix: st.created_unix,
            mtu: st.mtu,
            namespaces,
            problems,
        })
    }

    /// Lab name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Namespace a (`pfs-NAME-a`).
    pub fn ns_a(&self) -> &str {
        &self.names.ns_a
    }
    /// Namespace b (`pfs-NAME-b`).
    pub fn ns_b(&self) -> &str {
        &self.names.ns_b
    }
    /// Veth end in namespace a (`pfsNAMEa`).
    pub fn veth_a(&self) -> &str {
        &self.names.veth_a
    }
    /// Veth end in namespace b (`pfsNAMEb`).
    pub fn veth_b(&self) -> &str {
        &self.names.veth_b
    }
    /// Address of a's veth end.
    pub fn addr_a(&self) -> Ipv4Addr {
        ADDR_A
    }
    /// Address of b's veth end.
    pub fn addr_b(&self) -> Ipv4Addr {
        ADDR_B
    }
    /// MTU of both veth ends.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Errors when a namespace with this lab's names exists (without a state file).
    fn refuse_foreign(&self) -> Result<(), LabError> {
        for ns in [&self.names.ns_a, &self.names.ns_b] {
            if pfs_dataplane::netns::exists(ns) {
                return Err(LabError::NotMadeByPfs {
                    ns: ns.clone(),
                    state: state::state_path(&self.name),
                });
            }
        }
        Ok(())
    }

    /// What differs from the spec'd topology (empty when intact).
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ends = [
            (&self.names.ns_a, &self.names.veth_a, ADDR_A),
            (&self.names.ns_b, &self.names.veth_b, ADDR_B),
        ];
        for (ns, veth, addr) in ends {
            if !pfs_dataplane::netns::exists(ns) {
                out.push(format!("namespace {ns} is missing"));
                continue;
            }
            let ifaces = match ip::ns_ifaces(ns) {
                Ok(i) => i,
                Err(e) => {
                    out.push(format!("cannot list {ns}: {e}"));
                    continue;
                }
            };
            match ifaces.iter().find(|i| i.ifname == "lo") {
                Some(lo) if lo.admin_up => {}
                _ => out.push(format!("lo is not up in {ns}")),
            }
            match ifaces.iter().find(|i| &i.ifname == veth) {
                None => out.push(format!("{veth} is missing from {ns}")),
                Some(i) => {
                    if !i.admin_up {
                        out.push(format!("{veth} is down"));
                    }
                    if i.mtu != self.mtu {
                        out.push(format!("{veth} has MTU {} (want {})", i.mtu, self.mtu));
                    }
                    let want = addr.to_string();
                    if !i
                        .addrs
                        .iter()
                        .any(|a| a.local == want && a.prefixlen == PREFIX_LEN)
                    {
                        out.push(format!("{veth} lacks {want}/{PREFIX_LEN}"));
                    }
                }
            }
        }
        out
    }

    fn state(&self, phase: &str) -> LabState {
        LabState {
            name: self.name.clone(),
            namespaces: [self.names.ns_a.clone(), self.names.ns_b.clone()],
            veth: [self.names.veth_a.clone(), self.names.veth_b.clone()],
            addrs: [ADDR_A.to_string(), ADDR_B.to_string()],
            mtu: self.mtu,
            pid: std::process::id(),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            phase: phase.to_string(),
        }
    }

    /// Creates everything; on failure removes what it made.
    fn create(&self) -> Result<(), LabError> {
        // The state file comes first, so that anything a killed run leaves behind
        // is marked as pfs's (phase `creating`) and is replaced by the next up.
        let mut st = self.state(PHASE_CREATING);
        state::write(&st)?;
        stall_if_asked("state");
        if let Err((step, source)) = self.create_steps() {
            let cleanup = self.teardown().err().map(Box::new);
            return Err(LabError::UpFailed {
                name: self.name.clone(),
                step,
                source: Box::new(source),
                cleanup,
            });
        }
        st.phase = PHASE_UP.to_string();
        state::write(&st)
    }

    fn create_steps(&self) -> Result<(), (&'static str, LabError)> {
        let n = &self.names;
        let mtu = self.mtu.to_string();
        let step =
            |name: &'static str, args: &[&str]| ip::ip(args).map(|_| ()).map_err(|e| (name, e));
        step("netns a", &["netns", "add", &n.ns_a])?;
        step("netns b", &["netns", "add", &n.ns_b])?;
        stall_if_asked("netns");
        step(
            "veth",
            &[
                "link", "add", &n.veth_a, "netns", &n.ns_a, "mtu", &mtu, "type", "veth", "peer",
                "name", &n.veth_b, "netns", &n.ns_b, "mtu", &mtu,
            ],
        )?;
        stall_if_asked("veth");
        for (ns, veth, addr) in [(&n.ns_a, &n.veth_a, ADDR_A), (&n.ns_b, &n.veth_b, ADDR_B)] {
            let cidr = format!("{addr}/{PREFIX_LEN}");
            step("loopback up", &["-n", ns, "link", "set", "lo", "up"])?;
            step("address", &["-n", ns, "addr", "add", &cidr, "dev", veth])?;
            step("veth up", &["-n", ns, "link", "set", veth, "up"])?;
        }
        let problems = self.problems();
        if !problems.is_empty() {
            return Err((
                "verify",
                LabError::Parse {
                    what: "the new lab".into(),
                    detail: problems.join("; "),
                },
            ));
        }
        Ok(())
    }

    /// Removes everything of this lab that exists, then the state file.
    fn teardown(&self) -> Result<(), LabError> {
        let n = &self.names;
        for (ns, veth) in [(&n.ns_a, &n.veth_a), (&n.ns_b, &n.veth_b)] {
            if !pfs_dataplane::netns::exists(ns) {
                continue;
            }
            let ifaces = ip::ns_ifaces(ns).unwrap_or_default();
            if ifaces.iter().any(|i| &i.ifname == veth) {
                // Programs attached through netlink are removed here; programs
                // attached through a bpf_link refuse this and go with the device.
                for mode in ["xdp", "xdpgeneric"] {
                    let _ = ip::ip(&["-n", ns, "link", "set", "dev", veth, mode, "off"]);
                }
            }
            let _ = remove_pfs_nft_tables(ns);
            if ifaces.iter().any(|i| &i.ifname == veth) {
                // Deleting one end deletes the pair, even if a process still holds
                // the namespace open; this also detaches any XDP link.
                if let Err(e) = ip::ip(&["-n", ns, "link", "del", veth]) {
                    // The peer end may have gone with the other namespace just now.
                    if ip::ns_ifaces(ns)
                        .unwrap_or_default()
                        .iter()
                        .any(|i| &i.ifname == veth)
                    {
                        return Err(e);
                    }
                }
            }
        }
        for ns in [&n.ns_a, &n.ns_b] {
            if pfs_dataplane::netns::exists(ns) {
                ip::ip(&["netns", "del", ns])?;
            }
        }
        for ns in [&n.ns_a, &n.ns_b] {
            if pfs_dataplane::netns::exists(ns) {
                return Err(LabError::Leftover {
                    name: self.name.clone(),
                    what: format!("namespace {ns}"),
                });
            }
        }
        state::remove(&self.name)
    }
}

/// Deletes every nftables table whose name starts with `pfs` in namespace `ns`
/// and returns those it deleted (best effort: without `nft` installed there is
/// nothing to delete).
pub fn remove_pfs_nft_tables(ns: &str) -> Vec<ip::NftTable> {
    let Ok(json) = ip::ip(&["netns", "exec", ns, "nft", "-j", "list", "tables"]) else {
        return Vec::new();
    };
    let mut deleted = Vec::new();
    for t in ip::parse_nft_tables(&json).unwrap_or_default() {
        if t.name.starts_with("pfs")
            && ip::ip(&[
                "netns", "exec", ns, "nft", "delete", "table", &t.family, &t.name,
            ])
            .is_ok()
        {
            deleted.push(t);
        }
    }
    deleted
}

/// Test hook (spec §5.4): `PFS_LAB_STALL_AFTER=STEP` makes `up` print
/// `pfs-lab-stall: STEP` to stderr and sleep 30 s after STEP, so a test can kill
/// it half-way at a known point.
fn stall_if_asked(step: &str) {
    if std::env::var(STALL_ENV).is_ok_and(|v| v == step) {
        eprintln!("pfs-lab-stall: {step}");
        std::thread::sleep(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["lab", "a", "x1y2z3w4", "0"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "Lab", "toolong99", "a-b", "a b", "ä", "../x"] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.is_usage());
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let n = Names::of("t1");
        assert_eq!(
            n,
            Names {
                ns_a: "pfs-t1-a".into(),
                ns_b: "pfs-t1-b".into(),
                veth_a: "pfst1a".into(),
                veth_b: "pfst1b".into()
            }
        );
        // Interface names must fit IFNAMSIZ-1 = 15 bytes at the longest lab name.
        assert!(Names::of("abcdefgh").veth_a.len() <= 15);
    }

    #[test]
    fn open_of_a_lab_that_does_not_exist_is_not_found() {
        let e = Lab::open("pfsnone9").unwrap_err();
        assert!(matches!(e, LabError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("pfsnone9"));
        assert!(matches!(
            Lab::open("BAD").unwrap_err(),
            LabError::InvalidName { .. }
        ));
    }
}
