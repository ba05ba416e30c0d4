//! Broken peers: an upstream dying mid-response, one closing kept-alive connections, and
//! clients aborting uploads; the client can always tell, retries stay invisible, and
//! nothing is left behind.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::clients::raw_exchange;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn proxy_config(origin: SocketAddr) -> String {
    format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "app"
max_body = "1GiB"
"#
    )
}

/// An origin that reads a request head, writes `head` and `partial` body bytes, and dies.
async fn dying_origin(head: &'static str, partial: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => seen.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&vec![b'x'; partial]).await;
                // Dropped here: the connection ends mid-body.
            });
        }
    });
    address
}

#[tokio::test]
async fn an_upstream_dying_mid_response_never_looks_like_a_complete_success() {
    const REQUEST: &[u8] = b"GET /big HTTP/1.1\r\nhost: app.test\r\n\r\n";
    let wait = Duration::from_secs(5);

    // With a length: the client gets fewer bytes than announced and the connection ends.
    let origin = dying_origin("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n", 1000).await;
    let proxy = Proxy::start(&proxy_config(origin)).await;
    let answer = raw_exchange(proxy.addr(), REQUEST, wait).await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 100000"), "{head}");
    assert!(body.len() < 100_000, "the body looked complete");

    // Chunked: the client never gets the final chunk that would mark a complete body.
    let origin = dying_origin(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3e8\r\n",
        1000,
    )
    .await;
    let proxy = Proxy::start(&proxy_config(origin)).await;
    let answer = raw_exchange(proxy.addr(), REQUEST, wait).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut chunked body was terminated as if complete"
    );
}

