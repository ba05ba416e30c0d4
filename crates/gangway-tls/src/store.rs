//! The SNI certificate store: which certificate a handshake gets, swapped on reload.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::identity::{PeerCertificate, SubjectAltName};
use crate::pem::CertificateSource;
use crate::reload::{ChangeTracker, Reload, ReloadReport, log_failure};
use crate::{Error, Sha256Fingerprint};

/// What a handshake gets when its SNI names no configured certificate, or it sends none
/// (a client connecting by IP address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UnknownSni {
    /// The default certificate (the one given with
    /// [`default_certificate`](CertificateStoreBuilder::default_certificate), else the
    /// first).
    #[default]
    Default,
    /// A handshake failure, as nginx `ssl_reject_handshake on` (rustls sends the
    /// `access_denied` alert where nginx sends `unrecognized_name`).
    Reject,
}

#[derive(Debug, Clone)]
struct Entry {
    source: CertificateSource,
    names: Names,
}

/// Where an entry's server names come from.
#[derive(Debug, Clone)]
enum Names {
    /// As configured.
    Given(Vec<String>),
    /// The leaf's DNS SANs, read again on every reload; `required` makes a certificate
    /// without any an error.
    Sans { required: bool },
}

/// Collects the certificates of a [`CertificateStore`]; nothing is read before
/// [`build`](Self::build).
#[derive(Debug)]
pub struct CertificateStoreBuilder {
    provider: Arc<CryptoProvider>,
    entries: Vec<Entry>,
    default: Option<usize>,
    unknown_sni: UnknownSni,
}

impl CertificateStoreBuilder {
    /// Adds a certificate for `names`: exact DNS names (`device.example.com`) or
    /// wildcards of one leftmost label (`*.devices.example.com` matches
    /// `a.devices.example.com`, not `devices.example.com` nor `a.b.devices.example.com`).
    /// With no names, the certificate's DNS subject alternative names are used (again on
    /// every reload).
    #[must_use]
    pub fn certificate<I, S>(mut self, source: CertificateSource, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        self.entries.push(Entry {
            source,
            names: if names.is_empty() {
                Names::Sans { required: true }
            } else {
                Names::Given(names)
            },
        });
        self
    }

    /// Adds a certificate as [`certificate`](Self::certificate) does and makes it the one
    /// served for unknown or absent SNI under [`UnknownSni::Default`].
    #[must_use]
    pub fn default_certificate<I, S>(self, source: CertificateSource, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let index = self.entries.len();
        let mut builder = self.certificate(source, names);
        builder.default = Some(index);
        builder
    }

    /// What unknown or absent SNI gets (default: the default certificate).
    #[must_use]
    pub fn unknown_sni(mut self, unknown_sni: UnknownSni) -> Self {
        self.unknown_sni = unknown_sni;
        self
    }

    /// Reads and checks every certificate and key (each key must match its leaf), and
    /// the names (valid, none given twice).
    pub fn build(self) -> Result<CertificateStore, Error> {
        if self.entries.is_empty() {
            return Err(Error::EmptyStore);
        }
        let snapshot = Snapshot::load(&self.entries, &self.provider)?;
        let store = CertificateStore {
            provider: self.provider,
            entries: self.entries,
            default: self.default.unwrap_or(0),
            unknown_sni: self.unknown_sni,
            current: ArcSwap::from_pointee(snapshot),
            tracker: ChangeTracker::default(),
        };
        store.tracker.record(&store.watched_files());
        Ok(store)
    }
}

