//! What the server may touch and how much: the host allowlist, confinement of
//! `file://` paths to the data root, daily budgets, and the cache etiquette (back
//! off on a MISS streak). No I/O except canonicalising paths; the clock is passed
//! in.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{EdgeError, Spent};

/// Hosts the server may fetch from: loopback always, plus the names given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    hosts: Vec<String>,
}

impl Allowlist {
    /// Loopback plus `hosts` (compared case-insensitively; IP literals as
    /// written, IPv6 without brackets).
    pub fn new(hosts: &[String]) -> Allowlist {
        Allowlist {
            hosts: hosts
                .iter()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `host` (from a URL) may be fetched.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if host == "localhost" {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && ip.is_loopback()
        {
            return true;
        }
        self.hosts.contains(&host)
    }

    /// Checks a URL's host, naming it in the refusal.
    pub fn check(&self, url: &reqwest::Url) -> Result<(), EdgeError> {
        let host = url.host_str().unwrap_or("");
        if self.allows(host) {
            Ok(())
        } else {
            Err(EdgeError::forbidden(
                "/data_url",
                format!(
                    "host {host:?} is not on this server's allowlist (loopback and --allow-host)"
                ),
            ))
        }
    }
}

/// The directory `file://` data must live under (canonicalised at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot {
    root: PathBuf,
}

impl DataRoot {
    /// Canonicalises `dir` (which must be a directory).
    pub fn new(dir: &Path) -> std::io::Result<DataRoot> {
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(DataRoot { root })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Resolves `path` (absolute, or relative to the root) to a regular file
    /// under the root. `..` and symlinks are resolved first, so any that lead out
    /// are refused. `pointer` names the request field for errors.
    pub fn confine(&self, path: &Path, pointer: &str) -> Result<PathBuf, EdgeError> {
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        };
        let real = joined.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EdgeError::NotFound {
                    pointer: pointer.into(),
                    message: format!("{}: no such file", path.display()),
                }
            } else {
                EdgeError::forbidden(pointer, format!("{}: {e}", path.display()))
            }
        })?;
        if !real.starts_with(&self.root) {
            return Err(EdgeError::forbidden(
                pointer,
                format!(
                    "{} resolves to {}, outside the data root {}",
                    path.display(),
                    real.display(),
                    self.root.display()
                ),
            ));
        }
        let meta = std::fs::metadata(&real)
            .map_err(|e| EdgeError::forbidden(pointer, format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(EdgeError::forbidden(
                pointer,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(real)
    }
}

/// Seconds in a day.
const DAY_S: u64 = 86_400;

/// Daily byte and request budgets, reset at UTC midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes allowed per day (`None`: unlimited).
    pub max_bytes: Option<u64>,
    /// Requests allowed per day (`None`: unlimited).
    pub max_requests: Option<u64>,
    day: u64,
    bytes: u64,
    requests: u64,
}

impl Budget {
    /// A budget with nothing spent.
    pub fn new(max_bytes: Option<u64>, max_requests: Option<u64>) -> Budget {
        Budget {
            max_bytes,
            max_requests,
            day: 0,
            bytes: 0,
            requests: 0,
        }
    }

    /// What was spent today, as of `now_unix_s`.
    pub fn spent(&self, now_unix_s: u64) -> Spent {
        let today = now_unix_s / DAY_S == self.day;
        Spent {
            bytes: if today { self.bytes } else { 0 },
            requests: if today { self.requests } else { 0 },
            budget_bytes: self.max_bytes,
            budget_requests: self.max_requests,
            resets_in_s: DAY_S - now_unix_s % DAY_S,
        }
    }

    /// Charges one request of `bytes` at `now_unix_s`, or refuses it (429) when it
    /// would take either budget past its cap. A refused request charges nothing.
    pub fn charge(&mut self, now_unix_s: u64, bytes: u64) -> Result<(), EdgeError> {
        let day = now_unix_s / DAY_S;
        if day != self.day {
            self.day = day;
            self.bytes = 0;
            self.requests = 0;
        }
        if let Some(max) = self.max_requests
            && self.requests + 1 > max
        {
            return Err(EdgeError::Budget {
                message: format!(
                    "the daily request budget is spent ({} of {max} requests used today)",
                    self.requests
                ),
                spent: self.spent(now_unix_s),
            });
        }
        if let Some(max) = self.max_bytes
            && self.bytes.saturating_add(bytes) > max
        {
            return Err(EdgeError::Budget {
                message: format!(
                    "this request needs {bytes} bytes but {} of the daily {max} bytes are used",
                    self.bytes
                ),
                spent: self.spent(now_unix_s),
            });
        }
        self.requests += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }
}

/// What a response's cache headers said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from a cache.
    Hit,
    /// Not served from a cache.
    Miss,
    /// No cache header.
    Unknown,
}

