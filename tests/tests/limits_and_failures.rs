//! Limits and failures: each answered with the status a client expects, in time.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Proxy, get};
use gangway_e2e::clients::{http1_request, raw_exchange};
use gangway_e2e::origins::{RecordingOrigin, StallingOrigin, refused_addr};
use http_body_util::{Full, StreamBody};
use tokio::net::TcpStream;

fn config(origin: std::net::SocketAddr, extra_listener: &str, extra_route: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{origin}"]
connect_timeout = "2s"
response_header_timeout = "1s"

[[listener]]
address = "127.0.0.1:0"
{extra_listener}

[[listener.route]]
path = "/"
proxy = "app"
max_body = 1024
{extra_route}
"#
    )
}

/// A request body the test sends frame by frame through the returned sender; it ends when
/// the sender is dropped.
fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>,
    impl hyper::body::Body<Data = Bytes, Error = std::convert::Infallible> + Send + 'static,
) {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|frame| (frame, receiver))
    });
    (sender, StreamBody::new(stream))
}

#[tokio::test]
async fn body_over_the_limit_with_content_length_gets_413_and_never_reaches_the_upstream() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "", "")).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::post("/upload")
        .header("host", "app.test")
        .body(Full::new(Bytes::from(vec![b'x'; 1025])))
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 413);
    assert!(origin.requests().is_empty());

    // Exactly at the limit is fine.
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = http::Request::post("/upload")
        .header("host", "app.test")
        .body(Full::new(Bytes::from(vec![b'x'; 1024])))
        .unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 200);
}

#[tokio::test]
async fn chunked_body_over_the_limit_gets_413_while_streaming() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "", "")).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let chunks = (0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(vec![b'y'; 400])))
    });
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let request = http::Request::post("/upload")
        .header("host", "app.test")
        .body(body)
        .unwrap();
    let response = gangway_e2e::clients::http1_request_streaming(stream, request).await;
    assert_eq!(response.status(), 413);
    assert!(
        origin.requests().iter().all(|seen| seen.body.len() <= 1024),
        "the upstream never receives more than the limit"
    );
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "max_header_size = \"8KiB\"", "")).await;
    let request = format!(
        "GET / HTTP/1.1\r\nhost: app.test\r\nx-big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let answer = raw_exchange(proxy.addr(), request.as_bytes(), Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(origin.requests().is_empty());
}

#[tokio::test]
async fn a_client_stalling_in_its_headers_gets_408_and_is_closed() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "header_read_timeout = \"1s\"", "")).await;
    let started = Instant::now();
    let answer = raw_exchange(
        proxy.addr(),
        b"GET / HTTP/1.1\r\nhost: app.te",
        Duration::from_secs(10),
    )
    .await;
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "408 came early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "the connection was not closed in time: {elapsed:?}"
    );
    assert!(origin.requests().is_empty());
}

#[tokio::test]
async fn a_refused_upstream_gets_502() {
    let proxy = Proxy::start(&config(refused_addr(), "", "")).await;
    let started = Instant::now();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    assert_eq!(response.status(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "502 within the connect timeout"
    );
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_504_within_its_timeout() {
    let origin = StallingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "", "")).await;
    let started = Instant::now();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        elapsed >= Duration::from_millis(900),
        "504 came early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "504 came late: {elapsed:?}"
    );
}

#[tokio::test]
async fn an_upgrade_on_a_route_that_is_not_a_websocket_route_is_refused() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "", "")).await;
    let request =
        b"GET /ws HTTP/1.1\r\nhost: app.test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
    let answer = raw_exchange(proxy.addr(), request, Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400 "));
    assert!(origin.requests().is_empty());
}

#[tokio::test]
async fn an_upload_slower_than_the_response_timeout_is_not_cut_the_timer_starts_after_the_body() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "", "")).await;
    let (sender, body) = channel_body();
    let request = http::Request::post("/slow-upload")
        .header("host", "app.test")
        .body(body)
        .unwrap();
    let connection = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = tokio::spawn(gangway_e2e::clients::http1_request_streaming(
        connection, request,
    ));
    // Three chunks 700 ms apart: the upload takes longer than the 1 s response timeout.
    for _ in 0..3 {
        sender
            .send(Ok(hyper::body::Frame::data(Bytes::from_static(b"chunk"))))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    drop(sender);
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(origin.requests()[0].body.as_ref(), b"chunkchunkchunk");
}

/// The client sends part of its body and then nothing: after the route's
/// `body_idle_timeout` (1 s) it gets 408, and the upstream never sees a complete body.
#[tokio::test]
async fn an_upload_that_stalls_mid_body_gets_408_after_the_body_idle_timeout() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr(), "", "body_idle_timeout = \"1s\"")).await;
    let (sender, body) = channel_body();
    let request = http::Request::post("/stalled-upload")
        .header("host", "app.test")
        .header("content-length", "100")
        .body(body)
        .unwrap();
    let connection = TcpStream::connect(proxy.addr()).await.unwrap();
    let started = Instant::now();
    let response = tokio::spawn(gangway_e2e::clients::try_http1_request(connection, request));
    sender
        .send(Ok(hyper::body::Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    // The sender stays open: the body neither ends nor moves again.
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the proxy answers a stalled upload")
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 408);
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "408 after {elapsed:?}, the idle timeout is 1 s"
    );
    assert!(origin.requests().iter().all(|seen| seen.body.len() < 100));
    drop(sender);
}

/// An upstream that sends its response body in pieces 600 ms apart, longer in all than
/// the route's `body_idle_timeout` (1 s), is passed on whole: each piece re-arms the
/// timer. When it then stops sending, the response is cut about 1 s after the last piece.
#[tokio::test]
async fn a_response_body_moving_within_the_idle_timeout_is_not_cut_and_one_that_stalls_is() {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed before sending its request head");
            head.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        for piece in 0..4 {
            let chunk = format!("5\r\npart{piece}\r\n");
            stream.write_all(chunk.as_bytes()).await.unwrap();
            // The pacing is the behaviour under test, not synchronisation.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        // No last chunk: the body stalls with the connection open until the proxy ends it.
        let _ = stream.read(&mut buf).await;
    });
    let proxy = Proxy::start(&config(origin, "", "body_idle_timeout = \"1s\"")).await;
    let connection = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(connection))
            .await
            .unwrap();
    tokio::spawn(driver);
    let request = http::Request::get("/trickle")
        .header("host", "app.test")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let mut last_piece = Instant::now();
    let ending = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the proxy ends a stalled response body");
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    received.extend_from_slice(data);
                    last_piece = Instant::now();
                }
            }
            Some(Err(error)) => break Some(error),
            None => break None,
        }
    };
    assert_eq!(received, b"part0part1part2part3");
    assert!(ending.is_some(), "a stalled body must not look complete");
    let stalled = last_piece.elapsed();
    assert!(
        stalled >= Duration::from_millis(900) && stalled < Duration::from_secs(3),
        "cut {stalled:?} after the last piece, the idle timeout is 1 s"
    );
    upstream.await.unwrap();
}
