use std::path::PathBuf;

/// What went wrong while loading TLS material or building a configuration, and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PEM file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// PEM text that does not parse.
    #[error("{origin}: malformed PEM; expected `-----BEGIN ...-----` blocks")]
    Pem {
        /// The file, or a description of in-memory text.
        origin: String,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// PEM text without a single `CERTIFICATE` block.
    #[error(
        "{origin}: no certificate found; expected at least one `-----BEGIN CERTIFICATE-----` block"
    )]
    NoCertificate {
        /// The file, or a description of in-memory text.
        origin: String,
    },
    /// PEM text without a private key.
    #[error(
        "{origin}: no private key found; expected a PKCS#8, PKCS#1 or SEC1 `PRIVATE KEY` block"
    )]
    NoPrivateKey {
        /// The file, or a description of in-memory text.
        origin: String,
    },
    /// A system trust store that could not be loaded, or held no usable root.
    #[error("no usable CA certificate in the system trust store ({detail})")]
    SystemRoots {
        /// What the loader reported.
        detail: String,
    },
    /// rustls refused the material (a key that does not match, an unsupported key type,
    /// an unusable CA certificate).
    #[error("{origin}: {source}")]
    Rustls {
        /// What was being built.
        origin: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}