/// One loaded generation of the store's material.
struct Snapshot {
    keys: Vec<Arc<CertifiedKey>>,
    fingerprints: Vec<Sha256Fingerprint>,
    names: Vec<Vec<String>>,
    exact: HashMap<String, usize>,
    /// Wildcards by the part after `*.`.
    wildcards: HashMap<String, usize>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("fingerprints", &self.fingerprints)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn load(entries: &[Entry], provider: &CryptoProvider) -> Result<Self, Error> {
        let mut snapshot = Self {
            keys: Vec::with_capacity(entries.len()),
            fingerprints: Vec::with_capacity(entries.len()),
            names: Vec::with_capacity(entries.len()),
            exact: HashMap::new(),
            wildcards: HashMap::new(),
        };
        for (index, entry) in entries.iter().enumerate() {
            let origin = entry.source.origin();
            let (chain, key) = entry.source.load()?;
            let leaf = chain[0].clone();
            let certified =
                CertifiedKey::from_der(chain, key, provider).map_err(|source| Error::Rustls {
                    origin: origin.clone(),
                    source,
                })?;
            let names = match &entry.names {
                Names::Given(names) => names.clone(),
                Names::Sans { required } => san_names(&leaf, &origin, *required)?,
            };
            let mut normalised = Vec::with_capacity(names.len());
            for name in &names {
                let name = validate(name)?;
                let (table, key) = match name.strip_prefix("*.") {
                    Some(rest) => (&mut snapshot.wildcards, rest.to_owned()),
                    None => (&mut snapshot.exact, name.clone()),
                };
                if let Some(&first) = table.get(&key) {
                    return Err(Error::DuplicateServerName {
                        name,
                        first: entries[first].source.origin(),
                        second: origin,
                    });
                }
                table.insert(key, index);
                normalised.push(name);
            }
            snapshot.keys.push(Arc::new(certified));
            snapshot
                .fingerprints
                .push(Sha256Fingerprint::of(leaf.as_ref()));
            snapshot.names.push(normalised);
        }
        Ok(snapshot)
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        let name = normalise(name);
        if let Some(&index) = self.exact.get(&name) {
            return Some(index);
        }
        let (_, rest) = name.split_once('.')?;
        self.wildcards.get(rest).copied()
    }
}

