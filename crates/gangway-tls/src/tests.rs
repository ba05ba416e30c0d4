use std::sync::Arc;

use super::*;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gangway-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn loads_chain_and_key_from_files() {
    let cert = self_signed();
    let dir = temp_dir("files");
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let tls = ServerTls::from_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
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
    let dir = temp_dir("roots");
    std::fs::write(dir.join("ca.pem"), cert.cert.pem()).unwrap();
    upstream_client_config(&UpstreamRoots::File(dir.join("ca.pem")), provider()).unwrap();
    let error = upstream_client_config(&UpstreamRoots::Pem("junk".into()), provider()).unwrap_err();
    assert!(matches!(error, Error::NoCertificate { .. }), "{error}");
}
