#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::certs::{Issued, KeyType, TempDir, TestCa, self_signed, write_pem_files};
use crate::clients::{
    http1_request, http1_request_streaming, http2_request, raw_exchange, tls_client_config,
    tls_connect, try_tls_connect,
};
use crate::origins::{
    PseudoRandomBody, RecordingOrigin, SlowOrigin, StallingOrigin, StreamingOrigin,
    expected_download_sha256, refused_addr, sha256_hex, start_echo,
};

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header("host", "support.test")
        .body(Full::default())
        .unwrap()
}

/// A TLS origin presenting `issued` that answers every request with its negotiated
/// HTTP version, over HTTP/1.1 or HTTP/2 as ALPN decided.
async fn tls_server(issued: &Issued) -> SocketAddr {
    let chain = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let version = format!("{:?}", request.version());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(version))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn issued_certificates_are_trusted_through_the_ca_for_every_key_type() {
    for key_type in KeyType::ALL {
        let ca = TestCa::with_key_type("support CA", key_type);
        let addr =
            tls_server(&ca.issue_server_with_key_type(&["app.test", "127.0.0.1"], key_type)).await;

        let h1 = tls_client_config(&ca.pem(), &[b"http/1.1"]);
        let stream = tls_connect(addr, "app.test", h1).await;
        let response = http1_request(stream, get("/")).await;
        assert_eq!(response.body(), "HTTP/1.1", "{key_type:?}");

        let h2 = tls_client_config(&ca.pem(), &[b"h2"]);
        let stream = tls_connect(addr, "127.0.0.1", h2).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let response = http2_request(stream, get("https://app.test/")).await;
        assert_eq!(response.body(), "HTTP/2.0", "{key_type:?}");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_for_another_name_is_refused() {
    let ca = TestCa::new("trusted");
    let other = TestCa::new("other");
    let addr = tls_server(&other.issue_server(&["app.test"])).await;
    let config = tls_client_config(&ca.pem(), &[]);
    assert!(try_tls_connect(addr, "app.test", config).await.is_err());

    let addr = tls_server(&ca.issue_server(&["app.test"])).await;
    let config = tls_client_config(&ca.pem(), &[]);
    assert!(
        try_tls_connect(addr, "elsewhere.test", config)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_its_own_trust_anchor() {
    let issued = self_signed(&["localhost"]);
    assert_eq!(issued.chain_pem, issued.cert_pem);
    let addr = tls_server(&issued).await;
    let config = tls_client_config(&issued.cert_pem, &[]);
    let stream = tls_connect(addr, "localhost", config).await;
    assert_eq!(http1_request(stream, get("/")).await.status(), 200);
}

#[test]
fn pem_files_are_written_under_fresh_names_and_removed_with_the_dir() {
    let ca = TestCa::new("files");
    let issued = ca.issue_server(&["a.test"]);
    let dir = TempDir::new("support");
    let (cert, key) = write_pem_files(dir.path(), &issued);
    let (cert2, _) = write_pem_files(dir.path(), &issued);
    assert_ne!(cert, cert2);
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), issued.chain_pem);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), issued.key_pem);
    assert!(issued.chain_pem.starts_with(&issued.cert_pem));
    assert!(issued.chain_pem.ends_with(&ca.pem()));
    assert!(!format!("{issued:?}").contains("PRIVATE KEY"));

    let path = dir.path().to_owned();
    assert_ne!(path, TempDir::new("support").path());
    drop(dir);
    assert!(!path.exists());
}

