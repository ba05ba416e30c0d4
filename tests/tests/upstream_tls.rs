//! HTTPS upstreams: verified against the configured CA, refused (502) otherwise.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{Proxy, get};
use gangway_e2e::certs::{Issued, TempDir, TestCa};
use gangway_e2e::clients::http1_request;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// An HTTPS origin answering "secure hello"; the task ends with the test's runtime.
async fn tls_origin(issued: &Issued) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"secure hello"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

fn config(origin: SocketAddr, ca: &std::path::Path) -> String {
    format!(
        r#"
[[upstream]]
name = "secure"
peers = ["https://{origin}"]
ca = {ca:?}
server_name = "origin.test"

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "secure"
"#
    )
}

#[tokio::test]
async fn an_https_upstream_verified_against_the_configured_ca_is_served() {
    let ca = TestCa::new("upstream CA");
    let origin = tls_origin(&ca.issue_server(&["origin.test"])).await;
    let dir = TempDir::new("upstream-ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let proxy = Proxy::start_in(dir, &config(origin, &ca_file)).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "secure hello");
}

#[tokio::test]
async fn an_https_upstream_with_a_certificate_from_another_ca_gets_502() {
    let trusted = TestCa::new("trusted CA");
    let other = TestCa::new("other CA");
    let origin = tls_origin(&other.issue_server(&["origin.test"])).await;
    let dir = TempDir::new("upstream-wrong-ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, trusted.pem()).unwrap();
    let proxy = Proxy::start_in(dir, &config(origin, &ca_file)).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    assert_eq!(response.status(), 502);
}
