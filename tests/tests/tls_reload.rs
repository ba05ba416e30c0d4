//! Certificates renewed on disk while devices stay connected: open connections keep
//! working, new handshakes get the new certificate, a broken file keeps the old one.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::certs::{Issued, TempDir, TestCa};
use gangway_e2e::clients::{tls_client_config, tls_connect};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

const NAME: &str = "reload.test";

/// Writes `issued` as `cert.pem` and `key.pem` in `dir`, each replaced in one rename.
fn install(dir: &Path, issued: &Issued) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, contents) in [(&key, &issued.key_pem), (&cert, &issued.chain_pem)] {
        let staged = path.with_extension("new");
        std::fs::write(&staged, contents).unwrap();
        std::fs::rename(&staged, path).unwrap();
    }
    (cert, key)
}

async fn start(first: &Issued, watch: &str) -> Proxy {
    let dir = TempDir::new("tls-reload");
    let (cert, key) = install(dir.path(), first);
    let toml = format!(
        r#"
[server]
certificate_watch_interval = "{watch}"

[[listener]]
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}

[[listener.route]]
path = "/"
respond = {{ status = 200, body = "still here" }}
"#
    );
    Proxy::start_in(dir, &toml).await
}

/// The leaf a new handshake gets.
async fn served_leaf(proxy: &Proxy, ca: &TestCa) -> CertificateDer<'static> {
    let config = tls_client_config(&ca.pem(), &[b"http/1.1"]);
    let stream = tls_connect(proxy.addr(), NAME, config).await;
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn leaf(issued: &Issued) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()
}

/// A kept-alive HTTP/1.1 client connection over TLS.
async fn open_connection(
    proxy: &Proxy,
    ca: &TestCa,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    CertificateDer<'static>,
) {
    let config = tls_client_config(&ca.pem(), &[b"http/1.1"]);
    let stream = tls_connect(proxy.addr(), NAME, config).await;
    let negotiated = stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    (sender, negotiated)
}

async fn ask(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> Bytes {
    sender.ready().await.unwrap();
    let request = http::Request::get("/")
        .header("host", NAME)
        .body(Full::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_renewed_certificate_is_picked_up_while_an_open_connection_keeps_working() {
    let ca = TestCa::new("reload CA");
    let old = ca.issue_server(&[NAME]);
    let new = ca.issue_server(&[NAME]);
    let proxy = start(&old, "100ms").await;
    let (mut open, negotiated) = open_connection(&proxy, &ca).await;
    assert_eq!(negotiated, leaf(&old));
    assert_eq!(ask(&mut open).await, "still here");

    // Renew on disk, as certbot or an operator would.
    install(proxy.dir.path(), &new);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if served_leaf(&proxy, &ca).await == leaf(&new) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the renewal is untouched and still served.
    assert_eq!(ask(&mut open).await, "still here");
}

#[tokio::test]
async fn a_corrupt_replacement_is_refused_and_the_old_certificate_stays() {
    let ca = TestCa::new("reload CA");
    let old = ca.issue_server(&[NAME]);
    let proxy = start(&old, "off").await;
    let (mut open, _) = open_connection(&proxy, &ca).await;

    let cert_file = proxy.dir.path().join("cert.pem");
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let outcome = proxy.tls_reloader.reload();
    assert_eq!(outcome.len(), 1);
    let error = outcome[0].result.as_ref().unwrap_err();
    let message = format!("{error}");
    assert!(
        message.contains(&cert_file.display().to_string()),
        "the error should name the file: {message}"
    );
    assert_eq!(served_leaf(&proxy, &ca).await, leaf(&old));
    assert_eq!(ask(&mut open).await, "still here");

    // A good file after the broken one is taken.
    let new = ca.issue_server(&[NAME]);
    install(proxy.dir.path(), &new);
    let outcome = proxy.tls_reloader.reload();
    let report = outcome[0].result.as_ref().unwrap();
    assert_eq!(report.changed.len(), 1, "{report:?}");
    assert_eq!(served_leaf(&proxy, &ca).await, leaf(&new));
}
