//! TLS for a reverse proxy, built on [rustls](https://docs.rs/rustls): certificates chosen
//! by SNI and reloaded in place, client certificates verified after the handshake under a
//! per-listener policy, and upstream verification by CA, by pin, or (loudly) not at all.
//!
//! - [`CertificateStore`]: the listener's certificates by SNI (exact names, one-label
//!   wildcards, a default or a handshake failure for unknown names), a rustls
//!   `ResolvesServerCert` whose material is swapped on [`Reload::reload`];
//! - [`ClientAuth`]: the client-certificate policy ([`ClientCertPolicy`]: `none`,
//!   `optional`, `optional_reject`, `optional_unverified`, `required`), the rustls
//!   `ClientCertVerifier`, and post-handshake chain verification with rustls-webpki
//!   ([RFC 5280](https://www.rfc-editor.org/rfc/rfc5280) path building, validity,
//!   client-auth extended key usage, CRLs);
//! - [`ClientIdentity`] / [`PeerCertificate`]: the verify status and the certificate's
//!   values in the exact forms of nginx's `$ssl_client_*` variables (URL-escaped PEM for
//!   `X-SSL-CERT`, RFC 2253 subject and issuer, serial, fingerprints, validity, SANs);
//! - [`ListenerTls`]: the `ServerConfig` of one listener (TLS versions, ALPN, store,
//!   verifier) and the [`TlsSession`] each handshake yields (version, SNI, ALPN, identity);
//! - [`UpstreamTls`]: the `ClientConfig` for HTTPS upstreams: system roots or a CA bundle,
//!   SHA-256 certificate pinning for self-signed devices, `insecure_skip_verify`, TLS
//!   1.3 only, an SNI override, a client certificate;
//! - [`spawn_watcher`]: polls certificate, key, CA and CRL files and reloads on change;
//! - [`ServerTls`] and [`upstream_client_config`]: the plain one-certificate listener and
//!   CA-verified upstream configurations.
//!
//! The crypto provider is always an argument: this crate never installs a process-wide
//! default, so an embedder keeps that choice. The gangway binaries pass *ring*
//! (`rustls::crypto::ring::default_provider()`): no C toolchain or cmake needed to build,
//! and the same provider rustls-webpki and rcgen use here. The handshake-signature and
//! chain-signature algorithms are the provider's, so an aws-lc-rs provider works the same.
//!
//! It is not for sockets or handshakes themselves (the engine drives `tokio-rustls`).
//!
//! ```
//! use std::sync::Arc;
//! use gangway_tls::{
//!     CertificateSource, CertificateStore, ClientAuth, ClientCa, ClientCertPolicy,
//!     ListenerTls, PemSource, TlsVersions,
//! };
//!
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let cert = rcgen::generate_simple_self_signed(vec!["device.example.com".into()])?;
//! let source = CertificateSource::Inline {
//!     chain: cert.cert.pem(),
//!     key: cert.signing_key.serialize_pem(),
//! };
//! // Names come from the certificate's DNS SANs when none are given.
//! let store = CertificateStore::builder(provider.clone())
//!     .certificate(source, Vec::<String>::new())
//!     .build()?;
//! assert_eq!(store.names(), ["device.example.com"]);
//!
//! // Devices may send a certificate; it is verified against the device CA after the
//! // handshake, and the request is forwarded either way.
//! let device_ca = ClientCa::new(PemSource::Inline(cert.cert.pem()));
//! let client_auth = ClientAuth::new(ClientCertPolicy::Optional, Some(device_ca), provider.clone())?;
//!
//! let listener = ListenerTls::new(
//!     Arc::new(store),
//!     Arc::new(client_auth),
//!     TlsVersions::Tls13Only,
//!     &[b"h2", b"http/1.1"],
//!     provider,
//! )?;
//! assert_eq!(listener.server_config().alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
//! // The server's cipher suite order decides.
//! assert!(listener.server_config().ignore_client_order);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client_auth;
mod dn;
mod error;
mod identity;
mod listener;
mod pem;
mod reload;
mod server;
mod store;
#[cfg(test)]
mod tests;
mod upstream;

pub use client_auth::{ClientAuth, ClientCa, ClientCertPolicy};
pub use error::{BoxedCause, Error};
pub use identity::{
    ClientIdentity, PeerCertificate, Sha256Fingerprint, SubjectAltName, VerifyError, VerifyStatus,
};
pub use listener::{ListenerTls, TlsSession, TlsVersion, TlsVersions};
pub use pem::{CertificateSource, PemSource, read_certificates, read_private_key};
pub use reload::{Reload, ReloadReport, Watcher, spawn_watcher};
pub use server::ServerTls;
pub use store::{CertificateStore, CertificateStoreBuilder, UnknownSni};
pub use upstream::{UpstreamRoots, UpstreamTls, UpstreamVerification, upstream_client_config};
