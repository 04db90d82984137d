//! Edge compute bench (issue 4), the seed's "documented local benchmark": a
//! 256 MiB file in /dev/shm, windows of 1 MiB, concurrency 8, `counteq 0`.
//!
//! Ours, through an in-process `pfs edge serve` on loopback:
//! - file:// — one job of 256 window instructions, and the seed's shape (one
//!   request per window, 8 in flight);
//! - http:// against our own origin (`GET /data/blob.bin`) — the same two shapes.
//!
//! Peer, measured in the same run: nginx (sendfile on, 2 workers, temporary
//! config on a loopback port) serving the same file, and a Python client that
//! downloads each window with a Range request (8 threads, keep-alive) and counts
//! with numpy (`benches/peers/range_numpy.py`). Skipped with a note when nginx,
//! python3 or numpy is missing.
//!
//! Each figure is the best of `PFS_BENCH_REPS` (default 5) interleaved runs; the
//! median is printed too, since the machine is shared.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pfs_control::edge::client::{EdgeBench, EdgeClient, bench};
use pfs_control::edge::{EdgeConfig, EdgeServer};
use pfs_dataplane::fill::Fill;
use pfs_dataplane::kernels::Op;

const WINDOWS: u64 = 256;
const CONCURRENCY: usize = 8;
const BYTES: u64 = WINDOWS << 20;

/// Removes the bench directory on every exit path.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops nginx (our child, by its pid) and its workers on every exit path.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers (SIGKILL would orphan them);
        // SIGKILL only if it has not exited within 5 s.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..250 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Option<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(l.local_addr().ok()?.port())
}

fn start_nginx(dir: &Path, root: &Path) -> Result<Nginx, String> {
    let nginx = Path::new("/usr/sbin/nginx");
    if !nginx.exists() {
        return Err("/usr/sbin/nginx is not installed".into());
    }
    let port = free_port().ok_or("no free loopback port")?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
         client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n\
         uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
         server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
        root.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?;
    let ng = Nginx { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(ng);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("nginx did not start listening within 2 s".into())
}

fn numpy_available() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One run of the Python peer: (GB/s, result).
fn run_peer(url: &str) -> Result<(f64, u64), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/range_numpy.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(&script)
        .arg(url)
        .arg(WINDOWS.to_string())
        .arg(CONCURRENCY.to_string())
        .arg("0")
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("peer output {text:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("peer failed: {text}"));
    }
    let secs = v["elapsed_s"].as_f64().ok_or("no elapsed_s")?;
    let bytes = v["bytes"].as_u64().ok_or("no bytes")?;
    if bytes != BYTES {
        return Err(format!("peer downloaded {bytes} bytes, expected {BYTES}"));
    }
    Ok((
        bytes as f64 / secs / 1e9,
        v["result"].as_u64().ok_or("no result")?,
    ))
}

#[derive(Default)]
struct Series {
    name: &'static str,
    gbps: Vec<f64>,
}

