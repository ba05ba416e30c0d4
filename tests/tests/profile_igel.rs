//! `gangway-igel`: the profile file expands to the IGEL UMS device gateway (issue #11):
//! devices over TLS 1.3 with an optional certificate passed on as nginx's escaped PEM, their
//! WebSockets, EST on the onboarding listener, the web app over TLS 1.2, and a UMS reached
//! over TLS 1.3 verified against its own CA.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::certs::{Issued, TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{
    http1_request, tls_client_config, tls_client_config_with_certificate, tls_connect,
    try_tls_connect,
};
use http::HeaderMap;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

const GATEWAY: &str = "gateway.example.com";

/// nginx `$ssl_client_escaped_cert`: the leaf PEM, every byte but `A-Za-z0-9-._~` as `%XX`.
fn nginx_escaped(pem: &str) -> String {
    pem.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// The UMS stand-in: TLS 1.3 only with its own CA; records every request and echoes the
/// messages of every WebSocket.
async fn ums(issued: &Issued) -> (SocketAddr, Seen) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let target = request.uri().to_string();
                            record
                                .lock()
                                .unwrap()
                                .push((target, request.headers().clone()));
                            let Some(key) = request.headers().get("sec-websocket-key").cloned()
                            else {
                                return Ok::<_, Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(b"ums"),
                                )));
                            };
                            let upgrade = hyper::upgrade::on(&mut request);
                            tokio::spawn(async move {
                                let Ok(upgraded) = upgrade.await else { return };
                                let mut ws = WebSocketStream::from_raw_socket(
                                    TokioIo::new(upgraded),
                                    Role::Server,
                                    None,
                                )
                                .await;
                                while let Some(Ok(message)) = ws.next().await {
                                    if message.is_text() || message.is_binary() {
                                        let _ = ws.send(message).await;
                                    }
                                }
                            });
                            let response = http::Response::builder()
                                .status(101)
                                .header("upgrade", "websocket")
                                .header("connection", "upgrade")
                                .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
                                .body(Full::default())
                                .unwrap();
                            Ok(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, seen)
}

struct Gateway {
    proxy: Proxy,
    server_ca: TestCa,
    device_ca: TestCa,
    seen: Seen,
}

impl Gateway {
    fn requests(&self) -> Vec<(String, HeaderMap)> {
        self.seen.lock().unwrap().clone()
    }

    fn client(&self, device: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        match device {
            Some(device) => {
                tls_client_config_with_certificate(&self.server_ca.pem(), &[b"http/1.1"], device)
            }
            None => tls_client_config(&self.server_ca.pem(), &[b"http/1.1"]),
        }
    }

    async fn get(&self, listener: usize, path: &str, device: Option<&Issued>) -> u16 {
        let stream = tls_connect(self.proxy.addrs[listener], GATEWAY, self.client(device)).await;
        let request = http::Request::get(path)
            .header("host", GATEWAY)
            .header("x-ssl-cert", "forged-by-the-client")
            .body(Full::default())
            .unwrap();
        http1_request(stream, request).await.status().as_u16()
    }

    /// Opens a device WebSocket on `path`, checks that it echoes, and closes it.
    async fn websocket(&self, path: &str, device: Option<&Issued>) {
        let stream = tls_connect(self.proxy.addrs[0], GATEWAY, self.client(device)).await;
        let mut request = format!("wss://{GATEWAY}{path}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("x-ssl-cert", "forged-by-the-client".parse().unwrap());
        let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        ws.send(Message::text("hello UMS")).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text("hello UMS"));
        let _ = ws.close(None).await;
    }
}

/// Writes the profile (`extra` adds keys), expands it and starts the engine on the
/// expansion as `gangway run` reads a file.
async fn gateway(extra: &str) -> Gateway {
    let server_ca = TestCa::new("gateway CA");
    let device_ca = TestCa::new("device CA");
    let ums_ca = TestCa::new("UMS CA");
    let (ums_addr, seen) = ums(&ums_ca.issue_server(&["ums.internal"])).await;
    let dir = TempDir::new("igel");
    let (cert, key) = write_pem_files(dir.path(), &server_ca.issue_server(&[GATEWAY]));
    std::fs::write(dir.join("device-ca.pem"), device_ca.pem()).unwrap();
    std::fs::write(dir.join("ums-ca.pem"), ums_ca.pem()).unwrap();
    let profile = dir.join("igel.toml");
    std::fs::write(
        &profile,
        format!(
            "server_name = \"{GATEWAY}\"\ncertificate = {cert:?}\nprivate_key = {key:?}\n\
             device_ca = \"device-ca.pem\"\nums_upstream = \"https://{ums_addr}\"\n\
             ums_ca = \"ums-ca.pem\"\nums_server_name = \"ums.internal\"\n\
             listen = \"127.0.0.1:0\"\n{extra}"
        ),
    )
    .unwrap();
    let (expansion, config) = gangway_profiles::load::<gangway_profiles::Igel>(&profile)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let proxy = Proxy::start_in(dir, &expansion).await;
    let reread = gangway_config::load(&proxy.dir.join("gangway.toml")).unwrap();
    assert_eq!(
        reread, config,
        "the printed configuration reads back the same"
    );
    Gateway {
        proxy,
        server_ca,
        device_ca,
        seen,
    }
}

