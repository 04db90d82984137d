//! The command-line side: `pfs edge serve`, `pfs compute` and `pfs bench edge`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pfs_dataplane::kernels::{Op, Partial};
use pfs_dataplane::ranges::WINDOW;
use pfs_dataplane::stats::Latency;
use serde_json::Value;

use super::error::EdgeError;
use super::fetch::FetchOptions;
use super::request::Limits;
use super::server::{EdgeConfig, serve_until_signal};
use crate::bench_local::LocalReport;
use crate::usage::bad;

/// Arguments of `pfs edge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8811")]
    pub listen: SocketAddr,
    /// Directory `file://` data must live under; also served at `GET /data/PATH`.
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// A host (besides loopback) that `http(s)://` data may come from; repeatable.
    #[arg(long = "allow-host")]
    pub allow_host: Vec<String>,
    /// Require `Authorization: Bearer TOKEN` on /compute and /metrics.
    #[arg(long)]
    pub token: Option<String>,
    /// Daily byte budget (bytes computed for file://, bytes fetched for http).
    #[arg(long)]
    pub budget_bytes: Option<u64>,
    /// Daily request budget (/compute requests).
    #[arg(long)]
    pub budget_requests: Option<u64>,
    /// Most instructions in one request.
    #[arg(long, default_value_t = Limits::default().max_instructions)]
    pub max_instructions: usize,
    /// Most bytes (sum of instruction lengths) in one request.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    pub max_bytes: u64,
    /// Concurrent Range streams per origin (2..=10).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Origin connect timeout and longest wait for headers or the next chunk, ms.
    #[arg(long, default_value_t = 10_000)]
    pub origin_timeout_ms: u64,
    /// Longest a whole /compute job may take, seconds.
    #[arg(long, default_value_t = 300)]
    pub job_timeout_s: u64,
    /// A PEM certificate to trust for https:// origins besides the web roots.
    #[arg(long)]
    pub origin_ca: Option<PathBuf>,
    /// The VirtualBlob of `/blob/*`, `/objects/from-palette` and `/transfers`
    /// (default: `DATA_ROOT/pfs_vblob.bin`; neither: those routes answer 403).
    #[arg(long)]
    pub blob_path: Option<PathBuf>,
    /// Do not store the receipts of `POST /transfers` in the ASL store
    /// ($PFS_ASL, else $XDG_DATA_HOME/pfs/asl, else ~/.local/share/pfs/asl).
    #[arg(long)]
    pub no_asl: bool,
}

impl ServeArgs {
    /// The server configuration these flags describe (reads `--origin-ca`).
    pub fn config(&self) -> anyhow::Result<EdgeConfig> {
        let origin_ca_pem = match &self.origin_ca {
            Some(p) => Some(
                std::fs::read(p).map_err(|e| bad(format!("--origin-ca: {}: {e}", p.display())))?,
            ),
            None => None,
        };
        Ok(EdgeConfig {
            listen: self.listen,
            data_root: self.data_root.clone(),
            allow_hosts: self.allow_host.clone(),
            token: self.token.clone(),
            budget_bytes: self.budget_bytes,
            budget_requests: self.budget_requests,
            limits: Limits {
                max_instructions: self.max_instructions,
                max_bytes: self.max_bytes,
            },
            fetch: FetchOptions {
                streams: self.streams,
                origin_timeout: Duration::from_millis(self.origin_timeout_ms),
                origin_ca_pem,
            },
            job_timeout: Duration::from_secs(self.job_timeout_s),
            blob_path: self.blob_path.clone(),
            asl_store: if self.no_asl {
                None
            } else {
                crate::asl::cli::default_store()
            },
        })
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs `pfs edge serve`.
pub fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(serve_until_signal(args.config()?))
        .map_err(|e| match e {
            EdgeError::BadRequest { pointer, message } => bad(format!("{pointer}: {message}")),
            other => anyhow::Error::new(other),
        })
}

/// A `/compute` call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{endpoint} answered {status}: {message}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The error message (from the JSON body when there is one).
        message: String,
    },
    /// The request could not be made or the answer not read.
    #[error("{endpoint}: {message}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
}

/// A client of one edge server.
#[derive(Debug, Clone)]
pub struct EdgeClient {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
}

impl EdgeClient {
    /// A client for `endpoint` (`http://HOST:PORT`).
    pub fn new(endpoint: &str, token: Option<String>) -> Result<EdgeClient, ClientError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ClientError::Transport {
                endpoint: endpoint.into(),
                message: e.to_string(),
            })?;
        Ok(EdgeClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let transport = |e: reqwest::Error| ClientError::Transport {
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(transport)?;
        let v: Option<Value> = serde_json::from_str(&text).ok();
        if status != 200 {
            let message = v
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str())
                .map_or(text.clone(), str::to_string);
            return Err(ClientError::Status {
                endpoint: self.endpoint.clone(),
                status,
                message,
            });
        }
        v.ok_or_else(|| ClientError::Transport {
            endpoint: self.endpoint.clone(),
            message: format!("answer is not JSON: {text:.200}"),
        })
    }

    /// `POST /compute` with `body`; the parsed answer.
    pub async fn compute(&self, body: &Value) -> Result<Value, ClientError> {
        let req = self
            .http
            .post(format!("{}/compute", self.endpoint))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}/health", self.endpoint)))
            .await
    }
}

