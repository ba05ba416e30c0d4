//! Listener-side TLS.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use crate::pem::{parse_certificates, parse_private_key, read_certificates, read_private_key};

/// A listener's certificate chain and private key, for a plain single-certificate
/// configuration. [`ListenerTls`](crate::ListenerTls) with a
/// [`CertificateStore`](crate::CertificateStore) adds SNI, client certificates, version
/// choice and hot reload.
#[derive(Debug)]
pub struct ServerTls {
    origin: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerTls {
    /// Loads a chain (leaf first) and its key from PEM files.
    pub fn from_files(certificate: &Path, private_key: &Path) -> Result<Self, Error> {
        Ok(Self {
            origin: certificate.display().to_string(),
            chain: read_certificates(certificate)?,
            key: read_private_key(private_key)?,
        })
    }

    /// Takes a chain (leaf first) and its key as PEM text.
    pub fn from_pem(certificate_chain: &str, private_key: &str) -> Result<Self, Error> {
        Ok(Self {
            origin: "in-memory certificate".to_owned(),
            chain: parse_certificates(certificate_chain.as_bytes(), "in-memory certificate")?,
            key: parse_private_key(private_key.as_bytes(), "in-memory private key")?,
        })
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Builds a server configuration offering TLS 1.2 and 1.3 with the given ALPN
    /// protocols, in order of preference. No client certificate is requested.
    pub fn server_config(
        &self,
        provider: Arc<CryptoProvider>,
        alpn: &[&[u8]],
    ) -> Result<ServerConfig, Error> {
        let rustls_error = |source| Error::Rustls {
            origin: self.origin.clone(),
            source,
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(rustls_error)?;
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(config)
    }
}
