//! Unit tests. Certificates are made by rcgen (`tests/fixtures.rs`); handshakes are real
//! rustls handshakes over `tokio::io::duplex`.

use std::sync::Arc;

use super::*;

mod client_auth;
mod fixtures;
mod nginx;
mod reload;
mod sni;
mod upstream;

use fixtures::{TempDir, provider};

fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap()
}

#[test]
fn loads_chain_and_key_from_files() {
    let cert = self_signed();
    let dir = TempDir::new("files");
    std::fs::write(dir.path("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let tls = ServerTls::from_files(&dir.path("cert.pem"), &dir.path("key.pem")).unwrap();
    assert_eq!(tls.chain().len(), 1);
    assert_eq!(tls.chain()[0].as_ref(), cert.cert.der().as_ref());
    let config = tls.server_config(provider(), &[b"http/1.1"]).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn missing_file_names_the_path() {
    let error = read_certificates(std::path::Path::new("/nonexistent/cert.pem")).unwrap_err();
    assert_eq!(error.to_string(), "cannot read /nonexistent/cert.pem");
}

#[test]
fn key_file_given_as_certificate_is_refused() {
    let cert = self_signed();
    let error = ServerTls::from_pem(
        &cert.signing_key.serialize_pem(),
        &cert.signing_key.serialize_pem(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::NoCertificate { .. }), "{error}");
    let error = ServerTls::from_pem(&cert.cert.pem(), &cert.cert.pem()).unwrap_err();
    assert!(matches!(error, Error::NoPrivateKey { .. }), "{error}");
}

#[test]
fn mismatched_key_is_refused_when_building() {
    let one = self_signed();
    let other = self_signed();
    let tls = ServerTls::from_pem(&one.cert.pem(), &other.signing_key.serialize_pem()).unwrap();
    let error = tls.server_config(provider(), &[]).unwrap_err();
    assert!(matches!(error, Error::Rustls { .. }), "{error}");
}

#[test]
fn upstream_roots_from_pem_and_file() {
    let cert = self_signed();
    upstream_client_config(&UpstreamRoots::Pem(cert.cert.pem()), provider()).unwrap();
    let dir = TempDir::new("roots");
    std::fs::write(dir.path("ca.pem"), cert.cert.pem()).unwrap();
    upstream_client_config(&UpstreamRoots::File(dir.path("ca.pem")), provider()).unwrap();
    let error = upstream_client_config(&UpstreamRoots::Pem("junk".into()), provider()).unwrap_err();
    assert!(matches!(error, Error::NoCertificate { .. }), "{error}");
}

#[test]
fn policies_parse_from_their_configuration_names() {
    for policy in [
        ClientCertPolicy::None,
        ClientCertPolicy::Optional,
        ClientCertPolicy::OptionalReject,
        ClientCertPolicy::OptionalUnverified,
        ClientCertPolicy::Required,
    ] {
        assert_eq!(policy.as_str().parse::<ClientCertPolicy>().unwrap(), policy);
        assert_eq!(policy.to_string(), policy.as_str());
    }
    let error = "optional_no_ca".parse::<ClientCertPolicy>().unwrap_err();
    assert!(
        error.to_string().contains("`optional_unverified`"),
        "{error}"
    );
}

#[test]
fn verifying_policies_need_a_ca_bundle() {
    for policy in [
        ClientCertPolicy::Optional,
        ClientCertPolicy::OptionalReject,
        ClientCertPolicy::Required,
    ] {
        let error = ClientAuth::new(policy, None, provider()).unwrap_err();
        assert!(matches!(error, Error::MissingClientCa { .. }), "{error}");
    }
    ClientAuth::new(ClientCertPolicy::OptionalUnverified, None, provider()).unwrap();
    ClientAuth::new(ClientCertPolicy::None, None, provider()).unwrap();
}

#[test]
fn tls_versions_order_and_names() {
    assert!(TlsVersion::Tls13 > TlsVersion::Tls12);
    assert_eq!(TlsVersion::Tls13.to_string(), "TLSv1.3");
    assert_eq!(
        TlsVersion::from_rustls(rustls::ProtocolVersion::TLSv1_2),
        Some(TlsVersion::Tls12)
    );
    assert!(TlsVersions::Tls13Only.allows(TlsVersion::Tls13));
    assert!(!TlsVersions::Tls13Only.allows(TlsVersion::Tls12));
    assert!(!TlsVersions::Tls12Only.allows(TlsVersion::Tls13));
    assert!(TlsVersions::Tls12And13.allows(TlsVersion::Tls12));
}

#[test]
fn watcher_needs_a_runtime() {
    let cert = self_signed();
    let store = CertificateStore::single(
        CertificateSource::Inline {
            chain: cert.cert.pem(),
            key: cert.signing_key.serialize_pem(),
        },
        provider(),
    )
    .unwrap();
    let error = spawn_watcher(Arc::new(store), std::time::Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, Error::NoRuntime), "{error}");
}
