//! Upstream verification (acceptance 6): CA chains, TLS 1.3 only, pinning, SNI override,
//! a client certificate towards the upstream.

use std::sync::Arc;

use rustls::ServerConfig;

use super::fixtures::{Ca, Issued, KEY_TYPES, KeyType, Leaf, handshake, provider};
use crate::{
    CertificateSource, CertificateStore, ClientAuth, ClientCa, ClientCertPolicy, Error,
    ListenerTls, PemSource, Sha256Fingerprint, TlsVersions, UpstreamRoots, UpstreamTls,
    UpstreamVerification, VerifyStatus,
};

/// An upstream server presenting `certificate`, TLS 1.3 only.
fn upstream_server(certificate: &Issued) -> Arc<ServerConfig> {
    let (chain, key) = certificate.source().load().unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(TlsVersions::Tls13Only.rustls())
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

async fn connect(
    upstream: &UpstreamTls,
    server: Arc<ServerConfig>,
    host: &str,
) -> Result<(), String> {
    let config = upstream
        .client_config(provider())
        .map_err(|e| e.to_string())?;
    let name = upstream.server_name(host).map_err(|e| e.to_string())?;
    let done = handshake(server, Arc::new(config), name).await;
    done.client.map(drop)
}

#[tokio::test]
async fn tls13_upstream_verified_against_a_private_ca() {
    for key_type in KEY_TYPES {
        let ca = Ca::new("UMS Private CA", key_type);
        let server =
            upstream_server(&ca.issue(&Leaf::server(&["ums.internal"]).key_type(key_type)));
        let upstream = UpstreamTls::new(UpstreamVerification::Roots(UpstreamRoots::Pem(ca.pem())))
            .versions(TlsVersions::Tls13Only);
        connect(&upstream, server.clone(), "ums.internal")
            .await
            .unwrap();

        // The wrong CA, and the right CA with the wrong name, fail.
        let other = Ca::new("Other CA", key_type);
        let wrong = UpstreamTls::new(UpstreamVerification::Roots(UpstreamRoots::Pem(other.pem())));
        let error = connect(&wrong, server.clone(), "ums.internal")
            .await
            .unwrap_err();
        assert!(error.contains("UnknownIssuer"), "{error}");
        let error = connect(&upstream, server.clone(), "other.internal")
            .await
            .unwrap_err();
        assert!(error.contains("not valid for name"), "{error}");
    }
}

#[tokio::test]
async fn a_tls12_only_upstream_is_refused_by_a_tls13_only_client() {
    let ca = Ca::new("UMS Private CA", KeyType::EcdsaP256);
    let certificate = ca.issue(&Leaf::server(&["ums.internal"]));
    let (chain, key) = certificate.source().load().unwrap();
    let tls12_server = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(TlsVersions::Tls12Only.rustls())
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let upstream = UpstreamTls::new(UpstreamVerification::Roots(UpstreamRoots::Pem(ca.pem())))
        .versions(TlsVersions::Tls13Only);
    let error = connect(&upstream, tls12_server, "ums.internal")
        .await
        .unwrap_err();
    assert!(error.contains("ProtocolVersion"), "{error}");
}

#[tokio::test]
async fn a_pin_accepts_the_pinned_certificate_and_refuses_another() {
    for key_type in KEY_TYPES {
        // Devices present self-signed certificates, often for names nobody resolves.
        let device = Leaf::server(&["allegro-device"])
            .key_type(key_type)
            .self_signed();
        let impostor = Leaf::server(&["allegro-device"])
            .key_type(key_type)
            .serial(0x2002)
            .self_signed();
        let pin = Sha256Fingerprint::of(device.der.as_ref());
        let upstream = UpstreamTls::new(UpstreamVerification::Pinned(vec![pin]));
        connect(&upstream, upstream_server(&device), "127.0.0.1")
            .await
            .unwrap();
        let error = connect(&upstream, upstream_server(&impostor), "127.0.0.1")
            .await
            .unwrap_err();
        assert!(error.contains("ApplicationVerificationFailure"), "{error}");
    }
    let error = UpstreamTls::new(UpstreamVerification::Pinned(Vec::new()))
        .client_config(provider())
        .unwrap_err();
    assert!(matches!(error, Error::NoPins), "{error}");
}

#[tokio::test]
async fn insecure_skip_verify_accepts_anything() {
    let device = Leaf::server(&["allegro-device"]).self_signed();
    let upstream = UpstreamTls::new(UpstreamVerification::InsecureSkipVerify);
    connect(&upstream, upstream_server(&device), "any.name")
        .await
        .unwrap();
}

#[tokio::test]
async fn sni_override_is_sent_and_verified() {
    let ca = Ca::new("UMS Private CA", KeyType::EcdsaP256);
    let server = upstream_server(&ca.issue(&Leaf::server(&["ums.example.com"])));
    let upstream = UpstreamTls::new(UpstreamVerification::Roots(UpstreamRoots::Pem(ca.pem())))
        .sni("ums.example.com");
    assert_eq!(
        upstream.server_name("10.0.0.5").unwrap().to_str(),
        "ums.example.com"
    );
    connect(&upstream, server, "10.0.0.5").await.unwrap();

    let plain = UpstreamTls::new(UpstreamVerification::InsecureSkipVerify);
    assert_eq!(plain.server_name("[::1]").unwrap().to_str(), "::1");
    assert!(matches!(
        plain.server_name("bad name").unwrap_err(),
        Error::InvalidUpstreamName { .. }
    ));
}

#[tokio::test]
async fn presents_a_client_certificate_to_the_upstream() {
    let ca = Ca::new("UMS Private CA", KeyType::EcdsaP256);
    let client_ca = Ca::new("Proxy Client CA", KeyType::EcdsaP256);
    let proxy_identity = client_ca.issue(&Leaf::client("gangway-proxy"));
    let server_certificate = ca.issue(&Leaf::server(&["ums.internal"]));
    // The upstream requires a client certificate from the proxy's CA.
    let upstream_listener = ListenerTls::new(
        Arc::new(CertificateStore::single(server_certificate.source(), provider()).unwrap()),
        Arc::new(
            ClientAuth::new(
                ClientCertPolicy::Required,
                Some(ClientCa::new(PemSource::Inline(client_ca.pem()))),
                provider(),
            )
            .unwrap(),
        ),
        TlsVersions::Tls13Only,
        &[],
        provider(),
    )
    .unwrap();
    let roots = UpstreamVerification::Roots(UpstreamRoots::Pem(ca.pem()));
    let with_certificate =
        UpstreamTls::new(roots.clone()).client_certificate(CertificateSource::Inline {
            chain: proxy_identity.pem.clone(),
            key: proxy_identity.key_pem.clone(),
        });
    let config = with_certificate.client_config(provider()).unwrap();
    let done = handshake(
        upstream_listener.server_config(),
        Arc::new(config),
        with_certificate.server_name("ums.internal").unwrap(),
    )
    .await;
    let server = done.server.unwrap();
    let session = upstream_listener.session(server.get_ref().1);
    assert_eq!(session.identity().status(), &VerifyStatus::Success);

    let without = UpstreamTls::new(roots).client_config(provider()).unwrap();
    let done = handshake(
        upstream_listener.server_config(),
        Arc::new(without),
        with_certificate.server_name("ums.internal").unwrap(),
    )
    .await;
    assert!(done.server.is_err());
}

#[test]
fn fingerprints_parse_as_openssl_prints_them() {
    let certificate = Leaf::server(&["device"]).self_signed();
    let fingerprint = Sha256Fingerprint::of(certificate.der.as_ref());
    let colon = fingerprint.to_colon_hex();
    assert_eq!(colon.len(), 95);
    assert_eq!(colon.parse::<Sha256Fingerprint>().unwrap(), fingerprint);
    assert_eq!(
        format!("sha256 Fingerprint={colon}")
            .parse::<Sha256Fingerprint>()
            .unwrap(),
        fingerprint
    );
    let plain = fingerprint.to_string();
    assert_eq!(plain.len(), 64);
    assert!(
        plain
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(
        plain.to_uppercase().parse::<Sha256Fingerprint>().unwrap(),
        fingerprint
    );
    for bad in ["", "abcd", &plain[..62], &format!("{}zz", &plain[..62])] {
        let error = bad.parse::<Sha256Fingerprint>().unwrap_err();
        assert!(matches!(error, Error::InvalidFingerprint { .. }), "{bad}");
    }
}