/// Arguments of `pfs compute`.
#[derive(Debug, clap::Args)]
pub struct ComputeArgs {
    /// The edge server, e.g. http://127.0.0.1:8811.
    #[arg(long, default_value = "http://127.0.0.1:8811")]
    pub endpoint: String,
    /// The data: file:///PATH (under the server's --data-root) or http(s)://...
    #[arg(long)]
    pub data_url: String,
    /// Instructions as JSON (`[{"op":"counteq","imm":0,"offset":0,"length":1048576}]`)
    /// or `@FILE`.
    #[arg(long)]
    pub instructions: String,
    /// Bearer token.
    #[arg(long)]
    pub token: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pfs compute`.
pub fn run_compute(args: &ComputeArgs) -> anyhow::Result<()> {
    let text = match args.instructions.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| bad(format!("--instructions: {path}: {e}")))?,
        None => args.instructions.clone(),
    };
    let instructions: Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("--instructions: not JSON: {e}")))?;
    if !instructions.is_array() {
        return Err(bad(
            "--instructions: must be a JSON array of {op, imm, offset, length}",
        ));
    }
    let body = serde_json::json!({"data_url": args.data_url, "instructions": instructions});
    let client = EdgeClient::new(&args.endpoint, args.token.clone())?;
    let v = runtime()?
        .block_on(client.compute(&body))
        .map_err(|e| match e {
            ClientError::Status { status, .. } if (400..500).contains(&status) => bad(e),
            other => anyhow::Error::new(other),
        })?;
    if args.json {
        println!("{v}");
        return Ok(());
    }
    let list = instructions.as_array().map_or(&[][..], Vec::as_slice);
    let results = v["results"].as_array().map_or(&[][..], Vec::as_slice);
    for (i, (ins, r)) in list.iter().zip(results).enumerate() {
        println!(
            "instructions[{i}] {} imm={} offset={} length={} -> {}",
            ins["op"].as_str().unwrap_or("?"),
            ins.get("imm").unwrap_or(&Value::Null),
            ins["offset"],
            ins["length"],
            r
        );
    }
    println!(
        "bytes_processed={} bytes_fetched={} elapsed_ms={:.3} cache={} (hits {}, misses {}) backend={}",
        v["timing"]["bytes_processed"],
        v["timing"]["bytes_fetched"],
        v["timing"]["elapsed_ms"].as_f64().unwrap_or(0.0),
        v["cache"]["status"].as_str().unwrap_or("?"),
        v["cache"]["hits"],
        v["cache"]["misses"],
        v["backend"].as_str().unwrap_or("?"),
    );
    Ok(())
}

/// Arguments of `pfs bench edge`.
#[derive(Debug, clap::Args)]
pub struct EdgeBenchArgs {
    /// The edge server.
    #[arg(long, default_value = "http://127.0.0.1:8811")]
    pub endpoint: String,
    /// The data (file:// under the server's root, or http(s)://).
    #[arg(long)]
    pub data_url: String,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Windows of 1 MiB, from offset 0.
    #[arg(long, default_value_t = 256)]
    pub windows: u64,
    /// Windows per request (each window is one instruction).
    #[arg(long, default_value_t = 1)]
    pub per_request: u64,
    /// Kernel: counteq, xor, add, fnv or crc32c.
    #[arg(long, default_value = "counteq")]
    pub op: String,
    /// Immediate for counteq.
    #[arg(long, allow_negative_numbers = true)]
    pub imm: Option<i64>,
    /// Bearer token.
    #[arg(long)]
    pub token: Option<String>,
    /// Print one JSON object with the keys of `pfs bench local --json`.
    #[arg(long)]
    pub json: bool,
}

/// The edge benchmark's settings.
#[derive(Debug, Clone, Copy)]
pub struct EdgeBench {
    /// Kernel.
    pub op: Op,
    /// Windows of 1 MiB.
    pub windows: u64,
    /// Windows per request.
    pub per_request: u64,
    /// Requests in flight.
    pub concurrency: usize,
}

/// Runs the seed's benchmark against an edge server: `windows` windows of 1 MiB,
/// `per_request` windows (instructions) per `/compute` request, `concurrency`
/// requests in flight. The result combines every window (`specs/kernels.md`
/// §3.3) and is checked against one untimed request covering all windows
/// (for `fnv`, whose windows cannot be combined, that request gives the result).
pub async fn bench(
    client: &EdgeClient,
    data_url: &str,
    b: EdgeBench,
) -> anyhow::Result<LocalReport> {
    if b.windows == 0 {
        return Err(bad("windows: 0 is not allowed"));
    }
    if b.concurrency == 0 {
        return Err(bad("concurrency: 0 is not allowed"));
    }
    if b.per_request == 0 {
        return Err(bad("per-request: 0 is not allowed"));
    }
    let bytes = b
        .windows
        .checked_mul(WINDOW)
        .ok_or_else(|| bad(format!("windows: {} windows overflow", b.windows)))?;
    let health = client.health().await?;
    let backend = health["kernel_backend"].as_str().unwrap_or("?").to_string();
    let requests = b.windows.div_ceil(b.per_request) as usize;
    let instr = move |w: u64| serde_json::json!({"op": b.op.name(), "imm": b.op.imm(), "offset": w * WINDOW, "length": WINDOW});
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..b.concurrency.min(requests) {
        let (client, next, data_url) = (client.clone(), next.clone(), data_url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latency::new();
            let mut got: Vec<(u64, Vec<u64>)> = Vec::new();
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests {
                    break;
                }
                let first = r as u64 * b.per_request;
                let last = (first + b.per_request).min(b.windows);
                let body = serde_json::json!({
                    "data_url": data_url,
                    "instructions": (first..last).map(instr).collect::<Vec<_>>(),
                });
                let t = Instant::now();
                let v = client.compute(&body).await?;
                lat.record_ns(t.elapsed().as_nanos() as u64);
                let results: Vec<u64> = v["results"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                if results.len() as u64 != last - first {
                    anyhow::bail!(
                        "{} results for {} windows: {v}",
                        results.len(),
                        last - first
                    );
                }
                got.push((first, results));
            }
            Ok::<_, anyhow::Error>((lat, got))
        }));
    }
    let mut latency = Latency::new();
    let mut per_window = vec![0u64; b.windows as usize];
    for t in tasks {
        let (lat, got) = t.await??;
        latency.merge(&lat);
        for (first, results) in got {
            for (i, r) in results.into_iter().enumerate() {
                per_window[first as usize + i] = r;
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let whole = client
        .compute(&serde_json::json!({
            "data_url": data_url,
            "instructions": [{"op": b.op.name(), "imm": b.op.imm(), "offset": 0, "length": bytes}],
        }))
        .await?;
    let whole = whole["results"][0]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no result in {whole}"))?;
    let (result, verified) = if b.op.is_splittable() {
        let combined = per_window
            .iter()
            .fold(Partial::empty(b.op), |acc, &v| {
                acc.then(
                    b.op,
                    Partial {
                        value: v,
                        len: WINDOW,
                    },
                )
            })
            .value;
        (combined, Some(combined == whole))
    } else {
        (whole, None)
    };
    if verified == Some(false) {
        anyhow::bail!(
            "the windows combine to {result:#x} but one request over all of them gave {whole:#x}"
        );
    }
    let gbps = bytes as f64 / elapsed_s.max(1e-9) / 1e9;
    let cores = pfs_dataplane::workers::cores().len();
    Ok(LocalReport {
        op: b.op.name().to_string(),
        imm: b.op.imm(),
        result,
        windows: b.windows,
        bytes,
        elapsed_s,
        throughput_gbps: gbps,
        cpupwn_gbps: gbps,
        p50_us: latency.quantile_us(0.50),
        p99_us: latency.quantile_us(0.99),
        backend,
        workers: b.concurrency,
        busy_workers: b.concurrency,
        cores,
        oversubscribed: b.concurrency > cores,
        pinned: vec![None; b.concurrency],
        pages: "remote".into(),
        map_s: 0.0,
        verified,
    })
}

/// Runs `pfs bench edge`.
pub fn run_bench(args: &EdgeBenchArgs) -> anyhow::Result<()> {
    let op = Op::parse(&args.op, args.imm.or(Some(0))).map_err(bad)?;
    let client = EdgeClient::new(&args.endpoint, args.token.clone())?;
    let b = EdgeBench {
        op,
        windows: args.windows,
        per_request: args.per_request,
        concurrency: args.concurrency,
    };
    let r = runtime()?.block_on(bench(&client, &args.data_url, b))?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "pfs bench edge {} {}: op={} imm={} backend={} per_request={}",
        args.endpoint, args.data_url, r.op, r.imm, r.backend, args.per_request
    );
    println!(
        "windows={} bytes={} elapsed_s={:.4} throughput={:.2} GB/s cpupwn={:.2} GB/s",
        r.windows, r.bytes, r.elapsed_s, r.throughput_gbps, r.cpupwn_gbps
    );
    println!(
        "request latency p50={:.1} us p99={:.1} us; concurrency={}; result={} ({})",
        r.p50_us,
        r.p99_us,
        r.workers,
        r.result,
        match r.verified {
            Some(true) => "windows combine to the one-request result",
            Some(false) => "MISMATCH",
            None => "fnv: one-request result",
        }
    );
    Ok(())
}
