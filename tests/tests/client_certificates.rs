//! Client certificates on a TLS listener, as the IGEL device gateway uses them: a device
//! is always forwarded, and its certificate reaches the upstream only when it verified.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::Proxy;
use gangway_e2e::certs::{Issued, TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{
    http1_request, tls_client_config, tls_client_config_with_certificate, tls_connect,
};
use gangway_e2e::origins::RecordingOrigin;
use http_body_util::Full;

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

struct Gateway {
    proxy: Proxy,
    origin: RecordingOrigin,
    server_ca: TestCa,
    device_ca: TestCa,
}

async fn gateway(policy: &str) -> Gateway {
    gateway_revoking(policy, &[]).await
}

/// A gateway whose device CA has revoked `serials` (a CRL in `client_crls`).
async fn gateway_revoking(policy: &str, serials: &[u64]) -> Gateway {
    let origin = RecordingOrigin::start().await;
    let server_ca = TestCa::new("server CA");
    let device_ca = TestCa::new("device CA");
    let dir = TempDir::new("mtls");
    let (cert, key) = write_pem_files(dir.path(), &server_ca.issue_server(&["ums.example.com"]));
    let device_ca_file = dir.path().join("device-ca.pem");
    std::fs::write(&device_ca_file, device_ca.pem()).unwrap();
    let crls = if serials.is_empty() {
        String::new()
    } else {
        let crl_file = dir.path().join("device-ca.crl.pem");
        std::fs::write(&crl_file, device_ca.crl(serials)).unwrap();
        format!("client_crls = [{crl_file:?}]")
    };
    let toml = format!(
        r#"
[[upstream]]
name = "ums"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}
tls_versions = ["1.3"]
client_certificates = "{policy}"
client_ca = {device_ca_file:?}
{crls}

[[listener.route]]
path = "/device-connector/"
proxy = "ums"
request_headers = {{ set = {{ "X-SSL-CERT" = "$ssl_client_escaped_cert", "X-Client-Verify" = "$ssl_client_verify" }} }}
"#,
        origin = origin.addr()
    );
    Gateway {
        proxy: Proxy::start_in(dir, &toml).await,
        origin,
        server_ca,
        device_ca,
    }
}

async fn request_as(gateway: &Gateway, device: Option<&Issued>) -> u16 {
    let config = match device {
        Some(device) => {
            tls_client_config_with_certificate(&gateway.server_ca.pem(), &[b"http/1.1"], device)
        }
        None => tls_client_config(&gateway.server_ca.pem(), &[b"http/1.1"]),
    };
    let stream = tls_connect(gateway.proxy.addr(), "ums.example.com", config).await;
    let request = http::Request::get("/device-connector/device/info")
        .header("host", "ums.example.com")
        .header("x-ssl-cert", "forged-by-the-client")
        .body(Full::default())
        .unwrap();
    http1_request(stream, request).await.status().as_u16()
}

#[tokio::test]
async fn optional_forwards_every_device_and_the_certificate_only_when_it_verified() {
    let gateway = gateway("optional").await;
    let valid = gateway.device_ca.issue_client("device-0001");
    let stranger = TestCa::new("another CA").issue_client("device-0002");

    assert_eq!(request_as(&gateway, Some(&valid)).await, 200);
    assert_eq!(request_as(&gateway, None).await, 200);
    assert_eq!(request_as(&gateway, Some(&stranger)).await, 200);

    let seen = gateway.origin.requests();
    assert_eq!(seen.len(), 3);
    // The IGEL guide's nginx sends Host, X-Real-IP, X-Forwarded-For, X-Forwarded-Proto and
    // X-SSL-CERT (this test adds X-Client-Verify to see the verify status).
    let mut names: Vec<&str> = seen[0].headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "host",
            "x-client-verify",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-real-ip",
            "x-ssl-cert"
        ]
    );
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
    assert_eq!(seen[0].headers["host"], "ums.example.com");
    assert_eq!(
        seen[0].headers["x-ssl-cert"],
        nginx_escaped(&valid.cert_pem).as_str()
    );
    assert_eq!(seen[0].headers["x-client-verify"], "SUCCESS");
    assert!(
        !seen[1].headers.contains_key("x-ssl-cert"),
        "no certificate: no header"
    );
    assert_eq!(seen[1].headers["x-client-verify"], "NONE");
    assert!(
        !seen[2].headers.contains_key("x-ssl-cert"),
        "unverified: no header"
    );
    let status = seen[2].headers["x-client-verify"].to_str().unwrap();
    assert!(status.starts_with("FAILED:"), "{status}");
    for request in &seen {
        let forged = request
            .headers
            .get_all("x-ssl-cert")
            .iter()
            .any(|v| v == "forged-by-the-client");
        assert!(!forged, "a client-sent X-SSL-CERT reached the upstream");
    }
}

#[tokio::test]
async fn optional_reject_answers_400_to_an_invalid_certificate_and_forwards_the_rest() {
    let gateway = gateway("optional_reject").await;
    let valid = gateway.device_ca.issue_client("device-0001");
    let stranger = TestCa::new("another CA").issue_client("device-0002");
    assert_eq!(request_as(&gateway, Some(&stranger)).await, 400);
    assert_eq!(request_as(&gateway, None).await, 200);
    assert_eq!(request_as(&gateway, Some(&valid)).await, 200);
    assert_eq!(gateway.origin.requests().len(), 2);
}

