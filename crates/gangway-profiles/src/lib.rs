//! Deployment profiles: a profile file of about ten lines expands into a complete,
//! hardened gangway configuration for one vendor's deployment.
//!
//! Each profile (one module each) is a serde struct read from TOML with spans. Its
//! [`Profile::expand`] checks every value (addresses `"host:port"`, sizes such as
//! `"200MiB"`, durations such as `"5m"`, SHA-256 fingerprints with or without colons,
//! files relative to the profile file) and writes the generic configuration as TOML text
//! with absolute paths. [`expand`] then validates that text with [`gangway_config::parse`],
//! so what `--print-config` prints is exactly what `gangway run` accepts. Errors name the
//! profile file, line and column, and what was expected.
//!
//! [`run_profile`] is the whole `main` of a profile binary: `-c FILE` serves, `--check`
//! validates and `--print-config` prints the expansion. The guides are in
//! `docs/profiles/`.
//!
//! ```
//! use std::path::Path;
//! use gangway_profiles::{Estos, expand};
//!
//! let dir = std::env::temp_dir();
//! std::fs::write(dir.join("uc.pem"), "")?;
//! std::fs::write(dir.join("uc.key"), "")?;
//! let profile = r#"
//! server_name = "uc.example.com"
//! certificate = "uc.pem"
//! private_key = "uc.key"
//! "#;
//! let file = dir.join("estos.toml");
//! let generic = expand::<Estos>(profile, &file)?;
//! assert!(generic.contains(r#"to = "https://uc.example.com$request_uri""#));
//! assert!(generic.contains(r#"peers = ["http://127.0.0.1:7224"]"#));
//!
//! let broken = profile.replace("uc.example.com", "uc example");
//! let errors = expand::<Estos>(&broken, &file).expect_err("not a DNS name");
//! assert_eq!(
//!     errors.to_string(),
//!     format!(
//!         "{}:2:15: server_name = \"uc example\": is not a DNS name; expected a DNS name \
//!          without port, such as \"uc.example.com\"",
//!         file.display()
//!     ),
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allegro;
mod error;
mod estos;
mod igel;
mod powerfolder;
mod run;
mod values;

pub use allegro::Allegro;
pub use error::{Error, Errors};
pub use estos::Estos;
/// Positions and I/O causes inside [`Error`].
pub use gangway_config::{IoError, Location};
pub use igel::Igel;
pub use powerfolder::PowerFolder;
pub use run::{Profile, expand, load, run_profile};
