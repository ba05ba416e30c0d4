//! A TLS listener: the rustls server configuration built from a certificate store and a
//! client-certificate verifier, and what a finished handshake tells the engine.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::version::{TLS12, TLS13};
use rustls::{
    CipherSuite, ProtocolVersion, ServerConfig, ServerConnection, SupportedProtocolVersion,
};

use crate::Error;
use crate::client_auth::{ClientAuth, ClientCertPolicy};
use crate::identity::ClientIdentity;
use crate::reload::{Reload, ReloadReport};
use crate::store::CertificateStore;

/// The TLS versions a listener or an upstream connection accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12And13,
    /// TLS 1.3 only (the IGEL device listener, IGEL upstreams).
    Tls13Only,
    /// TLS 1.2 only, for peers that break on 1.3.
    Tls12Only,
}

impl TlsVersions {
    pub(crate) fn rustls(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
        static ONLY_13: [&SupportedProtocolVersion; 1] = [&TLS13];
        static ONLY_12: [&SupportedProtocolVersion; 1] = [&TLS12];
        match self {
            Self::Tls12And13 => &BOTH,
            Self::Tls13Only => &ONLY_13,
            Self::Tls12Only => &ONLY_12,
        }
    }

    /// Whether `version` is one of these.
    pub fn allows(self, version: TlsVersion) -> bool {
        match (self, version) {
            (Self::Tls12And13, _)
            | (Self::Tls13Only, TlsVersion::Tls13)
            | (Self::Tls12Only, TlsVersion::Tls12) => true,
            (Self::Tls13Only, TlsVersion::Tls12) | (Self::Tls12Only, TlsVersion::Tls13) => false,
        }
    }
}

/// A negotiated TLS version; ordered, so a route's minimum is `version >= minimum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// From rustls; `None` for versions this crate never negotiates.
    pub fn from_rustls(version: ProtocolVersion) -> Option<Self> {
        match version {
            ProtocolVersion::TLSv1_2 => Some(Self::Tls12),
            ProtocolVersion::TLSv1_3 => Some(Self::Tls13),
            _ => None,
        }
    }

    /// As nginx `$ssl_protocol`: `TLSv1.2`, `TLSv1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "TLSv1.2",
            Self::Tls13 => "TLSv1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finished handshake tells the engine; kept with the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    version: Option<TlsVersion>,
    server_name: Option<String>,
    alpn: Option<Vec<u8>>,
    cipher_suite: Option<CipherSuite>,
    identity: ClientIdentity,
}

impl TlsSession {
    /// The negotiated version, for per-route minimums (`None` only before the handshake
    /// finished).
    pub fn version(&self) -> Option<TlsVersion> {
        self.version
    }

    /// The SNI the client sent (lower case), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The negotiated ALPN protocol, if any (`h2`, `http/1.1`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// The negotiated cipher suite (rustls names, e.g. `TLS13_AES_128_GCM_SHA256`).
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.cipher_suite
    }

    /// The client's identity under the listener's policy.
    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }
}

/// A TLS listener's configuration: versions, ALPN, the SNI certificate store and the
/// client-certificate verifier, with hot reload of both.
///
/// The engine builds one per listener, accepts with
/// `tokio_rustls::TlsAcceptor::from(listener.server_config())`, and after each handshake
/// calls [`session`](Self::session) with the `ServerConnection`
/// (`tls_stream.get_ref().1`).
#[derive(Debug)]
pub struct ListenerTls {
    config: Arc<ServerConfig>,
    store: Arc<CertificateStore>,
    client_auth: Arc<ClientAuth>,
}

impl ListenerTls {
    /// Builds the rustls server configuration. `alpn` lists protocols in order of
    /// preference (`[b"h2", b"http/1.1"]`).
    pub fn new(
        store: Arc<CertificateStore>,
        client_auth: Arc<ClientAuth>,
        versions: TlsVersions,
        alpn: &[&[u8]],
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions.rustls())
            .map_err(|source| Error::Rustls {
                origin: "listener TLS versions".to_owned(),
                source,
            })?;
        let builder = match client_auth.policy() {
            ClientCertPolicy::None => builder.with_no_client_auth(),
            ClientCertPolicy::Optional
            | ClientCertPolicy::OptionalReject
            | ClientCertPolicy::OptionalUnverified
            | ClientCertPolicy::Required => builder.with_client_cert_verifier(client_auth.clone()),
        };
        let mut config = builder.with_cert_resolver(store.clone());
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        // The server's order (the provider's: AES-GCM and ChaCha20-Poly1305, forward secret
        // only) decides, not the client's, as scanners expect of a hardened server.
        config.ignore_client_order = true;
        Ok(Self {
            config: Arc::new(config),
            store,
            client_auth,
        })
    }

    /// The rustls configuration to accept with. Reloads do not replace it: the store and
    /// the verifier inside swap their material.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The certificate store (server names for the Host/SNI check).
    pub fn store(&self) -> &Arc<CertificateStore> {
        &self.store
    }

    /// The client-certificate verifier.
    pub fn client_auth(&self) -> &Arc<ClientAuth> {
        &self.client_auth
    }

    /// What a finished handshake tells the engine, the client certificate verified now.
    pub fn session(&self, connection: &ServerConnection) -> TlsSession {
        TlsSession {
            version: connection
                .protocol_version()
                .and_then(TlsVersion::from_rustls),
            server_name: connection.server_name().map(str::to_owned),
            alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
            cipher_suite: connection
                .negotiated_cipher_suite()
                .map(|suite| suite.suite()),
            identity: self.client_auth.identify(connection.peer_certificates()),
        }
    }
}

impl Reload for ListenerTls {
    /// Reloads the certificates and the client CA material; each keeps its previous
    /// material on failure independently, and the first error is returned.
    fn reload(&self) -> Result<ReloadReport, Error> {
        let certificates = self.store.reload();
        let client_ca = self.client_auth.reload();
        Ok(certificates?.merge(client_ca?))
    }

    fn reload_if_changed(&self) -> Result<Option<ReloadReport>, Error> {
        let certificates = self.store.reload_if_changed();
        let client_ca = self.client_auth.reload_if_changed();
        Ok(match (certificates?, client_ca?) {
            (None, None) => None,
            (certificates, client_ca) => Some(
                certificates
                    .unwrap_or_default()
                    .merge(client_ca.unwrap_or_default()),
            ),
        })
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.store.watched_files();
        files.extend(self.client_auth.watched_files());
        files
    }
}
