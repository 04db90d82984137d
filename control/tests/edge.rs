//! Edge server over real loopback sockets: every op over file:// and http:// data
//! against the scalar oracle, Range edge cases, refusals, and the route table
//! against the OpenAPI document.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pfs_control::edge::client::{EdgeBench, EdgeClient, bench};
use pfs_control::edge::fetch::FetchOptions;
use pfs_control::edge::request::Limits;
use pfs_control::edge::server::{ROUTES, RangeAsk, parse_range};
use pfs_control::edge::{EdgeConfig, EdgeServer};
use pfs_dataplane::exec::{Instruction, oracle};
use pfs_dataplane::kernels::Op;
use serde_json::{Value, json};

const M: u64 = 1 << 20;

fn loopback0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 4093) as u8).collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    server: EdgeServer,
}

impl Fixture {
    fn new(size: usize, tweak: impl FnOnce(&mut EdgeConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(size);
        std::fs::write(dir.path().join("blob.bin"), &bytes).unwrap();
        let mut config = EdgeConfig {
            listen: loopback0(),
            data_root: Some(dir.path().to_path_buf()),
            ..EdgeConfig::default()
        };
        tweak(&mut config);
        let server = EdgeServer::start(config).unwrap();
        Fixture { dir, bytes, server }
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.dir.path().join("blob.bin").display())
    }

    fn http_url(&self) -> String {
        format!("{}/data/blob.bin", self.server.url())
    }
}

