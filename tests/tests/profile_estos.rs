//! `gangway-estos`: the profile file expands to a configuration that does what the estos
//! UCServer nginx guide does (issue #11): 301 on port 80, the guide's headers, HSTS on
//! every answer, the ProCall WebSocket with its idle timeout.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::Proxy;
use futures_util::{SinkExt, StreamExt};
use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{http1_request, tls_client_config, tls_connect};
use gangway_e2e::origins::{RecordingOrigin, refused_addr};
use http_body_util::Full;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const SERVER: &str = "uc.example.com";

struct Front {
    proxy: Proxy,
    ca: TestCa,
    /// The generic configuration the profile expanded to.
    expansion: String,
}

impl Front {
    fn http(&self) -> SocketAddr {
        self.proxy.addrs[0]
    }

    fn https(&self) -> SocketAddr {
        self.proxy.addrs[1]
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
        let config = tls_client_config(&self.ca.pem(), &[b"http/1.1"]);
        let stream = tls_connect(self.https(), SERVER, config).await;
        let mut request = http::Request::get(path).header("host", SERVER);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        http1_request(stream, request.body(Full::default()).unwrap()).await
    }
}

/// Writes a profile file with `extra` keys, expands it with the profile and starts the
/// engine on the expansion exactly as `gangway run` reads a file.
async fn front(ucserver: &str, extra: &str) -> Front {
    let ca = TestCa::new("estos CA");
    let dir = TempDir::new("estos");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&[SERVER]));
    let profile = dir.join("estos.toml");
    std::fs::write(
        &profile,
        format!(
            "server_name = \"{SERVER}\"\ncertificate = {:?}\nprivate_key = {:?}\n\
             ucserver = \"{ucserver}\"\nhttp_listen = \"127.0.0.1:0\"\n\
             https_listen = \"127.0.0.1:0\"\n{extra}",
            cert.file_name().unwrap(),
            key.file_name().unwrap(),
        ),
    )
    .unwrap();
    let (expansion, config) = gangway_profiles::load::<gangway_profiles::Estos>(&profile)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let proxy = Proxy::start_in(dir, &expansion).await;
    // The engine read the printed text into the very configuration the profile built.
    let reread = gangway_config::load(&proxy.dir.join("gangway.toml")).unwrap();
    assert_eq!(reread, config);
    Front {
        proxy,
        ca,
        expansion,
    }
}

#[tokio::test]
async fn port_80_answers_301_to_the_server_name_with_the_request_uri() {
    let origin = RecordingOrigin::start().await;
    let front = front(&format!("http://{}", origin.addr()), "").await;
    let stream = TcpStream::connect(front.http()).await.unwrap();
    let request = http::Request::get("/ucws/rest/login?user=a%20b")
        .header("host", "10.1.2.3")
        .body(Full::default())
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://uc.example.com/ucws/rest/login?user=a%20b"
    );
    assert!(origin.requests().is_empty());
}

#[tokio::test]
async fn the_ucserver_sees_the_guides_headers_and_only_those() {
    let origin = RecordingOrigin::start().await;
    let front = front(&format!("http://{}", origin.addr()), "").await;
    let response = front
        .get(
            "/ucws/rest/info?x=1",
            &[
                ("x-real-ip", "6.6.6.6"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-nginx-proxy", "false"),
                ("x-ssl-cert", "forged"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000"
    );
    let seen = &origin.requests()[0];
    assert_eq!(seen.uri, "/ucws/rest/info?x=1");
    let mut names: Vec<&str> = seen.headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-nginx-proxy",
            "x-real-ip"
        ]
    );
    assert_eq!(seen.headers["host"], SERVER);
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(seen.headers["x-nginx-proxy"], "true");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn hsts_is_on_the_proxys_own_errors_and_can_be_turned_off() {
    let down = format!("http://{}", refused_addr());
    let front = front(&down, "").await;
    let response = front.get("/", &[]).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000"
    );

    let front = front_without_hsts(&down).await;
    let response = front.get("/", &[]).await;
    assert_eq!(response.status(), 502);
    assert!(!response.headers().contains_key("strict-transport-security"));
}

async fn front_without_hsts(ucserver: &str) -> Front {
    front(ucserver, "hsts = false\n").await
}

#[tokio::test]
async fn tls_1_2_is_served_and_tls_1_1_is_not_in_the_expansion() {
    let origin = RecordingOrigin::start().await;
    let front = front(&format!("http://{}", origin.addr()), "").await;
    assert!(
        front
            .expansion
            .contains("tls_versions = [\"1.2\", \"1.3\"]")
    );
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        roots
            .add(
                rustls::pki_types::CertificateDer::from_pem_slice(front.ca.pem().as_bytes())
                    .unwrap(),
            )
            .unwrap();
        roots
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tls_connect(front.https(), SERVER, std::sync::Arc::new(tls12)).await;
    let request = http::Request::get("/")
        .header("host", SERVER)
        .body(Full::default())
        .unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 200);
}

/// A UCServer stand-in that echoes WebSocket messages on any path and records the path.
async fn websocket_echo() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (paths, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let paths = paths.clone();
            tokio::spawn(async move {
                // tungstenite's handshake callback type, not ours.
                #[allow(clippy::result_large_err)]
                let callback =
                    |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     response| {
                        let _ = paths.send(request.uri().to_string());
                        Ok(response)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn the_procall_websocket_echoes_and_closes_after_the_idle_timeout() {
    let (origin, mut paths) = websocket_echo().await;
    let front = front(
        &format!("http://{origin}"),
        "websocket_idle_timeout = \"1s\"\n",
    )
    .await;
    let config = tls_client_config(&front.ca.pem(), &[b"http/1.1"]);
    let stream = tls_connect(front.https(), SERVER, config).await;
    let (mut ws, response) =
        tokio_tungstenite::client_async("wss://uc.example.com/ws/client/websocket?v=1", stream)
            .await
            .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(paths.recv().await.unwrap(), "/ws/client/websocket?v=1");
    for round in 0..3 {
        ws.send(Message::text(format!("ping {round}")))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(format!("ping {round}")));
    }
    // Silence: the tunnel is closed after about a second, not before.
    let quiet = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the idle tunnel was not closed");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{end:?}"
    );
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn profile_errors_name_the_file_line_and_column() {
    let dir = TempDir::new("estos-errors");
    let profile = dir.join("estos.toml");
    let text = "server_name = \"uc.example.com\"\ncertificate = \"missing.pem\"\n\
                ucserver = \"ftp://uc\"\nwebsocket_idle_timeout = \"1 hour\"\n";
    let errors = gangway_profiles::expand::<gangway_profiles::Estos>(text, &profile)
        .expect_err("invalid profile");
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let file = profile.display();
    assert_eq!(lines.len(), 4, "{errors}");
    assert!(
        lines[0].starts_with(&format!("{file}:1:1: private_key is missing")),
        "{errors}"
    );
    assert!(
        lines[1].starts_with(&format!("{file}:2:15: certificate = \"missing.pem\": ")),
        "{errors}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:3:12: ucserver = \"ftp://uc\": has scheme \"ftp\""
        )),
        "{errors}"
    );
    assert!(
        lines[3].starts_with(&format!("{file}:4:26: websocket_idle_timeout = \"1 hour\"")),
        "{errors}"
    );

    let unknown =
        gangway_profiles::expand::<gangway_profiles::Estos>("severname = \"x\"\n", &profile)
            .expect_err("unknown key");
    assert!(
        unknown
            .to_string()
            .starts_with(&format!("{file}:1:1: unknown field `severname`")),
        "{unknown}"
    );
}
