//! `pfs lab`: up/down leave nothing behind, up is idempotent, and a lab left by a
//! SIGKILLed `up` is cleaned by the next `up` or `down`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pfs_control::lab::{self, Lab, LabError, UpOutcome};
use pfs_netns_tests::{require_root, unique_lab_name};

/// Env var that turns [`zz_child_process_entry`] into a `Lab::up` of that name.
const CHILD_ENV: &str = "PFS_NETNS_TEST_CHILD_LAB";

/// Removes the lab on every exit path.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = Lab::down(&self.0);
        // The name is unique to this run, so its lock file can go too.
        let _ = std::fs::remove_file(lab::state::lock_path(&self.0));
    }
}

fn link_exists_anywhere(lab: &str) -> Vec<String> {
    let n = lab::Names::of(lab);
    let mut found = Vec::new();
    for veth in [&n.veth_a, &n.veth_b] {
        // In our own namespace (it must never have been there).
        if Command::new("ip")
            .args(["link", "show", "dev", veth])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            found.push(format!("link {veth} in the test's namespace"));
        }
    }
    for ns in [&n.ns_a, &n.ns_b] {
        if pfs_dataplane::netns::exists(ns) {
            found.push(format!("namespace {ns}"));
        }
    }
    let listed = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for ns in [&n.ns_a, &n.ns_b] {
        if listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns.as_str()))
        {
            found.push(format!("{ns} in `ip netns list`"));
        }
    }
    if lab::state::state_path(lab).exists() {
        found.push("state file".into());
    }
    found
}

fn assert_intact(name: &str) {
    let st = Lab::status(name).unwrap();
    assert_eq!(st.state, "up", "{st:?}");
    assert!(st.problems.is_empty(), "{:?}", st.problems);
    let n = lab::Names::of(name);
    for (ns, veth, addr) in [
        (&n.ns_a, &n.veth_a, "10.77.0.1"),
        (&n.ns_b, &n.veth_b, "10.77.0.2"),
    ] {
        let nss = st.namespaces.iter().find(|x| &x.name == ns).unwrap();
        assert!(nss.exists);
        let v = nss.interfaces.iter().find(|i| &i.ifname == veth).unwrap();
        assert_eq!(v.mtu, 1500);
        assert!(v.admin_up);
        assert!(v.addrs.iter().any(|a| a.local == addr && a.prefixlen == 24));
        let lo = nss.interfaces.iter().find(|i| i.ifname == "lo").unwrap();
        assert!(lo.admin_up);
    }
}

#[test]
fn lab_up_is_idempotent_and_down_leaves_nothing() {
    if !require_root("lab_up_is_idempotent_and_down_leaves_nothing") {
        return;
    }
    let name = unique_lab_name('l');
    let _down = Down(name.clone());
    let (lab, outcome) = Lab::up_with_outcome(&name).unwrap();
    assert_eq!(outcome, UpOutcome::Created);
    assert_eq!(lab.ns_a(), format!("pfs-{name}-a"));
    assert_eq!(lab.veth_b(), format!("pfs{name}b"));
    assert_eq!(lab.addr_b().to_string(), "10.77.0.2");
    assert_eq!(lab.mtu(), 1500);
    assert_intact(&name);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab::state::state_path(&name)).unwrap())
            .unwrap();
    assert_eq!(state["namespaces"][0], format!("pfs-{name}-a"));
    assert_eq!(state["addrs"][1], "10.77.0.2");
    assert_eq!(state["mtu"], 1500);
    assert_eq!(state["pid"], std::process::id());

    let (_, again) = Lab::up_with_outcome(&name).unwrap();
    assert_eq!(again, UpOutcome::AlreadyUp);
    assert_eq!(Lab::open(&name).unwrap(), lab);

    // Damage it: the next up notices and replaces it.
    let out = Command::new("ip")
        .args(["-n", lab.ns_b(), "link", "set", lab.veth_b(), "down"])
        .status()
        .unwrap();
    assert!(out.success());
    let (_, fixed) = Lab::up_with_outcome(&name).unwrap();
    assert!(
        matches!(fixed, UpOutcome::Replaced(ref why) if why.contains("down")),
        "{fixed:?}"
    );
    assert_intact(&name);

    Lab::down(&name).unwrap();
    assert_eq!(link_exists_anywhere(&name), Vec::<String>::new());
    assert!(matches!(Lab::down(&name), Err(LabError::NotFound { .. })));
    assert!(matches!(Lab::open(&name), Err(LabError::NotFound { .. })));
    assert!(matches!(Lab::status(&name), Err(LabError::NotFound { .. })));
}

