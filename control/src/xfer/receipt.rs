//! One JSON receipt per finished transfer (`specs/udp-transfer.md` §6), written
//! as a file into the receipts directory and stored in the ASL store as an
//! artifact with type tag [`TAG_RECEIPT`].

use std::path::{Path, PathBuf};

use pfs_dataplane::iprog::proto::Stats;

use super::XferError;
use crate::asl::{ArtifactKey, AslError, Store, StoreOptions};

/// Type tag of a transfer receipt in the ASL store (`"xf"` 0x0001).
pub const TAG_RECEIPT: u32 = 0x7866_0001;

/// A receipt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    /// `send` or `recv`.
    pub role: &'static str,
    /// Session id (hex).
    pub session: String,
    /// `ok` or `failed: reason`.
    pub outcome: String,
    /// Object name from MFST.
    pub name: String,
    /// BLAKE3 of the object (hex).
    pub object_blake3: String,
    /// Object bytes.
    pub object_size: u64,
    /// `blob` or `base`.
    pub source: String,
    /// Fingerprint of the blob or base (hex).
    pub blob_fingerprint: String,
    /// pvrt or offs.
    pub mode: String,
    /// Windows in the object.
    pub windows: u64,
    /// UDP payload bytes this side sent.
    pub wire_bytes_sent: u64,
    /// UDP payload bytes this side received.
    pub wire_bytes_received: u64,
    /// WIN frames sent again (sender) / duplicates seen (receiver).
    pub retransmits: u64,
    /// Seconds from the first datagram to the end.
    pub duration_s: f64,
    /// Verified object bytes per second over `duration_s`, in GB/s.
    pub goodput_gbps: f64,
    /// Object bytes / all wire bytes of the transfer (both directions).
    pub tx_ratio: f64,
    /// Where the receiver wrote the object.
    pub written_to: Option<PathBuf>,
    /// Unix time (seconds) the receipt was written.
    pub unix_time: u64,
    /// The endpoint's counters.
    pub stats: Stats,
}

/// Default receipts directory: `$PFS_RECEIPTS`, else `$HOME/.local/state/pfs/receipts`,
/// else `/tmp/pfs-receipts`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PFS_RECEIPTS") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/pfs/receipts"),
        None => PathBuf::from("/tmp/pfs-receipts"),
    }
}

/// Writes `r` as `DIR/<unix_time>-<session>-<role>.json`; returns the path.
pub fn write(dir: &Path, r: &Receipt) -> Result<PathBuf, XferError> {
    std::fs::create_dir_all(dir).map_err(|source| XferError::File {
        path: dir.to_path_buf(),
        what: "creating the receipts directory",
        source,
    })?;
    let p = dir.join(format!("{}-{}-{}.json", r.unix_time, r.session, r.role));
    let body = serde_json::to_vec_pretty(r).unwrap_or_default();
    std::fs::write(&p, body).map_err(|source| XferError::File {
        path: p.clone(),
        what: "writing the receipt",
        source,
    })?;
    Ok(p)
}

/// Stores the receipt file's bytes in the ASL store at `dir` (created if
/// missing) under [`TAG_RECEIPT`]. A store held by another writer is retried
/// for up to two seconds.
pub fn store_in(dir: &Path, receipt_file: &Path) -> Result<ArtifactKey, String> {
    let bytes = std::fs::read(receipt_file)
        .map_err(|e| format!("{}: reading the receipt: {e}", receipt_file.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut store = loop {
        match Store::open(dir, StoreOptions::default()) {
            Ok(s) => break s,
            Err(AslError::NotAStore { .. })
                if !dir.join(crate::asl::store::SUPERBLOCK).exists() =>
            {
                match Store::create(dir, StoreOptions::default()) {
                    Ok(s) => break s,
                    // Another side created it meanwhile: open it on the next turn.
                    Err(_) if dir.join(crate::asl::store::SUPERBLOCK).exists() => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(AslError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let key = store
        .put(&bytes, Some(TAG_RECEIPT))
        .map_err(|e| e.to_string())?
        .key;
    store.close().map_err(|e| e.to_string())?;
    Ok(key)
}

/// Stores the receipt in `--asl-store` or the default ASL store (`$PFS_ASL`,
/// ...) unless `--no-asl`; a failure is one warning line on stderr, never an error.
pub fn store_default(
    receipt_file: &Path,
    link: &super::transport::LinkArgs,
) -> Option<ArtifactKey> {
    if link.no_asl {
        return None;
    }
    let Some(dir) = link
        .asl_store
        .clone()
        .or_else(crate::asl::cli::default_store)
    else {
        eprintln!("warning: receipt not stored in ASL: no store location (set PFS_ASL)");
        return None;
    };
    match store_in(&dir, receipt_file) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!(
                "warning: receipt not stored in ASL store {}: {e}",
                dir.display()
            );
            None
        }
    }
}