#[tokio::test]
async fn recording_origin_records_requests_and_counts_reused_connections() {
    let origin = RecordingOrigin::start().await;
    let stream = TcpStream::connect(origin.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);

    for path in ["/one?x=1", "/two"] {
        let request = Request::post(path)
            .header("host", "support.test")
            .header("x-test", path)
            .body(Full::new(Bytes::from(path.to_owned())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-origin"], origin.addr().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
    }

    let requests = origin.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, http::Method::POST);
    assert_eq!(requests[0].uri, "/one?x=1");
    assert_eq!(requests[0].headers["x-test"], "/one?x=1");
    assert_eq!(requests[0].body, "/one?x=1");
    assert_eq!(requests[1].uri, "/two");
    assert_eq!(origin.connections(), 1);

    let stream = TcpStream::connect(origin.addr()).await.unwrap();
    http1_request(stream, get("/three")).await;
    assert_eq!(origin.connections(), 2);
}

#[tokio::test]
async fn streaming_origin_reports_the_first_chunk_before_the_body_ends() {
    let origin = StreamingOrigin::start().await;
    let (sender, mut receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| {
        receiver.poll_recv(cx)
    }));
    let request = Request::post("/upload")
        .header("host", "support.test")
        .body(body)
        .unwrap();
    let stream = TcpStream::connect(origin.addr()).await.unwrap();
    let response = tokio::spawn(http1_request_streaming(stream, request));

    sender
        .send(Ok(Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    assert_eq!(origin.first_chunk_received().await, 5);
    sender
        .send(Ok(Frame::data(Bytes::from_static(b" second"))))
        .await
        .unwrap();
    drop(sender);

    let response = response.await.unwrap();
    let summary: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(summary["bytes"], 12);
    assert_eq!(summary["sha256"], sha256_hex(b"first second"));
}

#[tokio::test]
async fn streaming_origin_digests_a_large_streamed_upload() {
    let origin = StreamingOrigin::start().await;
    let size = 3 * 1024 * 1024 + 5;
    let request = Request::post("/upload")
        .header("host", "support.test")
        .body(PseudoRandomBody::new(size, 9).without_length())
        .unwrap();
    let stream = TcpStream::connect(origin.addr()).await.unwrap();

    let response = http1_request_streaming(stream, request).await;

    let summary: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(summary["bytes"], size);
    assert_eq!(summary["sha256"], expected_download_sha256(size, 9));
}

#[tokio::test]
async fn streaming_origin_downloads_match_the_expected_digest() {
    let origin = StreamingOrigin::start().await;
    for (query, bytes, seed) in [
        ("bytes=1000003&seed=42", 1_000_003, 42),
        ("bytes=70000&seed=1&chunked=1", 70_000, 1),
        ("bytes=0", 0, 0),
    ] {
        let stream = TcpStream::connect(origin.addr()).await.unwrap();
        let response = http1_request(stream, get(&format!("/download?{query}"))).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let chunked = response.headers().get("transfer-encoding").is_some();
        assert_eq!(chunked, query.contains("chunked"), "{query}");
        assert_eq!(response.body().len() as u64, bytes, "{query}");
        assert_eq!(
            sha256_hex(response.body()),
            expected_download_sha256(bytes, seed),
            "{query}"
        );
    }
    assert_ne!(
        expected_download_sha256(1000, 1),
        expected_download_sha256(1000, 2)
    );

    let stream = TcpStream::connect(origin.addr()).await.unwrap();
    let response = http1_request(stream, get("/download?bytes=lots")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stalling_origin_reads_and_never_answers() {
    let origin = StallingOrigin::start().await;
    let answer = raw_exchange(
        origin.addr(),
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_millis(200),
    )
    .await;
    assert!(answer.is_empty());
    assert_eq!(origin.connections(), 1);
}

#[tokio::test]
async fn slow_origin_answers_after_its_delay() {
    let origin = SlowOrigin::start(Duration::from_millis(50)).await;
    let started = tokio::time::Instant::now();
    let stream = TcpStream::connect(origin.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    assert_eq!(response.body(), "slow");
    assert!(started.elapsed() >= origin.delay());
}

#[tokio::test]
async fn raw_exchange_returns_what_arrived_before_the_close() {
    let echo = start_echo().await;
    let answer = raw_exchange(
        echo.local_addr(),
        b"GET /raw HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(r#""path":"/raw""#), "{answer}");
}

#[tokio::test]
async fn refused_addr_refuses() {
    assert!(TcpStream::connect(refused_addr()).await.is_err());
}

#[tokio::test]
async fn dropping_an_origin_closes_its_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let origin = RecordingOrigin::start().await;
    let mut stream = TcpStream::connect(origin.addr()).await.unwrap();
    // One answered request proves the connection is being served (and kept alive).
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"ok") {
        let n = stream.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }

    drop(origin);

    let read = stream.read(&mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
