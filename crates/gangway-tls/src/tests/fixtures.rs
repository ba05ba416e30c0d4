//! rcgen-made CAs and certificates, and real handshakes over `tokio::io::duplex`.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{CertificateSource, ListenerTls, TlsSession, TlsVersions};

pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The key types every certificate-handling test loops over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
}

pub(super) const KEY_TYPES: [KeyType; 4] = [
    KeyType::EcdsaP256,
    KeyType::EcdsaP384,
    KeyType::Ed25519,
    KeyType::Rsa2048,
];

impl KeyType {
    pub(super) fn key(self) -> KeyPair {
        match self {
            Self::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Self::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Self::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            // ring cannot generate RSA keys; see tests/data/README.md.
            Self::Rsa2048 => KeyPair::from_pem(include_str!("../../tests/data/rsa-2048.key")),
        }
        .unwrap()
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Validity {
    Current,
    Expired,
    NotYet,
}

/// What a leaf certificate looks like.
#[derive(Debug, Clone)]
pub(super) struct Leaf {
    pub(super) common_name: String,
    pub(super) sans: Vec<String>,
    pub(super) usages: Vec<ExtendedKeyUsagePurpose>,
    pub(super) key_type: KeyType,
    pub(super) validity: Validity,
    pub(super) serial: u64,
}

impl Leaf {
    /// A device's client certificate.
    pub(super) fn client(name: &str) -> Self {
        Self {
            common_name: name.to_owned(),
            sans: Vec::new(),
            usages: vec![ExtendedKeyUsagePurpose::ClientAuth],
            key_type: KeyType::EcdsaP256,
            validity: Validity::Current,
            serial: 0x1001,
        }
    }

    /// A server certificate for `names`.
    pub(super) fn server(names: &[&str]) -> Self {
        Self {
            common_name: names[0].to_owned(),
            sans: names.iter().map(|name| (*name).to_owned()).collect(),
            usages: vec![ExtendedKeyUsagePurpose::ServerAuth],
            key_type: KeyType::EcdsaP256,
            validity: Validity::Current,
            serial: 0x2001,
        }
    }

    pub(super) fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    pub(super) fn validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }

    pub(super) fn usages(mut self, usages: Vec<ExtendedKeyUsagePurpose>) -> Self {
        self.usages = usages;
        self
    }

    pub(super) fn serial(mut self, serial: u64) -> Self {
        self.serial = serial;
        self
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::new(self.sans.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Gangway Test Devices");
        params.extended_key_usages = self.usages.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from(self.serial));
        let (from, to) = match self.validity {
            Validity::Current => (date_time_ymd(2020, 1, 1), date_time_ymd(2090, 1, 1)),
            Validity::Expired => (date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1)),
            Validity::NotYet => (date_time_ymd(2090, 1, 1), date_time_ymd(2095, 1, 1)),
        };
        params.not_before = from;
        params.not_after = to;
        params
    }

    /// The same certificate, self-signed.
    pub(super) fn self_signed(&self) -> Issued {
        let key = self.key_type.key();
        let cert = self.params().self_signed(&key).unwrap();
        Issued::new(cert, &key, Vec::new())
    }
}

/// A certificate and its key, with the chain above it (intermediates, not the root).
#[derive(Debug, Clone)]
pub(super) struct Issued {
    pub(super) pem: String,
    pub(super) key_pem: String,
    pub(super) der: CertificateDer<'static>,
    pub(super) intermediates: Vec<CertificateDer<'static>>,
    pub(super) intermediates_pem: String,
}

impl Issued {
    fn new(cert: rcgen::Certificate, key: &KeyPair, intermediates: Vec<&Issued>) -> Self {
        Self {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            intermediates: intermediates.iter().map(|i| i.der.clone()).collect(),
            intermediates_pem: intermediates.iter().map(|i| i.pem.clone()).collect(),
        }
    }

    /// Leaf and intermediates, PEM.
    pub(super) fn chain_pem(&self) -> String {
        format!("{}{}", self.pem, self.intermediates_pem)
    }

    pub(super) fn chain(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(self.der.clone())
            .chain(self.intermediates.iter().cloned())
            .collect()
    }

    pub(super) fn source(&self) -> CertificateSource {
        CertificateSource::Inline {
            chain: self.chain_pem(),
            key: self.key_pem.clone(),
        }
    }

