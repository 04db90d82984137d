//! The edge server (`pfs edge serve`): the axum router over [`ROUTES`], the
//! `/compute` handler for `file://` and `http(s)://` data, the origin mode
//! (`GET /data/PATH` with Range support), `/health` and `/metrics`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use pfs_dataplane::exec::{self, ExecOptions, Instruction};
use pfs_dataplane::kernels::Kernels;
use pfs_dataplane::mapped::MappedFile;

use super::error::EdgeError;
use super::fetch::{FetchOptions, Fetcher};
use super::metrics::Metrics;
use super::policy::{Allowlist, Budget, DataRoot};
use super::request::{self, DataUrl, Limits};
use super::xfer::{MAX_OBJECT_BYTES, XferState};

/// The server's settings (the flags of `pfs edge serve`).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Root for `file://` data and origin mode (`None`: both refused).
    pub data_root: Option<PathBuf>,
    /// Hosts besides loopback that `http(s)://` data may come from.
    pub allow_hosts: Vec<String>,
    /// Bearer token required on `/compute` and `/metrics`.
    pub token: Option<String>,
    /// Daily byte budget.
    pub budget_bytes: Option<u64>,
    /// Daily request budget.
    pub budget_requests: Option<u64>,
    /// Per-request limits.
    pub limits: Limits,
    /// Range fetching.
    pub fetch: FetchOptions,
    /// Longest a whole `/compute` job may take.
    pub job_timeout: Duration,
    /// The VirtualBlob of the transfer routes (`None`: `DATA_ROOT/pfs_vblob.bin`).
    pub blob_path: Option<PathBuf>,
    /// ASL store for the receipts of `POST /transfers` (`None`: not stored).
    pub asl_store: Option<PathBuf>,
}

impl Default for EdgeConfig {
    fn default() -> EdgeConfig {
        EdgeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8811)),
            data_root: None,
            allow_hosts: Vec::new(),
            token: None,
            budget_bytes: None,
            budget_requests: None,
            limits: Limits::default(),
            fetch: FetchOptions::default(),
            job_timeout: Duration::from_secs(300),
            blob_path: None,
            asl_store: None,
        }
    }
}

/// Which handler a route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// `GET /health`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `POST /compute`.
    Compute,
    /// `GET /data/{path}`.
    Data,
    /// `POST /blob/setup`.
    BlobSetup,
    /// `GET /blob/status`.
    BlobStatus,
    /// `POST /objects/from-palette`.
    FromPalette,
    /// `POST /transfers`.
    Transfers,
    /// `GET /transfers/{id}`.
    Transfer,
}

/// One route: method, path as written in the OpenAPI document, path as axum
/// spells it.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method (lowercase, as OpenAPI keys it).
    pub method: &'static str,
    /// Path template in OpenAPI syntax.
    pub path: &'static str,
    /// Path template in axum syntax.
    pub axum_path: &'static str,
    /// Handler.
    pub id: RouteId,
}

/// Every route the server has; the router is built from this table and a test
/// checks it against `specs/edge-openapi.json`.
pub const ROUTES: [Route; 9] = [
    Route {
        method: "get",
        path: "/health",
        axum_path: "/health",
        id: RouteId::Health,
    },
    Route {
        method: "get",
        path: "/metrics",
        axum_path: "/metrics",
        id: RouteId::Metrics,
    },
    Route {
        method: "post",
        path: "/compute",
        axum_path: "/compute",
        id: RouteId::Compute,
    },
    Route {
        method: "get",
        path: "/data/{path}",
        axum_path: "/data/{*path}",
        id: RouteId::Data,
    },
    Route {
        method: "post",
        path: "/blob/setup",
        axum_path: "/blob/setup",
        id: RouteId::BlobSetup,
    },
    Route {
        method: "get",
        path: "/blob/status",
        axum_path: "/blob/status",
        id: RouteId::BlobStatus,
    },
    Route {
        method: "post",
        path: "/objects/from-palette",
        axum_path: "/objects/from-palette",
        id: RouteId::FromPalette,
    },
    Route {
        method: "post",
        path: "/transfers",
        axum_path: "/transfers",
        id: RouteId::Transfers,
    },
    Route {
        method: "get",
        path: "/transfers/{id}",
        axum_path: "/transfers/{id}",
        id: RouteId::Transfer,
    },
];

/// What identifies one version of a file: size, mtime, inode.
type FileKey = (u64, u64, u64);