#[tokio::test]
async fn required_fails_the_handshake_without_a_valid_certificate() {
    let gateway = gateway("required").await;
    let valid = gateway.device_ca.issue_client("device-0001");
    assert_eq!(request_as(&gateway, Some(&valid)).await, 200);
    let config = tls_client_config(&gateway.server_ca.pem(), &[b"http/1.1"]);
    let refused =
        gangway_e2e::clients::try_tls_connect(gateway.proxy.addr(), "ums.example.com", config)
            .await
            .map(|_stream| ());
    // With TLS 1.3 the server's refusal may arrive after the client's handshake finished;
    // either the handshake or the first request fails.
    if refused.is_ok() {
        let config = tls_client_config(&gateway.server_ca.pem(), &[b"http/1.1"]);
        let stream = tls_connect(gateway.proxy.addr(), "ums.example.com", config).await;
        let request = http::Request::get("/device-connector/x")
            .header("host", "ums.example.com")
            .body(Full::<bytes::Bytes>::default())
            .unwrap();
        let answer = gangway_e2e::clients::try_http1_request(stream, request).await;
        assert!(
            answer.is_err(),
            "a request without a client certificate was served"
        );
    }
    assert_eq!(gateway.origin.requests().len(), 1);
}

#[tokio::test]
async fn a_tls_1_3_only_listener_refuses_a_tls_1_2_client() {
    let gateway = gateway("none").await;
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            rustls_pki_types::pem::PemObject::pem_slice_iter(gateway.server_ca.pem().as_bytes())
        {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let result = gangway_e2e::clients::try_tls_connect(
        gateway.proxy.addr(),
        "ums.example.com",
        std::sync::Arc::new(config),
    )
    .await;
    assert!(
        result.is_err(),
        "a TLS 1.2 client completed a handshake with a 1.3-only listener"
    );
}

/// A client config offering only `version`.
fn client_with_version(
    ca_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    std::sync::Arc::new(config)
}

#[tokio::test]
async fn one_listener_serves_tls_1_2_web_paths_and_tls_1_3_only_device_paths() {
    let origin = RecordingOrigin::start().await;
    let ca = TestCa::new("server CA");
    let dir = TempDir::new("min-tls");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&["ums.example.com"]));
    let toml = format!(
        r#"
[[upstream]]
name = "ums"
peers = ["http://{origin}"]

[[listener]]
address = "127.0.0.1:0"
certificate = {cert:?}
private_key = {key:?}

[[listener.route]]
path = "/wums-app/"
proxy = "ums"

[[listener.route]]
path = "/device-connector/"
proxy = "ums"
min_tls_version = "1.3"
"#,
        origin = origin.addr()
    );
    let proxy = Proxy::start_in(dir, &toml).await;
    let get = |path: &'static str| {
        http::Request::get(path)
            .header("host", "ums.example.com")
            .body(Full::<bytes::Bytes>::default())
            .unwrap()
    };
    let tls12 = client_with_version(&ca.pem(), &rustls::version::TLS12);
    let tls13 = client_with_version(&ca.pem(), &rustls::version::TLS13);

    let stream = tls_connect(proxy.addr(), "ums.example.com", tls12.clone()).await;
    assert_eq!(
        http1_request(stream, get("/wums-app/index.html"))
            .await
            .status(),
        200
    );
    let stream = tls_connect(proxy.addr(), "ums.example.com", tls12).await;
    assert_eq!(
        http1_request(stream, get("/device-connector/device/info"))
            .await
            .status(),
        421
    );
    let stream = tls_connect(proxy.addr(), "ums.example.com", tls13).await;
    assert_eq!(
        http1_request(stream, get("/device-connector/device/info"))
            .await
            .status(),
        200
    );

    let paths: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(
        paths,
        ["/wums-app/index.html", "/device-connector/device/info"]
    );
}

#[tokio::test]
async fn a_revoked_device_is_forwarded_without_identity_under_optional() {
    let gateway = gateway_revoking("optional", &[0x1001]).await;
    let revoked = gateway
        .device_ca
        .issue_client_with_serial("device-lost", 0x1001);
    let valid = gateway
        .device_ca
        .issue_client_with_serial("device-ok", 0x1002);
    assert_eq!(request_as(&gateway, Some(&revoked)).await, 200);
    assert_eq!(request_as(&gateway, Some(&valid)).await, 200);
    let seen = gateway.origin.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0].headers.get("x-ssl-cert").is_none(),
        "{:?}",
        seen[0].headers
    );
    let status = seen[0].headers["x-client-verify"].to_str().unwrap();
    assert!(
        status.starts_with("FAILED:") && status.contains("revoked"),
        "{status}"
    );
    assert_eq!(seen[1].headers["x-client-verify"], "SUCCESS");
    assert_eq!(
        seen[1].headers["x-ssl-cert"],
        nginx_escaped(&valid.cert_pem).as_str()
    );
}
