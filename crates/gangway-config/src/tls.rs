//! Validation of the TLS keys: listener certificates by SNI, client-certificate CRLs,
//! upstream verification, and the certificate watch interval.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use gangway_tls::{CertificateSource, Sha256Fingerprint, TlsVersions, UnknownSni};
use serde_spanned::Spanned;

use crate::error::Error;
use crate::model::{ListenerTls, ServerCertificate, UpstreamTls};
use crate::raw::{IntOrString, RawCertificate, RawDuration, RawListener, RawUpstream};
use crate::validate::Checker;
use crate::values::{self, quote};

const TLS_VERSIONS_EXPECTED: &str = "[\"1.2\", \"1.3\"], [\"1.3\"] or [\"1.2\"]";
const SNI_NAME_EXPECTED: &str =
    "a DNS name such as \"device.example.com\" or a wildcard such as \"*.example.com\"";
const PIN_EXPECTED: &str =
    "a SHA-256 fingerprint: 64 hex digits, colons allowed (openssl x509 -fingerprint -sha256)";

impl Checker<'_> {
    /// The listener's certificates: `certificate` + `private_key`, or a `certificates`
    /// list; `None` for a plain listener. The flag is false when TLS keys were present
    /// but wrong, so that the listener is not taken for a plain one.
    pub(crate) fn listener_tls(
        &mut self,
        key: &str,
        raw: &RawListener,
    ) -> (Option<ListenerTls>, bool) {
        let unknown_sni = match raw.unknown_sni.as_ref() {
            None => Some(UnknownSni::Default),
            Some(value) => match value.get_ref().as_str() {
                "default" => Some(UnknownSni::Default),
                "reject" => Some(UnknownSni::Reject),
                other => {
                    self.invalid(
                        &value.span(),
                        &format!("{key}.unknown_sni"),
                        quote(other),
                        "is not an unknown-SNI policy".to_owned(),
                        "\"default\" (serve the default certificate) or \"reject\" (fail the \
                         handshake)",
                    );
                    None
                }
            },
        };
        let certificates = match (&raw.certificates, &raw.certificate, &raw.private_key) {
            (None, None, None) => return (None, true),
            (Some(list), None, None) => self.certificate_list(key, list),
            (Some(list), _, _) => {
                self.invalid(
                    &list.span(),
                    &format!("{key}.certificates"),
                    "[...]".to_owned(),
                    "is set together with certificate/private_key".to_owned(),
                    "either certificate and private_key (one certificate) or a certificates \
                     list",
                );
                None
            }
            (None, certificate, private_key) => self
                .certificate_pair(key, 0..0, certificate, private_key)
                .map(|source| {
                    vec![ServerCertificate {
                        source,
                        names: Vec::new(),
                        default: false,
                    }]
                }),
        };
        match (certificates, unknown_sni) {
            (Some(certificates), Some(unknown_sni)) => (
                Some(ListenerTls {
                    certificates,
                    unknown_sni,
                }),
                true,
            ),
            _ => (None, false),
        }
    }

    /// `certificate` and `private_key` of a listener or of one `certificates` entry.
    fn certificate_pair(
        &mut self,
        key: &str,
        table: std::ops::Range<usize>,
        certificate: &Option<Spanned<String>>,
        private_key: &Option<Spanned<String>>,
    ) -> Option<CertificateSource> {
        match (certificate, private_key) {
            (Some(certificate), Some(private_key)) => {
                let chain = self.file(&format!("{key}.certificate"), certificate);
                let key = self.file(&format!("{key}.private_key"), private_key);
                Some(CertificateSource::Files {
                    chain: chain?,
                    key: key?,
                })
            }
            (Some(value), None) | (None, Some(value)) => {
                let (present, missing) = if certificate.is_some() {
                    ("certificate", "private_key")
                } else {
                    ("private_key", "certificate")
                };
                let at = self.at(&value.span());
                self.errors.push(Error::TlsPair {
                    at,
                    key: key.to_owned(),
                    present,
                    missing,
                });
                None
            }
            (None, None) => {
                self.missing(
                    &table,
                    format!("{key}.certificate"),
                    "certificate and private_key: the PEM files of the chain and its key",
                );
                None
            }
        }
    }

    fn certificate_list(
        &mut self,
        key: &str,
        list: &Spanned<Vec<Spanned<RawCertificate>>>,
    ) -> Option<Vec<ServerCertificate>> {
        if list.get_ref().is_empty() {
            self.invalid(
                &list.span(),
                &format!("{key}.certificates"),
                "[]".to_owned(),
                "has no certificates".to_owned(),
                "at least one { certificate = ..., private_key = ... }",
            );
            return None;
        }
        let mut ok = true;
        let mut certificates = Vec::new();
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        let mut default_seen = false;
        for (index, entry) in list.get_ref().iter().enumerate() {
            let entry_key = format!("{key}.certificates[{}]", index + 1);
            let raw = entry.get_ref();
            let source =
                self.certificate_pair(&entry_key, entry.span(), &raw.certificate, &raw.private_key);
            let mut names = Vec::new();
            for name in raw.names.iter().flat_map(|names| names.get_ref()) {
                match sni_name(name.get_ref()) {
                    Ok(normalised) => {
                        if let Some(first) = seen_names.insert(normalised.clone(), index + 1) {
                            self.invalid(
                                &name.span(),
                                &format!("{entry_key}.names"),
                                quote(name.get_ref()),
                                format!("is also a name of certificates[{first}]"),
                                "each server name on one certificate only",
                            );
                            ok = false;
                        }
                        names.push(normalised);
                    }
                    Err(problem) => {
                        self.invalid(
                            &name.span(),
                            &format!("{entry_key}.names"),
                            quote(name.get_ref()),
                            problem,
                            SNI_NAME_EXPECTED,
                        );
                        ok = false;
                    }
                }
            }
            let default = raw.default.as_ref().is_some_and(|value| *value.get_ref());
            if default && default_seen {
                if let Some(value) = &raw.default {
                    self.invalid(
                        &value.span(),
                        &format!("{entry_key}.default"),
                        "true".to_owned(),
                        "is set on a second certificate".to_owned(),
                        "default = true on one certificate at most",
                    );
                }
                ok = false;
            }
            default_seen |= default;
            match source {
                Some(source) => certificates.push(ServerCertificate {
                    source,
                    names,
                    default,
                }),
                None => ok = false,
            }
        }
        ok.then_some(certificates)
    }

    /// The CRL files of a listener's client-certificate verification.
    pub(crate) fn client_crls(
        &mut self,
        key: &str,
        raw: &RawListener,
        has_ca: bool,
    ) -> Option<Vec<PathBuf>> {
        let Some(list) = &raw.client_crls else {
            return Some(Vec::new());
        };
        // Without TLS the listener check reports the key; say it once.
        let tls = raw.certificate.is_some() || raw.certificates.is_some();
        if tls && !has_ca {
            self.invalid(
                &list.span(),
                &format!("{key}.client_crls"),
                "[...]".to_owned(),
                "needs client_ca: revocation lists apply to verified certificates".to_owned(),
                "client_ca = \"PEM file of the CAs that issue client certificates\"",
            );
            return None;
        }
        let files: Vec<Option<PathBuf>> = list
            .get_ref()
            .iter()
            .map(|file| self.file(&format!("{key}.client_crls"), file))
            .collect();
        files.into_iter().collect()
    }

    /// A `tls_versions` list; `None` after recording an error.
    pub(crate) fn tls_versions(
        &mut self,
        key: &str,
        raw: Option<&Spanned<Vec<String>>>,
    ) -> Option<TlsVersions> {
        let Some(versions) = raw else {
            return Some(TlsVersions::Tls12And13);
        };
        let mut list: Vec<&str> = versions.get_ref().iter().map(String::as_str).collect();
        list.sort_unstable();
        list.dedup();
        match list.as_slice() {
            ["1.2", "1.3"] => Some(TlsVersions::Tls12And13),
            ["1.3"] => Some(TlsVersions::Tls13Only),
            ["1.2"] => Some(TlsVersions::Tls12Only),
            _ => {
                self.invalid(
                    &versions.span(),
                    &format!("{key}.tls_versions"),
                    format!("{:?}", versions.get_ref()),
                    "is not a set of supported TLS versions".to_owned(),
                    TLS_VERSIONS_EXPECTED,
                );
                None
            }
        }
    }

    /// The verification and client certificate of an HTTPS upstream. `https_only` is
    /// called for every key present, so that a plain upstream refuses them.
    pub(crate) fn upstream_tls(
        &mut self,
        key: &str,
        raw: &RawUpstream,
        ca: Option<PathBuf>,
        server_name: Option<String>,
        https_only: &mut dyn FnMut(&mut Self, &std::ops::Range<usize>, &str),
    ) -> Option<UpstreamTls> {
        let mut pins = Vec::new();
        let mut ok = true;
        if let Some(list) = &raw.pin_sha256 {
            https_only(self, &list.span(), "pin_sha256");
            if list.get_ref().is_empty() {
                self.invalid(
                    &list.span(),
                    &format!("{key}.pin_sha256"),
                    "[]".to_owned(),
                    "has no fingerprints".to_owned(),
                    PIN_EXPECTED,
                );
                ok = false;
            }
            for pin in list.get_ref() {
                match pin.get_ref().parse::<Sha256Fingerprint>() {
                    Ok(fingerprint) => pins.push(fingerprint),
                    Err(_) => {
                        self.invalid(
                            &pin.span(),
                            &format!("{key}.pin_sha256"),
                            quote(pin.get_ref()),
                            "is not a SHA-256 fingerprint".to_owned(),
                            PIN_EXPECTED,
                        );
                        ok = false;
                    }
                }
            }
        }
        let insecure_skip_verify = match &raw.insecure_skip_verify {
            Some(value) => {
                https_only(self, &value.span(), "insecure_skip_verify");
                *value.get_ref()
            }
            None => false,
        };
        // One way of verifying: a CA, pins, or (loudly) none.
        let ways = [
            raw.ca.as_ref().map(|value| ("ca", value.span())),
            raw.pin_sha256
                .as_ref()
                .map(|value| ("pin_sha256", value.span())),
            raw.insecure_skip_verify
                .as_ref()
                .filter(|value| *value.get_ref())
                .map(|value| ("insecure_skip_verify", value.span())),
        ];
        let mut chosen = ways.iter().flatten();
        if let (Some((first, _)), Some((second, span))) = (chosen.next(), chosen.next()) {
            self.invalid(
                span,
                &format!("{key}.{second}"),
                if *second == "pin_sha256" {
                    "[...]"
                } else {
                    "true"
                }
                .to_owned(),
                format!("is set together with {first}"),
                "one of ca (verify the chain), pin_sha256 (accept pinned certificates) or \
                 insecure_skip_verify",
            );
            ok = false;
        }
        if let Some(versions) = &raw.tls_versions {
            https_only(self, &versions.span(), "tls_versions");
        }
        let versions = self.tls_versions(key, raw.tls_versions.as_ref());
        for value in [&raw.client_certificate, &raw.client_private_key]
            .into_iter()
            .flatten()
        {
            https_only(self, &value.span(), "client_certificate");
        }
        let client_certificate = match (&raw.client_certificate, &raw.client_private_key) {
            (None, None) => Some(None),
            (Some(certificate), Some(private_key)) => {
                let chain = self.file(&format!("{key}.client_certificate"), certificate);
                let key = self.file(&format!("{key}.client_private_key"), private_key);
                chain
                    .zip(key)
                    .map(|(chain, key)| Some(CertificateSource::Files { chain, key }))
            }
            (Some(value), None) | (None, Some(value)) => {
                let (present, missing) = if raw.client_certificate.is_some() {
                    ("client_certificate", "client_private_key")
                } else {
                    ("client_private_key", "client_certificate")
                };
                let at = self.at(&value.span());
                self.errors.push(Error::TlsPair {
                    at,
                    key: key.to_owned(),
                    present,
                    missing,
                });
                None
            }
        };
        Some(UpstreamTls {
            ca,
            pins,
            insecure_skip_verify,
            server_name,
            versions: versions?,
            client_certificate: client_certificate?,
        })
        .filter(|_| ok)
    }

    /// `server.certificate_watch_interval`: a duration, or `"off"` for SIGHUP only.
    pub(crate) fn watch_interval(
        &mut self,
        raw: Option<&Spanned<RawDuration>>,
    ) -> Option<Duration> {
        if let Some(value) = raw {
            if matches!(&value.get_ref().0, IntOrString::String(text) if text == "off") {
                return None;
            }
        }
        Some(self.duration(
            "server.certificate_watch_interval",
            raw,
            crate::model::defaults::CERTIFICATE_WATCH_INTERVAL,
        ))
    }
}

/// A server name for SNI selection: a DNS name, or `*.` and a DNS name; lower case without
/// a trailing dot.
fn sni_name(text: &str) -> Result<String, String> {
    let (wildcard, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if name.contains('*') {
        return Err("has a wildcard that is not one whole leftmost label".to_owned());
    }
    let normalised = values::server_name(name)?;
    if normalised.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address; clients send DNS names only as SNI".to_owned());
    }
    Ok(if wildcard {
        format!("*.{normalised}")
    } else {
        normalised
    })
}