async fn post(endpoint: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut req = c.post(format!("{endpoint}/compute")).body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

fn instrs_json(instrs: &[Instruction]) -> Value {
    Value::Array(
        instrs
            .iter()
            .map(|i| json!({"op": i.op.name(), "imm": i.op.imm(), "offset": i.offset, "length": i.length}))
            .collect(),
    )
}

fn results(v: &Value) -> Vec<u64> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {v}"))
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_over_file_and_http_equals_the_oracle() {
    // 9 MiB + 12345 bytes: the last window is partial; instructions cross 1 MiB
    // windows and the planned ranges (streams=2 and 4 give 1..8 MiB ranges).
    let size = 9 * M as usize + 12345;
    for streams in [2, 4] {
        let f = Fixture::new(size, |c| c.fetch.streams = streams);
        let size = size as u64;
        let mut instrs = Vec::new();
        for op in [
            Op::CountEq(0),
            Op::CountEq(0x5a),
            Op::Xor,
            Op::Add,
            Op::Fnv,
            Op::Crc32c,
        ] {
            for (o, l) in [
                (0, 1),
                (M - 3, 7),
                (12, 3 * M),
                (2 * M - 1, 4 * M + 2),
                (0, size),
                (8 * M + 100, size - 8 * M - 100),
                (size - 1, 1),
            ] {
                instrs.push(Instruction {
                    op,
                    offset: o,
                    length: l,
                });
            }
        }
        let want = oracle(&f.bytes, &instrs).unwrap();
        for url in [f.file_url(), f.http_url()] {
            let body = json!({"data_url": url, "instructions": instrs_json(&instrs)}).to_string();
            let (status, v) = post(&f.server.url(), &body, None).await;
            assert_eq!(status, 200, "{url}: {v}");
            assert_eq!(results(&v), want, "{url} streams {streams}");
            let processed: u64 = instrs.iter().map(|i| i.length).sum();
            assert_eq!(v["timing"]["bytes_processed"], processed);
            if url.starts_with("http") {
                // Coalesced: the whole object once, never more.
                assert_eq!(v["timing"]["bytes_fetched"], size, "{v}");
                assert_eq!(v["cache"]["status"], "NONE");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_data_names_the_instruction_and_window() {
    let f = Fixture::new(3 * M as usize + 10, |_| {});
    for url in [f.file_url(), f.http_url()] {
        for (offset, length, window) in [(0, 3 * M + 11, 3), (5 * M, 1, 5), (3 * M + 10, 1, 3)] {
            let body = json!({"data_url": url, "instructions": [
                {"op": "xor", "offset": 0, "length": 1},
                {"op": "xor", "offset": offset, "length": length}]})
            .to_string();
            let (status, v) = post(&f.server.url(), &body, None).await;
            assert_eq!(status, 422, "{url}: {v}");
            assert_eq!(v["error"]["pointer"], "/instructions/1", "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains(&format!("{}..{}", offset, offset + length)),
                "{msg}"
            );
            if url.starts_with("http") {
                assert!(msg.contains(&format!("window {window}")), "{msg}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_mode_serves_ranges() {
    let f = Fixture::new(2 * M as usize + 5, |_| {});
    let c = reqwest::Client::new();
    let url = f.http_url();
    let r = c
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-19/{}", 2 * M + 5).as_str()
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(&r.bytes().await.unwrap()[..], &f.bytes[10..20]);
    let r = c
        .get(&url)
        .header("Range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(&r.bytes().await.unwrap()[..], &f.bytes[f.bytes.len() - 5..]);
    let r = c
        .get(&url)
        .header("Range", format!("bytes={}-", 2 * M + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", 2 * M + 5).as_str()
    );
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), f.bytes.len());
    for bad in [
        "/data/../x",
        "/data/%2e%2e/%2e%2e/etc/hostname",
        "/data/missing",
    ] {
        let r = c
            .get(format!("{}{bad}", f.server.url()))
            .send()
            .await
            .unwrap();
        assert!(
            [403, 404].contains(&r.status().as_u16()),
            "{bad}: {}",
            r.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_allowlist_root_token_budget_limits() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.bin"), b"secret").unwrap();
    let f = Fixture::new(2 * M as usize, |c| {
        c.token = Some("s3cret".into());
        c.budget_requests = Some(1000);
        c.limits = Limits {
            max_instructions: 8,
            max_bytes: 16 * M,
        };
    });
    std::os::unix::fs::symlink(
        outside.path().join("secret.bin"),
        f.dir.path().join("link.bin"),
    )
    .unwrap();
    let ep = f.server.url();
    let one = |url: &str| {
        json!({"data_url": url, "instructions": [{"op": "xor", "offset": 0, "length": 1}]})
            .to_string()
    };
    let tok = Some("s3cret");
    // token
    let (s, v) = post(&ep, &one(&f.file_url()), None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = post(&ep, &one(&f.file_url()), Some("wrong")).await;
    assert_eq!(s, 401);
    let (s, _) = post(&ep, &one(&f.file_url()), tok).await;
    assert_eq!(s, 200);
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{ep}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(format!("{ep}/health")).send().await.unwrap().status(),
        200
    );
    // allowlist: refused before any connection is tried
    for host in [
        "http://10.255.255.1/x",
        "https://example.com/big.bin",
        "http://[fe80::1]/x",
    ] {
        let (s, v) = post(&ep, &one(host), tok).await;
        assert_eq!(
            (s, v["error"]["pointer"].as_str()),
            (403, Some("/data_url")),
            "{v}"
        );
    }
    // root confinement
    let dotdot = format!(
        "file://{}/../{}/secret.bin",
        f.dir.path().display(),
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    for url in [
        format!("file://{}/secret.bin", outside.path().display()),
        format!("file://{}/link.bin", f.dir.path().display()),
        dotdot,
        "file:///etc/hostname".to_string(),
    ] {
        let (s, v) = post(&ep, &one(&url), tok).await;
        assert_eq!(
            (s, v["error"]["pointer"].as_str()),
            (403, Some("/data_url")),
            "{url}: {v}"
        );
    }
    // limits
    let many = json!({"data_url": f.file_url(), "instructions": vec![json!({"op":"xor","offset":0,"length":1}); 9]});
    let (s, v) = post(&ep, &many.to_string(), tok).await;
    assert_eq!(
        (s, v["error"]["pointer"].as_str()),
        (413, Some("/instructions"))
    );
    let big = json!({"data_url": f.file_url(), "instructions": [{"op":"xor","offset":0,"length":M},{"op":"xor","offset":0,"length":16 * M}]});
    let (s, v) = post(&ep, &big.to_string(), tok).await;
    assert_eq!(
        (s, v["error"]["pointer"].as_str()),
        (413, Some("/instructions/1/length"))
    );

    // budgets: bytes
    let g = Fixture::new(2 * M as usize, |c| c.budget_bytes = Some(3 * M));
    let ep = g.server.url();
    let job = |url: &str| {
        json!({"data_url": url, "instructions": [{"op":"add","offset":0,"length":2 * M}]})
            .to_string()
    };
    let (s, _) = post(&ep, &job(&g.file_url()), None).await;
    assert_eq!(s, 200);
    let (s, v) = post(&ep, &job(&g.http_url()), None).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["spent"]["bytes"], 2 * M);
    assert_eq!(v["error"]["spent"]["requests"], 1);
    assert_eq!(v["error"]["spent"]["budget_bytes"], 3 * M);
    // budgets: requests
    let h = Fixture::new(M as usize, |c| c.budget_requests = Some(2));
    let ep = h.server.url();
    for _ in 0..2 {
        assert_eq!(post(&ep, &one(&h.file_url()), None).await.0, 200);
    }
    let (s, v) = post(&ep, &one(&h.file_url()), None).await;
    assert_eq!(s, 429);
    assert_eq!(v["error"]["spent"]["requests"], 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request budget")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_requests_then_a_good_one() {
    let f = Fixture::new(M as usize + 7, |_| {});
    let ep = f.server.url();
    let bads = [
        "{".to_string(),
        "null".to_string(),
        "[1,2]".to_string(),
        "\u{0}\u{1}garbage".to_string(),
        json!({"data_url": f.file_url(), "instructions": [{"op": "mul", "offset": 0, "length": 1}]}).to_string(),
        json!({"data_url": f.file_url(), "instructions": [{"op": "xor", "offset": u64::MAX, "length": 2}]}).to_string(),
        json!({"data_url": f.file_url(), "instructions": [{"op": "counteq", "imm": 300, "offset": 0, "length": 1}]}).to_string(),
        json!({"data_url": f.file_url(), "instructions": [{"op": "xor", "offset": 0, "length": 2 * M}]}).to_string(),
        json!({"data_url": f.http_url(), "instructions": [{"op": "xor", "offset": 0, "length": 2 * M}]}).to_string(),
        json!({"data_url": "gopher://x/y", "instructions": [{"op": "xor", "offset": 0, "length": 1}]}).to_string(),
    ];
    let c = reqwest::Client::new();
    for i in 0..1000 {
        let body = &bads[i % bads.len()];
        let r = c
            .post(format!("{ep}/compute"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "{body}: {status}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(v["error"]["pointer"].is_string() && v["error"]["message"].is_string());
    }
    let body = json!({"data_url": f.http_url(), "instructions": [{"op": "crc32c", "offset": 3, "length": M}]});
    let (s, v) = post(&ep, &body.to_string(), None).await;
    assert_eq!(s, 200);
    let want = oracle(
        &f.bytes,
        &[Instruction {
            op: Op::Crc32c,
            offset: 3,
            length: M,
        }],
    )
    .unwrap();
    assert_eq!(results(&v), want);
    let m = c
        .get(format!("{ep}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("pfs_edge_requests_total{route=\"compute\",status=\"200\"} 1"),
        "{m}"
    );
}

/// A tiny origin on its own runtime thread, for origins that misbehave.
struct TestOrigin {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    NoRange,
    Slow,
    Cache(&'static str),
}

fn test_origin(bytes: Vec<u8>, how: Behaviour) -> TestOrigin {
    use axum::http::{HeaderMap, StatusCode};
    let listener = std::net::TcpListener::bind(loopback0()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bytes = std::sync::Arc::new(bytes);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/x",
                axum::routing::get(move |headers: HeaderMap| {
                    let bytes = bytes.clone();
                    async move {
                        let size = bytes.len() as u64;
                        match how {
                            Behaviour::NoRange => {
                                (StatusCode::OK, HeaderMap::new(), bytes.to_vec())
                            }
                            Behaviour::Slow => {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                (StatusCode::OK, HeaderMap::new(), Vec::new())
                            }
                            Behaviour::Cache(status) => {
                                let ask = parse_range(
                                    headers.get("range").and_then(|v| v.to_str().ok()),
                                    size,
                                );
                                let RangeAsk::Part(a, b) = ask else {
                                    return (
                                        StatusCode::RANGE_NOT_SATISFIABLE,
                                        HeaderMap::new(),
                                        Vec::new(),
                                    );
                                };
                                let mut h = HeaderMap::new();
                                h.insert(
                                    "content-range",
                                    format!("bytes {a}-{b}/{size}").parse().unwrap(),
                                );
                                h.insert("cf-cache-status", status.parse().unwrap());
                                (
                                    StatusCode::PARTIAL_CONTENT,
                                    h,
                                    bytes[a as usize..=b as usize].to_vec(),
                                )
                            }
                        }
                    }
                }),
            );
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
    });
    TestOrigin { addr, _stop: tx }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_without_range_slow_or_cached() {
    let bytes = data(3 * M as usize + 1);
    let f = Fixture::new(16, |c| {
        c.fetch = FetchOptions {
            streams: 2,
            origin_timeout: Duration::from_millis(300),
            ..FetchOptions::default()
        };
    });
    let ep = f.server.url();
    let job = |addr: SocketAddr| {
        json!({"data_url": format!("http://{addr}/x"), "instructions": [{"op":"add","offset":0,"length":3 * M + 1}]}).to_string()
    };
    let o = test_origin(bytes.clone(), Behaviour::NoRange);
    let (s, v) = post(&ep, &job(o.addr), None).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["origin"], format!("http://{}", o.addr));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not support Range"),
        "{v}"
    );
    let o = test_origin(bytes.clone(), Behaviour::Slow);
    let (s, v) = post(&ep, &job(o.addr), None).await;
    assert_eq!(s, 504, "{v}");
    assert_eq!(v["error"]["origin"], format!("http://{}", o.addr));
    let want = oracle(
        &bytes,
        &[Instruction {
            op: Op::Add,
            offset: 0,
            length: 3 * M + 1,
        }],
    )
    .unwrap();
    // streams=2: two ranges of 2 MiB.
    for (status, hits, misses) in [("HIT", 2, 0), ("MISS", 0, 2)] {
        let o = test_origin(bytes.clone(), Behaviour::Cache(status));
        let (s, v) = post(&ep, &job(o.addr), None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(results(&v), want);
        assert_eq!(v["cache"]["status"], status);
        assert_eq!(
            (v["cache"]["hits"].as_u64(), v["cache"]["misses"].as_u64()),
            (Some(hits), Some(misses))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_edge_combines_windows_for_file_and_http() {
    let f = Fixture::new(6 * M as usize, |_| {});
    let client = EdgeClient::new(&f.server.url(), None).unwrap();
    for op in [Op::CountEq(3), Op::Crc32c, Op::Fnv] {
        let instrs = [Instruction {
            op,
            offset: 0,
            length: 5 * M,
        }];
        let want = oracle(&f.bytes, &instrs).unwrap()[0];
        for url in [f.file_url(), f.http_url()] {
            let b = EdgeBench {
                op,
                windows: 5,
                per_request: 2,
                concurrency: 3,
            };
            let r = bench(&client, &url, b).await.unwrap();
            assert_eq!(r.result, want, "{url} {op}");
            assert_eq!((r.windows, r.bytes), (5, 5 * M));
            assert_eq!(r.verified, op.is_splittable().then_some(true));
        }
    }
    // The same keys as `pfs bench local --json`.
    let b = EdgeBench {
        op: Op::Xor,
        windows: 1,
        per_request: 1,
        concurrency: 1,
    };
    let edge = serde_json::to_value(bench(&client, &f.file_url(), b).await.unwrap()).unwrap();
    let local = serde_json::to_value(
        pfs_control::bench_local::bench_file(&f.dir.path().join("blob.bin"), Op::Xor, 1, 1, true)
            .unwrap(),
    )
    .unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&edge), keys(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_equal_the_openapi_document() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/edge-openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .contains(&method.as_str())
            {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(served, documented);
    // And the router really has them: none falls through to the 404 fallback.
    let f = Fixture::new(10, |_| {});
    let c = reqwest::Client::new();
    for r in ROUTES {
        let url = format!("{}{}", f.server.url(), r.path.replace("{path}", "blob.bin"));
        let resp = match r.method {
            "get" => c.get(&url).send().await.unwrap(),
            "post" => c.post(&url).body("{}").send().await.unwrap(),
            m => panic!("method {m}"),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("no route"),
            "{} {}: {status} {text}",
            r.method,
            r.path
        );
        assert_ne!(status, 405, "{} {}", r.method, r.path);
    }
    let r = c
        .get(format!("{}/nope", f.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // A known path with the wrong method is a JSON 405 naming the allowed one.
    let r = c
        .get(format!("{}/compute", f.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("POST"),
        "{v}"
    );
    let r = c
        .delete(format!("{}/data/blob.bin", f.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // A path that is not UTF-8 once decoded is a JSON 400.
    let r = c
        .get(format!("{}/data/%ff%fe", f.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_vectors() {
    use pfs_dataplane::specvec::{blocks, unhex};
    let spec =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/edge-api.md"))
            .unwrap();
    let computes = blocks(&spec, "edge-compute");
    let errors = blocks(&spec, "edge-errors");
    assert!(!computes.is_empty() && !errors.is_empty());
    let mut n = 0;
    let mut file_url = String::new();
    let mut keep = Vec::new();
    for line in computes.concat().lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split(" | ").collect();
        assert_eq!(parts.len(), 3, "{line}");
        let bytes = unhex(parts[0]).unwrap();
        let f = Fixture::new(0, |_| {});
        std::fs::write(f.dir.path().join("blob.bin"), &bytes).unwrap();
        let instrs: Value = serde_json::from_str(parts[1]).unwrap();
        let want: Value = serde_json::from_str(parts[2]).unwrap();
        for url in [f.file_url(), f.http_url()] {
            let (s, v) = post(
                &f.server.url(),
                &json!({"data_url": url, "instructions": instrs}).to_string(),
                None,
            )
            .await;
            assert_eq!((s, &v["results"]), (200, &want), "{url}: {line}: {v}");
            n += 1;
        }
        file_url = f.file_url();
        keep.push(f);
    }
    let f = keep.last().unwrap();
    for line in errors.concat().lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.splitn(3, ' ');
        let (status, pointer, body) = (
            it.next().unwrap().parse::<u16>().unwrap(),
            it.next().unwrap(),
            it.next().unwrap(),
        );
        let pointer = if pointer == "-" { "" } else { pointer };
        let (s, v) = post(&f.server.url(), &body.replace("FILE", &file_url), None).await;
        assert_eq!(
            (s, v["error"]["pointer"].as_str().unwrap()),
            (status, pointer),
            "{line}: {v}"
        );
        assert_eq!(v["error"]["status"], status);
        n += 1;
    }
    assert!(n >= 14);
}
