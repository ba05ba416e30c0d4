//! PEM loading.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

fn read(path: &Path) -> Result<Vec<u8>, Error> {
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