/// Mapped files, reused while their size, mtime and inode are unchanged.
#[derive(Debug, Default)]
struct MapCache {
    maps: HashMap<PathBuf, (FileKey, Arc<MappedFile>)>,
}

const MAP_CACHE_ENTRIES: usize = 8;

struct AppState {
    config: EdgeConfig,
    root: Option<DataRoot>,
    allow: Allowlist,
    budget: Mutex<Budget>,
    fetcher: Fetcher,
    metrics: Metrics,
    started: Instant,
    maps: Mutex<MapCache>,
    kernels: &'static Kernels,
    xfer: XferState,
}

type Shared = Arc<AppState>;

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AppState {
    fn new(config: EdgeConfig) -> Result<AppState, EdgeError> {
        let kernels = Kernels::get().map_err(|e| EdgeError::Internal(e.to_string()))?;
        let root = match &config.data_root {
            Some(d) => Some(
                DataRoot::new(d)
                    .map_err(|e| EdgeError::bad("--data-root", format!("{}: {e}", d.display())))?,
            ),
            None => None,
        };
        if !(2..=10).contains(&config.fetch.streams) {
            return Err(EdgeError::bad(
                "--streams",
                format!("{} is outside 2..=10", config.fetch.streams),
            ));
        }
        let xfer = XferState::new(
            config.blob_path.clone(),
            config.data_root.as_deref(),
            config.asl_store.clone(),
        )?;
        Ok(AppState {
            xfer,
            allow: Allowlist::new(&config.allow_hosts),
            budget: Mutex::new(Budget::new(config.budget_bytes, config.budget_requests)),
            fetcher: Fetcher::new(config.fetch.clone())?,
            metrics: Metrics::default(),
            started: Instant::now(),
            maps: Mutex::new(MapCache::default()),
            root,
            kernels,
            config,
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), EdgeError> {
        let Some(token) = &self.config.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(EdgeError::Unauthorized),
        }
    }

    fn map(&self, path: &Path) -> Result<Arc<MappedFile>, EdgeError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| EdgeError::Internal(format!("{}: {e}", path.display())))?;
        let key = (
            meta.len(),
            meta.mtime_nsec() as u64 ^ (meta.mtime() as u64) << 30,
            meta.ino(),
        );
        {
            let cache = self.maps.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((k, m)) = cache.maps.get(path)
                && *k == key
            {
                return Ok(m.clone());
            }
        }
        let map = Arc::new(MappedFile::open(path).map_err(|e| EdgeError::Internal(e.to_string()))?);
        let mut cache = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if cache.maps.len() >= MAP_CACHE_ENTRIES {
            cache.maps.clear();
        }
        cache.maps.insert(path.to_path_buf(), (key, map.clone()));
        Ok(map)
    }

    fn charge(&self, bytes: u64) -> Result<(), EdgeError> {
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .charge(now_unix(), bytes)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(state: &AppState, route: &'static str, e: &EdgeError, t: Instant) -> Response {
    state.metrics.error(e.code());
    state.metrics.request(route, e.status(), t.elapsed());
    let mut r = json_response(e.status(), &e.body());
    match e {
        EdgeError::Unauthorized => {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        EdgeError::RangeNotSatisfiable { size, .. } => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        EdgeError::Budget { spent, .. } => {
            if let Ok(v) = HeaderValue::from_str(&spent.resets_in_s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        _ => {}
    }
    r
}

fn router(state: Shared) -> Router {
    let mut r = Router::new();
    for route in ROUTES {
        let method = match route.id {
            RouteId::Health => get(health),
            RouteId::Metrics => get(metrics),
            RouteId::Compute => post(compute),
            RouteId::Data => get(data),
            RouteId::BlobSetup => post(blob_setup),
            RouteId::BlobStatus => get(blob_status),
            RouteId::FromPalette => {
                post(from_palette).layer(axum::extract::DefaultBodyLimit::max(MAX_OBJECT_BYTES))
            }
            RouteId::Transfers => post(transfers),
            RouteId::Transfer => get(transfer),
        };
        r = r.route(route.axum_path, method.fallback(method_not_allowed));
    }
    r.fallback(fallback).with_state(state)
}

async fn fallback(State(state): State<Shared>, uri: axum::http::Uri) -> Response {
    let e = EdgeError::NotFound {
        pointer: String::new(),
        message: format!("no route {} (see specs/edge-openapi.json)", uri.path()),
    };
    error_response(&state, "other", &e, Instant::now())
}

async fn method_not_allowed(
    State(state): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    let allowed = ROUTES
        .iter()
        .filter(|r| {
            uri.path() == r.path
                || (r.id == RouteId::Data && uri.path().starts_with("/data/"))
                || (r.id == RouteId::Transfer && uri.path().starts_with("/transfers/"))
        })
        .map(|r| r.method.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ");
    let e = EdgeError::MethodNotAllowed(format!(
        "{method} {} is not served (allowed: {allowed})",
        uri.path()
    ));
    error_response(&state, "other", &e, Instant::now())
}

async fn health(State(state): State<Shared>) -> Response {
    let t = Instant::now();
    let body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "kernel_backend": state.kernels.backend().name(),
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "origin": state.root.is_some(),
        "streams_per_origin": state.config.fetch.streams,
    });
    state.metrics.request("health", 200, t.elapsed());
    json_response(200, &body)
}

async fn metrics(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    if let Err(e) = state.authorize(&headers) {
        return error_response(&state, "metrics", &e, t);
    }
    state.metrics.request("metrics", 200, t.elapsed());
    let mut r = Response::new(Body::from(state.metrics.render(state.started.elapsed())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn compute(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    match run_compute(&state, &headers, body, t).await {
        Ok(v) => {
            state.metrics.request("compute", 200, t.elapsed());
            json_response(200, &v)
        }
        Err(e) => error_response(&state, "compute", &e, t),
    }
}

async fn run_compute(
    state: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    t: Instant,
) -> Result<serde_json::Value, EdgeError> {
    state.authorize(headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            EdgeError::TooLarge {
                pointer: String::new(),
                message: format!("request body: {e}"),
            }
        } else {
            EdgeError::bad("", format!("request body: {e}"))
        }
    })?;
    let req = request::parse(&body, state.config.limits)?;
    let bytes_processed = req.bytes();
    let instrs = Arc::new(req.instructions);
    let (results, fetched, ranges, hits, misses, cache_status) = match &req.data_url {
        DataUrl::File(path) => {
            let root = state.root.as_ref().ok_or_else(|| {
                EdgeError::forbidden(
                    "/data_url",
                    "file:// data is refused: this server has no --data-root",
                )
            })?;
            let real = root.confine(path, "/data_url")?;
            // Mapping pre-faults the file: keep it off the async workers.
            let st = state.clone();
            let map = tokio::task::spawn_blocking(move || st.map(&real))
                .await
                .map_err(|e| EdgeError::Internal(format!("map task: {e}")))??;
            let size = map.bytes().len() as u64;
            exec::validate(&instrs, size).map_err(|e| match e {
                exec::ExecError::ZeroLength { index } | exec::ExecError::PastEnd { index, .. } => {
                    EdgeError::PastEnd {
                        pointer: format!("/instructions/{index}"),
                        message: format!("{}: {e}", req.data_url_text),
                    }
                }
            })?;
            state.charge(bytes_processed)?;
            let kernels = state.kernels;
            let instrs2 = instrs.clone();
            let results =
                tokio::task::spawn_blocking(move || compute_mapped(kernels, &map, &instrs2))
                    .await
                    .map_err(|e| EdgeError::Internal(format!("compute task: {e}")))??;
            (results, 0, 0, 0, 0, "NONE")
        }
        DataUrl::Http(url) => {
            state.allow.check(url)?;
            let planned: u64 = state.fetcher.plan(&instrs)?.iter().map(|r| r.length).sum();
            state.charge(planned)?;
            let job = state.fetcher.run(state.kernels, url, instrs.clone());
            let report = tokio::time::timeout(state.config.job_timeout, job)
                .await
                .map_err(|_| EdgeError::GatewayTimeout {
                    origin: url.origin().ascii_serialization(),
                    message: format!(
                        "the job did not finish within {} s",
                        state.config.job_timeout.as_secs_f64()
                    ),
                })??;
            let status = report.cache_status();
            (
                report.results,
                report.bytes_fetched,
                report.requests,
                report.hits,
                report.misses,
                status,
            )
        }
    };
    state
        .metrics
        .job(bytes_processed, fetched, ranges, hits, misses);
    Ok(serde_json::json!({
        "results": results,
        "timing": {
            "bytes_processed": bytes_processed,
            "bytes_fetched": fetched,
            "ranges": ranges,
            "elapsed_ms": t.elapsed().as_secs_f64() * 1e3,
        },
        "cache": {"status": cache_status, "hits": hits, "misses": misses},
        "backend": state.kernels.backend().name(),
    }))
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, EdgeError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            EdgeError::TooLarge {
                pointer: String::new(),
                message: format!("request body: {e}"),
            }
        } else {
            EdgeError::bad("", format!("request body: {e}"))
        }
    })
}

/// Runs a transfer route: authorization, then `f` off the async workers; the
/// answer is JSON with the status `f` returns.
async fn xfer_call(
    state: Shared,
    route: &'static str,
    headers: &HeaderMap,
    f: impl FnOnce(&AppState) -> Result<(u16, serde_json::Value), EdgeError> + Send + 'static,
) -> Response {
    let t = Instant::now();
    if let Err(e) = state.authorize(headers) {
        return error_response(&state, route, &e, t);
    }
    let st = state.clone();
    let r = tokio::task::spawn_blocking(move || f(&st))
        .await
        .unwrap_or_else(|e| Err(EdgeError::Internal(format!("{route} task: {e}"))));
    match r {
        Ok((status, v)) => {
            state.metrics.request(route, status, t.elapsed());
            json_response(status, &v)
        }
        Err(e) => error_response(&state, route, &e, t),
    }
}

async fn blob_setup(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    xfer_call(state, "blob_setup", &headers, move |s| {
        s.xfer.blob_setup(&body_bytes(body)?)
    })
    .await
}

async fn blob_status(State(state): State<Shared>, headers: HeaderMap) -> Response {
    xfer_call(state, "blob_status", &headers, |s| {
        Ok((200, s.xfer.blob_status()?))
    })
    .await
}

async fn from_palette(State(state): State<Shared>, req: axum::extract::Request) -> Response {
    let headers = req.headers().clone();
    let body = object_body(req, &state).await;
    xfer_call(state, "from_palette", &headers, move |s| {
        Ok((201, s.xfer.from_palette(&body?)?))
    })
    .await
}

/// The multipart field `POST /objects/from-palette` takes the object from.
pub const OBJECT_FIELD: &str = "file";

/// The object's bytes: the raw body, or field [`OBJECT_FIELD`] of a
/// `multipart/form-data` body (`specs/edge-api.md` §9). Both are bounded by the
/// route's body limit.
async fn object_body(req: axum::extract::Request, state: &Shared) -> Result<Bytes, EdgeError> {
    use axum::extract::{FromRequest, Multipart};
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !multipart {
        return body_bytes(Bytes::from_request(req, state).await);
    }
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| EdgeError::bad("", format!("multipart body: {}", e.body_text())))?;
    let field_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            EdgeError::TooLarge {
                pointer: format!("/{OBJECT_FIELD}"),
                message: format!("multipart body: {}", e.body_text()),
            }
        } else {
            EdgeError::bad("", format!("multipart body: {}", e.body_text()))
        }
    };
    while let Some(field) = form.next_field().await.map_err(field_err)? {
        if field.name() == Some(OBJECT_FIELD) {
            return field.bytes().await.map_err(field_err);
        }
    }
    Err(EdgeError::bad(
        format!("/{OBJECT_FIELD}"),
        format!("multipart body: no field named {OBJECT_FIELD:?} (the object's bytes go there)"),
    ))
}