const SEPARATE: &str = "onboarding_listen = \"127.0.0.1:0\"\nweb_app_listen = \"127.0.0.1:0\"\n";

#[tokio::test]
async fn a_verified_device_opens_both_websockets_and_the_ums_sees_its_escaped_pem() {
    let gateway = gateway(SEPARATE).await;
    let device = gateway.device_ca.issue_client("device-0001");
    gateway
        .websocket("/device-connector/device/ws-connect?unit=1", Some(&device))
        .await;
    gateway
        .websocket("/device-connector/device/portforwarding", Some(&device))
        .await;
    let seen = gateway.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "/device-connector/device/ws-connect?unit=1");
    assert_eq!(seen[1].0, "/device-connector/device/portforwarding");
    for (_, headers) in &seen {
        assert_eq!(headers.get_all("x-ssl-cert").iter().count(), 1);
        assert_eq!(
            headers["x-ssl-cert"],
            nginx_escaped(&device.cert_pem).as_str()
        );
        assert_eq!(headers["host"], GATEWAY);
        assert_eq!(headers["x-forwarded-proto"], "https");
    }
}

#[tokio::test]
async fn devices_without_or_with_an_invalid_certificate_are_forwarded_without_the_header() {
    let gateway = gateway(SEPARATE).await;
    let stranger = TestCa::new("another CA").issue_client("device-0002");
    assert_eq!(
        gateway.get(0, "/device-connector/device/info", None).await,
        200
    );
    assert_eq!(
        gateway
            .get(0, "/device-connector/device/info", Some(&stranger))
            .await,
        200
    );
    gateway
        .websocket("/device-connector/device/ws-connect", Some(&stranger))
        .await;
    gateway
        .websocket("/device-connector/device/portforwarding", None)
        .await;
    let seen = gateway.requests();
    assert_eq!(seen.len(), 4);
    for (target, headers) in &seen {
        assert!(
            !headers.contains_key("x-ssl-cert"),
            "{target}: {:?}",
            headers.get("x-ssl-cert")
        );
    }
}

#[tokio::test]
async fn est_on_the_onboarding_listener_needs_no_certificate_and_serves_nothing_else() {
    let gateway = gateway(SEPARATE).await;
    let est = "/device-connector/device/.well-known/est/simpleenroll";
    assert_eq!(gateway.get(1, est, None).await, 200);
    assert_eq!(
        gateway.get(1, "/device-connector/device/info", None).await,
        404
    );
    let seen = gateway.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, est);
    assert!(!seen[0].1.contains_key("x-ssl-cert"));
}

fn tls12_only(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn get_over_tls12(gateway: &Gateway, listener: usize, path: &str) -> u16 {
    let config = tls12_only(&gateway.server_ca.pem());
    let stream = tls_connect(gateway.proxy.addrs[listener], GATEWAY, config).await;
    let request = http::Request::get(path)
        .header("host", GATEWAY)
        .body(Full::default())
        .unwrap();
    http1_request(stream, request).await.status().as_u16()
}

#[tokio::test]
async fn the_web_app_works_over_tls_1_2_and_the_device_listener_refuses_it() {
    let gateway = gateway(SEPARATE).await;
    assert_eq!(
        get_over_tls12(&gateway, 2, "/wums-app/index.html").await,
        200
    );
    assert_eq!(get_over_tls12(&gateway, 2, "/webapp/").await, 200);
    let refused = try_tls_connect(
        gateway.proxy.addrs[0],
        GATEWAY,
        tls12_only(&gateway.server_ca.pem()),
    )
    .await;
    assert!(refused.is_err(), "the device listener accepted TLS 1.2");
    assert_eq!(gateway.requests().len(), 2);
}

#[tokio::test]
async fn on_one_listener_the_web_app_takes_tls_1_2_and_device_paths_answer_421() {
    let gateway = gateway("").await;
    assert_eq!(gateway.proxy.addrs.len(), 1);
    assert_eq!(get_over_tls12(&gateway, 0, "/wums-app/").await, 200);
    assert_eq!(
        get_over_tls12(&gateway, 0, "/device-connector/device/ws-connect").await,
        421
    );
    assert_eq!(get_over_tls12(&gateway, 0, "/ums-appproxy/x").await, 421);
    let device = gateway.device_ca.issue_client("device-0003");
    gateway
        .websocket("/device-connector/device/ws-connect", Some(&device))
        .await;
    let seen = gateway.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].1["x-ssl-cert"],
        nginx_escaped(&device.cert_pem).as_str()
    );
}

#[tokio::test]
async fn a_ums_certificate_from_another_ca_is_refused() {
    let gateway = gateway(SEPARATE).await;
    // The same expansion, its `ums_ca` file now holding another CA: the UMS is refused.
    let other = TestCa::new("other CA");
    std::fs::write(gateway.proxy.dir.join("ums-ca.pem"), other.pem()).unwrap();
    let proxy =
        Proxy::start(&std::fs::read_to_string(gateway.proxy.dir.join("gangway.toml")).unwrap())
            .await;
    assert_eq!(
        {
            let stream = tls_connect(proxy.addr(), GATEWAY, gateway.client(None)).await;
            let request = http::Request::get("/ums-appproxy/")
                .header("host", GATEWAY)
                .body(Full::default())
                .unwrap();
            http1_request(stream, request).await.status().as_u16()
        },
        502
    );
}