/// An origin that answers with keep-alive and then closes each connection shortly after,
/// as servers with a short keep-alive timeout do.
async fn impatient_origin(served: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let served = served.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    served.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                // The server hangs up 30 ms into the connection, whatever the client does.
                let _ = tokio::time::timeout(Duration::from_millis(30), connection).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn an_upstream_closing_idle_keepalive_connections_causes_no_client_error() {
    let served = Arc::new(AtomicUsize::new(0));
    let origin = impatient_origin(served.clone()).await;
    let proxy = Proxy::start(&proxy_config(origin)).await;
    for round in 0..40 {
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let response = gangway_e2e::clients::http1_request(stream, common::get("/")).await;
        assert_eq!(response.status(), 200, "round {round}");
        // Let the origin's hang-up race the next request's reuse of the connection.
        tokio::time::sleep(Duration::from_millis(if round % 2 == 0 { 30 } else { 5 })).await;
    }
    assert!(served.load(Ordering::SeqCst) >= 40);
}

/// Open descriptors of this process.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test]
async fn aborted_uploads_are_seen_by_the_upstream_and_leave_no_descriptor_behind() {
    let (complete, broken) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    {
        let (complete, broken) = (complete.clone(), broken.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (complete, broken) = (complete.clone(), broken.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (complete, broken) = (complete.clone(), broken.clone());
                            async move {
                                match request.into_body().collect().await {
                                    Ok(_) => complete.fetch_add(1, Ordering::SeqCst),
                                    Err(_) => broken.fetch_add(1, Ordering::SeqCst),
                                };
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let proxy = Proxy::start(&proxy_config(origin)).await;
    // Warm up, so lazily opened descriptors (runtime, pools) are in the baseline.
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let warm = gangway_e2e::clients::http1_request(stream, common::get("/")).await;
    assert_eq!(warm.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = open_descriptors();

    const ABORTS: usize = 50;
    for _ in 0..ABORTS {
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        stream
            .write_all(
                b"POST /upload HTTP/1.1\r\nhost: app.test\r\ncontent-length: 1073741824\r\n\r\n",
            )
            .await
            .unwrap();
        stream.write_all(&vec![7u8; 256 * 1024]).await.unwrap();
        // The client goes away a quarter MiB into a 1 GiB upload.
        drop(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while broken.load(Ordering::SeqCst) < ABORTS {
        assert!(
            Instant::now() < deadline,
            "the upstream saw {} of {ABORTS} aborts",
            broken.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        complete.load(Ordering::SeqCst),
        1,
        "an aborted upload looked complete"
    );
    // Every connection of the aborted uploads, on both sides, is closed again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_descriptors() > baseline + 2 {
        assert!(
            Instant::now() < deadline,
            "descriptors leaked: {} now, {baseline} before",
            open_descriptors()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_with_random_client_aborts_leave_descriptors_tasks_and_memory_at_baseline() {
    // `LEAK_REQUESTS` raises the count (100000 for the long check); CI runs 3000.
    let total: u64 = std::env::var("LEAK_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3000);
    // The echo origin keeps nothing per request, so whatever stays behind is the proxy's.
    let origin = gangway_e2e::origins::start_echo().await;
    let proxy = Proxy::start(&proxy_config(origin.local_addr())).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let warm = gangway_e2e::clients::http1_request(stream, common::get("/")).await;
    assert_eq!(warm.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = Baseline {
        descriptors: open_descriptors(),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    };

    // Two halves: the first grows the allocator's arenas and the runtime's tables to what
    // this load needs; a leak keeps growing memory in the second.
    let completed = abort_mix(proxy.addr(), total / 2, 0).await;
    baseline.settle(total / 2).await;
    let resident_first = resident_kib();
    let completed = completed + abort_mix(proxy.addr(), total / 2, 8).await;
    baseline.settle(total).await;
    let resident_second = resident_kib();
    assert!(
        completed > total / 8,
        "too few requests completed: {completed}"
    );
    assert!(
        resident_second <= resident_first + 8 * 1024,
        "memory grew by {} KiB over the second {} requests ({resident_first} KiB after the first half)",
        resident_second.saturating_sub(resident_first),
        total / 2
    );
}

/// What the process holds when no request is under way.
struct Baseline {
    descriptors: usize,
    tasks: usize,
}

impl Baseline {
    /// Waits (up to 60 s) until descriptors and live tasks are back near the baseline.
    /// A few stay above it: idle upstream connections kept for reuse, each with its task
    /// and the echo origin's.
    async fn settle(&self, requests: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let descriptors = open_descriptors();
            let tasks = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            if descriptors <= self.descriptors + 20 && tasks <= self.tasks + 32 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "left behind after {requests} requests: {descriptors} descriptors ({} before), \
                 {tasks} tasks ({} before)",
                self.descriptors,
                self.tasks
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The process's resident memory, from `/proc/self/statm` (pages of 4 KiB on Linux x86-64).
fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages in statm");
    pages * 4
}

/// `total` connections from 8 clients, each aborting before its head ends, after its head,
/// in the middle of a body, or finishing normally; returns how many got their 200.
async fn abort_mix(address: SocketAddr, total: u64, seed: u64) -> u64 {
    let mut clients = Vec::new();
    for client in seed..seed + 8 {
        clients.push(tokio::spawn(async move {
            // A cheap deterministic mix.
            let mut state = client.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut completed = 0u64;
            for _ in 0..total / 8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let Ok(mut stream) = TcpStream::connect(address).await else {
                    continue;
                };
                match state % 4 {
                    0 => {
                        let _ = stream.write_all(b"GET /a HTTP/1.1\r\nhost: app").await;
                    }
                    1 => {
                        let _ = stream.write_all(b"GET /a HTTP/1.1\r\nhost: app.test\r\n\r\n").await;
                    }
                    2 => {
                        let _ = stream
                            .write_all(b"POST /a HTTP/1.1\r\nhost: app.test\r\ncontent-length: 100000\r\n\r\nxyz")
                            .await;
                    }
                    _ => {
                        let _ = stream
                            .write_all(b"GET /a HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n")
                            .await;
                        let mut answer = Vec::new();
                        if stream.read_to_end(&mut answer).await.is_ok() && answer.starts_with(b"HTTP/1.1 200") {
                            completed += 1;
                        }
                    }
                }
                drop(stream);
            }
            completed
        }));
    }
    let mut completed = 0;
    for client in clients {
        completed += client.await.unwrap();
    }
    completed
}
