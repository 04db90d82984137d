//! One JSON receipt per finished transfer (`specs/udp-transfer.md` §6), written
//! as a file into the receipts directory (the ASL store is another branch's).

use std::path::{Path, PathBuf};

use pfs_dataplane::iprog::proto::Stats;

use super::XferError;

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
