#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::client_async;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::error::Error;
use crate::websocket::validate;
use crate::{EchoHandle, EchoOrigin, MAX_ECHO_BODY};

async fn start() -> EchoHandle {
    EchoOrigin::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
}

/// Sends one request over a fresh HTTP/1.1 connection and returns status, headers, body.
async fn http1(addr: SocketAddr, request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Bytes) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn get_is_echoed_as_json() {
    let origin = start().await;
    let request = Request::get("/some/path?a=1&b=two")
        .header("host", "echo.test")
        .header("x-repeat", "one")
        .header("x-repeat", "two")
        .body(Full::default())
        .unwrap();

    let (status, headers, body) = http1(origin.local_addr(), request).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let echo = json_body(&body);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/some/path?a=1&b=two");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["host"], "echo.test");
    assert_eq!(echo["headers"]["x-repeat"], json!(["one", "two"]));
    assert_eq!(echo["body"], "");
    assert_eq!(echo["body_bytes"], 0);
}

#[tokio::test]
async fn post_body_is_echoed() {
    let origin = start().await;
    let request = Request::post("/submit")
        .header("host", "echo.test")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hello, origin")))
        .unwrap();

    let (status, _, body) = http1(origin.local_addr(), request).await;

    assert_eq!(status, StatusCode::OK);
    let echo = json_body(&body);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/submit");
    assert_eq!(echo["headers"]["content-type"], "text/plain");
    assert_eq!(echo["headers"]["content-length"], "13");
    assert_eq!(echo["body"], "hello, origin");
    assert_eq!(echo["body_bytes"], 13);
}

#[tokio::test]
async fn non_utf8_body_is_converted_lossily_and_counted() {
    let origin = start().await;
    let request = Request::put("/bin")
        .header("host", "echo.test")
        .body(Full::new(Bytes::from_static(&[b'a', 0xff, b'b'])))
        .unwrap();

    let (status, _, body) = http1(origin.local_addr(), request).await;

    assert_eq!(status, StatusCode::OK);
    let echo = json_body(&body);
    assert_eq!(echo["body"], "a\u{fffd}b");
    assert_eq!(echo["body_bytes"], 3);
}

#[tokio::test]
async fn body_at_the_limit_is_echoed() {
    let origin = start().await;
    let request = Request::post("/big")
        .header("host", "echo.test")
        .body(Full::new(Bytes::from(vec![b'x'; MAX_ECHO_BODY])))
        .unwrap();

    let (status, _, body) = http1(origin.local_addr(), request).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&body)["body_bytes"], MAX_ECHO_BODY);
}

#[tokio::test]
async fn declared_body_over_the_limit_gets_413() {
    let origin = start().await;
    let mut stream = TcpStream::connect(origin.local_addr()).await.unwrap();
    let head = format!(
        "POST /big HTTP/1.1\r\nhost: echo.test\r\ncontent-length: {}\r\n\r\n",
        MAX_ECHO_BODY + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();

    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
}

#[tokio::test]
async fn chunked_body_over_the_limit_gets_413_and_close() {
    let origin = start().await;
    let stream = TcpStream::connect(origin.local_addr()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Keep sending chunks (ignoring write errors once the origin closes) while reading.
    let sender = tokio::spawn(async move {
        let head = b"POST /big HTTP/1.1\r\nhost: echo.test\r\ntransfer-encoding: chunked\r\n\r\n";
        writer.write_all(head).await?;
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..(MAX_ECHO_BODY / chunk.len() + 1) {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });

    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let _ = sender.await;

    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 413 "), "{response}");
    assert!(response.contains("connection: close"), "{response}");
}

#[tokio::test]
async fn http2_prior_knowledge_is_echoed() {
    let origin = start().await;
    let stream = TcpStream::connect(origin.local_addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post("http://echo.test/h2?x=y")
        .version(Version::HTTP_2)
        .body(Full::new(Bytes::from_static(b"over h2")))
        .unwrap();

    let response = sender.send_request(request).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let echo = json_body(&body);
    assert_eq!(echo["path"], "/h2?x=y");
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["body"], "over h2");
}

#[tokio::test]
async fn websocket_echoes_text_binary_and_close() {
    let origin = start().await;
    let addr = origin.local_addr();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut socket, response) = client_async(format!("ws://{addr}/ws?room=1"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("hello")
    );
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    socket
        .send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"are you there"))
    );

    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    };
    socket.close(Some(frame.clone())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::Close(Some(frame))
    );
    assert!(socket.next().await.is_none());
}

