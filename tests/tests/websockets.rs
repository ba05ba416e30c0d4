//! WebSockets through the proxy to a real echo upstream: every kind of message intact over
//! HTTP/1.1 upgrades and HTTP/2 extended CONNECT (RFC 8441), the idle timeout, refused
//! and malformed upgrades, and `Upgrade: h2c` kept from the upstream.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{raw_exchange, tls_client_config, tls_connect};
use gangway_e2e::origins::{RecordingOrigin, start_echo};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

/// A TLS listener (h2 and http/1.1) with one WebSocket route to `upstream`.
async fn websocket_proxy(upstream: SocketAddr, idle: &str) -> (Proxy, TestCa) {
    websocket_proxy_on(upstream, idle, gangway_proxy::Workers::here()).await
}

/// [`websocket_proxy`] serving its connections on `workers`.
async fn websocket_proxy_on(
    upstream: SocketAddr,
    idle: &str,
    workers: gangway_proxy::Workers,
) -> (Proxy, TestCa) {
    let ca = TestCa::new("websocket CA");
    let dir = TempDir::new("websockets");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&["app.test"]));
    let toml = format!(
        r#"
[[upstream]]
name = "origin"
peers = ["http://{upstream}"]

[[listener]]
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}

[[listener.route]]
path = "/"
proxy = "origin"
websocket = true
websocket_idle_timeout = "{idle}"
"#
    );
    (Proxy::start_on(dir, &toml, workers).await, ca)
}

/// A WebSocket through the proxy over an HTTP/1.1 upgrade.
async fn over_http1(
    proxy: &Proxy,
    ca: &TestCa,
) -> WebSocketStream<impl AsyncRead + AsyncWrite + Unpin> {
    let stream = tls_connect(
        proxy.addr(),
        "app.test",
        tls_client_config(&ca.pem(), &[b"http/1.1"]),
    )
    .await;
    let (ws, response) = tokio_tungstenite::client_async("wss://app.test/ws", stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// A WebSocket through the proxy over HTTP/2 extended CONNECT.
async fn over_http2(
    proxy: &Proxy,
    ca: &TestCa,
) -> WebSocketStream<impl AsyncRead + AsyncWrite + Unpin> {
    let stream = tls_connect(
        proxy.addr(),
        "app.test",
        tls_client_config(&ca.pem(), &[b"h2"]),
    )
    .await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    // The client may open a `:protocol` stream only once the server's SETTINGS allowed it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        let mut request = http::Request::connect("https://app.test/ws")
            .version(http::Version::HTTP_2)
            .header("sec-websocket-version", "13")
            .body(Empty::<Bytes>::new())
            .unwrap();
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        sender.ready().await.unwrap();
        match sender.send_request(request).await {
            Ok(response) => break response,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("extended CONNECT failed: {error}"),
        }
    };
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("upgrade").is_none());
    assert!(response.headers().get("sec-websocket-accept").is_none());
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
}

async fn next_message<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    tokio::time::timeout(Duration::from_secs(60), ws.next())
        .await
        .expect("a message in time")
        .expect("the stream is open")
        .expect("a valid message")
}

/// Text, binary, a fragmented message, 16 MiB, ping/pong and a close code, each echoed.
async fn every_kind_of_message_is_echoed<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
) {
    ws.send(Message::text("grüß dich")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("grüß dich"));

    let binary: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::binary(binary));

    for (payload, opcode, last) in [
        ("frag", OpCode::Data(Data::Text), false),
        ("ment", OpCode::Data(Data::Continue), false),
        ("ed", OpCode::Data(Data::Continue), true),
    ] {
        ws.send(Message::Frame(Frame::message(
            Bytes::from(payload),
            opcode,
            last,
        )))
        .await
        .unwrap();
    }
    assert_eq!(next_message(&mut ws).await, Message::text("fragmented"));

    let large: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    ws.send(Message::binary(large.clone())).await.unwrap();
    match next_message(&mut ws).await {
        Message::Binary(echoed) => assert!(echoed == large, "the 16 MiB message changed"),
        other => panic!("expected the 16 MiB message back, got {other:?}"),
    }

    ws.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Message::Pong(Bytes::from_static(b"are you there"))
    );

    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "done".into(),
    })))
    .await
    .unwrap();
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Library(4001)),
        other => panic!("expected the close code back, got {other:?}"),
    }
}

#[tokio::test]
async fn every_kind_of_message_arrives_intact_over_an_http1_upgrade() {
    let echo = start_echo().await;
    let (proxy, ca) = websocket_proxy(echo.local_addr(), "1h").await;
    every_kind_of_message_is_echoed(over_http1(&proxy, &ca).await).await;
}

/// Served on two worker threads (as the binaries do with two CPUs), both ways at once:
/// each WebSocket lives on its own worker.
#[tokio::test]
async fn every_kind_of_message_arrives_intact_on_worker_threads() {
    let echo = start_echo().await;
    let workers =
        gangway_proxy::Workers::start(std::num::NonZeroUsize::MIN.saturating_add(1)).unwrap();
    let (proxy, ca) = websocket_proxy_on(echo.local_addr(), "1h", workers.clone()).await;
    let (http1, http2) = (over_http1(&proxy, &ca).await, over_http2(&proxy, &ca).await);
    // The second connection went to the worker without the first one's tunnel.
    assert!(
        workers.tasks().iter().all(|&tasks| tasks > 0),
        "{:?}",
        workers.tasks()
    );
    tokio::join!(
        every_kind_of_message_is_echoed(http1),
        every_kind_of_message_is_echoed(http2)
    );
}