impl Series {
    fn best(&self) -> f64 {
        self.gbps.iter().copied().fold(0.0, f64::max)
    }
    fn median(&self) -> f64 {
        let mut v = self.gbps.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

fn main() -> anyhow::Result<()> {
    let reps: usize = std::env::var("PFS_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let dir = Dir(PathBuf::from(format!(
        "/dev/shm/pfs-edge-bench-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0)?;
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data)?;
    let blob = data.join("blob.bin");
    pfs_control::blob::create(&blob, WINDOWS, Fill::Random, 4242, true, false)?;
    let want = pfs_control::bench_local::bench_file(&blob, Op::CountEq(0), WINDOWS, 2, true)?;
    println!(
        "edge bench: {} MiB file {} (counteq 0 = {}), windows of 1 MiB, concurrency {CONCURRENCY}, best of {reps}",
        WINDOWS,
        blob.display(),
        want.result
    );

    let server = EdgeServer::start(EdgeConfig {
        listen: "127.0.0.1:0".parse()?,
        data_root: Some(data.clone()),
        ..EdgeConfig::default()
    })?;
    let file_url = format!("file://{}", blob.display());
    let http_url = format!("{}/data/blob.bin", server.url());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = EdgeClient::new(&server.url(), None)?;

    let peer = match (start_nginx(&dir.0, &data), numpy_available()) {
        (Ok(ng), true) => Some(ng),
        (Err(e), _) => {
            println!("note: nginx + numpy peer skipped: {e}");
            None
        }
        (Ok(_), false) => {
            println!(
                "note: nginx + numpy peer skipped: python3 with numpy is not installed (pip install numpy)"
            );
            None
        }
    };

    let shapes: [(&str, &str, u64); 4] = [
        ("ours file:// one job (256 windows)", "file", WINDOWS),
        ("ours file:// 1 window/request", "file", 1),
        ("ours http:// one job (256 windows)", "http", WINDOWS),
        ("ours http:// 1 window/request", "http", 1),
    ];
    let mut series: Vec<Series> = shapes
        .iter()
        .map(|(n, _, _)| Series {
            name: n,
            gbps: Vec::new(),
        })
        .collect();
    let mut peer_series = Series {
        name: "nginx + numpy client",
        gbps: Vec::new(),
    };
    let mut local_series = Series {
        name: "pfs bench local (in-process, no HTTP)",
        gbps: Vec::new(),
    };
    // One warm-up pass (maps the file, opens connections), then timed passes.
    for rep in 0..=reps {
        for (i, (_, kind, per_request)) in shapes.iter().enumerate() {
            let url = if *kind == "file" {
                &file_url
            } else {
                &http_url
            };
            let b = EdgeBench {
                op: Op::CountEq(0),
                windows: WINDOWS,
                per_request: *per_request,
                concurrency: CONCURRENCY,
            };
            let r = rt.block_on(bench(&client, url, b))?;
            anyhow::ensure!(
                r.result == want.result,
                "{}: result {} != {}",
                shapes[i].0,
                r.result,
                want.result
            );
            if rep > 0 {
                series[i].gbps.push(r.throughput_gbps);
            }
        }
        let local = pfs_control::bench_local::bench_file(&blob, Op::CountEq(0), WINDOWS, 2, false)?;
        if rep > 0 {
            local_series.gbps.push(local.throughput_gbps);
        }
        if let Some(ng) = &peer {
            let (gbps, result) = run_peer(&format!("http://127.0.0.1:{}/blob.bin", ng.port))
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                result == want.result,
                "peer result {result} != {}",
                want.result
            );
            if rep > 0 {
                peer_series.gbps.push(gbps);
            }
        }
    }
    drop(peer);
    server.stop();

    let peer_best = peer_series.best();
    println!();
    println!(
        "{:<38} {:>10} {:>12} {:>14}",
        "", "best GB/s", "median GB/s", "vs nginx+numpy"
    );
    for s in series
        .iter()
        .chain((peer_best > 0.0).then_some(&peer_series))
    {
        let ratio = if peer_best > 0.0 {
            format!("{:.2}x", s.best() / peer_best)
        } else {
            "-".into()
        };
        println!(
            "{:<38} {:>10.2} {:>12.2} {:>14}",
            s.name,
            s.best(),
            s.median(),
            ratio
        );
    }
    println!(
        "{:<38} {:>10.2} {:>12.2} {:>14}",
        local_series.name,
        local_series.best(),
        local_series.median(),
        "(reference)"
    );
    println!();
    let file_best = series[0].best();
    println!(
        "target file:// >= 10 GB/s: {:.2} GB/s -> {}",
        file_best,
        if file_best >= 10.0 { "met" } else { "NOT met" }
    );
    if peer_best > 0.0 {
        let ratio = series[2].best() / peer_best;
        println!(
            "target http:// >= 1.2x nginx+numpy: {ratio:.2}x -> {}",
            if ratio >= 1.2 { "met" } else { "NOT met" }
        );
    } else {
        println!("target http:// >= 1.2x nginx+numpy: no peer figure in this run");
    }
    Ok(())
}
