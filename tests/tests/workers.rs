//! The engine spread over worker threads (`Server::spread_over`), as the binaries run it on
//! a machine with more than one CPU: HTTP/1.1, HTTP/2 and streamed bodies served on the
//! workers, connections spread between them, and the drain waiting for a request in
//! flight on a worker.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{http2_request, tls_client_config, tls_connect};
use gangway_e2e::origins::{SlowOrigin, start_echo};
use gangway_proxy::Workers;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

fn two_workers() -> Workers {
    Workers::start(NonZeroUsize::new(2).unwrap()).unwrap()
}

/// A plain and a TLS listener (h2, http/1.1) proxying everything to `upstream`.
async fn proxy_on(upstream: SocketAddr, workers: Workers) -> (Proxy, TestCa) {
    let ca = TestCa::new("workers CA");
    let dir = TempDir::new("workers");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&["app.test"]));
    let toml = format!(
        r#"
[server]
drain_timeout = "10s"

[[upstream]]
name = "origin"
peers = ["http://{upstream}"]

[[listener]]
address = "127.0.0.1:0"
route = [{{ path = "/", proxy = "origin" }}]

[[listener]]
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}
route = [{{ path = "/", proxy = "origin" }}]
"#
    );
    (Proxy::start_on(dir, &toml, workers).await, ca)
}

async fn until_tasks(workers: &Workers, expected: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.tasks() != expected {
        assert!(
            Instant::now() < deadline,
            "tasks per worker {:?}, expected {expected:?}",
            workers.tasks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The echo origin's JSON for one request: method, path and body as it arrived.
fn echoed(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn http1_and_http2_are_served_on_the_workers_which_share_the_connections() {
    let echo = start_echo().await;
    let workers = two_workers();
    let (proxy, ca) = proxy_on(echo.local_addr(), workers.clone()).await;

    // Six keep-alive HTTP/1.1 connections, three requests each, with bodies.
    let mut senders = Vec::new();
    for _ in 0..6 {
        let stream = tokio::net::TcpStream::connect(proxy.addrs[0])
            .await
            .unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        senders.push(sender);
    }
    // Before any request, each connection is one task on its worker.
    until_tasks(&workers, &[3, 3]).await;
    for round in 0..3 {
        for (index, sender) in senders.iter_mut().enumerate() {
            let body = format!("connection {index} request {round}");
            let request = http::Request::post(format!("/h1/{index}/{round}"))
                .header("host", "app.test")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let echo = echoed(&bytes);
            assert_eq!(echo["path"], format!("/h1/{index}/{round}"));
            assert_eq!(echo["body"], body);
        }
    }

    // Ten concurrent streams on one HTTP/2 connection over TLS.
    let stream = tls_connect(
        proxy.addrs[1],
        "app.test",
        tls_client_config(&ca.pem(), &[b"h2"]),
    )
    .await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut streams = Vec::new();
    for index in 0..10 {
        let mut sender = sender.clone();
        streams.push(tokio::spawn(async move {
            let request = http::Request::post(format!("https://app.test/h2/{index}"))
                .version(http::Version::HTTP_2)
                .body(Full::new(Bytes::from(vec![b'x'; 1000 * index])))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let echo = echoed(&bytes);
            assert_eq!(echo["path"], format!("/h2/{index}"));
            assert_eq!(echo["body"].as_str().unwrap().len(), 1000 * index);
        }));
    }
    for stream in streams {
        stream.await.unwrap();
    }

    // A one-shot request through the test client helper, on a fresh connection.
    let stream = tls_connect(
        proxy.addrs[1],
        "app.test",
        tls_client_config(&ca.pem(), &[b"h2"]),
    )
    .await;
    let response = http2_request(stream, common::get("https://app.test/once")).await;
    assert_eq!(response.status(), 200);

    proxy.shutdown().await;
}

/// The drain waits for a request in flight on a worker; the workers stop only after it.
#[tokio::test]
async fn the_drain_lets_a_request_in_flight_on_a_worker_finish() {
    let origin = SlowOrigin::start(Duration::from_millis(1500)).await;
    let workers = two_workers();
    let (mut proxy, _ca) = proxy_on(origin.addr(), workers.clone()).await;
    let stream = tokio::net::TcpStream::connect(proxy.addrs[0])
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let in_flight = tokio::spawn(async move {
        let response = sender.send_request(common::get("/slow")).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        // The sender is kept, so that only the proxy can end the connection.
        (status, body, sender)
    });
    // Let the request reach the origin, then shut down with it in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The connection and its upstream connection, both on the first worker.
    let tasks = workers.tasks();
    assert!(tasks[0] >= 2 && tasks[1] == 0, "{tasks:?}");
    proxy.begin_shutdown();
    let (status, body, _sender) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"slow");
    proxy.shutdown().await;
    // The proxy closed the connection after the response, as the drain asks.
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
