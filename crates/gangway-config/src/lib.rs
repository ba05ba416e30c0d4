//! The gangway configuration file: TOML in, a checked [`Config`] out, and back again.
//!
//! This crate is for turning the file an operator writes into the typed [`Config`] the
//! engine runs from, and for telling the operator exactly what is wrong when it cannot:
//!
//! - [`load`] reads a file and [`parse`] takes its text. Both check everything (value forms,
//!   files that must exist, upstream names, duplicates) and return either a [`Config`] with
//!   every default filled in, or [`Errors`]: every problem found, in file order, each
//!   displayed as `FILE:LINE:COLUMN: message` naming the key and what was expected.
//! - [`to_toml`] writes a [`Config`] back as a normalised file (every key, defaults included,
//!   file paths absolute) that [`parse`] reads into an equal [`Config`].
//!
//! The file format is [TOML 1.0](https://toml.io/en/v1.0.0); its keys and value formats are
//! described in `docs/configuration.md`. It is not for running anything: the engine takes a
//! [`Config`], which embedders may also build in code (see [`defaults`]).
//!
//! ```
//! use std::path::Path;
//! use std::time::Duration;
//!
//! let source = r#"
//! [[upstream]]
//! name = "app"
//! peers = ["http://127.0.0.1:9000", { url = "http://127.0.0.1:9001", weight = 2 }]
//!
//! [[listener]]
//! address = "localhost:8080"
//!
//! [[listener.route]]
//! path = "/"
//! proxy = "app"
//! max_body = "200MiB"
//! "#;
//! let config = gangway_config::parse(source, Path::new("/etc/gangway/gangway.toml"))?;
//! assert_eq!(config.listeners[0].name, "listener-1");
//! assert_eq!(config.listeners[0].address.to_string(), "127.0.0.1:8080");
//! assert_eq!(config.listeners[0].routes[0].max_body_bytes, 200 * 1024 * 1024);
//! assert_eq!(config.upstreams[0].peers[1].weight, 2);
//! assert_eq!(config.upstreams[0].connect_timeout, Duration::from_secs(5));
//!
//! // The normalised file reads back into the same configuration.
//! let written = gangway_config::to_toml(&config);
//! assert_eq!(gangway_config::parse(&written, Path::new("/elsewhere.toml"))?, config);
//!
//! // Errors say where, what, and what was expected.
//! let broken = source.replace("localhost:8080", "localhost");
//! let errors = gangway_config::parse(&broken, Path::new("/etc/gangway/gangway.toml"))
//!     .expect_err("no port");
//! assert_eq!(
//!     errors.to_string(),
//!     "/etc/gangway/gangway.toml:7:11: listener[1].address = \"localhost\": has no port; \
//!      expected \"IP:PORT\" with an IP literal, such as \"0.0.0.0:443\", \"[::]:443\" or \
//!      \"localhost:8080\"",
//! );
//! # Ok::<(), gangway_config::Errors>(())
//! ```

mod access_log;
#[cfg(test)]
mod access_log_tests;
mod admin;
#[cfg(test)]
mod admin_tests;
mod edge;
mod error;
mod headers;
mod model;
mod pools;
mod raw;
mod relay;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(test)]
mod tls_tests;
mod validate;
mod values;
mod write;

pub use error::{Error, Errors, IoError, Location};
/// TLS types that appear in the model, so embedders need not name `gangway-tls`.
pub use gangway_tls::{CertificateSource, Sha256Fingerprint, UnknownSni};
pub use model::*;
pub use validate::{load, parse};
pub use values::{duration_to_toml, parse_duration, parse_size};
pub use write::to_toml;