#[tokio::test]
async fn every_kind_of_message_arrives_intact_over_http2_extended_connect() {
    let echo = start_echo().await;
    let (proxy, ca) = websocket_proxy(echo.local_addr(), "1h").await;
    every_kind_of_message_is_echoed(over_http2(&proxy, &ca).await).await;
}

/// A WebSocket upstream that echoes and records when its connection ended.
async fn watched_echo() -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
        flag.store(true, Ordering::SeqCst);
    });
    (addr, closed)
}

#[tokio::test]
async fn the_idle_timeout_closes_both_sides_with_1001_and_traffic_resets_it() {
    let (upstream, upstream_closed) = watched_echo().await;
    let (proxy, ca) = websocket_proxy(upstream, "2s").await;
    let mut ws = over_http1(&proxy, &ca).await;
    // Traffic every 500 ms for 5 s keeps a 2 s idle timeout from firing.
    let mut last_traffic = Instant::now();
    for round in 0..10 {
        ws.send(Message::text(format!("round {round}")))
            .await
            .unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Message::text(format!("round {round}"))
        );
        last_traffic = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!upstream_closed.load(Ordering::SeqCst));
    // Then silence: the proxy ends both legs, no sooner than 2 s after the last byte (the
    // proxy saw that byte a little before this client did).
    let started = last_traffic;
    let end = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
    let end = end.expect("the client leg was closed");
    // With a close frame, not a dropped connection.
    match end {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
            assert_eq!(frame.reason.as_str(), "idle timeout");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "closed {:?} after the last traffic, before the 2 s idle timeout",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !upstream_closed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upstream leg stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn malformed_and_refused_upgrades_and_h2c() {
    // An upstream that refuses every WebSocket with 403.
    let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing_addr = refusing.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = refusing.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let mut response = http::Response::new(http_body_util::Full::new(
                        Bytes::from_static(b"not for you"),
                    ));
                    *response.status_mut() = http::StatusCode::FORBIDDEN;
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let recording = RecordingOrigin::start().await;
    let toml = format!(
        r#"
[[upstream]]
name = "refusing"
peers = ["http://{refusing_addr}"]

[[upstream]]
name = "recording"
peers = ["http://{}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/refused"
proxy = "refusing"
websocket = true

[[listener.route]]
path = "/"
proxy = "recording"
websocket = true
"#,
        recording.addr()
    );
    let proxy = Proxy::start(&toml).await;
    let upgrade = |path: &str, extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nhost: app.test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-version: 13\r\n{extra}\r\n"
        )
    };
    let wait = Duration::from_secs(3);
    for (request, expected) in [
        // No key, a short key, a wrong version, a POST.
        (upgrade("/ws", ""), "HTTP/1.1 400"),
        (
            upgrade("/ws", "sec-websocket-key: c2hvcnQ=\r\n"),
            "HTTP/1.1 400",
        ),
        (
            upgrade("/ws", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
                .replace("version: 13", "version: 8"),
            "HTTP/1.1 400",
        ),
        (
            upgrade("/ws", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
                .replacen("GET", "POST", 1),
            "HTTP/1.1 400",
        ),
        // A valid upgrade the upstream refuses: its 403 is passed on as it is.
        (
            upgrade(
                "/refused",
                "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            ),
            "HTTP/1.1 403",
        ),
    ] {
        let answer = raw_exchange(proxy.addr(), request.as_bytes(), wait).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(expected), "{request:?} -> {answer}");
        if expected.ends_with("403") {
            assert!(answer.ends_with("not for you"), "{answer}");
        }
    }
    assert!(
        recording.requests().is_empty(),
        "a malformed upgrade was forwarded"
    );

    // `Upgrade: h2c` is answered as a plain request; the upstream sees no upgrade.
    let answer = raw_exchange(
        proxy.addr(),
        b"GET /h2c HTTP/1.1\r\nhost: app.test\r\nupgrade: h2c\r\nconnection: upgrade, http2-settings\r\n\
          http2-settings: AAMAAABkAAQAAP__\r\n\r\n",
        wait,
    )
    .await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let seen = recording.requests();
    assert_eq!(seen.len(), 1);
    let connection = seen[0]
        .headers
        .get("connection")
        .map(|value| value.to_str().unwrap_or("").to_ascii_lowercase());
    assert!(
        connection
            .as_deref()
            .is_none_or(|value| !value.contains("upgrade")),
        "{connection:?}"
    );
    assert!(seen[0].headers.get("upgrade").is_none());
    assert!(seen[0].headers.get("http2-settings").is_none());
}

#[tokio::test]
async fn the_test_page_embeds_its_target_and_may_only_open_websockets() {
    let proxy = Proxy::start(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[listener.route]]\npath = \"= /check\"\n\
         websocket_test_page = \"wss://device.example/ws?id=7\"\n",
    )
    .await;
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let response = gangway_e2e::clients::http1_request(stream, common::get("/check")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.starts_with("default-src 'none';"), "{policy}");
    assert!(policy.contains("connect-src ws: wss:"), "{policy}");
    let html = String::from_utf8(response.body().to_vec()).unwrap();
    assert!(
        html.contains("var target = \"wss://device.example/ws?id=7\";"),
        "{html}"
    );
}