async fn transfers(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    xfer_call(state, "transfers", &headers, move |s| {
        Ok((202, s.xfer.start_transfer(&body_bytes(body)?, &s.allow)?))
    })
    .await
}

async fn transfer(
    State(state): State<Shared>,
    headers: HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
) -> Response {
    xfer_call(state, "transfer", &headers, move |s| {
        let UrlPath(id) = id.map_err(|e| EdgeError::bad("", format!("path: {e}")))?;
        Ok((200, s.xfer.transfer(&id)?))
    })
    .await
}

/// Jobs smaller than this run on the calling (blocking) thread; larger ones on
/// pinned workers.
const INLINE_BYTES: u64 = 4 << 20;

fn compute_mapped(
    kernels: &Kernels,
    map: &MappedFile,
    instrs: &[Instruction],
) -> Result<Vec<u64>, EdgeError> {
    let data = map.bytes();
    let total: u64 = instrs.iter().map(|i| i.length).sum();
    if total < INLINE_BYTES {
        return Ok(instrs
            .iter()
            .map(|i| {
                kernels.eval(
                    i.op,
                    &data[i.offset as usize..(i.offset + i.length) as usize],
                )
            })
            .collect());
    }
    exec::execute(kernels, data, instrs, ExecOptions::default())
        .map(|r| r.results)
        .map_err(|e| EdgeError::Internal(e.to_string()))
}

