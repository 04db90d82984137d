//! The arithmetic-transfer routes of the edge server (`specs/edge-api.md` §9):
//! `POST /blob/setup`, `GET /blob/status`, `POST /objects/from-palette`,
//! `POST /transfers`, `GET /transfers/{id}`. Blocking work (blob writing,
//! compiling, sending) reuses `crate::xfer` and runs off the async workers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pfs_dataplane::iprog::codec::Mode;
use pfs_dataplane::iprog::compile::{CompileError, CompileOptions, Index, compile};
use pfs_dataplane::iprog::proto::Transfer;
use pfs_dataplane::iprog::vblob::{FILLER_OFFSET, Identity, VblobError, VirtualBlob};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::EdgeError;
use super::policy::Allowlist;
use crate::xfer::compile::ProgramArgs;
use crate::xfer::source::{Source, SourceArgs};
use crate::xfer::transport::{self, LinkArgs, SendArgs};
use crate::xfer::{hex, vblob};

/// Largest blob `POST /blob/setup` writes (1 GiB).
pub const MAX_BLOB_BYTES: u64 = 1 << 30;
/// Largest body `POST /objects/from-palette` accepts (64 MiB).
pub const MAX_OBJECT_BYTES: usize = 64 << 20;
/// Most objects kept (the oldest is dropped beyond this).
pub const MAX_OBJECTS: usize = 64;
/// Backends `POST /transfers` accepts.
pub const BACKENDS: [&str; 3] = ["mmsg", "uring", "std"];

/// Blob file name under `--data-root` when no `--blob-path` is given.
pub const BLOB_FILE: &str = "pfs_vblob.bin";

/// A transfer's live state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransferStatus {
    /// Transfer id.
    pub id: String,
    /// The object sent.
    pub object_id: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    /// The receiver.
    pub peer: String,
    /// I/O backend.
    pub backend: String,
    /// `udp ADDR -> PEER`.
    pub path: String,
    /// Object bytes.
    pub size: u64,
    /// UDP payload bytes sent so far.
    pub bytes_sent: u64,
    /// UDP payload bytes received so far.
    pub bytes_received: u64,
    /// WIN frames sent (with retransmissions).
    pub windows_sent: u64,
    /// Windows in the object.
    pub windows: u64,
    /// WIN frames sent again.
    pub retransmits: u64,
    /// Object bytes / wire bytes so far (both directions).
    pub tx_ratio: f64,
    /// Verified object bytes per second, GB/s (0 until done).
    pub throughput_gbps: f64,
    /// Seconds since the transfer started.
    pub elapsed_s: f64,
    /// The receipt file, once done or failed.
    pub receipt_path: Option<PathBuf>,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
struct StoredObject {
    path: PathBuf,
    size: u64,
}

/// The routes' state: where the blob lives, the objects and the transfers.
#[derive(Debug)]
pub struct XferState {
    blob: Option<PathBuf>,
    asl_store: Option<PathBuf>,
    dir: tempfile::TempDir,
    objects: Mutex<Vec<(String, StoredObject)>>,
    transfers: Mutex<HashMap<String, Arc<Mutex<TransferStatus>>>>,
    next: Mutex<u64>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> EdgeError {
    EdgeError::Internal(format!("{what}: {e}"))
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, EdgeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    T::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            // serde_json names the field in the message; point at it when it does.
            let msg = e.to_string();
            let pointer = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.contains("field"))
                .map(|f| format!("/{f}"))
                .unwrap_or_default();
            EdgeError::bad(pointer, format!("request body: {msg}"))
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    name: String,
    size_bytes: u64,
    seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferRequest {
    object_id: String,
    peer: String,
    #[serde(default = "default_backend")]
    backend: String,
}

fn default_backend() -> String {
    "mmsg".into()
}

impl XferState {
    /// The blob at `blob` (else `ROOT/pfs_vblob.bin`, else none: the routes
    /// answer 403); transfer receipts also go into `asl_store` when given.
    pub fn new(
        blob: Option<PathBuf>,
        data_root: Option<&Path>,
        asl_store: Option<PathBuf>,
    ) -> Result<XferState, EdgeError> {
        Ok(XferState {
            blob: blob.or_else(|| data_root.map(|r| r.join(BLOB_FILE))),
            asl_store,
            dir: tempfile::Builder::new()
                .prefix("pfs-edge-xfer-")
                .tempdir()
                .map_err(|e| internal("objects directory", e))?,
            objects: Mutex::new(Vec::new()),
            transfers: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        })
    }

