//! Bodies are streamed, never buffered whole.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::clients::http1_request_streaming;
use gangway_e2e::origins::{StreamingOrigin, expected_download_sha256};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

fn config(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[[upstream]]
name = "files"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "files"
max_body = "1GiB"
"#
    )
}

type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

fn channel_body() -> (
    mpsc::Sender<Chunk>,
    StreamBody<futures_util::stream::BoxStream<'static, Chunk>>,
) {
    let (sender, mut receiver) = mpsc::channel::<Chunk>(4);
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    (
        sender,
        StreamBody::new(futures_util::StreamExt::boxed(stream)),
    )
}

#[tokio::test]
async fn the_upstream_gets_the_first_chunk_before_the_client_sends_the_rest() {
    let origin = StreamingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr())).await;
    let (sender, body) = channel_body();
    let request = http::Request::post("/upload")
        .header("host", "files.test")
        .body(body)
        .unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = tokio::spawn(http1_request_streaming(stream, request));

    sender
        .send(Ok(Frame::data(Bytes::from_static(b"first chunk"))))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), origin.first_chunk_received())
        .await
        .expect("the first chunk reached the upstream while the rest was still unsent");
    sender
        .send(Ok(Frame::data(Bytes::from_static(b" and the rest"))))
        .await
        .unwrap();
    drop(sender);

    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let summary: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(summary["bytes"], 24);
    assert_eq!(
        summary["sha256"],
        hex(&Sha256::digest(b"first chunk and the rest"))
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

const BIG: u64 = 256 * 1024 * 1024;

#[tokio::test]
async fn a_256_mib_upload_passes_intact() {
    let origin = StreamingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr())).await;
    let (sender, body) = channel_body();
    let request = http::Request::post("/upload")
        .header("host", "files.test")
        .body(body)
        .unwrap();
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = tokio::spawn(http1_request_streaming(stream, request));
    let mut digest = Sha256::new();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut sent = 0u64;
    while sent < BIG {
        let mut chunk = vec![0u8; 256 * 1024];
        for byte in &mut chunk {
            // xorshift: cheap, deterministic, incompressible enough.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        digest.update(&chunk);
        sent += chunk.len() as u64;
        sender
            .send(Ok(Frame::data(Bytes::from(chunk))))
            .await
            .unwrap();
    }
    drop(sender);
    let response = tokio::time::timeout(Duration::from_secs(300), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let summary: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(summary["bytes"], BIG);
    assert_eq!(summary["sha256"], hex(&digest.finalize()));
}

#[tokio::test]
async fn a_256_mib_download_passes_intact() {
    let origin = StreamingOrigin::start().await;
    let proxy = Proxy::start(&config(origin.addr())).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("/download?bytes={BIG}&seed=7"))
        .header("host", "files.test")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut digest = Sha256::new();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
            digest.update(&data);
        }
    }
    assert_eq!(received, BIG);
    assert_eq!(hex(&digest.finalize()), expected_download_sha256(BIG, 7));
}