/// A slice of a shared map that a response body can own.
struct MapSlice {
    map: Arc<MappedFile>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        &self.map.bytes()[self.start..self.end]
    }
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable Range: the whole object (200).
    Whole,
    /// Bytes `start..=end` (206).
    Part(u64, u64),
    /// Nothing satisfiable (416).
    Unsatisfiable,
}

/// Parses a `Range` header for an object of `size` bytes (RFC 9110 §14): one
/// `bytes=A-B`, `bytes=A-` or `bytes=-N`; a malformed header or several ranges
/// are answered with the whole object, as the RFC allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeAsk::Whole;
        };
        if n == 0 || size == 0 {
            return RangeAsk::Unsatisfiable;
        }
        return RangeAsk::Part(size - n.min(size), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAsk::Whole;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeAsk::Whole,
        }
    };
    if start >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(start, end.min(size - 1))
}

async fn data(
    State(state): State<Shared>,
    path: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let t = Instant::now();
    let path = match path {
        Ok(UrlPath(p)) => p,
        Err(e) => {
            let e = EdgeError::bad("", format!("path: {e}"));
            return error_response(&state, "data", &e, t);
        }
    };
    // Resolving and mapping touch the disk: keep them off the async workers.
    let st = state.clone();
    let served = tokio::task::spawn_blocking(move || serve_data(&st, &path, &headers))
        .await
        .unwrap_or_else(|e| Err(EdgeError::Internal(format!("data task: {e}"))));
    match served {
        Ok(r) => {
            state
                .metrics
                .request("data", r.status().as_u16(), t.elapsed());
            r
        }
        Err(e) => error_response(&state, "data", &e, t),
    }
}

