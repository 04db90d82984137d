//! `pfs asl ...`: the artifact store's commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::record::RecordBody;
use super::{ArtifactKey, AslError, Durability, SnapshotId, Store, StoreOptions};
use crate::usage::bad;

/// Arguments of `pfs asl`.
#[derive(Debug, clap::Args)]
pub struct AslArgs {
    /// Store directory. Default: $PFS_ASL, else $XDG_DATA_HOME/pfs/asl, else
    /// $HOME/.local/share/pfs/asl.
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    /// When appends reach stable storage: fsync (each), group (batched) or none
    /// (at close only).
    #[arg(long, global = true, default_value = "fsync")]
    pub durability: String,
    /// The operation.
    #[command(subcommand)]
    pub cmd: AslCommand,
}

/// `pfs asl` operations.
#[derive(Debug, clap::Subcommand)]
pub enum AslCommand {
    /// Create a store (DIR, else the default location).
    Init {
        /// Directory (created if missing; must be empty).
        dir: Option<PathBuf>,
    },
    /// Store a file's bytes; prints the key (BLAKE3 of the bytes).
    Put {
        /// File to store (`-` for stdin).
        file: PathBuf,
        /// Optional 32-bit type tag (decimal or 0x hex).
        #[arg(long)]
        type_tag: Option<String>,
    },
    /// Write an artifact's bytes to stdout or a file.
    Get {
        /// Key: 64 hex digits.
        key: String,
        /// Output file (default stdout).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Read from this snapshot's view instead of the current one.
        #[arg(long)]
        snapshot: Option<u64>,
    },
    /// List live artifacts: logseq, key, length, type tag.
    Ls {
        /// Only artifacts put at or after this logseq.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Only this type tag (decimal or 0x hex).
        #[arg(long)]
        type_tag: Option<String>,
        /// List a snapshot's view instead of the current one.
        #[arg(long)]
        snapshot: Option<u64>,
    },
    /// Tombstone an artifact (snapshots still see it).
    Rm {
        /// Key: 64 hex digits.
        key: String,
    },
    /// Print every log record.
    Log,
    /// Take a snapshot (prints its id), or drop one with --drop.
    Snapshot {
        /// Drop this snapshot instead.
        #[arg(long)]
        drop: Option<u64>,
    },
    /// List live snapshots: id, clock, artifacts.
    Snapshots,
    /// Rebuild index and bloom from the log, compare, re-hash every block and artifact.
    Verify,
    /// Reclaim blocks that no view (current or snapshot) needs.
    Gc,
    /// Print counters.
    Stat {
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Test helper: append deterministic artifacts, printing each once durable.
    #[command(hide = true)]
    Torture {
        /// Seed of the artifact bytes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// First artifact index.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Artifacts to append.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Largest small artifact.
        #[arg(long, default_value_t = 4096)]
        max_size: usize,
    },
}

/// The default store location: $PFS_ASL, else $XDG_DATA_HOME/pfs/asl, else
/// $HOME/.local/share/pfs/asl.
pub fn default_store() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PFS_ASL")
        .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("pfs/asl")))
        .or_else(|| var("HOME").map(|h| h.join(".local/share/pfs/asl")))
}