fn san_names(
    leaf: &rustls::pki_types::CertificateDer<'_>,
    origin: &str,
    required: bool,
) -> Result<Vec<String>, Error> {
    let certificate = PeerCertificate::from_der(leaf).map_err(|error| match error {
        Error::Malformed { what, source, .. } => Error::Malformed {
            origin: origin.to_owned(),
            what,
            source,
        },
        other => other,
    })?;
    let names: Vec<String> = certificate
        .subject_alt_names()
        .iter()
        .filter_map(|name| match name {
            SubjectAltName::Dns(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() && required {
        return Err(Error::NoServerName {
            origin: origin.to_owned(),
        });
    }
    Ok(names)
}

/// Lower case, without a trailing dot, without a `:port`.
fn normalise(name: &str) -> String {
    trim(name).to_ascii_lowercase()
}

/// `name` without a `:port` suffix and a trailing dot; case is left to the caller.
fn trim(name: &str) -> &str {
    let name = match name.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => name,
    };
    name.strip_suffix('.').unwrap_or(name)
}

fn validate(name: &str) -> Result<String, Error> {
    let invalid = |reason| Error::InvalidServerName {
        name: name.to_owned(),
        reason,
    };
    let normalised = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let host = normalised.strip_prefix("*.").unwrap_or(&normalised);
    if host.is_empty() {
        return Err(invalid("it is empty"));
    }
    if host.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(invalid("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 characters"));
        }
        if label.contains('*') {
            return Err(invalid("`*` is allowed only as the whole leftmost label"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("only letters, digits, `-` and `_` are allowed"));
        }
    }
    Ok(normalised)
}

/// The certificates of a TLS listener, chosen by SNI, and swapped on [`Reload::reload`]
/// without touching open connections.
///
/// It is the listener's rustls [`ResolvesServerCert`]: exact names first, then
/// one-label wildcards, then the default certificate or a handshake failure as
/// [`UnknownSni`] says.
///
/// For the engine's Host/SNI check (421 Misdirected Request), [`lookup`](Self::lookup)
/// tells which configured certificate a name selects and
/// [`host_conflicts`](Self::host_conflicts) applies the rule.
#[derive(Debug)]
pub struct CertificateStore {
    provider: Arc<CryptoProvider>,
    entries: Vec<Entry>,
    default: usize,
    unknown_sni: UnknownSni,
    current: ArcSwap<Snapshot>,
    tracker: ChangeTracker,
}

impl CertificateStore {
    /// Starts a store whose keys are loaded with `provider`'s key provider.
    pub fn builder(provider: Arc<CryptoProvider>) -> CertificateStoreBuilder {
        CertificateStoreBuilder {
            provider,
            entries: Vec::new(),
            default: None,
            unknown_sni: UnknownSni::Default,
        }
    }

    /// A store of one certificate, served whatever the SNI; its DNS SANs (if any) are
    /// its names for [`lookup`](Self::lookup).
    pub fn single(source: CertificateSource, provider: Arc<CryptoProvider>) -> Result<Self, Error> {
        let builder = Self::builder(provider);
        CertificateStoreBuilder {
            entries: vec![Entry {
                source,
                names: Names::Sans { required: false },
            }],
            ..builder
        }
        .build()
    }

    /// Every configured server name (normalised: lower case, no trailing dot; wildcards
    /// as `*.example.com`), in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.current
            .load()
            .names
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The index (in configuration order) of the certificate that `name` selects by exact
    /// or wildcard match; `None` when no configured name matches (the default is not a
    /// match). Case, a trailing dot and a `:port` suffix are ignored, so a Host header
    /// value can be passed as it is.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.current.load().lookup(name)
    }

    /// Whether a request's Host names another configured server than its SNI did: the
    /// engine answers `421 Misdirected Request`. False without SNI, when Host equals SNI,
    /// when Host names no configured server (routing decides), and when both select the
    /// same certificate (e.g. two names of one wildcard).
    pub fn host_conflicts(&self, sni: Option<&str>, host: &str) -> bool {
        let Some(sni) = sni else {
            return false;
        };
        // The common case, Host equal to SNI, costs no allocation.
        if trim(sni).eq_ignore_ascii_case(trim(host)) {
            return false;
        }
        let snapshot = self.current.load();
        match snapshot.lookup(host) {
            Some(by_host) => snapshot.lookup(sni) != Some(by_host),
            None => false,
        }
    }

    /// The leaf certificate's SHA-256 fingerprint of each certificate, in configuration
    /// order (useful to log what a reload brought).
    pub fn fingerprints(&self) -> Vec<Sha256Fingerprint> {
        self.current.load().fingerprints.clone()
    }

    /// The certified key a handshake with this SNI gets.
    pub fn select(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.current.load();
        let index = match sni.and_then(|name| snapshot.lookup(name)) {
            Some(index) => Some(index),
            None => match self.unknown_sni {
                UnknownSni::Default => Some(self.default),
                UnknownSni::Reject => None,
            },
        };
        if index.is_none() {
            tracing::debug!(
                sni,
                "no certificate for this server name; refusing the handshake"
            );
        }
        index.and_then(|index| snapshot.keys.get(index).cloned())
    }

    fn swap(&self) -> Result<ReloadReport, Error> {
        let snapshot = Snapshot::load(&self.entries, &self.provider)?;
        let previous = self.current.load();
        let mut report = ReloadReport::default();
        for (index, entry) in self.entries.iter().enumerate() {
            let origin = entry.source.origin();
            if previous.fingerprints.get(index) != snapshot.fingerprints.get(index) {
                tracing::info!(
                    certificate = %origin,
                    sha256 = %snapshot.fingerprints[index],
                    "reloaded a changed certificate"
                );
                report.changed.push(origin.clone());
            }
            report.reloaded.push(origin);
        }
        self.current.store(Arc::new(snapshot));
        Ok(report)
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(client_hello.server_name())
    }
}

impl Reload for CertificateStore {
    fn reload(&self) -> Result<ReloadReport, Error> {
        self.tracker.run(&self.watched_files(), || {
            let result = self.swap();
            if let Err(error) = &result {
                log_failure("server certificates", error);
            }
            result
        })
    }

    fn reload_if_changed(&self) -> Result<Option<ReloadReport>, Error> {
        if self.tracker.unchanged(&self.watched_files()) {
            return Ok(None);
        }
        self.reload().map(Some)
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        self.entries
            .iter()
            .flat_map(|entry| entry.source.paths())
            .map(ToOwned::to_owned)
            .collect()
    }
}
