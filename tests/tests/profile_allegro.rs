//! `gangway-allegro`: the profile file expands to one HTTPS endpoint for many multimeters
//! (issue #11): SNI and Host pick the device, each device's own local port and
//! certificate, 421 on a mismatch, 404 for an unknown name, pinned device certificates,
//! the 200 MiB body limit and the port-80 redirect.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::Proxy;
use gangway_e2e::certs::{Issued, TempDir, TestCa, self_signed, write_pem_files};
use gangway_e2e::clients::{
    http1_request, http1_request_streaming, insecure_tls_client_config, tls_client_config,
    tls_connect,
};
use gangway_e2e::origins::PseudoRandomBody;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// A multimeter behind its reverse tunnel: HTTPS with `issued`, answering `name` after
/// reading the whole request body.
async fn device(name: &'static str, issued: &Issued) -> SocketAddr {
    let chain = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
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
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async {
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(name))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn fingerprint(issued: &Issued) -> String {
    let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    // openssl's form: upper-case pairs with colons.
    gangway_e2e::origins::sha256_hex(&der)
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

struct Front {
    proxy: Proxy,
    ca: TestCa,
    /// The certificates served: the wildcard default, and meter A's own.
    wildcard: Issued,
    own: Issued,
}

impl Front {
    /// A request over a connection to `sni`, with `host` as Host; status, body and the
    /// certificate the proxy presented.
    async fn get(&self, sni: &str, host: &str) -> (u16, Bytes, Vec<u8>) {
        let config = insecure_tls_client_config(&[b"http/1.1"]);
        let stream = tls_connect(self.proxy.addrs[1], sni, config).await;
        let presented = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let request = http::Request::get("/api/reading")
            .header("host", host)
            .body(Full::default())
            .unwrap();
        let response = http1_request(stream, request).await;
        (
            response.status().as_u16(),
            response.body().clone(),
            presented,
        )
    }
}

fn der(issued: &Issued) -> Vec<u8> {
    CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Meter A (own certificate, pinned), meter B (wildcard certificate, pinned) and meter C
/// (no pin), each on its own device port.
async fn front() -> Front {
    let ca = TestCa::new("allegro CA");
    let wildcard = ca.issue_server(&["*.mm.example.test"]);
    let own = ca.issue_server(&["a.mm.example.test"]);
    let (meter_a, meter_b, meter_c) = (
        self_signed(&["meter-a"]),
        self_signed(&["meter-b"]),
        self_signed(&["meter-c"]),
    );
    let a = device("meter A", &meter_a).await;
    let b = device("meter B", &meter_b).await;
    let c = device("meter C", &meter_c).await;
    let dir = TempDir::new("allegro");
    let (cert, key) = write_pem_files(dir.path(), &wildcard);
    let (own_cert, own_key) = write_pem_files(dir.path(), &own);
    let profile = dir.join("allegro.toml");
    std::fs::write(
        &profile,
        format!(
            "http_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\
             certificate = {cert:?}\nprivate_key = {key:?}\n\n\
             [[device]]\nhostname = \"a.mm.example.test\"\nport = {}\n\
             certificate = {own_cert:?}\nprivate_key = {own_key:?}\nupstream_fingerprint = \"{}\"\n\n\
             [[device]]\nhostname = \"b.mm.example.test\"\nport = {}\nupstream_fingerprint = \"{}\"\n\n\
             [[device]]\nhostname = \"c.mm.example.test\"\nport = {}\n",
            a.port(),
            fingerprint(&meter_a),
            b.port(),
            fingerprint(&meter_b).replace(':', "").to_lowercase(),
            c.port(),
        ),
    )
    .unwrap();
    let (expansion, config) = gangway_profiles::load::<gangway_profiles::Allegro>(&profile)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let proxy = Proxy::start_in(dir, &expansion).await;
    let reread = gangway_config::load(&proxy.dir.join("gangway.toml")).unwrap();
    assert_eq!(
        reread, config,
        "the printed configuration reads back the same"
    );
    Front {
        proxy,
        ca,
        wildcard,
        own,
    }
}

#[tokio::test]
async fn each_hostname_reaches_its_own_device_port_with_its_own_certificate() {
    let front = front().await;
    let (status, body, presented) = front.get("a.mm.example.test", "a.mm.example.test").await;
    assert_eq!((status, &body[..]), (200, &b"meter A"[..]));
    assert_eq!(presented, der(&front.own));
    let (status, body, presented) = front.get("b.mm.example.test", "b.mm.example.test").await;
    assert_eq!((status, &body[..]), (200, &b"meter B"[..]));
    assert_eq!(presented, der(&front.wildcard));
    // Without a pin the device's certificate is accepted (a warning is logged).
    let (status, body, _) = front.get("c.mm.example.test", "c.mm.example.test").await;
    assert_eq!((status, &body[..]), (200, &b"meter C"[..]));
    // A client that verifies gets a valid chain for the name it asked.
    let config = tls_client_config(&front.ca.pem(), &[b"http/1.1"]);
    tls_connect(front.proxy.addrs[1], "a.mm.example.test", config.clone()).await;
    tls_connect(front.proxy.addrs[1], "b.mm.example.test", config).await;
}

#[tokio::test]
async fn a_host_naming_another_device_than_the_sni_gets_421() {
    let front = front().await;
    let (status, _, _) = front.get("a.mm.example.test", "b.mm.example.test").await;
    assert_eq!(status, 421);
    // Two devices under the one wildcard certificate are still told apart.
    let (status, _, _) = front.get("b.mm.example.test", "c.mm.example.test").await;
    assert_eq!(status, 421);
}

#[tokio::test]
async fn an_unknown_hostname_gets_404_on_the_default_certificate() {
    let front = front().await;
    let (status, body, presented) = front.get("z.mm.example.test", "z.mm.example.test").await;
    assert_eq!((status, &body[..]), (404, &b"unknown device"[..]));
    assert_eq!(presented, der(&front.wildcard));
    let (status, _, presented) = front.get("other.example.test", "other.example.test").await;
    assert_eq!(status, 404);
    assert_eq!(presented, der(&front.wildcard));
}

#[tokio::test]
async fn the_fingerprint_pin_rejects_a_substituted_device_certificate() {
    let front = front().await;
    // The same expansion with meter A's port taken by an impostor holding another
    // self-signed certificate for the same name.
    let impostor = device("impostor", &self_signed(&["meter-a"])).await;
    let text = std::fs::read_to_string(front.proxy.dir.join("gangway.toml")).unwrap();
    let start = text.find("peers = [\"https://127.0.0.1:").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    let text = format!(
        "{}peers = [\"https://{impostor}\"]{}",
        &text[..start],
        &text[end..]
    );
    let proxy = Proxy::start(&text).await;
    let config = insecure_tls_client_config(&[b"http/1.1"]);
    let stream = tls_connect(proxy.addrs[1], "a.mm.example.test", config).await;
    let request = http::Request::get("/")
        .header("host", "a.mm.example.test")
        .body(Full::default())
        .unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 502);
}

#[tokio::test]
async fn a_body_of_200_mib_and_one_byte_gets_413() {
    let front = front().await;
    let config = insecure_tls_client_config(&[b"http/1.1"]);
    let stream = tls_connect(front.proxy.addrs[1], "a.mm.example.test", config).await;
    let request = http::Request::post("/firmware")
        .header("host", "a.mm.example.test")
        .body(PseudoRandomBody::new(200 * 1024 * 1024 + 1, 7))
        .unwrap();
    let response = http1_request_streaming(stream, request).await;
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn port_80_redirects_to_https_on_the_same_host() {
    let front = front().await;
    let stream = TcpStream::connect(front.proxy.addrs[0]).await.unwrap();
    let request = http::Request::get("/cgi/reading?ch=2")
        .header("host", "b.mm.example.test")
        .body(Full::default())
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://b.mm.example.test/cgi/reading?ch=2"
    );
}
