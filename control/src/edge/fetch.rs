//! HTTP Range fetching for `http://` and `https://` data (`specs/edge-api.md`
//! §4): the instructions' spans are planned into 1 MiB aligned, coalesced ranges
//! (split so that several streams can run), fetched with up to `streams`
//! concurrent requests per origin, and folded as chunks arrive
//! ([`super::stream`]). Cache headers are counted; a MISS streak delays the next
//! request to that origin ([`super::policy::Etiquette`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pfs_dataplane::exec::Instruction;
use pfs_dataplane::kernels::Kernels;
use pfs_dataplane::ranges::{self, PlanOptions, WINDOW, Window};
use reqwest::header::{HeaderMap, RANGE};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::error::EdgeError;
use super::policy::{CacheOutcome, Etiquette, classify};
use super::stream::{JobFold, RangeDone, RangeFold};

/// The most a planned range may hold (bounds what `fnv` instructions keep).
pub const MAX_RANGE: u64 = 8 * WINDOW;

/// Origins remembered before idle ones are forgotten.
const MAX_ORIGINS: usize = 256;

/// Fetcher settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Concurrent streams per origin (2..=10).
    pub streams: usize,
    /// Connect timeout, and the longest wait for response headers or the next
    /// body chunk.
    pub origin_timeout: Duration,
    /// A PEM certificate trusted for `https://` origins besides the built-in web
    /// roots (webpki-roots), e.g. a private CA.
    pub origin_ca_pem: Option<Vec<u8>>,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            streams: 4,
            origin_timeout: Duration::from_secs(10),
            origin_ca_pem: None,
        }
    }
}

/// Per-origin state shared by every job.
#[derive(Debug)]
struct Origin {
    streams: Semaphore,
    etiquette: Mutex<Etiquette>,
}

/// What a job fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// One result per instruction.
    pub results: Vec<u64>,
    /// Body bytes received.
    pub bytes_fetched: u64,
    /// Range requests made.
    pub requests: u64,
    /// Responses with a cache HIT.
    pub hits: u64,
    /// Responses with a cache MISS.
    pub misses: u64,
    /// Size of the object.
    pub size: u64,
}

impl FetchReport {
    /// `HIT`, `MISS`, `MIXED`, or `NONE` (no cache headers).
    pub fn cache_status(&self) -> &'static str {
        match (self.hits, self.misses) {
            (0, 0) => "NONE",
            (_, 0) => "HIT",
            (0, _) => "MISS",
            _ => "MIXED",
        }
    }
}

/// Fetches ranges for jobs; one per server.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOptions,
    origins: Mutex<HashMap<String, Arc<Origin>>>,
}

/// One range's outcome.
#[derive(Debug)]
enum RangeOutcome {
    Done {
        done: RangeDone,
        size: u64,
        etag: Option<String>,
        cache: CacheOutcome,
    },
    /// 416: the range starts at or past the end.
    PastEnd { size: u64 },
}

