//! TLS fixtures generated with rcgen at test time, and temporary directories for them.
//!
//! A [`TestCa`] is a self-signed CA whose key never leaves the test process; it issues
//! server certificates for the names a test needs. Every key is ECDSA P-256 unless a test
//! asks for another [`KeyType`].

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};

/// The kinds of key a fixture certificate can carry (all supported by rustls with ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default).
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// Every key type, for tests that loop over them.
    pub const ALL: [KeyType; 3] = [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Ed25519];

    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    fn generate(self) -> KeyPair {
        KeyPair::generate_for(self.algorithm()).expect("rcgen could not generate a key pair")
    }
}

/// A certificate and its key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The leaf certificate alone.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
    /// The leaf followed by the certificate that issued it (the CA, for an issued
    /// certificate); just the leaf for a self-signed one. This is what a server presents.
    pub chain_pem: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<private key>")
            .finish_non_exhaustive()
    }
}

/// A throwaway certificate authority for one test.
pub struct TestCa {
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new self-signed CA with common name `name` and a P-256 key.
    pub fn new(name: &str) -> TestCa {
        TestCa::with_key_type(name, KeyType::EcdsaP256)
    }

    /// A new self-signed CA with common name `name` and a key of type `key_type`.
    pub fn with_key_type(name: &str, key_type: KeyType) -> TestCa {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("empty CA params are valid");
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key_type.generate())
            .expect("rcgen could not self-sign the test CA");
        TestCa {
            name: name.to_owned(),
            issuer,
        }
    }

    /// The CA certificate in PEM, for a client's trust store.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate (`serverAuth`) for `names`, with a P-256 key, signed by this CA.
    ///
    /// Each name becomes a subject alternative name: an IP address when it parses as one,
    /// otherwise a DNS name (wildcards like `*.example.test` included). The first name is
    /// also the common name.
    ///
    /// # Panics
    ///
    /// When a name is not a valid DNS name or IP address.
    pub fn issue_server(&self, names: &[&str]) -> Issued {
        self.issue_server_with_key_type(names, KeyType::EcdsaP256)
    }

    /// Like [`issue_server`](Self::issue_server), with a leaf key of type `key_type`.
    ///
    /// # Panics
    ///
    /// When a name is not a valid DNS name or IP address.
    pub fn issue_server_with_key_type(&self, names: &[&str], key_type: KeyType) -> Issued {
        let params = server_params(names);
        let key = key_type.generate();
        let cert = params
            .signed_by(&key, &*self.issuer)
            .expect("rcgen could not sign the server certificate");
        let cert_pem = cert.pem();
        Issued {
            chain_pem: format!("{cert_pem}{}", self.pem()),
            cert_pem,
            key_pem: key.serialize_pem(),
        }
    }
}

impl TestCa {
    /// A client certificate (`clientAuth`) with common name `name` and a P-256 key, signed
    /// by this CA: what a device presents.
    pub fn issue_client(&self, name: &str) -> Issued {
        self.issue_client_params(name, None)
    }

    /// Like [`issue_client`](Self::issue_client), with a chosen serial number (to revoke it
    /// in a [`crl`](Self::crl)).
    pub fn issue_client_with_serial(&self, name: &str, serial: u64) -> Issued {
        self.issue_client_params(name, Some(serial))
    }

    /// A certificate revocation list of this CA, in PEM, revoking `serials`; valid from
    /// 2020 to 2090.
    ///
    /// # Panics
    ///
    /// When rcgen cannot sign it.
    pub fn crl(&self, serials: &[u64]) -> String {
        let at = |year| rcgen::date_time_ymd(year, 1, 1);
        let params = rcgen::CertificateRevocationListParams {
            this_update: at(2020),
            next_update: at(2090),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial),
                    revocation_time: at(2021),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&*self.issuer)
            .expect("rcgen could not sign the CRL")
            .pem()
            .expect("a CRL has a PEM form")
    }

    fn issue_client_params(&self, name: &str, serial: Option<u64>) -> Issued {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("empty client params are valid");
        params.distinguished_name = common_name(name);
        params.serial_number = serial.map(rcgen::SerialNumber::from);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyType::EcdsaP256.generate();
        let cert = params
            .signed_by(&key, &*self.issuer)
            .expect("rcgen could not sign the client certificate");
        let cert_pem = cert.pem();
        Issued {
            chain_pem: format!("{cert_pem}{}", self.pem()),
            cert_pem,
            key_pem: key.serialize_pem(),
        }
    }
}

/// A self-signed server certificate (`serverAuth`) for `names`, with a P-256 key; see
/// [`TestCa::issue_server`] for how names are used.
///
/// # Panics
///
/// When a name is not a valid DNS name or IP address.
pub fn self_signed(names: &[&str]) -> Issued {
    let params = server_params(names);
    let key = KeyType::EcdsaP256.generate();
    let cert = params
        .self_signed(&key)
        .expect("rcgen could not self-sign the server certificate");
    let cert_pem = cert.pem();
    Issued {
        chain_pem: cert_pem.clone(),
        cert_pem,
        key_pem: key.serialize_pem(),
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

fn server_params(names: &[&str]) -> CertificateParams {
    let sans: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(sans)
        .unwrap_or_else(|error| panic!("invalid certificate names {names:?}: {error}"));
    if let Some(first) = names.first() {
        params.distinguished_name = common_name(first);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

/// Writes `issued`'s chain and key into `dir` under fresh names and returns
/// `(certificate chain path, key path)`.
///
/// The certificate file holds [`Issued::chain_pem`] (leaf first), as a server loads it.
/// Names are unique within the process, so several certificates can share a directory.
///
/// # Panics
///
/// When a file cannot be written.
pub fn write_pem_files(dir: &Path, issued: &Issued) -> (PathBuf, PathBuf) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let cert_path = dir.join(format!("cert-{n}.pem"));
    let key_path = dir.join(format!("key-{n}.pem"));
    write_file(&cert_path, &issued.chain_pem);
    write_file(&key_path, &issued.key_pem);
    (cert_path, key_path)
}

fn write_file(path: &Path, contents: &str) {
    fs::write(path, contents)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// A fresh directory under [`std::env::temp_dir`], removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a new, empty directory named after `label` (a plain file-name fragment,
    /// such as `"tls"`) that no other `TempDir`, in this or another process, has.
    ///
    /// # Panics
    ///
    /// When the directory cannot be created.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "gangway-e2e-{label}-{}-{n}-{nanos}",
                std::process::id()
            ));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => panic!("cannot create {}: {error}", path.display()),
            }
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path for `name` inside the directory (nothing is created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir is harmless.
        let _ = fs::remove_dir_all(&self.path);
    }
}
