//! Upstream-side TLS: how the proxy verifies the servers it connects to.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};

use crate::Error;
use crate::pem::{parse_certificates, read_certificates};

/// Which certificate authorities an upstream's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamRoots {
    /// The operating system's trust store.
    System,
    /// A PEM file of CA certificates, trusted instead of the system store.
    File(PathBuf),
    /// PEM text of CA certificates, trusted instead of the system store.
    Pem(String),
}

/// Builds the client configuration for connecting to upstreams: TLS 1.2 and 1.3, the
/// server certificate verified against `roots` (never skipped here), no ALPN (upstreams
/// are spoken to in HTTP/1.1).
pub fn upstream_client_config(
    roots: &UpstreamRoots,
    provider: Arc<CryptoProvider>,
) -> Result<ClientConfig, Error> {
    let (store, origin) = match roots {
        UpstreamRoots::System => (system_roots()?, "system trust store".to_owned()),
        UpstreamRoots::File(path) => {
            let origin = path.display().to_string();
            (store_from(read_certificates(path)?, &origin)?, origin)
        }
        UpstreamRoots::Pem(pem) => {
            let origin = "in-memory CA bundle".to_owned();
            (
                store_from(parse_certificates(pem.as_bytes(), &origin)?, &origin)?,
                origin,
            )
        }
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Rustls { origin, source })?
        .with_root_certificates(store)
        .with_no_client_auth())
}

fn store_from(
    certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    origin: &str,
) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for certificate in certificates {
        store.add(certificate).map_err(|source| Error::Rustls {
            origin: origin.to_owned(),
            source,
        })?;
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore, Error> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    // Unparseable entries in a system store are common and harmless; we need at least one.
    let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = loaded
            .errors
            .first()
            .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
        return Err(Error::SystemRoots { detail });
    }
    Ok(store)
}