fn serve_data(state: &AppState, path: &str, headers: &HeaderMap) -> Result<Response, EdgeError> {
    let root = state.root.as_ref().ok_or_else(|| EdgeError::NotFound {
        pointer: String::new(),
        message: "origin mode is off: this server has no --data-root".into(),
    })?;
    let real = root.confine(Path::new(path), "")?;
    let map = state.map(&real)?;
    let size = map.bytes().len() as u64;
    let etag = {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&real)
            .map_err(|e| EdgeError::Internal(format!("{}: {e}", real.display())))?;
        format!(
            "\"{:x}-{:x}-{:x}\"",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        )
    };
    let ask = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, end) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, size),
        RangeAsk::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        RangeAsk::Unsatisfiable => {
            return Err(EdgeError::RangeNotSatisfiable {
                size,
                message: format!("{path} has {size} bytes; the Range asks for none of them"),
            });
        }
    };
    let body = Bytes::from_owner(MapSlice {
        map,
        start: start as usize,
        end: end as usize,
    });
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// A server running on its own runtime thread (for tests, the demo and benches).
#[derive(Debug)]
pub struct EdgeServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EdgeServer {
    /// Binds `config.listen` (port 0 picks one) and serves on a new thread.
    pub fn start(config: EdgeConfig) -> Result<EdgeServer, EdgeError> {
        let state = Arc::new(AppState::new(config.clone())?);
        let std_listener = std::net::TcpListener::bind(config.listen)
            .map_err(|e| EdgeError::bad("--listen", format!("{}: {e}", config.listen)))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| EdgeError::Internal(format!("listener: {e}")))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| EdgeError::Internal(format!("listener: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pfs-edge")
            .build()
            .map_err(|e| EdgeError::Internal(format!("runtime: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pfs-edge-serve".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, router(state))
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| EdgeError::Internal(format!("server thread: {e}")))?;
        Ok(EdgeServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Serves on the current runtime until Ctrl-C or SIGTERM (`pfs edge serve`).
pub async fn serve_until_signal(config: EdgeConfig) -> Result<(), EdgeError> {
    let state = Arc::new(AppState::new(config.clone())?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| EdgeError::bad("--listen", format!("{}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| EdgeError::Internal(format!("listener: {e}")))?;
    println!(
        "pfs edge serve: listening on http://{addr} (kernel backend {}, data root {}, token {})",
        state.kernels.backend(),
        state
            .root
            .as_ref()
            .map_or("none".to_string(), |r| r.path().display().to_string()),
        if config.token.is_some() {
            "required"
        } else {
            "off"
        }
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        })
        .await
        .map_err(|e| EdgeError::Internal(format!("serve: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_forms() {
        assert_eq!(parse_range(None, 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), RangeAsk::Part(0, 4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), RangeAsk::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), RangeAsk::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), RangeAsk::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), RangeAsk::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=4-2"), 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), RangeAsk::Whole);
    }
}