/// Classifies a response by `CF-Cache-Status`, then `X-Cache`, then `Age`.
pub fn classify(
    cf_cache_status: Option<&str>,
    x_cache: Option<&str>,
    age: Option<&str>,
) -> CacheOutcome {
    if let Some(s) = cf_cache_status {
        let s = s.trim().to_ascii_uppercase();
        return match s.as_str() {
            "HIT" | "STALE" | "UPDATING" | "REVALIDATED" => CacheOutcome::Hit,
            "MISS" | "EXPIRED" | "BYPASS" | "DYNAMIC" => CacheOutcome::Miss,
            _ => CacheOutcome::Unknown,
        };
    }
    if let Some(s) = x_cache {
        let s = s.trim().to_ascii_uppercase();
        if s.starts_with("HIT") || s.contains(" HIT") {
            return CacheOutcome::Hit;
        }
        if s.starts_with("MISS") || s.contains(" MISS") {
            return CacheOutcome::Miss;
        }
        return CacheOutcome::Unknown;
    }
    match age.and_then(|a| a.trim().parse::<u64>().ok()) {
        Some(a) if a > 0 => CacheOutcome::Hit,
        Some(_) => CacheOutcome::Miss,
        None => CacheOutcome::Unknown,
    }
}

/// Cache etiquette for one origin: counts hits and misses and, after
/// [`Etiquette::STREAK`] misses in a row, asks the fetcher to wait before the next
/// request, doubling up to [`Etiquette::MAX_DELAY`]. A hit ends the streak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Etiquette {
    /// Hits seen.
    pub hits: u64,
    /// Misses seen.
    pub misses: u64,
    streak: u32,
}

impl Etiquette {
    /// Misses in a row before backing off.
    pub const STREAK: u32 = 4;
    /// The first delay.
    pub const BASE_DELAY: Duration = Duration::from_millis(10);
    /// The longest delay.
    pub const MAX_DELAY: Duration = Duration::from_millis(500);

    /// Records one response.
    pub fn record(&mut self, outcome: CacheOutcome) {
        match outcome {
            CacheOutcome::Hit => {
                self.hits += 1;
                self.streak = 0;
            }
            CacheOutcome::Miss => {
                self.misses += 1;
                self.streak = self.streak.saturating_add(1);
            }
            CacheOutcome::Unknown => {}
        }
    }

