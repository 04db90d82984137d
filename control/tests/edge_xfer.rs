//! The edge server's arithmetic-transfer routes over real loopback sockets:
//! blob setup and status, objects from the palette (and the 422 with the first
//! unmatchable offset), a transfer to an in-process `pfs xfer recv` that ends
//! `done` with a verified file, and refusals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pfs_control::edge::{EdgeConfig, EdgeServer};
use pfs_control::xfer::source::SourceArgs;
use pfs_control::xfer::transport::{LinkArgs, RecvArgs, recv};
use pfs_dataplane::iprog::compile::{CompileError, CompileOptions, Index, compile};
use pfs_dataplane::iprog::vblob::{FILLER_OFFSET, palette};
use serde_json::{Value, json};

const BLOB_SIZE: u64 = FILLER_OFFSET + 65_536;

struct Fixture {
    dir: tempfile::TempDir,
    server: EdgeServer,
    client: reqwest::Client,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = EdgeServer::start(EdgeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_root: Some(dir.path().to_path_buf()),
            ..EdgeConfig::default()
        })
        .unwrap();
        Fixture {
            dir,
            server,
            client: reqwest::Client::new(),
        }
    }

    fn blob(&self) -> PathBuf {
        self.dir.path().join("pfs_vblob.bin")
    }

    async fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url());
        let req = match method {
            "get" => self.client.get(url),
            _ => self.client.post(url),
        };
        let req = match body {
            Some(b) => req.body(b),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, v)
    }

    /// POSTs `fields` as a `multipart/form-data` body (built by hand, as a
    /// browser form or `curl -F` sends it).
    async fn post_multipart(&self, path: &str, fields: &[(&str, &[u8])]) -> (u16, Value) {
        let boundary = "----pfsBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, bytes) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let r = self
            .client
            .post(format!("{}{path}", self.server.url()))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, v)
    }

    async fn post_json(&self, path: &str, v: &Value) -> (u16, Value) {
        self.call("post", path, Some(v.to_string().into_bytes()))
            .await
    }

    async fn setup(&self) {
        let (s, v) = self
            .post_json(
                "/blob/setup",
                &json!({"name": "edge", "size_bytes": BLOB_SIZE, "seed": 5}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
}

/// Pieces of 8..60 bytes from the palette: strictly expressible.
fn palette_object(n: usize, seed: u64) -> Vec<u8> {
    let p = palette();
    let mut x = seed | 1;
    let mut o = Vec::new();
    while o.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 8 + (x % 52) as usize;
        let at = 131_072 + ((x >> 16) as usize % (p.len() - 131_072 - 64));
        o.extend_from_slice(&p[at..at + len]);
    }
    o
}

fn assert_error(status: u16, v: &Value, want: u16, pointer: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["error"]["status"], want, "{v}");
    assert_eq!(v["error"]["pointer"], pointer, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_setup_and_status() {
    let f = Fixture::new();
    let (s, v) = f.call("get", "/blob/status", None).await;
    assert_error(s, &v, 404, "");
    f.setup().await;
    let (s, v) = f
        .post_json(
            "/blob/setup",
            &json!({"name": "edge", "size_bytes": BLOB_SIZE, "seed": 5}),
        )
        .await;
    assert_eq!(s, 200, "an identical blob is left alone: {v}");
    assert_eq!(v["written"], false);
    let (s, v) = f.call("get", "/blob/status", None).await;
    assert_eq!(s, 200, "{v}");
    let local = pfs_control::xfer::vblob::status(&f.blob()).unwrap();
    assert_eq!(v["fingerprint"], local.fingerprint);
    assert_eq!(v["identity"]["name"], "edge");
    assert_eq!(v["identity"]["size"], BLOB_SIZE);
    assert_eq!(v["identity"]["seed"], 5);
    assert_eq!(v["matches_identity"], true);
    assert_eq!(std::fs::metadata(f.blob()).unwrap().len(), BLOB_SIZE);

    let (s, v) = f
        .post_json(
            "/blob/setup",
            &json!({"name": "big", "size_bytes": 2u64 << 30, "seed": 1}),
        )
        .await;
    assert_error(s, &v, 413, "/size_bytes");
    let (s, v) = f
        .post_json(
            "/blob/setup",
            &json!({"name": "small", "size_bytes": 1000, "seed": 1}),
        )
        .await;
    assert_error(s, &v, 422, "/size_bytes");
    assert_eq!(v["error"]["code"], "unprocessable");
    let (s, v) = f
        .post_json(
            "/blob/setup",
            &json!({"name": "a/b", "size_bytes": BLOB_SIZE, "seed": 1}),
        )
        .await;
    assert_error(s, &v, 422, "/name");
    let (s, v) = f.call("post", "/blob/setup", Some(b"{".to_vec())).await;
    assert_error(s, &v, 400, "");
    let (s, v) = f
        .post_json(
            "/blob/setup",
            &json!({"name": "x", "size_bytes": BLOB_SIZE}),
        )
        .await;
    assert_error(s, &v, 400, "/seed");
    let (s, v) = f
        .post_json(
            "/blob/setup",
            &json!({"name": "x", "size_bytes": BLOB_SIZE, "seed": 1, "bogus": 1}),
        )
        .await;
    assert_error(s, &v, 400, "/bogus");
    // The refused requests did not touch the blob.
    assert_eq!(
        pfs_control::xfer::vblob::status(&f.blob())
            .unwrap()
            .fingerprint,
        local.fingerprint
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_a_blob_location_or_the_token() {
    let server = EdgeServer::start(EdgeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..EdgeConfig::default()
    })
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/blob/setup", server.url()))
        .body(json!({"name": "x", "size_bytes": BLOB_SIZE, "seed": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // With --token, every transfer route needs the bearer header.
    let dir = tempfile::tempdir().unwrap();
    let server = EdgeServer::start(EdgeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_root: Some(dir.path().to_path_buf()),
        token: Some("sekrit".into()),
        ..EdgeConfig::default()
    })
    .unwrap();
    let c = reqwest::Client::new();
    for (m, p) in [
        ("post", "/blob/setup"),
        ("get", "/blob/status"),
        ("post", "/objects/from-palette"),
        ("post", "/transfers"),
        ("get", "/transfers/t1"),
    ] {
        let url = format!("{}{p}", server.url());
        let r = match m {
            "get" => c.get(url),
            _ => c.post(url).body("{}"),
        };
        assert_eq!(r.send().await.unwrap().status().as_u16(), 401, "{m} {p}");
    }
    let r = c
        .get(format!("{}/blob/status", server.url()))
        .bearer_auth("sekrit")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "authorized, but no blob yet");
    // A transfer id with another method: 405 naming GET.
    let r = c
        .post(format!("{}/transfers/t1", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(r.text().await.unwrap().contains("GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_from_palette_and_the_unmatchable_offset() {
    let f = Fixture::new();
    let obj = palette_object(50_000, 3);
    let (s, v) = f
        .call("post", "/objects/from-palette", Some(obj.clone()))
        .await;
    assert_error(s, &v, 404, "");
    f.setup().await;
    let (s, v) = f
        .call("post", "/objects/from-palette", Some(obj.clone()))
        .await;
    assert_eq!(s, 201, "{v}");
    let hash = blake3::hash(&obj).to_hex().to_string();
    assert_eq!(v["object_id"], hash);
    assert_eq!(v["blake3"], hash);
    assert_eq!(v["size"], obj.len());
    assert_eq!(v["policy"], "palette-only");
    let wire = v["wire_size"].as_u64().unwrap();
    assert!(wire > 0);
    let ratio = v["tx_ratio"].as_f64().unwrap();
    assert!((ratio - obj.len() as f64 / wire as f64).abs() < 1e-9, "{v}");

    // 4 KiB of zeros (expressible), then xorshift noise: strict compile fails
    // at the offset the compiler itself names.
    let mut bad = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bad.push((x >> 24) as u8);
    }
    let blob = std::fs::read(f.blob()).unwrap();
    let want = match compile(
        &blob,
        &Index::palette(),
        &bad,
        CompileOptions { allow_raw: false },
    ) {
        Err(CompileError::Unmatchable { offset }) => offset,
        other => panic!("expected unmatchable, got {other:?}"),
    };
    assert!(want >= 4096, "{want}");
    let (s, v) = f.call("post", "/objects/from-palette", Some(bad)).await;
    assert_error(s, &v, 422, "");
    assert_eq!(v["error"]["code"], "unmatchable");
    assert_eq!(v["error"]["offset"], want);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&want.to_string())
    );
    let (s, v) = f
        .call("post", "/objects/from-palette", Some(Vec::new()))
        .await;
    assert_error(s, &v, 400, "");
}

/// The seed's shape: the object in multipart field `file` (other fields are
/// ignored); the same answers as the raw body, 422 with the offset, and 400
/// naming `file` when the form has no such field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_from_palette_multipart() {
    let f = Fixture::new();
    f.setup().await;
    let obj = palette_object(40_000, 9);
    let (s, v) = f
        .post_multipart(
            "/objects/from-palette",
            &[("note", b"ignored".as_slice()), ("file", &obj)],
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let hash = blake3::hash(&obj).to_hex().to_string();
    assert_eq!(v["object_id"], hash);
    assert_eq!(v["size"], obj.len());
    // Same object as a raw body: same answer.
    let (s, raw) = f
        .call("post", "/objects/from-palette", Some(obj.clone()))
        .await;
    assert_eq!(s, 201, "{raw}");
    assert_eq!(raw["wire_size"], v["wire_size"]);

    let mut bad = vec![0u8; 2048];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2048 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bad.push((x >> 24) as u8);
    }
    let blob = std::fs::read(f.blob()).unwrap();
    let want = match compile(
        &blob,
        &Index::palette(),
        &bad,
        CompileOptions { allow_raw: false },
    ) {
        Err(CompileError::Unmatchable { offset }) => offset,
        other => panic!("expected unmatchable, got {other:?}"),
    };
    let (s, v) = f
        .post_multipart("/objects/from-palette", &[("file", &bad)])
        .await;
    assert_error(s, &v, 422, "");
    assert_eq!(v["error"]["offset"], want);

    let (s, v) = f
        .post_multipart("/objects/from-palette", &[("upload", &obj)])
        .await;
    assert_error(s, &v, 400, "/file");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("\"file\""),
        "{v}"
    );
    // A multipart content type over a body that is not a form.
    let r = f
        .client
        .post(format!("{}/objects/from-palette", f.server.url()))
        .header("content-type", "multipart/form-data; boundary=zz")
        .body(obj.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("multipart body"),
        "{v}"
    );
}

fn recv_args(blob: &Path, out: &Path, receipts: &Path, port: u16) -> RecvArgs {
    RecvArgs {
        listen: format!("127.0.0.1:{port}"),
        out: out.to_path_buf(),
        source: SourceArgs {
            blob: blob.to_path_buf(),
            base: None,
        },
        strict: true,
        force: false,
        max_size: 1 << 30,
        wait_s: 20,
        linger_ms: 200,
        resume: None,
        link: LinkArgs {
            backend: "mmsg".into(),
            rto_ms: 10,
            idle_timeout_s: 5,
            max_in_flight: 512,
            receipts: Some(receipts.to_path_buf()),
            json: true,
            no_asl: true,
            asl_store: None,
            loss_percent: 0.0,
            vanish_after: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_a_loopback_receiver_is_done_and_verified() {
    let f = Fixture::new();
    f.setup().await;
    let obj = palette_object(300_000, 9);
    let (s, v) = f
        .call("post", "/objects/from-palette", Some(obj.clone()))
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["object_id"].as_str().unwrap().to_string();
    let out = f.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ra = recv_args(&f.blob(), &out, &f.dir.path().join("receipts"), port);
    let receiver = std::thread::spawn(move || recv(&ra, false));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, v) = f
        .post_json(
            "/transfers",
            &json!({"object_id": id, "peer": format!("127.0.0.1:{port}"), "backend": "mmsg"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["state"], "running");
    let tid = v["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (s, v) = f.call("get", &format!("/transfers/{tid}"), None).await;
        assert_eq!(s, 200, "{v}");
        if v["state"] != "running" || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["object_id"], id);
    assert_eq!(v["backend"], "mmsg");
    assert_eq!(v["peer"], format!("127.0.0.1:{port}"));
    assert!(v["path"].as_str().unwrap().contains("udp"), "{v}");
    assert!(v["bytes_sent"].as_u64().unwrap() > 0, "{v}");
    assert!(v["windows"].as_u64().unwrap() > 0, "{v}");
    assert!(v["tx_ratio"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["throughput_gbps"].as_f64().unwrap() > 0.0, "{v}");
    let receipt = v["receipt_path"].as_str().unwrap();
    assert!(Path::new(receipt).is_file());
    let r = tokio::task::spawn_blocking(move || receiver.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    let written = r.receipt.written_to.expect("written");
    assert_eq!(std::fs::read(&written).unwrap(), obj);
    assert_eq!(r.receipt.object_blake3, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_refusals() {
    let f = Fixture::new();
    f.setup().await;
    let obj = palette_object(10_000, 4);
    let (_, v) = f.call("post", "/objects/from-palette", Some(obj)).await;
    let id = v["object_id"].as_str().unwrap().to_string();
    let (s, v) = f
        .call("post", "/transfers", Some(b"{\"object_id\":".to_vec()))
        .await;
    assert_error(s, &v, 400, "");
    let (s, v) = f
        .post_json(
            "/transfers",
            &json!({"object_id": "00".repeat(32), "peer": "127.0.0.1:9"}),
        )
        .await;
    assert_error(s, &v, 404, "/object_id");
    let (s, v) = f
        .post_json(
            "/transfers",
            &json!({"object_id": id, "peer": "203.0.113.9:7600"}),
        )
        .await;
    assert_error(s, &v, 403, "/peer");
    let (s, v) = f
        .post_json("/transfers", &json!({"object_id": id, "peer": "nowhere"}))
        .await;
    assert_error(s, &v, 400, "/peer");
    let (s, v) = f
        .post_json(
            "/transfers",
            &json!({"object_id": id, "peer": "127.0.0.1:9", "backend": "xsk"}),
        )
        .await;
    assert_error(s, &v, 400, "/backend");
    let (s, v) = f.call("get", "/transfers/t999", None).await;
    assert_error(s, &v, 404, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_a_silent_peer_ends_failed() {
    let f = Fixture::new();
    f.setup().await;
    let (_, v) = f
        .call(
            "post",
            "/objects/from-palette",
            Some(palette_object(5_000, 2)),
        )
        .await;
    let id = v["object_id"].as_str().unwrap().to_string();
    // A bound socket that never answers: the sender's idle timeout (10 s) ends it.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = silent.local_addr().unwrap().to_string();
    let (s, v) = f
        .post_json(
            "/transfers",
            &json!({"object_id": id, "peer": peer, "backend": "std"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let tid = v["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (_, v) = f.call("get", &format!("/transfers/{tid}"), None).await;
        if v["state"] != "running" || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["state"], "failed", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("transfer failed"),
        "{v}"
    );
    assert!(v["bytes_sent"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["throughput_gbps"], 0.0);
}