    pub(super) fn key(&self) -> rustls::pki_types::PrivateKeyDer<'static> {
        crate::pem::parse_private_key(self.key_pem.as_bytes(), "test key").unwrap()
    }
}

/// A certificate authority (root, or intermediate with `issued` set).
pub(super) struct Ca {
    pub(super) issued: Issued,
    issuer: Issuer<'static, KeyPair>,
    is_intermediate: bool,
}

impl Ca {
    pub(super) fn new(name: &str, key_type: KeyType) -> Self {
        let key = key_type.key();
        let params = Self::params(name);
        let cert = params.self_signed(&key).unwrap();
        let issued = Issued::new(cert, &key, Vec::new());
        Self {
            issued,
            issuer: Issuer::new(params, key),
            is_intermediate: false,
        }
    }

    fn params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Gangway Test");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2095, 1, 1);
        params
    }

    /// An intermediate CA signed by this one.
    pub(super) fn intermediate(&self, name: &str) -> Self {
        let key = KeyType::EcdsaP256.key();
        let params = Self::params(name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut issued = Issued::new(cert, &key, Vec::new());
        issued.intermediates = self.issued.intermediates.clone();
        issued.intermediates_pem = self.issued.intermediates_pem.clone();
        Self {
            issued,
            issuer: Issuer::new(params, key),
            is_intermediate: true,
        }
    }

    pub(super) fn pem(&self) -> String {
        self.issued.pem.clone()
    }

    /// A leaf signed by this CA; its chain carries this CA when it is an intermediate.
    pub(super) fn issue(&self, leaf: &Leaf) -> Issued {
        let key = leaf.key_type.key();
        let cert = leaf.params().signed_by(&key, &self.issuer).unwrap();
        let mut issued = Issued::new(cert, &key, Vec::new());
        if self.is_intermediate {
            issued.intermediates = self.issued.chain();
            issued.intermediates_pem = self.issued.chain_pem();
        }
        issued
    }

    /// A CRL listing `revoked` serials, PEM.
    pub(super) fn crl(&self, revoked: &[u64]) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2020, 1, 1),
            next_update: date_time_ymd(2090, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: date_time_ymd(2021, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }
}

/// A client configuration trusting `server_ca`, presenting `client` when given.
pub(super) fn client_config(
    versions: TlsVersions,
    server_ca: &Ca,
    client: Option<&Issued>,
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.issued.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions.rustls())
        .unwrap()
        .with_root_certificates(roots);
    match client {
        Some(client) => builder
            .with_client_auth_cert(client.chain(), client.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// The outcome of one handshake over an in-memory pipe.
pub(super) struct Handshake {
    pub(super) server: Result<tokio_rustls::server::TlsStream<tokio::io::DuplexStream>, String>,
    pub(super) client: Result<tokio_rustls::client::TlsStream<tokio::io::DuplexStream>, String>,
}

impl Handshake {
    /// The certificate the server presented, as the client saw it.
    pub(super) fn served_certificate(&self) -> CertificateDer<'static> {
        let client = self.client.as_ref().unwrap();
        client.get_ref().1.peer_certificates().unwrap()[0].clone()
    }
}

/// Runs a real handshake between `server` and `client` over `tokio::io::duplex`.
pub(super) async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Handshake {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let connector = tokio_rustls::TlsConnector::from(client);
    let (server, client) = tokio::join!(
        async {
            let result = acceptor.accept(server_io).await;
            result.map_err(|error| error.to_string())
        },
        async {
            let result = connector.connect(server_name, client_io).await;
            result.map_err(|error| error.to_string())
        }
    );
    Handshake { server, client }
}

/// A handshake with a listener; the server side's session, or its error.
pub(super) async fn session(
    listener: &ListenerTls,
    client: ClientConfig,
    sni: &str,
) -> Result<TlsSession, String> {
    let done = handshake(
        listener.server_config(),
        Arc::new(client),
        ServerName::try_from(sni.to_owned()).unwrap(),
    )
    .await;
    let server = done.server?;
    Ok(listener.session(server.get_ref().1))
}

/// A scratch directory, removed on drop.
pub(super) struct TempDir(pub(super) std::path::PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "gangway-tls-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(super) fn path(&self, file: &str) -> std::path::PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
