//! HTTPS upstreams: verified against the configured CA or pinned by fingerprint (502
//! otherwise), TLS 1.3 only, and a client certificate presented to the upstream.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::{Proxy, get};
use gangway_e2e::certs::{Issued, TempDir, TestCa, self_signed, write_pem_files};
use gangway_e2e::clients::http1_request;
use gangway_e2e::origins::TlsOrigin;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;

/// Starts the engine with one HTTPS upstream at `origin` with the given upstream keys, and
/// answers one request through it: (status, body).
async fn through(origin: SocketAddr, upstream_keys: &str, dir: TempDir) -> (u16, Bytes) {
    let toml = format!(
        r#"
[[upstream]]
name = "secure"
peers = ["https://{origin}"]
{upstream_keys}

[[listener]]
address = "127.0.0.1:0"

[[listener.route]]
path = "/"
proxy = "secure"
"#
    );
    let proxy = Proxy::start_in(dir, &toml).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    (response.status().as_u16(), response.into_body())
}

fn write(dir: &TempDir, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn leaf_sha256(issued: &Issued) -> String {
    let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    gangway_e2e::origins::sha256_hex(&der)
}

#[tokio::test]
async fn a_tls13_only_upstream_verified_against_a_private_ca_is_served() {
    let ca = TestCa::new("private CA");
    let origin = TlsOrigin::start_with(
        &ca.issue_server(&["ums.test"]),
        &[&rustls::version::TLS13],
        None,
    )
    .await;
    let dir = TempDir::new("upstream-tls13");
    let ca_file = write(&dir, "ca.pem", &ca.pem());
    let keys = format!(
        "ca = {ca_file:?}
server_name = \"ums.test\"\ntls_versions = [\"1.3\"]"
    );
    assert_eq!(
        through(origin.addr(), &keys, dir).await,
        (200, Bytes::from("secure hello"))
    );
}

#[tokio::test]
async fn a_tls13_only_upstream_setting_refuses_a_tls12_only_peer_with_502() {
    let ca = TestCa::new("private CA");
    let origin = TlsOrigin::start_with(
        &ca.issue_server(&["old.test"]),
        &[&rustls::version::TLS12],
        None,
    )
    .await;
    let dir = TempDir::new("upstream-tls12-refused");
    let ca_file = write(&dir, "ca.pem", &ca.pem());
    let keys = format!(
        "ca = {ca_file:?}
server_name = \"old.test\"\ntls_versions = [\"1.3\"]"
    );
    assert_eq!(through(origin.addr(), &keys, dir).await.0, 502);
}

#[tokio::test]
async fn a_pinned_self_signed_certificate_is_accepted_and_another_refused() {
    let device = self_signed(&["meter.local"]);
    let impostor = self_signed(&["meter.local"]);
    let pin = leaf_sha256(&device);
    let keys = format!("pin_sha256 = [\"{pin}\"]");
    let origin = TlsOrigin::start(&device).await;
    assert_eq!(
        through(origin.addr(), &keys, TempDir::new("pin-ok")).await,
        (200, Bytes::from("secure hello"))
    );
    let origin = TlsOrigin::start(&impostor).await;
    assert_eq!(
        through(origin.addr(), &keys, TempDir::new("pin-refused"))
            .await
            .0,
        502
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let origin = TlsOrigin::start(&self_signed(&["anything.local"])).await;
    assert_eq!(
        through(
            origin.addr(),
            "insecure_skip_verify = true",
            TempDir::new("insecure")
        )
        .await,
        (200, Bytes::from("secure hello"))
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_an_upstream_that_requires_one() {
    let server_ca = TestCa::new("upstream CA");
    let client_ca = TestCa::new("proxy client CA");
    let origin = TlsOrigin::start_with(
        &server_ca.issue_server(&["ums.test"]),
        &[&rustls::version::TLS13],
        Some(&client_ca.pem()),
    )
    .await;
    let dir = TempDir::new("upstream-client-cert");
    let ca_file = write(&dir, "ca.pem", &server_ca.pem());
    let (cert, key) = write_pem_files(dir.path(), &client_ca.issue_client("gangway"));
    let base = format!("ca = {ca_file:?}\nserver_name = \"ums.test\"\n");
    let with_certificate =
        format!("{base}client_certificate = {cert:?}\nclient_private_key = {key:?}");
    assert_eq!(
        through(origin.addr(), &with_certificate, dir).await,
        (200, Bytes::from("secure hello"))
    );
    let dir = TempDir::new("upstream-no-client-cert");
    let ca_file = write(&dir, "ca.pem", &server_ca.pem());
    let without = format!("ca = {ca_file:?}\nserver_name = \"ums.test\"");
    assert_eq!(through(origin.addr(), &without, dir).await.0, 502);
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
    let origin = TlsOrigin::start(&ca.issue_server(&["origin.test"])).await;
    let dir = TempDir::new("upstream-ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let proxy = Proxy::start_in(dir, &config(origin.addr(), &ca_file)).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "secure hello");
}

#[tokio::test]
async fn an_https_upstream_with_a_certificate_from_another_ca_gets_502() {
    let trusted = TestCa::new("trusted CA");
    let other = TestCa::new("other CA");
    let origin = TlsOrigin::start(&other.issue_server(&["origin.test"])).await;
    let dir = TempDir::new("upstream-wrong-ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, trusted.pem()).unwrap();
    let proxy = Proxy::start_in(dir, &config(origin.addr(), &ca_file)).await;
    let stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let response = http1_request(stream, get("/")).await;
    assert_eq!(response.status(), 502);
}