/// Bytes of torture artifact `i`: those with `i % 512 == 7` are large (1 MiB + 4 KiB + i % 4096),
/// the others 1..=max_size bytes; all derived from (seed, i) with splitmix64.
pub fn torture_bytes(seed: u64, i: u64, max_size: usize) -> Vec<u8> {
    let mut x = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let len = if i % 512 == 7 {
        (1 << 20) + 4096 + (i % 4096) as usize
    } else {
        1 + (next() % max_size.max(1) as u64) as usize
    };
    let mut v = Vec::with_capacity(len + 8);
    v.extend_from_slice(&i.to_le_bytes());
    while v.len() < len {
        v.extend_from_slice(&next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Maps a store error to the CLI: bad input (exit 2) or a failure (exit 1).
fn cli_err(e: AslError) -> anyhow::Error {
    let user = match &e {
        AslError::Io { .. } | AslError::Poisoned { .. } => e.is_disk_full(),
        _ => true,
    };
    if user { bad(e) } else { anyhow::Error::new(e) }
}

fn parse_tag(s: &str) -> anyhow::Result<u32> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| {
        bad(format!(
            "--type-tag '{s}': expected a 32-bit unsigned integer"
        ))
    })
}

fn parse_key(s: &str) -> anyhow::Result<ArtifactKey> {
    ArtifactKey::parse(s).map_err(cli_err)
}

fn store_dir(a: &AslArgs) -> anyhow::Result<PathBuf> {
    a.store
        .clone()
        .or_else(default_store)
        .ok_or_else(|| bad("no store location: pass --store DIR or set PFS_ASL (HOME is unset)"))
}

fn options(a: &AslArgs) -> anyhow::Result<StoreOptions> {
    let durability: Durability = a
        .durability
        .parse()
        .map_err(|e: String| bad(format!("--durability: {e}")))?;
    Ok(StoreOptions {
        durability,
        ..StoreOptions::default()
    })
}

fn writer(dir: &Path, a: &AslArgs) -> anyhow::Result<Store> {
    Store::open(dir, options(a)?).map_err(cli_err)
}

fn reader(dir: &Path) -> anyhow::Result<Store> {
    Store::open_reader(dir).map_err(cli_err)
}

fn kind_name(b: &RecordBody) -> String {
    match b {
        RecordBody::Session { pid, host } => format!("SESSION pid={pid} host={host}"),
        RecordBody::Put { key, loc, type_tag } => format!(
            "PUT {key} block={} offset={} length={} type_tag={}",
            loc.block_id,
            loc.offset,
            loc.length,
            type_tag.map_or_else(|| "-".into(), |t| t.to_string())
        ),
        RecordBody::Seal {
            block_id, data_len, ..
        } => format!("SEAL block={block_id} data_len={data_len}"),
        RecordBody::Tombstone { key } => format!("TOMBSTONE {key}"),
        RecordBody::Snapshot { artifacts } => format!("SNAPSHOT artifacts={artifacts}"),
        RecordBody::SnapshotDrop { id } => format!("SNAPSHOT_DROP id={id}"),
        RecordBody::Move { key, loc } => format!(
            "MOVE {key} block={} offset={} length={}",
            loc.block_id, loc.offset, loc.length
        ),
        RecordBody::Free { block_id } => format!("FREE block={block_id}"),
    }
}

/// Runs `pfs asl ...`.
pub fn run(a: &AslArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match &a.cmd {
        AslCommand::Init { dir } => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => store_dir(a)?,
            };
            Store::create(&dir, options(a)?)
                .and_then(Store::close)
                .map_err(cli_err)?;
            writeln!(out, "created store {}", dir.display())?;
        }
        AslCommand::Put { file, type_tag } => {
            let tag = type_tag.as_deref().map(parse_tag).transpose()?;
            let dir = store_dir(a)?;
            let bytes = if file.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                    .context("reading stdin")?;
                v
            } else {
                std::fs::read(file)
                    .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?
            };
            let mut s = writer(&dir, a)?;
            let r = s.put(&bytes, tag).map_err(cli_err)?;
            s.close().map_err(cli_err)?;
            writeln!(out, "{}", r.key)?;
        }
        AslCommand::Get {
            key,
            output,
            snapshot,
        } => {
            let key = parse_key(key)?;
            let s = reader(&store_dir(a)?)?;
            let bytes = match snapshot {
                Some(id) => s.mount_snapshot(SnapshotId(*id)).and_then(|h| h.get(&key)),
                None => s.get(&key),
            }
            .map_err(cli_err)?;
            match output {
                Some(p) => {
                    std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?
                }
                None => out.write_all(&bytes)?,
            }
        }
        AslCommand::Ls {
            since,
            type_tag,
            snapshot,
        } => {
            let tag = type_tag.as_deref().map(parse_tag).transpose()?;
            let s = reader(&store_dir(a)?)?;
            let tag_s = |t: Option<u32>| t.map_or_else(|| "-".into(), |t| t.to_string());
            match snapshot {
                Some(id) => {
                    let h = s.mount_snapshot(SnapshotId(*id)).map_err(cli_err)?;
                    for (k, t, l) in h.list() {
                        if l >= *since && (tag.is_none() || t == tag) {
                            writeln!(out, "{l} {k} {}", tag_s(t))?;
                        }
                    }
                }
                None => {
                    for (k, e) in s.list(*since, tag) {
                        writeln!(
                            out,
                            "{} {k} {} {}",
                            e.logseq,
                            e.loc.length,
                            tag_s(e.type_tag)
                        )?;
                    }
                }
            }
        }
        AslCommand::Rm { key } => {
            let key = parse_key(key)?;
            let mut s = writer(&store_dir(a)?, a)?;
            let l = s.tombstone(&key).map_err(cli_err)?;
            s.close().map_err(cli_err)?;
            writeln!(out, "tombstoned {key} at logseq {l}")?;
        }
        AslCommand::Log => {
            let s = reader(&store_dir(a)?)?;
            for (off, r) in s.records().map_err(cli_err)? {
                let h = r.header;
                writeln!(
                    out,
                    "{} @{off} clock={} uid={} host={:016x} {}",
                    h.logseq,
                    h.clock_ns,
                    h.uid,
                    h.host_id,
                    kind_name(&r.body)
                )?;
            }
        }
        AslCommand::Snapshot { drop } => {
            let mut s = writer(&store_dir(a)?, a)?;
            match drop {
                Some(id) => {
                    s.drop_snapshot(SnapshotId(*id)).map_err(cli_err)?;
                    writeln!(out, "dropped snapshot {id}")?;
                }
                None => {
                    let id = s.snapshot().map_err(cli_err)?;
                    writeln!(out, "{}", id.0)?;
                }
            }
            s.close().map_err(cli_err)?;
        }
        AslCommand::Snapshots => {
            let s = reader(&store_dir(a)?)?;
            let counts: std::collections::HashMap<u64, u64> = s
                .records()
                .map_err(cli_err)?
                .into_iter()
                .filter_map(|(_, r)| match r.body {
                    RecordBody::Snapshot { artifacts } => Some((r.header.logseq, artifacts)),
                    _ => None,
                })
                .collect();
            for (id, clock) in s.snapshots() {
                let n = counts.get(&id.0).copied().unwrap_or(0);
                writeln!(out, "{} clock={clock} artifacts={n}", id.0)?;
            }
        }
        AslCommand::Verify => {
            let dir = store_dir(a)?;
            let mut s = match Store::open(&dir, options(a)?) {
                Ok(s) => s,
                Err(AslError::Locked { .. }) => reader(&dir)?,
                Err(e) => return Err(cli_err(e)),
            };
            let r = s.verify().map_err(cli_err)?;
            for n in &r.notes {
                writeln!(out, "note: {n}")?;
            }
            for p in &r.problems {
                writeln!(out, "problem: {p}")?;
            }
            writeln!(
                out,
                "verified {} records, {} blocks, {} artifacts: {} problems",
                r.records,
                r.blocks_checked,
                r.artifacts_checked,
                r.problems.len()
            )?;
            if !r.problems.is_empty() {
                anyhow::bail!(
                    "store {}: verify found {} problems (first: {})",
                    dir.display(),
                    r.problems.len(),
                    r.problems[0]
                );
            }
        }
        AslCommand::Gc => {
            let mut s = writer(&store_dir(a)?, a)?;
            let r = s.gc().map_err(cli_err)?;
            s.close().map_err(cli_err)?;
            writeln!(
                out,
                "freed {} blocks ({} bytes), moved {} artifacts, dropped {} unreachable artifacts",
                r.blocks_freed, r.bytes_freed, r.artifacts_moved, r.artifacts_dropped
            )?;
        }
        AslCommand::Stat { json } => {
            let st = reader(&store_dir(a)?)?.stat();
            if *json {
                writeln!(out, "{}", serde_json::to_string(&st)?)?;
            } else {
                let v = serde_json::to_value(&st)?;
                if let Some(m) = v.as_object() {
                    for (k, v) in m {
                        writeln!(
                            out,
                            "{k}: {}",
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                        )?;
                    }
                }
            }
        }
        AslCommand::Torture {
            seed,
            start,
            count,
            max_size,
        } => {
            let mut s = writer(&store_dir(a)?, a)?;
            writeln!(out, "R")?;
            out.flush()?;
            let mut unreported: Vec<(u64, ArtifactKey, u64)> = Vec::new();
            for i in *start..start.saturating_add(*count) {
                let bytes = torture_bytes(*seed, i, *max_size);
                let r = s.put(&bytes, Some((i % 3) as u32)).map_err(cli_err)?;
                unreported.push((r.logseq, r.key, i));
                let d = s.durable_logseq();
                let mut keep = Vec::new();
                for (l, k, i) in unreported.drain(..) {
                    if l <= d {
                        writeln!(out, "D {l} {k} {i}")?;
                    } else {
                        keep.push((l, k, i));
                    }
                }
                unreported = keep;
                out.flush()?;
            }
            s.close().map_err(cli_err)?;
            for (l, k, i) in unreported {
                writeln!(out, "D {l} {k} {i}")?;
            }
        }
    }
    Ok(())
}
