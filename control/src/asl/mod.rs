//! ASL: a content-addressed, append-only, crash-safe artifact store (ASL-HOST on a
//! POSIX directory). Normative format: `specs/asl.md`.
//!
//! The log (`DIR/log`) is the source of truth; blocks (`DIR/blocks/*.blk`) hold the
//! bytes; the index file (`DIR/index`) and its bloom filter are caches rebuilt from
//! the log. One writer at a time (an exclusive `flock` on `DIR/lock`); readers need
//! no lock.

pub mod block;
pub mod cli;
pub mod index;
pub mod record;
pub mod store;
mod syncer;
mod sys;

use std::fmt;
use std::path::PathBuf;

pub use store::{
    Durability, PutReceipt, SnapshotHandle, SnapshotId, Stat, Store, StoreOptions, VerifyReport,
};

/// An artifact's key: BLAKE3-256 of the artifact's bytes alone (the type tag is not
/// hashed), so putting the same bytes twice stores them once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactKey(pub [u8; 32]);

impl ArtifactKey {
    /// The key of `bytes`.
    pub fn of(bytes: &[u8]) -> ArtifactKey {
        ArtifactKey(*blake3::hash(bytes).as_bytes())
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(s: &str) -> Result<ArtifactKey, AslError> {
        let bad = || AslError::BadKey {
            input: s.chars().take(80).collect(),
        };
        if s.len() != 64 {
            return Err(bad());
        }
        let v = pfs_dataplane::specvec::unhex(s).ok_or_else(bad)?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&v);
        Ok(ArtifactKey(k))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl serde::Serialize for ArtifactKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactKey({})", self.to_hex())
    }
}

/// The ASL-HOST error kinds (seed 002 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Success.
    Ok,
    /// The store, or a key with a different type tag, already exists.
    Exists,
    /// No store, key or snapshot by that name.
    NotFound,
    /// Reading or writing failed, or stored bytes failed their checksum.
    IoError,
    /// Another writer holds the store, or a read-only handle was asked to write.
    ConcurrentModification,
}

impl ErrorKind {
    /// The kind of an operation's outcome.
    pub fn of<T>(r: &Result<T, AslError>) -> ErrorKind {
        match r {
            Ok(_) => ErrorKind::Ok,
            Err(e) => e.kind(),
        }
    }
}

/// Errors of the artifact store; each names the store and the record, block or key.
#[derive(Debug, thiserror::Error)]
pub enum AslError {
    /// `create` found something already there.
    #[error("store {store}: {what} already exists")]
    Exists {
        /// Store directory.
        store: PathBuf,
        /// What exists.
        what: String,
    },
    /// The directory is not an ASL store.
    #[error("{store} is not an ASL store: {why}")]
    NotAStore {
        /// Directory.
        store: PathBuf,
        /// Why not.
        why: String,
    },
    /// A key or snapshot is not in the store.
    #[error("store {store}: {what} not found")]
    NotFound {
        /// Store directory.
        store: PathBuf,
        /// What was looked for.
        what: String,
    },
    /// A key that is not 64 hex digits.
    #[error("malformed key '{input}': expected 64 hex digits (BLAKE3-256)")]
    BadKey {
        /// The input (first 80 characters).
        input: String,
    },
    /// The store's format version is not one this build reads.
    #[error(
        "store {store}: format version {found} is not supported (this build reads {supported})"
    )]
    UnsupportedVersion {
        /// Store directory.
        store: PathBuf,
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// Stored bytes failed a checksum or a structural check.
    #[error("store {store}: corrupt {what}")]
    Corrupt {
        /// Store directory.
        store: PathBuf,
        /// What is corrupt and where.
        what: String,
    },
    /// A system call failed.
    #[error("store {store}: {op} {path}: {source}")]
    Io {
        /// Store directory.
        store: PathBuf,
        /// Operation.
        op: &'static str,
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another process (or handle) is the store's writer.
    #[error("store {store}: another writer holds {lock} (readers are allowed, writers are not)")]
    Locked {
        /// Store directory.
        store: PathBuf,
        /// Lock file.
        lock: PathBuf,
    },
    /// A read-only handle (reader or snapshot) was asked to write.
    #[error("store {store}: handle is read-only ({why})")]
    ReadOnly {
        /// Store directory.
        store: PathBuf,
        /// Which handle.
        why: &'static str,
    },
    /// An earlier write or sync failed; the handle refuses further writes.
    #[error("store {store}: an earlier write failed ({cause}); reopen the store to recover")]
    Poisoned {
        /// Store directory.
        store: PathBuf,
        /// The first failure.
        cause: String,
        /// Its errno, if it was a system call.
        errno: Option<i32>,
    },
}

impl AslError {
    /// The ASL-HOST kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AslError::Exists { .. } => ErrorKind::Exists,
            AslError::NotAStore { .. } | AslError::NotFound { .. } | AslError::BadKey { .. } => {
                ErrorKind::NotFound
            }
            AslError::UnsupportedVersion { .. }
            | AslError::Corrupt { .. }
            | AslError::Io { .. }
            | AslError::Poisoned { .. } => ErrorKind::IoError,
            AslError::Locked { .. } | AslError::ReadOnly { .. } => {
                ErrorKind::ConcurrentModification
            }
        }
    }

    /// Whether this is a write that failed because the file system is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            AslError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            AslError::Poisoned { errno, .. } => *errno == Some(libc::ENOSPC),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hex_roundtrip_and_bad_keys() {
        let k = ArtifactKey::of(b"hello");
        assert_eq!(ArtifactKey::parse(&k.to_hex()).unwrap(), k);
        assert_eq!(
            k.to_hex(),
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
        for bad in ["", "zz", &"0".repeat(63), &"g".repeat(64), &"0".repeat(65)] {
            let e = ArtifactKey::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert!(e.to_string().contains("malformed key"));
        }
    }
}
