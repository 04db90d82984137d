//! What BREFs point into: the VirtualBlob file (`--blob`, palette index) or a
//! shared base file (`--base`, sampled index). Both sides open it the same way.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pfs_dataplane::iprog::compile::Index;
use pfs_dataplane::iprog::vblob::{self, VirtualBlob};
use pfs_dataplane::mapped::MappedFile;

use crate::usage::bad;

/// Default VirtualBlob path (written by `pfs blob setup` without `--path`).
pub const DEFAULT_BLOB: &str = "/dev/shm/pfs_vblob.bin";

/// Source flags shared by compile, send and recv.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// The VirtualBlob file (from `pfs blob setup`).
    #[arg(long, default_value = DEFAULT_BLOB, conflicts_with = "base")]
    pub blob: PathBuf,
    /// Shared-base mode: any file both sides hold (e.g. the previous version).
    #[arg(long)]
    pub base: Option<PathBuf>,
}

/// An opened source.
#[derive(Debug)]
pub struct Source {
    /// `blob` or `base`.
    pub kind: &'static str,
    /// The file.
    pub path: PathBuf,
    map: MappedFile,
    /// Its fingerprint (`specs/iprog.md` §1.4).
    pub fingerprint: [u8; 32],
    /// Seconds spent mapping and fingerprinting.
    pub open_s: f64,
}

impl Source {
    /// Maps and fingerprints the source. A blob that is not a VirtualBlob is bad input.
    pub fn open(args: &SourceArgs) -> anyhow::Result<Source> {
        let t = Instant::now();
        let (kind, path) = match &args.base {
            Some(b) => ("base", b.clone()),
            None => ("blob", args.blob.clone()),
        };
        if !path.is_file() {
            return Err(bad(if kind == "blob" {
                format!(
                    "--blob {}: no such file (create it with `pfs blob setup`)",
                    path.display()
                )
            } else {
                format!("--base {}: no such file", path.display())
            }));
        }
        let map = MappedFile::open(&path).map_err(|e| bad(format!("--{kind}: {e}")))?;
        let fingerprint = if kind == "blob" {
            VirtualBlob::parse_header(map.bytes())
                .map_err(|e| bad(format!("--blob {}: {e}", path.display())))?;
            vblob::fingerprint_bytes(map.bytes())
        } else {
            vblob::base_fingerprint(map.bytes())
        };
        Ok(Source {
            kind,
            path,
            map,
            fingerprint,
            open_s: t.elapsed().as_secs_f64(),
        })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Whether this is shared-base mode.
    pub fn is_base(&self) -> bool {
        self.kind == "base"
    }

    /// Builds the index (palette for a blob, sampled for a base).
    pub fn index(&self) -> anyhow::Result<Index> {
        if self.is_base() {
            Index::sampled(self.bytes()).map_err(|e| bad(format!("--base: {e}")))
        } else {
            Ok(Index::palette())
        }
    }
}

/// A file name fit for MFST: the last path component, at most 255 bytes.
pub fn object_name(path: &Path) -> String {
    let n = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = n.len().min(255);
    while !n.is_char_boundary(end) {
        end -= 1;
    }
    n[..end].to_string()
}
