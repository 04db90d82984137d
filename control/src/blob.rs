//! `pfs blob create`: a file of a deterministic fill, written by parallel threads.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use pfs_dataplane::fill::{self, CHUNK, Fill};
use pfs_dataplane::workers;

use crate::usage::bad;

/// Arguments of `pfs blob create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Output file (for speed, put it on tmpfs, e.g. /dev/shm/pfs_blob.bin).
    pub path: PathBuf,
    /// Size in MiB (1 MiB = 1,048,576 bytes).
    #[arg(long)]
    pub size_mib: u64,
    /// Content: zero, random or ramp.
    #[arg(long, default_value = "zero")]
    pub fill: String,
    /// Seed for `random`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing file (written beside it, then renamed over it).
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `create` did.
#[derive(Debug, serde::Serialize)]
pub struct CreateReport {
    /// The file written.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// The fill.
    pub fill: String,
    /// The seed.
    pub seed: u64,
    /// Seconds spent writing.
    pub elapsed_s: f64,
    /// Write rate in GB/s (1e9 bytes/s).
    pub throughput_gbps: f64,
}

/// Largest blob accepted (1 TiB), so a typo does not fill the disk silently.
pub const MAX_SIZE_MIB: u64 = 1 << 20;

/// Writes the blob: into a temporary file beside `path`, renamed over it when
/// complete, so a failure never leaves a half-written file under the final name
/// and never touches an existing file unless `force`.
pub fn create(
    path: &Path,
    size_mib: u64,
    fill: Fill,
    seed: u64,
    force: bool,
    progress: bool,
) -> anyhow::Result<CreateReport> {
    if size_mib == 0 || size_mib > MAX_SIZE_MIB {
        return Err(bad(format!(
            "size-mib: {size_mib} is outside 1..={MAX_SIZE_MIB}"
        )));
    }
    if path.exists() && !force {
        return Err(bad(format!(
            "{}: already exists (pass --force to replace it)",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(format!(
            "{}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let bytes = size_mib * CHUNK as u64;
    let file_name = path
        .file_name()
        .ok_or_else(|| bad(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.pfs-tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_into(&tmp, bytes, fill, seed, progress);
    let elapsed = match result {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
    let elapsed_s = elapsed.as_secs_f64();
    Ok(CreateReport {
        path: path.to_path_buf(),
        bytes,
        fill: fill.to_string(),
        seed,
        elapsed_s,
        throughput_gbps: bytes as f64 / elapsed_s.max(1e-9) / 1e9,
    })
}

fn write_into(
    tmp: &Path,
    bytes: u64,
    fill: Fill,
    seed: u64,
    progress: bool,
) -> anyhow::Result<std::time::Duration> {
    let file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let chunks = bytes.div_ceil(CHUNK as u64) as usize;
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let written = AtomicU64::new(0);
    let start = Instant::now();
    let n_workers = workers::cores().len().max(1);
    let (errors, _) = workers::run(
        n_workers,
        true,
        chunks,
        |_| (vec![0u8; CHUNK], None::<std::io::Error>),
        |(buf, err), chunk| {
            if err.is_some() {
                return;
            }
            let off = chunk as u64 * CHUNK as u64;
            let len = (bytes - off).min(CHUNK as u64) as usize;
            // Zeros are written too, not left as holes: a sparse file would read
            // from the shared zero page and flatter every later benchmark.
            fill::fill_chunk(fill, seed, chunk as u64, &mut buf[..len]);
            if let Err(e) = file.write_all_at(&buf[..len], off) {
                *err = Some(e);
                return;
            }
            let done = written.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
            if let Some(b) = &bar {
                b.set_position(done);
            }
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = errors.into_iter().find_map(|(_, e)| e) {
        return Err(anyhow::Error::new(e).context(format!("writing {}", tmp.display())));
    }
    Ok(start.elapsed())
}

/// Runs `pfs blob create`.
pub fn run_create(args: &CreateArgs) -> anyhow::Result<()> {
    let fill: Fill = args.fill.parse().map_err(bad)?;
    let progress = std::io::stderr().is_terminal() && !args.json;
    let r = create(
        &args.path,
        args.size_mib,
        fill,
        args.seed,
        args.force,
        progress,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "wrote {} ({} bytes, fill={} seed={}) in {:.3} s = {:.2} GB/s",
            r.path.display(),
            r.bytes,
            r.fill,
            r.seed,
            r.elapsed_s,
            r.throughput_gbps
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bin");
        let r = create(&p, 2, Fill::Ramp, 0, false, false).unwrap();
        assert_eq!(r.bytes, 2 << 20);
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len(), 2 << 20);
        assert_eq!(data[257], 1);
        let err = create(&p, 1, Fill::Zero, 0, false, false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), data, "existing file untouched");
        create(&p, 1, Fill::Random, 5, true, false).unwrap();
        let a = std::fs::read(&p).unwrap();
        assert_eq!(a.len(), 1 << 20);
        create(&p, 1, Fill::Random, 5, true, false).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            a,
            "random fill is deterministic"
        );
        assert!(create(&p, 0, Fill::Zero, 0, true, false).is_err());
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
