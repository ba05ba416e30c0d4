//! TLS for a reverse proxy, built on [rustls](https://docs.rs/rustls).
//!
//! This crate turns PEM material and a few choices into rustls configurations:
//!
//! - [`ServerTls`]: a certificate chain and private key for a listener, from files or PEM
//!   text, with ALPN (`h2`, `http/1.1`) for the engine's HTTP/1.1 and HTTP/2 serving;
//! - [`upstream_client_config`]: a client configuration for HTTPS upstreams, verified
//!   against the system roots or a given CA bundle
//!   ([RFC 5280](https://www.rfc-editor.org/rfc/rfc5280) path building by rustls-webpki).
//!
//! The crypto provider is always an argument: this crate never installs a process-wide
//! default, so an embedder keeps that choice. The binaries use *ring*.
//!
//! It is not for sockets or handshakes themselves (the engine drives `tokio-rustls`).
//!
//! ```
//! use std::sync::Arc;
//! use gangway_tls::{ServerTls, UpstreamRoots, upstream_client_config};
//!
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! let server = ServerTls::from_pem(&cert.cert.pem(), &cert.signing_key.serialize_pem())?;
//! let config = server.server_config(provider.clone(), &[b"h2", b"http/1.1"])?;
//! assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
//!
//! let client = upstream_client_config(&UpstreamRoots::Pem(cert.cert.pem()), provider)?;
//! assert!(client.alpn_protocols.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod pem;
mod server;
#[cfg(test)]
mod tests;
mod upstream;

pub use error::Error;
pub use pem::{read_certificates, read_private_key};
pub use server::ServerTls;
pub use upstream::{UpstreamRoots, upstream_client_config};
