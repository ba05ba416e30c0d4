//! Upstream-side TLS: how the proxy verifies the servers it connects to.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::listener::TlsVersions;
use crate::pem::{CertificateSource, parse_certificates, read_certificates};
use crate::{Error, Sha256Fingerprint};

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
/// are spoken to in HTTP/1.1). [`UpstreamTls`] has the other options.
pub fn upstream_client_config(
    roots: &UpstreamRoots,
    provider: Arc<CryptoProvider>,
) -> Result<ClientConfig, Error> {
    UpstreamTls::new(UpstreamVerification::Roots(roots.clone())).client_config(provider)
}

/// How an upstream's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamVerification {
    /// Chain to these roots, with the server name, validity and server-auth usage checked
    /// (rustls' webpki verifier). The default, and the only choice for real PKI.
    Roots(UpstreamRoots),
    /// Accept exactly the certificates whose SHA-256 fingerprint is listed, whatever their
    /// issuer, names or validity dates: the safe way to talk to devices with self-signed
    /// certificates (pin the device's certificate, re-pin when it changes). The handshake
    /// signature is still verified, so the peer must hold the pinned certificate's key.
    Pinned(Vec<Sha256Fingerprint>),
    /// Accept any certificate. Anyone on the path can impersonate the upstream; a
    /// warning is logged whenever a configuration with it is built. Prefer
    /// [`Pinned`](Self::Pinned).
    InsecureSkipVerify,
}

/// Upstream TLS options; [`client_config`](Self::client_config) builds the rustls
/// configuration and [`server_name`](Self::server_name) the name to connect with.
///
/// ```
/// # use std::sync::Arc;
/// use gangway_tls::{TlsVersions, UpstreamRoots, UpstreamTls, UpstreamVerification};
///
/// # let provider = Arc::new(rustls::crypto::ring::default_provider());
/// # let ca = rcgen::generate_simple_self_signed(vec!["ums.example.com".into()])?;
/// let upstream = UpstreamTls::new(UpstreamVerification::Roots(UpstreamRoots::Pem(ca.cert.pem())))
///     .versions(TlsVersions::Tls13Only)
///     .sni("ums.example.com");
/// let config = upstream.client_config(provider)?;
/// let name = upstream.server_name("10.0.0.5")?; // the override wins
/// assert_eq!(name.to_str(), "ums.example.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    verification: UpstreamVerification,
    versions: TlsVersions,
    client_certificate: Option<CertificateSource>,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
}

impl UpstreamTls {
    /// TLS 1.2 and 1.3, no client certificate, the SNI taken from the upstream's host, no
    /// ALPN.
    pub fn new(verification: UpstreamVerification) -> Self {
        Self {
            verification,
            versions: TlsVersions::default(),
            client_certificate: None,
            sni: None,
            alpn: Vec::new(),
        }
    }

    /// The accepted versions (e.g. [`TlsVersions::Tls13Only`]).
    #[must_use]
    pub fn versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// A client certificate to present when the upstream asks for one.
    #[must_use]
    pub fn client_certificate(mut self, source: CertificateSource) -> Self {
        self.client_certificate = Some(source);
        self
    }

    /// The name sent as SNI and verified against the certificate, instead of the host the
    /// upstream is addressed by.
    #[must_use]
    pub fn sni(mut self, name: impl Into<String>) -> Self {
        self.sni = Some(name.into());
        self
    }

    /// ALPN protocols to offer, in order of preference (none by default).
    #[must_use]
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|protocol| protocol.to_vec()).collect();
        self
    }

    /// The verification choice.
    pub fn verification(&self) -> &UpstreamVerification {
        &self.verification
    }

    /// The name to pass to `TlsConnector::connect`: the [`sni`](Self::sni) override, else
    /// `host` (a DNS name, or an IP address, which rustls sends no SNI for).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, Error> {
        let name = self.sni.as_deref().unwrap_or(host);
        let bare = name
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(name);
        ServerName::try_from(bare.to_owned()).map_err(|source| Error::InvalidUpstreamName {
            name: name.to_owned(),
            source,
        })
    }

    /// Builds the rustls client configuration. Logs a warning when verification is
    /// skipped.
    pub fn client_config(&self, provider: Arc<CryptoProvider>) -> Result<ClientConfig, Error> {
        let origin = match &self.verification {
            UpstreamVerification::Roots(UpstreamRoots::System) => "system trust store".to_owned(),
            UpstreamVerification::Roots(UpstreamRoots::File(path)) => path.display().to_string(),
            UpstreamVerification::Roots(UpstreamRoots::Pem(_)) => "in-memory CA bundle".to_owned(),
            UpstreamVerification::Pinned(_) => "pinned upstream certificates".to_owned(),
            UpstreamVerification::InsecureSkipVerify => "upstream TLS".to_owned(),
        };
        let rustls_error = |source| Error::Rustls {
            origin: origin.clone(),
            source,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.versions.rustls())
            .map_err(rustls_error)?;
        let builder = match &self.verification {
            UpstreamVerification::Roots(roots) => {
                builder.with_root_certificates(root_store(roots, &origin)?)
            }
            UpstreamVerification::Pinned(pins) => {
                if pins.is_empty() {
                    return Err(Error::NoPins);
                }
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(WithoutChain {
                        pins: Some(pins.clone()),
                        provider,
                    }))
            }
            UpstreamVerification::InsecureSkipVerify => {
                tracing::warn!(
                    sni = self.sni.as_deref(),
                    "upstream TLS certificate verification is disabled \
                     (insecure_skip_verify): anyone on the path can impersonate the upstream; \
                     pin its certificate by SHA-256 fingerprint instead"
                );
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(WithoutChain {
                        pins: None,
                        provider,
                    }))
            }
        };
        let mut config = match &self.client_certificate {
            Some(source) => {
                let (chain, key) = source.load()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source_error| Error::Rustls {
                        origin: source.origin(),
                        source: source_error,
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(config)
    }
}

fn root_store(roots: &UpstreamRoots, origin: &str) -> Result<RootCertStore, Error> {
    match roots {
        UpstreamRoots::System => system_roots(),
        UpstreamRoots::File(path) => store_from(read_certificates(path)?, origin),
        UpstreamRoots::Pem(pem) => store_from(parse_certificates(pem.as_bytes(), origin)?, origin),
    }
}

fn store_from(
    certificates: Vec<CertificateDer<'static>>,
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

/// A verifier that builds no chain: with `pins`, it accepts only the pinned end-entity
/// certificates (a device's self-signed one); without, any certificate
/// (`insecure_skip_verify`). Either way the handshake signatures are checked, so the peer
/// must hold the key of the certificate it shows.
#[derive(Debug)]
struct WithoutChain {
    pins: Option<Vec<Sha256Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for WithoutChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pins) = &self.pins else {
            return Ok(ServerCertVerified::assertion());
        };
        let fingerprint = Sha256Fingerprint::of(end_entity.as_ref());
        if pins.contains(&fingerprint) {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::warn!(sha256 = %fingerprint, "upstream certificate is not pinned; refusing it");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
