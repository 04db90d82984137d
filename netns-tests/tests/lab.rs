//! `pfs lab`: up/down leave nothing behind, up is idempotent, and a lab left by a
//! SIGKILLed `up` is cleaned by the next `up` or `down`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pfs_control::lab::{self, Lab, LabError, UpOutcome};
use pfs_dataplane::netns::with_netns;
use pfs_ebpf::{Action, CountRule, Counter, ModeRequest};
use pfs_netns_tests::{LabDown, require_root, unique_lab_name};

/// Env var that turns [`zz_child_process_entry`] into a `Lab::up` of that name.
const CHILD_ENV: &str = "PFS_NETNS_TEST_CHILD_LAB";
/// Env var that turns [`zz_child_process_entry`] into a process that attaches
/// `pfs_count` to lab NAME's veth b and then waits to be killed.
const CHILD_XDP_ENV: &str = "PFS_NETNS_TEST_CHILD_XDP";

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
    let _down = LabDown(name.clone());
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
    let line = kill_child_after(
        &[(CHILD_ENV, name), (lab::STALL_ENV, step)],
        "pfs-lab-stall:",
    );
    assert_eq!(line, format!("pfs-lab-stall: {step}"));
}

/// Re-executes this test binary as [`zz_child_process_entry`] with `envs`, waits
/// (at most 20 s) for a stderr line starting with `marker`, SIGKILLs and reaps it,
/// and returns that line.
fn kill_child_after(envs: &[(&str, &str)], marker: &str) -> String {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args([
        "--exact",
        "zz_child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env_remove("PFS_REQUIRE_PRIVILEGED")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let marker = marker.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with(&marker) {
                let _ = tx.send(line);
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    got.expect("the child reached its marker line")
}

/// `ip -j link` of `dev` in `ns` has an XDP program attached.
fn has_xdp(ns: &str, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-j", "-n", ns, "link", "show", "dev", dev])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].get("xdp").is_some()
}

#[test]
fn a_sigkilled_xdp_loader_leaves_no_program_and_down_leaves_nothing() {
    if !require_root("a_sigkilled_xdp_loader_leaves_no_program_and_down_leaves_nothing") {
        return;
    }
    let name = unique_lab_name('x');
    let _down = LabDown(name.clone());
    let lab = Lab::up(&name).unwrap();
    let line = kill_child_after(&[(CHILD_XDP_ENV, &name)], "pfs-xdp-attached:");
    let id: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(id > 0);
    // The kernel closes the killed loader's bpf_link: the program detaches.
    let deadline = Instant::now() + Duration::from_secs(5);
    while has_xdp(lab.ns_b(), lab.veth_b()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !has_xdp(lab.ns_b(), lab.veth_b()),
        "program {id} still attached"
    );
    Lab::down(&name).unwrap();
    assert_eq!(link_exists_anywhere(&name), Vec::<String>::new());
}

#[test]
fn a_lab_left_by_a_sigkilled_up_is_cleaned_by_the_next_up_or_down() {
    if !require_root("a_lab_left_by_a_sigkilled_up_is_cleaned_by_the_next_up_or_down") {
        return;
    }
    // Killed after the veth pair was made: the next `up` replaces it.
    let name = unique_lab_name('k');
    let _down = LabDown(name.clone());
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
    let _down2 = LabDown(name2.clone());
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
    if let Ok(name) = std::env::var(CHILD_XDP_ENV) {
        let lab = Lab::open(&name).unwrap();
        let rules = [CountRule {
            dport: 1,
            byte: None,
        }];
        let mut c = with_netns(lab.ns_b(), || {
            Counter::attach(lab.veth_b(), ModeRequest::Native, &rules, Action::Pass)
        })
        .unwrap()
        .unwrap();
        eprintln!("pfs-xdp-attached: {}", c.prog_id().unwrap_or(0));
        std::thread::sleep(Duration::from_secs(30));
    }
}

#[test]
fn down_deletes_pfs_nftables_tables_only() {
    if !require_root("down_deletes_pfs_nftables_tables_only") {
        return;
    }
    let name = unique_lab_name('t');
    let _down = LabDown(name.clone());
    let lab = Lab::up(&name).unwrap();
    let nft = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", lab.ns_a(), "nft"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    nft(&["add", "table", "inet", "pfs_probe"]);
    nft(&["add", "table", "ip", "pfsx"]);
    nft(&["add", "table", "inet", "keepme"]);
    let deleted = lab::remove_pfs_nft_tables(lab.ns_a());
    let mut names: Vec<_> = deleted
        .iter()
        .map(|t| format!("{} {}", t.family, t.name))
        .collect();
    names.sort();
    assert_eq!(names, vec!["inet pfs_probe", "ip pfsx"]);
    let left = nft(&["list", "tables"]);
    assert!(left.contains("keepme") && !left.contains("pfs"), "{left}");
    nft(&["add", "table", "inet", "pfs_again"]);
    Lab::down(&name).unwrap();
    assert_eq!(link_exists_anywhere(&name), Vec::<String>::new());
}