#[tokio::test]
async fn malformed_upgrade_gets_400() {
    let origin = start().await;
    let mut stream = TcpStream::connect(origin.local_addr()).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: echo.test\r\nupgrade: websocket\r\n\
              connection: upgrade\r\nsec-websocket-version: 13\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();

    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();

    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(response.contains("Sec-WebSocket-Key"), "{response}");
}

#[tokio::test]
async fn plain_get_on_ws_path_gets_400() {
    let origin = start().await;
    let request = Request::get("/ws")
        .header("host", "echo.test")
        .body(Full::default())
        .unwrap();

    let (status, _, body) = http1(origin.local_addr(), request).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json_body(&body)["error"].is_string());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_origin() {
    let origin = start().await;
    let addr = origin.local_addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    drop(origin);

    // The accepted connection is closed with the server...
    let mut buf = [0u8; 1];
    let _ = open.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let read = open.read(&mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // ...and the listener no longer accepts.
    assert!(TcpStream::connect(addr).await.is_err());
}

fn upgrade_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("upgrade", "WebSocket".parse().unwrap());
    headers.insert("connection", "keep-alive, Upgrade".parse().unwrap());
    headers.insert(
        "sec-websocket-key",
        "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
    );
    headers.insert("sec-websocket-version", "13".parse().unwrap());
    headers
}

#[test]
fn valid_upgrade_yields_the_key() {
    let key = validate(&Method::GET, Version::HTTP_11, &upgrade_headers()).unwrap();
    assert_eq!(key, b"dGhlIHNhbXBsZSBub25jZQ==");
}

/// Validates the valid handshake after `edit`, expecting a refusal answered with 400.
fn refused(method: Method, version: Version, edit: impl FnOnce(&mut HeaderMap)) -> Error {
    let mut headers = upgrade_headers();
    edit(&mut headers);
    let error = validate(&method, version, &headers).unwrap_err();
    assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error:?}");
    error
}

#[test]
fn invalid_upgrades_are_refused_with_400() {
    let error = refused(Method::POST, Version::HTTP_11, |_| {});
    assert!(matches!(error, Error::UpgradeMethod { .. }), "{error:?}");

    let error = refused(Method::GET, Version::HTTP_10, |_| {});
    assert!(matches!(error, Error::UpgradeVersion { .. }), "{error:?}");

    let error = refused(Method::GET, Version::HTTP_11, |h| {
        h.insert("upgrade", "h2c".parse().unwrap());
    });
    assert!(matches!(error, Error::UpgradeHeader), "{error:?}");

    let error = refused(Method::GET, Version::HTTP_11, |h| {
        h.insert("connection", "keep-alive".parse().unwrap());
    });
    assert!(matches!(error, Error::ConnectionHeader), "{error:?}");

    let error = refused(Method::GET, Version::HTTP_11, |h| {
        h.remove("sec-websocket-key");
    });
    assert!(matches!(error, Error::Key), "{error:?}");

    let error = refused(Method::GET, Version::HTTP_11, |h| {
        h.insert("sec-websocket-key", "short".parse().unwrap());
    });
    assert!(matches!(error, Error::Key), "{error:?}");

    let error = refused(Method::GET, Version::HTTP_11, |h| {
        h.insert("sec-websocket-version", "8".parse().unwrap());
    });
    assert!(
        matches!(&error, Error::WebSocketVersion { got: Some(v) } if v == "8"),
        "{error:?}"
    );

    let error = refused(Method::GET, Version::HTTP_11, |h| {
        h.remove("sec-websocket-version");
    });
    assert!(
        matches!(error, Error::WebSocketVersion { got: None }),
        "{error:?}"
    );
}

#[test]
fn body_errors_have_their_statuses() {
    let too_large = Error::BodyTooLarge { limit: 1 };
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = Error::Body {
        source: "broken".into(),
    };
    assert_eq!(body.status(), StatusCode::BAD_REQUEST);
}