#[test]
fn namespaces_not_made_by_pfs_are_refused_and_left_alone() {
    if !require_root("namespaces_not_made_by_pfs_are_refused_and_left_alone") {
        return;
    }
    let name = unique_lab_name('f');
    let ns = format!("pfs-{name}-a");
    struct DelNs(String, String);
    impl Drop for DelNs {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            let _ = std::fs::remove_file(lab::state::lock_path(&self.1));
        }
    }
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let _del = DelNs(ns.clone(), name.clone());
    for e in [
        Lab::up(&name).unwrap_err(),
        Lab::down(&name).unwrap_err(),
        Lab::open(&name).unwrap_err(),
    ] {
        let s = e.to_string();
        assert!(s.contains(&ns), "{s}");
    }
    assert!(
        pfs_dataplane::netns::exists(&ns),
        "a foreign namespace was removed"
    );
    assert!(!pfs_dataplane::netns::exists(&format!("pfs-{name}-b")));
}

/// Runs `Lab::up(name)` in a child process (this test binary, re-executed) that
/// stalls after `step`; SIGKILLs it there. Returns once the child is reaped.
fn kill_up_after(name: &str, step: &str) {
    let mut child = Command::new("/proc/self/exe")
        .args([
            "--exact",
            "zz_child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, name)
        .env(lab::STALL_ENV, step)
        .env_remove("PFS_REQUIRE_PRIVILEGED")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("pfs-lab-stall:") {
                let _ = tx.send(line);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(got.unwrap(), format!("pfs-lab-stall: {step}"));
}

#[test]
fn a_lab_left_by_a_sigkilled_up_is_cleaned_by_the_next_up_or_down() {
    if !require_root("a_lab_left_by_a_sigkilled_up_is_cleaned_by_the_next_up_or_down") {
        return;
    }
    // Killed after the veth pair was made: the next `up` replaces it.
    let name = unique_lab_name('k');
    let _down = Down(name.clone());
    kill_up_after(&name, "veth");
    let n = lab::Names::of(&name);
    assert!(pfs_dataplane::netns::exists(&n.ns_a) && pfs_dataplane::netns::exists(&n.ns_b));
    let st = Lab::status(&name).unwrap();
    assert_eq!(st.state, "creating");
    assert!(!st.pid_alive);
    assert!(matches!(Lab::open(&name), Err(LabError::NotFound { .. })));
    let (_, outcome) = Lab::up_with_outcome(&name).unwrap();
    assert!(
        matches!(outcome, UpOutcome::Replaced(ref why) if why.contains("did not finish")),
        "{outcome:?}"
    );
    assert_intact(&name);
    Lab::down(&name).unwrap();
    assert_eq!(link_exists_anywhere(&name), Vec::<String>::new());

    // Killed after the namespaces were made: `down` removes them.
    let name2 = unique_lab_name('k');
    let _down2 = Down(name2.clone());
    kill_up_after(&name2, "netns");
    assert!(pfs_dataplane::netns::exists(&format!("pfs-{name2}-a")));
    Lab::down(&name2).unwrap();
    assert_eq!(link_exists_anywhere(&name2), Vec::<String>::new());
}

/// Not a test: the entry point of the child process of [`kill_up_after`]
/// (does nothing unless `PFS_NETNS_TEST_CHILD_LAB` is set).
#[test]
fn zz_child_process_entry() {
    if let Ok(name) = std::env::var(CHILD_ENV) {
        let r = Lab::up(&name);
        eprintln!("child up returned: {r:?}");
    }
}
