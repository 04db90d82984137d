//! The lab state file `/run/pfs/labs/NAME.json` (spec `specs/lab.md` §4), the
//! per-lab lock file beside it, and the privilege check (§6).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;

/// Where state files live.
pub const STATE_DIR: &str = "/run/pfs/labs";

/// `phase` while `up` is still creating the lab.
pub const PHASE_CREATING: &str = "creating";
/// `phase` once `up` completed.
pub const PHASE_UP: &str = "up";

/// Contents of the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name.
    pub name: String,
    /// `[pfs-NAME-a, pfs-NAME-b]`.
    pub namespaces: [String; 2],
    /// `[pfsNAMEa, pfsNAMEb]`.
    pub veth: [String; 2],
    /// `[10.77.0.1, 10.77.0.2]`.
    pub addrs: [String; 2],
    /// MTU of both veth ends.
    pub mtu: u32,
    /// Process that ran `up`.
    pub pid: u32,
    /// When `up` started (seconds since the Unix epoch).
    pub created_unix: u64,
    /// `creating` until `up` completed, then `up`.
    #[serde(default = "default_phase")]
    pub phase: String,
}

fn default_phase() -> String {
    PHASE_UP.to_string()
}

/// Path of the state file of lab `name`.
pub fn state_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.json"))
}

/// Path of the lock file of lab `name`.
pub fn lock_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.lock"))
}

fn io_err(path: &Path, step: &'static str) -> impl FnOnce(std::io::Error) -> LabError {
    let path = path.to_path_buf();
    move |source| LabError::State { path, step, source }
}

/// Reads the state file of `name`; `Ok(None)` when there is none.
pub fn read(name: &str) -> Result<Option<LabState>, LabError> {
    let path = state_path(name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path, "read")(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LabError::Parse {
            what: path.display().to_string(),
            detail: e.to_string(),
        })
}

/// Writes the state file atomically (temporary file, fsync, rename).
pub fn write(state: &LabState) -> Result<(), LabError> {
    let path = state_path(&state.name);
    let dir = Path::new(STATE_DIR);
    fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
    let tmp = dir.join(format!(".{}.json.tmp", state.name));
    let json = serde_json::to_string_pretty(state).map_err(|e| LabError::Parse {
        what: "state".into(),
        detail: e.to_string(),
    })?;
    let mut f = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
    f.write_all(json.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp, "write"))?;
    fs::rename(&tmp, &path).map_err(io_err(&path, "rename"))
}

/// Removes the state file of `name` (absent is fine).
pub fn remove(name: &str) -> Result<(), LabError> {
    let path = state_path(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&path, "remove")(e)),
    }
}

/// An exclusive lock on lab `name`, held until dropped. The kernel releases it
/// when the holder dies, so a killed `up` never blocks the next one.
#[derive(Debug)]
pub struct LabLock {
    _file: File,
}

/// Takes the lock of lab `name`, waiting for another `up`/`down` of the same lab.
pub fn lock(name: &str) -> Result<LabLock, LabError> {
    let dir = Path::new(STATE_DIR);
    fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
    let path = lock_path(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path, "open lock"))?;
    file.lock().map_err(io_err(&path, "lock"))?;
    Ok(LabLock { _file: file })
}

/// Whether process `pid` is alive (exists and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3, after the parenthesised command name (which may contain spaces).
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Capabilities the lab needs, as (bit, name).
pub const NEEDED_CAPS: [(u32, &str); 2] = [(21, "CAP_SYS_ADMIN"), (12, "CAP_NET_ADMIN")];

/// The needed capabilities missing from the effective set `cap_eff`.
pub fn missing_caps(cap_eff: u64) -> Vec<&'static str> {
    NEEDED_CAPS
        .iter()
        .filter(|(bit, _)| cap_eff & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Parses `CapEff:` out of `/proc/self/status` text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Refuses (naming what is missing) unless this process has CAP_SYS_ADMIN and
/// CAP_NET_ADMIN (root has both).
pub fn check_privileges() -> Result<(), LabError> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = parse_cap_eff(&status).unwrap_or(0);
    let missing = missing_caps(eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::Privileges {
            missing: missing.join(" and "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert!(missing_caps(0x1fffeffffff).is_empty());
        assert_eq!(missing_caps(0), vec!["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]);
        assert_eq!(missing_caps(1 << 21), vec!["CAP_NET_ADMIN"]);
        assert_eq!(missing_caps(1 << 12), vec!["CAP_SYS_ADMIN"]);
        let st = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        assert_eq!(parse_cap_eff(st), Some(0x1fffeffffff));
        assert_eq!(parse_cap_eff("nothing"), None);
    }

    #[test]
    fn own_pid_is_alive_and_absurd_pid_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
    }

    #[test]
    fn state_json_round_trips_and_old_files_default_to_up() {
        let s = LabState {
            name: "x1".into(),
            namespaces: ["pfs-x1-a".into(), "pfs-x1-b".into()],
            veth: ["pfsx1a".into(), "pfsx1b".into()],
            addrs: ["10.77.0.1".into(), "10.77.0.2".into()],
            mtu: 1500,
            pid: 42,
            created_unix: 7,
            phase: PHASE_CREATING.into(),
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<LabState>(&j).unwrap(), s);
        let no_phase = r#"{"name":"x1","namespaces":["pfs-x1-a","pfs-x1-b"],"veth":["pfsx1a","pfsx1b"],"addrs":["10.77.0.1","10.77.0.2"],"mtu":1500,"pid":42,"created_unix":7}"#;
        assert_eq!(
            serde_json::from_str::<LabState>(no_phase).unwrap().phase,
            PHASE_UP
        );
    }
}
