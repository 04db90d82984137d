//! https:// data: a TLS origin on loopback (a self-signed certificate made for
//! the test) serving Range requests; the edge server trusts it through
//! `origin_ca_pem` (`--origin-ca`) and computes over it, and refuses it (502
//! naming the origin) without that trust.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use pfs_control::edge::fetch::FetchOptions;
use pfs_control::edge::server::{RangeAsk, parse_range};
use pfs_control::edge::{EdgeConfig, EdgeServer};
use pfs_dataplane::exec::{Instruction, oracle};
use pfs_dataplane::kernels::Op;
use serde_json::{Value, json};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            if let Ok((s, a)) = self.tcp.accept().await
                && let Ok(t) = self.acceptor.accept(s).await
            {
                return (t, a);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Starts a TLS Range origin for `bytes` at `/x`; returns its address, the
/// certificate PEM and a guard that stops it.
fn tls_origin(bytes: Vec<u8>) -> (SocketAddr, String, tokio::sync::oneshot::Sender<()>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = ck.cert.pem();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![ck.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into()),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bytes = Arc::new(bytes);
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
                        let ask =
                            parse_range(headers.get("range").and_then(|v| v.to_str().ok()), size);
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
                        h.insert("x-cache", "HIT from test".parse().unwrap());
                        (
                            StatusCode::PARTIAL_CONTENT,
                            h,
                            bytes[a as usize..=b as usize].to_vec(),
                        )
                    }
                }),
            );
            let tcp = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let _ = axum::serve(TlsListener { tcp, acceptor }, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
    });
    (addr, cert_pem, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origin_with_trusted_ca() {
    let m = 1u64 << 20;
    let bytes: Vec<u8> = (0..(2 * m + 333) as usize)
        .map(|i| (i * 7 + i / 1000) as u8)
        .collect();
    let (addr, pem, _stop) = tls_origin(bytes.clone());
    let instrs = [
        Instruction {
            op: Op::Crc32c,
            offset: 5,
            length: 2 * m,
        },
        Instruction {
            op: Op::Fnv,
            offset: m - 1,
            length: m + 334,
        },
    ];
    let want = oracle(&bytes, &instrs).unwrap();
    let body = json!({"data_url": format!("https://{addr}/x"), "instructions": [
        {"op": "crc32c", "offset": 5, "length": 2 * m},
        {"op": "fnv", "offset": m - 1, "length": m + 334}]})
    .to_string();
    let c = reqwest::Client::new();
    for trusted in [true, false] {
        let server = EdgeServer::start(EdgeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            fetch: FetchOptions {
                origin_ca_pem: trusted.then(|| pem.clone().into_bytes()),
                ..FetchOptions::default()
            },
            ..EdgeConfig::default()
        })
        .unwrap();
        let r = c
            .post(format!("{}/compute", server.url()))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        if trusted {
            assert_eq!(status, 200, "{v}");
            let got: Vec<u64> = v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(got, want);
            assert_eq!(v["cache"]["status"], "HIT");
        } else {
            assert_eq!(status, 502, "{v}");
            assert_eq!(v["error"]["origin"], format!("https://{addr}"));
        }
    }
}
