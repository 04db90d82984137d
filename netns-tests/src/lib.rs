//! The privilege guard shared by the netns tests.
//!
//! A test that needs root (or a kernel feature) calls [`require_root`]. Without it the
//! test prints one `SKIP: reason` line and returns — unless `PFS_REQUIRE_PRIVILEGED=1`,
//! in which case a skip is a failure.

/// Outcome of a privilege check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The test may run.
    Run,
    /// The test must skip, for this reason.
    Skip(String),
}

/// Whether skips must fail (CI sets `PFS_REQUIRE_PRIVILEGED=1`).
pub fn skips_are_failures() -> bool {
    std::env::var("PFS_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// Checks that the process runs as root. Returns `false` (after printing
/// `SKIP: reason`) when the test should return early; panics instead when
/// `PFS_REQUIRE_PRIVILEGED=1`.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let guard = if euid == 0 {
        Guard::Run
    } else {
        Guard::Skip(format!("{test}: needs root (euid {euid})"))
    };
    settle(guard)
}

/// Turns a guard into run/skip, printing the skip line or failing under CI.
pub fn settle(guard: Guard) -> bool {
    match guard {
        Guard::Run => true,
        Guard::Skip(reason) => {
            assert!(
                !skips_are_failures(),
                "PFS_REQUIRE_PRIVILEGED=1 but this test would skip: {reason}"
            );
            println!("SKIP: {reason}");
            false
        }
    }
}

/// A lab name (`[a-z0-9]{1,8}`) unique on this machine for this process: `tag`
/// (one letter), the pid in base 36 and a per-process counter, so parallel tests
/// and other people's concurrent runs never share a namespace or link name.
pub fn unique_lab_name(tag: char) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 36;
    let mut pid = std::process::id();
    let mut digits = Vec::new();
    loop {
        digits.push(std::char::from_digit(pid % 36, 36).unwrap_or('0'));
        pid /= 36;
        if pid == 0 {
            break;
        }
    }
    let pid36: String = digits.iter().rev().collect();
    let ctr = std::char::from_digit(n, 36).unwrap_or('0');
    let tag = if tag.is_ascii_lowercase() { tag } else { 't' };
    format!("{tag}{pid36}{ctr}")
}

/// Removes lab `.0` on every exit path (drop), and its lock file too: the name
/// comes from [`unique_lab_name`], so nothing else uses it.
#[derive(Debug)]
pub struct LabDown(pub String);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = pfs_control::lab::Lab::down(&self.0);
        let _ = std::fs::remove_file(pfs_control::lab::state::lock_path(&self.0));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lab_names_are_valid_and_distinct() {
        let a = super::unique_lab_name('x');
        let b = super::unique_lab_name('x');
        assert_ne!(a, b);
        for n in [a, b] {
            assert!(n.len() <= 8, "{n}");
            assert!(
                n.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            );
        }
    }
}