    fn blob_path(&self) -> Result<&Path, EdgeError> {
        self.blob.as_deref().ok_or_else(|| {
            EdgeError::forbidden(
                "",
                "blob routes are off: this server has neither --blob-path nor --data-root",
            )
        })
    }

    /// `POST /blob/setup`.
    pub fn blob_setup(&self, body: &[u8]) -> Result<(u16, Value), EdgeError> {
        let req: SetupRequest = parse_json(body)?;
        if req.size_bytes > MAX_BLOB_BYTES {
            return Err(EdgeError::TooLarge {
                pointer: "/size_bytes".into(),
                message: format!(
                    "{} bytes: this server writes blobs of at most {MAX_BLOB_BYTES} bytes",
                    req.size_bytes
                ),
            });
        }
        let id = Identity {
            name: req.name,
            size: req.size_bytes,
            seed: req.seed,
        };
        VirtualBlob::new(id.clone()).map_err(|e| {
            let pointer = match e {
                VblobError::Name(_) => "/name",
                _ => "/size_bytes",
            };
            EdgeError::Unprocessable {
                pointer: pointer.into(),
                message: format!("{e} (at least {FILLER_OFFSET} bytes)"),
                offset: None,
            }
        })?;
        let path = self.blob_path()?;
        let s = vblob::setup(id, path, false).map_err(|e| internal("blob setup", e))?;
        Ok((if s.written { 201 } else { 200 }, json!(s)))
    }

    /// `GET /blob/status`.
    pub fn blob_status(&self) -> Result<Value, EdgeError> {
        let path = self.blob_path()?;
        if !path.is_file() {
            return Err(EdgeError::NotFound {
                pointer: String::new(),
                message: "no blob: create it with POST /blob/setup".into(),
            });
        }
        let s = vblob::status(path).map_err(|e| internal("blob status", e))?;
        Ok(json!(s))
    }

    /// `POST /objects/from-palette`: `body` is the object's bytes (the raw body or
    /// multipart field `file`, taken apart by the server).
    pub fn from_palette(&self, body: &[u8]) -> Result<Value, EdgeError> {
        let blob = self.blob_path()?;
        if !blob.is_file() {
            return Err(EdgeError::NotFound {
                pointer: String::new(),
                message: "no blob: create it with POST /blob/setup".into(),
            });
        }
        if body.is_empty() {
            return Err(EdgeError::bad("", "request body: empty object"));
        }
        let src = Source::open(&SourceArgs {
            blob: blob.to_path_buf(),
            base: None,
        })
        .map_err(|e| internal("blob", e))?;
        let prog = compile(
            src.bytes(),
            &Index::palette(),
            body,
            CompileOptions { allow_raw: false },
        )
        .map_err(|e| match e {
            CompileError::Unmatchable { offset } => EdgeError::Unprocessable {
                pointer: String::new(),
                message: format!(
                    "byte at offset {offset} cannot be expressed as a BREF into the blob (palette-only: no RAW)"
                ),
                offset: Some(offset),
            },
            other => EdgeError::bad("", format!("object: {other}")),
        })?;
        // The object's file is named by its BLAKE3, and so is its MFST name.
        let object_id = blake3::hash(body).to_hex().to_string();
        let t = Transfer::new(
            Mode::Pvrt,
            src.bytes().len() as u64,
            src.fingerprint,
            &prog.ops,
            body,
            &object_id,
        )
        .map_err(|e| EdgeError::bad("", format!("object: {e}")))?;
        let path = self.dir.path().join(&object_id);
        std::fs::write(&path, body).map_err(|e| internal("storing the object", e))?;
        let size = body.len() as u64;
        {
            let mut objs = self.objects.lock().unwrap_or_else(|p| p.into_inner());
            objs.retain(|(id, _)| *id != object_id);
            if objs.len() >= MAX_OBJECTS {
                let (_, old) = objs.remove(0);
                let _ = std::fs::remove_file(old.path);
            }
            objs.push((object_id.clone(), StoredObject { path, size }));
        }
        let wire = t.wire_bytes();
        Ok(json!({
            "object_id": object_id,
            "size": size,
            "blake3": object_id,
            "wire_size": wire,
            "tx_ratio": size as f64 / wire.max(1) as f64,
            "brefs": prog.brefs,
            "windows": t.windows.len(),
            "blob_fingerprint": hex(&src.fingerprint),
            "policy": "palette-only",
        }))
    }