    /// The misses in a row so far.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// How long to wait before the next request to this origin.
    pub fn delay(&self) -> Duration {
        if self.streak < Self::STREAK {
            return Duration::ZERO;
        }
        let doublings = (self.streak - Self::STREAK).min(16);
        (Self::BASE_DELAY * 2u32.pow(doublings)).min(Self::MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_is_loopback_by_default() {
        let a = Allowlist::default();
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "LOCALHOST",
            "[::1]",
            "::1",
        ] {
            assert!(a.allows(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "example.com",
            "0.0.0.0",
            "169.254.169.254",
            "::",
        ] {
            assert!(!a.allows(h), "{h}");
        }
        let a = Allowlist::new(&["Example.COM".into()]);
        assert!(a.allows("example.com"));
        assert!(!a.allows("sub.example.com"));
    }

    #[test]
    fn root_confines_dotdot_and_symlinks() {
        let outer = tempfile::tempdir().unwrap();
        let root_dir = outer.path().join("root");
        std::fs::create_dir(&root_dir).unwrap();
        std::fs::write(root_dir.join("in.bin"), b"x").unwrap();
        std::fs::write(outer.path().join("out.bin"), b"y").unwrap();
        std::os::unix::fs::symlink(outer.path().join("out.bin"), root_dir.join("link")).unwrap();
        std::os::unix::fs::symlink(root_dir.join("in.bin"), root_dir.join("inlink")).unwrap();
        let root = DataRoot::new(&root_dir).unwrap();
        assert!(root.confine(&root_dir.join("in.bin"), "/p").is_ok());
        assert!(root.confine(Path::new("in.bin"), "/p").is_ok());
        assert!(root.confine(&root_dir.join("inlink"), "/p").is_ok());
        for p in [
            root_dir.join("../out.bin"),
            root_dir.join("link"),
            PathBuf::from("/etc/hostname"),
            root_dir.clone(),
        ] {
            let e = root.confine(&p, "/data_url").unwrap_err();
            assert_eq!(
                (e.status(), e.pointer()),
                (403, "/data_url"),
                "{}: {e}",
                p.display()
            );
        }
        let e = root
            .confine(&root_dir.join("missing"), "/data_url")
            .unwrap_err();
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn budget_refuses_and_resets_daily() {
        let mut b = Budget::new(Some(100), Some(3));
        let t = 5 * DAY_S + 10;
        b.charge(t, 40).unwrap();
        b.charge(t, 60).unwrap();
        let e = b.charge(t, 1).unwrap_err();
        assert_eq!(e.status(), 429);
        let EdgeError::Budget { spent, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!((spent.bytes, spent.requests), (100, 2));
        assert_eq!(spent.resets_in_s, DAY_S - 10);
        b.charge(t, 0).unwrap();
        assert!(matches!(b.charge(t, 0), Err(EdgeError::Budget { .. })));
        b.charge(6 * DAY_S, 100).unwrap();
        assert_eq!(b.spent(6 * DAY_S).bytes, 100);
    }

    #[test]
    fn cache_headers_classify_and_miss_streak_backs_off() {
        assert_eq!(classify(Some("HIT"), None, None), CacheOutcome::Hit);
        assert_eq!(
            classify(Some("miss"), Some("HIT"), None),
            CacheOutcome::Miss
        );
        assert_eq!(
            classify(None, Some("HIT from edge-1"), None),
            CacheOutcome::Hit
        );
        assert_eq!(classify(None, Some("MISS, MISS"), None), CacheOutcome::Miss);
        assert_eq!(classify(None, None, Some("30")), CacheOutcome::Hit);
        assert_eq!(classify(None, None, Some("0")), CacheOutcome::Miss);
        assert_eq!(classify(None, None, None), CacheOutcome::Unknown);
        let mut e = Etiquette::default();
        for _ in 0..Etiquette::STREAK - 1 {
            e.record(CacheOutcome::Miss);
        }
        assert_eq!(e.delay(), Duration::ZERO);
        e.record(CacheOutcome::Miss);
        assert_eq!(e.delay(), Etiquette::BASE_DELAY);
        e.record(CacheOutcome::Miss);
        assert_eq!(e.delay(), Etiquette::BASE_DELAY * 2);
        for _ in 0..40 {
            e.record(CacheOutcome::Miss);
        }
        assert_eq!(e.delay(), Etiquette::MAX_DELAY);
        e.record(CacheOutcome::Unknown);
        assert_eq!(e.delay(), Etiquette::MAX_DELAY);
        e.record(CacheOutcome::Hit);
        assert_eq!(e.delay(), Duration::ZERO);
        assert_eq!((e.hits, e.misses), (1, 1 + 40 + Etiquette::STREAK as u64));
    }
}
