//! Read-only memory maps of input files (the only place this crate maps memory).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, MmapOptions};

/// Errors opening or mapping a file.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file could not be opened or stat'ed.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// mmap failed.
    #[error("{path}: mmap failed: {source}")]
    Map {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A read-only, pre-faulted map of a whole file.
#[derive(Debug)]
pub struct MappedFile {
    map: Option<Mmap>,
    path: PathBuf,
}

impl MappedFile {
    /// Maps `path` read-only with `MAP_POPULATE` (so page faults are taken here,
    /// not in the compute loop) and asks for sequential read-ahead and huge pages.
    /// An empty file gives an empty map.
    pub fn open(path: &Path) -> Result<MappedFile, MapError> {
        let file = File::open(path).map_err(|source| MapError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| MapError::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if len == 0 {
            return Ok(MappedFile {
                map: None,
                path: path.to_path_buf(),
            });
        }
        // SAFETY: the map is read-only and private to this process; PacketFS does not
        // write its inputs while computing. A file truncated underneath us by another
        // process would raise SIGBUS, the documented hazard of mapping shared files.
        let map = unsafe { MmapOptions::new().populate().map(&file) }.map_err(|source| {
            MapError::Map {
                path: path.to_path_buf(),
                source,
            }
        })?;
        // Advice is best-effort: a kernel that ignores it leaves the map correct.
        let _ = map.advise(Advice::Sequential);
        let _ = map.advise(Advice::HugePage);
        Ok(MappedFile {
            map: Some(map),
            path: path.to_path_buf(),
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The file that was mapped.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What kind of pages back the address range `[addr, addr+len)`, read from
/// `/proc/self/smaps`: `"huge"` when all of it is in AnonHugePages/FilePmdMapped/
/// ShmemPmdMapped, `"4k"` when none, `"mixed (N% huge)"` otherwise, `"unknown"`
/// when smaps cannot be read.
pub fn page_kind(addr: usize, len: usize) -> String {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return "unknown".into();
    };
    let (mut in_range, mut total_kb, mut huge_kb) = (false, 0u64, 0u64);
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            in_range = a < addr + len && addr < b;
            continue;
        }
        if !in_range {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(key), Some(val)) = (parts.next(), parts.next()) else {
            continue;
        };
        let kb: u64 = val.parse().unwrap_or(0);
        match key {
            "Rss:" => total_kb += kb,
            "AnonHugePages:" | "FilePmdMapped:" | "ShmemPmdMapped:" => huge_kb += kb,
            _ => {}
        }
    }
    if total_kb == 0 {
        "unknown".into()
    } else if huge_kb == 0 {
        "4k".into()
    } else if huge_kb >= total_kb {
        "huge".into()
    } else {
        format!("mixed ({}% huge)", huge_kb * 100 / total_kb)
    }
}

/// A zeroed, writable buffer in anonymous memory, populated up front
/// (`MAP_POPULATE`), so filling a large object takes no page faults.
/// Falls back to the heap when the map fails.
#[derive(Debug)]
pub enum AnonBuf {
    /// An anonymous map.
    Map(memmap2::MmapMut),
    /// A heap vector (small sizes, or the map failed).
    Heap(Vec<u8>),
}

impl AnonBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: usize) -> AnonBuf {
        if len < (2 << 20) {
            return AnonBuf::Heap(vec![0u8; len]);
        }
        // 4 KiB pages, populated by the kernel in one call (MAP_POPULATE): no
        // MADV_HUGEPAGE, because with THP defrag = madvise every 2 MiB fault may
        // stall in direct compaction (measured: ~4.7 ms per huge page with a full
        // page cache, 0.6 s for a 256 MiB object).
        match memmap2::MmapOptions::new().len(len).populate().map_anon() {
            Ok(m) => AnonBuf::Map(m),
            Err(_) => AnonBuf::Heap(vec![0u8; len]),
        }
    }
}

impl std::ops::Deref for AnonBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            AnonBuf::Map(m) => m,
            AnonBuf::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for AnonBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            AnonBuf::Map(m) => m,
            AnonBuf::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod anon_tests {
    use super::AnonBuf;

    #[test]
    fn anon_buffers_are_zeroed_and_writable() {
        for n in [0usize, 10, 3 << 20] {
            let mut b = AnonBuf::zeroed(n);
            assert_eq!(b.len(), n);
            assert!(b.iter().all(|&x| x == 0));
            if n > 0 {
                b[n - 1] = 7;
                assert_eq!(b[n - 1], 7);
            }
        }
    }
}
