//! `pfs blob setup` and `pfs blob status`: the VirtualBlob on tmpfs or in a file.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pfs_dataplane::iprog::vblob::{self, Identity, VirtualBlob};
use pfs_dataplane::mapped::MappedFile;

use super::XferError;
use super::hex;
use super::source::DEFAULT_BLOB;
use crate::usage::bad;

/// Arguments of `pfs blob setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Blob name (1..=64 of [A-Za-z0-9._-]).
    #[arg(long)]
    pub name: String,
    /// Size in bytes (at least 266240: header + palette).
    #[arg(long)]
    pub size: u64,
    /// Seed of the filler.
    #[arg(long)]
    pub seed: u64,
    /// Where to write it (tmpfs by default).
    #[arg(long, default_value = DEFAULT_BLOB)]
    pub path: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `pfs blob status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The blob file.
    #[arg(long, default_value = DEFAULT_BLOB)]
    pub path: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What setup and status report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlobStatus {
    /// The file.
    pub path: PathBuf,
    /// Identity read from its header.
    pub identity: Identity,
    /// BLAKE3 fingerprint of the file's bytes (hex).
    pub fingerprint: String,
    /// Whether the bytes equal what the identity generates.
    pub matches_identity: bool,
    /// Whether setup wrote the file (false: it was already right).
    pub written: bool,
    /// Seconds spent.
    pub elapsed_s: f64,
}

/// Writes the blob for `id` at `path` (beside it, then renamed), unless a file
/// there already holds exactly that blob.
pub fn setup(id: Identity, path: &Path, progress: bool) -> anyhow::Result<BlobStatus> {
    let t = Instant::now();
    let blob = VirtualBlob::new(id).map_err(|e| bad(format!("blob setup: {e}")))?;
    if path.is_file()
        && let Ok(s) = status(path)
        && s.identity == *blob.identity()
        && s.matches_identity
    {
        return Ok(BlobStatus {
            written: false,
            elapsed_s: t.elapsed().as_secs_f64(),
            ..s
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(format!(
            "--path {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| bad(format!("--path {}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.pfs-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let r = write(&blob, &tmp, progress);
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        XferError::File {
            path: path.to_path_buf(),
            what: "renaming the new blob into place",
            source,
        }
    })?;
    let s = status(path)?;
    Ok(BlobStatus {
        written: true,
        elapsed_s: t.elapsed().as_secs_f64(),
        ..s
    })
}

fn write(blob: &VirtualBlob, tmp: &Path, progress: bool) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|source| XferError::File {
            path: tmp.to_path_buf(),
            what: "creating",
            source,
        })?;
    const CHUNK: u64 = 4 << 20;
    let size = blob.size();
    let chunks = size.div_ceil(CHUNK);
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let bar = progress.then(|| indicatif::ProgressBar::new(size));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let errors: Vec<std::io::Error> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; CHUNK as usize];
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= chunks {
                            return None;
                        }
                        let off = c * CHUNK;
                        let n = (size - off).min(CHUNK) as usize;
                        blob.fill(off, &mut buf[..n]);
                        if let Err(e) = file.write_all_at(&buf[..n], off) {
                            return Some(e);
                        }
                        let d = done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                        if let Some(b) = &bar {
                            b.set_position(d);
                        }
                    }
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(source) = errors.into_iter().next() {
        return Err(XferError::File {
            path: tmp.to_path_buf(),
            what: "writing",
            source,
        }
        .into());
    }
    Ok(())
}

/// Maps the blob at `path`, reads its identity and fingerprints it.
pub fn status(path: &Path) -> anyhow::Result<BlobStatus> {
    let t = Instant::now();
    if !path.is_file() {
        return Err(bad(format!(
            "--path {}: no such file (create it with `pfs blob setup`)",
            path.display()
        )));
    }
    let map = MappedFile::open(path).map_err(|e| bad(format!("--path: {e}")))?;
    let identity = VirtualBlob::parse_header(map.bytes())
        .map_err(|e| bad(format!("--path {}: {e}", path.display())))?;
    let fp = vblob::fingerprint_bytes(map.bytes());
    let matches_identity = map.bytes().len() as u64 == identity.size
        && VirtualBlob::new(identity.clone()).is_ok_and(|b| b.fingerprint() == fp);
    Ok(BlobStatus {
        path: path.to_path_buf(),
        identity,
        fingerprint: hex(&fp),
        matches_identity,
        written: false,
        elapsed_s: t.elapsed().as_secs_f64(),
    })
}

fn print(s: &BlobStatus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!(
            "{}: name={} size={} seed={} fingerprint={} matches identity: {}{}",
            s.path.display(),
            s.identity.name,
            s.identity.size,
            s.identity.seed,
            s.fingerprint,
            if s.matches_identity { "yes" } else { "NO" },
            if s.written { " (written)" } else { "" }
        );
    }
    Ok(())
}

/// Runs `pfs blob setup`.
pub fn run_setup(a: &SetupArgs) -> anyhow::Result<()> {
    let id = Identity {
        name: a.name.clone(),
        size: a.size,
        seed: a.seed,
    };
    let progress = std::io::stderr().is_terminal() && !a.json;
    let s = setup(id, &a.path, progress)?;
    print(&s, a.json)
}

/// Runs `pfs blob status`. A blob whose bytes do not match its identity exits 1.
pub fn run_status(a: &StatusArgs) -> anyhow::Result<()> {
    let s = status(&a.path)?;
    print(&s, a.json)?;
    if !s.matches_identity {
        anyhow::bail!(
            "{}: contents differ from what its identity generates",
            a.path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_status_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vb.bin");
        let id = Identity {
            name: "t1".into(),
            size: vblob::FILLER_OFFSET + 12_345,
            seed: 9,
        };
        let s = setup(id.clone(), &p, false).unwrap();
        assert!(s.written && s.matches_identity);
        assert_eq!(s.identity, id);
        let again = setup(id.clone(), &p, false).unwrap();
        assert!(!again.written, "an identical blob is not rewritten");
        assert_eq!(again.fingerprint, s.fingerprint);
        // Tamper with one filler byte: status notices.
        let mut b = std::fs::read(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(&p, &b).unwrap();
        let t = status(&p).unwrap();
        assert!(!t.matches_identity);
        assert_ne!(t.fingerprint, s.fingerprint);
        // Setup repairs it.
        assert!(setup(id, &p, false).unwrap().written);
        let bad = Identity {
            name: "no/slash".into(),
            size: 1 << 20,
            seed: 0,
        };
        let e = setup(bad, &p, false).unwrap_err();
        assert!(e.to_string().contains("name"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
