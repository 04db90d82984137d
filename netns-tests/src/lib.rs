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