    /// `POST /transfers`: starts sending an object in the background.
    pub fn start_transfer(&self, body: &[u8], allow: &Allowlist) -> Result<Value, EdgeError> {
        let req: TransferRequest = parse_json(body)?;
        let obj = {
            let objs = self.objects.lock().unwrap_or_else(|p| p.into_inner());
            objs.iter()
                .find(|(id, _)| *id == req.object_id)
                .map(|(_, o)| o.clone())
        }
        .ok_or_else(|| EdgeError::NotFound {
            pointer: "/object_id".into(),
            message: format!(
                "no object {:?} (create it with POST /objects/from-palette)",
                req.object_id
            ),
        })?;
        let peer: SocketAddr = req.peer.parse().map_err(|_| {
            EdgeError::bad("/peer", format!("{:?}: not an IP:PORT address", req.peer))
        })?;
        if !allow.allows(&peer.ip().to_string()) {
            return Err(EdgeError::forbidden(
                "/peer",
                format!(
                    "host {} is not on this server's allowlist (loopback and --allow-host)",
                    peer.ip()
                ),
            ));
        }
        if !BACKENDS.contains(&req.backend.as_str()) {
            return Err(EdgeError::bad(
                "/backend",
                format!("{:?}: expected one of {}", req.backend, BACKENDS.join(", ")),
            ));
        }
        let blob = self.blob_path()?.to_path_buf();
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            format!("t{}", *n)
        };
        let bind = if peer.ip().is_loopback() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let status = Arc::new(Mutex::new(TransferStatus {
            id: id.clone(),
            object_id: req.object_id.clone(),
            state: "running",
            peer: peer.to_string(),
            backend: req.backend.clone(),
            path: format!("udp {bind} -> {peer}"),
            size: obj.size,
            bytes_sent: 0,
            bytes_received: 0,
            windows_sent: 0,
            windows: 0,
            retransmits: 0,
            tx_ratio: 0.0,
            throughput_gbps: 0.0,
            elapsed_s: 0.0,
            receipt_path: None,
            error: None,
        }));
        let args = SendArgs {
            file: obj.path,
            to: peer.to_string(),
            bind: bind.to_string(),
            program: ProgramArgs {
                mode: "pvrt".into(),
                source: SourceArgs { blob, base: None },
                allow_raw: false,
            },
            link: LinkArgs {
                backend: req.backend,
                rto_ms: 20,
                idle_timeout_s: 10,
                max_in_flight: 512,
                receipts: Some(self.dir.path().join("receipts")),
                json: true,
                no_asl: self.asl_store.is_none(),
                asl_store: self.asl_store.clone(),
                loss_percent: 0.0,
                vanish_after: None,
            },
        };
        let st = status.clone();
        std::thread::Builder::new()
            .name(format!("pfs-edge-{id}"))
            .spawn(move || run_transfer(&args, &st))
            .map_err(|e| internal("transfer thread", e))?;
        let snapshot = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.transfers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, status);
        Ok(json!(snapshot))
    }

    /// `GET /transfers/{id}`.
    pub fn transfer(&self, id: &str) -> Result<Value, EdgeError> {
        let t = self
            .transfers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EdgeError::NotFound {
                pointer: String::new(),
                message: format!("no transfer {id:?}"),
            })?;
        let s = t.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(json!(s))
    }
}

fn run_transfer(args: &SendArgs, status: &Mutex<TransferStatus>) {
    let start = Instant::now();
    let size = status.lock().unwrap_or_else(|p| p.into_inner()).size;
    let r = transport::send_observed(args, false, &mut |st, windows| {
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.bytes_sent = st.bytes_out;
        s.bytes_received = st.bytes_in;
        s.windows_sent = st.windows;
        s.windows = windows;
        s.retransmits = st.retransmits;
        s.tx_ratio = size as f64 / (st.bytes_out + st.bytes_in).max(1) as f64;
        s.elapsed_s = start.elapsed().as_secs_f64();
    });
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    s.elapsed_s = start.elapsed().as_secs_f64();
    match r {
        Ok(sum) => {
            let rc = &sum.receipt;
            s.state = "done";
            s.bytes_sent = rc.wire_bytes_sent;
            s.bytes_received = rc.wire_bytes_received;
            s.windows = rc.windows;
            s.windows_sent = rc.stats.windows;
            s.retransmits = rc.retransmits;
            s.tx_ratio = rc.tx_ratio;
            s.throughput_gbps = rc.goodput_gbps;
            s.receipt_path = Some(sum.receipt_path);
        }
        Err(e) => {
            s.state = "failed";
            s.error = Some(format!("{e:#}"));
        }
    }
}
