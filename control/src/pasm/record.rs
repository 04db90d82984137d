//! Runs recorded in the artifact store (`specs/pasm.md` §8): each run's program,
//! planfile and event log are stored as type-tagged artifacts, tied together by
//! a run manifest (itself an artifact) that `pfs pasm runs` lists.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::PasmError;
use super::runner::{Outcome, RunReport};
use crate::asl::{ArtifactKey, AslError, Store, StoreOptions};

/// Type tag of a program's bytes (`"pa"` 0x0001).
pub const TAG_PROGRAM: u32 = 0x7061_0001;
/// Type tag of a planfile.
pub const TAG_PLANFILE: u32 = 0x7061_0002;
/// Type tag of an event log (JSONL).
pub const TAG_EVENTS: u32 = 0x7061_0003;
/// Type tag of a run manifest.
pub const TAG_RUN: u32 = 0x7061_0004;
/// Format tag of run manifests.
pub const MANIFEST_FORMAT: &str = "pfs.pasm.run/1";

/// A run manifest: what a run was and where its artifacts are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// Run id.
    pub run_id: String,
    /// How it ended.
    pub status: String,
    /// Start (RFC 3339).
    pub started: String,
    /// End (RFC 3339).
    pub ended: Option<String>,
    /// Program file, if any.
    pub program_path: Option<String>,
    /// Steps in the program.
    pub steps: u64,
    /// Steps that ended ok.
    pub ok: u64,
    /// Key of the program's bytes.
    pub program: String,
    /// Key of the planfile.
    pub planfile: String,
    /// Key of the event log.
    pub event_log: String,
}

fn asl(e: AslError) -> PasmError {
    PasmError::Asl(e.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, PasmError> {
    std::fs::read(path).map_err(|source| PasmError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })
}

/// Stores a finished run in the store at `dir` (created if missing); returns
/// the manifest and its key.
pub fn record(
    dir: &Path,
    report: &RunReport,
    program: &[u8],
) -> Result<(ArtifactKey, RunManifest), PasmError> {
    let mut store = match Store::open(dir, StoreOptions::default()) {
        Ok(s) => s,
        Err(AslError::NotAStore { .. }) if !dir.join(crate::asl::store::SUPERBLOCK).exists() => {
            Store::create(dir, StoreOptions::default()).map_err(asl)?
        }
        Err(e) => return Err(asl(e)),
    };
    let pf = &report.planfile;
    let plan_bytes = read(&report.planfile_path)?;
    let log_bytes = read(&report.event_log_path)?;
    let prog = store.put(program, Some(TAG_PROGRAM)).map_err(asl)?;
    let plan = store.put(&plan_bytes, Some(TAG_PLANFILE)).map_err(asl)?;
    let log = store.put(&log_bytes, Some(TAG_EVENTS)).map_err(asl)?;
    let status = serde_json::to_value(pf.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let m = RunManifest {
        format: MANIFEST_FORMAT.into(),
        run_id: pf.run_id.clone(),
        status,
        started: pf.started.clone(),
        ended: pf.ended.clone(),
        program_path: pf.program.path.clone(),
        steps: pf.program.steps,
        ok: pf.steps.iter().filter(|s| s.outcome == Outcome::Ok).count() as u64,
        program: prog.key.to_hex(),
        planfile: plan.key.to_hex(),
        event_log: log.key.to_hex(),
    };
    let bytes = serde_json::to_vec(&m).map_err(|e| PasmError::Asl(e.to_string()))?;
    let key = store.put(&bytes, Some(TAG_RUN)).map_err(asl)?.key;
    store.close().map_err(asl)?;
    Ok((key, m))
}

/// Every recorded run in the store at `dir`, oldest run id first.
pub fn runs(dir: &Path) -> Result<Vec<(ArtifactKey, RunManifest)>, PasmError> {
    let store = Store::open_reader(dir).map_err(asl)?;
    let mut out = Vec::new();
    for (k, _) in store.list(0, Some(TAG_RUN)) {
        let bytes = store.get(&k).map_err(asl)?;
        let m: RunManifest = serde_json::from_slice(&bytes)
            .map_err(|e| PasmError::Asl(format!("run manifest {k}: {e}")))?;
        out.push((k, m));
    }
    out.sort_by(|a, b| a.1.run_id.cmp(&b.1.run_id));
    Ok(out)
}

/// One run: its manifest, planfile and event log. `run` is a run id, a unique
/// prefix of one, or a manifest key.
pub fn show(dir: &Path, run: &str) -> Result<(RunManifest, Vec<u8>, Vec<u8>), PasmError> {
    let all = runs(dir)?;
    let hits: Vec<_> = all
        .iter()
        .filter(|(k, m)| m.run_id == run || k.to_hex() == run)
        .collect();
    let hits = if hits.is_empty() {
        all.iter()
            .filter(|(_, m)| m.run_id.starts_with(run))
            .collect()
    } else {
        hits
    };
    let (_, m) = match hits.as_slice() {
        [one] => *one,
        [] => {
            return Err(PasmError::NoSuchRun(format!(
                "no recorded run {run:?} (see `pfs pasm runs`)"
            )));
        }
        many => {
            return Err(PasmError::NoSuchRun(format!(
                "{run:?} matches {} runs; give more of the run id",
                many.len()
            )));
        }
    };
    let store = Store::open_reader(dir).map_err(asl)?;
    let get = |hex: &str| {
        ArtifactKey::parse(hex)
            .and_then(|k| store.get(&k))
            .map_err(asl)
    };
    Ok((m.clone(), get(&m.planfile)?, get(&m.event_log)?))
}
