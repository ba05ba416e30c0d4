//! PEM loading and encoding, and where material comes from.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::Error;

/// Where a PEM bundle (CA certificates, CRLs) comes from.
///
/// Files are read again on [`reload`](crate::Reload::reload); inline text never changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PemSource {
    /// A PEM file.
    File(PathBuf),
    /// PEM text, e.g. from the configuration file itself.
    Inline(String),
}

impl PemSource {
    /// The file name, or `in-memory <what>` for inline text: how errors and logs name it.
    pub fn origin(&self, what: &str) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Inline(_) => format!("in-memory {what}"),
        }
    }

    pub(crate) fn bytes(&self) -> Result<Vec<u8>, Error> {
        match self {
            Self::File(path) => read(path),
            Self::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Inline(_) => None,
        }
    }

    pub(crate) fn certificates(&self, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
        parse_certificates(&self.bytes()?, &self.origin(what))
    }
}

/// Where a certificate chain (leaf first) and its private key come from.
///
/// Files are read again on [`reload`](crate::Reload::reload); inline text never changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CertificateSource {
    /// A PEM file with the chain, leaf first, and a PEM file with the key (may be the
    /// same file).
    Files {
        /// The certificate chain.
        chain: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// The chain and the key as PEM text.
    Inline {
        /// The certificate chain, leaf first.
        chain: String,
        /// The private key.
        key: String,
    },
}

impl CertificateSource {
    /// The chain's file name, or `in-memory certificate`: how errors and logs name it.
    pub fn origin(&self) -> String {
        match self {
            Self::Files { chain, .. } => chain.display().to_string(),
            Self::Inline { .. } => "in-memory certificate".to_owned(),
        }
    }

    pub(crate) fn load(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        match self {
            Self::Files { chain, key } => Ok((read_certificates(chain)?, read_private_key(key)?)),
            Self::Inline { chain, key } => Ok((
                parse_certificates(chain.as_bytes(), "in-memory certificate")?,
                parse_private_key(key.as_bytes(), "in-memory private key")?,
            )),
        }
    }

    pub(crate) fn paths(&self) -> Vec<&Path> {
        match self {
            Self::Files { chain, key } => vec![chain, key],
            Self::Inline { .. } => Vec::new(),
        }
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every `CERTIFICATE` block of a PEM file, in order.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    parse_certificates(&read(path)?, &path.display().to_string())
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    parse_private_key(&read(path)?, &path.display().to_string())
}

pub(crate) fn parse_certificates(
    pem: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            origin: origin.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(Error::NoCertificate {
            origin: origin.to_owned(),
        });
    }
    Ok(certificates)
}

pub(crate) fn parse_private_key(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => Error::NoPrivateKey {
            origin: origin.to_owned(),
        },
        source => Error::Pem {
            origin: origin.to_owned(),
            source,
        },
    })
}

pub(crate) fn parse_crls(
    pem: &[u8],
    origin: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, Error> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            origin: origin.to_owned(),
            source,
        })?;
    if crls.is_empty() {
        return Err(Error::NoCrl {
            origin: origin.to_owned(),
        });
    }
    Ok(crls)
}

/// PEM as OpenSSL's `PEM_write_bio_X509` writes it: 64-column base64 lines, every line
/// (the last included) ending in `\n`.
pub(crate) fn certificate_pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        for (i, sextet) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                base64.push(ALPHABET[(sextet & 0x3f) as usize]);
            } else {
                base64.push(b'=');
            }
        }
    }
    let mut pem = String::with_capacity(base64.len() + base64.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in base64.chunks(64) {
        // The alphabet is ASCII, so every chunk is valid UTF-8.
        pem.extend(line.iter().map(|&byte| char::from(byte)));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
