//! Many server names on one TLS listener, as the Allegro front serves its devices: SNI
//! picks the certificate, unknown names get the default or a refused handshake, and a
//! request whose Host names another configured server than its SNI gets 421.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::Proxy;
use gangway_e2e::certs::{Issued, TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{http1_request, tls_client_config, tls_connect, try_tls_connect};
use http_body_util::Full;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

struct Front {
    proxy: Proxy,
    ca: TestCa,
    /// a.example.com, b.example.com, c.example.com, *.devices.example.com, in that order.
    certificates: Vec<Issued>,
}

/// Four certificates: three names, each on its own, and a wildcard. `a` is listed by its
/// SANs (no `names`), the others by explicit names; `b` is the default.
async fn front(unknown_sni: &str) -> Front {
    let ca = TestCa::new("front CA");
    let certificates: Vec<Issued> = [
        "a.example.com",
        "b.example.com",
        "c.example.com",
        "*.devices.example.com",
    ]
    .iter()
    .map(|name| ca.issue_server(&[name]))
    .collect();
    let dir = TempDir::new("sni");
    let mut entries = String::new();
    for (index, (issued, names)) in certificates
        .iter()
        .zip([
            "",
            "names = [\"b.example.com\"]\ndefault = true",
            "names = [\"C.Example.com\"]",
            "names = [\"*.devices.example.com\"]",
        ])
        .enumerate()
    {
        let sub = dir.join(&format!("cert{index}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (cert, key) = write_pem_files(&sub, issued);
        entries.push_str(&format!(
            "[[listener.certificates]]\ncertificate = {cert:?}\nprivate_key = {key:?}\n{names}\n"
        ));
    }
    let toml = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
unknown_sni = "{unknown_sni}"
{entries}
[[listener.route]]
path = "/"
respond = {{ status = 200, body = "served" }}
"#
    );
    Front {
        proxy: Proxy::start_in(dir, &toml).await,
        ca,
        certificates,
    }
}

impl Front {
    async fn connect(&self, sni: &str) -> TlsStream<TcpStream> {
        let config = tls_client_config(&self.ca.pem(), &[b"http/1.1"]);
        tls_connect(self.proxy.addr(), sni, config).await
    }
}

fn leaf_der(issued: &Issued) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()
}

fn served_leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn request(host: &str) -> http::Request<Full<bytes::Bytes>> {
    http::Request::get("/")
        .header("host", host)
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn sni_selects_the_certificate_among_three_names_and_a_wildcard() {
    let front = front("default").await;
    for (sni, index) in [
        ("a.example.com", 0),
        ("b.example.com", 1),
        ("c.example.com", 2),
        ("meter-17.devices.example.com", 3),
        ("x.devices.example.com", 3),
    ] {
        let stream = front.connect(sni).await;
        assert_eq!(
            served_leaf(&stream),
            leaf_der(&front.certificates[index]),
            "SNI {sni} should get certificate {index}"
        );
        let response = http1_request(stream, request(sni)).await;
        assert_eq!(response.status(), 200, "{sni}");
        assert_eq!(response.body(), "served");
    }
}

#[tokio::test]
async fn an_unknown_name_gets_the_default_certificate_or_a_refused_handshake() {
    let front_default = front("default").await;
    // The client verifies the name, so it must trust the default's name to look at it.
    let stream = front_default.connect("b.example.com").await;
    assert_eq!(
        served_leaf(&stream),
        leaf_der(&front_default.certificates[1])
    );
    // An unknown name gets the default (b): the client's verification then fails on the
    // name, which is the point of serving a default only to clients that expect it.
    let config = tls_client_config(&front_default.ca.pem(), &[b"http/1.1"]);
    let refused_by_client =
        try_tls_connect(front_default.proxy.addr(), "unknown.example.com", config).await;
    let error = refused_by_client.err().unwrap().to_string();
    assert!(
        error.contains("only valid for DnsName(\"b.example.com\")"),
        "the default certificate (b) should have been served: {error}"
    );

    let front_reject = front("reject").await;
    let config = tls_client_config(&front_reject.ca.pem(), &[b"http/1.1"]);
    let refused = try_tls_connect(front_reject.proxy.addr(), "unknown.example.com", config).await;
    let error = refused.err().unwrap().to_string();
    assert!(
        error.contains("received fatal alert: AccessDenied"),
        "the server should refuse the handshake: {error}"
    );
    // Known names are still served.
    let stream = front_reject.connect("c.example.com").await;
    assert_eq!(
        served_leaf(&stream),
        leaf_der(&front_reject.certificates[2])
    );
}

#[tokio::test]
async fn a_host_naming_another_configured_server_than_the_sni_gets_421() {
    let front = front("default").await;
    for (sni, host, status) in [
        // Another configured server: misdirected.
        ("a.example.com", "b.example.com", 421),
        ("a.example.com", "B.EXAMPLE.COM:443", 421),
        ("c.example.com", "x.devices.example.com", 421),
        ("x.devices.example.com", "a.example.com", 421),
        // The same server, or two names of one wildcard certificate.
        ("a.example.com", "a.example.com", 200),
        ("a.example.com", "A.Example.Com.:8443", 200),
        ("x.devices.example.com", "y.devices.example.com", 200),
        // A Host no certificate names is left to routing.
        ("a.example.com", "elsewhere.example.org", 200),
    ] {
        let stream = front.connect(sni).await;
        let response = http1_request(stream, request(host)).await;
        assert_eq!(response.status(), status, "SNI {sni}, Host {host}");
    }
}
