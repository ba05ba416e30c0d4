//! Configuration reload while serving: no failed request under load, open WebSockets
//! untouched, listeners kept, added and closed, and a reload that cannot apply refused
//! whole.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::origins::start_echo;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// Two configurations on one fixed address: `/which` answers `version`, everything else
/// goes to the echo origin (WebSockets allowed).
fn config(address: SocketAddr, echo: SocketAddr, version: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "echo"
peers = ["http://{echo}"]

[[listener]]
name = "main"
address = "{address}"

[[listener.route]]
path = "= /which"
respond = {{ status = 200, body = "{version}" }}

[[listener.route]]
path = "/"
proxy = "echo"
websocket = true
"#
    )
}

/// A free loopback port (bound and released).
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One request on a kept-alive connection; `None` when anything failed.
async fn ask(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> Option<(u16, Bytes)> {
    sender.ready().await.ok()?;
    let request = http::Request::get(path)
        .header("host", "app.test")
        .body(Full::default())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

async fn connect(address: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_load_fail_no_request_and_leave_a_websocket_open() {
    let echo = start_echo().await;
    let address = free_address();
    let proxy = Proxy::start(&config(address, echo.local_addr(), "A")).await;

    let stream = TcpStream::connect(address).await.unwrap();
    let (mut websocket, _) = tokio_tungstenite::client_async("ws://app.test/ws", stream)
        .await
        .unwrap();

    let load_for = Duration::from_secs(20);
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (seen_a, seen_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (done, failed, seen_a, seen_b) =
            (done.clone(), failed.clone(), seen_a.clone(), seen_b.clone());
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut sender = connect(address).await;
            let mut count = 0u64;
            while started.elapsed() < load_for {
                // Half the clients also open a fresh connection every 20 requests, so new
                // connections meet every configuration.
                if client % 2 == 0 && count % 20 == 0 {
                    sender = connect(address).await;
                }
                count += 1;
                match ask(&mut sender, "/which").await {
                    Some((200, body)) if body == "A" => seen_a.fetch_add(1, Ordering::Relaxed),
                    Some((200, body)) if body == "B" => seen_b.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        sender = connect(address).await;
                        0
                    }
                };
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let version = if round % 2 == 0 { "B" } else { "A" };
        let bound = proxy
            .reload_with(&config(address, echo.local_addr(), version))
            .await
            .unwrap();
        assert_eq!(bound, [address]);
    }
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(
        done.load(Ordering::Relaxed) > 100,
        "too little load to mean anything"
    );
    assert!(seen_a.load(Ordering::Relaxed) > 0 && seen_b.load(Ordering::Relaxed) > 0);

    // The WebSocket opened before the first reload still echoes after the last.
    websocket.send(Message::text("still there?")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), websocket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("still there?"));
}

#[tokio::test]
async fn listeners_are_kept_added_and_closed_and_a_failing_reload_changes_nothing() {
    let echo = start_echo().await;
    let (first, second) = (free_address(), free_address());
    let proxy = Proxy::start(&config(first, echo.local_addr(), "A")).await;
    let mut kept = connect(first).await;
    assert_eq!(ask(&mut kept, "/which").await.unwrap().1, "A");

    // Add a listener on `second`, change the first's routes.
    let both = format!(
        "{}\n[[listener]]\nname = \"extra\"\naddress = \"{second}\"\n[[listener.route]]\npath = \"/\"\n\
         respond = {{ status = 200, body = \"extra\" }}\n",
        config(first, echo.local_addr(), "B")
    );
    assert_eq!(proxy.reload_with(&both).await.unwrap(), [first, second]);
    assert_eq!(
        ask(&mut connect(second).await, "/").await.unwrap().1,
        "extra"
    );
    assert_eq!(
        ask(&mut connect(first).await, "/which").await.unwrap().1,
        "B"
    );
    // The connection opened before the reload keeps the configuration it started with.
    assert_eq!(ask(&mut kept, "/which").await.unwrap().1, "A");

    // A reload that needs an address in use elsewhere is refused whole.
    let occupied = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken = occupied.local_addr().unwrap();
    let refused = format!(
        "{}\n[[listener]]\nname = \"third\"\naddress = \"{taken}\"\n[[listener.route]]\npath = \"/\"\n\
         respond = {{ status = 200 }}\n",
        config(first, echo.local_addr(), "C")
    );
    let error = proxy.reload_with(&refused).await.unwrap_err();
    assert!(
        error.report().contains(&taken.to_string()),
        "{}",
        error.report()
    );
    assert_eq!(
        ask(&mut connect(first).await, "/which").await.unwrap().1,
        "B"
    );
    assert_eq!(
        ask(&mut connect(second).await, "/").await.unwrap().1,
        "extra"
    );

    // Dropping the extra listener closes its socket.
    proxy
        .reload_with(&config(first, echo.local_addr(), "A"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(second).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the removed listener still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ask(&mut connect(first).await, "/which").await.unwrap().1,
        "A"
    );
}
