use std::path::PathBuf;

/// The cause of an [`Error`] that comes from a parser outside rustls (x509-parser,
/// rustls-webpki), boxed so that their types stay out of this crate's API.
pub type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// PEM text without a certificate revocation list.
    #[error("{origin}: no CRL found; expected at least one `-----BEGIN X509 CRL-----` block")]
    NoCrl {
        /// The file, or a description of in-memory text.
        origin: String,
    },
    /// A certificate or CRL whose DER content does not parse.
    #[error("{origin}: {what} does not parse")]
    Malformed {
        /// The file, or a description of in-memory text.
        origin: String,
        /// What was being parsed, e.g. `certificate 2` or `CRL 1`.
        what: String,
        /// The parser's complaint.
        #[source]
        source: BoxedCause,
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
    /// A server name in a certificate store that is not a DNS name or a `*.` wildcard.
    #[error(
        "invalid server name `{name}`: {reason}; expected a DNS name such as \
         `device.example.com` or a wildcard such as `*.example.com`"
    )]
    InvalidServerName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same server name given to two certificates of one store.
    #[error("server name `{name}` is given to two certificates ({first} and {second})")]
    DuplicateServerName {
        /// The name, normalised (lower case, no trailing dot).
        name: String,
        /// Where the first certificate comes from.
        first: String,
        /// Where the second certificate comes from.
        second: String,
    },
    /// A certificate given no names whose leaf has no DNS subject alternative name.
    #[error("{origin}: no server name; give names explicitly or use a certificate with DNS SANs")]
    NoServerName {
        /// Where the certificate comes from.
        origin: String,
    },
    /// A certificate store without any certificate.
    #[error("a certificate store needs at least one certificate")]
    EmptyStore,
    /// A client-certificate policy that verifies certificates, without a CA bundle.
    #[error(
        "client certificate policy `{policy}` needs a CA bundle to verify against; \
         give one, or use `none` or `optional_unverified`"
    )]
    MissingClientCa {
        /// The policy, as configured (`optional`, `optional_reject`, `required`).
        policy: &'static str,
    },
    /// A name that is not a client-certificate policy.
    #[error(
        "unknown client certificate policy `{input}`; expected one of `none`, `optional`, \
         `optional_reject`, `optional_unverified`, `required`"
    )]
    UnknownPolicy {
        /// The text given.
        input: String,
    },
    /// A SHA-256 fingerprint that is not 32 bytes of hex.
    #[error(
        "invalid SHA-256 fingerprint `{input}`; expected 64 hex digits, optionally separated \
         by `:` (as `openssl x509 -noout -fingerprint -sha256` prints)"
    )]
    InvalidFingerprint {
        /// The text given.
        input: String,
    },
    /// Upstream pinning without a single pin.
    #[error("upstream certificate pinning needs at least one SHA-256 fingerprint")]
    NoPins,
    /// A name that cannot be sent as SNI or verified against.
    #[error("invalid upstream server name `{name}`")]
    InvalidUpstreamName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// [`spawn_watcher`](crate::spawn_watcher) called outside a tokio runtime.
    #[error("the certificate watcher needs a tokio runtime; call it from within one")]
    NoRuntime,
}