/// Aborts the tasks still in flight when a job ends early.
struct InFlight(VecDeque<JoinHandle<Result<RangeOutcome, EdgeError>>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

impl Fetcher {
    /// A fetcher; fails only if the TLS backend cannot start.
    pub fn new(opts: FetchOptions) -> Result<Fetcher, EdgeError> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &opts.origin_ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                EdgeError::bad("--origin-ca", format!("not a PEM certificate: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.origin_timeout)
            .read_timeout(opts.origin_timeout)
            .pool_max_idle_per_host(16)
            .user_agent(concat!("pfs-edge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EdgeError::Internal(format!("HTTP client: {e}")))?;
        Ok(Fetcher {
            client,
            opts,
            origins: Mutex::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    fn origin(&self, key: &str) -> Arc<Origin> {
        let mut map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ORIGINS {
            // Forget origins no job is using (their etiquette state restarts).
            map.retain(|_, o| Arc::strong_count(o) > 1);
        }
        map.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Origin {
                    streams: Semaphore::new(self.opts.streams),
                    etiquette: Mutex::new(Etiquette::default()),
                })
            })
            .clone()
    }

    /// Plans the ranges a job fetches: aligned, coalesced, split to at most
    /// `max(1 MiB, covered / streams)` (and [`MAX_RANGE`]) so every stream has work.
    pub fn plan(&self, instrs: &[Instruction]) -> Result<Vec<ranges::Range>, EdgeError> {
        let windows: Vec<Window> = instrs
            .iter()
            .map(|i| Window {
                offset: i.offset,
                length: i.length,
            })
            .collect();
        let plan_err = |e: ranges::RangeError| {
            let msg = e.to_string();
            let pointer = match e {
                ranges::RangeError::ZeroLength { index }
                | ranges::RangeError::Overflow { index, .. }
                | ranges::RangeError::PastEnd { index, .. } => format!("/instructions/{index}"),
                ranges::RangeError::BadAlign(_) => String::new(),
            };
            EdgeError::bad(pointer, msg.replacen("windows", "instructions", 1))
        };
        let whole = ranges::plan(&windows, PlanOptions::default()).map_err(plan_err)?;
        let covered: u64 = whole.iter().map(|r| r.length).sum();
        let per_stream = covered.div_ceil(self.opts.streams as u64);
        let max_len = per_stream.next_multiple_of(WINDOW).clamp(WINDOW, MAX_RANGE);
        ranges::plan(
            &windows,
            PlanOptions {
                max_len: Some(max_len),
                ..PlanOptions::default()
            },
        )
        .map_err(plan_err)
    }

    /// Runs the instructions over the object at `url`.
    pub async fn run(
        &self,
        kernels: &'static Kernels,
        url: &reqwest::Url,
        instrs: Arc<Vec<Instruction>>,
    ) -> Result<FetchReport, EdgeError> {
        let planned = self.plan(&instrs)?;
        let origin_name = url.origin().ascii_serialization();
        let origin = self.origin(&origin_name);
        let mut queue = planned.into_iter();
        let mut inflight = InFlight(VecDeque::new());
        let mut job = JobFold::new(&instrs);
        let mut report = FetchReport {
            results: Vec::new(),
            bytes_fetched: 0,
            requests: 0,
            hits: 0,
            misses: 0,
            size: 0,
        };
        let mut known: Option<(u64, Option<String>)> = None;
        loop {
            while inflight.0.len() < self.opts.streams {
                let Some(r) = queue.next() else { break };
                let task = RangeTask {
                    client: self.client.clone(),
                    url: url.clone(),
                    origin_name: origin_name.clone(),
                    origin: origin.clone(),
                    instrs: instrs.clone(),
                    kernels,
                    offset: r.offset,
                    len: r.length,
                };
                inflight.0.push_back(tokio::spawn(task.run()));
            }
            let Some(front) = inflight.0.pop_front() else {
                break;
            };
            let outcome = front
                .await
                .map_err(|e| EdgeError::Internal(format!("range task: {e}")))??;
            report.requests += 1;
            let size = match &outcome {
                RangeOutcome::Done { size, .. } | RangeOutcome::PastEnd { size } => *size,
            };
            match &known {
                None => {
                    check_size(&instrs, size, url)?;
                    report.size = size;
                    let etag = match &outcome {
                        RangeOutcome::Done { etag, .. } => etag.clone(),
                        RangeOutcome::PastEnd { .. } => None,
                    };
                    known = Some((size, etag));
                }
                Some((s, etag)) => {
                    let new_etag = match &outcome {
                        RangeOutcome::Done { etag, .. } => etag.as_ref(),
                        RangeOutcome::PastEnd { .. } => etag.as_ref(),
                    };
                    if *s != size || etag.as_ref() != new_etag {
                        return Err(EdgeError::BadGateway {
                            origin: origin_name,
                            message: format!(
                                "{url} changed during the job (size {s} → {size}, ETag {etag:?} → {new_etag:?})"
                            ),
                        });
                    }
                }
            }
            match outcome {
                RangeOutcome::Done { done, cache, .. } => {
                    report.bytes_fetched += done.len;
                    match cache {
                        CacheOutcome::Hit => report.hits += 1,
                        CacheOutcome::Miss => report.misses += 1,
                        CacheOutcome::Unknown => {}
                    }
                    job.absorb(kernels, done);
                }
                RangeOutcome::PastEnd { .. } => {
                    // check_size already refused any instruction past `size`, so
                    // a 416 here means the origin contradicted itself.
                    return Err(EdgeError::BadGateway {
                        origin: origin_name,
                        message: format!("{url}: 416 for a range inside its reported size {size}"),
                    });
                }
            }
        }
        if !job.complete() {
            return Err(EdgeError::Internal(
                "planned ranges did not cover every instruction".into(),
            ));
        }
        report.results = job.results();
        Ok(report)
    }
}

/// Refuses the first instruction running past `size`, naming it and its window.
fn check_size(instrs: &[Instruction], size: u64, url: &reqwest::Url) -> Result<(), EdgeError> {
    for (i, ins) in instrs.iter().enumerate() {
        let end = ins.offset.saturating_add(ins.length);
        if end > size {
            let window = ins.offset.max(size) / WINDOW;
            return Err(EdgeError::PastEnd {
                pointer: format!("/instructions/{i}"),
                message: format!(
                    "bytes {}..{end} run past the end of {url} ({size} bytes): window {window} (bytes {}..{}) is {}",
                    ins.offset,
                    window * WINDOW,
                    (window + 1) * WINDOW,
                    if window * WINDOW >= size {
                        "entirely past the end".to_string()
                    } else {
                        format!("only {} bytes long", size - window * WINDOW)
                    }
                ),
            });
        }
    }
    Ok(())
}

struct RangeTask {
    client: reqwest::Client,
    url: reqwest::Url,
    origin_name: String,
    origin: Arc<Origin>,
    instrs: Arc<Vec<Instruction>>,
    kernels: &'static Kernels,
    offset: u64,
    len: u64,
}

impl RangeTask {
    fn gateway(&self, message: String) -> EdgeError {
        EdgeError::BadGateway {
            origin: self.origin_name.clone(),
            message,
        }
    }

    fn transport(&self, e: &reqwest::Error, what: &str) -> EdgeError {
        if e.is_timeout() {
            EdgeError::GatewayTimeout {
                origin: self.origin_name.clone(),
                message: format!(
                    "timed out {what} for bytes {}..{}",
                    self.offset,
                    self.offset + self.len
                ),
            }
        } else {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            self.gateway(format!("{what}: {msg}"))
        }
    }

    async fn run(self) -> Result<RangeOutcome, EdgeError> {
        let _permit = self
            .origin
            .streams
            .acquire()
            .await
            .map_err(|e| EdgeError::Internal(format!("stream semaphore: {e}")))?;
        let delay = self
            .origin
            .etiquette
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let last = self.offset + self.len - 1;
        let resp = self
            .client
            .get(self.url.clone())
            .header(RANGE, format!("bytes={}-{last}", self.offset))
            .send()
            .await
            .map_err(|e| self.transport(&e, "waiting for the response"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let cache = cache_outcome(&headers);
        self.origin
            .etiquette
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(cache);
        let content_range = headers
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match status {
            206 => {}
            416 => {
                let size = content_range
                    .as_deref()
                    .and_then(|c| c.strip_prefix("bytes */"))
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        self.gateway(format!(
                            "416 for bytes={}-{last} without `Content-Range: bytes */SIZE`",
                            self.offset
                        ))
                    })?;
                return Ok(RangeOutcome::PastEnd { size });
            }
            200 => {
                return Err(self.gateway(format!(
                    "does not support Range requests: it answered 200 (whole object) to `Range: bytes={}-{last}` for {}",
                    self.offset, self.url
                )));
            }
            300..=399 => {
                return Err(self.gateway(format!(
                    "answered {status} (redirects are not followed) for {}",
                    self.url
                )));
            }
            _ => {
                return Err(self.gateway(format!("answered {status} for {}", self.url)));
            }
        }
        let (start, end, size) = content_range
            .as_deref()
            .and_then(parse_content_range)
            .ok_or_else(|| {
                self.gateway(format!(
                    "206 without a valid `Content-Range: bytes A-B/SIZE` ({content_range:?})"
                ))
            })?;
        let want_len = (self.offset + self.len)
            .min(size)
            .saturating_sub(self.offset);
        if start != self.offset || end + 1 - start != want_len {
            return Err(self.gateway(format!(
                "asked bytes {}..{} of a {size}-byte object, got Content-Range {start}-{end}",
                self.offset,
                self.offset + want_len
            )));
        }
        let etag = headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut fold = RangeFold::new(&self.instrs, self.offset, want_len);
        let mut resp = resp;
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| self.transport(&e, "reading the body"))?;
            let Some(chunk) = chunk else { break };
            fold.feed(self.kernels, chunk)
                .map_err(|e| self.gateway(format!("{}: {e}", self.url)))?;
        }
        let done = fold
            .finish()
            .map_err(|e| self.gateway(format!("{}: {e}", self.url)))?;
        Ok(RangeOutcome::Done {
            done,
            size,
            etag,
            cache,
        })
    }
}

fn cache_outcome(h: &HeaderMap) -> CacheOutcome {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    classify(get("cf-cache-status"), get("x-cache"), get("age"))
}

/// Parses `bytes A-B/SIZE` (SIZE must be known).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, size) = (
        a.trim().parse::<u64>().ok()?,
        b.trim().parse::<u64>().ok()?,
        size.trim().parse::<u64>().ok()?,
    );
    (a <= b && b < size).then_some((a, b, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pfs_dataplane::kernels::Op;

    #[test]
    fn content_range_parses() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes 5-4/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("bytes 0-9/*"), None);
        assert_eq!(parse_content_range("items 0-9/100"), None);
    }

    #[test]
    fn plan_splits_for_streams_and_caps_ranges() {
        let f = Fetcher::new(FetchOptions::default()).unwrap();
        let ins = |offset, length| Instruction {
            op: Op::Xor,
            offset,
            length,
        };
        let r = f.plan(&[ins(0, 8 * WINDOW)]).unwrap();
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|r| r.length == 2 * WINDOW));
        let r = f.plan(&[ins(0, 256 * WINDOW)]).unwrap();
        assert_eq!(r.len(), 32);
        let r = f.plan(&[ins(10, 1)]).unwrap();
        assert_eq!((r.len(), r[0].offset, r[0].length), (1, 0, WINDOW));
    }

    #[test]
    fn past_end_names_instruction_and_window() {
        let url = reqwest::Url::parse("http://127.0.0.1:1/data/x").unwrap();
        let ins = [
            Instruction {
                op: Op::Xor,
                offset: 0,
                length: 10,
            },
            Instruction {
                op: Op::Xor,
                offset: WINDOW,
                length: WINDOW,
            },
        ];
        let e = check_size(&ins, WINDOW + 100, &url).unwrap_err();
        assert_eq!((e.status(), e.pointer()), (422, "/instructions/1"));
        assert!(e.to_string().contains("window 1"), "{e}");
        assert!(e.to_string().contains("only 100 bytes"), "{e}");
        assert!(check_size(&ins, 2 * WINDOW, &url).is_ok());
    }
}
